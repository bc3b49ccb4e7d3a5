"""`ape run sale ...`: deploy and operate the Neurotoken presale and ICO.

    ape run sale allowlist presale.csv --out allowlist.json
    ape run sale deploy --config config/sale.toml --allowlist allowlist.json \
        --network ... --account ...
    ape run sale status --network ...
    ape run sale buy 1.5 --allowlist allowlist.json --network ... --account ...
    ape run sale finalize | claim | refund --network ... --account ...
    ape run sale simulate --buyers 50 --network ethereum:local:foundry

Irreversible actions ask for confirmation (skip with --yes). A user mistake prints what was
wrong and what to do, and exits with status 1; it never prints a traceback.
"""

from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click
from ape import accounts, chain, project
from ape.cli import account_option, network_option
from ape.logging import logger

from neurotoken.chain import deployments
from neurotoken.chain.cli import (
    ADDRESS,
    confirm_irreversible,
    current_network_key,
    friendly,
    is_live,
    signs,
    yes_option,
)
from neurotoken.chain.network_command import NetworkCommand
from neurotoken.chain.preflight import send
from neurotoken.sale.allowlist import Allowlist, write_proofs
from neurotoken.sale.config import DEFAULT_CONFIG, SaleConfig, SaleConfigError
from neurotoken.sale.deploy import deploy_sale
from neurotoken.sale.ops import (
    SaleOperationError,
    SaleStatus,
    check_purchase,
    find_sale,
    proof_for,
)
from neurotoken.sale.run import SEPOLIA_CHAIN_ID, run_sale, set_chain_id
from neurotoken.sale.terms import SaleState, Stage, format_units
from neurotoken.units import format_when


def network_name() -> str:
    return current_network_key(chain.provider)


def parse_eth(text: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise SaleOperationError(f"{text!r} is not an ETH amount; write it like 1.5") from exc
    wei = value * 10**18
    if value <= 0 or wei != wei.to_integral_value():
        raise SaleOperationError(f"{text} ETH is not a positive whole number of wei")
    return int(wei)


def now() -> int:
    return int(chain.blocks.head.timestamp)


sale_option = click.option(
    "--sale",
    "sale_address",
    type=ADDRESS,
    default=None,
    help="The sale's address (default: the one recorded for the network).",
)


@click.group()
def cli() -> None:
    """Deploy and operate the Neurotoken presale and ICO."""


@cli.command("allowlist")
@click.argument("csv_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("allowlist.json"), show_default=True
)
@click.option(
    "--proofs", type=click.Path(path_type=Path), default=None, help="Also write {address: proof}."
)
@friendly
def allowlist_cmd(csv_file: Path, out: Path, proofs: Path | None) -> None:
    """Build the presale allow-list from a CSV of addresses (one per line).

    Writes @openzeppelin/merkle-tree's StandardMerkleTree JSON (front ends load it with
    StandardMerkleTree.load) and prints the root to deploy the sale with.
    """
    tree = Allowlist.from_csv(csv_file)
    tree.write(out)
    if proofs:
        write_proofs(tree, proofs)
    click.echo(f"{len(tree)} addresses; root 0x{tree.root.hex()}")
    click.echo(f"wrote {out}" + (f" and {proofs}" if proofs else ""))


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_CONFIG,
    show_default=True,
)
@click.option(
    "--allowlist",
    "allowlist_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The allow-list JSON (overrides the config's).",
)
@click.option(
    "--owner",
    type=ADDRESS,
    default=None,
    help="Who may pause buying (default: the deploying account).",
)
@click.option(
    "--allow-past-start",
    is_flag=True,
    help="Deploy even though the presale's start is already past (it opens at once).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Deploy even though a sale is already recorded for this network (its record is kept "
    "in the file's history only by you).",
)
@yes_option()
@friendly
@signs
def deploy(
    account: Any,
    config_path: Path,
    allowlist_file: Path | None,
    owner: str | None,
    allow_past_start: bool,
    replace: bool,
    yes: bool,
) -> None:
    """Deploy NeuroToken and the sale from a config file, hand minting to the sale, record both.

    The terms are checked offline with the contract's own rules before anything is deployed.
    """
    recorded = deployments.load(network_name()).get("TokenSale")
    if recorded and not replace:
        raise SaleOperationError(
            f"a sale is already recorded for {network_name()} at {recorded['address']}; "
            "deploying again would replace that record: pass --replace if that is what you want"
        )
    config = SaleConfig.load(config_path)
    if account is None:
        raise SaleOperationError(
            "choose the deploying account with --account ALIAS (an `ape accounts` alias), "
            "or --account TEST::0 on a local chain"
        )
    tree_path = allowlist_file or config.allowlist_path()
    if tree_path is None:
        click.echo("no allow-list given: nobody will be able to buy in the presale", err=True)
        root = b"\x00" * 32
    else:
        root = Allowlist.read(tree_path).root
    default_wallet = None if is_live(chain.provider) else account.address
    terms = config.to_terms(now=now(), allowlist_root=root, default_wallet=default_wallet)
    problems = terms.problems()
    if problems:
        raise SaleConfigError(
            f"the sale contract would refuse the terms of {config_path}, so nothing was "
            "deployed: " + "; ".join(problems)
        )
    if terms.stage_starts[0] < now() and not allow_past_start:
        raise SaleConfigError(
            f"the presale start {format_when(terms.stage_starts[0])} is already past: the sale "
            "would open at once, its first stages cut short. Set [schedule] start later, or "
            "pass --allow-past-start"
        )
    offered, soft_cap = format_units(terms.hard_cap_tokens), format_units(terms.soft_cap_wei)
    click.echo(f"Terms: {offered} NTK at {terms.ntk_per_eth:,} NTK/ETH; soft cap {soft_cap} ETH")
    click.echo(
        f"Presale opens {format_when(terms.stage_starts[0])}; "
        f"the sale ends {format_when(terms.ends_at)}"
    )
    click.echo(f"Treasury {terms.treasury}; allow-list root 0x{root.hex()}")
    confirm_irreversible(
        f"Deploying on {network_name()} from {account.address}: the terms can never change and "
        "the deployer gives up the token's admin role.",
        yes,
    )
    result = deploy_sale(project, account, terms, owner=owner or account, echo=click.echo)
    network = network_name()
    deployments.record(network, "NeuroToken", result.token.address)
    deployments.record(
        network,
        "TokenSale",
        result.sale.address,
        config=str(config_path),
        allowlist=str(tree_path) if tree_path else "",
        allowlist_root="0x" + root.hex(),
    )
    path = deployments.record(network, "TeamVestingWallet", result.team_vesting)
    click.echo(f"Recorded in {path}")


