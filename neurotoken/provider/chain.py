"""The market as the provider agent sees it: web3.py over JSON-RPC, signing with a local key.

ABIs come from ape's build output: `ape compile` writes an EthPM v3 package manifest to
`.build/__local__.json`, whose `contractTypes.<Name>.abi` holds each contract's ABI (the
`ComputeMarket` and `NeuroToken` entries are used). The agent never imports ape, so it runs
as a plain long-lived process next to any node.

`MarketClient` reads jobs and providers, scans logs in bounded block ranges, and sends
transactions: gas is estimated first (a revert is decoded into the market's or the token's
custom error and raised as `ChainRevertError` before anything is signed), the fee paid is
checked against the account's ETH, and `on_sent(tx_hash)` runs before the transaction is
broadcast, so a caller can record it and a restart can find it. A transaction that gets no
receipt for a few blocks is re-signed at its nonce with higher fees (the shared
`neurotoken.chain.sender.Sender`, set up for the agent in `sending.py`, settings in
`TxSettings`); `on_sent` hears of every replacement before it is broadcast, and `resume` takes
over a transaction left pending by an earlier run.

The market stores only the keccak256 of each job's record: `get_job` rebuilds the record from
the job's events (`neurotoken.market.records.JobReader`, checked against the stored digest),
and the calls about a job (acceptJob, submitResult) take that record as it is when they run,
so a caller reads it right before sending, and a record that changed in between makes the
call revert with MarketJobRecordMismatch (read it again and decide again).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound
from web3.types import BlockIdentifier, EventData, TxData, TxParams, TxReceipt

from neurotoken.chain.reverts import ErrorDecoder
from neurotoken.chain.sender import Call, Sender
from neurotoken.errors import ConfigError
from neurotoken.market.acceptance import sign_acceptance
from neurotoken.market.job import OnChainJob
from neurotoken.market.records import JobReader
from neurotoken.market.verdicts import MarketDomain
from neurotoken.provider.errors import (
    ChainRevertError,
    InsufficientGasError,
)
from neurotoken.provider.sending import TxSettings, agent_sender, followed, landed
from neurotoken.redact import url_origin

DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / ".build" / "__local__.json"
"""Ape's build manifest in this checkout (NEUROTOKEN_ABI_MANIFEST or --abi overrides it)."""

ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class MarketTerms:
    """What the market writes into the record of a job posted now."""

    fee_bps: int
    oracle_epoch: int
    threshold: int


@dataclass(frozen=True)
class ProviderAccount:
    """IComputeMarket.Provider, decoded."""

    stake_ntk: int
    earned_ntk: int
    unbond_ready_at: int
    registered: bool
    unbonding_ntk: int


def load_abi(name: str, manifest: Path | None = None) -> list[dict[str, Any]]:
    """The ABI of contract `name` from ape's build manifest."""
    path = manifest or DEFAULT_MANIFEST
    try:
        data = json.loads(path.read_text())
        abi: list[dict[str, Any]] = data["contractTypes"][name]["abi"]
    except FileNotFoundError:
        raise ConfigError(f"no build manifest at {path}: run `ape compile` first") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path} has no ABI for {name} ({exc}): run `ape compile`") from None
    return abi


