"""Shards of a shelf-images job: a block of images with labels, in one container.

Shard i of a job holds images i * images_per_shard ... (i + 1) * images_per_shard - 1; image
n of shard i is rendered from the seed keccak256(spec hash, "shelf-image", i, n), so a shard
depends on nothing but the spec and its index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neurotoken.jobs.spec import ShelfImagesSpec, spec_hash
from neurotoken.jobs.spec import max_shard_bytes as spec_max_shard_bytes
from neurotoken.workloads import container
from neurotoken.workloads.rng import derive_seed
from neurotoken.workloads.shelf import ShelfImage, render_image

FORMAT = "neurotoken-shelf-shard/1"


@dataclass(frozen=True)
class ShelfShard:
    spec_hash: bytes
    index: int
    images: list[ShelfImage]


def image_seed(spec: ShelfImagesSpec, shard_index: int, n: int) -> bytes:
    return derive_seed(spec_hash(spec), "shelf-image", shard_index, n)


def render_shard_images(spec: ShelfImagesSpec, shard_index: int) -> list[ShelfImage]:
    return [
        render_image(spec.scene, image_seed(spec, shard_index, n))
        for n in range(spec.images_per_shard)
    ]


def compute_shelf_shard(spec: ShelfImagesSpec, shard_index: int) -> bytes:
    """The canonical bytes of shard `shard_index` of `spec`."""
    if not 0 <= shard_index < spec.shard_count:
        raise IndexError(f"shard {shard_index} is outside 0..{spec.shard_count - 1}")
    images = render_shard_images(spec, shard_index)
    meta = {
        "format": FORMAT,
        "spec_hash": "0x" + spec_hash(spec).hex(),
        "shard_index": shard_index,
        "labels": [img.labels for img in images],
    }
    arrays = {
        "rgb": np.stack([img.rgb for img in images]),
        "instances": np.stack([img.instances for img in images]),
    }
    return container.encode(meta, arrays)


def max_shard_bytes(spec: ShelfImagesSpec) -> int:
    """An upper bound on the size of one shard's bytes (what a verifier should fetch)."""
    return spec_max_shard_bytes(spec)


def decode_shelf_shard(data: bytes) -> ShelfShard:
    """A shard's images and labels from its bytes (`ContainerError` if malformed)."""
    meta, arrays = container.decode(data)
    if meta.get("format") != FORMAT or set(arrays) != {"rgb", "instances"}:
        raise container.ContainerError("not a shelf-images shard")
    rgb, inst = arrays["rgb"], arrays["instances"]
    labels: Any = meta.get("labels")
    if (
        rgb.ndim != 4
        or rgb.shape[3] != 3
        or inst.shape != rgb.shape[:3]
        or not isinstance(labels, list)
        or len(labels) != rgb.shape[0]
        or rgb.dtype != np.uint8
        or inst.dtype != np.uint8
    ):
        raise container.ContainerError("shelf shard arrays and labels do not agree")
    digest = meta.get("spec_hash")
    index = meta.get("shard_index")
    if not isinstance(digest, str) or not isinstance(index, int):
        raise container.ContainerError("shelf shard lacks spec_hash or shard_index")
    try:
        raw = bytes.fromhex(digest.removeprefix("0x"))
    except ValueError:
        raise container.ContainerError("shelf shard spec_hash is not hex") from None
    images = [
        ShelfImage(rgb=rgb[n], instances=inst[n], labels=labels[n]) for n in range(len(labels))
    ]
    return ShelfShard(spec_hash=raw, index=index, images=images)
