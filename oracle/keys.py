"""The oracle's key, from an encrypted JSON keystore (Web3 Secret Storage, version 3).

The same format eth-account writes with ``Account.encrypt`` and ape keeps in
``~/.ape/accounts/<alias>.json``. The password comes from an environment variable whose
*name* is configured, so it never sits in a settings file. The decrypted key lives only
inside `OracleKey`; its repr and str show the address alone, and no error message built
here contains key material or the password.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account.datastructures import SignedTransaction
from eth_account.signers.local import LocalAccount

from neurotoken.chain.keystore import load_account
from neurotoken.market.verdicts import (
    MarketDomain,
    SignedVerdict,
    Verdict,
    sign_batch,
    sign_verdict,
)
from neurotoken.proofs.access import TOKEN_LIFETIME_S, BundleAccess


class OracleKey:
    """Signs verdicts and transactions; shows nothing but its address."""

    __slots__ = ("_account",)

    def __init__(self, account: LocalAccount) -> None:
        self._account = account

    @property
    def address(self) -> str:
        return str(self._account.address)

    def __repr__(self) -> str:
        return f"OracleKey({self.address})"

    __str__ = __repr__

    def sign_verdict(self, domain: MarketDomain, verdict: Verdict) -> SignedVerdict:
        return sign_verdict(self._account.key, domain, verdict)

    def sign_batch(self, domain: MarketDomain, verdicts: list[Verdict]) -> SignedVerdict:
        return sign_batch(self._account.key, domain, verdicts)

    def bundle_access(
        self, domain: MarketDomain, root: bytes, lifetime_s: float = TOKEN_LIFETIME_S
    ) -> BundleAccess:
        """A token for reading the proof bundle `root` from its provider (the provider admits
        the oracles of the job; `neurotoken.proofs.access`)."""
        return BundleAccess.sign(
            self._account.key, domain.chain_id, domain.market, root, lifetime_s=lifetime_s
        )

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTransaction:
        return self._account.sign_transaction(tx)


def load_key(keystore: Path, password_env: str) -> OracleKey:
    """Decrypts `keystore` (a path or an ape alias) with the password in the environment
    variable `password_env`."""
    return OracleKey(load_account(keystore, password_env))
