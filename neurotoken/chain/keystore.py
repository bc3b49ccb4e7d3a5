"""Signing keys in encrypted keystores, for every part that signs (the provider agent, the
oracle, a client): read and written here only, never taken from a flag or a log line.

The keystore is the standard Web3 Secret Storage (v3) JSON that eth-account writes, which is
also what ape keeps as `~/.ape/accounts/<alias>.json` (`ape accounts generate|import ALIAS`;
ape's data folder moves with APE_DATA_FOLDER). The password is read from an environment
variable whose *name* the CLI is given (`--password-env`, `ORACLE_PASSWORD_ENV`), so it never
appears in a command line, a shell history or `ps`. No error built here holds key material or
the password.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr

from neurotoken.errors import KeystoreError


def ape_accounts_dir() -> Path:
    """Where ape keeps keystores: $APE_DATA_FOLDER/accounts, by default ~/.ape/accounts."""
    base = os.environ.get("APE_DATA_FOLDER")
    return (Path(base) if base else Path.home() / ".ape") / "accounts"


def keystore_path(keystore: str) -> Path:
    """`keystore` as a file path, or as an ape alias (a name with no '/' and no '.json')."""
    path = Path(keystore).expanduser()
    if path.exists() or "/" in keystore or keystore.endswith(".json"):
        return path
    return ape_accounts_dir() / f"{keystore}.json"


def load_account(keystore: str | Path, password_env: str) -> LocalAccount:
    """Decrypts the keystore `keystore` (a path or an ape alias) with the password in the
    environment variable `password_env`."""
    path = keystore_path(str(keystore))
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeystoreError(f"no keystore at {path}") from None
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"{path} is not a keystore JSON file ({type(exc).__name__})") from None
    if not isinstance(document, dict) or ("crypto" not in document and "Crypto" not in document):
        raise KeystoreError(f"{path} is not an encrypted keystore (no 'crypto' section)")
    password = os.environ.get(password_env)
    if password is None:
        raise KeystoreError(f"the keystore password is read from ${password_env}, which is not set")
    try:
        key = Account.decrypt(document, password)
    except ValueError:
        raise KeystoreError(f"wrong password for {path} (from ${password_env})") from None
    except Exception as exc:  # malformed kdf params etc.; never echo the document
        raise KeystoreError(f"cannot decrypt {path} ({type(exc).__name__})") from None
    account: LocalAccount = Account.from_key(key)
    declared = document.get("address")
    if isinstance(declared, str) and declared.lower().removeprefix("0x") != (
        account.address.lower().removeprefix("0x")
    ):
        raise KeystoreError(f"{path} decrypts to {account.address}, not its stated address")
    return account


def write_keystore(
    path: Path, private_key: bytes | str, password: str, iterations: int | None = None
) -> Path:
    """Writes an encrypted keystore readable by its owner only (created with mode 0600, never
    world-readable for an instant): scrypt by default; pbkdf2 with `iterations` for tests."""
    key = HexStr(private_key) if isinstance(private_key, str) else private_key
    if iterations is None:
        document = Account.encrypt(key, password)
    else:
        document = Account.encrypt(key, password, kdf="pbkdf2", iterations=iterations)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(document, fh)
    path.chmod(0o600)  # an existing file keeps its mode through O_TRUNC
    return path
