"""Documented commands in a fresh shell: nothing exported, not under make (issue 15, 1).

The venv's interpreter runs `_neurotoken_env.py` at start-up (the `.pth` line `make setup`
writes), so ape finds the local solc wrapper and anvil by itself, and nothing reaches for the
network. Each command here runs with an environment holding only a system PATH and HOME.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def fresh_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=ROOT, env=fresh_env(), capture_output=True, text=True, timeout=timeout
    )


def test_venv_python__finds_the_local_compiler_and_anvil_with_nothing_exported() -> None:
    probe = (
        "import os, shutil, solcx; "
        "print(sorted(str(v) for v in solcx.get_installed_solc_versions())); "
        "print(shutil.which('anvil')); print(os.environ['no_proxy'])"
    )
    result = run(str(BIN / "python"), "-c", probe)
    assert result.returncode == 0, result.stderr
    versions, anvil, no_proxy = result.stdout.splitlines()
    assert "0.8.37" in versions
    assert anvil == str(ROOT / "node_modules" / ".bin" / "anvil")
    assert "127.0.0.1" in no_proxy.split(",") and "localhost" in no_proxy.split(",")


def test_ape_compile__in_a_fresh_shell__uses_the_local_compiler() -> None:
    result = run(str(BIN / "ape"), "compile", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "binaries.soliditylang.org" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["python", "-m", "oracle", "--help"],
        ["python", "-m", "neurotoken.provider", "--help"],
        ["python", "-m", "neurotoken.provider", "agent", "--help"],
        # `ape run sale|market` and `python -m neurotoken.client`: tests/cli/test_runbook.py
        ["neurotoken-oracle", "--help"],
        ["neurotoken-provider", "agent", "--help"],
    ],
)
def test_entry_points__answer_in_a_fresh_shell(command: list[str]) -> None:
    result = run(str(BIN / command[0]), *command[1:])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Usage:" in result.stdout


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (None, "comes from $SEPOLIA_RPC_URL, which is not set: export SEPOLIA_RPC_URL"),
        ("https://u:Zq7pW3xKv@127.0.0.1:1/v3/Hj4rT8mNc", "cannot connect to the network"),
    ],
)
def test_testnet_url_unset_or_unreachable__one_line_without_its_secrets(
    url: str | None, said: str
) -> None:
    env = fresh_env() | ({"SEPOLIA_RPC_URL": url} if url else {})
    result = subprocess.run(
        [str(BIN / "ape"), "run", "sale", "status", "--network", "ethereum:sepolia:node"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert said in output and "Traceback" not in output
    assert "Zq7pW" not in output and "Hj4rT" not in output
