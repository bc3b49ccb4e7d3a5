"""The provider agent's errors: one hierarchy, each class carrying a message a farm owner can
act on. The CLI prints `str(error)` and exits non-zero; nothing here ever holds key material.
"""

from __future__ import annotations

from typing import Any

from web3.exceptions import TimeExhausted

from neurotoken.chain.explain import explain_error
from neurotoken.errors import NeurotokenError
from neurotoken.market.states import state_label
from neurotoken.units import format_ntk


class AgentError(NeurotokenError):
    """Base of the errors only the provider agent raises (the shared `ConfigError` and
    `KeystoreError` of neurotoken.errors are raised by it too)."""


class NotRegisteredError(AgentError):
    def __init__(self, address: str) -> None:
        super().__init__(
            f"{address} is not a registered provider: run "
            "`python -m neurotoken.provider agent register --stake AMOUNT` first"
        )


class AlreadyRegisteredError(AgentError):
    def __init__(self, address: str) -> None:
        super().__init__(f"{address} is already a registered provider (use `add-stake`)")


class InsufficientBalanceError(AgentError):
    def __init__(self, address: str, balance: int, needed: int) -> None:
        super().__init__(
            f"{address} holds {format_ntk(balance)}, {format_ntk(needed)} needed; "
            "buy or receive NTK first"
        )
        self.balance = balance
        self.needed = needed


class InsufficientGasError(AgentError):
    def __init__(self, address: str, balance_wei: int, needed_wei: int) -> None:
        super().__init__(
            f"{address} has {balance_wei / 1e18:.6f} ETH, about {needed_wei / 1e18:.6f} ETH "
            "is needed for gas; fund the account"
        )


class NothingToDoError(AgentError):
    """The request is valid but there is nothing for it to act on (e.g. nothing to withdraw)."""


#: What an agent user does next, for the errors whose remedy is an agent command; every other
#: error is told by the shared sentence of neurotoken.chain.explain.
_AGENT_NEXT_STEP: dict[str, str] = {
    "MarketProviderNotRegistered": "register first: `agent register --stake AMOUNT`",
    "MarketProviderAlreadyRegistered": "already registered; use `agent add-stake`",
    "MarketInsufficientStake": "free stake is too low: `agent add-stake`, or wait for settlements",
}


def _show(name: str, key: str, value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if name == "MarketJobWrongState" and key == "state":
        return state_label(int(value))
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10**15:
        return format_ntk(value)
    return str(value)


class ChainRevertError(AgentError):
    """A transaction or call reverted; `name` and `args` are the decoded custom error."""

    def __init__(self, action: str, name: str, args: dict[str, Any]) -> None:
        self.action = action
        self.name = name
        self.args_ = args
        shown = ", ".join(f"{k}={_show(name, k, v)}" for k, v in args.items())
        hint = _AGENT_NEXT_STEP.get(name) or explain_error(name, args)
        super().__init__(f"{action} reverted with {name}({shown})" + (f": {hint}" if hint else ""))


class NonceUsedError(ChainRevertError):
    """The nonce of a transaction was taken by none of its attempts: nothing the agent signed
    for this action can land any more (another program sending with the same key?)."""

    def __init__(self, action: str, sender: str, nonce: int) -> None:
        AgentError.__init__(
            self,
            f"{action}: nonce {nonce} of {sender} was used by a transaction that is not one of "
            "this action's attempts (is another program sending with the same key?); the "
            "action did not happen through it",
        )
        self.action = action
        self.name = "NonceUsed"
        self.args_ = {"sender": sender, "nonce": nonce}


class TxTimeoutError(AgentError, TimeExhausted):
    """No attempt of a transaction got a receipt within the receipt timeout (the message says
    what was sent and why the fees were not raised further, if they were not)."""


class TxRefusedError(AgentError):
    """The node refused a transaction and no attempt of it is pending."""

    def __init__(self, action: str, why: str) -> None:
        super().__init__(f"{action} was not sent: {why}")
