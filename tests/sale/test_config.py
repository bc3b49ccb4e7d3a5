"""The sale config file: the defaults are the 2017 terms, and bad files say what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from neurotoken.sale.config import DEFAULT_CONFIG, SaleConfig, SaleConfigError
from neurotoken.sale.terms import BUYING_STAGES, Stage
from tests.constants import DAY

WALLET = "0x" + "11" * 20


def test_default_config__holds_the_2017_terms() -> None:
    terms = SaleConfig.load(DEFAULT_CONFIG).to_terms(
        now=1_000, allowlist_root=bytes(32), default_wallet=WALLET
    )
    assert terms.ntk_per_eth == 1000
    assert terms.hard_cap_tokens == 60_000_000 * 10**18
    assert terms.bonus_bps == (1000, 1500, 1000, 500, 0)
    assert (terms.liquidity_bps, terms.team_bps, terms.partners_bps, terms.researchers_bps) == (
        1000,
        1200,
        1200,
        600,
    )
    assert terms.buyers_bps == 6000
    assert terms.min_contribution_wei == 10**17
    assert terms.stage_starts[0] == 1_000 + 3600
    assert terms.ends_at == terms.stage_starts[0] + 5 * 7 * DAY  # presale, 3 bonus weeks, final
    assert terms.team_vesting_start == terms.ends_at
    assert terms.team_cliff_seconds == 365 * DAY
    # Each stage lasts a week: a timestamp in the middle of each is in that stage.
    for stage in BUYING_STAGES:
        assert terms.stage_at(terms.stage_start(stage) + DAY) == stage
    assert terms.stage_at(terms.ends_at) == Stage.ENDED


def test_default_config__equals_the_built_in_defaults() -> None:
    loaded = SaleConfig.load(DEFAULT_CONFIG).model_dump(exclude={"source"})
    assert loaded == SaleConfig().model_dump(exclude={"source"})


def test_config__with_an_absolute_start__uses_it(tmp_path: Path) -> None:
    path = tmp_path / "sale.toml"
    path.write_text("[schedule]\nstart = 2030-01-01T00:00:00Z\npresale_days = 0\n")
    terms = SaleConfig.load(path).to_terms(now=5, allowlist_root=bytes(32), default_wallet=WALLET)
    start = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    assert terms.stage_starts[:2] == (start, start)  # no presale
    assert terms.stage_at(start) == Stage.ICO_WEEK1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soft_cap_eth = ", "is not valid TOML"),
        ("hard_cap = 5", "hard_cap: Extra inputs are not permitted"),
        ("[bonus_bps]\npresale = 10000", "bonus_bps.presale"),
        ("min_contribution_eth = '0.0000000000000000001'", "is not a whole number of wei"),
        ("[wallets]\ntreasury = '0x1234'", "wallets.treasury"),
    ],
)
def test_config__that_is_wrong__says_which_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sale.toml"
    path.write_text(text + "\n")
    with pytest.raises(SaleConfigError, match=message):
        SaleConfig.load(path).to_terms(now=0, allowlist_root=bytes(32), default_wallet=WALLET)


def test_config__without_wallets_on_a_live_network__lists_them() -> None:
    with pytest.raises(SaleConfigError, match=r"set wallets\.treasury, wallets\.liquidity"):
        SaleConfig().to_terms(now=0, allowlist_root=bytes(32), default_wallet=None)


def test_config__missing_file__says_so(tmp_path: Path) -> None:
    with pytest.raises(SaleConfigError, match="cannot read the sale config"):
        SaleConfig.load(tmp_path / "nope.toml")


def test_config__allowlist_path__is_relative_to_the_config(tmp_path: Path) -> None:
    path = tmp_path / "sale.toml"
    path.write_text("allowlist = 'lists/presale.json'\n")
    assert SaleConfig.load(path).allowlist_path() == tmp_path / "lists" / "presale.json"
