"""A model-based state machine for the sale: random buyers, amounts, clock moves, pause,
finalize, claims and refunds, with the issue's invariants checked after every step.

The model predicts every outcome, reverts included (each with its exact custom error), and
keeps the ledger the contract must match: ETH held, wei raised, tokens sold, every buyer's
entitlement by the stated formula, claims and refunds. At the end of each example the sale is
driven to its end (finalized, then every buyer claims or is refunded) and the closing sums are
checked: claims add up to the tokens sold, refunds to the ETH raised, and no buyer got both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from neurotoken.sale.terms import BUYING_STAGES, SaleState, SaleTerms, Stage
from neurotoken.units import NTK
from tests.constants import ETH
from tests.sale.helpers import FastReader
from tests.stateful import ChainStateMachine, run_machine

MIN_WEI = ETH // 10
MAX_WEI = 4 * ETH
HARD_CAP = 10_000 * NTK  # 8.7 to 10 ETH sells out
SOFT_CAP = 4 * ETH
MARGIN = 120  # clock moves land this far from any stage boundary

AMOUNTS = st.one_of(
    st.sampled_from([0, MIN_WEI - 1, MIN_WEI, ETH // 2, ETH, 5 * ETH // 2, MAX_WEI, MAX_WEI + 1]),
    st.integers(MIN_WEI, MAX_WEI),
)


@dataclass
class Buyer:
    paid_wei: int = 0
    tokens: int = 0
    settled: bool = False
    claimed: int = 0
    refunded_wei: int = 0
    eth_delta: int = 0  # ETH balance change the model expects, fees included


class SaleMachine(ChainStateMachine):
    env: Any = None  # the SaleEnv, deployed once; every example starts from its snapshot
    accounts_by_role: Any = None  # {"owner": ..., "buyers": [...], "outsider": ...}

    def __init__(self) -> None:
        super().__init__()
        self.terms: SaleTerms = self.env.terms
        self.read = FastReader(self.chain)
        self.sale = self.fast.wrap(self.env.sale)  # its transactions on the fast path
        self.owner = self.accounts_by_role["owner"]
        self.buyers = self.accounts_by_role["buyers"]
        self.outsider = self.accounts_by_role["outsider"]
        _, self.now = self.fast.head()
        self.start_eth = {b.address: self.read.balance(b) for b in self.buyers}
        self.treasury_start = self.read.balance(self.terms.treasury)
        self.book = {b.address: Buyer() for b in self.buyers}
        self.state = SaleState.OPEN
        self.paused = False
        self.raised = 0
        self.sold = 0
        self.held = 0
        self.forwarded = 0

    # --- helpers ------------------------------------------------------------------------

    def _pin_next_block(self) -> None:
        self.now += 1
        self.fast.pin_next_timestamp(self.now)

    def _fee(self, receipt: Any, account: Any) -> None:
        if account.address in self.book:
            self.book[account.address].eth_delta -= int(receipt.gas_used) * int(receipt.gas_price)

    def _reverts(
        self, error: Any, method: str, *args: Any, sender: Any, value: int = 0, **inputs: Any
    ) -> None:
        """Expects `sale.method(*args)` from `sender` to revert with `error` and `inputs`.

        Tried as a call, not mined: the model keeps every step well inside a stage, so the
        block time of the call cannot change the answer, and ape's tracing of mined reverts
        would make each example several times slower.
        """
        self.read.expect_revert(
            error, self.env.sale, method, *args, sender=sender, value=value, **inputs
        )

    def _stage(self) -> Stage:
        return self.terms.stage_at(self.now)

    # --- rules --------------------------------------------------------------------------

    @initialize(
        stage=st.sampled_from([Stage.NOT_STARTED, *BUYING_STAGES]), fraction=st.floats(0, 1)
    )
    def start_somewhere(self, stage: Stage, fraction: float) -> None:
        if stage != Stage.NOT_STARTED:
            self.move_clock(stage, fraction)

    @rule(data=st.data(), value=AMOUNTS, with_proof=st.booleans())
    def buy(self, data: st.DataObject, value: int, with_proof: bool) -> None:
        self._buy(data.draw(st.sampled_from(self.buyers)), value, with_proof)

    @rule(data=st.data(), value=st.integers(MIN_WEI, MAX_WEI))
    def buy_within_limits(self, data: st.DataObject, value: int) -> None:
        self._buy(data.draw(st.sampled_from(self.buyers)), value, with_proof=True)

    def _buy(self, buyer: Any, value: int, with_proof: bool) -> None:
        record = self.book[buyer.address]
        listed = buyer.address in self.env.allowlist
        proof = self.env.allowlist.proof(buyer.address) if with_proof and listed else []
        self._pin_next_block()
        stage = self._stage()
        sale = self.env.sale
        call = {"sender": buyer, "value": value}

        if self.state != SaleState.OPEN:
            self._reverts(sale.SaleClosed, "buy", proof, **call, state=self.state)
        elif self.paused:
            self._reverts(sale.SaleBuyingPaused, "buy", proof, **call)
        elif stage == Stage.NOT_STARTED:
            self._reverts(
                sale.SaleNotStarted, "buy", proof, **call, startsAt=self.terms.stage_starts[0]
            )
        elif stage == Stage.ENDED:
            self._reverts(sale.SaleEnded, "buy", proof, **call, endedAt=self.terms.ends_at)
        elif stage == Stage.PRESALE and not proof:
            self._reverts(sale.SaleNotAllowlisted, "buy", proof, **call, buyer=buyer)
        elif value < MIN_WEI:
            self._reverts(
                sale.SaleContributionBelowMin,
                "buy",
                proof,
                **call,
                sentWei=value,
                minContributionWei=MIN_WEI,
            )
        elif self.sold == HARD_CAP:
            self._reverts(sale.SaleSoldOut, "buy", proof, **call)
        else:
            tokens, accepted = self.terms.quote(stage, value, HARD_CAP - self.sold)
            total = record.paid_wei + accepted
            if total > MAX_WEI:
                self._reverts(
                    sale.SaleContributionAboveMax, "buy", proof, **call, buyer=buyer, totalWei=total
                )
                return
            receipt = self.sale.buy(proof, sender=buyer, value=value)
            event(f"bought in {stage.label}" + (" (partial fill)" if accepted < value else ""))
            [log] = receipt.decode_logs(sale.TokensPurchased)
            assert (log.stage, log.paidWei, log.tokens, log.returnedWei) == (
                stage,
                accepted,
                tokens,
                value - accepted,
            )
            record.paid_wei += accepted
            record.tokens += tokens
            record.eth_delta -= accepted
            self._fee(receipt, buyer)
            self.raised += accepted
            self.held += accepted
            self.sold += tokens

    @rule(stage=st.sampled_from([*BUYING_STAGES, Stage.ENDED]), fraction=st.floats(0, 1))
    def move_clock(self, stage: Stage, fraction: float) -> None:
        start = self.terms.stage_start(stage)
        end = self.terms.stage_end(stage) if stage != Stage.ENDED else start + 10 * MARGIN
        target = start + MARGIN + int((end - start - 2 * MARGIN) * fraction)
        if target <= self.now + 1:
            target = self.now + 60  # the clock only moves forward
        self.fast.mine(target)
        self.now = target

    @rule(by_owner=st.booleans())
    def pause(self, by_owner: bool) -> None:
        self._toggle_pause(True, by_owner)

    @rule(by_owner=st.booleans())
    def unpause(self, by_owner: bool) -> None:
        self._toggle_pause(False, by_owner)

    def _toggle_pause(self, pause: bool, by_owner: bool) -> None:
        sale = self.env.sale
        caller = self.owner if by_owner else self.outsider
        method = "pause" if pause else "unpause"
        self._pin_next_block()
        if not by_owner:
            self._reverts(sale.OwnableUnauthorizedAccount, method, sender=caller, account=caller)
        elif self.state != SaleState.OPEN:
            self._reverts(sale.SaleClosed, method, sender=caller, state=self.state)
        elif self.paused == pause:
            self._reverts(sale.SalePauseUnchanged, method, sender=caller, paused=pause)
        else:
            getattr(self.sale, method)(sender=caller)
            self.paused = pause

    @rule(data=st.data())
    def finalize(self, data: st.DataObject) -> None:
        caller = data.draw(st.sampled_from([*self.buyers, self.outsider]))
        self._finalize(caller)

    def _finalize(self, caller: Any) -> None:
        sale = self.env.sale
        self._pin_next_block()
        if self.state != SaleState.OPEN:
            self._reverts(sale.SaleAlreadyFinalized, "finalize", sender=caller, state=self.state)
            return
        if self.now < self.terms.ends_at and self.sold < HARD_CAP:
            self._reverts(
                sale.SaleNotFinalizable,
                "finalize",
                sender=caller,
                endsAt=self.terms.ends_at,
                tokensLeft=HARD_CAP - self.sold,
            )
            return
        receipt = self.sale.finalize(sender=caller)
        self._fee(receipt, caller)
        self.state = SaleState.SUCCEEDED if self.raised >= SOFT_CAP else SaleState.FAILED
        event(
            f"finalized: {self.state.name.lower()}"
            + (" (sold out)" if self.sold == HARD_CAP else "")
        )
        if self.state == SaleState.SUCCEEDED:
            self.forwarded = self.held
            self.held = 0

    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        buyer = data.draw(st.sampled_from(self.buyers))
        caller = data.draw(st.sampled_from([*self.buyers, self.outsider]))
        self._claim(buyer, caller)

    def _claim(self, buyer: Any, caller: Any) -> None:
        sale = self.env.sale
        record = self.book[buyer.address]
        self._pin_next_block()
        if self.state != SaleState.SUCCEEDED:
            self._reverts(sale.SaleNotSucceeded, "claim", buyer, sender=caller, state=self.state)
        elif record.tokens == 0 or record.settled:
            self._reverts(sale.SaleNothingToClaim, "claim", buyer, sender=caller, buyer=buyer)
        else:
            receipt = self.sale.claim(buyer, sender=caller)
            self._fee(receipt, caller)
            record.settled = True
            record.claimed = record.tokens

    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        buyer = data.draw(st.sampled_from(self.buyers))
        caller = data.draw(st.sampled_from([*self.buyers, self.outsider]))
        self._refund(buyer, caller)

    def _refund(self, buyer: Any, caller: Any) -> None:
        sale = self.env.sale
        record = self.book[buyer.address]
        self._pin_next_block()
        if self.state != SaleState.FAILED:
            self._reverts(sale.SaleNotFailed, "refund", buyer, sender=caller, state=self.state)
        elif record.paid_wei == 0 or record.settled:
            self._reverts(sale.SaleNothingToRefund, "refund", buyer, sender=caller, buyer=buyer)
        else:
            receipt = self.sale.refund(buyer, sender=caller)
            self._fee(receipt, caller)
            record.settled = True
            record.refunded_wei = record.paid_wei
            record.eth_delta += record.paid_wei
            self.held -= record.paid_wei

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def chain_matches_the_model(self) -> None:
        read, sale, token = self.read, self.env.sale, self.env.token
        totals = read.run(
            read.balance_of(sale),
            read.call(sale, "weiRaised"),
            read.call(sale, "tokensSold"),
            read.call(sale, "state"),
            read.call(sale, "paused"),
            read.balance_of(self.terms.treasury),
            read.call(token, "balanceOf", sale),
            read.call(token, "totalSupply"),
            *(q for b in self.buyers for q in self._buyer_queries(b)),
        )
        held, raised, sold, state, paused, treasury, sale_ntk, supply = totals[:8]
        # ETH held equals the contributions not yet refunded or forwarded.
        assert held == self.held
        assert raised == self.raised
        # Tokens sold never exceed the hard cap.
        assert sold == self.sold <= HARD_CAP
        assert (state, paused) == (self.state, self.paused)
        assert treasury == self.treasury_start + self.forwarded
        if self.state == SaleState.SUCCEEDED:
            claimed = sum(r.claimed for r in self.book.values())
            assert sale_ntk == self.sold - claimed
            assert supply == self.sold + sum(self.terms.allocations(self.sold).values())
        else:
            # Nothing is minted before success, nor ever after failure.
            assert supply == 0
        for n, buyer in enumerate(self.buyers):
            contribution, ntk, eth = totals[8 + 3 * n : 11 + 3 * n]
            record = self.book[buyer.address]
            # The entitlement is the sum of the purchases' quotes, each by the stated formula.
            # A settled buyer's record is cleared (its history is in the events).
            expected = (0, 0) if record.settled else (record.paid_wei, record.tokens)
            assert tuple(contribution) == expected
            assert ntk == record.claimed
            assert eth == self.start_eth[buyer.address] + record.eth_delta
            # No buyer gets both a refund and tokens.
            assert record.claimed == 0 or record.refunded_wei == 0

    def _buyer_queries(self, buyer: Any) -> tuple[Any, ...]:
        read = self.read
        return (
            read.call(self.env.sale, "contributionOf", buyer),
            read.call(self.env.token, "balanceOf", buyer),
            read.balance_of(buyer),
        )

    # --- the end of every example ---------------------------------------------------------

    def teardown(self) -> None:
        try:
            self._drive_to_the_end()
        finally:
            super().teardown()

    def _drive_to_the_end(self) -> None:
        if self.state == SaleState.OPEN:
            if self.now < self.terms.ends_at:
                self.move_clock(Stage.ENDED, 0.0)
            self._finalize(self.outsider)
        for buyer in self.buyers:
            record = self.book[buyer.address]
            if self.state == SaleState.SUCCEEDED:
                self._claim(buyer, self.outsider)
                self._claim(buyer, buyer)  # a second claim is refused
            else:
                self._refund(buyer, self.outsider)
                self._refund(buyer, buyer)  # a second refund is refused
            assert record.settled or record.paid_wei == 0
        self.chain_matches_the_model()
        if self.state == SaleState.SUCCEEDED:
            # Each buyer claimed exactly once, and the claims add up to the tokens sold.
            assert sum(r.claimed for r in self.book.values()) == self.sold
            assert self.read(self.env.token, "balanceOf", self.env.sale) == 0
        else:
            # The refunds add up to the ETH raised, and no token was ever minted.
            assert sum(r.refunded_wei for r in self.book.values()) == self.raised
            assert self.read.balance(self.env.sale) == 0
            assert self.read(self.env.token, "totalSupply") == 0


def test_sale_state_machine(
    chain: Any, deploy: Any, owner: Any, alice: Any, bob: Any, carol: Any, erin: Any, dave: Any
) -> None:
    env = deploy(
        hard_cap_tokens=HARD_CAP,
        soft_cap_wei=SOFT_CAP,
        min_contribution_wei=MIN_WEI,
        max_contribution_wei=MAX_WEI,
    )
    # alice and bob are allow-listed, carol and erin are not; dave only calls (and fails to pause).
    run_machine(
        SaleMachine,
        chain,
        env=env,
        accounts_by_role={"owner": owner, "buyers": [alice, bob, carol, erin], "outsider": dave},
    )
