"""The role table (tests/roles.py) against ape's test accounts and the role fixtures."""

from __future__ import annotations

from typing import Any

import pytest

from tests.roles import ACCOUNTS_NEEDED, ORACLES, ROLES


def test_each_role__is_its_own_funded_account(
    request: pytest.FixtureRequest, accounts: Any
) -> None:
    assert len(accounts) >= ACCOUNTS_NEEDED, "raise test.number_of_accounts in ape-config.yaml"
    by_fixture = {name: request.getfixturevalue(name) for name in ROLES if name not in ORACLES}
    by_fixture.update(zip(ORACLES, request.getfixturevalue("oracles"), strict=True))
    assert {name: a.address for name, a in by_fixture.items()} == {
        name: accounts[index].address for name, index in ROLES.items()
    }
    assert len({a.address for a in by_fixture.values()}) == len(ROLES)
    assert all(a.balance > 0 for a in by_fixture.values())
