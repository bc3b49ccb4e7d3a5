"""Running hypothesis state machines against a live chain.

ape isolates per test, not per hypothesis example, and `chain.isolate()` (0.8.51) swallows
exceptions raised inside it, so an assertion there could never fail. Each example therefore
takes its own snapshot when the machine is built and restores it in `teardown`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import FunctionType
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

# Function-scoped fixtures (the deployed contracts) are shared by every example on purpose:
# each example restores the chain to the snapshot taken when its machine was built.
# NEUROTOKEN_STATEFUL_EXAMPLES raises the example count for a deeper (slower) audit run.
STATEFUL_SETTINGS = settings(
    max_examples=int(os.environ.get("NEUROTOKEN_STATEFUL_EXAMPLES", "15")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class ChainStateMachine(RuleBasedStateMachine):
    """A state machine that snapshots the chain on construction and restores it at teardown."""

    chain: Any = None

    def __init__(self) -> None:
        super().__init__()
        assert self.chain is not None, "set the `chain` class attribute before running"
        self._snapshot = self.chain.snapshot()

    def teardown(self) -> None:
        self.chain.restore(self._snapshot)


def run_machine(machine: type[ChainStateMachine], chain: Any, **context: Any) -> None:
    """Runs `machine` with `chain` and `context` set as class attributes of a fresh subclass."""
    # Plain functions (fixture factories) must not become bound methods of the machine.
    attrs = {k: staticmethod(v) if isinstance(v, FunctionType) else v for k, v in context.items()}
    bound = type(machine.__name__, (machine,), {"chain": chain, **attrs})
    run_state_machine_as_test(bound, settings=STATEFUL_SETTINGS)


def batch_view(contract: Any, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Reads view functions of an ape `contract` in one JSON-RPC batch of raw `eth_call`s.

    Each call is `(function_name, *args)`; accounts may stand for addresses. A function with
    one output gives its value, one with several a tuple (structs: plain tuples). A state
    machine checks dozens of values after every step: through ape each read cost ~6 ms here,
    which made the invariants most of a machine's run time; one batch of 4 costs ~1.3 ms.
    """
    requests = []
    output_types = []
    for name, *args in calls:
        abi = _view_abi(contract, name, len(args))
        types = [i.canonical_type for i in abi.inputs]
        data = keccak(text=abi.selector)[:4] + encode(types, [_plain(a) for a in args])
        call = {"to": str(contract.address), "data": "0x" + data.hex()}
        requests.append(("eth_call", [call, "latest"]))
        output_types.append([o.canonical_type for o in abi.outputs])
    answers = contract.provider.web3.provider.make_batch_request(requests)
    results = []
    for (name, *_), answer, types in zip(calls, answers, output_types, strict=True):
        if "error" in answer:
            raise AssertionError(f"view call {name} failed: {answer['error']}")
        values = decode(types, bytes.fromhex(answer["result"].removeprefix("0x")))
        results.append(values[0] if len(values) == 1 else values)
    return results


def _view_abi(contract: Any, name: str, arity: int) -> Any:
    for abi in contract.contract_type.view_methods:
        if abi.name == name and len(abi.inputs) == arity:
            return abi
    raise KeyError(f"{contract.contract_type.name} has no view {name} with {arity} inputs")


def _plain(value: Any) -> Any:
    return str(value.address) if hasattr(value, "address") else value