@cli.command(cls=NetworkCommand)
@network_option()
@sale_option
@click.option("--buyer", type=ADDRESS, default=None, help="Also show this address's purchase.")
@friendly
def status(sale_address: str | None, buyer: str | None) -> None:
    """Stage, bonus, raised, sold, soft cap, time left (and a buyer's record)."""
    sale, token = find_sale(project, network_name(), sale_address)
    info = SaleStatus.read(sale, token, now())
    for line in info.lines():
        click.echo(line)
    if buyer:
        paid, tokens = sale.contributionOf(buyer)
        if int(paid) == 0:
            record = "nothing awaiting settlement (no purchase, or already claimed or refunded)"
        else:
            record = f"paid {format_units(int(paid))} ETH for {format_units(int(tokens))} NTK"
        click.echo(f"buyer         {buyer}: {record}")


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@sale_option
@click.argument("amount_eth")
@click.option(
    "--allowlist",
    "allowlist_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The allow-list JSON, for your presale proof (default: the one recorded at deploy).",
)
@yes_option()
@friendly
@signs
def buy(
    account: Any, sale_address: str | None, amount_eth: str, allowlist_file: Path | None, yes: bool
) -> None:
    """Buy NTK with AMOUNT_ETH (e.g. 1.5) at the current stage's bonus."""
    value = parse_eth(amount_eth)
    sale, token = find_sale(project, network_name(), sale_address)
    info = SaleStatus.read(sale, token, now())
    paid_so_far = int(sale.contributionOf(account.address)[0])
    check_purchase(info, account.address, paid_so_far, value)
    if info.stage == Stage.PRESALE and allowlist_file is None:
        recorded = deployments.load(network_name()).get("TokenSale", {})
        if recorded.get("address") == str(sale.address) and recorded.get("allowlist"):
            allowlist_file = Path(recorded["allowlist"])
    proof = proof_for(account.address, allowlist_file) if info.stage == Stage.PRESALE else []
    tokens, accepted = info.terms.quote(info.stage, value, info.tokens_left)
    returned = (
        f"; {format_units(value - accepted)} ETH would come back (hard cap)"
        if accepted < value
        else ""
    )
    click.echo(
        f"{info.stage.label}: {format_units(value)} ETH buys about {format_units(tokens)} NTK "
        f"(bonus {info.terms.bonus_of(info.stage) / 100:g}%){returned}"
    )
    confirm_irreversible(
        "Buying: the ETH stays in the sale until it succeeds (then it goes to the treasury) "
        "or fails (then you can reclaim it).",
        yes,
    )
    receipt = send(sale, "buy", proof, sender=account, value=value)
    [log] = list(sale.TokensPurchased.from_receipt(receipt))
    click.echo(
        f"Bought {format_units(int(log.tokens))} NTK for {format_units(int(log.paidWei))} ETH"
        + (f"; {format_units(int(log.returnedWei))} ETH returned" if int(log.returnedWei) else "")
        + ". Claim them after the sale succeeds: ape run sale claim"
    )


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@sale_option
@yes_option()
@friendly
@signs
def finalize(account: Any, sale_address: str | None, yes: bool) -> None:
    """End the sale (anyone may, once it has ended or sold out)."""
    sale, token = find_sale(project, network_name(), sale_address)
    info = SaleStatus.read(sale, token, now())
    if info.state != SaleState.OPEN:
        raise SaleOperationError(f"the sale was already finalized ({info.state.name.lower()})")
    if not info.finalizable:
        raise SaleOperationError(
            f"the sale runs until {format_when(info.terms.ends_at)} with "
            f"{format_units(info.tokens_left)} NTK left; finalize it when it ends or sells out"
        )
    outcome = (
        "SUCCEED (mint, forward ETH)" if info.soft_cap_reached else "FAIL (buyers get refunds)"
    )
    confirm_irreversible(f"Finalizing will {outcome}, and close minting for ever.", yes)
    send(sale, "finalize", sender=account, extra_types=[project.NeuroToken.contract_type])
    final = SaleState(int(sale.state()))
    click.echo(f"Finalized: {final.name.lower()}")


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@sale_option
@click.option(
    "--buyer", type=ADDRESS, default=None, help="Deliver to this buyer (default: your account)."
)
@friendly
@signs
def claim(account: Any, sale_address: str | None, buyer: str | None) -> None:
    """Claim the NTK bought, after a successful sale."""
    sale, _ = find_sale(project, network_name(), sale_address)
    receipt = send(sale, "claim", buyer or account.address, sender=account)
    [log] = list(sale.TokensClaimed.from_receipt(receipt))
    click.echo(f"Delivered {format_units(int(log.amount))} NTK to {log.buyer}")


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@sale_option
@click.option(
    "--buyer", type=ADDRESS, default=None, help="Refund this buyer (default: your account)."
)
@friendly
@signs
def refund(account: Any, sale_address: str | None, buyer: str | None) -> None:
    """Reclaim the ETH paid, after a failed sale."""
    sale, _ = find_sale(project, network_name(), sale_address)
    receipt = send(sale, "refund", buyer or account.address, sender=account)
    [log] = list(sale.Refunded.from_receipt(receipt))
    click.echo(f"Refunded {format_units(int(log.amountWei))} ETH to {log.buyer}")


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@sale_option
@friendly
@signs
def pause(account: Any, sale_address: str | None) -> None:
    """Pause buying (owner only); claims, refunds and finalization keep working."""
    sale, _ = find_sale(project, network_name(), sale_address)
    send(sale, "pause", sender=account)
    click.echo("Buying paused")


