"""Running hypothesis state machines against a live chain, fast.

ape isolates per test, not per hypothesis example, and `chain.isolate()` (0.8.51) swallows
exceptions raised inside it, so an assertion there could never fail. Each example therefore
takes its own snapshot when the machine is built and restores it in `teardown`.

A step through ape's transaction pipeline (gas estimate, sign, send, receipt, and on a revert a
trace to decode it) costs 100-300 ms; the machines run tens of thousands of steps in the deep
profile. `Fast` is the short way to the same node: `Fast(chain).wrap(contract).mint(to, n,
sender=minter)` encodes the call with the contract's ABI and makes two raw JSON-RPC requests:
`eth_estimateGas` against the pending block (whose timestamp the machines pin where it
matters), which answers a call that reverts with an error carrying the revert data (nothing is
sent then, as with ape; `reverts` decodes that data, selector and every named field, like
`ape.reverts`), then `eth_sendTransactionSync` from the sender's unlocked node account (ape's
test accounts are anvil's), which mines it and answers with its receipt: the status is checked
(a mined revert is an error: the estimate and the block disagreed) and the logs are decoded
with the wrapped contracts' ABIs (`Sent.decode_logs`, `Sent.events`). anvil (1.7) does not
estimate a plain `eth_sendTransaction` without a gas field: it sends it with the block's gas
limit and mines the revert, so the estimate is not optional.

Profiles (`NEUROTOKEN_STATEFUL_EXAMPLES` x `NEUROTOKEN_STATEFUL_STEPS`): 50 x 30 by default
(`make test`), 1,000 x 50 for `make fuzz`. With ``NEUROTOKEN_FUZZ=1`` each machine's run ends
by recording what actually ran (examples built, steps taken, the longest example, ms a step)
as the campaign ``fuzz-<machine>`` (tests/soak.py), which fails if fewer ran than configured.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FunctionType
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.stateful import RuleBasedStateMachine, invariant, run_state_machine_as_test

from oracle.settings import REPO_ROOT
from tests.rpc import Rpc, RpcError
from tests.sale.helpers import check_revert_data
from tests.soak import Campaign

EXAMPLES = int(os.environ.get("NEUROTOKEN_STATEFUL_EXAMPLES", "50"))
STEPS = int(os.environ.get("NEUROTOKEN_STATEFUL_STEPS", "30"))

# Function-scoped fixtures (the deployed contracts) are shared by every example on purpose:
# each example restores the chain to the snapshot taken when its machine was built. The
# example database sits in the repository's .hypothesis/ wherever the run starts (a failing
# sequence found by a deep run is replayed first by the next run); no derandomize: every run
# looks for new sequences.
STATEFUL_SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    database=DirectoryBasedExampleDatabase(REPO_ROOT / ".hypothesis" / "examples"),
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class RunCounts:
    """What a machine's run actually did, counted by the machines themselves."""

    examples: int = 0  # machines built and torn down
    steps: int = 0  # rules run (initialize rules included)
    longest: int = 0  # the most steps one example took
    per_example: list[int] = field(default_factory=list)


class ChainStateMachine(RuleBasedStateMachine):
    """A state machine that snapshots the chain on construction and restores it at teardown,
    and counts its examples and steps (`counts`, set by `run_machine`)."""

    chain: Any = None
    fast: Fast = None  # type: ignore[assignment]  # set by run_machine
    counts: RunCounts | None = None

    def __init__(self) -> None:
        super().__init__()
        assert self.chain is not None, "set the `chain` class attribute before running"
        self._snapshot = self.chain.snapshot()
        self._checks = 0

    @invariant(check_during_init=True)
    def count_steps(self) -> None:
        """Runs once when the example starts and after every step: a count of the steps."""
        self._checks += 1

    def teardown(self) -> None:
        self.chain.restore(self._snapshot)
        if self.counts is not None:
            steps = max(0, self._checks - 1)
            self.counts.examples += 1
            self.counts.steps += steps
            self.counts.longest = max(self.counts.longest, steps)
            self.counts.per_example.append(steps)


def machine_name(machine: type[RuleBasedStateMachine]) -> str:
    """`HostileMarketMachine` -> `hostile-market`."""
    words = re.findall(r"[A-Z][a-z0-9]*", machine.__name__.removesuffix("Machine"))
    return "-".join(w.lower() for w in words) or machine.__name__.lower()


