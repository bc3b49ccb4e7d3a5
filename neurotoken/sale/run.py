"""A scripted sale on a local chain, reconciled to the wei.

`run_sale` deploys a fresh token and sale, funds `n_buyers` new accounts, puts the presale
buyers on an allow-list, and walks the clock through the presale and the ICO weeks with
purchases in each. It then finalizes and has every buyer claim (success) or be refunded
(failure, by keeping the total under the soft cap). Every step is reconciled against the
contract's formulas and the accounts' balances; the report lists each check, and `ok` is
False if any balance differs by a single wei. It needs a chain whose clock can be moved
(anvil through ape-foundry, or ape's test provider).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from neurotoken.errors import NeurotokenError
from neurotoken.reconcile import Check
from neurotoken.sale.allowlist import Allowlist
from neurotoken.sale.config import DEFAULT_CONFIG, SaleConfig
from neurotoken.sale.deploy import SaleDeployment, deploy_sale
from neurotoken.sale.terms import (
    BPS,
    BUYING_STAGES,
    Allocation,
    SaleState,
    SaleTerms,
    Stage,
    format_units,
    tokens_for,
)

SEPOLIA_CHAIN_ID = 11_155_111
LOCAL_PROVIDERS = ("foundry", "test")
GAS_MONEY_WEI = 10**18  # what each buyer gets beyond its planned purchase


class SaleRunError(NeurotokenError, RuntimeError):
    """The scripted run cannot go ahead; the message says why and what to do."""


def label_address(label: str) -> str:
    """A fixed address for a wallet that never signs, e.g. 'neurotoken:liquidity'."""
    return to_checksum_address(keccak(text=label)[-20:])


@dataclass
class Purchase:
    buyer: str
    stage: Stage
    sent_wei: int
    paid_wei: int
    tokens: int
    returned_wei: int
    bonus_tokens: int


@dataclass
class SaleReport:
    """What happened, and every reconciliation made along the way."""

    title: str
    terms: SaleTerms
    token: str
    sale: str
    team_vesting: str
    chain_id: int
    outcome: SaleState = SaleState.OPEN
    purchases: list[Purchase] = field(default_factory=list)
    sold_out: bool = False
    allocations: dict[Allocation, int] = field(default_factory=dict)
    treasury_received_wei: int = 0
    claims: dict[str, int] = field(default_factory=dict)
    refunds: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def summary(self) -> str:
        exact = len(self.checks) - len(self.failures)
        tail = f", {len(self.failures)} MISMATCHED:" if self.failures else ""
        return f"reconciliation: {exact}/{len(self.checks)} checks exact to the wei{tail}"

    @property
    def wei_raised(self) -> int:
        return sum(p.paid_wei for p in self.purchases)

    @property
    def tokens_sold(self) -> int:
        return sum(p.tokens for p in self.purchases)

    def check(self, name: str, expected: int, actual: int) -> None:
        self.checks.append(Check(name, int(expected), int(actual)))

    def render(self) -> str:
        """The report as Markdown-ish text: stages, allocations, settlement, reconciliation."""
        t = self.terms
        lines = [
            f"## {self.title}",
            "",
            f"chain id {self.chain_id}; token {self.token}; sale {self.sale}",
            f"terms: {t.ntk_per_eth:,} NTK/ETH, hard cap {format_units(t.hard_cap_tokens)} NTK, "
            f"soft cap {format_units(t.soft_cap_wei)} ETH, contribution "
            f"{format_units(t.min_contribution_wei)}-{format_units(t.max_contribution_wei)} ETH",
            "",
            "| stage | bonus | buyers | ETH | NTK | of which bonus NTK | ETH returned |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for stage in BUYING_STAGES:
            rows = [p for p in self.purchases if p.stage == stage]
            lines.append(_stage_row(stage.label, f"{t.bonus_of(stage) / 100:g}%", rows))
        lines.append(_stage_row("**total**", "", self.purchases))
        ended = "sold out" if self.sold_out else "ended on time"
        lines += ["", f"outcome: **{self.outcome.name.lower()}** ({ended})", ""]
        if self.outcome == SaleState.SUCCEEDED:
            supply = self.tokens_sold + sum(self.allocations.values())
            lines += ["| holder | NTK | share of supply |", "| --- | ---: | ---: |"]
            lines.append(
                f"| buyers | {format_units(self.tokens_sold)} | {_pct(self.tokens_sold, supply)} |"
            )
            for kind, amount in self.allocations.items():
                lines.append(
                    f"| {kind.name.lower()} | {format_units(amount)} | {_pct(amount, supply)} |"
                )
            lines += [
                f"| **supply** | {format_units(supply)} | 100% |",
                "",
                f"treasury received {format_units(self.treasury_received_wei)} ETH; "
                f"{len(self.claims)} buyers claimed {format_units(sum(self.claims.values()))} NTK",
            ]
        else:
            refunded = format_units(sum(self.refunds.values()))
            lines.append(f"{len(self.refunds)} buyers refunded {refunded} ETH; no token was minted")
        bad = self.failures
        lines += ["", "(amounts shown to 6 decimals, cut not rounded; the checks are to the wei)"]
        lines += [self.summary()]
        lines += [f"  - {c.name}: expected {c.expected}, got {c.actual}" for c in bad]
        return "\n".join(lines)


def _stage_row(label: str, bonus: str, rows: list[Purchase]) -> str:
    cells = [
        label,
        bonus,
        str(len({p.buyer for p in rows})),
        format_units(sum(p.paid_wei for p in rows)),
        format_units(sum(p.tokens for p in rows)),
        format_units(sum(p.bonus_tokens for p in rows)),
        format_units(sum(p.returned_wei for p in rows)),
    ]
    return "| " + " | ".join(cells) + " |"


def _pct(part: int, whole: int) -> str:
    return f"{part * 100 / whole:.4f}%" if whole else "n/a"


def ensure_local_clock(chain: Any) -> None:
    name = getattr(chain.provider, "name", "?")
    if name not in LOCAL_PROVIDERS:
        raise SaleRunError(
            f"the scripted sale moves the chain's clock, which provider '{name}' cannot do; "
            "run it on a local chain: --network ethereum:local:foundry"
        )


def set_chain_id(chain: Any, chain_id: int) -> None:
    """Makes the local anvil report `chain_id` (e.g. Sepolia's 11155111), signatures included."""
    if chain.chain_id == chain_id:
        return
    if getattr(chain.provider, "name", "") != "foundry":
        raise SaleRunError(
            f"only a local anvil (ethereum:local:foundry) can take chain id {chain_id}; "
            f"this network is {chain.chain_id}"
        )
    chain.provider.make_request("anvil_setChainId", [chain_id])
    # ape caches the chain id in the provider and in the chain manager; both must forget it.
    chain.provider.cached_chain_id = chain_id
    cache = getattr(chain, "_chain_id_cache", None)
    if isinstance(cache, dict):
        cache.clear()
    if chain.chain_id != chain_id:
        raise SaleRunError(f"anvil kept chain id {chain.chain_id} instead of {chain_id}")


@dataclass
class _Plan:
    buyer: Any
    stage: Stage
    sent_wei: int


def _plan(terms: SaleTerms, buyers: list[Any], succeed: bool, rng: random.Random) -> list[_Plan]:
    """Who buys when and how much: spread over the five stages in order, presale first.

    Success: enough to reach the soft cap; if the buyers can afford it, enough that the last
    purchase crosses the hard cap (and is partly filled). Failure: under the soft cap.
    """
    n = len(buyers)
    if n < len(BUYING_STAGES):
        raise SaleRunError(f"need at least {len(BUYING_STAGES)} buyers (one per stage), got {n}")
    stages = [BUYING_STAGES[i * len(BUYING_STAGES) // n] for i in range(n)]
    weights = [rng.uniform(0.5, 1.5) for _ in range(n)]
    lo, hi = terms.min_contribution_wei, terms.max_contribution_wei

    def amounts(scale: float) -> list[int]:
        # Odd wei amounts on purpose: the reconciliation must hold to the last wei.
        return [min(hi, max(lo, int(w * scale) + rng.randrange(10**6))) for w in weights]

    def scaled(target: int, value: Callable[[list[int]], int]) -> list[int]:
        """The amounts whose `value` comes closest to `target` from below."""
        low, high = 0.0, float(hi) * 2
        for _ in range(80):
            mid = (low + high) / 2
            state = rng.getstate()
            if value(amounts(mid)) <= target:
                low = mid
            else:
                high = mid
            rng.setstate(state)
        return amounts(low)

    if not succeed:
        if n * lo >= terms.soft_cap_wei:
            raise SaleRunError(
                f"{n} buyers at the {format_units(lo)} ETH minimum already reach the soft cap"
            )
        under = scaled(terms.soft_cap_wei * 6 // 10, sum)
        return [_Plan(b, s, a) for b, s, a in zip(buyers, stages, under, strict=True)]

    if n * hi < terms.soft_cap_wei:
        raise SaleRunError(
            f"{n} buyers at the {format_units(hi)} ETH maximum cannot reach the "
            f"{format_units(terms.soft_cap_wei)} ETH soft cap: use more buyers"
        )
    rates = [terms.ntk_per_eth * (BPS + terms.bonus_of(s)) for s in stages]

    def tokens(sent: list[int]) -> int:
        return sum(a * r // BPS for a, r in zip(sent, rates, strict=True))

    target_first = terms.hard_cap_tokens * 97 // 100
    sent: list[int] = []
    if tokens([hi] * (n - 1) + [0]) >= target_first:
        # Sell out: the others buy about 97% of the cap; the last buyer crosses it, sending 20%
        # more than the rest costs, and gets the excess back.
        first = scaled(target_first, lambda s: tokens([*s[:-1], 0]))[:-1]
        left = terms.hard_cap_tokens - tokens([*first, 0])
        needed = -(-left * BPS // rates[-1])
        if needed <= hi and sum(first) + needed >= terms.soft_cap_wei:
            sent = [*first, max(lo, needed * 6 // 5)]
    if not sent:
        # Reach the soft cap with room to spare and end on time.
        sent = scaled(min(terms.soft_cap_wei * 3 // 2, n * hi), sum)
        if sum(sent) < terms.soft_cap_wei or tokens(sent) >= terms.hard_cap_tokens:
            raise SaleRunError(
                "could not plan purchases that reach the soft cap without selling out"
            )
    return [_Plan(b, s, a) for b, s, a in zip(buyers, stages, sent, strict=True)]


def default_terms(chain: Any, operator: Any, config: SaleConfig | None = None) -> SaleTerms:
    """The config's terms (default: config/sale.toml), starting an hour from now, with fixed
    labelled wallets so that every balance in the report is the sale's doing."""
    config = config or SaleConfig.load(DEFAULT_CONFIG)
    terms = config.to_terms(
        now=int(chain.pending_timestamp),
        allowlist_root=b"\x00" * 32,
        default_wallet=operator.address,
    )
    wallets = {
        "treasury": label_address("neurotoken:sale:treasury"),
        "liquidity_wallet": label_address("neurotoken:sale:liquidity"),
        "partners_wallet": label_address("neurotoken:sale:partners"),
        "researchers_wallet": label_address("neurotoken:sale:researchers"),
        "team_beneficiary": label_address("neurotoken:sale:team"),
    }
    for name, address in wallets.items():
        if getattr(terms, name) == operator.address:
            terms = replace(terms, **{name: address})  # type: ignore[arg-type]
    return terms


def _fund(chain: Any, operator: Any, account: Any, amount: int) -> None:
    """Makes sure `account` holds at least `amount` wei (a richer one is left alone)."""
    if int(account.balance) >= amount:
        return
    if hasattr(chain.provider, "set_balance"):
        chain.provider.set_balance(account.address, amount)
    else:
        operator.transfer(account, amount)


def run_sale(
    project: Any,
    chain: Any,
    accounts: Any,
    n_buyers: int = 10,
    succeed: bool = True,
    echo: Callable[[str], None] = print,
    *,
    terms: SaleTerms | None = None,
    seed: int = 2017,
    operator: Any = None,
    buyers: Sequence[Any] = (),
) -> SaleReport:
    """Runs a whole sale on a local chain and returns its reconciled report.

    `terms` defaults to config/sale.toml's (60M NTK at 1,000 NTK/ETH, soft cap 5,000 ETH). The
    operator (default: the first test account) deploys and finalizes; the buyers are `buyers`
    (accounts that will use their NTK afterwards, e.g. the demo's client and farms) followed
    by new accounts up to `n_buyers`. Raises SaleRunError when the chain's clock cannot be
    moved or the plan is impossible with these terms; returns a report whose `ok` says
    whether everything reconciled.
    """
    ensure_local_clock(chain)
    rng = random.Random(seed)
    # `ape.accounts` in scripts, the `accounts` fixture (already the test accounts) in tests.
    test_accounts = getattr(accounts, "test_accounts", accounts)
    operator = operator or test_accounts[0]
    base = terms or default_terms(chain, operator)

    if len(buyers) > n_buyers:
        raise SaleRunError(f"{len(buyers)} named buyers, but only {n_buyers} buyers in all")
    everyone = [*buyers] + [
        test_accounts.generate_test_account() for _ in range(n_buyers - len(buyers))
    ]
    plan = _plan(base, everyone, succeed, rng)
    presale = [p.buyer.address for p in plan if p.stage == Stage.PRESALE]
    # The allow-list holds the presale buyers and some who never show up.
    allowlist = Allowlist.build(
        presale + [label_address(f"neurotoken:sale:listed:{i}") for i in range(7)]
    )
    base = replace(base, allowlist_root=allowlist.root)

    title = f"Scripted sale: {n_buyers} buyers, {'success' if succeed else 'soft cap missed'}"
    echo(f"== {title}")
    deployment = deploy_sale(project, operator, base, echo=lambda m: echo(f"   {m}"))
    report = SaleReport(
        title=title,
        terms=deployment.terms,
        token=str(deployment.token.address),
        sale=str(deployment.sale.address),
        team_vesting=deployment.team_vesting,
        chain_id=int(chain.chain_id),
    )
    for p in plan:
        _fund(chain, operator, p.buyer, p.sent_wei + GAS_MONEY_WEI)

    _buy_all(report, deployment, chain, plan, allowlist, echo)
    _finalize(report, deployment, chain, operator, echo)
    if report.outcome == SaleState.SUCCEEDED:
        _claim_all(report, deployment, [p.buyer for p in plan], echo)
    else:
        _refund_all(report, deployment, [p.buyer for p in plan], echo)
    echo(f"   {report.summary()}")
    return report


def _fee(receipt: Any) -> int:
    return int(receipt.gas_used) * int(receipt.gas_price)


def _buy_all(
    report: SaleReport,
    d: SaleDeployment,
    chain: Any,
    plan: list[_Plan],
    allowlist: Allowlist,
    echo: Callable[[str], None],
) -> None:
    terms, sale = d.terms, d.sale
    sold = 0
    for stage in BUYING_STAGES:
        batch = [p for p in plan if p.stage == stage]
        if not batch:
            continue
        chain.mine(timestamp=terms.stage_start(stage) + 3600)
        report.check(f"stage() is {stage.label}", stage, sale.stage())
        for p in batch:
            proof = allowlist.proof(p.buyer.address) if stage == Stage.PRESALE else []
            before = int(p.buyer.balance)
            receipt = sale.buy(proof, sender=p.buyer, value=p.sent_wei)
            [log] = list(sale.TokensPurchased.from_receipt(receipt))
            tokens, accepted = terms.quote(stage, p.sent_wei, terms.hard_cap_tokens - sold)
            sold += tokens
            who = p.buyer.address[:10]
            report.check(f"{who} tokens (formula)", tokens, log.tokens)
            report.check(f"{who} ETH kept (formula)", accepted, log.paidWei)
            report.check(f"{who} ETH returned", p.sent_wei - accepted, log.returnedWei)
            report.check(
                f"{who} ETH balance after buying",
                before - accepted - _fee(receipt),
                p.buyer.balance,
            )
            report.purchases.append(
                Purchase(
                    buyer=p.buyer.address,
                    stage=stage,
                    sent_wei=p.sent_wei,
                    paid_wei=int(log.paidWei),
                    tokens=int(log.tokens),
                    returned_wei=int(log.returnedWei),
                    bonus_tokens=max(
                        0, int(log.tokens) - tokens_for(int(log.paidWei), terms.ntk_per_eth, 0)
                    ),
                )
            )
        sent = format_units(sum(p.sent_wei for p in batch))
        echo(
            f"   {stage.label}: {len(batch)} buyers, {sent} ETH sent, {format_units(sold)} NTK sold"
        )
    report.sold_out = sold == terms.hard_cap_tokens
    report.check("weiRaised", report.wei_raised, sale.weiRaised())
    report.check("tokensSold", report.tokens_sold, sale.tokensSold())
    report.check("sale ETH balance = ETH raised", report.wei_raised, sale.balance)
    report.check("no token minted before finalization", 0, d.token.totalSupply())


def _finalize(
    report: SaleReport, d: SaleDeployment, chain: Any, operator: Any, echo: Callable[[str], None]
) -> None:
    terms, sale, token = d.terms, d.sale, d.token
    if not report.sold_out:
        chain.mine(timestamp=terms.ends_at + 60)
    treasury_before = int(chain.get_balance(terms.treasury))
    receipt = sale.finalize(sender=operator)
    report.outcome = SaleState(int(sale.state()))
    expected = SaleState.SUCCEEDED if report.wei_raised >= terms.soft_cap_wei else SaleState.FAILED
    report.check("outcome (soft cap rule)", expected, report.outcome)
    report.check("minting closed", 1, int(token.mintingFinished()))
    if report.outcome == SaleState.SUCCEEDED:
        report.allocations = terms.allocations(report.tokens_sold)
        wallets = terms.allocation_wallets(d.team_vesting)
        minted = {
            Allocation(int(log.allocation)): int(log.amount)
            for log in sale.AllocationMinted.from_receipt(receipt)
        }
        for kind, amount in report.allocations.items():
            report.check(f"{kind.name.lower()} allocation minted", amount, minted.get(kind, 0))
            report.check(
                f"{kind.name.lower()} wallet balance", amount, token.balanceOf(wallets[kind])
            )
        report.treasury_received_wei = int(chain.get_balance(terms.treasury)) - treasury_before
        report.check(
            "treasury received the ETH raised", report.wei_raised, report.treasury_received_wei
        )
        report.check("sale ETH balance after forwarding", 0, sale.balance)
        report.check("sale holds the tokens sold", report.tokens_sold, token.balanceOf(sale))
        supply = report.tokens_sold + sum(report.allocations.values())
        report.check("total supply", supply, token.totalSupply())
        report.check("buyers hold at least 60%", 1, int(report.tokens_sold * BPS >= supply * 6000))
    else:
        report.check("nothing minted on failure", 0, token.totalSupply())
        report.check("ETH kept for refunds", report.wei_raised, sale.balance)
    echo(f"   finalized: {report.outcome.name.lower()}")


def _claim_all(
    report: SaleReport, d: SaleDeployment, buyers: list[Any], echo: Callable[[str], None]
) -> None:
    sale, token = d.sale, d.token
    entitled: dict[str, int] = {}
    for p in report.purchases:
        entitled[p.buyer] = entitled.get(p.buyer, 0) + p.tokens
    for buyer in buyers:
        if buyer.address not in entitled:
            continue
        receipt = sale.claim(buyer, sender=buyer)
        [log] = list(sale.TokensClaimed.from_receipt(receipt))
        report.claims[buyer.address] = int(log.amount)
        report.check(
            f"{buyer.address[:10]} NTK claimed", entitled[buyer.address], token.balanceOf(buyer)
        )
    report.check("claims add up to tokens sold", report.tokens_sold, sum(report.claims.values()))
    report.check("sale NTK balance after claims", 0, token.balanceOf(sale))
    echo(f"   {len(report.claims)} buyers claimed {format_units(sum(report.claims.values()))} NTK")


def _refund_all(
    report: SaleReport, d: SaleDeployment, buyers: list[Any], echo: Callable[[str], None]
) -> None:
    sale = d.sale
    paid: dict[str, int] = {}
    for p in report.purchases:
        paid[p.buyer] = paid.get(p.buyer, 0) + p.paid_wei
    for buyer in buyers:
        if buyer.address not in paid:
            continue
        before = int(buyer.balance)
        receipt = sale.refund(buyer, sender=buyer)
        [log] = list(sale.Refunded.from_receipt(receipt))
        report.refunds[buyer.address] = int(log.amountWei)
        report.check(f"{buyer.address[:10]} refunded exactly", paid[buyer.address], log.amountWei)
        report.check(
            f"{buyer.address[:10]} ETH balance after refund",
            before + paid[buyer.address] - _fee(receipt),
            buyer.balance,
        )
    report.check("refunds add up to ETH raised", report.wei_raised, sum(report.refunds.values()))
    report.check("sale ETH balance after refunds", 0, sale.balance)
    report.check("no token ever minted", 0, d.token.totalSupply())
    echo(
        f"   {len(report.refunds)} buyers refunded {format_units(sum(report.refunds.values()))} ETH"
    )
