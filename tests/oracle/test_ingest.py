"""Ingestion against a chain that reorganises *while* a range is being read.

The chain here is a list of branches in memory: each read may switch to the next branch, so
a reorg lands exactly between two of the ingestor's calls, every time (the race the anvil
reorg tests hit only by chance). Whatever the timing, the store must end up holding the
logs of one branch only: never a log from a branch that is gone under a block hash from the
branch that replaced it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from oracle.ingest import Ingestor
from oracle.store import ChainEvent, Store
from tests.oracle.test_store import ORACLE, SPEC_HASH

START = 10


def block_hash(branch: str, number: int) -> str:
    return "0x" + (branch.encode().hex() + f"{number:x}").rjust(64, "0")


def posted_on(branch: str, job_id: int, block: int) -> ChainEvent:
    return ChainEvent(
        block, 0, block_hash(branch, block), "0x" + "77" * 32, "JobPosted", job_id,
        {"jobId": job_id, "specHash": SPEC_HASH, "specURI": f"file:///specs/{job_id}.json",
         "shardCount": 16, "challengeCount": 4, "verdictBy": 10_000, "client": ORACLE,
         "provider": ORACLE, "paymentNtk": 1, "collateralNtk": 1, "acceptBy": 1,
         "deliverBy": 2},
    )  # fmt: skip


@dataclass
class Branch:
    name: str
    height: int
    # block number -> job ids posted there
    posts: dict[int, list[int]] = field(default_factory=dict)
    forked_at: int = 0  # blocks at or below this are shared with the previous branch
    parent: Branch | None = None

    def hash(self, number: int) -> str | None:
        if number > self.height:
            return None
        if self.parent is not None and number <= self.forked_at:
            return self.parent.hash(number)
        return block_hash(self.name, number)

    def logs(self, start: int, end: int) -> list[ChainEvent]:
        out = []
        for number in range(start, min(end, self.height) + 1):
            owner = self if self.parent is None or number > self.forked_at else self.parent
            for job in owner.posts.get(number, []):
                out.append(posted_on(owner.name, job, number))
        return out


class SwitchingChain:
    """Answers from `branches[0]` until `switch_after` reads, then from `branches[1]`."""

    def __init__(self, first: Branch, second: Branch, switch_after: int) -> None:
        self.branches = (first, second)
        self.reads = 0
        self.switch_after = switch_after

    @property
    def current(self) -> Branch:
        return self.branches[0] if self.reads < self.switch_after else self.branches[1]

    def _read(self) -> Branch:
        branch = self.current
        self.reads += 1
        return branch

    def block_hash(self, number: int) -> str | None:
        return self._read().hash(number)

    def logs(self, from_block: int, to_block: int) -> list[ChainEvent]:
        return self._read().logs(from_block, to_block)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """SQLite only: what is under test is the order of the ingestor's reads, not the SQL."""
    s = Store(f"sqlite:///{tmp_path / 'oracle.sqlite'}")
    s.migrate()
    try:
        yield s
    finally:
        s.close()


def jobs_in(store: Store) -> set[int]:
    """The jobs whose JobPosted log the store holds."""
    return {j for j in range(1, 10) if store.spec(j) is not None}


def settle_down(ingestor: Ingestor, chain: SwitchingChain) -> None:
    """Ticks until the ingestor has caught up with the (final) branch."""
    for _ in range(10):
        ingestor.tick(chain.current.height)


@pytest.mark.parametrize("switch_after", range(0, 12))
def test_reorg_between_any_two_reads__store_holds_one_branch_only(
    store: Store, switch_after: int
) -> None:
    # Old branch: job 1 at block 13 (already ingested), job 2 at block 16 (in the next range).
    old = Branch("a", 20, posts={13: [1], 16: [2]})
    # New branch forks below block 13: neither post survives; job 3 is posted at 17 instead.
    new = Branch("b", 20, posts={17: [3]}, forked_at=12, parent=old)
    # First, ingest the old branch up to block 14 with a quiet chain.
    quiet = SwitchingChain(old, old, switch_after=0)
    ingestor = Ingestor(quiet, store, confirmations=0, block_range=5, start_block=START)  # type: ignore[arg-type]
    ingestor.tick(14)
    assert jobs_in(store) == {1}
    # Then the reorg lands between two reads of the next tick, wherever that is.
    chain = SwitchingChain(old, new, switch_after=switch_after)
    ingestor.chain = chain  # type: ignore[assignment]
    settle_down(ingestor, chain)
    assert chain.current is new
    assert jobs_in(store) == {3}, f"reorg after read {switch_after}"
    assert store.cursor() == 20
    for number in range(START, 21):
        stored = store.block_hash(number)
        assert stored is None or stored == new.hash(number)


@pytest.mark.parametrize("switch_after", range(0, 12))
def test_reorg_above_the_cursor_between_any_two_reads__new_branch_logs_are_not_missed(
    store: Store, switch_after: int
) -> None:
    # The cursor block (14) survives; the range above it changes from empty to holding a post.
    old = Branch("a", 20, posts={13: [1]})
    new = Branch("b", 20, posts={16: [2]}, forked_at=14, parent=old)
    quiet = SwitchingChain(old, old, switch_after=0)
    ingestor = Ingestor(quiet, store, confirmations=0, block_range=10, start_block=START)  # type: ignore[arg-type]
    ingestor.tick(14)
    chain = SwitchingChain(old, new, switch_after=switch_after)
    ingestor.chain = chain  # type: ignore[assignment]
    settle_down(ingestor, chain)
    assert jobs_in(store) == {1, 2}, f"reorg after read {switch_after}"
