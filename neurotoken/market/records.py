"""Job records rebuilt from the market's events, checked against the digest it stores.

The market keeps one slot per open job, the keccak256 of its record; the record itself lives
in the events (`neurotoken.market.job.fold`). `JobReader` fetches a job's events with one
`eth_getLogs` (topic 0 any record event, topic 1 the job id), folds them, and checks the
result against `jobDigest(jobId)` at the same block, so a node that lags or a reorg in between
shows as an error instead of a wrong record.
"""

from __future__ import annotations

from typing import Any

from eth_utils.abi import event_abi_to_log_topic
from hexbytes import HexBytes
from web3 import Web3
from web3.types import BlockIdentifier

from neurotoken.market.job import RECORD_EVENTS, OnChainJob, fold

ZERO_DIGEST = b"\x00" * 32
MAX_BLOCK_RANGE = 10_000
"""Blocks per eth_getLogs query (hosted nodes refuse long ranges; many cap at 10,000)."""


class JobRecordError(LookupError):
    """The job's events do not give its current record (unknown job, or a lagging node)."""


class JobReader:
    """Reads job records of the market at `address` (ABI `abi`) through `w3`."""

    def __init__(
        self,
        w3: Web3,
        address: str,
        abi: list[dict[str, Any]],
        from_block: int = 0,
        max_block_range: int = MAX_BLOCK_RANGE,
    ) -> None:
        self.w3 = w3
        self.contract = w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)
        self.from_block = from_block
        self.max_block_range = max_block_range
        self._topics = {
            HexBytes(event_abi_to_log_topic(item)): str(item["name"])  # type: ignore[arg-type]
            for item in abi
            if item.get("type") == "event" and item.get("name") in RECORD_EVENTS
        }
        missing = set(RECORD_EVENTS) - set(self._topics.values())
        if missing:
            raise ValueError(f"the ABI lacks the record events {sorted(missing)}")

    def digest(self, job_id: int, block: BlockIdentifier = "latest") -> bytes:
        fn = self.contract.functions.jobDigest(job_id)
        return bytes(fn.call(block_identifier=block))

    def events(self, job_id: int, block: BlockIdentifier = "latest") -> list[tuple[str, Any]]:
        """(name, decoded args) of the job's record events up to `block`, in chain order."""
        last = self._number(block)
        topics: list[Any] = [list(self._topics), HexBytes(int(job_id).to_bytes(32, "big"))]
        raw: list[Any] = []
        start = self.from_block
        while start <= last:  # bounded ranges: hosted nodes refuse long ones
            end = min(last, start + self.max_block_range - 1)
            raw.extend(
                self.w3.eth.get_logs(
                    {
                        "address": self.contract.address,
                        "fromBlock": start,
                        "toBlock": end,
                        "topics": topics,
                    }
                )
            )
            start = end + 1
        logs = sorted(
            (log for log in raw if not log.get("removed")),
            key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])),
        )
        out = []
        for log in logs:
            name = self._topics[HexBytes(log["topics"][0])]
            out.append((name, self.contract.events[name]().process_log(log)["args"]))
        return out

    def _number(self, block: BlockIdentifier) -> int:
        if isinstance(block, int):
            return block
        if isinstance(block, str) and block.startswith("0x") and len(block) < 66:
            return int(block, 16)
        return int(self.w3.eth.get_block(block)["number"])

    def get(self, job_id: int, block: BlockIdentifier = "latest") -> OnChainJob:
        """The job's record at `block` (an ended job's last record, with its final state).

        Raises JobRecordError when the job was never posted, or when the events and the
        stored digest disagree (a node whose log index lags its state, or a reorg between the
        two reads: ask again)."""
        block = self._number(block)  # one height for the logs and the digest
        job = fold(job_id, self.events(job_id, block))
        stored = self.digest(job_id, block)
        if job is None:
            raise JobRecordError(f"job {job_id} was never posted (no JobPosted event)")
        if job.is_open and job.digest() != stored:
            raise JobRecordError(
                f"job {job_id}: the record rebuilt from its events does not hash to the "
                "stored digest (the node's logs lag its state, or a reorg: retry)"
            )
        if not job.is_open and stored != ZERO_DIGEST:
            raise JobRecordError(f"job {job_id}: ended in its events but open on chain")
        return job


def contract_abi(contract: Any) -> list[dict[str, Any]]:
    """The JSON ABI of an ape contract handle (ape keeps it as ethpm-types models)."""
    return [
        item.model_dump(mode="json", by_alias=True, exclude_none=True)
        for item in contract.contract_type.abi
    ]


def ape_reader(contract: Any) -> JobReader:
    """A JobReader for an ape contract handle, over ape's current provider."""
    from ape import chain  # the ape layer only: the oracle and the agent use plain web3

    return JobReader(chain.provider.web3, str(contract.address), contract_abi(contract))
