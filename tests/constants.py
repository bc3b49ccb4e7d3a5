"""Figures the tests share, written once: addresses, units and times, the market the tests
deploy, the jobs they post, job states, and the small specs they compute.

Where a folder's figures differ on purpose, the difference has its own name here (the agent's
jobs are computed for real, so they are smaller: AGENT_SHARDS, AGENT_PAYMENT).
"""

from __future__ import annotations

from typing import Any

from devchain.parties import SCENE as DEVCHAIN_SCENE
from neurotoken.market.states import JobState
from neurotoken.units import NTK

ZERO_ADDRESS = "0x" + "00" * 20
MAX_UINT256 = 2**256 - 1  # an unlimited allowance
HISTORY_STORAGE = "0x0000F90827F1C53a10cb7A02335B175320002935"  # EIP-2935's block hashes

ETH = 10**18
HOUR = 3600
DAY = 24 * HOUR
WEEK = 7 * DAY

NTK_CAP = 100_000_000 * NTK  # NeuroToken.CAP

# The market the tests deploy (3 oracles, threshold 2) and what providers stake in it.
UNBONDING_DELAY = WEEK
FEE_BPS = 250
MIN_VERDICT_WINDOW = HOUR
STAKE = 1_000 * NTK

# A job in the market tests.
PAYMENT = 100 * NTK
COLLATERAL = 40 * NTK  # above the minimum for PAYMENT, SHARDS and CHALLENGES (12.5 NTK)
SHARDS = 16
CHALLENGES = 8

# A job in the agent tests: the agent computes every shard, so fewer of them.
AGENT_PAYMENT = 80 * NTK
AGENT_SHARDS = 8

# JobState values (IComputeMarket.JobState), from the one Python definition.
NONE, POSTED, ACCEPTED, SUBMITTED, PAID, REJECTED, CANCELLED, EXPIRED, DEFAULTED, LAPSED = (
    int(state) for state in JobState
)

# A small shelf scene: a job of these computes in moments (the dev chain's parties use it too).
SCENE: dict[str, int] = DEVCHAIN_SCENE


def shelf_spec_dict(**overrides: Any) -> dict[str, Any]:
    """A valid shelf-images spec of 16 one-image shards over SCENE, as a dict; `overrides`
    replace its fields."""
    spec: dict[str, Any] = {
        "kind": "shelf-images",
        "version": 1,
        "seed": 11,
        "scene": dict(SCENE),
        "images_per_shard": 1,
        "shard_count": 16,
    }
    spec.update(overrides)
    return spec


def training_spec_dict(**overrides: Any) -> dict[str, Any]:
    """A valid fixed-point classifier-training spec of 12 small segments, as a dict."""
    spec: dict[str, Any] = {
        "kind": "classifier-training",
        "version": 1,
        "seed": 5,
        "scene": dict(SCENE, max_products_per_shelf=6),
        "images_per_segment": 1,
        "crop_size": 6,
        "hidden_units": 12,
        "batch_size": 8,
        "steps_per_segment": 4,
        "learning_rate_ppm": 200_000,
        "arithmetic": "fixed-point",
        "shard_count": 12,
    }
    spec.update(overrides)
    return spec
