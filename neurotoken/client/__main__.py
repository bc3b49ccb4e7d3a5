"""`python -m neurotoken.client`: a client's commands (posting, watching and fetching a job
are `ape run market post|status` and `python -m neurotoken.provider fetch-result`)."""

import click

from neurotoken.client.spec_cli import spec


@click.group()
def main() -> None:
    """A client's side of the Neurotoken compute market."""


main.add_command(spec)

if __name__ == "__main__":
    main()
