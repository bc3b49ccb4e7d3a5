"""`ape run demo` (what `make demo` runs): one economy on a local anvil chain.

The sale mints every NTK there will be; buyers trade it, a client escrows it for GPU jobs,
farms stake and earn it, oracles judge, the market's fee goes to a treasury, and the books are
reconciled at the end. The report goes to demo-output/report.json (`--out` moves it and the
images); the command exits non-zero when any check fails or a stage stops.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import click
from ape import chain
from ape.cli import ConnectedProviderCommand, network_option

from demo import STAGES
from demo.economy import Economy, run_stages
from demo.report import finish
from neurotoken.chain.cli import friendly
from neurotoken.errors import NeurotokenError
from neurotoken.webapp import WEB_DIR, AppServer, config_for

WEB_PORT = 5173


@click.command(cls=ConnectedProviderCommand)
@network_option()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where the images and report.json go.",
)
@click.option(
    "--serve/--no-serve",
    default=None,
    help="Afterwards, serve the web app against the demo chain until Ctrl-C (default: when "
    "run in a terminal).",
)
@friendly
def cli(provider: Any, out_dir: Path, serve: bool | None) -> None:
    """Run the Neurotoken economy on a local chain (make demo)."""
    if not provider.network.is_dev:
        raise click.UsageError("The demo uses the local test accounts: run it on a local network.")
    click.echo(f"Connected to {provider.name} (chain id {chain.chain_id}).")
    economy = Economy.connect(click.echo, out_dir)
    report = run_stages(economy, STAGES)
    finish(report, out_dir / "report.json", click.echo)
    click.echo("Demo finished: every check held.")
    if serve is None:
        serve = sys.stdin.isatty() and sys.stdout.isatty()
    if not serve:
        click.echo("Run `make demo` in a terminal to see it in the web app afterwards.")
        return
    _serve_app(economy, str(provider.uri))


def _serve_app(economy: Economy, rpc_url: str) -> None:
    """The web app against the demo chain, which lives as long as this command: until Ctrl-C."""
    addresses = {"NeuroToken": economy.token.address, "TokenSale": economy.sale.address,
                 "ComputeMarket": economy.market.address}  # fmt: skip
    config = config_for("demo", chain.chain_id, addresses, rpc_url=rpc_url,
                        from_block=economy.market_block)  # fmt: skip
    try:
        server = AppServer(WEB_DIR / "dist", config, port=WEB_PORT)
    except OSError:  # the port is taken: any free one
        server = AppServer(WEB_DIR / "dist", config)
    except NeurotokenError as exc:
        raise click.ClickException(str(exc)) from None
    server.start()
    click.echo(
        f"\nThe web app against the demo chain: {server.url}\n"
        f"  In your wallet, add the network RPC {rpc_url}, chain id {chain.chain_id}, and import "
        "a demo account: ape's test accounts come from its well-known development mnemonic "
        '("test test ... junk"; never hold real funds with it).\n'
        "  Ctrl-C ends the demo and its chain."
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
