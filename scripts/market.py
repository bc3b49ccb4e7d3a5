"""`ape run market ...`: deploy and operate the compute market.

    ape run market deploy --oracle 0x.. --oracle 0x.. --threshold 2 --network ... --account ...
    ape run market provider register 1000 --metadata https://... --approve
    ape run market provider add-stake 500 | unbond 200 | withdraw-stake | withdraw-earnings
    ape run market provider info ADDRESS
    ape run market post --spec-hash 0x.. --spec-uri ipfs://.. --payment 100 [--collateral min] \\
        --shards 16 --challenges 8 [--permit | --approve]
    ape run market post ... --provider 0xFARM --request-out request.json  (writes, sends nothing)
    ape run market post --request request.json --acceptance 0x.. [--permit | --approve]
    ape run market accept JOB | submit JOB --root 0x.. --shards 16 --bundle-uri URL
    ape run market sign JOB --accept|--reject --out verdict.json      (an oracle's account)
    ape run market settle verdicts/*.json                              (anyone)
    ape run market cancel JOB | expire JOB | fix-seed JOB | status JOB

Every command takes --network; those that send a transaction take --account. The market is
the one recorded for the network (deployments/<network>.json) unless --market is given.
Irreversible actions ask first (skip with --yes). A user mistake prints what was wrong and
what to do, and exits with status 1.

A quote: the client writes the request for one provider (`--request-out`, absolute deadlines,
the client, chain and market beside it), the provider signs its EIP-712 acceptance of the
record the job will get, and the client posts exactly that request with the signature
(`postAcceptedJob`): the job starts Accepted, the provider's collateral locked, one
transaction fewer. The acceptance is checked off chain first, as the market will check it.

The market stores only a digest of each open job's record; a command about a job rebuilds the
record from the job's events (checked against the digest) and sends it with the call. An ended
job keeps only its events: `status` shows how it ended. If the job changes between the read
and the send (another transaction came first), the command says so: run it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from ape import chain, project
from ape.cli import account_option, network_option
from eth_utils.address import to_checksum_address

from neurotoken.chain import deployments
from neurotoken.chain.cli import (
    ADDRESS,
    confirm_irreversible,
    current_network_key,
    friendly,
    signs,
    yes_option,
)
from neurotoken.chain.network_command import NetworkCommand
from neurotoken.chain.permit import permit_typed_data
from neurotoken.market.job import ENDINGS
from neurotoken.market.ops import (
    DEFAULT_RANDAO_DELAY,
    JobView,
    MarketOperationError,
    QuoteRequest,
    challenge_of,
    check_acceptance,
    check_payment,
    deploy_market,
    job_view,
    load_signed,
    market_reader,
    minimum_collateral,
    parse_acceptance,
    parse_bytes32,
    parse_duration,
    preflight,
    prepare_settlement,
    seed_block_header,
    sign_typed,
    verdict_to_sign,
)
from neurotoken.market.records import JobReader
from neurotoken.market.verdicts import MarketDomain, SignedVerdict, verdict_typed_data
from neurotoken.units import format_duration, format_ntk, format_when, parse_ntk

ZERO_ADDRESS = "0x" + "00" * 20


def require_account(account: Any) -> Any:
    if account is None:
        raise MarketOperationError(
            "choose the sending account with --account ALIAS (an `ape accounts` alias), "
            "or --account TEST::0 on a local chain"
        )
    return account


def network_key() -> str:
    return current_network_key(chain.provider)


def the_market(address: str | None) -> Any:
    return project.ComputeMarket.at(
        address or deployments.address_of(network_key(), "ComputeMarket")
    )


def the_reader(market: Any) -> JobReader:
    """Reads job records from the market's events, from its deployment block when it is the
    market recorded for the network (else from genesis)."""
    entry = deployments.load(network_key()).get("ComputeMarket") or {}
    recorded = str(entry.get("address", "")).lower() == str(market.address).lower()
    return market_reader(market, int(entry.get("block", 0)) if recorded else 0)


def view_of(market: Any, job_id: int) -> JobView:
    """Job `job_id`'s current record: rebuilt from its events and checked against the digest
    the market stores. Every call about the job is sent with it."""
    return job_view(market, job_id, the_reader(market))


def the_token(market: Any) -> Any:
    return project.NeuroToken.at(market.token())


def now() -> int:
    return int(chain.blocks.head.timestamp)


def transact(market: Any, method: str, *args: Any, sender: Any) -> Any:
    """Sends `method` after a dry run: a refusal reads as a sentence, not a call trace."""
    preflight(
        market, method, *args, sender=sender.address, extra_types=[project.NeuroToken.contract_type]
    )
    return getattr(market, method)(*args, sender=sender)


def show_tx(tx: Any, what: str) -> None:
    click.echo(f"{what} (tx {tx.txn_hash}, {tx.gas_used:,} gas)")


market_option = click.option(
    "--market",
    "market_address",
    type=ADDRESS,
    default=None,
    help="The market's address (default: the one recorded for the network).",
)


@click.group()
def cli() -> None:
    """Deploy and operate the Neurotoken compute market."""


# ---------------------------------------------------------------- deploy


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@click.option(
    "--token", "token_address", type=ADDRESS, default=None, help="NTK address (default: recorded)."
)
@click.option(
    "--owner", type=ADDRESS, default=None, help="Governs oracles and fees (default: the deployer)."
)
@click.option(
    "--oracle",
    "oracles",
    type=ADDRESS,
    multiple=True,
    required=True,
    help="An oracle address (repeat).",
)
@click.option(
    "--threshold",
    type=int,
    required=True,
    help="Signatures a settlement needs: more than half of the oracles.",
)
@click.option("--fee-bps", type=int, default=250, show_default=True, help="Protocol fee.")
@click.option("--unbonding-delay", default="7d", show_default=True, help="e.g. 7d, 36h.")
@click.option(
    "--min-verdict-window",
    default="1h",
    show_default=True,
    help="Shortest verdict window a job may have (room for confirmations and verification).",
)
@click.option(
    "--randao-delay",
    type=int,
    default=DEFAULT_RANDAO_DELAY,
    show_default=True,
    help="Seed each challenge with the RANDAO mix of the block this many after the commit "
    "(recorded in the RandaoRecorder the market creates); 0: with the hash of the next "
    "block, which that block's producer chooses (docs/proofs.md, section 4).",
)
@yes_option()
@friendly
@signs
def deploy(
    provider: Any,
    account: Any,
    token_address: str | None,
    owner: str | None,
    oracles: tuple[str, ...],
    threshold: int,
    fee_bps: int,
    unbonding_delay: str,
    min_verdict_window: str,
    randao_delay: int,
    yes: bool,
) -> None:
    """Deploy the ComputeMarket (it creates its RandaoRecorder) and record both in
    deployments/<network>.json."""
    sender = require_account(account)
    network = network_key()
    token = token_address or deployments.address_of(network, "NeuroToken")
    owner_address = owner or sender.address
    confirm_irreversible(
        f"Deploy ComputeMarket on {network} for token {token}: owner {owner_address}, "
        f"{threshold} of {len(oracles)} oracles, fee {fee_bps} bps, challenge seeds "
        + (
            f"from the RANDAO mix {randao_delay} blocks on."
            if randao_delay
            else "from block hashes."
        ),
        yes or provider.network.is_dev,
    )
    market = deploy_market(
        project,
        token=token,
        owner=owner_address,
        sender=sender,
        oracles=list(oracles),
        threshold=threshold,
        fee_bps=fee_bps,
        unbonding_delay=parse_duration(unbonding_delay),
        min_verdict_window=parse_duration(min_verdict_window),
        randao_delay=randao_delay,
    )
    recorder = str(market.randaoRecorder())
    if int(randao_delay):
        deployments.record(
            network, "RandaoRecorder", recorder, deployer=sender.address,
            block=_deploy_block(provider, project.RandaoRecorder.at(recorder)),
        )  # fmt: skip
    path = deployments.record(
        network,
        "ComputeMarket",
        market.address,
        token=str(token),
        owner=owner_address,
        oracles=list(oracles),
        threshold=threshold,
        randao_delay=randao_delay,
        randao_recorder=recorder,
        deployer=sender.address,
        block=_deploy_block(provider, market),
    )
    click.echo(f"ComputeMarket deployed at {market.address}; recorded in {path}")


def _deploy_block(provider: Any, contract: Any) -> int:
    """The block that created `contract` (where an oracle starts reading events)."""
    if contract.txn_hash:
        return int(provider.get_receipt(contract.txn_hash).block_number)
    return int(provider.get_block("latest").number)


# ---------------------------------------------------------------- providers


@cli.group("provider")
def provider_group() -> None:
    """Register, stake, unbond and withdraw as a provider."""


def _fund(token: Any, market: Any, account: Any, amount: int, approve: bool) -> None:
    if approve and int(token.allowance(account, market)) < amount:
        token.approve(market, amount, sender=account)
        click.echo(f"approved the market to spend {format_ntk(amount)}")
    check_payment(token, account, market, amount, permit=False)


@provider_group.command("register", cls=NetworkCommand)
@network_option()
@account_option()
@market_option
@click.argument("stake")
@click.option(
    "--metadata", required=True, help="URI of the provider's offer (GPU, price, endpoint)."
)
@click.option("--approve", is_flag=True, help="Approve the stake first if needed.")
@friendly
@signs
def provider_register(
    account: Any, market_address: str | None, stake: str, metadata: str, approve: bool
) -> None:
    """Register with STAKE NTK of stake."""
    sender = require_account(account)
    market = the_market(market_address)
    amount = parse_ntk(stake)
    if market.getProvider(sender).registered:
        raise MarketOperationError(f"{sender.address} is already registered; use add-stake")
    _fund(the_token(market), market, sender, amount, approve)
    show_tx(
        transact(market, "registerProvider", amount, metadata, sender=sender),
        f"registered with {stake} NTK",
    )


@provider_group.command("add-stake", cls=NetworkCommand)
@network_option()
@account_option()
@market_option
@click.argument("amount")
@click.option("--approve", is_flag=True, help="Approve the amount first if needed.")
@friendly
@signs
def provider_add_stake(
    account: Any, market_address: str | None, amount: str, approve: bool
) -> None:
    """Add AMOUNT NTK to the free stake."""
    sender = require_account(account)
    market = the_market(market_address)
    value = parse_ntk(amount)
    _fund(the_token(market), market, sender, value, approve)
    show_tx(transact(market, "addStake", value, sender=sender), f"added {amount} NTK of stake")


@provider_group.command("unbond", cls=NetworkCommand)
@network_option()
@account_option()
@market_option
@click.argument("amount")
@friendly
@signs
def provider_unbond(account: Any, market_address: str | None, amount: str) -> None:
    """Start unbonding AMOUNT NTK of free stake (withdrawable after the delay)."""
    sender = require_account(account)
    market = the_market(market_address)
    tx = transact(market, "requestUnbond", parse_ntk(amount), sender=sender)
    ready = tx.events.filter(market.UnbondRequested)[0].event_arguments["readyAt"]
    show_tx(tx, f"unbonding {amount} NTK; withdrawable from {ready}")


@provider_group.command("withdraw-stake", cls=NetworkCommand)
@network_option()
@account_option()
@market_option
@friendly
@signs
def provider_withdraw_stake(account: Any, market_address: str | None) -> None:
    """Withdraw the unbonded stake once the delay has passed."""
    sender = require_account(account)
    market = the_market(market_address)
    record = market.getProvider(sender)
    if int(record.unbondingNtk) and now() < int(record.unbondReadyAt):
        raise MarketOperationError(
            f"the unbonding stake is withdrawable from {format_when(int(record.unbondReadyAt))} "
            f"({format_duration(int(record.unbondReadyAt) - now())} from now)"
        )
    show_tx(
        transact(market, "withdrawUnbonded", sender=sender),
        f"withdrew {format_ntk(int(record.unbondingNtk))}",
    )


@provider_group.command("withdraw-earnings", cls=NetworkCommand)
@network_option()
@account_option()
@market_option
@friendly
@signs
def provider_withdraw_earnings(account: Any, market_address: str | None) -> None:
    """Withdraw the earnings of paid jobs."""
    sender = require_account(account)
    market = the_market(market_address)
    earned = int(market.getProvider(sender).earnedNtk)
    show_tx(
        transact(market, "withdrawEarnings", sender=sender),
        f"withdrew {format_ntk(earned)} of earnings",
    )


@provider_group.command("info", cls=NetworkCommand)
@network_option()
@market_option
@click.argument("address", type=ADDRESS)
@friendly
def provider_info(market_address: str | None, address: str) -> None:
    """Show a provider's stake, earnings and metadata."""
    market = the_market(market_address)
    record = market.getProvider(address)
    if not record.registered:
        raise MarketOperationError(f"{address} is not a registered provider")
    click.echo(f"provider {address}")
    click.echo(f"  free stake  {format_ntk(int(record.stakeNtk))}")
    click.echo(
        f"  unbonding   {format_ntk(int(record.unbondingNtk))} "
        f"(ready at {format_when(int(record.unbondReadyAt))})"
    )
    click.echo(f"  earnings    {format_ntk(int(record.earnedNtk))}")
    click.echo(f"  metadata    {market.providerMetadataURI(address)}")


