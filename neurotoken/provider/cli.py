"""`python -m neurotoken.provider`: compute, publish and serve a job's proof bundle.

    python -m neurotoken.provider compute SPEC.json --job-id 7 --store bundles/ --state state/
    python -m neurotoken.provider serve --store bundles/ --port 8765
    python -m neurotoken.provider agent --help       (the chain-facing agent)

`compute` resumes where an earlier run stopped (Ctrl-C or a crash loses no finished shard),
then publishes the bundle and prints the result root to commit on chain. The chain-facing
agent (register, watch, accept, submit, earnings) builds on these: `agent_cli.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from neurotoken.jobs.spec import SpecError, parse_spec
from neurotoken.proofs.store import LocalStore
from neurotoken.provider.agent_cli import agent
from neurotoken.provider.compute import compute_job, default_workers
from neurotoken.provider.publish import publish_bundle
from neurotoken.provider.server import serve_store


@click.group()
def main() -> None:
    """Provider tools: compute shards, publish and serve proof bundles."""


@main.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--job-id", type=int, required=True, help="The market's id for this job.")
@click.option("--store", "store_dir", type=click.Path(path_type=Path), default=Path("bundles"))
@click.option(
    "--state", "state_dir", type=click.Path(path_type=Path), default=Path("provider-state")
)
@click.option("--workers", type=int, default=None, help="Processes (default: all cores).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def compute(
    spec_file: Path,
    job_id: int,
    store_dir: Path,
    state_dir: Path,
    workers: int | None,
    device: str,
    quiet: bool,
) -> None:
    """Compute (or resume) every shard of SPEC_FILE, publish the bundle, print the root."""
    try:
        spec = parse_spec(spec_file.read_bytes())
    except SpecError as exc:
        raise click.BadParameter(str(exc), param_hint="SPEC_FILE") from None
    store = LocalStore(store_dir)
    report = compute_job(
        spec,
        store,
        state_dir,
        workers=workers or default_workers(),
        progress=not quiet,
        device=device,
    )
    manifest = publish_bundle(store, job_id, spec, report.output_hashes)
    click.echo(
        json.dumps(
            {
                "job_id": job_id,
                "spec_hash": manifest.spec_hash,
                "shard_count": manifest.shard_count,
                "root": manifest.root,
                "computed": len(report.computed),
                "reused": len(report.reused),
                "device": report.device,
            }
        )
    )


@main.command()
@click.option("--store", "store_dir", type=click.Path(path_type=Path), default=Path("bundles"))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
def serve(store_dir: Path, host: str, port: int) -> None:
    """Serve the bundle store read-only over HTTP."""
    serve_store(LocalStore(store_dir), host, port)


main.add_command(agent)
