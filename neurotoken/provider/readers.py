"""Who may read a bundle this provider serves: the client of a job it committed the bundle
for, or an oracle whose signature counts for that job.

The provider knows which job each of its roots belongs to (its state file: the agent records
the root when it publishes a bundle); the job's record (rebuilt from its events and checked
against the digest the market stores) says who its client is and which oracle epoch it was
posted in, and the chain says whether an address is an oracle of that epoch
(`isEpochOracle(epoch, account)`). An oracle of any other epoch is no reader: only the
oracles of the job's epoch can settle it. None of these answers ever changes (a record's
client and epoch are fixed when the job is posted; every change of the oracle set opens a new
epoch), so all are cached (bounded). The same result root can belong to two jobs (the same
spec posted twice gives the same outputs): a reader of either may read it.

`agent_gate` builds the bundle server's `BundleGate` from a state file and a chain client;
the server calls it from worker threads, so it reads over connections of its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from eth_utils.address import to_checksum_address

from neurotoken.market.job import OnChainJob
from neurotoken.provider.chain import MarketClient
from neurotoken.provider.server import BundleGate
from neurotoken.provider.state import first_block_of, jobs_with_root

STATE_FILE = "agent.sqlite3"


class _Lru:
    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[object, object] = OrderedDict()

    def get(self, key: object) -> object | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: object, value: object) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


class JobReaders:
    """`authorize(address, root)` for a bundle server: the clients of the jobs
    `jobs_of_root(root)` names, and the oracles of each job's oracle epoch (`job_of(job_id)`
    gives the job's record, `is_epoch_oracle(epoch, address)` the chain's answer).
    Thread-safe (one check at a time)."""

    def __init__(
        self,
        jobs_of_root: Callable[[bytes], Sequence[int]],
        job_of: Callable[[int], OnChainJob],
        is_epoch_oracle: Callable[[int, str], bool],
        cache_size: int = 4096,
    ) -> None:
        self.jobs_of_root = jobs_of_root
        self.job_of = job_of
        self.is_epoch_oracle = is_epoch_oracle
        self._roots = _Lru(cache_size)
        self._jobs = _Lru(cache_size)
        self._oracles = _Lru(cache_size)
        self._lock = threading.Lock()

    def __call__(self, address: str, root: bytes) -> bool:
        reader = to_checksum_address(address)
        with self._lock:
            known = self._roots.get(root)
            jobs: tuple[int, ...] = known if isinstance(known, tuple) else ()
            if any(self._may_read(job, reader) for job in jobs):
                return True
            # not cached, or a job of this root the cache has not seen yet: ask the state file
            fresh = tuple(self.jobs_of_root(root))
            if fresh:
                self._roots.put(root, fresh)
            return any(self._may_read(job, reader) for job in fresh if job not in jobs)

    def _may_read(self, job_id: int, reader: str) -> bool:
        known = self._jobs.get(job_id)
        if isinstance(known, tuple):
            client, epoch = known
        else:
            job = self.job_of(job_id)
            client, epoch = to_checksum_address(job.client), int(job.oracle_epoch)
            self._jobs.put(job_id, (client, epoch))
        if client == reader:
            return True
        key = (epoch, reader)
        answer = self._oracles.get(key)
        if answer is None:
            answer = bool(self.is_epoch_oracle(epoch, reader))
            self._oracles.put(key, answer)
        return answer is True


def agent_gate(state_dir: Path, client: MarketClient) -> BundleGate:
    """The gate of a provider's bundle server: readers are the clients and oracles of the
    jobs whose roots the agent's state file (`state_dir/agent.sqlite3`) records. `client`
    is used through a read-only connection of its own (`MarketClient.reader`); job records
    are searched for from the block where the agent began scanning (the state file says)."""
    chain = client.reader()
    path = Path(state_dir) / STATE_FILE

    def jobs_of_root(root: bytes) -> list[int]:
        return jobs_with_root(path, "0x" + root.hex())

    def job_of(job_id: int) -> OnChainJob:
        return chain.get_job(job_id, from_block=first_block_of(path))

    readers = JobReaders(jobs_of_root, job_of, chain.is_epoch_oracle)
    return BundleGate(chain.chain_id, chain.market_address, readers)