# ---------------------------------------------------------------- jobs


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@market_option
@click.option("--spec-hash", help="keccak256 of the canonical spec (0x + 64 hex).")
@click.option("--spec-uri", help="Where providers fetch the spec.")
@click.option("--payment", help="NTK escrowed for the job.")
@click.option(
    "--collateral",
    default=None,
    help="NTK the provider locks; 'min' (the default) is the market's deterrent minimum for "
    "the payment, shards and challenges.",
)
@click.option(
    "--provider",
    "chosen",
    type=ADDRESS,
    default=None,
    help="Reserve the job for this provider (the quoting provider, for a quote).",
)
@click.option("--shards", type=int, default=None)
@click.option("--challenges", type=int, default=None, help="Shards the oracles re-execute.")
@click.option("--accept-within", default=None, help="Default 1h (a quote's validity).")
@click.option("--deliver-within", default=None, help="After accept-by; default 1d.")
@click.option("--verdict-within", default=None, help="After deliver-by; default 1d.")
@click.option("--permit", is_flag=True, help="Sign an EIP-2612 permit: one transaction.")
@click.option("--approve", is_flag=True, help="Approve the payment first if needed.")
@click.option(
    "--request-out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Send nothing: write the request (absolute deadlines) to FILE for --provider to quote.",
)
@click.option(
    "--request",
    "request_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Post exactly the request in FILE (written by --request-out), instead of the flags.",
)
@click.option(
    "--acceptance",
    default=None,
    help="The provider's acceptance (0x..., or its quote file): the job is posted accepted.",
)
@friendly
@signs
def post(
    account: Any,
    market_address: str | None,
    spec_hash: str | None,
    spec_uri: str | None,
    payment: str | None,
    collateral: str | None,
    chosen: str | None,
    shards: int | None,
    challenges: int | None,
    accept_within: str | None,
    deliver_within: str | None,
    verdict_within: str | None,
    permit: bool,
    approve: bool,
    request_out: Path | None,
    request_file: Path | None,
    acceptance: str | None,
) -> None:
    """Post a job and escrow its payment; or write a request for a provider to quote
    (--request-out), then post it with the provider's acceptance (--request, --acceptance):
    the job starts accepted."""
    sender = require_account(account)
    market = the_market(market_address)
    token = the_token(market)
    if permit and approve:
        raise MarketOperationError("choose --permit or --approve, not both")
    start = int(chain.pending_timestamp)
    domain = MarketDomain(chain.chain_id, market.address)
    flags = {
        "--spec-hash": spec_hash,
        "--spec-uri": spec_uri,
        "--payment": payment,
        "--collateral": collateral,
        "--provider": chosen,
        "--shards": shards,
        "--challenges": challenges,
        "--accept-within": accept_within,
        "--deliver-within": deliver_within,
        "--verdict-within": verdict_within,
    }
    if request_file is not None:
        given = [flag for flag, value in flags.items() if value is not None]
        if given:
            raise MarketOperationError(
                f"--request {request_file} holds the whole request: drop {', '.join(given)}"
            )
        if request_out is not None:
            raise MarketOperationError("--request posts a written request; drop --request-out")
        quote = QuoteRequest.read(request_file)
        quote.check_for(sender.address, domain, str(request_file))
        request = quote.request
    else:
        request = _request_from_flags(market, start, **flags)
    if request_out is not None:
        _write_request(request_out, request, sender.address, domain, permit, approve, acceptance)
        return
    amount = int(request["paymentNtk"])
    accept_by = int(request["acceptBy"])
    signature = None
    if acceptance is not None:
        signature = parse_acceptance(acceptance)
        check_acceptance(
            market,
            request,
            sender.address,
            signature,
            chain_id=chain.chain_id,
            at=start,
            from_block=the_reader(market).from_block,
            rebuilt=request_file is None,
        )
    elif start > accept_by:
        raise MarketOperationError(
            f"the request's accept-by {format_when(accept_by)} has passed (now "
            f"{format_when(start)}): write a new one"
        )
    if approve and int(token.allowance(sender, market)) < amount:
        token.approve(market, amount, sender=sender)
    check_payment(token, sender, market, amount, permit=permit)
    job_id = int(market.nextJobId())
    no_permit: tuple[int, int, bytes, bytes] = (0, 0, bytes(32), bytes(32))
    pay = _permit(token, market, sender, amount, start + 3_600) if permit else no_permit
    if signature is not None:
        tx = transact(market, "postAcceptedJob", request, signature, *pay, sender=sender)
        show_tx(
            tx,
            f"posted job {job_id}, already accepted by {request['provider']}: "
            f"{format_ntk(amount)} escrowed, {format_ntk(int(request['collateralNtk']))} of its "
            f"stake locked; deliver by {format_when(int(request['deliverBy']))}",
        )
        return
    if permit:
        tx = transact(market, "postJobWithPermit", request, *pay, sender=sender)
    else:
        tx = transact(market, "postJob", request, sender=sender)
    show_tx(
        tx,
        f"posted job {job_id}: {format_ntk(amount)} escrowed, accept by {format_when(accept_by)}",
    )


