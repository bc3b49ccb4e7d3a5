"""`make demo`: one economy in stages, one module each; `ape run demo` runs `STAGES` in order
(`demo.economy.run_stages`) and writes the report (`demo.report`) next to the images."""

from __future__ import annotations

from collections.abc import Callable

from demo.agent import agent_stage
from demo.compute import compute_stage
from demo.economy import Economy, ledger_stage
from demo.market import market_stage
from demo.oracle import oracle_stage
from demo.sale import sale_stage
from demo.token import token_stage

STAGES: list[Callable[[Economy], object]] = [
    sale_stage,
    token_stage,
    market_stage,
    compute_stage,
    agent_stage,
    oracle_stage,
    ledger_stage,
]
