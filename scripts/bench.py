"""`ape run bench`: runs every benchmark suite and writes benchmarks/RESULTS.md."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand, network_option

from neurotoken.bench import SUITES
from neurotoken.bench.common import BenchContext

RESULTS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


@click.command(cls=ConnectedProviderCommand)
@network_option()
@click.option("--suite", "suites", multiple=True, help="Run only these suites (default: all).")
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS, show_default=True)
def cli(suites: tuple[str, ...], out: Path) -> None:
    """Measure gas and speed, each figure beside a reference measured in the same run."""
    chosen = list(suites) or SUITES
    unknown = sorted(set(chosen) - set(SUITES))
    if unknown:
        raise click.BadParameter(f"unknown suite(s) {unknown}; choose from {SUITES}")
    ctx = BenchContext(
        project=project, chain=chain, accounts=accounts, owner=accounts.test_accounts[0]
    )
    parts = [
        "# Benchmark results",
        "",
        f"Measured by `make bench` on {datetime.now(UTC):%Y-%m-%d} "
        f"(provider: {chain.provider.name}, chain id {chain.chain_id}).",
        "",
    ]
    for name in chosen:
        click.echo(f"== {name}")
        module = importlib.import_module(f"neurotoken.bench.{name}")
        for table in module.run(ctx):
            text = table.markdown()
            click.echo(text)
            parts.append(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))
    click.echo(f"Wrote {out}")
