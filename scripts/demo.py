"""`ape run demo` (what `make demo` runs): one economy on a local anvil chain.

The sale mints every NTK there will be; buyers trade it, a client escrows it for GPU jobs,
farms stake and earn it, oracles judge, the market's fee goes to a treasury, and the books are
reconciled at the end. The report goes to demo-output/report.json (`--out` moves it and the
images); the command exits non-zero when any check fails or a stage stops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from ape import chain
from ape.cli import ConnectedProviderCommand, network_option

from demo import STAGES
from demo.economy import Economy, run_stages
from demo.report import finish
from neurotoken.chain.cli import friendly


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
@friendly
def cli(provider: Any, out_dir: Path) -> None:
    """Run the Neurotoken economy on a local chain (make demo)."""
    if not provider.network.is_dev:
        raise click.UsageError("The demo uses the local test accounts: run it on a local network.")
    click.echo(f"Connected to {provider.name} (chain id {chain.chain_id}).")
    report = run_stages(Economy.connect(click.echo, out_dir), STAGES)
    finish(report, out_dir / "report.json", click.echo)
    click.echo("Demo finished: every check held.")
