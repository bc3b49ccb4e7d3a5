"""`ape run bench`: runs the benchmark suites and writes BENCHMARKS.md.

Each suite's tables sit between ``<!-- suite:NAME -->`` markers; ``--suite NAME`` re-runs
only the named suites and replaces only their sections of an existing file."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand, network_option

from bench import SUITES
from bench.common import BenchContext, merge_results

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
    header = (
        f"Measured by `make bench` on {datetime.now(UTC):%Y-%m-%d} "
        f"(provider: {chain.provider.name}, chain id {chain.chain_id})."
    )
    sections: dict[str, str] = {}
    for name in chosen:
        click.echo(f"== {name}")
        module = importlib.import_module(f"bench.{name}")
        texts = []
        for table in module.run(ctx):
            text = table.markdown()
            click.echo(text)
            texts.append(text)
        sections[name] = "\n".join(texts)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = out.read_text() if out.exists() else ""
    out.write_text(merge_results(previous, sections, header, SUITES))
    click.echo(f"Wrote {out}")
