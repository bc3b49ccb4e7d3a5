"""Deployed addresses, one JSON file per network: deployments/<ecosystem>-<network>.json.

The one place addresses live (STYLE 15). Scripts record what they deploy here and look
addresses up by contract name; tests never write here.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from neurotoken.errors import NeurotokenError

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "deployments"


_DEPLOY_COMMANDS = {
    "NeuroToken": "ape run deploy",
    "TokenSale": "ape run sale deploy",
    "TeamVestingWallet": "ape run sale deploy",
    "ComputeMarket": "ape run market deploy",
}


class DeploymentNotFoundError(NeurotokenError, LookupError):
    """No address is recorded for a contract on a network."""

    def __init__(self, name: str, network: str, path: Path) -> None:
        command = _DEPLOY_COMMANDS.get(name, "ape run deploy")
        super().__init__(
            f"No {name} recorded for network '{network}' in {path}. "
            f"Deploy it first (`{command} ... --network ...`), or pass its address."
        )


def deployments_dir() -> Path:
    """The folder of deployment files (NEUROTOKEN_DEPLOYMENTS_DIR overrides it)."""
    return Path(os.environ.get("NEUROTOKEN_DEPLOYMENTS_DIR", DEFAULT_DIR))


def network_key(ecosystem: str, network: str) -> str:
    """File stem for a network, e.g. 'ethereum-sepolia' or 'ethereum-local'."""
    return f"{ecosystem}-{network}".replace(":", "-").replace("/", "-")


def _path(network: str) -> Path:
    return deployments_dir() / f"{network}.json"


def load(network: str) -> dict[str, Any]:
    """Everything recorded for `network` (empty when nothing is)."""
    path = _path(network)
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def record(network: str, name: str, address: str, **extra: Any) -> Path:
    """Records `name` at `address` on `network` (replacing an earlier record), atomically."""
    path = _path(network)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = load(network)
    data[name] = {
        "address": str(address),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def address_of(network: str, name: str) -> str:
    """The recorded address of `name` on `network`, or DeploymentNotFoundError."""
    entry = load(network).get(name)
    if entry is None:
        raise DeploymentNotFoundError(name, network, _path(network))
    return str(entry["address"])
