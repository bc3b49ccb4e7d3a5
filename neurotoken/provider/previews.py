"""Pictures of a published shelf job: its first images with their labels drawn on."""

from __future__ import annotations

from pathlib import Path

from neurotoken.jobs.spec import ShelfImagesSpec
from neurotoken.proofs.bundle import MAX_MANIFEST_BYTES, from_hex, parse_manifest
from neurotoken.proofs.store import LocalStore, fetch_object
from neurotoken.workloads import max_shard_bytes
from neurotoken.workloads.preview import save_shelf_previews


def save_job_previews(
    store: LocalStore,
    root: bytes,
    spec: ShelfImagesSpec,
    out_dir: Path,
    count: int = 4,
    shard_index: int = 0,
) -> list[Path]:
    """PNGs of shard `shard_index` exactly as the provider stored it under result `root`."""
    manifest = parse_manifest(store.manifest(root, MAX_MANIFEST_BYTES))
    digest = from_hex(manifest.leaves[shard_index])
    output = fetch_object(store, digest, max_shard_bytes(spec))
    images_needed = -(-count // spec.images_per_shard)  # ceil: shards to cover `count` images
    paths: list[Path] = []
    for index in range(shard_index, min(spec.shard_count, shard_index + images_needed)):
        if index != shard_index:
            output = fetch_object(store, from_hex(manifest.leaves[index]), max_shard_bytes(spec))
        paths += save_shelf_previews(out_dir, spec, index, count - len(paths), shard_output=output)
    return paths
