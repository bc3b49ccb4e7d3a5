"""Model-based state machine for NeuroToken: a Python ledger checked against the chain.

Every rule either succeeds exactly when the model says it must, or reverts with the custom
error the model predicts; invariants compare model and chain after every step. Transactions go
through the fast path of tests/stateful.py (`self.tx`); a permit's deadline is judged against
the next block's timestamp, pinned before the call.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from tests.constants import MAX_UINT256, NTK_CAP
from tests.stateful import ChainStateMachine, batch_view, reverts, run_machine

HOLDERS = 4  # indices into `holders` (the fixture: alice, bob, carol and dave)

amounts = st.one_of(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=NTK_CAP),
    st.sampled_from([0, 1, NTK_CAP - 1, NTK_CAP, 2**255]),
)
who = st.integers(min_value=0, max_value=HOLDERS - 1)


class TokenMachine(ChainStateMachine):
    token: Any
    minter: Any
    holders: list[Any]
    make_permit: Any

    def __init__(self) -> None:
        super().__init__()
        self.balances = [0] * HOLDERS
        self.allowances: dict[tuple[int, int], int] = {}
        self.nonces = [0] * HOLDERS
        self.finished = False
        self.used_permits: list[tuple[int, int, int, int, Any]] = []
        self.tx = self.fast.wrap(self.token)  # transactions on the fast path
        self.chain_id = int(self.chain.chain_id)

    def _pin_next_block(self) -> int:
        """Pins the next block's timestamp (one past the head's) and returns it: a permit's
        deadline is checked against it, by the gas estimate and in the mined block alike."""
        _, timestamp = self.fast.head()
        self.fast.pin_next_timestamp(timestamp + 1)
        return timestamp + 1

    @property
    def supply(self) -> int:
        return sum(self.balances)

    @rule(to=who, amount=amounts)
    def mint(self, to: int, amount: int) -> None:
        if self.finished:
            with reverts(self.token.NeuroTokenMintingFinished):
                self.tx.mint(self.holders[to], amount, sender=self.minter)
        elif self.supply + amount > NTK_CAP:
            with reverts(self.token.ERC20ExceededCap, cap=NTK_CAP):
                self.tx.mint(self.holders[to], amount, sender=self.minter)
        else:
            self.tx.mint(self.holders[to], amount, sender=self.minter)
            self.balances[to] += amount

    @rule(src=who, dst=who, share=st.integers(min_value=0, max_value=120))
    def transfer(self, src: int, dst: int, share: int) -> None:
        amount = self.balances[src] * share // 100
        if amount > self.balances[src]:
            with reverts(self.token.ERC20InsufficientBalance, needed=amount):
                self.tx.transfer(self.holders[dst], amount, sender=self.holders[src])
            return
        self.tx.transfer(self.holders[dst], amount, sender=self.holders[src])
        self.balances[src] -= amount
        self.balances[dst] += amount

    @rule(owner=who, spender=who, amount=st.one_of(amounts, st.just(MAX_UINT256)))
    def approve(self, owner: int, spender: int, amount: int) -> None:
        self.tx.approve(self.holders[spender], amount, sender=self.holders[owner])
        self.allowances[(owner, spender)] = amount

    @rule(owner=who, spender=who, dst=who, share=st.integers(min_value=0, max_value=120))
    def transfer_from(self, owner: int, spender: int, dst: int, share: int) -> None:
        allowed = self.allowances.get((owner, spender), 0)
        amount = min(self.balances[owner], allowed) * share // 100 if allowed else share
        args = (self.holders[owner], self.holders[dst], amount)
        if amount > allowed:
            with reverts(self.token.ERC20InsufficientAllowance, needed=amount):
                self.tx.transferFrom(*args, sender=self.holders[spender])
        elif amount > self.balances[owner]:
            with reverts(self.token.ERC20InsufficientBalance, needed=amount):
                self.tx.transferFrom(*args, sender=self.holders[spender])
        else:
            self.tx.transferFrom(*args, sender=self.holders[spender])
            if allowed != MAX_UINT256:
                self.allowances[(owner, spender)] = allowed - amount
            self.balances[owner] -= amount
            self.balances[dst] += amount

    @rule(holder=who, share=st.integers(min_value=0, max_value=120))
    def burn(self, holder: int, share: int) -> None:
        amount = self.balances[holder] * share // 100
        if amount > self.balances[holder]:
            with reverts(self.token.ERC20InsufficientBalance, needed=amount):
                self.tx.burn(amount, sender=self.holders[holder])
            return
        self.tx.burn(amount, sender=self.holders[holder])
        self.balances[holder] -= amount

    @rule(
        owner=who,
        spender=who,
        value=amounts,
        lifetime=st.integers(min_value=-100, max_value=3600),
        foreign_chain=st.booleans(),
    )
    def permit(
        self, owner: int, spender: int, value: int, lifetime: int, foreign_chain: bool
    ) -> None:
        now = self._pin_next_block()
        deadline = max(0, now + lifetime)
        chain_id = 11155111 if foreign_chain else self.chain_id
        sig = self.make_permit(
            self.token,
            self.holders[owner],
            self.holders[spender],
            value,
            deadline,
            nonce=self.nonces[owner],
            chain_id=chain_id,
        )
        args = (self.holders[owner], self.holders[spender], value, deadline, sig.v, sig.r, sig.s)
        if deadline < now:
            with reverts(self.token.ERC2612ExpiredSignature, deadline=deadline):
                self.tx.permit(*args, sender=self.holders[spender])
        elif foreign_chain:
            with reverts(self.token.ERC2612InvalidSigner):
                self.tx.permit(*args, sender=self.holders[spender])
        else:
            self.tx.permit(*args, sender=self.holders[spender])
            self.allowances[(owner, spender)] = value
            self.nonces[owner] += 1
            self.used_permits.append((owner, spender, value, deadline, sig))

    @precondition(lambda self: bool(self.used_permits))
    @rule(pick=st.integers(min_value=0))
    def replay_permit(self, pick: int) -> None:
        owner, spender, value, deadline, sig = self.used_permits[pick % len(self.used_permits)]
        args = (self.holders[owner], self.holders[spender], value, deadline, sig.v, sig.r, sig.s)
        if deadline < self._pin_next_block():
            with reverts(self.token.ERC2612ExpiredSignature):
                self.tx.permit(*args, sender=self.holders[spender])
        else:
            with reverts(self.token.ERC2612InvalidSigner):
                self.tx.permit(*args, sender=self.holders[spender])

    @rule()
    def finish_minting(self) -> None:
        if self.finished:
            with reverts(self.token.NeuroTokenMintingFinished):
                self.tx.finishMinting(sender=self.minter)
            return
        tx = self.tx.finishMinting(sender=self.minter)
        assert tx.decode_logs(self.token.MintingFinished)[0].finalSupply == self.supply
        self.finished = True

    @rule(seconds=st.integers(min_value=1, max_value=7200))
    def wait(self, seconds: int) -> None:
        _, timestamp = self.fast.head()
        self.fast.mine(timestamp + seconds)

    @invariant()
    def chain_matches_model(self) -> None:
        """Balances, supply, cap, allowances, nonces and the minting flag: one batch read."""
        pairs = list(self.allowances)
        calls: list[tuple[Any, ...]] = [("balanceOf", h) for h in self.holders]
        calls += [("nonces", h) for h in self.holders]
        calls += [("allowance", self.holders[o], self.holders[s]) for o, s in pairs]
        calls += [("totalSupply",), ("mintingFinished",)]
        values = batch_view(self.token, calls)
        n = len(self.holders)
        balances, nonces = values[:n], values[n : 2 * n]
        allowances = values[2 * n : 2 * n + len(pairs)]
        supply, finished = values[-2:]
        assert balances == self.balances
        assert supply == sum(balances) == self.supply <= NTK_CAP
        assert allowances == [self.allowances[p] for p in pairs]
        assert nonces == self.nonces
        assert finished == self.finished


def test_token_state_machine(
    chain: Any, token: Any, minter: Any, holders: list[Any], make_permit: Any
) -> None:
    assert len(holders) == HOLDERS
    run_machine(
        TokenMachine, chain, token=token, minter=minter, holders=holders, make_permit=make_permit
    )