class MarketClient:
    """Read access to the market and its token, and transactions signed by `account`."""

    def __init__(
        self,
        w3: Web3,
        market_address: str,
        account: LocalAccount | None = None,
        *,
        manifest: Path | None = None,
        tx_settings: TxSettings | None = None,
        log_chunk_blocks: int = 5_000,
    ) -> None:
        if not is_address(market_address):
            raise ConfigError(f"not an address: {market_address!r}")
        self.w3 = w3
        self.account = account
        self.manifest = manifest
        self.tx_settings = tx_settings or TxSettings()
        self.log_chunk_blocks = log_chunk_blocks
        address = to_checksum_address(market_address)
        try:
            code = w3.eth.get_code(address)
        except Exception as exc:  # connection refused, DNS, timeouts: all config problems
            # The exception's text repeats the URL's path, where providers put API keys:
            # name the failure and the host only.
            raise ConfigError(
                f"cannot reach the node at {node_host(w3)}: {type(exc).__name__}; check --rpc"
            ) from None
        if len(code) == 0:
            raise ConfigError(f"no contract at {address} on chain {w3.eth.chain_id}")
        market_abi = load_abi("ComputeMarket", manifest)
        token_abi = load_abi("NeuroToken", manifest)
        self.market: Contract = w3.eth.contract(address=address, abi=market_abi)
        self.market_abi = market_abi
        self._job_readers: dict[int, JobReader] = {}
        try:
            token_address = self.market.functions.token().call()
        except (ContractLogicError, ValueError) as exc:
            raise ConfigError(f"{address} is not a ComputeMarket ({exc})") from None
        self.token: Contract = w3.eth.contract(address=token_address, abi=token_abi)
        self.chain_id = int(w3.eth.chain_id)
        self._errors = ErrorDecoder(market_abi, token_abi)

    @classmethod
    def connect(
        cls,
        rpc_url: str,
        market_address: str,
        account: LocalAccount | None = None,
        *,
        manifest: Path | None = None,
        timeout_s: float = 30.0,
        tx_settings: TxSettings | None = None,
    ) -> MarketClient:
        w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        return cls(w3, market_address, account, manifest=manifest, tx_settings=tx_settings)

    def reader(self) -> MarketClient:
        """A read-only client of the same market over its own connection to the same node,
        for another thread (the bundle server's access checks)."""
        provider = self.w3.provider
        if isinstance(provider, HTTPProvider) and provider.endpoint_uri:
            w3 = Web3(HTTPProvider(provider.endpoint_uri, request_kwargs={"timeout": 30}))
        else:
            w3 = self.w3
        return MarketClient(w3, self.market_address, manifest=self.manifest)

    # ------------------------------------------------------------------ identity

    @property
    def address(self) -> str:
        return str(self._signer().address)

    @property
    def market_address(self) -> str:
        return str(self.market.address)

    # ------------------------------------------------------------------ views

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def timestamp(self) -> int:
        """The latest block's timestamp: deadlines are judged by chain time, not the clock."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def job_reader(self, from_block: int = 0) -> JobReader:
        """The reader of job records whose log searches start at `from_block` (the market's
        deployment block, or where the agent began scanning; 0 when unknown)."""
        reader = self._job_readers.get(from_block)
        if reader is None:
            reader = JobReader(self.w3, self.market_address, self.market_abi, from_block)
            self._job_readers[from_block] = reader
        return reader

    def get_job(
        self, job_id: int, *, from_block: int = 0, block: BlockIdentifier = "latest"
    ) -> OnChainJob:
        """The job's record at `block` (an ended job's last one, with its final state), rebuilt
        from its events since `from_block` and checked against the digest the market stores.
        JobRecordError (a LookupError) when the job was never posted there, or when the node's
        logs and state disagree (a lagging node, a reorg: ask again)."""
        return self.job_reader(from_block).get(job_id, block)

    def get_provider(self, address: str | None = None) -> ProviderAccount:
        raw = self._call(self.market.functions.getProvider(address or self.address), "getProvider")
        return ProviderAccount(int(raw[0]), int(raw[1]), int(raw[2]), bool(raw[3]), int(raw[4]))

    def ntk_balance(self, address: str | None = None) -> int:
        return int(self.token.functions.balanceOf(address or self.address).call())

    def allowance(self, address: str | None = None) -> int:
        owner = address or self.address
        return int(self.token.functions.allowance(owner, self.market.address).call())

    def eth_balance(self, address: str | None = None) -> int:
        return int(self.w3.eth.get_balance(to_checksum_address(address or self.address)))

    def is_epoch_oracle(self, epoch: int, account: str) -> bool:
        """Whether `account` is an oracle of oracle epoch `epoch`, i.e. its signature counts for
        the jobs posted in that epoch (a job's record says which: `OnChainJob.oracle_epoch`).
        Every change of the oracle set opens a new epoch, so the answer never changes."""
        fn = self.market.functions.isEpochOracle(epoch, to_checksum_address(account))
        return bool(self._call(fn, f"isEpochOracle({epoch})"))

    def unbonding_delay(self) -> int:
        return int(self.market.functions.unbondingDelay().call())

    def market_terms(self) -> MarketTerms:
        """The fee, oracle epoch and threshold a job posted now gets (a quote signs them)."""
        f = self.market.functions
        return MarketTerms(
            int(self._call(f.feeBps(), "feeBps")),
            int(self._call(f.oracleEpoch(), "oracleEpoch")),
            int(self._call(f.threshold(), "threshold")),
        )

    def minimum_collateral(self, payment_ntk: int, shard_count: int, challenge_count: int) -> int:
        """The market's `minimumCollateral` (ChainRevertError for counts it refuses)."""
        fn = self.market.functions.minimumCollateral(payment_ntk, shard_count, challenge_count)
        return int(self._call(fn, "minimumCollateral"))

    def min_verdict_window(self) -> int:
        return int(self._call(self.market.functions.minVerdictWindow(), "minVerdictWindow"))

    def domain(self) -> MarketDomain:
        """The market's EIP-712 domain (verdicts and acceptances are signed in it)."""
        return MarketDomain(self.chain_id, self.market_address)

    def sign_acceptance(self, job: OnChainJob) -> bytes:
        """This provider's acceptance of `job` (a `quoted_job`), signed with the key that sends
        its transactions: what `postAcceptedJob` checks against the job's provider."""
        return sign_acceptance(self._signer().key, self.domain(), job)

    # ------------------------------------------------------------------ logs

    def logs(
        self,
        event: str,
        from_block: int,
        to_block: int,
        argument_filters: dict[str, Any] | None = None,
    ) -> Iterator[EventData]:
        """Decoded `event` logs in [from_block, to_block], fetched in bounded block ranges."""
        start = max(0, from_block)
        while start <= to_block:
            end = min(to_block, start + self.log_chunk_blocks - 1)
            yield from self.market.events[event]().get_logs(
                argument_filters=argument_filters, from_block=start, to_block=end
            )
            start = end + 1

    # ------------------------------------------------------------------ errors

    def decode_revert(self, data: Any) -> tuple[str, dict[str, Any]] | None:
        """The custom error in revert `data` (hex, bytes or an RPC error), or None when it is
        not one of the market's or the token's."""
        decoded = self._errors.decode(data)
        return None if decoded is None else (decoded.name, decoded.args)

    def _raise_revert(self, action: str, exc: Exception) -> None:
        data = getattr(exc, "data", None)
        decoded = self.decode_revert(data)
        if decoded is not None:
            raise ChainRevertError(action, *decoded) from None
        message = getattr(exc, "message", None) or str(exc)
        raise ChainRevertError(action, "Revert", {"reason": message}) from None

    def _call(self, fn: ContractFunction, action: str) -> Any:
        try:
            return fn.call()
        except (ContractCustomError, ContractLogicError) as exc:
            self._raise_revert(action, exc)

    # ------------------------------------------------------------------ transactions

    def transact(
        self,
        fn: ContractFunction,
        action: str,
        on_sent: Callable[[str], None] | None = None,
        on_broadcast: Callable[[], None] | None = None,
    ) -> TxReceipt:
        """Estimates, signs, records (`on_sent`), broadcasts `fn`, and waits for the receipt of
        any attempt at its nonce, replacing it with higher fees while it is stuck.
        `on_broadcast()` runs after each attempt is broadcast (fault injection)."""
        account = self._signer()
        params: TxParams = {"from": account.address, "chainId": self.chain_id}
        try:
            # estimated without fees, as the account may hold no ETH (said below, in words)
            tx = fn.build_transaction(params)
        except (ContractCustomError, ContractLogicError) as exc:
            self._raise_revert(action, exc)
        gas = int(tx["gas"])
        gas += gas // 5  # headroom: estimates are exact for the state they saw
        sender = self._sender(account, action, on_sent, on_broadcast)
        fees = sender.fees()
        needed = gas * fees.max_fee
        balance = self.eth_balance(account.address)
        if balance < needed:
            raise InsufficientGasError(account.address, balance, needed)
        call = Call(str(tx["to"]), bytes(HexBytes(tx["data"])), gas, int(tx.get("value", 0)))
        sender.sync()
        sent = sender.send(call, action, fees=fees)
        return self._checked(*followed(sender, sent, self.tx_settings), action)

    def resume(
        self, tx_hash: str, action: str, on_sent: Callable[[str], None] | None = None
    ) -> TxReceipt:
        """Follows `tx_hash`, sent by this account before (a restart), like `transact` follows
        what it sends: its receipt or that of a replacement at its nonce; `on_sent` hears of
        each replacement before it is broadcast."""
        account = self._signer()
        tx: TxData = self.w3.eth.get_transaction(HexBytes(tx_hash))
        if to_checksum_address(tx["from"]) != to_checksum_address(account.address):
            raise ConfigError(f"{tx_hash} was sent by {tx['from']}, not by {account.address}")
        if tx.get("blockNumber") is not None:  # mined since the caller looked
            return self._checked(tx_hash, self.w3.eth.get_transaction_receipt(tx["hash"]), action)
        sender = self._sender(account, action, on_sent)
        pending = sender.adopt(tx, action)
        return self._checked(*landed(sender, pending, self.tx_settings), action)

    def _sender(
        self,
        account: LocalAccount,
        action: str,
        on_sent: Callable[[str], None] | None,
        on_broadcast: Callable[[], None] | None = None,
    ) -> Sender:
        return agent_sender(
            self.w3, account, self.tx_settings, action, on_sent, self.chain_id, on_broadcast
        )

    def _signer(self) -> LocalAccount:
        if self.account is None:
            raise ConfigError("this command signs transactions: give a keystore (--keystore)")
        return self.account

    def _checked(self, tx_hash: str, receipt: TxReceipt, action: str) -> TxReceipt:
        """`receipt`; ChainRevertError (decoded by replay) if the transaction failed."""
        if int(receipt["status"]) != 1:
            self._replay_failure(tx_hash, int(receipt["blockNumber"]), action)
        return receipt

    def tx_status(self, tx_hash: str) -> str:
        """'mined', 'failed', 'pending' or 'unknown' (dropped, or never broadcast)."""
        try:
            receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            receipt = None
        if receipt is not None:
            return "mined" if int(receipt["status"]) == 1 else "failed"
        try:
            self.w3.eth.get_transaction(HexBytes(tx_hash))
        except TransactionNotFound:
            return "unknown"
        return "pending"

    def _replay_failure(self, tx_hash: str, block: int, action: str) -> None:
        tx = self.w3.eth.get_transaction(HexBytes(tx_hash))
        call: TxParams = {"from": tx["from"], "to": tx["to"], "data": tx["input"]}
        try:
            self.w3.eth.call(call, block - 1)
        except (ContractCustomError, ContractLogicError) as exc:
            self._raise_revert(action, exc)
        raise ChainRevertError(action, "Revert", {"tx": tx_hash, "reason": "out of gas?"})

    # ------------------------------------------------------------------ helpers

    def wait_for_block(self, number: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.head() < number:
            if time.monotonic() > deadline:
                raise ConfigError(f"block {number} did not arrive within {timeout_s:.0f} s")
            time.sleep(0.5)


def node_host(w3: Web3) -> str:
    """scheme://host:port of `w3`'s HTTP endpoint, without credentials, path or query (where
    node providers put API keys), for messages."""
    return url_origin(str(getattr(w3.provider, "endpoint_uri", "") or ""))
