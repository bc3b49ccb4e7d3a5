"""``python -m oracle``: run the service, inspect its store, settle jobs by hand.

    python -m oracle run [--config oracle.env]
    python -m oracle status [--config oracle.env] [--jobs 20]
    python -m oracle settle --job 7 --peer http://o1:8700 --peer http://o2:8700 \\
        --keystore ~/.ape/accounts/me.json --password-env MY_PASSWORD
    python -m oracle keystore OUT.json --key-env ORACLE_KEY --password-env ORACLE_KEYSTORE_PASSWORD

Settings come from ORACLE_* environment variables, over the ``--config`` file; options
given on the command line win over both.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import requests
from eth_account import Account
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from web3.exceptions import ContractCustomError, ContractLogicError

from neurotoken.chain.cli import friendly, settings_problems
from neurotoken.chain.keystore import write_keystore
from neurotoken.chain.sender import DROPPED, MINED, Call, MemoryJournal, Sender
from neurotoken.errors import NeurotokenError
from neurotoken.market.states import JobState
from neurotoken.market.verdicts import MarketDomain
from neurotoken.redact import redact_urls, url_origin
from oracle import peers
from oracle.chain import JobRecordError, MarketChain, revert_data
from oracle.errors import ConfigError, StartupInterruptedError
from oracle.keys import OracleKey, load_key
from oracle.logs import configure
from oracle.sending import oracle_sender
from oracle.settings import OracleSettings, load_settings
from oracle.store import TX_PENDING, Store

CONFIG = click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An env-style file of ORACLE_* settings.",
)


NO_MARKET = (
    "no market address: pass --market (or set ORACLE_MARKET), or name the network whose "
    "deployments file records it with --deployment (ORACLE_DEPLOYMENT), e.g. ethereum-sepolia"
)
DEPLOYMENT = click.option(
    "--deployment",
    default=None,
    help="Network key whose deployments/<key>.json records the ComputeMarket.",
)


def _settings(config_file: Path | None, **overrides: Any) -> OracleSettings:
    try:
        return load_settings(config_file, **overrides)
    except ValidationError as exc:
        # pydantic's own text quotes every input, the database URL and its password among
        # them: only each error's place and message are shown.
        raise click.UsageError(
            f"bad settings: {settings_problems(exc, lambda f: 'ORACLE_' + f.upper())}"
        ) from None
    except ValueError as exc:
        raise click.UsageError(f"bad settings: {redact_urls(str(exc))}") from None


def _key(settings: OracleSettings) -> OracleKey | None:
    if settings.keystore is None:
        return None
    try:
        return load_key(settings.keystore, settings.password_env)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


@click.group()
def main() -> None:
    """The Neurotoken oracle: verify completion proofs, sign verdicts, settle jobs."""


@main.command()
@CONFIG
@click.option("--rpc-url", default=None)
@click.option("--market", default=None)
@DEPLOYMENT
@click.option("--database-url", default=None)
@click.option("--http-port", type=int, default=None)
@friendly
def run(
    config_file: Path | None,
    rpc_url: str | None,
    market: str | None,
    deployment: str | None,
    database_url: str | None,
    http_port: int | None,
) -> None:
    """Run the oracle until SIGTERM or Ctrl-C (dry-run when no keystore is set)."""
    from oracle.service import Oracle

    settings = _settings(
        config_file,
        rpc_url=rpc_url,
        market=market,
        deployment=deployment,
        database_url=database_url,
        http_port=http_port,
    )
    configure(settings.log_level)
    if not settings.market:
        raise click.UsageError(NO_MARKET)
    oracle = Oracle(settings, _key(settings))
    oracle.install_signal_handlers()
    try:
        oracle.start()
    except StartupInterruptedError:  # SIGTERM while starting: a clean stop, exit status 0
        oracle.shutdown()
        return
    except NeurotokenError as exc:
        oracle.shutdown()
        raise click.ClickException(str(exc)) from None
    oracle.run()


@main.command()
@CONFIG
@click.option("--database-url", default=None)
@click.option(
    "--jobs",
    "show_jobs",
    type=int,
    default=20,
    show_default=True,
    help="How many of the latest jobs to list.",
)
@friendly
def status(config_file: Path | None, database_url: str | None, show_jobs: int) -> None:
    """Print what the oracle's store holds (cursor, jobs by state, pending transactions)."""
    settings = _settings(config_file, database_url=database_url)
    url = make_url(settings.database_url)
    database = url.database or ""
    on_file = url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    if on_file and not Path(database).is_file():  # connecting would create it
        raise click.ClickException(
            f"no oracle database at {settings.redacted()['database_url']}: check "
            "--database-url (or ORACLE_DATABASE_URL); `oracle run` creates it"
        )
    store = Store(settings.database_url)
    try:
        version = store.version()
        if version == 0:
            raise click.ClickException(
                f"no oracle database at {settings.redacted()['database_url']}"
            )
        jobs = store.jobs()
        pending = store.txs([TX_PENDING])
        out = {
            "schema_version": version,
            "chain_id": store.get_meta("chain_id"),
            "market": store.get_meta("market"),
            "cursor": store.cursor(),
            "jobs_by_state": store.counts_by_state(),
            "pending_transactions": [
                {
                    "id": t.id,
                    "nonce": t.nonce,
                    "kind": t.kind,
                    "jobs": t.job_ids,
                    "attempts": [a.hash for a in t.attempts],
                }
                for t in pending
            ],
            "latest_jobs": [
                {
                    "job": j.job_id,
                    "state": j.state,
                    "accepted": j.accepted,
                    "outcome": j.outcome,
                    "root": None if j.result_root is None else "0x" + j.result_root.hex(),
                    "reasons": json.loads(j.reasons) if j.reasons else [],
                    "settled_tx": j.settled_tx,
                }
                for j in jobs[-show_jobs:]
            ],
        }
    finally:
        store.close()
    click.echo(json.dumps(out, indent=2))


