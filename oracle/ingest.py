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
never seen in the logs; a deeper one is undone as far as it can be (signatures are bound to
(job, root) and stay true; settlements in vanished blocks are watched again).

A shallow reorg can still take one of the oracle's own transactions, which the sender saw
mined (its receipt) before the block was confirmed. So every tick also looks at the receipts
of the transactions recorded mined above the cursor: when one is gone (or moved to another
block), the store is rolled back to the cursor (`Store.rollback`): nothing ingested is
forgotten, the transactions above it are followed again (re-broadcast, as the node no longer
has them) and the jobs they settled wait for them again. Without this the transaction's
nonce would stay unused on chain and every later transaction of the key stuck behind it.
A range is ingested only if each of our transactions seen mined in it has its receipt in
the block read for the range (a reorg between the tick's look and the range is caught there).
"""

from __future__ import annotations

from collections.abc import Callable
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
        crash: Callable[[str], None] | None = None,
    ) -> None:
        self.chain = chain
        self.store = store
        self.confirmations = confirmations
        self.block_range = block_range
        self.start_block = start_block
        self.max_ranges_per_tick = max_ranges_per_tick
        self.crash = crash
        """Fault injection for the crash tests (`Oracle._crash`): called with
        ``"mid_ingest"`` after each committed range that held logs."""

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

    def check_landed(self) -> RollbackReport | None:
        """Rolls back to the cursor if a transaction of ours recorded mined in a block not
        yet confirmed is no longer there (see the module's docstring)."""
        cursor = self.cursor()
        moved = self._vanished(self.store.landed_above(cursor), None)
        if not moved:
            return None
        return self._look_again(cursor, moved)

    def _vanished(
        self, landed: list[tuple[int, str, int]], hashes: dict[int, str] | None
    ) -> list[dict[str, object]]:
        """Those of our `landed` transactions (id, hash, block) whose receipt is gone or names
        another block (with `hashes`: another block hash than the one given for its number)."""
        moved: list[dict[str, object]] = []
        for tx_id, tx_hash, number in landed:
            now = self.chain.receipt_block(tx_hash)
            if now is None or now[0] != number or (hashes is not None and now[1] != hashes[number]):
                moved.append(
                    {"tx_id": tx_id, "hash": tx_hash, "block": number, "now": now and now[0]}
                )
        return moved

    def _look_again(self, cursor: int, moved: list[dict[str, object]]) -> RollbackReport:
        """Rolls back to the cursor (nothing ingested is forgotten): our transactions above it
        are followed again and the jobs they settled wait for them again."""
        report = self.store.rollback(cursor)
        event(log, "mined_tx_vanished", level=30, cursor=cursor, txs=moved)
        return report

    def tick(self, head: int) -> IngestReport:
        report = IngestReport()
        report.rollback = self.check_reorg() or self.check_landed()
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
            if count and self.crash is not None:
                self.crash("mid_ingest")  # between this range's commit and the next range's
        report.jobs = tuple(sorted(touched))
        return report

    def _ingest_range(self, start: int, end: int) -> tuple[list[int], int]:
        # The range's last block is read before and after its logs: a block hash commits to
        # every block below it, so an unchanged hash means the logs came from that one
        # branch (a reorg in between could otherwise pair an empty range read on the old
        # branch with the new branch's hash, and the new branch's logs would never be read).
        end_before = self.chain.block_hash(end)
        logs = self.chain.logs(start, end)
        landed = [tx for tx in self.store.landed_above(start - 1) if tx[2] <= end]
        hashes: dict[int, str] = {}
        for number in sorted({ev.block_number for ev in logs} | {end} | {tx[2] for tx in landed}):
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
        # Our transactions seen mined in the range must be in it as read: one taken by a
        # reorg after the tick's `check_landed` would otherwise be confirmed gone unnoticed.
        moved = self._vanished(landed, hashes)
        if moved:
            self._look_again(start - 1, moved)
            raise InconsistentRangeError(f"transactions of ours left blocks of the range: {moved}")
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
