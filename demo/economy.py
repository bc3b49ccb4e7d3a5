"""One economy for the whole demo: one chain, one NTK, one market, one cast of accounts.

The NTK that buyers claim from the sale is what changes hands in the token stage, what the
client escrows for jobs, what the farms stake and earn, and what the market's fee is paid in:
no stage mints. The cast are ape's test accounts (anvil's unlocked dev accounts, so the oracle
stage's processes and web3 helpers can act for them too):

| index | role |
| ---: | --- |
| 0 | operator: deploys the sale and the market, owns the market's fees |
| 1 | client: an AI lab that buys NTK in the presale and pays for GPU jobs |
| 2 | farm A: buys NTK, stakes it, computes honestly |
| 3 | farm B: buys NTK, stakes it, lets one job lapse and cheats on another |
| 4 | farm C: buys NTK and runs the provider agent |
| 5-7 | the three oracles (two signatures settle a job) |
| 8 | a stranger |
| 9 | the treasury the market's fees go to |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.report import DemoReport
from neurotoken.chain.explain import explain_error
from neurotoken.chain.reverts import ErrorDecoder
from neurotoken.market.job import OnChainJob
from neurotoken.market.ops import market_reader
from neurotoken.market.states import JobState

Echo = Callable[[str], None]
REFUND_EVENTS = ("JobRejected", "JobDefaulted", "JobCancelled", "JobExpired", "JobLapsed")
"""The market's events that return a job's payment to its client (`refundNtk`)."""


@dataclass(frozen=True)
class Cast:
    """The accounts playing each role (ape test accounts; see the module docstring)."""

    operator: Any
    client: Any
    farm_a: Any
    farm_b: Any
    farm_c: Any
    oracles: tuple[Any, Any, Any]
    stranger: Any
    treasury: Any

    @classmethod
    def of(cls, test_accounts: Any) -> Cast:
        t = [test_accounts[i] for i in range(10)]
        return cls(t[0], t[1], t[2], t[3], t[4], (t[5], t[6], t[7]), t[8], t[9])

    @property
    def farms(self) -> tuple[Any, Any, Any]:
        return (self.farm_a, self.farm_b, self.farm_c)

    @property
    def buyers(self) -> list[Any]:
        """Who buys NTK in the sale by name (the sale adds anonymous buyers)."""
        return [self.client, *self.farms]


@dataclass
class Economy:
    """What the stages share. The sale stage sets `token`; the market stage sets `market`."""

    project: Any
    chain: Any
    test_accounts: Any
    """ape's test accounts (`ape.accounts.test_accounts`, or the `accounts` test fixture)."""
    cast: Cast
    report: DemoReport
    echo: Echo = print
    out_dir: Path = Path("demo-output")
    """Where the stages write their images and the run its report."""
    token: Any = None
    sale: Any = None
    market: Any = None
    token_block: int = 0
    """The block the token was deployed in: where its Transfer history starts."""
    market_block: int = 0
    client_ntk_at_market: int = 0
    """The client's NTK when the market opened; the ledger reconciles its jobs against it."""
    holders: set[str] = field(default_factory=set)
    """Every address that ever held NTK, gathered by `ledger_stage` from Transfer logs."""

    @classmethod
    def connect(cls, echo: Echo = print, out_dir: Path = Path("demo-output")) -> Economy:
        """The economy on the chain ape is connected to (inside `ape run` or `ape test`)."""
        from ape import accounts, chain, project

        return cls.of(project, chain, accounts.test_accounts, echo, out_dir)

    @classmethod
    def of(
        cls,
        project: Any,
        chain: Any,
        test_accounts: Any,
        echo: Echo = print,
        out_dir: Path = Path("demo-output"),
    ) -> Economy:
        report = DemoReport(int(chain.chain_id))
        cast = Cast.of(test_accounts)
        return cls(project, chain, test_accounts, cast, report, echo, out_dir)

    def need_token(self) -> Any:
        if self.token is None:
            raise RuntimeError("no NTK yet: the sale stage deploys it and must run first")
        return self.token

    def need_market(self) -> Any:
        if self.market is None:
            raise RuntimeError("no market yet: the market stage deploys it and must run first")
        return self.market

    def ntk(self, who: Any) -> int:
        return int(self.need_token().balanceOf(who))