def _request_from_flags(
    market: Any,
    start: int,
    **flags: Any,
) -> dict[str, Any]:
    """The JobRequest the flags describe, its deadlines counted from `start`."""
    missing = [
        flag
        for flag in ("--spec-hash", "--spec-uri", "--payment", "--shards", "--challenges")
        if flags[flag] is None
    ]
    if missing:
        raise MarketOperationError(
            f"give {', '.join(missing)} (or --request FILE, a request written by --request-out)"
        )
    shards, challenges = int(flags["--shards"]), int(flags["--challenges"])
    amount = parse_ntk(flags["--payment"])
    if not 1 <= challenges <= shards:
        raise MarketOperationError(f"--challenges must be between 1 and --shards ({shards})")
    least = minimum_collateral(amount, shards, challenges)
    collateral = flags["--collateral"] or "min"
    collateral_ntk = least if collateral == "min" else parse_ntk(collateral)
    if collateral_ntk < least:
        raise MarketOperationError(
            f"--collateral must be at least {format_ntk(least)} for {format_ntk(amount)} over "
            f"{shards} shards with {challenges} challenged (so that faking a shard loses money); "
            "pass --collateral min"
        )
    window = parse_duration(flags["--verdict-within"] or "1d")
    if window < int(market.minVerdictWindow()):
        raise MarketOperationError(
            f"--verdict-within must be at least {int(market.minVerdictWindow())}s on this market"
        )
    accept_by = start + parse_duration(flags["--accept-within"] or "1h")
    deliver_by = accept_by + parse_duration(flags["--deliver-within"] or "1d")
    return {
        "specHash": parse_bytes32(flags["--spec-hash"], "--spec-hash"),
        "specURI": flags["--spec-uri"],
        "paymentNtk": amount,
        "provider": flags["--provider"] or ZERO_ADDRESS,
        "collateralNtk": collateral_ntk,
        "shardCount": shards,
        "challengeCount": challenges,
        "acceptBy": accept_by,
        "deliverBy": deliver_by,
        "verdictBy": deliver_by + window,
    }


