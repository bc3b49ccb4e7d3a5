"""The anvil node of the dev chain: the binary from `node_modules`, a node on a free port
(`Anvil`), the keys anvil derives from its default mnemonic, and the helpers the dev chain's
child processes share (a free port, death with the parent).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from eth_account import Account
from web3 import HTTPProvider, Web3

from neurotoken.ports import free_port
from oracle.settings import REPO_ROOT

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


def _die_with_parent() -> None:
    """In a child before exec: ask Linux for SIGTERM when the parent dies, so an
    interrupted test run leaves no node or oracle behind (a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


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
    or both (`mixed`: transactions mine at once and a block comes every `block_time`).

    With `state_path` the node keeps its chain in that file (anvil's ``--state``: loaded at
    start when the file exists, written when the node stops on SIGTERM): `restart` then
    stops it and starts a new node from the dump on the same port, so clients keep their
    URL. The dump holds the blocks, receipts and logs (block hashes survive), not the
    transaction pool: what was pending when the node stopped is gone, as after a real
    node's restart.

    One flaw of anvil's (1.7) dump: after a load, the BLOCKHASH opcode answers wrong hashes
    for the blocks mined before it (not the ones `eth_getBlockByNumber` gives) until they
    are more than 256 blocks old, when contracts read EIP-2935's history instead, which
    the dump keeps. A caller whose contracts read recent block hashes mines 257 blocks
    before the restart (`restart(clear_blockhash_window=True)`)."""

    def __init__(
        self,
        block_time: float | None = None,
        mixed: bool = False,
        accounts: int = 20,
        log_path: Path | None = None,
        state_path: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.block_time = block_time
        self.mixed = mixed
        self.accounts = accounts
        self.log_path = log_path
        self.state_path = state_path
        self.restarts = 0
        """How many times `restart` brought the node back from its dump."""
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
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            args += ["--state", str(self.state_path), "--preserve-historical-states"]
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
        """SIGTERM (anvil writes its `state_path` dump on the way out), SIGKILL after 30 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, clear_blockhash_window: bool = False) -> int:
        """Stops the node and starts a new one from its state dump, on the same port;
        returns the head the new node starts at (the old one's last block).

        `clear_blockhash_window`: first drops the transaction pool (the restart would lose
        it anyway) and mines 257 empty blocks, so that no block whose hash a contract reads
        through BLOCKHASH was mined before the load (see the class's docstring)."""
        if self.state_path is None:
            raise RuntimeError("Anvil.restart needs a state_path (anvil's --state)")
        if clear_blockhash_window:
            self.rpc("anvil_dropAllTransactions")
            self.mine(257)
        self.stop()
        if not self.state_path.exists():
            raise RuntimeError(f"anvil wrote no state dump to {self.state_path}")
        self.start()
        self.restarts += 1
        return int(self.web3().eth.block_number)

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class BlockTicker:
    """Mines an empty block on a node every `interval` seconds, in a thread, while automine
    stays on: a chain ape started (automine only) then moves on its own, as the oracles'
    confirmation counts need, and transactions still mine at once."""

    def __init__(self, url: str, interval: float = 1.0) -> None:
        self.w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 10}))
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="block-ticker", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            except Exception:  # the node is going away; the owner stops us next
                continue

    def __enter__(self) -> BlockTicker:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class Miner:
    """Mines a block every `interval` seconds on a node (automine off, or on while a test
    makes its own blocks), in a thread, while not paused: `pause` returns once no block is
    being mined and none will be until `resume`, so a test can reorg a still chain.
    Tolerates a node that goes away for a while (a restart)."""

    def __init__(self, anvil: Anvil, interval: float = 0.5) -> None:
        self.anvil = anvil
        self.interval = interval
        self.mined = 0
        self.active = threading.Event()
        self.active.set()
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="miner", daemon=True)

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            with self._lock:
                if self.active.is_set():
                    try:
                        self.anvil.rpc("evm_mine")
                        self.mined += 1
                    except Exception:  # the node is restarting or going away
                        continue

    def pause(self) -> None:
        """Stops mining; once it returns, no block is being mined and none will be."""
        with self._lock:
            self.active.clear()

    def resume(self) -> None:
        self.active.set()

    def start(self) -> Miner:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
