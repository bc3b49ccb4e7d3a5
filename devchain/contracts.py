"""The contracts on the dev chain: loading ape's build, deploying (`deploy`), sending calls
from unlocked anvil accounts (`transact`), and a whole deployed market (`setup_local_market`,
`Market`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract

from devchain.anvil import anvil_keys
from neurotoken.market.job import OnChainJob
from neurotoken.market.records import JobReader, JobRecordError
from neurotoken.market.states import JobState
from neurotoken.units import NTK
from oracle.settings import DEFAULT_ABI_PATH


def load_artifact(name: str, path: Path = DEFAULT_ABI_PATH) -> tuple[list[dict[str, Any]], str]:
    manifest = json.loads(path.read_text())
    contract = manifest["contractTypes"][name]
    return contract["abi"], contract["deploymentBytecode"]["bytecode"]


def transact(w3: Web3, fn: Any, sender: str, gas: int | None = None) -> Any:
    """Sends a contract call from an unlocked anvil account and waits for the receipt."""
    params: dict[str, Any] = {"from": sender}
    if gas is not None:
        params["gas"] = gas
    tx_hash = fn.transact(params)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.05)
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
    return receipt


def deploy(w3: Web3, name: str, sender: str, *args: Any) -> Contract:
    abi, bytecode = load_artifact(name)
    factory = w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = transact(w3, factory.constructor(*args), sender)
    address = to_checksum_address(str(receipt["contractAddress"]))
    return w3.eth.contract(address=address, abi=abi)


@dataclass
class Market:
    """A deployed NTK and market, and the anvil accounts playing each role."""

    w3: Web3
    token: Contract
    market: Contract
    owner: str
    client: str
    providers: list[str]
    oracle_keys: list[str]
    deploy_block: int

    @property
    def oracle_addresses(self) -> list[str]:
        return [Account.from_key(k).address for k in self.oracle_keys]

    @property
    def client_key(self) -> str:
        """The client's private key (an anvil dev account), to sign bundle access tokens."""
        return next(k for k in anvil_keys(20) if Account.from_key(k).address == self.client)

    @cached_property
    def reader(self) -> JobReader:
        """Reads job records (rebuilt from the market's events, checked against the digest
        it stores: `neurotoken.market.records`)."""
        return JobReader(self.w3, self.market.address, load_artifact("ComputeMarket")[0])

    def job(self, job_id: int, patience_s: float = 10.0) -> OnChainJob:
        """The job's record (its last one, with its final state, once it has ended). Raises
        `neurotoken.market.records.JobRecordError` for a job never posted (no event and no
        digest) at once; reads again for up to `patience_s` while anvil's log index lags its
        state (the events do not yet give the stored digest: seen under load, most often
        right after a block), then raises that."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                return self.reader.get(job_id)
            except JobRecordError:
                unknown = not self.reader.events(job_id) and self.reader.digest(job_id) == bytes(32)
                if unknown or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def record(self, job_id: int) -> tuple[int, int, int, bytes, bytes]:
        """The job's current record as the market's calls take it (IComputeMarket.Job)."""
        return self.job(job_id).record()

    def state(self, job_id: int) -> int:
        """The job's state (`JobState`; 0 for a job never posted)."""
        if not self.reader.events(job_id):
            return int(JobState.NONE)
        return int(self.job(job_id).state)

    def settlement_logs(self, job_id: int | None = None) -> list[tuple[str, int, str]]:
        """(event name, job id, tx hash) of every JobPaid / JobRejected on chain."""
        out = []
        for name in ("JobPaid", "JobRejected"):
            for log in self.market.events[name]().get_logs(from_block=self.deploy_block):
                jid = int(log["args"]["jobId"])
                if job_id is None or jid == job_id:
                    out.append((name, jid, "0x" + bytes(log["transactionHash"]).hex()))
        return out


def attach_market(
    w3: Web3,
    token: str,
    market: str,
    *,
    owner: str,
    client: str,
    providers: list[str],
    oracle_keys: list[str],
    deploy_block: int,
) -> Market:
    """A `Market` over contracts already deployed (by ape, say), with the anvil dev accounts
    that play each role (they are unlocked, so `transact` can send for them)."""
    token_abi, _ = load_artifact("NeuroToken")
    market_abi, _ = load_artifact("ComputeMarket")
    return Market(
        w3=w3,
        token=w3.eth.contract(address=to_checksum_address(token), abi=token_abi),
        market=w3.eth.contract(address=to_checksum_address(market), abi=market_abi),
        owner=owner,
        client=client,
        providers=providers,
        oracle_keys=oracle_keys,
        deploy_block=deploy_block,
    )


def setup_local_market(
    w3: Web3,
    oracle_count: int = 3,
    threshold: int = 2,
    fee_bps: int = 250,
    providers: int = 2,
    min_verdict_window: int = 600,
    randao_delay: int = 0,
) -> Market:
    """Deploys NTK and the market with anvil accounts: 0 owner, 1 client, 2.. providers,
    then the oracles; mints and approves NTK for client and providers, registers providers.
    `randao_delay` above 0: challenge seeds are RANDAO mixes, recorded in the RandaoRecorder
    the market creates (anvil gives each block a random mix)."""
    keys = anvil_keys(20)
    addresses = [Account.from_key(k).address for k in keys]
    owner, client = addresses[0], addresses[1]
    provider_addrs = addresses[2 : 2 + providers]
    oracle_keys = keys[2 + providers : 2 + providers + oracle_count]
    oracles = [Account.from_key(k).address for k in oracle_keys]
    token = deploy(w3, "NeuroToken", owner, owner)
    market = deploy(
        w3,
        "ComputeMarket",
        owner,
        token.address,
        owner,
        7 * 86400,
        fee_bps,
        oracles,
        threshold,
        min_verdict_window,
        randao_delay,
    )
    transact(w3, token.functions.grantRole(token.functions.MINTER_ROLE().call(), owner), owner)
    for account in [client, *provider_addrs]:
        transact(w3, token.functions.mint(account, 1_000_000 * NTK), owner)
        transact(w3, token.functions.approve(market.address, 2**256 - 1), account)
    for provider in provider_addrs:
        transact(w3, market.functions.registerProvider(10_000 * NTK, "local://provider"), provider)
    return Market(
        w3=w3,
        token=token,
        market=market,
        owner=owner,
        client=client,
        providers=provider_addrs,
        oracle_keys=oracle_keys,
        deploy_block=int(w3.eth.block_number),
    )
