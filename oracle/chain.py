"""The market as the oracle sees it: web3.py over plain JSON-RPC, nothing else.

`MarketChain` reads heads, block hashes, market logs (decoded into `ChainEvent`s), job
records and the challenge seed, decodes the market's custom errors, and builds settlement
calldata. The ABI comes from ape's build manifest (`.build/__local__.json`), the one place
ABIs live.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from eth_utils.abi import event_abi_to_log_topic
from eth_utils.address import to_checksum_address as checksum
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.exceptions import Web3RPCError
from web3.types import BlockIdentifier, LogReceipt

from neurotoken.chain.reverts import DecodedError, ErrorDecoder, plain
from neurotoken.market.job import OnChainJob
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

    def __init__(self, rpc_url: str, market: str, abi_path: Path, timeout_s: float = 10.0) -> None:
        if not market:
            raise ConfigError("no market address: set ORACLE_MARKET")
        self.w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        self.abi = load_abi(abi_path)
        self.address = checksum(market)
        self.contract: Contract = self.w3.eth.contract(address=self.address, abi=self.abi)
        self._topics = {
            HexBytes(event_abi_to_log_topic(item)): item["name"]  # type: ignore[arg-type]
            for item in self.abi
            if item["type"] == "event" and item["name"] in EVENTS
        }
        self._errors = ErrorDecoder(self.abi, hex_bytes=True)
        self._chain_id: int | None = None

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
        data = {k: plain(v, hex_bytes=True) for k, v in decoded["args"].items()}
        job_id = data.get("jobId")
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

    def get_job(self, job_id: int, block: BlockIdentifier = "latest") -> OnChainJob:
        raw = self.contract.functions.getJob(job_id).call(block_identifier=block)
        return OnChainJob.from_struct(job_id, raw)

    def challenge_seed(self, job_id: int, block: BlockIdentifier = "latest") -> bytes:
        return bytes(self.contract.functions.challengeSeed(job_id).call(block_identifier=block))

    def threshold(self) -> int:
        return int(self.contract.functions.threshold().call())

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

    def is_oracle(self, account: str) -> bool:
        return bool(self.contract.functions.isOracle(checksum(account)).call())

    def is_job_oracle(self, job_id: int, account: str) -> bool:
        """Whether `account`'s signature counts for `job_id` (an oracle of its epoch)."""
        return bool(self.contract.functions.isJobOracle(job_id, checksum(account)).call())

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
                d = ev.data
                return (
                    SpecRow(
                        job_id=job_id,
                        spec_hash=bytes.fromhex(str(d["specHash"])[2:]),
                        spec_uri=str(d["specURI"]),
                        shard_count=int(d["shardCount"]),
                        challenge_count=int(d["challengeCount"]),
                        verdict_by=int(d["verdictBy"]),
                        accept_by=int(d["acceptBy"]),
                        deliver_by=int(d["deliverBy"]),
                    ),
                    ev.block_number,
                )
        return None

    # ------------------------------------------------------------------ settlements

    def settle_data(self, job_id: int, accepted: bool, sigs: list[bytes]) -> bytes:
        return bytes(HexBytes(self.contract.encode_abi("settle", args=[job_id, accepted, sigs])))

    def settle_batch_data(self, entries: list[tuple[int, bool]], sigs: list[bytes]) -> bytes:
        return bytes(
            HexBytes(
                self.contract.encode_abi("settleBatch", args=[[list(e) for e in entries], sigs])
            )
        )

    def fix_seed_data(self, job_id: int) -> bytes:
        return bytes(HexBytes(self.contract.encode_abi("fixChallengeSeed", args=[job_id])))

    def expire_data(self, job_id: int) -> bytes:
        return bytes(HexBytes(self.contract.encode_abi("expireJob", args=[job_id])))

    def decode_error(self, data: bytes | str | None) -> DecodedError | None:
        """A market (or OpenZeppelin) custom error from revert data, if it is one."""
        return self._errors.decode(data)


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
