"""`python -m neurotoken.webapp serve|config`: the web app against a recorded network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import requests

from neurotoken.errors import NeurotokenError
from neurotoken.webapp.config import WEB_DIR, app_config
from neurotoken.webapp.server import AppServer


def _chain_id(rpc_url: str) -> int:
    try:
        reply = requests.post(
            rpc_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
            timeout=10,
        ).json()
        return int(reply["result"], 16)
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        raise click.ClickException(
            f"no node answered at the --rpc-url ({type(exc).__name__}): "
            "start it, or give --chain-id"
        ) from None


def _options(fn):  # type: ignore[no-untyped-def]
    fn = click.option(
        "--network", required=True, help="deployments/<NETWORK>.json, e.g. ethereum-local."
    )(fn)
    fn = click.option(
        "--rpc-url",
        default="",
        help="The chain's node (its id is read from it; wallets may add it).",
    )(fn)
    fn = click.option("--chain-id", type=int, help="The chain id, when no --rpc-url is given.")(fn)
    return fn


def _config(network: str, rpc_url: str, chain_id: int | None) -> dict[str, object]:
    if chain_id is None:
        if not rpc_url:
            raise click.UsageError("give --rpc-url (the chain id is read from it) or --chain-id")
        chain_id = _chain_id(rpc_url)
    try:
        return app_config(network, chain_id, rpc_url)
    except NeurotokenError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """The Neurotoken web app: serve it, or write its config.json for a static host."""


@main.command()
@_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5173, show_default=True)
def serve(network: str, rpc_url: str, chain_id: int | None, host: str, port: int) -> None:
    """Serve web/dist with the network's config until interrupted."""
    config = _config(network, rpc_url, chain_id)
    try:
        server = AppServer(WEB_DIR / "dist", config, host, port)
    except NeurotokenError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port"
        ) from None
    click.echo(f"Neurotoken app for {network} at {server.url} (Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()


@main.command()
@_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def config(network: str, rpc_url: str, chain_id: int | None, out: Path) -> None:
    """Write config.json into OUT (copy web/dist there too, and host the folder anywhere)."""
    data = _config(network, rpc_url, chain_id)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(data, indent=1) + "\n")
    click.echo(f"wrote {out / 'config.json'}")


if __name__ == "__main__":
    sys.exit(main())