@cli.command(cls=NetworkCommand)
@network_option()
@account_option()
@sale_option
@friendly
@signs
def unpause(account: Any, sale_address: str | None) -> None:
    """Resume buying (owner only)."""
    sale, _ = find_sale(project, network_name(), sale_address)
    send(sale, "unpause", sender=account)
    click.echo("Buying resumed")


@cli.command(cls=NetworkCommand)
@network_option()
@click.option("--buyers", "n_buyers", type=click.IntRange(5), default=50, show_default=True)
@click.option(
    "--outcome",
    type=click.Choice(["both", "success", "failure"]),
    default="both",
    show_default=True,
)
@click.option(
    "--chain-id",
    type=int,
    default=SEPOLIA_CHAIN_ID,
    show_default=True,
    help="Chain id the local anvil takes first (Sepolia's by default; 0 keeps anvil's).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the report here.",
)
@click.option("--seed", type=int, default=2017, show_default=True)
@friendly
def simulate(
    n_buyers: int, outcome: str, chain_id: int, report_path: Path | None, seed: int
) -> None:
    """A whole sale on the local chain, clock moved: presale and ICO weeks, then finalize and
    claim (success) or refund (soft cap missed). Exits 1 if any balance does not reconcile."""
    if chain_id:
        set_chain_id(chain, chain_id)
    runs = {"both": [True, False], "success": [True], "failure": [False]}[outcome]
    reports = []
    for succeed in runs:
        snapshot = chain.snapshot()
        try:
            # Hundreds of transactions: keep ape's per-transaction lines out of the report.
            with logger.at_level("WARNING"):
                reports.append(
                    run_sale(
                        project,
                        chain,
                        accounts,
                        n_buyers,
                        succeed=succeed,
                        echo=click.echo,
                        seed=seed,
                    )
                )
        finally:
            chain.restore(snapshot)
    text = "\n\n".join(r.render() for r in reports)
    click.echo("")
    click.echo(text)
    if report_path:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(text + "\n")
        click.echo(f"\nWrote {report_path}")
    if not all(r.ok for r in reports):
        click.echo("RECONCILIATION FAILED", err=True)
        sys.exit(1)