def run_machine(machine: type[ChainStateMachine], chain: Any, **context: Any) -> RunCounts:
    """Runs `machine` with `chain` and `context` set as class attributes of a fresh subclass;
    returns what ran. With ``NEUROTOKEN_FUZZ=1`` records the figures (`fuzz-<machine>`)."""
    # Plain functions (fixture factories) must not become bound methods of the machine.
    attrs = {k: staticmethod(v) if isinstance(v, FunctionType) else v for k, v in context.items()}
    counts = RunCounts()
    fast = Fast(chain)
    bound = type(
        machine.__name__, (machine,), {"chain": chain, "fast": fast, "counts": counts, **attrs}
    )
    name = machine_name(machine)
    campaign = Campaign(f"fuzz-{name}", f"The {name} state machine ({EXAMPLES} x {STEPS})")
    started = time.monotonic()
    run_state_machine_as_test(bound, settings=STATEFUL_SETTINGS)
    seconds = time.monotonic() - started
    assert counts.examples >= EXAMPLES, counts
    if os.environ.get("NEUROTOKEN_FUZZ"):
        # Hypothesis runs most examples to the step count and ends some earlier (its mutations
        # of earlier examples copy their stop choice); the longest shows the depth was run.
        campaign.figure("examples", counts.examples, EXAMPLES)
        campaign.figure("steps", counts.steps)
        campaign.figure("steps per example (max)", counts.longest, STEPS)
        full = sum(1 for n in counts.per_example if n == STEPS)
        campaign.figure(f"examples of {STEPS} steps", full)
        campaign.figure("ms per step", round(1000 * seconds / max(1, counts.steps), 1))
        campaign.note(
            f"hypothesis {EXAMPLES} examples x {STEPS} steps; {counts.steps} steps in "
            f"{seconds:.0f} s"
        )
        campaign.report()
    return counts


# ---------------------------------------------------------------- the fast transaction path


class TxRevertedError(Exception):
    """The node refused a transaction because its call reverts (nothing was mined)."""

    def __init__(self, method: str, data: bytes, message: str) -> None:
        super().__init__(f"{method} reverted: {message} (0x{data.hex()})")
        self.data = data


@dataclass(frozen=True)
class Log:
    """A decoded event: the fields of ape's ContractLog the machines use, and attribute access
    to the arguments (`log.finalSupply`)."""

    contract_address: str
    event_name: str
    event_arguments: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.event_arguments[name]
        except KeyError:
            raise AttributeError(name) from None


class Sent:
    """A mined transaction of the fast path: its receipt (status checked) and decoded logs."""

    def __init__(self, fast: Fast, method: str, receipt: dict[str, Any]) -> None:
        self._fast = fast
        self.method = method
        self.receipt = receipt
        self.txn_hash = str(receipt["transactionHash"])
        self.block_number = int(receipt["blockNumber"], 16)
        self.gas_used = int(receipt["gasUsed"], 16)
        self.gas_price = int(receipt["effectiveGasPrice"], 16)

    @property
    def events(self) -> list[Log]:
        """Every log of the transaction that a wrapped contract's ABI decodes, in order."""
        return [log for raw in self.receipt["logs"] if (log := self._fast.decode_log(raw))]

    def decode_logs(self, event: Any) -> list[Log]:
        """The logs of `event` (an ape event handle, `contract.EventName`)."""
        name = event.abi.name
        return [log for log in self.events if log.event_name == name]


def _plain(value: Any, abi_type: Any) -> Any:
    """`value` as eth_abi encodes `abi_type`: accounts and contracts as addresses, structs
    given as dicts as tuples in component order, arrays element by element."""
    kind = str(abi_type.type)
    if kind.endswith("]"):
        element = abi_type.model_copy(update={"type": kind[: kind.rindex("[")]})
        return [_plain(v, element) for v in value]
    if kind == "tuple":
        components = abi_type.components or []
        if isinstance(value, dict):
            return tuple(_plain(value[c.name], c) for c in components)
        return tuple(_plain(v, c) for v, c in zip(value, components, strict=True))
    if hasattr(value, "address"):
        return str(value.address)
    return value


def _address(value: Any) -> str:
    return str(value.address) if hasattr(value, "address") else str(value)


