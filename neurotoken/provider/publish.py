"""Publishing a finished job: the manifest and one inclusion proof per shard, in the store."""

from __future__ import annotations

from neurotoken.jobs.spec import ShelfImagesSpec, TrainingSpec, spec_hash
from neurotoken.proofs.bundle import (
    Manifest,
    make_manifest,
    make_proofs,
    manifest_bytes,
    proof_bytes,
)
from neurotoken.proofs.store import LocalStore


def publish_bundle(
    store: LocalStore,
    job_id: int,
    spec: ShelfImagesSpec | TrainingSpec,
    output_hashes: list[bytes],
) -> Manifest:
    """Writes the bundle of `job_id` and returns its manifest (`manifest.root` is committed)."""
    if len(output_hashes) != spec.shard_count:
        raise ValueError(f"{len(output_hashes)} outputs for {spec.shard_count} shards")
    missing = [i for i, h in enumerate(output_hashes) if not store.has_object(h)]
    if missing:
        raise ValueError(f"shard outputs missing from the store: {missing[:10]}")
    manifest, tree = make_manifest(job_id, spec_hash(spec), output_hashes)
    root = tree.root
    for proof in make_proofs(manifest, tree):
        store.put_proof(root, proof.index, proof_bytes(proof))
    store.put_manifest(root, manifest_bytes(manifest))  # last: a manifest means complete
    return manifest
