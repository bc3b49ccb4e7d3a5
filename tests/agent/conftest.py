"""Provider-agent fixtures: a token and a market deployed with ape on anvil, and the agent's
own web3 client pointed at the same node (as the agent would be, at any node).

Roles (the accounts of tests/conftest.py): `client` posts jobs, `farm` is `provider` as the
agent drives it (its key becomes an eth-account LocalAccount; ape never sends from it),
`oracles` sign verdicts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from eth_account import Account
from eth_account.signers.local import LocalAccount

from neurotoken.chain.keystore import write_keystore
from neurotoken.jobs import keccak256, parse_spec, spec_json
from neurotoken.market.job import OnChainJob
from neurotoken.market.records import ape_reader
from neurotoken.market.verdicts import MarketDomain, Verdict, sign_verdict
from neurotoken.provider.agent import AgentConfig, ProviderAgent
from neurotoken.provider.chain import DEFAULT_MANIFEST, MarketClient
from neurotoken.provider.cli import main
from neurotoken.provider.policy import Policy
from neurotoken.units import NTK
from tests.constants import (
    AGENT_PAYMENT,
    AGENT_SHARDS,
    COLLATERAL,
    MAX_UINT256,
    ZERO_ADDRESS,
    shelf_spec_dict,
)

# tests/agent/test_replacement.py reads STAKE from here.
from tests.constants import STAKE as STAKE
from tests.helpers import deploy_market, sorted_signatures


def spec_dict(**overrides: Any) -> dict[str, Any]:
    """The agent tests' shelf spec: the shared one, of AGENT_SHARDS shards."""
    return shelf_spec_dict(**{"shard_count": AGENT_SHARDS, **overrides})


def spec_bytes(**overrides: Any) -> bytes:
    """Canonical bytes of a valid tiny shelf spec of AGENT_SHARDS shards."""
    return spec_json(parse_spec(spec_dict(**overrides)))


@pytest.fixture(scope="session")
def farm_key(provider: Any) -> LocalAccount:
    """`provider`'s key as the agent holds it (decrypted from a keystore in real life)."""
    key: LocalAccount = Account.from_key(provider.private_key)
    return key


@pytest.fixture(scope="session")
def abi_manifest(project: Any) -> Path:
    """Ape's build manifest, where the agent reads its ABIs (ape test compiles into it)."""
    project.load_contracts()
    data = json.loads(DEFAULT_MANIFEST.read_text())
    assert {"ComputeMarket", "NeuroToken"} <= set(data["contractTypes"])
    return DEFAULT_MANIFEST


@pytest.fixture
def market(
    project: Any,
    owner: Any,
    token: Any,
    minter: Any,
    oracles: list[Any],
    client: Any,
    farm_key: LocalAccount,
    provider2: Any,
) -> Any:
    """A market with 3 oracles (threshold 2) and a 2.5% fee; client and farm hold NTK."""
    deployed = deploy_market(project, token, owner, oracles)
    token.mint(client, 100_000 * NTK, sender=minter)
    token.approve(deployed, MAX_UINT256, sender=client)
    token.mint(farm_key.address, 10_000 * NTK, sender=minter)
    token.mint(provider2, 10_000 * NTK, sender=minter)
    token.approve(deployed, MAX_UINT256, sender=provider2)
    return deployed


@pytest.fixture
def rpc_url(chain: Any) -> str:
    return str(chain.provider.uri)


@pytest.fixture
def farm(rpc_url: str, market: Any, farm_key: LocalAccount, abi_manifest: Path) -> MarketClient:
    """The agent's chain client: its own web3 over HTTP to the same anvil, signing locally."""
    return MarketClient.connect(rpc_url, market.address, farm_key, manifest=abi_manifest)


FAST_POLICY = Policy(deadline_margin_s=60)


@pytest.fixture
def make_agent(farm: MarketClient, tmp_path: Path) -> Iterator[Callable[..., ProviderAgent]]:
    """make_agent(policy=..., echo=..., **config): an agent on fixed state/store folders, so a
    second call is the same installation restarted (its log lines go to `echo`)."""
    made: list[ProviderAgent] = []

    def _make(
        policy: Policy = FAST_POLICY,
        client: MarketClient | None = None,
        echo: Callable[[str], None] | None = None,
        **config: Any,
    ) -> ProviderAgent:
        settings: dict[str, Any] = {
            "state_dir": tmp_path / "state",
            "store_dir": tmp_path / "bundles",
            "bundle_uri": (tmp_path / "bundles").as_uri(),
            "policy": policy,
            "workers": 1,
            "progress": False,
        }
        settings.update(config)
        agent = ProviderAgent(
            client or farm, AgentConfig(**settings), echo=echo or (lambda _: None)
        )
        made.append(agent)
        return agent

    yield _make
    for agent in made:
        agent.close()


