"""A whole market on one machine, for the end-to-end tests, the benchmark and the demo:
an anvil node, the NTK and market contracts deployed from ape's build, a client, honest and
cheating providers serving real proof bundles, oracle processes, and an RPC proxy that
drops, delays and breaks requests.

Nothing here is a mock: anvil is the real node (`node_modules/.bin/anvil`), the contracts
are the compiled ones, the providers compute real shards with `neurotoken.provider`, and
each oracle is ``python -m oracle run`` in its own process.

This module gathers the dev chain's modules in one place to import from: `devchain.anvil`
(the node and its keys), `devchain.contracts` (deploying and calling the contracts, the
market), `devchain.parties` (the client and the providers), `devchain.oracles` (the oracle
processes), `devchain.faults` (the RPC fault proxy) and `devchain.waits` (waiting helpers).
"""

from __future__ import annotations

from devchain.anvil import (
    ANVIL_MNEMONIC,
    Anvil,
    BlockTicker,
    anvil_binary,
    anvil_keys,
)
from devchain.contracts import (
    Market,
    attach_market,
    deploy,
    load_artifact,
    setup_local_market,
    transact,
)
from devchain.faults import FaultCounts, FaultyRpcProxy
from devchain.oracles import OracleProcess, oracle_set, running
from devchain.parties import SCENE, ZERO, AnySpec, Client, Provider, small_spec
from devchain.waits import wait_until
from neurotoken.ports import free_port, free_ports

__all__ = [
    "ANVIL_MNEMONIC",
    "SCENE",
    "ZERO",
    "Anvil",
    "AnySpec",
    "BlockTicker",
    "Client",
    "FaultCounts",
    "FaultyRpcProxy",
    "Market",
    "OracleProcess",
    "Provider",
    "anvil_binary",
    "anvil_keys",
    "attach_market",
    "deploy",
    "free_port",
    "free_ports",
    "load_artifact",
    "oracle_set",
    "running",
    "setup_local_market",
    "small_spec",
    "transact",
    "wait_until",
]
