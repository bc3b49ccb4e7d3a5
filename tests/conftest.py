"""Shared fixtures: accounts named by role, and factories for the contracts under test."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from neurotoken.chain.permit import PermitSignature, sign_permit


@pytest.fixture(scope="session")
def owner(accounts: Any) -> Any:
    """Deploys contracts and holds admin roles."""
    return accounts[0]


@pytest.fixture(scope="session")
def minter(accounts: Any) -> Any:
    """Stands in for the token sale: the only account with the minter role."""
    return accounts[1]


@pytest.fixture(scope="session")
def alice(accounts: Any) -> Any:
    return accounts[2]


@pytest.fixture(scope="session")
def bob(accounts: Any) -> Any:
    return accounts[3]


@pytest.fixture(scope="session")
def carol(accounts: Any) -> Any:
    return accounts[4]


@pytest.fixture(scope="session")
def holders(alice: Any, bob: Any, carol: Any) -> list[Any]:
    return [alice, bob, carol]


@pytest.fixture
def token(project: Any, owner: Any, minter: Any) -> Any:
    """A fresh NeuroToken with `minter` holding the minter role."""
    ntk = project.NeuroToken.deploy(owner, sender=owner)
    ntk.grantRole(ntk.MINTER_ROLE(), minter, sender=owner)
    return ntk


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
