"""What a node's refusal of `eth_sendRawTransaction` means, for the one transaction sender of
this repository (`neurotoken.chain.sender`: the oracle, the provider agent, `oracle settle`).

* "already known" / "already imported" / "known transaction": the node has it; nothing to do.
* "nonce too low": that nonce is used, by one of the sender's attempts or by something else.
* "replacement transaction underpriced", or a max fee below the base fee: send again now with
  higher fees.
* "insufficient funds": the account cannot pay for the fees asked.
* a connection error, or anything else: unknown whether it arrived.
"""

from __future__ import annotations

from enum import StrEnum

import requests


class SendResult(StrEnum):
    SENT = "sent"
    KNOWN = "known"
    NONCE_TOO_LOW = "nonce_too_low"
    UNDERPRICED = "underpriced"
    FUNDS = "insufficient_funds"
    ERROR = "error"


def classify(exc: BaseException) -> SendResult:
    """What a failed eth_sendRawTransaction means."""
    if isinstance(exc, requests.RequestException | ConnectionError | TimeoutError | OSError):
        return SendResult.ERROR
    message = str(exc).lower()
    if (
        "already known" in message
        or "already imported" in message
        or "known transaction" in message
    ):
        return SendResult.KNOWN
    if "nonce too low" in message or "nonce is too low" in message:
        return SendResult.NONCE_TOO_LOW
    if (
        "underpriced" in message
        or "less than block base fee" in message
        or ("fee cap" in message and "base fee" in message)
    ):
        return SendResult.UNDERPRICED
    if "insufficient funds" in message:
        return SendResult.FUNDS
    return SendResult.ERROR
