"""`python -m neurotoken.provider`: compute, publish and serve a job's proof bundle.

    python -m neurotoken.provider compute SPEC.json --job-id 7 --store bundles/ --state state/
    python -m neurotoken.provider serve --store bundles/ --state state/ --market 0x.. --port 8765
    python -m neurotoken.provider agent --help       (the chain-facing agent)
    python -m neurotoken.provider fetch-result 7 --out result/ --keystore client --market 0x..

`compute` resumes where an earlier run stopped (Ctrl-C or a crash loses no finished shard),
then publishes the bundle and prints the result root to commit on chain. The chain-facing
agent (register, watch, accept, submit, earnings) builds on these: `agent_cli.py`.

`serve` gives each bundle only to its job's client and oracles (the jobs come from the
agent's state folder, the client and oracles from the chain); `--public` serves anyone, for
local demos without a chain. `fetch-result` is the client's side: it downloads and checks a
job's whole result with the client's own key (`neurotoken.proofs.results`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from neurotoken.chain.cli import friendly
from neurotoken.chain.keystore import load_account
from neurotoken.errors import NeurotokenError
from neurotoken.jobs.spec import SpecError, parse_spec
from neurotoken.market.records import JobRecordError
from neurotoken.proofs.results import fetch_result
from neurotoken.proofs.store import LocalStore
from neurotoken.provider.agent_cli import (
    agent,
)
from neurotoken.provider.chain import MarketClient
from neurotoken.provider.compute import compute_job, default_workers
from neurotoken.provider.publish import publish_bundle
from neurotoken.provider.readers import agent_gate
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
@friendly
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
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("provider-state"),
    show_default=True,
    envvar="NEUROTOKEN_PROVIDER_STATE",
    help="The agent's state folder: which job each root belongs to.",
)
@click.option("--rpc", "rpc_url", envvar="NEUROTOKEN_RPC_URL", default="http://127.0.0.1:8545")
@click.option("--market", envvar="NEUROTOKEN_MARKET", help="ComputeMarket address.")
@click.option(
    "--abi",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="NEUROTOKEN_ABI_MANIFEST",
    help="Ape build manifest with the ABIs.",
)
@click.option("--public", is_flag=True, help="Serve every bundle to anyone (local demos only).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@friendly
def serve(
    store_dir: Path,
    state_dir: Path,
    rpc_url: str,
    market: str | None,
    abi: Path | None,
    public: bool,
    host: str,
    port: int,
) -> None:
    """Serve the bundle store read-only over HTTP, each bundle to its job's client and
    oracles (or, with --public, to anyone)."""
    gate = None
    if not public:
        if not market:
            raise click.UsageError("give --market (or NEUROTOKEN_MARKET), or --public")
        try:
            client = MarketClient.connect(rpc_url, market, manifest=abi)
        except NeurotokenError as exc:
            raise click.ClickException(str(exc)) from None
        gate = agent_gate(state_dir, client)
    serve_store(LocalStore(store_dir), host, port, gate, public=public)


@main.command("fetch-result")
@click.argument("job_id", type=int)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--keystore",
    envvar="NEUROTOKEN_CLIENT_KEYSTORE",
    required=True,
    help="The job client's encrypted keystore (a path or an ape alias).",
)
@click.option("--password-env", default="NEUROTOKEN_CLIENT_PASSWORD", show_default=True)
@click.option("--rpc", "rpc_url", envvar="NEUROTOKEN_RPC_URL", default="http://127.0.0.1:8545")
@click.option("--market", envvar="NEUROTOKEN_MARKET", required=True)
@click.option("--abi", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--from-block", type=int, default=0, help="Where to look for the job and its submission."
)
@friendly
def fetch_result_command(
    job_id: int,
    out_dir: Path,
    keystore: str,
    password_env: str,
    rpc_url: str,
    market: str,
    abi: Path | None,
    from_block: int,
) -> None:
    """Download and check every output of job JOB_ID as its client (signing a bundle access
    token with the client's key); files go to --out."""
    try:
        account = load_account(keystore, password_env)
        client = MarketClient.connect(rpc_url, market, manifest=abi)
        job = client.get_job(job_id, from_block=from_block)
        logs = client.logs("ResultSubmitted", from_block, client.head(), {"jobId": job_id})
        uris = [str(log["args"]["bundleURI"]) for log in logs]
        if not any(job.result_root) or not uris:
            raise click.ClickException(f"job {job_id} has no result submitted on chain")
        result = fetch_result(
            uris[-1], job.result_root, account.key, client.chain_id, client.market_address, out_dir
        )
    except (NeurotokenError, JobRecordError) as exc:
        raise click.ClickException(str(exc)) from None
    summary = {
        "job_id": job_id,
        "root": "0x" + result.root.hex(),
        "shards": len(result.shards),
        "fetched": result.fetched,
        "folder": str(result.folder),
    }
    click.echo(json.dumps(summary))


main.add_command(agent)