def approx(wei: int) -> str:
    """An NTK amount to two decimals, for balances (the checks are exact to the wei)."""
    return f"{wei / 10**18:,.2f} NTK"


def run_stages(economy: Economy, stages: list[Callable[[Economy], object]]) -> DemoReport:
    """Runs `stages` in order; a stage that raises is recorded (type and message) and ends the
    run, since later stages build on it. Returns the report (see `DemoReport.ok`)."""
    for stage in stages:
        before = len(economy.report.stages)
        try:
            stage(economy)
        except Exception as exc:  # the report says which stage stopped and why
            if len(economy.report.stages) == before:  # it stopped before opening its report
                economy.report.stage(stage.__name__.removesuffix("_stage"))
            current = economy.report.stages[-1]
            current.error = f"{type(exc).__name__}: {_describe(economy, exc)}"
            economy.echo(f"stage {current.name} stopped: {current.error}")
            break
        economy.echo("")
    return economy.report


def _describe(e: Economy, exc: Exception) -> str:
    """The exception's message; a revert of any of the three contracts as its sentence (ape
    decodes only the called contract's own errors, not the token's beneath the market)."""
    p = e.project
    if p is None:
        return str(exc)
    decoder = ErrorDecoder.from_contract_types(
        p.NeuroToken.contract_type, p.TokenSale.contract_type, p.ComputeMarket.contract_type
    )
    for data in (getattr(exc, "revert_message", None), *exc.args[:1]):
        decoded = decoder.decode(data)
        if decoded is not None:
            return explain_error(decoded.name, decoded.args) or str(decoded)
    return str(exc)


