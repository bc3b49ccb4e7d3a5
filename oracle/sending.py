"""The oracle's transactions: the shared sender (`neurotoken.chain.sender`, where the crash
rule, the node's answers and replacement are explained) for the oracle's key, with the fees
of its settings and its JSON log events (logger `oracle.tx`). The service records in its
store (`StoreJournal`); `oracle settle` keeps its few transactions in memory."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from neurotoken.chain.fees import GWEI, FeePolicy
from neurotoken.chain.sender import Journal, Sender
from oracle.chain import MarketChain
from oracle.keys import OracleKey
from oracle.logs import event, get_logger
from oracle.settings import OracleSettings

log = get_logger("tx")


def fee_policy(settings: OracleSettings) -> FeePolicy:
    return FeePolicy(
        bump_pct=settings.fee_bump_pct,
        max_fee=int(settings.max_fee_gwei * GWEI),
        tip=int(settings.priority_fee_gwei * GWEI),
    )


def oracle_sender(
    chain: MarketChain,
    key: OracleKey,
    journal: Journal,
    settings: OracleSettings,
    on_broadcast: Callable[[], None] | None = None,
    on_replaced: Callable[[], None] | None = None,
) -> Sender:
    """The sender of `key`'s transactions to `chain`, recording in `journal`."""
    return Sender(
        chain.w3,
        key,
        journal,
        fee_policy(settings),
        chain_id=chain.chain_id,
        stuck_after_blocks=settings.stuck_after_blocks,
        events=partial(event, log),
        on_broadcast=on_broadcast,
        on_replaced=on_replaced,
        cap_hint=" (raise ORACLE_MAX_FEE_GWEI)",
    )