@dataclass
class Jobs:
    """Posting jobs as the client, and settling them as the oracles."""

    market: Any
    chain: Any
    client: Any
    oracles: list[Any]
    folder: Path

    def write_spec(self, raw: bytes, name: str = "spec") -> Path:
        path = self.folder / f"{name}-{keccak256(raw).hex()[:12]}.json"
        path.write_bytes(raw)
        return path

    def post(
        self,
        raw: bytes | None = None,
        *,
        spec_uri: str | None = None,
        spec_hash: bytes | None = None,
        **overrides: Any,
    ) -> int:
        raw = spec_bytes() if raw is None else raw
        uri = spec_uri if spec_uri is not None else str(self.write_spec(raw))
        now = self.chain.pending_timestamp
        request: dict[str, Any] = {
            "specHash": spec_hash if spec_hash is not None else keccak256(raw),
            "specURI": uri,
            "paymentNtk": AGENT_PAYMENT,
            "provider": ZERO_ADDRESS,
            "collateralNtk": COLLATERAL,
            "shardCount": AGENT_SHARDS,
            "challengeCount": 4,
            "acceptBy": now + 3600,
            "deliverBy": now + 7200,
            "verdictBy": now + 10800,
        }
        request.update(overrides)
        tx = self.market.postJob(request, sender=self.client)
        return int(tx.return_value)

    def job(self, job_id: int) -> OnChainJob:
        """The job's record (its last one once it has ended), read through ape: rebuilt from
        its events and checked against the digest the market stores."""
        return ape_reader(self.market).get(job_id)

    def rec(self, job_id: int) -> tuple[Any, ...]:
        """The job's current record as the market's calls take it."""
        return self.job(job_id).record()

    def seed(self, job_id: int) -> bytes:
        """The job's challenge seed, as the contract reads it."""
        return bytes(self.market.challengeSeed(job_id, self.job(job_id).seed_block))

    def settle(self, job_id: int, accepted: bool, sender: Any) -> Any:
        """Two of the three oracles sign the verdict over the committed root; `sender` submits."""
        self.chain.mine(2)  # the seed block, then one more so views can read its hash
        job = self.job(job_id)
        seed = self.seed(job_id)
        domain = MarketDomain(self.chain.chain_id, self.market.address)
        signed = [
            sign_verdict(o.private_key, domain, Verdict(job_id, job.result_root, seed, accepted))
            for o in self.oracles[:2]
        ]
        return self.market.settle(
            job_id, job.record(), accepted, sorted_signatures(signed), sender=sender
        )


@pytest.fixture
def jobs(market: Any, chain: Any, client: Any, oracles: list[Any], tmp_path: Path) -> Jobs:
    folder = tmp_path / "specs"
    folder.mkdir()
    return Jobs(market, chain, client, oracles, folder)


# ---------------------------------------------------------------------- the CLI

PASSWORD_ENV = "TEST_FARM_PASSWORD"


@pytest.fixture
def keystore(tmp_path: Path, farm_key: LocalAccount) -> Path:
    return write_keystore(tmp_path / "farm.json", farm_key.key, "correct horse", iterations=2)


@pytest.fixture
def cli(
    rpc_url: str, market: Any, keystore: Path, tmp_path: Path, farm_key: LocalAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Result]:  # fmt: skip
    """cli(*args): `python -m neurotoken.provider agent ARGS` in-process, as the farm (its
    keystore and password from the environment); no output ever holds the key."""
    monkeypatch.setenv("NEUROTOKEN_RPC_URL", rpc_url)
    monkeypatch.setenv("NEUROTOKEN_MARKET", market.address)
    monkeypatch.setenv("NEUROTOKEN_PROVIDER_KEYSTORE", str(keystore))
    monkeypatch.setenv(PASSWORD_ENV, "correct horse")
    secret = farm_key.key.hex().removeprefix("0x")

    def invoke(*args: str) -> Result:
        result = CliRunner().invoke(
            main, ["agent", "--password-env", PASSWORD_ENV, *args], catch_exceptions=False
        )
        assert secret not in result.output
        return result

    return invoke
