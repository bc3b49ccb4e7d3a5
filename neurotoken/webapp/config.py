"""config.json for one network: chain id and name, the addresses recorded in
deployments/<network>.json with their ABIs from ape's build manifest, and the sale's published
allow-list (the StandardMerkleTree JSON its deploy recorded), for the presale proof."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from neurotoken.chain import deployments
from neurotoken.errors import ConfigError
from neurotoken.provider.chain import load_abi

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
APP_CONTRACTS = ("NeuroToken", "TokenSale", "ComputeMarket")
CHAIN_NAMES = {1: "Ethereum", 11155111: "Sepolia", 31337: "Local anvil"}


def _allowlist(entry: dict[str, Any], base: Path) -> Any:
    path_text = str(entry.get("allowlist") or "")
    if not path_text:
        return None
    path = Path(path_text)
    path = path if path.is_absolute() else base / path
    try:
        tree = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"the sale's allow-list {path} cannot be read ({type(exc).__name__}): the presale "
            "page needs it to find buyers' proofs; publish it beside the deployment record"
        ) from None
    if not isinstance(tree, dict) or tree.get("format") != "standard-v1":
        raise ConfigError(f"{path} is not a StandardMerkleTree JSON (format standard-v1)")
    return tree


def app_config(
    network: str,
    chain_id: int,
    rpc_url: str = "",
    chain_name: str | None = None,
    manifest: Path | None = None,
) -> dict[str, Any]:
    """The app's configuration for `network` (a deployments file stem, e.g. ethereum-local)."""
    recorded = deployments.load(network)
    addresses = {name: recorded[name]["address"] for name in APP_CONTRACTS if name in recorded}
    if not addresses:
        path = deployments.deployments_dir() / f"{network}.json"
        raise ConfigError(
            f"nothing is recorded for network '{network}' in {path}: deploy first "
            "(`ape run sale deploy`, `ape run market deploy`), or name another --network"
        )
    sale = recorded.get("TokenSale", {})
    market = recorded.get("ComputeMarket", {})
    return config_for(
        network,
        chain_id,
        addresses,
        rpc_url=rpc_url,
        chain_name=chain_name,
        manifest=manifest,
        allowlist=_allowlist(sale, deployments.deployments_dir().parent) if sale else None,
        # where the market's events begin (its deployment block, when its deploy recorded it)
        from_block=int(market.get("block") or 0),
    )


def config_for(
    network: str,
    chain_id: int,
    addresses: dict[str, str],
    *,
    rpc_url: str = "",
    chain_name: str | None = None,
    manifest: Path | None = None,
    allowlist: Any = None,
    from_block: int = 0,
) -> dict[str, Any]:
    """The app's configuration from contract addresses (name -> address, of APP_CONTRACTS)."""
    return {
        "network": network,
        "chainId": chain_id,
        "chainName": chain_name or CHAIN_NAMES.get(chain_id, f"chain {chain_id}"),
        "rpcUrl": rpc_url,
        "contracts": {
            name: {"address": address, "abi": load_abi(name, manifest)}
            for name, address in addresses.items()
        },
        "allowlist": allowlist,
        "fromBlock": from_block,
    }
