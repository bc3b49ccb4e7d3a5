"""Run by the virtual environment's interpreter at start-up (a line of the `.pth` file that
`make setup` writes), so that every entry point of the checkout - `.venv/bin/ape compile`,
`ape run market ...`, `python -m oracle`, `python -m neurotoken.provider` - finds the local
compiler wrapper and anvil from a fresh shell, with nothing exported and nothing fetched:

- SOLCX_BINARY_PATH: the solc wrapper `make setup` installs (`.solcx/solc-v<version>`), where
  py-solc-x and ape-solidity look before they would try to download a compiler;
- PATH: `node_modules/.bin` (anvil, the wrapper) ahead of the rest;
- APE_DISABLE_TELEMETRY, and no proxy for the loopback nodes.

A value the user has set is kept (a PATH entry is only added). Standard library only: it
runs before anything else, in every process of the environment.
"""

import os

_ROOT = os.path.dirname(os.path.abspath(__file__))


def _setup() -> None:
    env = os.environ
    solcx = os.path.join(_ROOT, ".solcx")
    if os.path.isdir(solcx):
        env.setdefault("SOLCX_BINARY_PATH", solcx)
    node_bin = os.path.join(_ROOT, "node_modules", ".bin")
    path = env.get("PATH", "")
    if os.path.isdir(node_bin) and node_bin not in path.split(os.pathsep):
        env["PATH"] = node_bin + (os.pathsep + path if path else "")
    env.setdefault("APE_DISABLE_TELEMETRY", "1")
    for name in ("no_proxy", "NO_PROXY"):
        hosts = [h for h in env.get(name, "").split(",") if h]
        env[name] = ",".join(hosts + [h for h in ("127.0.0.1", "localhost") if h not in hosts])


_setup()
