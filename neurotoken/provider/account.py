"""The provider's account on the market: register with stake, add stake, unbond, withdraw.

Each action checks what the chain would refuse first (not registered, already registered,
too little NTK, nothing to withdraw, unbonding not due) and raises an AgentError that says
what to do, before any transaction is signed. Stake is pulled by the market with
transferFrom, so the agent first approves exactly the missing allowance (a permit would save
nothing here: the provider sends its own transactions and pays the same two).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from web3.types import TxReceipt

from neurotoken.provider.chain import MarketClient, ProviderAccount
from neurotoken.provider.errors import (
    AlreadyRegisteredError,
    InsufficientBalanceError,
    NothingToDoError,
    NotRegisteredError,
)
from neurotoken.units import format_ntk

Echo = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def _tx(receipt: TxReceipt) -> str:
    return "0x" + bytes(receipt["transactionHash"]).hex()


def _need_registered(client: MarketClient) -> ProviderAccount:
    account = client.get_provider()
    if not account.registered:
        raise NotRegisteredError(client.address)
    return account


def _positive(amount: int, what: str) -> None:
    if amount <= 0:
        raise NothingToDoError(f"{what} must be positive, got {amount}")


def ensure_allowance(client: MarketClient, amount: int, echo: Echo = _quiet) -> None:
    """Approves the market for `amount` NTK if the current allowance is smaller."""
    balance = client.ntk_balance()
    if balance < amount:
        raise InsufficientBalanceError(client.address, balance, amount)
    if client.allowance() >= amount:
        return
    receipt = client.transact(
        client.token.functions.approve(client.market_address, amount), "approve"
    )
    echo(f"approved the market to pull {format_ntk(amount)} (tx {_tx(receipt)})")


def register(
    client: MarketClient, stake_ntk: int, metadata_uri: str = "", echo: Echo = _quiet
) -> TxReceipt:
    """Registers the agent's account as a provider with `stake_ntk` of stake."""
    _positive(stake_ntk, "the stake")
    if client.get_provider().registered:
        raise AlreadyRegisteredError(client.address)
    ensure_allowance(client, stake_ntk, echo)
    receipt = client.transact(
        client.market.functions.registerProvider(stake_ntk, metadata_uri), "registerProvider"
    )
    echo(f"registered {client.address} with {format_ntk(stake_ntk)} stake (tx {_tx(receipt)})")
    return receipt


def add_stake(client: MarketClient, amount_ntk: int, echo: Echo = _quiet) -> TxReceipt:
    _positive(amount_ntk, "the amount")
    _need_registered(client)
    ensure_allowance(client, amount_ntk, echo)
    receipt = client.transact(client.market.functions.addStake(amount_ntk), "addStake")
    stake = client.get_provider().stake_ntk
    echo(f"added {format_ntk(amount_ntk)}; free stake now {format_ntk(stake)} (tx {_tx(receipt)})")
    return receipt


def request_unbond(client: MarketClient, amount_ntk: int, echo: Echo = _quiet) -> TxReceipt:
    """Moves free stake to unbonding; withdrawable after the market's unbonding delay."""
    _positive(amount_ntk, "the amount")
    account = _need_registered(client)
    if account.stake_ntk < amount_ntk:
        raise NothingToDoError(
            f"free stake is {format_ntk(account.stake_ntk)}, cannot unbond "
            f"{format_ntk(amount_ntk)} (stake locked as collateral frees when jobs settle)"
        )
    receipt = client.transact(client.market.functions.requestUnbond(amount_ntk), "requestUnbond")
    after = client.get_provider()
    echo(
        f"unbonding {format_ntk(after.unbonding_ntk)}, withdrawable from timestamp "
        f"{after.unbond_ready_at} (tx {_tx(receipt)})"
    )
    return receipt


def withdraw_unbonded(client: MarketClient, echo: Echo = _quiet) -> TxReceipt:
    account = _need_registered(client)
    if account.unbonding_ntk == 0:
        raise NothingToDoError("nothing is unbonding: `agent unbond AMOUNT` first")
    now = client.timestamp()
    if now < account.unbond_ready_at:
        raise NothingToDoError(
            f"{format_ntk(account.unbonding_ntk)} unbonding becomes withdrawable in "
            f"{account.unbond_ready_at - now} s (timestamp {account.unbond_ready_at})"
        )
    receipt = client.transact(client.market.functions.withdrawUnbonded(), "withdrawUnbonded")
    echo(f"withdrew {format_ntk(account.unbonding_ntk)} of unbonded stake (tx {_tx(receipt)})")
    return receipt


def withdraw_earnings(client: MarketClient, echo: Echo = _quiet) -> TxReceipt:
    account = _need_registered(client)
    if account.earned_ntk == 0:
        raise NothingToDoError("no earnings to withdraw yet")
    receipt = client.transact(client.market.functions.withdrawEarnings(), "withdrawEarnings")
    echo(f"withdrew {format_ntk(account.earned_ntk)} of earnings (tx {_tx(receipt)})")
    return receipt


@dataclass(frozen=True)
class AccountStatus:
    address: str
    eth_wei: int
    ntk_balance: int
    allowance: int
    provider: ProviderAccount

    def lines(self) -> list[str]:
        p = self.provider
        return [
            f"address        {self.address}",
            f"ETH for gas    {self.eth_wei / 1e18:.6f}",
            f"NTK balance    {format_ntk(self.ntk_balance)}",
            f"registered     {'yes' if p.registered else 'no'}",
            f"free stake     {format_ntk(p.stake_ntk)}",
            f"earned         {format_ntk(p.earned_ntk)} (withdrawable)",
            f"unbonding      {format_ntk(p.unbonding_ntk)}"
            + (f" (from timestamp {p.unbond_ready_at})" if p.unbonding_ntk else ""),
        ]


def account_status(client: MarketClient) -> AccountStatus:
    return AccountStatus(
        client.address,
        client.eth_balance(),
        client.ntk_balance(),
        client.allowance(),
        client.get_provider(),
    )
