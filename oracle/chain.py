"""The market as the oracle sees it: web3.py over plain JSON-RPC, nothing else.

`MarketChain` reads heads, block hashes, market logs (decoded into `ChainEvent`s), job
records and the challenge seed, decodes the market's custom errors, and builds the calldata
of settlements and upkeep calls. The ABI comes from ape's build manifest
(`.build/__local__.json`), the one place ABIs live.

The market stores only the keccak256 of each open job's record; the record lives in the
job's events. `get_job` rebuilds it from them (`neurotoken.market.records.JobReader`, which
checks it against `jobDigest` at the same block and raises `JobRecordError` when the two
disagree: a node whose logs lag its state, or a reorg in between; the callers treat that as
transient and ask again next tick). The events are searched for from the block the job was
posted in when the caller knows it (the oracle's store does), else from `from_block` (the
oracle's start block), in ranges of at most `block_range` blocks.

Every call about a job takes its CURRENT record: the calldata builders take the `OnChainJob`
read just before, never one remembered from earlier (a stale record reverts
`MarketJobRecordMismatch`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from eth_utils.abi import event_abi_to_log_topic
from eth_utils.address import to_checksum_address as checksum
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.types import BlockIdentifier, LogReceipt

from neurotoken.chain.headers import header_at
from neurotoken.chain.reverts import DecodedError, ErrorDecoder, plain
from neurotoken.market.job import OnChainJob
from neurotoken.market.records import MAX_BLOCK_RANGE, JobReader, JobRecordError
from oracle.errors import ConfigError
from oracle.store import ChainEvent, SpecRow

EVENTS = (
    "JobPosted",
    "ResultSubmitted",
    "JobPaid",
    "JobRejected",
    "JobLapsed",
    "JobCancelled",
    "JobExpired",
    "JobDefaulted",
)
"""The market events the oracle ingests."""

RECORD_KEYS = ("clientAndPayment", "providerAndCollateral", "terms", "specHash", "resultRoot")
"""IComputeMarket.Job's words, in order."""

__all__ = [
    "EVENTS",
    "RECORD_KEYS",
    "BlockInfo",
    "JobRecordError",
    "MarketChain",
    "load_abi",
    "posted_fields",
    "revert_data",
    "spec_row",
]


@dataclass(frozen=True)
class BlockInfo:
    number: int
    hash: str
    timestamp: int
    base_fee: int


def load_abi(path: Path, name: str = "ComputeMarket") -> list[dict[str, Any]]:
    """The ABI of contract `name` from ape's build manifest."""
    try:
        manifest = json.loads(path.read_text())
        abi: list[dict[str, Any]] = manifest["contractTypes"][name]["abi"]
    except FileNotFoundError:
        raise ConfigError(f"no build manifest at {path}: run `ape compile` first") from None
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{path} has no ABI for {name}: {exc}") from None
    return abi


