"""Shared fixtures: the accounts, one per role (tests/roles.py), and factories for the
contracts under test."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from neurotoken.chain.permit import PermitSignature, sign_permit
from tests.helpers import deploy_token
from tests.roles import ORACLES, ROLES

# ---------------------------------------------------------------- accounts, one per role
# Each role is its own account: the table is tests/roles.py. No folder picks an index of its own.


@pytest.fixture(scope="session")
def owner(accounts: Any) -> Any:
    return accounts[ROLES["owner"]]


@pytest.fixture(scope="session")
def minter(accounts: Any) -> Any:
    return accounts[ROLES["minter"]]


@pytest.fixture(scope="session")
def client(accounts: Any) -> Any:
    return accounts[ROLES["client"]]


@pytest.fixture(scope="session")
def client2(accounts: Any) -> Any:
    return accounts[ROLES["client2"]]


@pytest.fixture(scope="session")
def provider(accounts: Any) -> Any:
    return accounts[ROLES["provider"]]


@pytest.fixture(scope="session")
def provider2(accounts: Any) -> Any:
    return accounts[ROLES["provider2"]]


@pytest.fixture(scope="session")
def oracles(accounts: Any) -> list[Any]:
    """The three oracles; the markets under test start with all three and a threshold of two."""
    return [accounts[ROLES[name]] for name in ORACLES]


@pytest.fixture(scope="session")
def stranger(accounts: Any) -> Any:
    return accounts[ROLES["stranger"]]


@pytest.fixture(scope="session")
def treasury(accounts: Any) -> Any:
    return accounts[ROLES["treasury"]]


@pytest.fixture(scope="session")
def outsider_key(accounts: Any) -> Any:
    return accounts[ROLES["outsider_key"]]


@pytest.fixture(scope="session")
def alice(accounts: Any) -> Any:
    return accounts[ROLES["alice"]]


@pytest.fixture(scope="session")
def bob(accounts: Any) -> Any:
    return accounts[ROLES["bob"]]


@pytest.fixture(scope="session")
def carol(accounts: Any) -> Any:
    return accounts[ROLES["carol"]]


@pytest.fixture(scope="session")
def dave(accounts: Any) -> Any:
    return accounts[ROLES["dave"]]


@pytest.fixture(scope="session")
def erin(accounts: Any) -> Any:
    return accounts[ROLES["erin"]]


@pytest.fixture(scope="session")
def holders(alice: Any, bob: Any, carol: Any, dave: Any) -> list[Any]:
    """The token holders of the token tests."""
    return [alice, bob, carol, dave]


# ---------------------------------------------------------------- contracts and signatures


@pytest.fixture
def token(project: Any, owner: Any, minter: Any) -> Any:
    """A fresh NeuroToken with `minter` holding the minter role."""
    return deploy_token(project, owner, minter)


@pytest.fixture
def deployments_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder of recorded deployments (NEUROTOKEN_DEPLOYMENTS_DIR) for this test."""
    folder = tmp_path / "deployments"
    monkeypatch.setenv("NEUROTOKEN_DEPLOYMENTS_DIR", str(folder))
    return folder


@pytest.fixture
def make_permit(chain: Any) -> Callable[..., PermitSignature]:
    """Returns a signer: make_permit(token, owner_account, spender, value, deadline, nonce=None)."""

    def _make(
        token: Any,
        signer: Any,
        spender: Any,
        value: int,
        deadline: int,
        nonce: int | None = None,
        chain_id: int | None = None,
        verifying_contract: str | None = None,
    ) -> PermitSignature:
        return sign_permit(
            signer.private_key,
            token_name=token.name(),
            token_address=verifying_contract or token.address,
            chain_id=chain.chain_id if chain_id is None else chain_id,
            owner=signer.address,
            spender=str(spender),
            value=value,
            nonce=token.nonces(signer) if nonce is None else nonce,
            deadline=deadline,
        )

    return _make


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Long fault campaigns (marked `soak`) run under `make soak` only: `make test` stays
    within its time budget on two cores."""
    if os.environ.get("NEUROTOKEN_SOAK"):
        return
    skip = pytest.mark.skip(reason="a long fault campaign: run it with `make soak`")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