class Fast:
    """The fast path to the chain behind `chain` (ape's chain manager): transactions, reverts
    predicted by the model, time travel. See the module's docstring."""

    def __init__(self, chain: Any) -> None:
        self.chain = chain
        self.rpc = Rpc(str(chain.provider.uri))
        self._events: dict[tuple[str, bytes], tuple[str, list[Any]]] = {}

    def wrap(self, contract: Any) -> FastContract:
        """`contract` (an ape contract instance) with its transactions on the fast path."""
        address = str(contract.address)
        for abi in contract.contract_type.events:
            topic = keccak(text=abi.selector)
            self._events[(address.lower(), topic)] = (abi.name, list(abi.inputs))
        return FastContract(self, contract)

    def send(self, method: str, tx: dict[str, Any]) -> Sent:
        """Sends `tx` from an unlocked account of the node: the mined transaction, or
        TxRevertedError when the call reverts in the pending block (nothing is mined then)."""
        try:
            gas = self.rpc.call("eth_estimateGas", tx, "pending")
        except RpcError as exc:
            message = exc.message
            if "revert" not in message.lower():
                raise
            raise TxRevertedError(method, exc.revert_data() or b"", message) from None
        receipt = self.rpc.call("eth_sendTransactionSync", {**tx, "gas": gas})
        if int(receipt["status"], 16) != 1:
            raise AssertionError(
                f"{method} was mined and reverted ({receipt['transactionHash']}) although its "
                "gas estimate in the pending block passed: the two blocks differ (a timestamp "
                "not pinned?)"
            )
        return Sent(self, method, receipt)

    def decode_log(self, raw: dict[str, Any]) -> Log | None:
        """`raw` (a receipt's log) decoded with a wrapped contract's ABI; None if unknown."""
        topics = [bytes.fromhex(t[2:]) for t in raw["topics"]]
        if not topics:
            return None
        known = self._events.get((str(raw["address"]).lower(), topics[0]))
        if known is None:
            return None
        name, inputs = known
        indexed = [i for i in inputs if i.indexed]
        plain = [i for i in inputs if not i.indexed]
        values: dict[str, Any] = {}
        for i, topic in zip(indexed, topics[1:], strict=True):
            (values[i.name],) = decode([i.canonical_type], topic)
        data = bytes.fromhex(str(raw["data"])[2:])
        for i, v in zip(plain, decode([i.canonical_type for i in plain], data), strict=True):
            values[i.name] = v
        args = {
            i.name: to_checksum_address(values[i.name])
            if i.canonical_type == "address"
            else values[i.name]
            for i in inputs
        }
        return Log(to_checksum_address(raw["address"]), name, args)

    def revert_data(self, method: str, tx: dict[str, Any], block: str = "pending") -> bytes:
        """The revert data of `tx` tried as an `eth_call` in `block` (the pending block: the
        one the machine pinned the timestamp of); AssertionError if the call succeeds."""
        try:
            self.rpc.call("eth_call", tx, block)
        except RpcError as exc:
            if "revert" not in exc.message.lower():
                raise
            return exc.revert_data() or b""
        raise AssertionError(f"{method} did not revert; the model says it must")

    # ------------------------------------------------------------ blocks and time

    def block_hash(self, number: int) -> bytes:
        block = self.rpc.call("eth_getBlockByNumber", hex(number), False)
        return bytes.fromhex(block["hash"][2:])

    def head(self) -> tuple[int, int]:
        """The latest block's (number, timestamp)."""
        block = self.rpc.call("eth_getBlockByNumber", "latest", False)
        return int(block["number"], 16), int(block["timestamp"], 16)

    def pin_next_timestamp(self, timestamp: int) -> None:
        """The next block (the next transaction's, with automine) gets `timestamp`; the
        pending block that gas estimates and `eth_call(..., "pending")` see has it too."""
        self.rpc.call("evm_setNextBlockTimestamp", hex(timestamp))

    def mine(self, timestamp: int) -> None:
        """Mines one empty block at `timestamp`."""
        self.rpc.call("evm_mine", hex(timestamp))


class FastContract:
    """An ape contract whose state-changing methods go through `Fast`; everything else (views,
    errors, events, the address) is the ape contract's."""

    def __init__(self, fast: Fast, contract: Any) -> None:
        self._fast = fast
        self._contract = contract
        self.address = str(contract.address)
        self._methods: dict[str, list[Any]] = {}
        for abi in contract.contract_type.mutable_methods:
            self._methods.setdefault(abi.name, []).append(abi)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self._methods:
            return getattr(self._contract, name)
        return FastMethod(self, name, self._methods[name])


