"""The parties of the dev chain's market: a client that posts jobs (`Client`), honest and
cheating providers that compute, publish, serve and submit real proof bundles (`Provider`),
and a small job spec for them (`small_spec`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from web3 import HTTPProvider, Web3

from devchain.contracts import Market, load_artifact, transact
from neurotoken.jobs.spec import ShelfImagesSpec, TrainingSpec, parse_spec, spec_hash, spec_json
from neurotoken.market.records import JobReader
from neurotoken.proofs.store import LocalStore
from neurotoken.provider import BundleServer, compute_job, make_app, publish_bundle
from neurotoken.provider.readers import JobReaders
from neurotoken.provider.server import BundleGate
from neurotoken.units import NTK

ZERO = "0x" + "00" * 20
AnySpec = ShelfImagesSpec | TrainingSpec


SCENE = {
    "width": 64,
    "height": 48,
    "shelves": 2,
    "max_products_per_shelf": 5,
    "occlusion_pct": 40,
    "lighting_pct": 20,
    "noise_level": 4,
}


def small_spec(seed: int = 11, shards: int = 16, images: int = 1, **scene: int) -> AnySpec:
    """A shelf-images spec that computes in well under a second."""
    return parse_spec(
        {
            "kind": "shelf-images",
            "version": 1,
            "seed": seed,
            "scene": {**SCENE, **scene},
            "images_per_shard": images,
            "shard_count": shards,
        }
    )


@dataclass
class Client:
    """Posts jobs, publishing each spec as a file the oracles read."""

    m: Market
    folder: Path

    def post(
        self,
        spec: AnySpec,
        k: int = 4,
        payment: int = 100 * NTK,
        collateral: int = 400 * NTK,
        provider: str = ZERO,
        verdict_window_s: int = 3 * 3600,
        spec_uri: str | None = None,
    ) -> int:
        data = spec_json(spec)
        digest = spec_hash(spec)
        if spec_uri is None:
            path = self.folder / f"0x{digest.hex()}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            spec_uri = path.as_uri()
        now = int(self.m.w3.eth.get_block("latest")["timestamp"])
        request = (
            digest, spec_uri, payment, provider, collateral, spec.shard_count, k,
            now + 3600, now + 7200, now + 7200 + verdict_window_s,
        )  # fmt: skip
        fn = self.m.market.functions.postJob(request)
        job_id = int(fn.call({"from": self.m.client}))
        transact(self.m.w3, fn, self.m.client)
        return job_id


@dataclass
class Provider:
    """A provider that computes jobs and serves bundles over HTTP; a cheating one forges
    a share of its shard outputs yet publishes a self-consistent bundle.

    Like the provider agent, it serves each bundle only to the client and the oracles of the
    job it built the bundle for (readers sign access tokens: `neurotoken.proofs.access`);
    `public=True` serves anyone (for an oracle without a key, which cannot sign one)."""

    m: Market
    address: str
    folder: Path
    cheat_fraction: float = 0.0
    server: BundleServer | None = None
    public: bool = False
    store: LocalStore = field(init=False)
    roots: dict[bytes, list[int]] = field(init=False, default_factory=dict)
    """Result root -> the jobs it was built or submitted for."""

    def __post_init__(self) -> None:
        self.store = LocalStore(self.folder / "store")

    def gate(self) -> BundleGate:
        """The clients and oracles of the jobs of each root, read from the chain over a
        connection of the server's own."""
        endpoint = self.m.w3.provider.endpoint_uri  # type: ignore[attr-defined]
        w3 = Web3(HTTPProvider(endpoint, request_kwargs={"timeout": 30}))
        market = w3.eth.contract(address=self.m.market.address, abi=self.m.market.abi)
        records = JobReader(w3, self.m.market.address, load_artifact("ComputeMarket")[0])
        readers = JobReaders(
            lambda root: list(self.roots.get(root, ())),
            records.get,
            lambda epoch, who: bool(market.functions.isEpochOracle(epoch, who).call()),
        )
        return BundleGate(int(w3.eth.chain_id), self.m.market.address, readers)

    def start(self) -> Provider:
        if self.public:
            app = make_app(self.store, public=True)
        else:
            app = make_app(self.store, self.gate())
        self.server = BundleServer(app).start()
        return self

    def restart(self, public: bool) -> Provider:
        """Serves again (on a new port), to anyone or to each job's readers only."""
        self.stop()
        self.public = public
        return self.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def accept(self, job_id: int) -> None:
        """Accepts the job, first adding stake from its NTK when its free stake is below the
        job's collateral (a cheat slashed job after job in a long campaign runs dry)."""
        job = self.m.job(job_id)
        free = int(self.m.market.functions.getProvider(self.address).call()[0])
        if free < job.collateral_ntk:
            topup = self.m.market.functions.addStake(10 * job.collateral_ntk)
            transact(self.m.w3, topup, self.address)
        fn = self.m.market.functions.acceptJob(job_id, job.record())
        transact(self.m.w3, fn, self.address)

    def build(self, job_id: int, spec: AnySpec) -> bytes:
        """Computes (or forges) and publishes the bundle; returns the root to commit."""
        report = compute_job(spec, self.store, self.folder / "state", workers=1, progress=False)
        hashes = list(report.output_hashes)
        forged = round(self.cheat_fraction * spec.shard_count)
        for index in range(forged):
            hashes[index] = self.store.put_object(f"forged shard {index} of {job_id}".encode())
        manifest = publish_bundle(self.store, job_id, spec, hashes)
        root = bytes.fromhex(manifest.root[2:])
        self._record(root, job_id)
        return root

    def _record(self, root: bytes, job_id: int) -> None:
        jobs = self.roots.setdefault(root, [])
        if job_id not in jobs:
            jobs.append(job_id)

    def submit(self, job_id: int, root: bytes, shards: int, bundle_uri: str | None = None) -> int:
        self._record(root, job_id)
        fn = self.m.market.functions.submitResult(
            job_id, self.m.record(job_id), root, shards, bundle_uri or self.url
        )
        receipt = transact(self.m.w3, fn, self.address)
        return int(receipt["blockNumber"])

    def fulfil(self, job_id: int, spec: AnySpec, bundle_uri: str | None = None) -> int:
        """Accept, compute, publish, submit; returns the submission block."""
        self.accept(job_id)
        root = self.build(job_id, spec)
        return self.submit(job_id, root, spec.shard_count, bundle_uri)
