"""Publishing a finished job: the spec's bytes, one inclusion proof per shard and the
manifest, in the store (the manifest last: a bundle with a manifest is complete)."""

from __future__ import annotations

from neurotoken.jobs.spec import ShelfImagesSpec, TrainingSpec, spec_hash, spec_json
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
    """Writes the bundle of `job_id` and returns its manifest (`manifest.root` is committed).

    The bundle carries the spec's canonical bytes (their keccak256 is the spec hash), so
    oracles can judge the job even if the client stops serving its spec."""
    if len(output_hashes) != spec.shard_count:
        raise ValueError(f"{len(output_hashes)} outputs for {spec.shard_count} shards")
    missing = [i for i, h in enumerate(output_hashes) if not store.has_object(h)]
    if missing:
        raise ValueError(f"shard outputs missing from the store: {missing[:10]}")
    manifest, tree = make_manifest(job_id, spec_hash(spec), output_hashes)
    root = tree.root
    store.put_spec(root, spec_json(spec))
    for proof in make_proofs(manifest, tree):
        store.put_proof(root, proof.index, proof_bytes(proof))
    store.put_manifest(root, manifest_bytes(manifest))  # last: a manifest means complete
    return manifest
