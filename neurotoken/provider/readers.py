"""Who may read a bundle this provider serves: the client of a job it committed the bundle
for, or an oracle whose signature counts for that job.

The provider knows which job each of its roots belongs to (its state file: the agent records
the root when it publishes a bundle); the chain says who the job's client is and whether an
address is one of the job's oracles (`isJobOracle`: the oracle set of the epoch the job was
posted in). Neither answer ever changes for a job, so both are cached (bounded). The same
result root can belong to two jobs (the same spec posted twice gives the same outputs): a
reader of either may read it.

`agent_gate` builds the bundle server's `BundleGate` from a state file and a chain client;
the server calls it from worker threads, so it reads over connections of its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from eth_utils.address import to_checksum_address

from neurotoken.provider.chain import MarketClient
from neurotoken.provider.server import BundleGate
from neurotoken.provider.state import jobs_with_root

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
    """`authorize(address, root)` for a bundle server: the clients and oracles of the jobs
    `jobs_of_root(root)` names. Thread-safe (one check at a time)."""

    def __init__(
        self,
        jobs_of_root: Callable[[bytes], Sequence[int]],
        client_of: Callable[[int], str],
        is_job_oracle: Callable[[int, str], bool],
        cache_size: int = 4096,
    ) -> None:
        self.jobs_of_root = jobs_of_root
        self.client_of = client_of
        self.is_job_oracle = is_job_oracle
        self._roots = _Lru(cache_size)
        self._clients = _Lru(cache_size)
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
        client = self._clients.get(job_id)
        if client is None:
            client = to_checksum_address(self.client_of(job_id))
            self._clients.put(job_id, client)
        if client == reader:
            return True
        key = (job_id, reader)
        answer = self._oracles.get(key)
        if answer is None:
            answer = bool(self.is_job_oracle(job_id, reader))
            self._oracles.put(key, answer)
        return answer is True


def agent_gate(state_dir: Path, client: MarketClient) -> BundleGate:
    """The gate of a provider's bundle server: readers are the clients and oracles of the
    jobs whose roots the agent's state file (`state_dir/agent.sqlite3`) records. `client`
    is used through a read-only connection of its own (`MarketClient.reader`)."""
    chain = client.reader()
    path = Path(state_dir) / STATE_FILE

    def jobs_of_root(root: bytes) -> list[int]:
        return jobs_with_root(path, "0x" + root.hex())

    readers = JobReaders(
        jobs_of_root, lambda job_id: chain.get_job(job_id).client, chain.is_job_oracle
    )
    return BundleGate(chain.chain_id, chain.market_address, readers)