class FastMethod:
    """One state-changing method: `method(*args, sender=account, value=wei)` sends it."""

    def __init__(self, contract: FastContract, name: str, abis: list[Any]) -> None:
        self._contract = contract
        self.name = name
        self._abis = abis

    def encode_input(self, *args: Any) -> str:
        """The call data of `method(*args)`, hex."""
        matching = [abi for abi in self._abis if len(abi.inputs) == len(args)]
        if len(matching) != 1:
            raise TypeError(f"{self.name}: no single overload takes {len(args)} arguments")
        (abi,) = matching
        types = [i.canonical_type for i in abi.inputs]
        values = [_plain(v, i) for v, i in zip(args, abi.inputs, strict=True)]
        return "0x" + (keccak(text=abi.selector)[:4] + encode(types, values)).hex()

    def __call__(self, *args: Any, sender: Any, value: int = 0) -> Sent:
        tx = {
            "from": _address(sender),
            "to": self._contract.address,
            "data": self.encode_input(*args),
        }
        if value:
            tx["value"] = hex(value)
        return self._contract._fast.send(self.name, tx)


@contextmanager
def reverts(expected: Any, **inputs: Any) -> Iterator[None]:
    """`ape.reverts` for the fast path: the block must raise TxRevertedError whose revert data is
    the custom error `expected` (`contract.ErrorName`) with every field given in `inputs`."""
    try:
        yield
    except TxRevertedError as exc:
        check_revert_data(expected, exc.data, **inputs)
    else:
        raise AssertionError(f"expected a revert with {expected.abi.name}, but nothing reverted")


# ---------------------------------------------------------------- reads


def batch_view(contract: Any, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Reads view functions of an ape `contract` in one JSON-RPC batch of raw `eth_call`s.

    Each call is `(function_name, *args)`; accounts may stand for addresses. A function with
    one output gives its value, one with several a tuple (structs: plain tuples). A state
    machine checks dozens of values after every step: through ape each read cost ~6 ms here;
    one batch over web3 ~8 ms; over a kept-alive connection with the ABIs looked up once,
    ~1 ms.
    """
    address = str(contract.address)
    requests = []
    output_types = []
    for name, *args in calls:
        selector, types, outputs = _view_abi(contract, name, len(args))
        data = selector + encode(types, [_address_of(a) for a in args])
        requests.append(("eth_call", [{"to": address, "data": "0x" + data.hex()}, "latest"]))
        output_types.append(outputs)
    try:
        answers = _rpc(contract).strict_batch(requests)
    except RpcError as exc:
        raise AssertionError(f"a view call of {calls} failed: {exc}") from None
    results = []
    for answer, types in zip(answers, output_types, strict=True):
        values = decode(types, bytes.fromhex(answer.removeprefix("0x")))
        results.append(values[0] if len(values) == 1 else values)
    return results


_VIEWS: dict[tuple[str, str, int], tuple[bytes, list[str], list[str]]] = {}
_RPCS: dict[int, tuple[Any, Rpc]] = {}


def _view_abi(contract: Any, name: str, arity: int) -> tuple[bytes, list[str], list[str]]:
    """(selector, input types, output types) of the view, looked up once per contract."""
    key = (str(contract.address), name, arity)
    if key not in _VIEWS:
        for abi in contract.contract_type.view_methods:
            if abi.name == name and len(abi.inputs) == arity:
                _VIEWS[key] = (
                    keccak(text=abi.selector)[:4],
                    [i.canonical_type for i in abi.inputs],
                    [o.canonical_type for o in abi.outputs],
                )
                break
        else:
            raise KeyError(f"{contract.contract_type.name} has no view {name} with {arity} inputs")
    return _VIEWS[key]


def _rpc(contract: Any) -> Rpc:
    """A kept-alive connection to the node of `contract`'s provider, one per provider (ape
    rebuilds its settings to answer `provider.uri`: a few ms, so it is asked once)."""
    provider = contract.provider
    if id(provider) not in _RPCS:  # the provider is kept with it: its id stays its own
        _RPCS[id(provider)] = (provider, Rpc(str(provider.uri)))
    return _RPCS[id(provider)][1]


def _address_of(value: Any) -> Any:
    return str(value.address) if hasattr(value, "address") else value
