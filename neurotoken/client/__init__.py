"""A client's side of the market from the command line: `python -m neurotoken.client`."""
