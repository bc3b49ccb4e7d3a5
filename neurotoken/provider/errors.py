"""The provider agent's errors: one hierarchy, each class carrying a message a farm owner can
act on. The CLI prints `str(error)` and exits non-zero; nothing here ever holds key material.
"""

from __future__ import annotations

from typing import Any

from web3.exceptions import TimeExhausted

from neurotoken.market.states import state_label

NTK = 10**18


def format_ntk(wei: int) -> str:
    """`wei` as NTK with up to 6 decimals, e.g. '1,000.5 NTK'."""
    whole, frac = divmod(int(wei), NTK)
    text = f"{whole:,}"
    frac_text = f"{frac:018d}"[:6].rstrip("0")
    return f"{text}.{frac_text} NTK" if frac_text else f"{text} NTK"


class AgentError(Exception):
    """Base of every error the provider agent raises on purpose."""


class ConfigError(AgentError):
    """The agent is pointed at something that is not there (RPC, market, ABI, state file)."""


class KeystoreError(AgentError):
    """The keystore is missing, unreadable, or the password is not set or wrong."""


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


#: Hints for the market's and the token's custom errors, keyed by error name.
_HINTS: dict[str, str] = {
    "MarketProviderNotRegistered": "register first: `agent register --stake AMOUNT`",
    "MarketProviderAlreadyRegistered": "already registered; use `agent add-stake`",
    "MarketInsufficientStake": "free stake is too low: `agent add-stake`, or wait for settlements",
    "MarketUnbondNotReady": "the unbonding delay has not passed yet",
    "MarketNothingToWithdraw": "nothing to withdraw",
    "MarketZeroAmount": "the amount must be positive",
    "MarketJobNotFound": "no such job on this market",
    "MarketJobWrongState": "the job is no longer in a state that allows this",
    "MarketDeadlinePassed": "the deadline has passed",
    "MarketNotChosenProvider": "the client reserved this job for another provider",
    "MarketNotJobProvider": "another provider accepted this job",
    "ERC20InsufficientBalance": "the account holds too little NTK",
    "ERC20InsufficientAllowance": "the market may not pull that much NTK (approve first)",
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
        hint = _HINTS.get(name)
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