def ledger_stage(economy: Economy) -> None:
    """The economy's books at the end: every NTK accounted for, the market solvent, every
    party's balance reconciled with the events that moved it."""
    e, token, market = economy, economy.need_token(), economy.need_market()
    r = e.report.stage("ledger")
    e.echo("== The books: one NTK supply from the sale to the last settlement")
    transfers = list(token.Transfer.range(e.token_block, e.chain.blocks.head.number + 1))
    zero = "0x" + "00" * 20
    minted = sum(int(t["value"]) for t in transfers if str(t["from"]) == zero)
    burned = sum(int(t["value"]) for t in transfers if str(t["to"]) == zero)
    e.holders = {str(t["to"]) for t in transfers if str(t["to"]) != zero}
    supply = int(token.totalSupply())
    r.figures.update(
        minted_ntk=minted, burned_ntk=burned, supply_ntk=supply, holders=len(e.holders)
    )
    r.check("supply = minted by the sale - burned since", minted - burned, supply)
    r.check("every holder's balance adds up to the supply", supply,
            sum(int(token.balanceOf(h)) for h in e.holders))  # fmt: skip
    sold = int(e.sale.tokensSold())
    r.check("minted = tokens sold + allocations (the sale's only mint)",
            minted, sold + sum(_allocations(e)))  # fmt: skip
    reported = sum(int(s.figures.get("burned_ntk", 0)) for s in e.report.stages[:-1])
    r.check("burns the stages reported = burns on chain", reported, burned)

    # The market holds exactly what it owes: stakes, earnings, fees and open jobs.
    providers = {str(p["provider"]) for p in _logs(market.ProviderRegistered, e)}
    owed_providers = 0
    for p in providers:
        acct = market.getProvider(p)
        owed_providers += int(acct.stakeNtk) + int(acct.earnedNtk) + int(acct.unbondingNtk)
    # The market stores only a digest per open job; each job's record comes from its events.
    records = market_reader(market, e.market_block)
    open_jobs = 0
    for job_id in range(1, int(market.nextJobId())):
        job = records.get(job_id)
        if job.is_open:  # posted (payment escrowed), accepted or submitted (collateral locked)
            locked = job.collateral_ntk if job.state != JobState.POSTED else 0
            open_jobs += job.payment_ntk + locked
    fees = int(market.feesNtk())
    r.check("market balance = stakes + earnings + fees + open jobs",
            owed_providers + fees + open_jobs, int(token.balanceOf(market)))  # fmt: skip

    # The client: every job it escrowed is paid for, or refunded (with compensation when the
    # provider failed it); its balance moved by exactly that since the market opened.
    client = e.cast.client.address
    posted = [
        OnChainJob.from_record(int(j["jobId"]), record_words(j["job"]))
        for j in _logs(market.JobPosted, e)
        if str(j["client"]) == client
    ]
    escrowed = sum(j.payment_ntk for j in posted)
    mine = {j.job_id for j in posted}
    spent = sum(
        int(j["providerNtk"]) + int(j["feeNtk"])
        for j in _logs(market.JobPaid, e)
        if int(j["jobId"]) in mine
    )
    refunds = compensation = 0
    for name in REFUND_EVENTS:
        for ev in _logs(getattr(market, name), e):
            if int(ev["jobId"]) in mine:
                refunds += int(ev["refundNtk"])
                compensation += int(ev.event_arguments.get("compensationNtk", 0))
    r.figures.update(
        client_escrowed_ntk=escrowed,
        client_paid_ntk=spent,
        client_refunded_ntk=refunds,
        client_compensated_ntk=compensation,
    )
    r.check("client: escrowed = paid for accepted work + refunded payments",
            escrowed, spent + refunds - compensation)  # fmt: skip
    r.check("client: balance = balance when the market opened - escrowed + refunded",
            e.client_ntk_at_market - escrowed + refunds, e.ntk(e.cast.client))  # fmt: skip
    fee_total = sum(int(j["feeNtk"]) for j in _logs(market.JobPaid, e))
    withdrawn = sum(int(w["amountNtk"]) for w in _logs(market.FeesWithdrawn, e))
    r.check("fees charged = fees withdrawn + fees held", fee_total, withdrawn + fees)
    r.check("treasury holds the withdrawn fees", withdrawn, e.ntk(e.cast.treasury))
    r.figures.update(fees_charged_ntk=fee_total, fees_to_treasury_ntk=withdrawn)
    for name, who in (("client", e.cast.client), ("farm A", e.cast.farm_a),
                      ("farm B", e.cast.farm_b), ("farm C", e.cast.farm_c),
                      ("treasury", e.cast.treasury)):  # fmt: skip
        r.figures[f"{name.replace(' ', '_').lower()}_ntk"] = e.ntk(who)
        e.echo(f"  {name:<9}{approx(e.ntk(who)):>22}")
    e.echo(
        f"supply {approx(supply)} = {approx(minted)} minted by the sale - {approx(burned)} "
        f"burned, held by {len(e.holders)} addresses; the market holds what it owes"
    )
    e.echo(e.report.summary())


def record_words(raw: Any) -> list[Any]:
    """JobPosted's `job` (an IComputeMarket.Job struct, as ape decodes it) as its five words."""
    keys = ("clientAndPayment", "providerAndCollateral", "terms", "specHash", "resultRoot")
    return [raw[k] for k in keys] if isinstance(raw, Mapping) else list(raw)


def _logs(event: Any, e: Economy) -> list[Any]:
    """The market's `event` logs from its deployment to the head."""
    return list(event.range(e.market_block, int(e.chain.blocks.head.number) + 1))


def _allocations(e: Economy) -> list[int]:
    """What the sale minted beside the buyers' tokens (team vesting wallet and wallets)."""
    sale = e.sale
    return [
        int(a["amount"])
        for a in sale.AllocationMinted.range(e.token_block, e.chain.blocks.head.number + 1)
    ]
