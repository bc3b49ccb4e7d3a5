"""`python -m neurotoken.provider agent ...`: the provider agent's command line.

    export NEUROTOKEN_RPC_URL=http://127.0.0.1:8545 NEUROTOKEN_MARKET=0x...
    export NEUROTOKEN_PROVIDER_KEYSTORE=farm          # ~/.ape/accounts/farm.json, or a path
    export NEUROTOKEN_PROVIDER_PASSWORD=...           # name set by --password-env
    python -m neurotoken.provider agent register --stake 1000
    python -m neurotoken.provider agent run --min-price-per-shard 0.5 --public-url http://me:8765
    python -m neurotoken.provider agent earnings
    python -m neurotoken.provider agent quote request.json --client 0x... --out quote.json

Every option can come from the environment variable shown by `--help`. Mistakes (no stake,
too little NTK or ETH, a wrong address, a missing keystore password) end with one line that
says what to do and exit status 1.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
from eth_utils.address import is_address, to_checksum_address
from pydantic import ValidationError

from neurotoken.chain import deployments
from neurotoken.chain.cli import friendly, settings_problems
from neurotoken.chain.keystore import load_account
from neurotoken.errors import ConfigError
from neurotoken.jobs.spec import KINDS
from neurotoken.proofs.store import LocalStore, atomic_write
from neurotoken.provider import account as acct
from neurotoken.provider.agent import AgentConfig, ProviderAgent
from neurotoken.provider.backends import ComputeBackend, LocalBackend
from neurotoken.provider.chain import MarketClient
from neurotoken.provider.compute import default_workers
from neurotoken.provider.earnings import collect_earnings
from neurotoken.provider.errors import (
    NotRegisteredError,
)
from neurotoken.provider.faults import crash_injector
from neurotoken.provider.policy import Policy, load_policy
from neurotoken.provider.quote import make_quote
from neurotoken.provider.readers import agent_gate
from neurotoken.provider.server import BundleServer, make_app
from neurotoken.provider.settings import ProviderSettings, env_name
from neurotoken.provider.state import JobStatus
from neurotoken.units import format_when, parse_ntk

P = ParamSpec("P")
R = TypeVar("R")


class NtkAmount(click.ParamType):
    name = "NTK"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_ntk(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


NTK_AMOUNT = NtkAmount()


def _address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if not is_address(value):
        raise click.BadParameter("not an address (0x and 40 hex digits)")
    return to_checksum_address(value)


@dataclass
class Connection:
    settings: ProviderSettings

    def client(self, signing: bool = True) -> MarketClient:
        s = self.settings
        market = s.market
        if not market:
            try:
                market = deployments.address_of(s.network, "ComputeMarket")
            except deployments.DeploymentNotFoundError as exc:
                raise ConfigError(f"{exc} Or set NEUROTOKEN_MARKET / --market.") from None
        account = None
        if signing:
            if not s.keystore:
                raise ConfigError(
                    "no keystore: pass --keystore PATH|APE_ALIAS "
                    "or set NEUROTOKEN_PROVIDER_KEYSTORE"
                )
            account = load_account(s.keystore, s.password_env)
        return MarketClient.connect(
            s.rpc_url, market, account, manifest=s.abi, tx_settings=s.tx_settings()
        )

    def compute_backend(self, workers: int | None) -> ComputeBackend:
        """The backend the settings name: the local pool, or Ray at `ray_address`."""
        s = self.settings
        if s.backend == "local":
            return LocalBackend(workers)
        try:
            from neurotoken.provider.ray_backend import RayBackend
        except ImportError:
            raise ConfigError(
                "--backend ray needs Ray: pip install --no-deps -r requirements-ray.lock"
            ) from None
        return RayBackend(s.ray_address or None)


pass_connection = click.make_pass_decorator(Connection)


def _setting_option(flag: str, field: str, help_text: str, **kwargs: Any) -> Any:
    """An option that overrides one ProviderSettings field (default: its variable, else the
    model's default)."""
    default = ProviderSettings.model_fields[field].default
    shown = "" if default in (None, "") else f"; default {default}"
    return click.option(
        flag, field, default=None, help=f"{help_text} [env {env_name(field)}{shown}]", **kwargs
    )


@click.group()
@_setting_option("--rpc", "rpc_url", "JSON-RPC endpoint.")
@_setting_option("--market", "market", "ComputeMarket address (default: the deployments file).")
@_setting_option("--network", "network", "Deployments file key used when --market is not given.")
@_setting_option(
    "--keystore",
    "keystore",
    "Encrypted keystore: a path, or an ape account alias (~/.ape/accounts).",
)
@_setting_option(
    "--password-env", "password_env", "Name of the environment variable holding the password."
)
@_setting_option(
    "--abi", "abi", "Ape build manifest with the ABIs (default: .build/__local__.json).",
    type=click.Path(dir_okay=False, path_type=Path),
)  # fmt: skip
@_setting_option(
    "--receipt-timeout", "receipt_timeout_s",
    "Seconds to wait for a transaction's receipt (replacements included).", type=float,
)  # fmt: skip
@_setting_option(
    "--stuck-after-blocks", "stuck_after_blocks",
    "Blocks without a receipt before a transaction is re-signed with higher fees.", type=int,
)  # fmt: skip
@_setting_option(
    "--fee-bump-pct", "fee_bump_pct",
    "How much each replacement raises the fees, in percent (10 at least).", type=int,
)  # fmt: skip
@_setting_option(
    "--max-fee-gwei", "max_fee_gwei",
    "No transaction pays more than this per gas, replacements included (0: no cap).",
    type=float,
)  # fmt: skip
@_setting_option(
    "--backend", "backend", "Where shards are computed: local (process pool) or ray.",
    type=click.Choice(["local", "ray"]),
)  # fmt: skip
@_setting_option(
    "--ray-address", "ray_address",
    "Ray cluster head for --backend ray (HOST:6379 or auto; default: start Ray in-process).",
)  # fmt: skip
@click.pass_context
def agent(ctx: click.Context, /, **options: Any) -> None:
    """The chain-facing provider agent: stake, take jobs, compute, submit, get paid."""
    overrides = {k: v for k, v in options.items() if v is not None}
    try:
        settings = ProviderSettings(**overrides)
    except ValidationError as exc:
        raise click.UsageError(f"bad settings: {settings_problems(exc, env_name)}") from None
    ctx.obj = Connection(settings)


@agent.command()
@click.option("--stake", type=NTK_AMOUNT, required=True, help="Stake to lock, in NTK.")
@click.option("--metadata-uri", default="", help="Where the offer (GPUs, prices) is described.")
@pass_connection
@friendly
def register(conn: Connection, stake: int, metadata_uri: str) -> None:
    """Register as a provider, approving and staking STAKE NTK."""
    acct.register(conn.client(), stake, metadata_uri, click.echo)


@agent.command("add-stake")
@click.argument("amount", type=NTK_AMOUNT)
@pass_connection
@friendly
def add_stake(conn: Connection, amount: int) -> None:
    """Add AMOUNT NTK to the free stake."""
    acct.add_stake(conn.client(), amount, click.echo)


@agent.command()
@click.argument("amount", type=NTK_AMOUNT)
@pass_connection
@friendly
def unbond(conn: Connection, amount: int) -> None:
    """Start unbonding AMOUNT NTK of free stake (withdrawable after the market's delay)."""
    acct.request_unbond(conn.client(), amount, click.echo)


@agent.command("withdraw-unbonded")
@pass_connection
@friendly
def withdraw_unbonded(conn: Connection) -> None:
    """Withdraw stake whose unbonding delay has passed."""
    acct.withdraw_unbonded(conn.client(), click.echo)


@agent.command("withdraw-earnings")
@pass_connection
@friendly
def withdraw_earnings(conn: Connection) -> None:
    """Withdraw the earnings of paid jobs."""
    acct.withdraw_earnings(conn.client(), click.echo)


@agent.command()
@pass_connection
@friendly
def status(conn: Connection) -> None:
    """Show the account: ETH, NTK, stake, earnings, unbonding."""
    for line in acct.account_status(conn.client()).lines():
        click.echo(line)


@agent.command()
@click.option("--from-block", type=int, default=0, show_default=True)
@click.option("--provider", "who", default=None, help="Any provider address (default: mine).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_connection
@friendly
def earnings(conn: Connection, from_block: int, who: str | None, as_json: bool) -> None:
    """Report paid jobs, fees, slashes and withdrawals from chain events."""
    client = conn.client(signing=who is None)
    report = collect_earnings(client, who, from_block)
    click.echo(report.to_json() if as_json else "\n".join(report.lines()))


def policy_options(fn: Callable[P, R]) -> Callable[P, R]:
    options = [
        click.option("--policy", "policy_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="Policy JSON (fields of neurotoken.provider.policy.Policy)."),
        click.option("--kinds", help=f"Comma-separated kinds offered (of {', '.join(KINDS)})."),
        click.option("--min-price-per-shard", type=NTK_AMOUNT,
                     help="Least net NTK per shard, after the protocol fee."),
        click.option("--max-shards", type=int),
        click.option("--max-collateral", type=NTK_AMOUNT, help="Most NTK one job may lock."),
        click.option("--deadline-margin", type=int, help="Seconds kept in hand before deliverBy."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_policy(
    policy_file: Path | None,
    kinds: str | None,
    min_price_per_shard: int | None,
    max_shards: int | None,
    max_collateral: int | None,
    deadline_margin: int | None,
) -> Policy:
    base = load_policy(policy_file) if policy_file else Policy()
    changes: dict[str, Any] = {}
    if kinds is not None:
        wanted = frozenset(k.strip() for k in kinds.split(",") if k.strip())
        unknown = wanted - set(KINDS)
        if unknown:
            raise ConfigError(f"unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        changes["kinds"] = wanted
    for key, value in (
        ("min_price_per_shard_ntk", min_price_per_shard),
        ("max_shards", max_shards),
        ("max_collateral_ntk", max_collateral),
        ("deadline_margin_s", deadline_margin),
    ):
        if value is not None:
            changes[key] = value
    return Policy.model_validate({**base.model_dump(), **changes})


def work_options(fn: Callable[P, R]) -> Callable[P, R]:
    options = [
        click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path),
                     default=Path("provider-state"), show_default=True,
                     envvar="NEUROTOKEN_PROVIDER_STATE", show_envvar=True),
        click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path),
                     default=Path("bundles"), show_default=True),
        click.option("--workers", type=int, default=None, help="Processes (default: all cores)."),
        click.option("--from-block", type=int, default=0, show_default=True,
                     help="First block scanned for posted jobs (first run only)."),
        click.option("--confirmations", type=int, default=2, show_default=True,
                     help="Blocks above a JobPosted log before it is acted on (0 on a local "
                          "chain that mines only when a transaction arrives)."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


@agent.command()
@policy_options
@work_options
@pass_connection
@friendly
def jobs(conn: Connection, /, state_dir: Path, store_dir: Path, workers: int | None,
         from_block: int, confirmations: int, **policy: Any) -> None:  # fmt: skip
    """List open jobs and what the policy says about each (sends nothing)."""
    client = conn.client()
    config = AgentConfig(
        state_dir, store_dir, "", build_policy(**policy), workers or default_workers(),
        progress=False, confirmations=confirmations, from_block=from_block, read_only=True,
    )  # fmt: skip
    runner = ProviderAgent(client, config, echo=lambda _: None)
    try:
        runner.scan()
        for record in runner.state.with_status(JobStatus.SEEN, JobStatus.DEFERRED):
            decision, job = runner.evaluate(record.job_id)
            if runner.held(job):
                click.echo(f"job {record.job_id}: held (quoted or accepted): `run` computes it")
            else:
                click.echo(decision.summary())
    finally:
        runner.close()


@agent.command()
@click.argument(
    "request_file",
    metavar="REQUEST.json",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--client",
    "client_address",
    callback=_address,
    help="The address that will post the job (it is part of what is signed; default: the "
    "request file's client).",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the quote here (default: print it).",
)
@policy_options
@work_options
@pass_connection
@friendly
def quote(conn: Connection, /, request_file: Path, client_address: str | None,
          out_file: Path | None, state_dir: Path, store_dir: Path, workers: int | None,
          from_block: int, confirmations: int, **policy: Any) -> None:  # fmt: skip
    """Quote the job request in REQUEST.json: check it as a posted job would be checked and
    sign this provider's acceptance of it, which the client posts with postAcceptedJob. Give
    the running agent's --state and policy: its jobs in hand and quotes count."""
    try:
        document = json.loads(request_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{request_file} is not a JSON job request ({exc})") from None
    client = conn.client()
    config = AgentConfig(
        state_dir, store_dir, "", build_policy(**policy), workers or default_workers(),
        progress=False, confirmations=confirmations, from_block=from_block, scans=False,
    )  # fmt: skip
    runner = ProviderAgent(client, config, echo=lambda _: None)
    try:
        signed = make_quote(runner, document, client_address)
    finally:
        runner.close()
    text = json.dumps(signed.to_json(), indent=2)
    if out_file is None:
        click.echo(text)
    else:
        atomic_write(out_file, (text + "\n").encode())
        click.echo(
            f"quote written to {out_file}: acceptance {signed.to_json()['acceptance']}, "
            f"good until acceptBy {format_when(signed.job.accept_by)}"
        )


@agent.command()
@policy_options
@work_options
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option(
    "--serve-host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to serve bundles on (0.0.0.0 for all; then set --public-url).",
)
@click.option("--serve-port", type=int, default=8765, show_default=True)
@click.option("--public-url", help="Bundle URI published on chain (default: http://HOST:PORT).")
@click.option("--no-serve", is_flag=True, help="Bundles are served by something else.")
@click.option("--poll", type=float, default=5.0, show_default=True, help="Seconds between steps.")
@click.option("--once", is_flag=True, help="One step, then exit.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@pass_connection
@friendly
def run(conn: Connection, /, state_dir: Path, store_dir: Path, workers: int | None,
        from_block: int, confirmations: int, device: str, serve_host: str, serve_port: int,
        public_url: str | None, no_serve: bool, poll: float, once: bool, quiet: bool,
        **policy: Any) -> None:  # fmt: skip
    """Watch the market, accept what the policy allows, compute, serve and submit."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    client = conn.client()
    if not client.get_provider().registered:
        raise NotRegisteredError(client.address)
    backend = conn.compute_backend(workers)
    crash = crash_injector(conn.settings.crash_at, conn.settings.crash_probability)
    if crash is not None:
        click.echo(f"FAULT INJECTION: SIGKILL at {', '.join(sorted(crash.points))}", err=True)
    server: BundleServer | None = None
    if not no_serve:
        # each bundle only to its job's client and oracles (docs/proofs.md, section 5)
        app = make_app(LocalStore(store_dir), agent_gate(state_dir, client), crash=crash)
        server = BundleServer(app, serve_host, serve_port).start()
    bundle_uri = public_url or (server.url if server else store_dir.resolve().as_uri())
    config = AgentConfig(
        state_dir, store_dir, bundle_uri, build_policy(**policy), backend.parallelism,
        device=device, progress=not quiet, confirmations=confirmations, from_block=from_block,
        backend=backend, crash=crash,
    )  # fmt: skip
    runner = ProviderAgent(client, config, echo=click.echo)
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        click.echo("stopping after this step (state is saved; rerun to resume)", err=True)

    signal.signal(signal.SIGTERM, stop)
    click.echo(
        f"provider {client.address} on market {client.market_address}; bundles at {bundle_uri}"
    )
    try:
        runner.run(poll_s=poll, stop=lambda: stopping, max_steps=1 if once else None)
    except KeyboardInterrupt:
        click.echo("interrupted; state is saved, rerun to resume", err=True)
        sys.exit(130)
    finally:
        runner.close()
        backend.close()
        if server is not None:
            server.stop()
