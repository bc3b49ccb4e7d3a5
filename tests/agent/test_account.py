"""The provider account through the agent: register with stake, add stake, unbond, withdraw,
and the clear errors a farm owner gets for mistakes."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from neurotoken.chain.explain import explain_error
from neurotoken.errors import ConfigError
from neurotoken.provider import account as acct
from neurotoken.provider.chain import MarketClient
from neurotoken.provider.errors import (
    AlreadyRegisteredError,
    ChainRevertError,
    InsufficientBalanceError,
    InsufficientGasError,
    NothingToDoError,
    NotRegisteredError,
)
from neurotoken.units import NTK
from tests.constants import STAKE, UNBONDING_DELAY


def test_register__approves_exactly_and_stakes(farm: MarketClient, market: Any, token: Any) -> None:
    before = farm.ntk_balance()
    lines: list[str] = []
    acct.register(farm, STAKE, "https://farm.example/offer.json", lines.append)
    account = farm.get_provider()
    assert account.registered and account.stake_ntk == STAKE
    assert farm.ntk_balance() == before - STAKE
    assert token.allowance(farm.address, market) == 0  # approved exactly what was pulled
    assert market.providerMetadataURI(farm.address) == "https://farm.example/offer.json"
    assert lines[0].startswith("approved the market to pull 1,000 NTK")
    assert lines[1].startswith(f"registered {farm.address} with 1,000 NTK stake")


def test_register__twice__is_refused_before_sending(farm: MarketClient) -> None:
    acct.register(farm, STAKE)
    with pytest.raises(AlreadyRegisteredError, match="already a registered provider"):
        acct.register(farm, STAKE)


def test_register__with_too_little_ntk__says_how_much_is_missing(farm: MarketClient) -> None:
    with pytest.raises(InsufficientBalanceError, match=r"holds 10,000 NTK, 20,000 NTK needed"):
        acct.register(farm, 20_000 * NTK)
    assert not farm.get_provider().registered


def test_register__without_eth_for_gas__says_so(
    rpc_url: str, market: Any, token: Any, minter: Any, abi_manifest: Any
) -> None:
    poor = Account.create()
    token.mint(poor.address, STAKE, sender=minter)
    client = MarketClient.connect(rpc_url, market.address, poor, manifest=abi_manifest)
    with pytest.raises(InsufficientGasError, match="ETH is needed for gas"):
        acct.register(client, STAKE)


def test_add_stake__unregistered__tells_to_register(farm: MarketClient) -> None:
    with pytest.raises(NotRegisteredError, match="agent register --stake"):
        acct.add_stake(farm, 5 * NTK)


def test_add_stake__then_unbond_and_withdraw_after_the_delay(
    farm: MarketClient, chain: Any
) -> None:
    acct.register(farm, STAKE)
    acct.add_stake(farm, 5 * NTK)
    assert farm.get_provider().stake_ntk == STAKE + 5 * NTK
    acct.request_unbond(farm, 105 * NTK)
    account = farm.get_provider()
    assert account.stake_ntk == 900 * NTK and account.unbonding_ntk == 105 * NTK
    with pytest.raises(NothingToDoError, match="becomes withdrawable in"):
        acct.withdraw_unbonded(farm)
    chain.mine(deltatime=UNBONDING_DELAY + 1)
    before = farm.ntk_balance()
    acct.withdraw_unbonded(farm)
    assert farm.ntk_balance() == before + 105 * NTK
    assert farm.get_provider().unbonding_ntk == 0


def test_unbond__more_than_free_stake__is_refused(farm: MarketClient) -> None:
    acct.register(farm, STAKE)
    with pytest.raises(NothingToDoError, match="free stake is 1,000 NTK, cannot unbond 1,001 NTK"):
        acct.request_unbond(farm, 1_001 * NTK)


def test_withdraw_earnings__with_none__is_refused(farm: MarketClient) -> None:
    acct.register(farm, STAKE)
    with pytest.raises(NothingToDoError, match="no earnings"):
        acct.withdraw_earnings(farm)


def test_transact__revert__is_decoded_into_the_market_error(farm: MarketClient) -> None:
    no_record = (0, 0, 0, bytes(32), bytes(32))
    with pytest.raises(ChainRevertError) as caught:
        farm.transact(farm.market.functions.acceptJob(1, no_record), "acceptJob(1)")
    assert caught.value.name == "MarketJobNotFound"
    assert caught.value.args_ == {"jobId": 1}
    meaning = explain_error("MarketJobNotFound", {"jobId": 1})  # neurotoken.chain.explain
    assert meaning is not None
    assert str(caught.value) == f"acceptJob(1) reverted with MarketJobNotFound(jobId=1): {meaning}"
    assert "job 1 is not open" in str(caught.value)


def test_connect__to_an_address_without_code__is_a_config_error(
    rpc_url: str, abi_manifest: Any
) -> None:
    with pytest.raises(
        ConfigError, match="no contract at 0x000000000000000000000000000000000000dEaD"
    ):
        MarketClient.connect(
            rpc_url, "0x000000000000000000000000000000000000dead", None, manifest=abi_manifest
        )


def test_connect__to_a_contract_that_is_not_a_market__is_a_config_error(
    rpc_url: str, token: Any, abi_manifest: Any
) -> None:
    with pytest.raises(ConfigError, match="is not a ComputeMarket"):
        MarketClient.connect(rpc_url, token.address, None, manifest=abi_manifest)


def test_connect__with_a_malformed_address__is_a_config_error(rpc_url: str) -> None:
    with pytest.raises(ConfigError, match="not an address"):
        MarketClient.connect(rpc_url, "0x1234", None)


def test_status__shows_the_account(farm: MarketClient) -> None:
    acct.register(farm, STAKE)
    lines = acct.account_status(farm).lines()
    assert lines[0] == f"address        {farm.address}"
    assert "free stake     1,000 NTK" in lines
    assert "registered     yes" in lines