def _write_request(
    out: Path,
    request: dict[str, Any],
    client: str,
    domain: MarketDomain,
    permit: bool,
    approve: bool,
    acceptance: str | None,
) -> None:
    """Writes the request for its provider to quote (`--request-out`), sending nothing."""
    flags = (("--permit", permit), ("--approve", approve), ("--acceptance", acceptance))
    given = [flag for flag, value in flags if value]
    if given:
        raise MarketOperationError(
            f"--request-out only writes the request; give {', '.join(given)} when posting it "
            "(--request FILE)"
        )
    if int(str(request["provider"]), 16) == 0:
        raise MarketOperationError(
            "a quote is one provider's: name it with --provider ADDRESS to write a request "
            "for it to quote"
        )
    quote = QuoteRequest(request, client, domain.chain_id, to_checksum_address(domain.market))
    out.write_text(quote.to_json() + "\n")
    click.echo(
        f"wrote the request to {out} for {request['provider']} to quote (nothing sent): "
        f"{format_ntk(int(request['paymentNtk']))} for {request['shardCount']} shards, good "
        f"until {format_when(int(request['acceptBy']))}; post it with --request {out} "
        "--acceptance QUOTE (the provider's signature, 0x..., or its quote file)"
    )


def _permit(
    token: Any, market: Any, sender: Any, amount: int, deadline: int
) -> tuple[int, int, bytes, bytes]:
    """An EIP-2612 permit by `sender` for the market to pull `amount`: (deadline, v, r, s)."""
    message = permit_typed_data(
        token_name=token.name(),
        token_address=token.address,
        chain_id=chain.chain_id,
        owner=sender.address,
        spender=market.address,
        value=amount,
        nonce=int(token.nonces(sender)),
        deadline=deadline,
    )
    signature = sign_typed(sender, message)
    return deadline, signature[64], signature[:32], signature[32:64]


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@market_option
@click.argument("job_id", type=int)
@friendly
@signs
def accept(account: Any, market_address: str | None, job_id: int) -> None:
    """Accept a posted job (locks its collateral from your free stake)."""
    sender = require_account(account)
    market = the_market(market_address)
    view = view_of(market, job_id).require_open()
    show_tx(
        transact(market, "acceptJob", job_id, view.record(), sender=sender),
        f"accepted job {job_id}; deliver by {format_when(view.deliver_by)}",
    )


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@market_option
@click.argument("job_id", type=int)
@click.option("--root", required=True, help="Merkle root of the shard outputs.")
@click.option("--shards", type=int, required=True, help="Must equal the job's shard count.")
@click.option("--bundle-uri", required=True, help="Where oracles fetch the proof bundle.")
@friendly
@signs
def submit(
    account: Any, market_address: str | None, job_id: int, root: str, shards: int, bundle_uri: str
) -> None:
    """Commit the result of an accepted job."""
    sender = require_account(account)
    market = the_market(market_address)
    view = view_of(market, job_id).require_open()
    if shards != view.shard_count:
        raise MarketOperationError(f"job {job_id} has {view.shard_count} shards, not {shards}")
    tx = transact(
        market,
        "submitResult",
        job_id,
        view.record(),
        parse_bytes32(root, "--root"),
        shards,
        bundle_uri,
        sender=sender,
    )
    seed_block = tx.events.filter(market.ResultSubmitted)[0].event_arguments["seedBlock"]
    show_tx(tx, f"submitted job {job_id}; the challenge is fixed by block {seed_block}")


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@market_option
@click.argument("job_id", type=int)
@click.option("--accept/--reject", "accepted", required=True, help="The verdict.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@friendly
@signs
def sign(account: Any, market_address: str | None, job_id: int, accepted: bool, out: Path) -> None:
    """Sign an EIP-712 verdict on a submitted job (as an oracle) and write it to OUT."""
    signer = require_account(account)
    market = the_market(market_address)
    view = view_of(market, job_id)
    if not market.isEpochOracle(view.oracle_epoch, signer):
        click.echo(
            f"warning: {signer.address} is not an oracle of job {job_id} (oracle epoch "
            f"{view.oracle_epoch}): its signature will not count",
            err=True,
        )
    verdict = verdict_to_sign(market, view, accepted)
    domain = MarketDomain(chain.chain_id, market.address)
    signed = SignedVerdict(
        domain=domain,
        kind="verdict",
        verdicts=(verdict,),
        signer=signer.address,
        signature=sign_typed(signer, verdict_typed_data(domain, verdict)),
    )
    signed.verify()
    out.write_text(signed.to_json() + "\n")
    click.echo(f"wrote {'accept' if accepted else 'reject'} verdict on job {job_id} to {out}")


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@market_option
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@friendly
@signs
def settle(account: Any, market_address: str | None, files: tuple[Path, ...]) -> None:
    """Settle with oracle verdict signatures read from FILES (JSON; directories allowed)."""
    sender = require_account(account)
    market = the_market(market_address)
    settlement = prepare_settlement(market, chain.chain_id, load_signed(files), the_reader(market))
    method, args = settlement.call()
    tx = transact(market, method, *args, sender=sender)
    verdicts = ", ".join(
        f"{e.job_id} {'paid' if e.accepted else 'rejected'}" for e in settlement.entries
    )
    show_tx(tx, f"settled with {len(settlement.signatures)} oracle signatures: {verdicts}")


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@market_option
@click.argument("job_id", type=int)
@yes_option()
@friendly
@signs
def cancel(account: Any, market_address: str | None, job_id: int, yes: bool) -> None:
    """Cancel your posted job before anyone accepts it (full refund)."""
    sender = require_account(account)
    market = the_market(market_address)
    view = view_of(market, job_id).require_open()
    if view.client != sender.address:
        raise MarketOperationError(f"only the client {view.client} may cancel job {job_id}")
    confirm_irreversible(f"Cancel job {job_id} and refund {format_ntk(view.payment_ntk)}.", yes)
    tx = transact(market, "cancelJob", job_id, view.record(), sender=sender)
    show_tx(tx, f"cancelled job {job_id}")


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@market_option
@click.argument("job_id", type=int)
@friendly
@signs
def expire(account: Any, market_address: str | None, job_id: int) -> None:
    """End a job whose deadline passed (anyone may)."""
    sender = require_account(account)
    market = the_market(market_address)
    view = view_of(market, job_id)
    deadline = {"Posted": view.accept_by, "Accepted": view.deliver_by, "Submitted": view.verdict_by}
    if view.label not in deadline:
        raise MarketOperationError(f"job {job_id} is {view.label}: nothing to expire")
    if now() < deadline[view.label]:
        raise MarketOperationError(
            f"job {job_id} ({view.label}) can be expired after "
            f"{format_when(deadline[view.label])} "
            f"({format_duration(deadline[view.label] - now())} from now)"
        )
    tx = transact(market, "expireJob", job_id, view.record(), sender=sender)
    show_tx(tx, f"expired job {job_id}: now {_ending(tx)}")


@cli.command("fix-seed", cls=NetworkCommand)
@network_option()
@account_option()
@market_option
@click.argument("job_id", type=int)
@friendly
@signs
def fix_seed(account: Any, market_address: str | None, job_id: int) -> None:
    """Make a submitted job's challenge seed permanent (before it ages out of reach): store
    its seed block's hash, or, on a market seeding with RANDAO, record that block's mix."""
    sender = require_account(account)
    market = the_market(market_address)
    view = view_of(market, job_id).require_open()
    if not int(market.randaoDelay()):
        tx = transact(market, "fixChallengeSeed", job_id, view.record(), sender=sender)
        show_tx(tx, f"seed of job {job_id} fixed: the hash of block {view.seed_block}")
        return
    recorder = project.RandaoRecorder.at(market.randaoRecorder())
    header = seed_block_header(market, view, int(chain.blocks.head.number))
    tx = transact(recorder, "record", header, sender=sender)
    show_tx(tx, f"seed of job {job_id} recorded: the RANDAO mix of block {view.seed_block}")


@cli.command(cls=NetworkCommand)
@network_option()
@market_option
@click.argument("job_id", type=int)
@friendly
def status(market_address: str | None, job_id: int) -> None:
    """Show a job: its state, parties, amounts, deadlines, challenge and next steps."""
    market = the_market(market_address)
    view = view_of(market, job_id)
    for line in view.lines(now()):
        click.echo(line)
    challenge = challenge_of(market, view, int(chain.blocks.head.number))
    if challenge:
        seed, shards = challenge
        click.echo(f"  challenge   seed 0x{seed.hex()}: shards {shards}")
    elif view.seed_block and view.is_open and int(market.randaoDelay()):
        click.echo(
            f"  challenge   not drawn yet: the RANDAO mix of block {view.seed_block}, once "
            f"recorded (oracles record it; so does `ape run market fix-seed {job_id}`)"
        )


def _ending(tx: Any) -> str:
    """The state the ending event of `tx` left its job in, e.g. 'Expired'."""
    for log in tx.events:
        if log.event_name in ENDINGS:
            return ENDINGS[log.event_name].label
    raise MarketOperationError(f"transaction {tx.txn_hash} ended no job")
