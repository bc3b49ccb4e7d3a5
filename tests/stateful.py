"""Running hypothesis state machines against a live chain.

ape isolates per test, not per hypothesis example, and `chain.isolate()` (0.8.51) swallows
exceptions raised inside it, so an assertion there could never fail. Each example therefore
takes its own snapshot when the machine is built and restores it in `teardown`.
"""

from __future__ import annotations

import os
from types import FunctionType
from typing import Any

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
