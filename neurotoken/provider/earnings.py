"""What a provider has earned, lost and withdrawn, from the market's events alone.

Every figure comes from logs indexed by the provider's address (JobAccepted, JobPaid,
JobRejected, JobDefaulted, JobLapsed, EarningsWithdrawn, ProviderRegistered, StakeAdded,
UnbondWithdrawn) plus the account as it stands now; the agent's own state file is not
consulted, so the report is right even for jobs taken by another installation.

- gross: what paid jobs' clients paid (provider share + protocol fee);
- fees: the protocol's cut of that; net: the provider's share, credited to `earned`;
- slashed: collateral lost on rejected or defaulted jobs (compensation to the client plus
  the part burned).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from neurotoken.provider.chain import MarketClient, ProviderAccount
from neurotoken.units import format_ntk


@dataclass
class JobEarning:
    job_id: int
    outcome: str
    """'paid', 'rejected', 'defaulted', 'lapsed' or 'open' (accepted, not settled)."""
    collateral_ntk: int = 0
    gross_ntk: int = 0
    fee_ntk: int = 0
    net_ntk: int = 0
    slashed_ntk: int = 0


@dataclass
class EarningsReport:
    provider: str
    from_block: int
    to_block: int
    jobs: list[JobEarning] = field(default_factory=list)
    withdrawn_ntk: int = 0
    staked_ntk: int = 0
    unbonded_ntk: int = 0
    account: ProviderAccount | None = None

    def count(self, outcome: str) -> int:
        return sum(1 for j in self.jobs if j.outcome == outcome)

    @property
    def gross_ntk(self) -> int:
        return sum(j.gross_ntk for j in self.jobs)

    @property
    def fees_ntk(self) -> int:
        return sum(j.fee_ntk for j in self.jobs)

    @property
    def net_ntk(self) -> int:
        return sum(j.net_ntk for j in self.jobs)

    @property
    def slashed_ntk(self) -> int:
        return sum(j.slashed_ntk for j in self.jobs)

    def lines(self) -> list[str]:
        out = [
            f"provider {self.provider}, blocks {self.from_block}..{self.to_block}",
            f"{'job':>6}  {'outcome':<10}{'gross':>16}{'fee':>14}{'net':>16}{'slashed':>14}",
        ]
        for j in self.jobs:
            out.append(
                f"{j.job_id:>6}  {j.outcome:<10}{format_ntk(j.gross_ntk):>16}"
                f"{format_ntk(j.fee_ntk):>14}{format_ntk(j.net_ntk):>16}"
                f"{format_ntk(j.slashed_ntk):>14}"
            )
        out += [
            f"jobs: {self.count('paid')} paid, {self.count('rejected')} rejected, "
            f"{self.count('defaulted')} defaulted, {self.count('lapsed')} lapsed, "
            f"{self.count('open')} open",
            f"gross paid by clients {format_ntk(self.gross_ntk)}; protocol fees "
            f"{format_ntk(self.fees_ntk)}; net earned {format_ntk(self.net_ntk)}",
            f"slashed {format_ntk(self.slashed_ntk)}; earnings withdrawn "
            f"{format_ntk(self.withdrawn_ntk)}",
        ]
        if self.account is not None:
            out.append(
                f"now: withdrawable {format_ntk(self.account.earned_ntk)}, free stake "
                f"{format_ntk(self.account.stake_ntk)}, unbonding "
                f"{format_ntk(self.account.unbonding_ntk)}"
            )
        return out

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data.update(
            gross_ntk=self.gross_ntk,
            fees_ntk=self.fees_ntk,
            net_ntk=self.net_ntk,
            slashed_ntk=self.slashed_ntk,
        )
        return json.dumps(data, indent=2, sort_keys=True)


def collect_earnings(
    client: MarketClient,
    provider: str | None = None,
    from_block: int = 0,
    to_block: int | None = None,
) -> EarningsReport:
    """The earnings report of `provider` (default: the client's account) over a block range."""
    who = provider or client.address
    end = client.head() if to_block is None else to_block
    report = EarningsReport(who, from_block, end)
    by_provider = {"provider": who}
    jobs: dict[int, JobEarning] = {}

    def logs(event: str) -> list[dict[str, Any]]:
        return [dict(log["args"]) for log in client.logs(event, from_block, end, by_provider)]

    for args in logs("JobAccepted"):
        job_id = int(args["jobId"])
        jobs[job_id] = JobEarning(job_id, "open", collateral_ntk=int(args["collateralNtk"]))
    for args in logs("JobPaid"):
        job = jobs.setdefault(int(args["jobId"]), JobEarning(int(args["jobId"]), "open"))
        job.outcome = "paid"
        job.net_ntk = int(args["providerNtk"])
        job.fee_ntk = int(args["feeNtk"])
        job.gross_ntk = job.net_ntk + job.fee_ntk
    for event, outcome in (("JobRejected", "rejected"), ("JobDefaulted", "defaulted")):
        for args in logs(event):
            job = jobs.setdefault(int(args["jobId"]), JobEarning(int(args["jobId"]), "open"))
            job.outcome = outcome
            job.slashed_ntk = int(args["compensationNtk"]) + int(args["burnedNtk"])
    for args in logs("JobLapsed"):
        jobs.setdefault(
            int(args["jobId"]), JobEarning(int(args["jobId"]), "open")
        ).outcome = "lapsed"
    report.jobs = [jobs[k] for k in sorted(jobs)]
    report.withdrawn_ntk = sum(int(a["amountNtk"]) for a in logs("EarningsWithdrawn"))
    report.staked_ntk = sum(int(a["stakeNtk"]) for a in logs("ProviderRegistered")) + sum(
        int(a["amountNtk"]) for a in logs("StakeAdded")
    )
    report.unbonded_ntk = sum(int(a["amountNtk"]) for a in logs("UnbondWithdrawn"))
    report.account = client.get_provider(who)
    return report