class MarketChain:
    """Read access to the chain and the market, plus the calldata of settlements."""

    def __init__(
        self,
        rpc_url: str,
        market: str,
        abi_path: Path,
        timeout_s: float = 10.0,
        from_block: int = 0,
        block_range: int = MAX_BLOCK_RANGE,
    ) -> None:
        if not market:
            raise ConfigError("no market address: set ORACLE_MARKET")
        self.w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        self.abi = load_abi(abi_path)
        self.recorder_abi = load_abi(abi_path, "RandaoRecorder")
        self.address = checksum(market)
        self.contract: Contract = self.w3.eth.contract(address=self.address, abi=self.abi)
        self._recorder: Contract | None = None
        self._randao_delay: int | None = None
        self._topics = {
            HexBytes(event_abi_to_log_topic(item)): item["name"]  # type: ignore[arg-type]
            for item in self.abi
            if item["type"] == "event" and item["name"] in EVENTS
        }
        self._errors = ErrorDecoder(self.abi, self.recorder_abi, hex_bytes=True)
        self._chain_id: int | None = None
        self.from_block = from_block
        self.block_range = block_range
        self._readers: dict[int, JobReader] = {}
        self._epoch_oracles: dict[tuple[int, str], bool] = {}

    # ------------------------------------------------------------------ chain

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def block(self, number: int | str = "latest") -> BlockInfo | None:
        """The block, or None if the chain has no block at that height (yet, or any more)."""
        try:
            raw = self.w3.eth.get_block(number)  # type: ignore[arg-type]
        except Exception as exc:
            if type(exc).__name__ == "BlockNotFound":
                return None
            raise
        return BlockInfo(
            number=int(raw["number"]),
            hash="0x" + bytes(raw["hash"]).hex(),
            timestamp=int(raw["timestamp"]),
            base_fee=int(raw.get("baseFeePerGas", 0) or 0),
        )

    def block_hash(self, number: int) -> str | None:
        info = self.block(number)
        return None if info is None else info.hash

    def receipt_block(self, tx_hash: str) -> tuple[int, str] | None:
        """(number, hash) of the block that holds transaction `tx_hash` by its receipt, or
        None when the node has no receipt for it (not mined, or no longer: a reorg)."""
        try:
            receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None
        number, block_hash = receipt.get("blockNumber"), receipt.get("blockHash")
        if number is None or block_hash is None:
            return None
        return int(number), "0x" + bytes(block_hash).hex()

    def logs(self, from_block: int, to_block: int) -> list[ChainEvent]:
        """The market's logs of interest in [from_block, to_block], decoded, in order."""
        raw = self.w3.eth.get_logs(
            {
                "address": self.address,
                "fromBlock": from_block,
                "toBlock": to_block,
                "topics": [list(self._topics)],
            }
        )
        out = []
        for log in raw:
            ev = self.decode_log(log)
            if ev is not None:
                out.append(ev)
        return sorted(out, key=lambda e: (e.block_number, e.log_index))

    def decode_log(self, log: LogReceipt) -> ChainEvent | None:
        if log.get("removed"):
            return None
        topics = log["topics"]
        if not topics:
            return None
        name = self._topics.get(HexBytes(topics[0]))
        if name is None:
            return None
        decoded = self.contract.events[name]().process_log(log)
        args = dict(decoded["args"])
        record = args.pop("job", None)
        data = {k: plain(v, hex_bytes=True) for k, v in args.items()}
        job_id = data.get("jobId")
        if record is not None:  # JobPosted: its first record, as words and unpacked
            data.update(posted_fields(int(args["jobId"]), record))
        return ChainEvent(
            block_number=int(log["blockNumber"]),
            log_index=int(log["logIndex"]),
            block_hash="0x" + bytes(log["blockHash"]).hex(),
            tx_hash="0x" + bytes(log["transactionHash"]).hex(),
            name=name,
            job_id=None if job_id is None else int(job_id),
            data=data,
        )

    # ------------------------------------------------------------------ market views

    def records(self, from_block: int | None = None) -> JobReader:
        """The reader of job records whose events are searched for from `from_block`
        (default: this chain's `from_block`)."""
        start = self.from_block if from_block is None else max(0, from_block)
        reader = self._readers.get(start)
        if reader is None:
            reader = JobReader(self.w3, self.address, self.abi, start, self.block_range)
            if len(self._readers) >= 256:  # one per posting block of the jobs in flight
                self._readers.clear()
            self._readers[start] = reader
        return reader

    def get_job(
        self, job_id: int, block: BlockIdentifier = "latest", *, from_block: int | None = None
    ) -> OnChainJob:
        """The job's record at `block` (an ended job's last one, with its final state),
        rebuilt from its events since `from_block` (best: the block it was posted in) and
        checked against `jobDigest` at that block.

        Raises JobRecordError when the job was never posted (since `from_block`) or its
        events and digest disagree (a lagging node, a reorg in between): transient, ask
        again later."""
        return self.records(from_block).get(job_id, block)

    def challenge_seed(
        self, job_id: int, seed_block: int, block: BlockIdentifier = "latest"
    ) -> bytes:
        """The challenge seed of a job committed with seed block `seed_block` (its
        ResultSubmitted's, from the record)."""
        fn = self.contract.functions.challengeSeed(job_id, seed_block)
        return bytes(fn.call(block_identifier=block))

    # ------------------------------------------------------------------ RANDAO seeds

    @property
    def randao_delay(self) -> int:
        """The market's `randaoDelay` (read once: fixed at deployment): 0 when challenge
        seeds are block hashes, else blocks from a commit to the block whose RANDAO mix,
        recorded in the market's RandaoRecorder, seeds its challenge."""
        if self._randao_delay is None:
            self._randao_delay = int(self.contract.functions.randaoDelay().call())
        return self._randao_delay

    @property
    def recorder(self) -> Contract:
        """The market's RandaoRecorder (on a RANDAO-seeded market)."""
        if self._recorder is None:
            address = checksum(self.contract.functions.randaoRecorder().call())
            self._recorder = self.w3.eth.contract(address=address, abi=self.recorder_abi)
        return self._recorder

    def randao_recorded(self, block_number: int) -> bool:
        """Whether the RANDAO mix of `block_number` is recorded (at the head)."""
        mix = bytes(self.recorder.functions.mixOf(block_number).call())
        return mix != bytes(32)

    def record_randao_data(self, block_number: int) -> bytes:
        """`record` of block `block_number`'s header, rebuilt from the node's block
        (BlockHeaderError when it cannot be: a header field this code does not know)."""
        header = header_at(self.w3, block_number)
        return bytes(HexBytes(self.recorder.encode_abi("record", args=[header])))

    def oracles(self) -> list[str]:
        """The current oracle set, sorted by address (the order every oracle ranks by)."""
        members = self.contract.functions.oracles().call()
        return sorted((checksum(a) for a in members), key=lambda a: int(a, 16))

    def has_pending(self, account: str) -> bool:
        """Whether `account` has a transaction in the node's pool (as far as the node
        shows: a node without a public pool answers False). RPC trouble answers False."""
        try:
            pending = self.w3.eth.get_transaction_count(checksum(account), "pending")
            latest = self.w3.eth.get_transaction_count(checksum(account), "latest")
        except (Web3RPCError, requests.RequestException, OSError, ValueError):
            return False
        return int(pending) > int(latest)

    def is_epoch_oracle(self, epoch: int, account: str) -> bool:
        """Whether `account`'s signature counts for the jobs posted in oracle epoch `epoch`
        (a record's `oracle_epoch`). Every change of the oracle set starts a new epoch, so
        the answer never changes: each is read once."""
        key = (int(epoch), checksum(account))
        value = self._epoch_oracles.get(key)
        if value is None:
            value = bool(self.contract.functions.isEpochOracle(*key).call())
            self._epoch_oracles[key] = value
        return value

    def find_spec(self, job_id: int) -> tuple[SpecRow, int] | None:
        """The JobPosted record of a job (for one posted before the oracle's start block)."""
        topic = next(t for t, n in self._topics.items() if n == "JobPosted")
        raw = self.w3.eth.get_logs(
            {
                "address": self.address,
                "fromBlock": 0,
                "toBlock": "latest",
                "topics": [topic, HexBytes(job_id.to_bytes(32, "big"))],
            }
        )
        for log in raw:
            ev = self.decode_log(log)
            if ev is not None and ev.name == "JobPosted":
                return spec_row(job_id, ev.data), ev.block_number
        return None

    # ------------------------------------------------------------------ settlements

    def settle_data(self, job: OnChainJob, accepted: bool, sigs: list[bytes]) -> bytes:
        """`settle` of `job` (its current record) with a quorum's signatures."""
        args = [job.job_id, job.record(), accepted, sigs]
        return bytes(HexBytes(self.contract.encode_abi("settle", args=args)))

    def settle_batch_data(self, entries: list[tuple[OnChainJob, bool]], sigs: list[bytes]) -> bytes:
        """`settleBatch` of (current record, verdict) entries with the batch's signatures."""
        batch = [(job.job_id, job.record(), accepted) for job, accepted in entries]
        return bytes(HexBytes(self.contract.encode_abi("settleBatch", args=[batch, sigs])))

    def fix_seed_data(self, job: OnChainJob) -> bytes:
        args = [job.job_id, job.record()]
        return bytes(HexBytes(self.contract.encode_abi("fixChallengeSeed", args=args)))

    def expire_data(self, job: OnChainJob) -> bytes:
        args = [job.job_id, job.record()]
        return bytes(HexBytes(self.contract.encode_abi("expireJob", args=args)))

    def decode_error(self, data: bytes | str | None) -> DecodedError | None:
        """A market (or OpenZeppelin) custom error from revert data, if it is one."""
        return self._errors.decode(data)


