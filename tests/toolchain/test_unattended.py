"""Signing commands run unattended (cron, systemd, CI) when the account's passphrase is given
(issue 15, finding 2), and say what to set when it is not.

Each command runs as a real process with no terminal (stdin is /dev/null), an ape data
folder holding one keystore account, and a fresh anvil that `ape run` starts itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from eth_typing import HexStr

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# anvil's account 9 (funded on a fresh anvil), kept in an encrypted ape keystore here
KEY = HexStr("0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6")
ALIAS = "operator"
PASSPHRASE = "Zq7pW3xKv-unattended"


@pytest.fixture
def ape_home(tmp_path: Path) -> Path:
    accounts = tmp_path / "ape" / "accounts"
    accounts.mkdir(parents=True)
    keyfile = Account.encrypt(KEY, PASSPHRASE, kdf="pbkdf2", iterations=1024)
    (accounts / f"{ALIAS}.json").write_text(json.dumps(keyfile))
    return tmp_path


def deploy_token(home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "APE_DATA_FOLDER": str(home / "ape"),
        "NEUROTOKEN_DEPLOYMENTS_DIR": str(home / "deployments"),
        **env,
    }
    command = [str(BIN / "ape"), "run", "deploy", "--account", ALIAS, "--yes"]
    command += ["--network", "ethereum:local:foundry"]
    return subprocess.run(
        command, cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


# With the passphrase in APE_ACCOUNTS_<alias>_PASSPHRASE: tests/cli/test_runbook.py signs
# a whole sale and market run that way, with no terminal.


def test_passphrase_in_a_file__signs_without_a_prompt(ape_home: Path) -> None:
    secret = ape_home / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    result = deploy_token(ape_home, **{f"APE_ACCOUNTS_{ALIAS}_PASSPHRASE_FILE": str(secret)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Aborted" not in output and "Sign:" not in output and PASSPHRASE not in output
    recorded = json.loads((ape_home / "deployments" / "ethereum-local.json").read_text())
    assert recorded["NeuroToken"]["deployer"] == Account.from_key(KEY).address


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({}, f"set APE_ACCOUNTS_{ALIAS}_PASSPHRASE"),
        ({f"APE_ACCOUNTS_{ALIAS}_PASSPHRASE": "wrong-guess"}, "does not decrypt its keystore"),
    ],
)
def test_no_or_wrong_passphrase_without_a_terminal__one_line_not_aborted(
    ape_home: Path, env: dict[str, str], said: str
) -> None:
    result = deploy_token(ape_home, **env)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert said in output and "Traceback" not in output and "Aborted!" not in output
    assert "wrong-guess" not in output
