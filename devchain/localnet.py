"""A whole market on one machine, for the end-to-end tests, the benchmark and the demo:
an anvil node, the NTK and market contracts deployed from ape's build, a client, honest and
cheating providers serving real proof bundles, oracle processes, and an RPC proxy that
drops, delays and breaks requests.

Nothing here is a mock: anvil is the real node (`node_modules/.bin/anvil`), the contracts
are the compiled ones, the providers compute real shards with `neurotoken.provider`, and
each oracle is ``python -m oracle run`` in its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web
from eth_account import Account
from eth_typing import HexStr
from eth_utils.address import to_checksum_address
from web3 import HTTPProvider, Web3
from web3.contract import Contract

from neurotoken.chain.keystore import write_keystore
from neurotoken.jobs.spec import ShelfImagesSpec, TrainingSpec, parse_spec, spec_hash, spec_json
from neurotoken.proofs.store import LocalStore
from neurotoken.provider import BundleServer, compute_job, make_app, publish_bundle
from neurotoken.provider.readers import JobReaders
from neurotoken.provider.server import BundleGate
from neurotoken.units import NTK
from oracle.settings import DEFAULT_ABI_PATH, REPO_ROOT

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"

ZERO = "0x" + "00" * 20
AnySpec = ShelfImagesSpec | TrainingSpec


def _die_with_parent() -> None:
    """In a child before exec: ask Linux for SIGTERM when the parent dies, so an
    interrupted test run leaves no node or oracle behind (a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def anvil_keys(count: int = 20) -> list[str]:
    """The private keys anvil derives from its default mnemonic (hex, 0x-prefixed)."""
    Account.enable_unaudited_hdwallet_features()
    return [
        "0x"
        + bytes(Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key).hex()
        for i in range(count)
    ]


def anvil_binary() -> Path:
    path = REPO_ROOT / "node_modules" / ".bin" / "anvil"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make setup` (npm ci)")
    return path


class Anvil:
    """An anvil node on a free port: automine (default), interval mining (`block_time`),
    or both (`mixed`: transactions mine at once and a block comes every `block_time`)."""

    def __init__(
        self,
        block_time: float | None = None,
        mixed: bool = False,
        accounts: int = 20,
        log_path: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.block_time = block_time
        self.mixed = mixed
        self.accounts = accounts
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Anvil:
        args = [
            str(anvil_binary()),
            "--port", str(self.port),
            "--hardfork", "prague",
            "--accounts", str(self.accounts),
            "--balance", "100000",
            "--silent",
        ]  # fmt: skip
        if self.block_time is not None:
            args += ["--block-time", str(self.block_time)]
            if self.mixed:
                args.append("--mixed-mining")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        w3 = self.web3()
        deadline = time.monotonic() + 30
        while True:
            try:
                if w3.eth.block_number >= 0:
                    return self
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("anvil did not start") from None
                time.sleep(0.1)

    def web3(self, timeout: float = 30) -> Web3:
        return Web3(HTTPProvider(self.url, request_kwargs={"timeout": timeout}))

    def rpc(self, method: str, *params: Any) -> Any:
        response = self.web3().provider.make_request(method, list(params))  # type: ignore[arg-type]
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response.get("result")

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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
        """The client's private key (anvil account 1), to sign bundle access tokens."""
        return anvil_keys(2)[1]

    def job(self, job_id: int) -> tuple[Any, ...]:
        return tuple(self.market.functions.getJob(job_id).call())

    def state(self, job_id: int) -> int:
        return int(self.job(job_id)[6])

    def settlement_logs(self, job_id: int | None = None) -> list[tuple[str, int, str]]:
        """(event name, job id, tx hash) of every JobPaid / JobRejected on chain."""
        out = []
        for name in ("JobPaid", "JobRejected"):
            for log in self.market.events[name]().get_logs(from_block=self.deploy_block):
                jid = int(log["args"]["jobId"])
                if job_id is None or jid == job_id:
                    out.append((name, jid, "0x" + bytes(log["transactionHash"]).hex()))
        return out


def setup_local_market(
    w3: Web3,
    oracle_count: int = 3,
    threshold: int = 2,
    fee_bps: int = 250,
    providers: int = 2,
    min_verdict_window: int = 600,
) -> Market:
    """Deploys NTK and the market with anvil accounts: 0 owner, 1 client, 2.. providers,
    then the oracles; mints and approves NTK for client and providers, registers providers."""
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


SCENE = {
    "width": 64,
    "height": 48,
    "shelves": 2,
    "max_products_per_shelf": 5,
    "occlusion_pct": 40,
    "lighting_pct": 20,
    "noise_level": 4,
}


def small_spec(seed: int = 11, shards: int = 16, images: int = 1, **scene: int) -> AnySpec:
    """A shelf-images spec that computes in well under a second."""
    return parse_spec(
        {
            "kind": "shelf-images",
            "version": 1,
            "seed": seed,
            "scene": {**SCENE, **scene},
            "images_per_shard": images,
            "shard_count": shards,
        }
    )


@dataclass
class Client:
    """Posts jobs, publishing each spec as a file the oracles read."""

    m: Market
    folder: Path

    def post(
        self,
        spec: AnySpec,
        k: int = 4,
        payment: int = 100 * NTK,
        collateral: int = 400 * NTK,
        provider: str = ZERO,
        verdict_window_s: int = 3 * 3600,
        spec_uri: str | None = None,
    ) -> int:
        data = spec_json(spec)
        digest = spec_hash(spec)
        if spec_uri is None:
            path = self.folder / f"0x{digest.hex()}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            spec_uri = path.as_uri()
        now = int(self.m.w3.eth.get_block("latest")["timestamp"])
        request = (
            digest, spec_uri, payment, provider, collateral, spec.shard_count, k,
            now + 3600, now + 7200, now + 7200 + verdict_window_s,
        )  # fmt: skip
        fn = self.m.market.functions.postJob(request)
        job_id = int(fn.call({"from": self.m.client}))
        transact(self.m.w3, fn, self.m.client)
        return job_id


@dataclass
class Provider:
    """A provider that computes jobs and serves bundles over HTTP; a cheating one forges
    a share of its shard outputs yet publishes a self-consistent bundle.

    Like the provider agent, it serves each bundle only to the client and the oracles of the
    job it built the bundle for (readers sign access tokens: `neurotoken.proofs.access`);
    `public=True` serves anyone (for an oracle without a key, which cannot sign one)."""

    m: Market
    address: str
    folder: Path
    cheat_fraction: float = 0.0
    server: BundleServer | None = None
    public: bool = False
    store: LocalStore = field(init=False)
    roots: dict[bytes, list[int]] = field(init=False, default_factory=dict)
    """Result root -> the jobs it was built or submitted for."""

    def __post_init__(self) -> None:
        self.store = LocalStore(self.folder / "store")

    def gate(self) -> BundleGate:
        """The clients and oracles of the jobs of each root, read from the chain over a
        connection of the server's own."""
        endpoint = self.m.w3.provider.endpoint_uri  # type: ignore[attr-defined]
        w3 = Web3(HTTPProvider(endpoint, request_kwargs={"timeout": 30}))
        market = w3.eth.contract(address=self.m.market.address, abi=self.m.market.abi)
        readers = JobReaders(
            lambda root: list(self.roots.get(root, ())),
            lambda job: str(market.functions.getJob(job).call()[0]),
            lambda job, who: bool(market.functions.isJobOracle(job, who).call()),
        )
        return BundleGate(int(w3.eth.chain_id), self.m.market.address, readers)

    def start(self) -> Provider:
        if self.public:
            app = make_app(self.store, public=True)
        else:
            app = make_app(self.store, self.gate())
        self.server = BundleServer(app).start()
        return self

    def restart(self, public: bool) -> Provider:
        """Serves again (on a new port), to anyone or to each job's readers only."""
        self.stop()
        self.public = public
        return self.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def accept(self, job_id: int) -> None:
        transact(self.m.w3, self.m.market.functions.acceptJob(job_id), self.address)

    def build(self, job_id: int, spec: AnySpec) -> bytes:
        """Computes (or forges) and publishes the bundle; returns the root to commit."""
        report = compute_job(spec, self.store, self.folder / "state", workers=1, progress=False)
        hashes = list(report.output_hashes)
        forged = round(self.cheat_fraction * spec.shard_count)
        for index in range(forged):
            hashes[index] = self.store.put_object(f"forged shard {index} of {job_id}".encode())
        manifest = publish_bundle(self.store, job_id, spec, hashes)
        root = bytes.fromhex(manifest.root[2:])
        self._record(root, job_id)
        return root

    def _record(self, root: bytes, job_id: int) -> None:
        jobs = self.roots.setdefault(root, [])
        if job_id not in jobs:
            jobs.append(job_id)

    def submit(self, job_id: int, root: bytes, shards: int, bundle_uri: str | None = None) -> int:
        self._record(root, job_id)
        receipt = transact(
            self.m.w3,
            self.m.market.functions.submitResult(job_id, root, shards, bundle_uri or self.url),
            self.address,
        )
        return int(receipt["blockNumber"])

    def fulfil(self, job_id: int, spec: AnySpec, bundle_uri: str | None = None) -> int:
        """Accept, compute, publish, submit; returns the submission block."""
        self.accept(job_id)
        root = self.build(job_id, spec)
        return self.submit(job_id, root, spec.shard_count, bundle_uri)


@dataclass
class OracleProcess:
    """``python -m oracle run`` as a child process with its own key, database and port."""

    name: str
    folder: Path
    rpc_url: str
    market: str
    private_key: str | None
    peers: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    database_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keystore: Path | None = None
        if self.private_key is not None:
            self.keystore = self.folder / "keystore.json"
            if not self.keystore.exists():
                write_keystore(
                    self.keystore, HexStr(self.private_key), "demo-password", iterations=1024
                )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str | None:
        return None if self.private_key is None else Account.from_key(self.private_key).address

    @property
    def log_path(self) -> Path:
        return self.folder / "oracle.log"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
        env.update(
            {
                "ORACLE_RPC_URL": self.rpc_url,
                "ORACLE_MARKET": self.market,
                "ORACLE_DATABASE_URL": self.database_url
                or f"sqlite:///{self.folder / 'oracle.sqlite'}",
                "ORACLE_HTTP_PORT": str(self.port),
                "ORACLE_PEERS": ",".join(self.peers),
                "ORACLE_POLL_INTERVAL_S": "0.25",
                "ORACLE_CONFIRMATIONS": "2",
                "ORACLE_PEER_TIMEOUT_S": "2",
                "ORACLE_RETRY_BACKOFF_S": "0.5",
                "ORACLE_LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
                "no_proxy": "127.0.0.1,localhost",
                "NO_PROXY": "127.0.0.1,localhost",
            }
        )
        if self.keystore is not None:
            env["ORACLE_KEYSTORE"] = str(self.keystore)
            env["ORACLE_PASSWORD_ENV"] = "ORACLE_TEST_PASSWORD"
            env["ORACLE_TEST_PASSWORD"] = "demo-password"
        env.update(self.env)
        return env

    def start(self) -> OracleProcess:
        assert self.process is None or self.process.poll() is not None
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "oracle", "run"],
                cwd=REPO_ROOT,
                env=self.environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self.starts += 1
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to clean up."""
        if self.running():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.running():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def wait_ready(self, timeout: float = 60) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"oracle {self.name} exited: {self.tail()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"oracle {self.name} not healthy after {timeout}s: {self.tail()}")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self.log_path.exists():
            return out
        for line in self.log_path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if name is None or item.get("event") == name:
                out.append(item)
        return out

    def tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def oracle_set(
    m: Market,
    folder: Path,
    rpc_url: str,
    keys: list[str | None] | None = None,
    env: dict[str, str] | None = None,
    per_oracle_env: list[dict[str, str]] | None = None,
) -> list[OracleProcess]:
    """One OracleProcess per key (default: the market's oracle keys), each peered with
    all the others."""
    keys = list(m.oracle_keys) if keys is None else keys
    ports = [free_port() for _ in keys]
    out = []
    for i, key in enumerate(keys):
        extra = dict(env or {})
        if per_oracle_env is not None:
            extra.update(per_oracle_env[i])
        out.append(
            OracleProcess(
                name=f"oracle{i + 1}",
                folder=folder / f"oracle{i + 1}",
                rpc_url=rpc_url,
                market=m.market.address,
                private_key=key,
                peers=[f"http://127.0.0.1:{p}" for j, p in enumerate(ports) if j != i],
                port=ports[i],
                env=extra,
            )
        )
    return out


def wait_until(
    condition: Callable[[], bool], timeout: float, interval: float = 0.25, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what or condition}")


# ---------------------------------------------------------------------- the RPC fault proxy


@dataclass
class FaultCounts:
    requests: int = 0
    dropped: int = 0
    delayed: int = 0
    errored: int = 0


class FaultyRpcProxy:
    """An HTTP proxy in front of a JSON-RPC node that, at random (seeded), closes the
    connection without an answer (`drop`), answers late (`delay`, up to `max_delay_s`), or
    answers HTTP 502 / a JSON-RPC error (`error`). Runs on a background thread."""

    def __init__(
        self,
        upstream: str,
        drop: float = 0.1,
        delay: float = 0.1,
        error: float = 0.1,
        max_delay_s: float = 1.0,
        seed: int = 1,
    ) -> None:
        self.upstream = upstream
        self.drop, self.delay, self.error = drop, delay, error
        self.max_delay_s = max_delay_s
        self.random = random.Random(seed)
        self.counts = FaultCounts()
        self.enabled = True
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.counts.requests += 1
        roll = self.random.random()
        if self.enabled and roll < self.drop:
            self.counts.dropped += 1
            transport = request.transport
            if transport is not None:
                transport.close()
            raise ConnectionResetError("dropped by the fault proxy")
        roll -= self.drop if self.enabled else 0
        if self.enabled and roll < self.error:
            self.counts.errored += 1
            if self.random.random() < 0.5:
                return web.Response(status=502, text="bad gateway (fault proxy)")
            try:
                req_id = json.loads(body).get("id")
            except (ValueError, AttributeError):
                req_id = None
            return web.json_response(
                {"jsonrpc": "2.0", "id": req_id,
                 "error": {"code": -32603, "message": "internal error (fault proxy)"}}
            )  # fmt: skip
        roll -= self.error if self.enabled else 0
        if self.enabled and roll < self.delay:
            self.counts.delayed += 1
            await asyncio.sleep(self.random.random() * self.max_delay_s)
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            payload = await resp.read()
            return web.Response(body=payload, status=resp.status, content_type="application/json")

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def start(self) -> FaultyRpcProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)


@contextlib.contextmanager
def running(processes: list[OracleProcess]) -> Iterator[list[OracleProcess]]:
    """Starts the oracles and always stops them (SIGTERM, then SIGKILL)."""
    try:
        for p in processes:
            p.start()
        yield processes
    finally:
        for p in processes:
            p.stop()
