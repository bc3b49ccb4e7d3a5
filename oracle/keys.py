"""The oracle's key, from an encrypted JSON keystore (Web3 Secret Storage, version 3).

The same format eth-account writes with ``Account.encrypt`` and ape keeps in
``~/.ape/accounts/<alias>.json``. The password comes from an environment variable whose
*name* is configured, so it never sits in a settings file. The decrypted key lives only
inside `OracleKey`; its repr and str show the address alone, and no error message built
here contains key material or the password.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.datastructures import SignedTransaction
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr

from neurotoken.market.verdicts import (
    MarketDomain,
    SignedVerdict,
    Verdict,
    sign_batch,
    sign_verdict,
)
from neurotoken.proofs.access import TOKEN_LIFETIME_S, BundleAccess
from oracle.errors import KeystoreError


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
    """Decrypts `keystore` with the password in the environment variable `password_env`."""
    password = os.environ.get(password_env)
    if password is None:
        raise KeystoreError(f"the keystore password variable {password_env} is not set")
    try:
        data = json.loads(Path(keystore).read_text())
    except FileNotFoundError:
        raise KeystoreError(f"no keystore at {keystore}") from None
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"keystore {keystore} is unreadable: {type(exc).__name__}") from None
    try:
        key = Account.decrypt(data, password)
    except ValueError:
        raise KeystoreError(f"keystore {keystore}: wrong password or corrupt file") from None
    except Exception as exc:
        raise KeystoreError(f"keystore {keystore}: cannot decrypt ({type(exc).__name__})") from None
    return OracleKey(Account.from_key(key))


def write_keystore(
    path: Path, private_key: bytes | HexStr, password: str, kdf: str = "scrypt"
) -> str:
    """Encrypts `private_key` into a keystore file at `path` (mode 0600); returns the address.
    ``kdf="pbkdf2"`` with few iterations is only for tests (fast to decrypt)."""
    if kdf == "pbkdf2":
        data = Account.encrypt(private_key, password, kdf="pbkdf2", iterations=1024)
    else:
        data = Account.encrypt(private_key, password)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    return str(Account.from_key(private_key).address)