def posted_fields(job_id: int, record: Any) -> dict[str, Any]:
    """What ingestion keeps of a JobPosted's `job` record (decoded: a mapping or the five
    words): the words (bytes32 as 0x hex, for JSON) and, unpacked, the fields the event
    carried before records were passed around (specHash, paymentNtk, ..., verdictBy), so
    the store reads a posted job as it always has."""
    words = [record[k] for k in RECORD_KEYS] if isinstance(record, Mapping) else list(record)
    job = OnChainJob.from_record(job_id, words)
    return {
        "job": [plain(w, hex_bytes=True) for w in words],
        "specHash": "0x" + job.spec_hash.hex(),
        "paymentNtk": job.payment_ntk,
        "collateralNtk": job.collateral_ntk,
        "shardCount": job.shard_count,
        "challengeCount": job.challenge_count,
        "acceptBy": job.accept_by,
        "deliverBy": job.deliver_by,
        "verdictBy": job.verdict_by,
        "feeBps": job.fee_bps,
        "oracleEpoch": job.oracle_epoch,
        "threshold": job.threshold,
    }


def spec_row(job_id: int, data: dict[str, Any]) -> SpecRow:
    """The spec row of a JobPosted, from its decoded data (`posted_fields` and specURI)."""
    return SpecRow(
        job_id=job_id,
        spec_hash=bytes.fromhex(str(data["specHash"])[2:]),
        spec_uri=str(data["specURI"]),
        shard_count=int(data["shardCount"]),
        challenge_count=int(data["challengeCount"]),
        verdict_by=int(data["verdictBy"]),
        accept_by=int(data["acceptBy"]),
        deliver_by=int(data["deliverBy"]),
    )


def revert_data(exc: BaseException) -> bytes | None:
    """The revert data carried by a web3 exception, if any."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes(HexBytes(data))
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, dict):
        inner = data.get("data")
        if isinstance(inner, str) and inner.startswith("0x"):
            return bytes(HexBytes(inner))
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, str) and arg.startswith("0x") and len(arg) >= 10:
            try:
                return bytes(HexBytes(arg))
            except ValueError:
                continue
    return None
