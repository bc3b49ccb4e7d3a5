"""A demo stage for `make demo`: a real shelf-images job computed, proven, checked, pictured.

`compute_stage(economy)` computes a 16-shard synthetic-shelf job on all cores (progress bar on
stderr), publishes its bundle, serves it over HTTP, lets a verifier challenge 8 shards and
re-execute them, shows a cheating provider caught, and writes PNGs of the first images with
their labels drawn on. It needs no chain (the market stage commits the root on chain).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from demo.economy import Economy
from neurotoken.jobs import ShelfImagesSpec, keccak256, parse_spec, spec_hash
from neurotoken.proofs import Commitment, HttpSource, LocalStore, challenge_indices, verify_job
from neurotoken.proofs.bundle import from_hex
from neurotoken.provider.compute import compute_job, default_workers
from neurotoken.provider.previews import save_job_previews
from neurotoken.provider.publish import publish_bundle
from neurotoken.provider.server import BundleServer, make_app
from neurotoken.workloads.preview import DEMO_SPEC


def compute_stage(e: Economy, job_id: int = 1) -> list[Path]:
    """Runs the stage, printing with `e.echo`; returns the PNGs written under
    `e.out_dir / "shelves"`."""
    out_dir = e.out_dir / "shelves"
    r, echo = e.report.stage("compute"), e.echo
    spec = parse_spec(DEMO_SPEC)
    assert isinstance(spec, ShelfImagesSpec)
    echo("== Stage: compute a synthetic retail-shelf job and prove it")
    shards, images = spec.shard_count, spec.images_per_shard
    echo(f"spec hash 0x{spec_hash(spec).hex()}: {shards} shards of {images} images")
    with tempfile.TemporaryDirectory(prefix="ntk-provider-") as tmp:
        store = LocalStore(Path(tmp) / "bundles")
        report = compute_job(spec, store, Path(tmp) / "state", workers=default_workers())
        manifest = publish_bundle(store, job_id, spec, report.output_hashes)
        root = from_hex(manifest.root)
        echo(f"provider computed {len(report.computed)} shards; result root {manifest.root}")
        commitment = Commitment(job_id, spec_hash(spec), spec.shard_count, root)
        seed = keccak256(b"a block hash after the commitment")
        with BundleServer(make_app(store, public=True)) as server:  # no chain: no readers
            echo(f"bundle served at {server.url}")
            verdict = verify_job(spec, commitment, seed, 8, HttpSource(server.url))
            echo(f"oracle challenged shards {list(verdict.challenged)}: {verdict.summary()}")
            # A cheater: one pixel of shard 3 changed, bundle otherwise consistent; a seed that
            # challenges shard 3 is picked (1 - (1 - 1/16)^8 = 40% of seeds do).
            fake = bytearray(store.object(report.output_hashes[3], 1 << 30))
            fake[-1] ^= 1
            hashes = list(report.output_hashes)
            hashes[3] = store.put_object(bytes(fake))
            cheat = publish_bundle(store, job_id, spec, hashes)
            cheat_commitment = Commitment(
                job_id, spec_hash(spec), spec.shard_count, from_hex(cheat.root)
            )
            for n in range(64):
                cheat_seed = keccak256(b"demo seed" + bytes([n]))
                if 3 in challenge_indices(cheat_seed, job_id, spec.shard_count, 8):
                    break
            caught = verify_job(spec, cheat_commitment, cheat_seed, 8, HttpSource(server.url))
            echo(f"a provider faking one pixel of shard 3: {caught.summary()}")
        r.check("the honest bundle is accepted", 1, int(verdict.accepted))
        r.check("the bundle with one faked pixel is rejected", 0, int(caught.accepted))
        r.figures.update(shards=spec.shard_count, computed=len(report.computed))
        paths = save_job_previews(store, root, spec, out_dir, count=4)
    echo("labelled images: " + ", ".join(str(p) for p in paths))
    return paths