@main.command()
@CONFIG
@click.option("--job", "job_ids", type=int, multiple=True, required=True)
@click.option("--peer", "peer_urls", multiple=True, help="Oracle base URL (repeatable).")
@click.option("--rpc-url", default=None)
@click.option("--market", default=None)
@DEPLOYMENT
@click.option("--keystore", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--password-env", default=None)
@click.option("--dry-run", is_flag=True, help="Collect and check; send nothing.")
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True)
@friendly
def settle(
    config_file: Path | None,
    job_ids: tuple[int, ...],
    peer_urls: tuple[str, ...],
    rpc_url: str | None,
    market: str | None,
    deployment: str | None,
    keystore: Path | None,
    password_env: str | None,
    dry_run: bool,
    timeout_s: float,
) -> None:
    """Collect oracles' signed verdicts for JOBs and settle them yourself (no oracle
    process needed: any client or provider can do this)."""
    settings = _settings(
        config_file,
        rpc_url=rpc_url,
        market=market,
        deployment=deployment,
        keystore=keystore,
        password_env=password_env,
        peers=list(peer_urls) or None,
    )
    if not settings.market:
        raise click.UsageError(NO_MARKET)
    if not settings.peers:
        raise click.UsageError("no oracles to ask: pass --peer URL (or set ORACLE_PEERS)")
    key = None if dry_run else _key(settings)
    if key is None and not dry_run:
        raise click.UsageError("no keystore: pass --keystore (or --dry-run to only check)")
    chain = MarketChain(
        settings.rpc_url,
        settings.market,
        settings.abi_path,
        settings.rpc_timeout_s,
        from_block=settings.start_block,  # job records are searched for from here
        block_range=settings.block_range,
    )
    try:
        chain.w3.eth.chain_id  # noqa: B018 - one call, to fail here with a clear line
    except (requests.RequestException, OSError, ValueError) as exc:
        raise click.ClickException(
            f"cannot reach the node at {url_origin(settings.rpc_url)} ({type(exc).__name__}): "
            "check --rpc-url (or ORACLE_RPC_URL)"
        ) from None
    sender = None if key is None else oracle_sender(chain, key, MemoryJournal(), settings)
    results = settle_jobs(
        chain, settings.peers, list(job_ids), sender, settings.peer_timeout_s, timeout_s
    )
    click.echo(json.dumps(results, indent=2))
    if any(r["result"] not in ("settled", "already_settled", "quorum", "sent") for r in results):
        sys.exit(1)


