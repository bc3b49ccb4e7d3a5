"""`make demo`, one module per stage; `ape run demo` runs `STAGES` in order."""

from __future__ import annotations

from collections.abc import Callable

from demo.agent import agent_stage
from demo.compute import compute_stage
from demo.market import market_stage
from demo.oracle import oracle_stage
from demo.sale import sale_stage
from demo.token import token_stage

STAGES: list[Callable[[Callable[[str], None]], object]] = [
    token_stage,
    sale_stage,
    market_stage,
    compute_stage,
    agent_stage,
    oracle_stage,
]
