"""Ingestion: market logs from a stored cursor, in bounded ranges, confirmed blocks only,
with reorgs noticed by stored block hashes and undone.

Each tick:

1. Reorg check: the hash of the cursor's block, as stored, must still be the chain's. If
   not (or the chain is now shorter), walk back through the stored block hashes to the
   newest one the chain still has (the common ancestor) and roll the store back to it:
   logs above it are forgotten and the jobs they touched rebuilt (`Store.rollback`).
2. Ingest [cursor + 1, head - confirmations] in ranges of at most `block_range` blocks.
   Each range is one eth_getLogs; the hash of every block a log came from, and of the
   range's last block, is read again and must match the logs' block hashes; the last
   block's hash must be the same before and after the logs are read, and the cursor's
   block must still be the stored one (otherwise a reorg is in progress: retry next tick).
   Logs, hashes and the new cursor are written in one transaction.

Because only confirmed blocks are read, a reorg shallower than the confirmation depth is
never seen at all; a deeper one is undone as far as it can be (signatures are bound to
(job, root) and stay true; settlements in vanished blocks are watched again).
"""

from __future__ import annotations

from dataclasses import dataclass

from neurotoken.errors import NeurotokenError
from oracle.chain import MarketChain
from oracle.logs import event, get_logger
from oracle.store import RollbackReport, Store

log = get_logger("ingest")


class InconsistentRangeError(NeurotokenError):
    """The chain changed while a range was being read."""


@dataclass
class IngestReport:
    ranges: int = 0
    logs: int = 0
    jobs: tuple[int, ...] = ()
    rollback: RollbackReport | None = None


class Ingestor:
    def __init__(
        self,
        chain: MarketChain,
        store: Store,
        *,
        confirmations: int,
        block_range: int,
        start_block: int,
        max_ranges_per_tick: int = 20,
    ) -> None:
        self.chain = chain
        self.store = store
        self.confirmations = confirmations
        self.block_range = block_range
        self.start_block = start_block
        self.max_ranges_per_tick = max_ranges_per_tick

    def cursor(self) -> int:
        stored = self.store.cursor()
        return self.start_block - 1 if stored is None else stored

    def safe_head(self, head: int) -> int:
        return head - self.confirmations

    def check_reorg(self) -> RollbackReport | None:
        """Rolls back if the cursor's block is no longer on chain; returns what was done."""
        cursor = self.cursor()
        if cursor < self.start_block:
            return None
        stored = self.store.block_hash(cursor)
        if stored is None:
            return None
        current = self.chain.block_hash(cursor)
        if current == stored:
            return None
        ancestor = self.start_block - 1
        below = cursor
        while below >= self.start_block:
            page = self.store.stored_blocks_desc(below, limit=64)
            if not page:
                break
            found = False
            for number, block_hash in page:
                if self.chain.block_hash(number) == block_hash:
                    ancestor = number
                    found = True
                    break
            if found:
                break
            below = page[-1][0] - 1
        report = self.store.rollback(ancestor)
        event(
            log,
            "reorg_rolled_back",
            level=30,
            cursor=cursor,
            ancestor=ancestor,
            depth=cursor - ancestor,
            events_removed=report.events_removed,
            jobs=report.jobs_touched,
        )
        return report

    def tick(self, head: int) -> IngestReport:
        report = IngestReport()
        report.rollback = self.check_reorg()
        safe = self.safe_head(head)
        touched: set[int] = set()
        for _ in range(self.max_ranges_per_tick):
            start = self.cursor() + 1
            if start > safe:
                break
            end = min(safe, start + self.block_range - 1)
            try:
                jobs, count = self._ingest_range(start, end)
            except InconsistentRangeError as exc:
                event(
                    log,
                    "range_inconsistent",
                    level=30,
                    from_block=start,
                    to_block=end,
                    error=str(exc),
                )
                break
            report.ranges += 1
            report.logs += count
            touched.update(jobs)
        report.jobs = tuple(sorted(touched))
        return report

    def _ingest_range(self, start: int, end: int) -> tuple[list[int], int]:
        # The range's last block is read before and after its logs: a block hash commits to
        # every block below it, so an unchanged hash means the logs came from that one
        # branch (a reorg in between could otherwise pair an empty range read on the old
        # branch with the new branch's hash, and the new branch's logs would never be read).
        end_before = self.chain.block_hash(end)
        logs = self.chain.logs(start, end)
        hashes: dict[int, str] = {}
        for number in sorted({ev.block_number for ev in logs} | {end}):
            current = self.chain.block_hash(number)
            if current is None:
                raise InconsistentRangeError(f"block {number} is gone")
            hashes[number] = current
        if hashes[end] != end_before:
            raise InconsistentRangeError(f"block {end} changed while the range was read")
        for ev in logs:
            if hashes[ev.block_number] != ev.block_hash:
                raise InconsistentRangeError(
                    f"log in block {ev.block_number} is from another branch"
                )
        # The range must also extend the branch already stored: the cursor's block, checked
        # at the start of the tick, may have been replaced since.
        below = self.store.block_hash(start - 1)
        if below is not None and self.chain.block_hash(start - 1) != below:
            raise InconsistentRangeError(f"block {start - 1} changed below the range")
        jobs = self.store.ingest(start, end, logs, hashes)
        if logs:
            event(
                log,
                "range_ingested",
                from_block=start,
                to_block=end,
                logs=len(logs),
                names=sorted({ev.name for ev in logs}),
                jobs=jobs,
            )
        return jobs, len(logs)