def settle_jobs(
    chain: MarketChain,
    peer_urls: list[str],
    job_ids: list[int],
    sender: Sender | None,
    peer_timeout_s: float = 3.0,
    receipt_timeout_s: float = 120.0,
) -> list[dict[str, Any]]:
    """The `settle` command's work: per job, gather signatures, assemble a quorum (of the
    oracles of the job's epoch, at the job's threshold) and (with a sender) send `settle`
    with the job's current record and follow it to its receipt, replacing it while it is
    stuck (as the oracle does, `neurotoken.chain.sender`)."""
    session = requests.Session()
    session.trust_env = False
    domain = MarketDomain(chain.chain_id, chain.address)
    results: list[dict[str, Any]] = []
    synced = False
    stuck: str | None = None
    for job_id in job_ids:
        try:
            onchain = chain.get_job(job_id)
        except JobRecordError as exc:  # never posted, or the node's logs lag its state
            results.append({"job": job_id, "result": "record_unavailable", "error": str(exc)})
            continue
        entry: dict[str, Any] = {"job": job_id, "state": onchain.state.name.lower()}
        results.append(entry)
        if onchain.state in (JobState.PAID, JobState.REJECTED):
            entry["result"] = "already_settled"
            continue
        if onchain.state != JobState.SUBMITTED:
            entry["result"] = "not_awaiting_a_verdict"
            continue
        reports = peers.collect(session, peer_urls, job_id, domain, peer_timeout_s)
        signed = [
            s for r in reports for s in r.signed if s.verdicts[0].result_root == onchain.result_root
        ]
        entry["garbage"] = [g for r in reports for g in r.garbage]
        entry["unreachable"] = [r.peer for r in reports if r.error]
        serves = functools.partial(chain.is_epoch_oracle, onchain.oracle_epoch)
        quorum = peers.assemble(signed, onchain.threshold, serves)
        if quorum is None:
            entry["result"] = "no_quorum"
            entry["signatures"] = len(signed)
            continue
        entry["accepted"] = quorum.accepted
        entry["signers"] = list(quorum.signers)
        if sender is None:
            entry["result"] = "quorum"
            continue
        if stuck is not None:  # a later nonce could not land before it
            entry["result"] = "not_sent"
            entry["error"] = f"an earlier settlement ({stuck}) has no receipt yet"
            continue
        data = chain.settle_data(onchain, quorum.accepted, list(quorum.signatures))
        try:
            call = {"from": sender.address, "to": chain.address, "data": data}
            gas = int(chain.w3.eth.estimate_gas(call))  # type: ignore[arg-type]
        except (ContractCustomError, ContractLogicError) as exc:
            entry["result"] = "would_revert"
            entry["error"] = str(chain.decode_error(revert_data(exc)) or exc)
            continue
        if not synced:
            sender.sync()
            synced = True
        entry.update(_send_settlement(chain, sender, job_id, data, gas, receipt_timeout_s))
        if entry["result"] == "no_receipt":
            stuck = entry["tx"]
    return results


def _send_settlement(
    chain: MarketChain,
    sender: Sender,
    job_id: int,
    data: bytes,
    gas: int,
    receipt_timeout_s: float,
) -> dict[str, Any]:
    """Sends one settlement and follows it: its entry's result, tx and block."""
    sent = sender.send(Call(chain.address, data, gas + gas // 4 + 20_000), "settle", [job_id])
    tx = sent.tx
    if not tx.live:  # every attempt refused: nothing of it can land
        sender.abandon(tx)
        why = sender.held(tx) or str(sent.answer.error or sent.answer.result)
        return {"result": "refused", "tx": tx.attempts[-1].hash, "error": why[:200]}
    outcome = sender.wait(tx, receipt_timeout_s)
    if outcome is None:
        out = {"result": "no_receipt", "tx": tx.live[-1].hash}
        held = sender.held(tx)
        return out if held is None else {**out, "error": held}
    if outcome.status == DROPPED:
        sender.sync()
        return {"result": "dropped", "tx": tx.live[-1].hash}
    result = "settled" if outcome.status == MINED else "reverted"
    if result == "reverted" and _settled(chain, job_id):
        result = "already_settled"
    return {"result": result, "tx": outcome.tx_hash, "block": outcome.block_number}


def _settled(chain: MarketChain, job_id: int) -> bool:
    """Whether the job is settled by now (False while the node cannot say)."""
    try:
        return chain.get_job(job_id).state in (JobState.PAID, JobState.REJECTED)
    except JobRecordError:
        return False


@main.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key-env", required=True, help="Variable holding the private key (hex).")
@click.option("--password-env", default="ORACLE_KEYSTORE_PASSWORD", show_default=True)
@friendly
def keystore(out: Path, key_env: str, password_env: str) -> None:
    """Encrypt the private key in $KEY_ENV into a keystore file OUT (mode 0600)."""
    private_key = os.environ.get(key_env)
    password = os.environ.get(password_env)
    if not private_key or password is None:
        raise click.UsageError(f"set {key_env} and {password_env}")
    try:
        address = Account.from_key(private_key).address
    except (ValueError, TypeError):  # never echo what the variable holds
        raise click.UsageError(f"{key_env} does not hold a 32-byte private key in hex") from None
    write_keystore(out, private_key, password)
    click.echo(json.dumps({"keystore": str(out), "address": address, "at": time.time()}))
