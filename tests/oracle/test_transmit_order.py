"""Who transmits a settlement first: every oracle computes the same order from the on-chain
oracle set, whatever signatures each one has seen."""

from __future__ import annotations

from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from oracle.service import transmit_rank

ADDRESSES = [Account.from_key(i.to_bytes(32, "big")).address for i in range(1, 9)]


@given(
    members=st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=8, unique=True),
    job_id=st.integers(min_value=1, max_value=2**64),
)
def test_rank__each_member_distinct__exactly_one_sends_first(members: list[str], job_id: int):
    ranks = [transmit_rank(members, me, job_id) for me in members]
    assert sorted(ranks) == list(range(len(members)))
    # the order does not depend on how the set was listed (the contract's order is arbitrary)
    assert ranks == [transmit_rank(list(reversed(members)), me, job_id) for me in members]


def test_rank__rotates_with_job_id() -> None:
    members = ADDRESSES[:3]
    first = {job_id: next(m for m in members if transmit_rank(members, m, job_id) == 0)
             for job_id in range(1, 7)}  # fmt: skip
    assert len(set(first.values())) == 3  # the work is shared round-robin
    assert first[1] == first[4] and first[2] == first[5]


def test_rank__non_member__after_everyone() -> None:
    assert transmit_rank(ADDRESSES[:3], ADDRESSES[5], 7) == 3
