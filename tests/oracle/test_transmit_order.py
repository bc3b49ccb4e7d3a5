"""Who transmits a settlement first: every oracle computes the same order from the on-chain
oracle set, whatever signatures each one has seen; a backup looks at the node's pool before
it sends too."""

from __future__ import annotations

from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from devchain.localnet import free_port
from oracle.chain import MarketChain
from oracle.settings import DEFAULT_ABI_PATH
from oracle.transmit_turns import transmit_order, transmit_rank, turn_watch

ADDRESSES = [Account.from_key(i.to_bytes(32, "big")).address for i in range(1, 9)]


@settings(deadline=None)  # pure and fast; no timing assertion on a shared machine
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


def test_order__rotation_of_the_sorted_set() -> None:
    members = sorted(ADDRESSES[:4], key=lambda a: int(a, 16))
    assert transmit_order(list(reversed(members)), 6) == members[2:] + members[:2]
    assert transmit_order([], 6) == []


def never_asked() -> float | None:
    raise AssertionError("the age is only needed in the delay after this oracle's turn")


def test_turn_watch__rank_r_waits_r_delays__then_a_delay_looking_at_those_before_it() -> None:
    a, b, c = ADDRESSES[:3]
    order = [a, b, c]
    young = lambda: 0.0  # noqa: E731 - nobody could have sent long ago
    assert turn_watch(order, a, elapsed=0.0, delay=4, age=young, margin=1) == []  # go now
    assert turn_watch(order, b, elapsed=3.9, delay=4, age=never_asked, margin=1) is False
    assert turn_watch(order, b, elapsed=4.0, delay=4, age=young, margin=1) == [a]
    assert turn_watch(order, c, elapsed=8.5, delay=4, age=young, margin=1) == [a, b]
    assert turn_watch(order, c, elapsed=12.0, delay=4, age=never_asked, margin=1) is True
    assert turn_watch(order, b, elapsed=9.0, delay=0, age=never_asked, margin=1) is True
    outsider = ADDRESSES[5]  # after everyone
    assert turn_watch(order, outsider, elapsed=11.9, delay=4, age=never_asked, margin=1) is False
    assert turn_watch(order, outsider, elapsed=12.0, delay=4, age=young, margin=1) == order


def test_turn_watch__a_late_designated_transmitter_looks_at_every_other_oracle_first() -> None:
    """The designated oracle reached its quorum a backup delay after the job became
    verifiable: the backup may have stood in for it, so it looks at the pool first."""
    a, b, c = ADDRESSES[:3]
    order = [a, b, c]
    assert turn_watch(order, a, elapsed=0.0, delay=4, age=lambda: 2.9, margin=1) == []
    assert turn_watch(order, a, elapsed=0.0, delay=4, age=lambda: 3.0, margin=1) == [b, c]
    assert turn_watch(order, a, elapsed=0.0, delay=4, age=lambda: None, margin=1) == []
    # a backup later than the next rank's turn looks at it too
    assert turn_watch(order, b, elapsed=4.0, delay=4, age=lambda: 9.0, margin=1) == [a, c]
    assert turn_watch(order, b, elapsed=4.0, delay=4, age=lambda: 6.0, margin=1) == [a]
    # the look lasts one delay at most: then it goes whatever the pool holds
    assert turn_watch(order, a, elapsed=4.0, delay=4, age=lambda: 60.0, margin=1) is True


def test_has_pending__sees_a_transaction_in_the_pool_until_it_is_mined(make_net) -> None:
    """What a backup transmitter looks at before it sends too."""
    net = make_net(block_time=None)
    m = net.market
    chain = MarketChain(net.anvil.url, m.market.address, DEFAULT_ABI_PATH)
    net.anvil.rpc("evm_setAutomine", False)
    w3 = net.anvil.web3()
    w3.eth.send_transaction({"from": m.client, "to": m.client, "value": 1})
    assert chain.has_pending(m.client)
    assert not any(chain.has_pending(a) for a in m.oracle_addresses)
    net.anvil.rpc("evm_mine")
    assert not chain.has_pending(m.client)
    # a node that cannot be reached shows nothing pending (and does not stop the oracle)
    assert not MarketChain(f"http://127.0.0.1:{free_port()}", m.market.address,
                           DEFAULT_ABI_PATH, timeout_s=1).has_pending(m.client)  # fmt: skip
