"""What the operator CLI knows about a live sale: its status, checks before a purchase, and
plain-language explanations of the sale's custom errors.

Every user mistake ends as a `SaleOperationError` whose message says what was wrong and what
to do; the CLI prints it without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurotoken.chain import deployments
from neurotoken.errors import NeurotokenError
from neurotoken.sale.allowlist import Allowlist, AllowlistError
from neurotoken.sale.terms import BUYING_STAGES, SaleState, SaleTerms, Stage, format_units
from neurotoken.units import format_duration, format_when


class SaleOperationError(NeurotokenError, RuntimeError):
    """A sale operation cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class SaleStatus:
    """A snapshot of the sale, read from the chain."""

    address: str
    terms: SaleTerms
    now: int
    stage: Stage
    state: SaleState
    paused: bool
    wei_raised: int
    tokens_sold: int
    minter: bool
    minting_finished: bool

    @classmethod
    def read(cls, sale: Any, token: Any, now: int) -> SaleStatus:
        terms = SaleTerms.from_chain(sale.terms())
        return cls(
            address=str(sale.address),
            terms=terms,
            now=now,
            stage=Stage(int(sale.stage())),
            state=SaleState(int(sale.state())),
            paused=bool(sale.paused()),
            wei_raised=int(sale.weiRaised()),
            tokens_sold=int(sale.tokensSold()),
            minter=bool(token.hasRole(token.MINTER_ROLE(), sale.address)),
            minting_finished=bool(token.mintingFinished()),
        )

    @property
    def soft_cap_reached(self) -> bool:
        return self.wei_raised >= self.terms.soft_cap_wei

    @property
    def tokens_left(self) -> int:
        return self.terms.hard_cap_tokens - self.tokens_sold

    @property
    def finalizable(self) -> bool:
        return self.state == SaleState.OPEN and (self.stage == Stage.ENDED or self.tokens_left == 0)

    def lines(self) -> list[str]:
        t = self.terms
        paused = ", buying PAUSED" if self.paused else ""
        cap = "reached" if self.soft_cap_reached else "not reached"
        limits = f"{format_units(t.min_contribution_wei)}-{format_units(t.max_contribution_wei)}"
        sold, offered = format_units(self.tokens_sold), format_units(t.hard_cap_tokens)
        schedule = [f"{s.label} {format_when(t.stage_start(s))}" for s in BUYING_STAGES]
        out = [
            f"sale          {self.address} ({self.state.name.lower()}{paused})",
            f"stage         {self.stage.label}" + self._stage_timing(),
            f"bonus         {t.bonus_of(self.stage) / 100:g}%",
            f"raised        {format_units(self.wei_raised)} ETH "
            f"(soft cap {format_units(t.soft_cap_wei)} ETH: {cap})",
            f"sold          {sold} of {offered} NTK ({format_units(self.tokens_left)} left)",
            f"price         {t.ntk_per_eth:,} NTK per ETH before bonus; {limits} ETH per buyer",
            "schedule      " + "; ".join(schedule) + f"; ends {format_when(t.ends_at)}",
        ]
        if self.state == SaleState.OPEN and not self.minter:
            out.append("WARNING       the sale does not hold the token's MINTER_ROLE: it will fail")
        if self.finalizable:
            out.append("next          anyone can finalize now: ape run sale finalize")
        elif self.state == SaleState.SUCCEEDED:
            out.append("next          buyers claim their tokens: ape run sale claim")
        elif self.state == SaleState.FAILED:
            out.append("next          buyers reclaim their ETH: ape run sale refund")
        return out

    def _stage_timing(self) -> str:
        t = self.terms
        if self.stage == Stage.NOT_STARTED:
            start = t.stage_starts[0]
            return f" (presale opens in {format_duration(start - self.now)}, {format_when(start)})"
        if self.stage == Stage.ENDED:
            return f" (ended {format_duration(self.now - t.ends_at)} ago)"
        next_in = format_duration(t.stage_end(self.stage) - self.now)
        return f" (next stage in {next_in}; sale ends in {format_duration(t.ends_at - self.now)})"


def find_sale(project: Any, network: str, address: str | None) -> tuple[Any, Any]:
    """The sale at `address`, or the one recorded for `network`, and its token."""
    try:
        sale_address = address or deployments.address_of(network, "TokenSale")
    except deployments.DeploymentNotFoundError as exc:
        raise SaleOperationError(str(exc)) from exc
    try:
        sale = project.TokenSale.at(sale_address)
        token = project.NeuroToken.at(sale.token())
    except Exception as exc:  # ape raises several kinds for "no contract here"
        hint = (
            " (a local chain lives only as long as the `ape run` that started it)"
            if network.endswith("-local")
            else ""
        )
        raise SaleOperationError(
            f"no TokenSale at {sale_address} on {network}: check --sale or --network{hint}"
        ) from exc
    return sale, token


def proof_for(buyer: str, allowlist_file: Path | None) -> list[bytes]:
    """The buyer's presale proof from the allow-list JSON, with a helpful error if absent."""
    if allowlist_file is None:
        raise SaleOperationError(
            "the presale is on: pass --allowlist with the allow-list JSON the operator published "
            "(made by 'ape run sale allowlist') so your proof can be looked up"
        )
    try:
        return Allowlist.read(allowlist_file).proof(buyer, source=str(allowlist_file))
    except AllowlistError as exc:
        raise SaleOperationError(str(exc)) from exc


def check_purchase(status: SaleStatus, buyer: str, paid_so_far: int, value: int) -> None:
    """Refuses, with what to do, a purchase the contract would refuse."""
    t = status.terms
    if status.state != SaleState.OPEN:
        raise SaleOperationError(
            f"the sale is over ({status.state.name.lower()}); "
            + (
                "claim your tokens: ape run sale claim"
                if status.state == SaleState.SUCCEEDED
                else "reclaim your ETH: ape run sale refund"
            )
        )
    if status.paused:
        raise SaleOperationError(
            "buying is paused by the sale's owner; try again later (ape run sale status)"
        )
    if status.stage == Stage.NOT_STARTED:
        raise SaleOperationError(
            f"the sale has not started: the presale opens {format_when(t.stage_starts[0])} "
            f"(in {format_duration(t.stage_starts[0] - status.now)})"
        )
    if status.stage == Stage.ENDED:
        raise SaleOperationError(f"the sale ended {format_when(t.ends_at)}; no more purchases")
    if status.tokens_left == 0:
        raise SaleOperationError(
            "the sale is sold out; it can be finalized now: ape run sale finalize"
        )
    if value < t.min_contribution_wei:
        raise SaleOperationError(
            f"{format_units(value)} ETH is below the minimum purchase of "
            f"{format_units(t.min_contribution_wei)} ETH: send at least that"
        )
    _, accepted = t.quote(status.stage, value, status.tokens_left)
    if paid_so_far + accepted > t.max_contribution_wei:
        room = max(t.max_contribution_wei - paid_so_far, 0)
        raise SaleOperationError(
            f"that would take {buyer} to {format_units(paid_so_far + accepted)} ETH, above the "
            f"{format_units(t.max_contribution_wei)} ETH per-buyer maximum: you can add at most "
            f"{format_units(room)} ETH"
        )
