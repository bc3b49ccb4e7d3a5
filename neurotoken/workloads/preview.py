"""Pictures of shelf images with their labels drawn on, as PNG (zlib + struct, no PIL).

`save_shelf_previews(out_dir)` renders (or decodes) a few images of a real shelf job and
writes, for each, the image beside a copy annotated with every visible product's bounding
box and mask outline in a colour per class. `make demo` calls it; so can anyone:

    python -m neurotoken.workloads.preview OUT_DIR [--count 4] [--shard 0]
"""

from __future__ import annotations

import argparse
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from neurotoken.jobs.spec import ShelfImagesSpec, parse_spec

U8 = npt.NDArray[np.uint8]

CLASS_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
    (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),
    (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (0, 0, 128),
)  # fmt: skip

DEMO_SPEC: dict[str, Any] = {
    "kind": "shelf-images",
    "version": 1,
    "seed": 2017,
    "scene": {
        "width": 320,
        "height": 240,
        "shelves": 3,
        "max_products_per_shelf": 12,
        "occlusion_pct": 35,
        "lighting_pct": 25,
        "noise_level": 6,
    },
    "images_per_shard": 4,
    "shard_count": 16,
}
"""The spec `make demo` shows when it is not given a job's own spec."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png_bytes(rgb: U8) -> bytes:
    """An 8-bit RGB PNG of an (height, width, 3) uint8 array."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("png_bytes wants an (height, width, 3) uint8 array")
    height, width = int(rgb.shape[0]), int(rgb.shape[1])
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # filter byte 0 (None) per row
    rows[:, 1:] = rgb.reshape(height, 3 * width)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
        + _chunk(b"IEND", b"")
    )


def write_png(path: Path, rgb: U8) -> Path:
    path.write_bytes(png_bytes(rgb))
    return path


def annotate(rgb: U8, instances: U8, labels: Sequence[dict[str, Any]]) -> U8:
    """A copy of `rgb` with each visible instance's mask outline and bounding box drawn."""
    out = rgb.copy()
    inst = instances.astype(np.int32)
    edge = np.zeros(inst.shape, dtype=np.bool_)
    edge[:-1] |= inst[:-1] != inst[1:]
    edge[1:] |= inst[1:] != inst[:-1]
    edge[:, :-1] |= inst[:, :-1] != inst[:, 1:]
    edge[:, 1:] |= inst[:, 1:] != inst[:, :-1]
    for label in labels:
        box = label.get("bbox")
        if box is None:
            continue
        colour = np.array(CLASS_COLOURS[int(label["class"]) % len(CLASS_COLOURS)], dtype=np.uint8)
        out[edge & (inst == int(label["instance"]))] = colour
        x0, y0, x1, y1 = (int(v) for v in box)
        out[y0, x0:x1] = colour
        out[y1 - 1, x0:x1] = colour
        out[y0:y1, x0] = colour
        out[y0:y1, x1 - 1] = colour
    return out


def side_by_side(rgb: U8, annotated: U8, zoom: int = 2) -> U8:
    """The image and its annotated copy next to each other, each enlarged `zoom` times."""
    gap = np.full((rgb.shape[0], 4, 3), 255, dtype=np.uint8)
    both = np.concatenate([rgb, gap, annotated], axis=1)
    return np.repeat(np.repeat(both, zoom, axis=0), zoom, axis=1)


def save_shelf_previews(
    out_dir: Path,
    spec: ShelfImagesSpec | None = None,
    shard_index: int = 0,
    count: int = 4,
    shard_output: bytes | None = None,
) -> list[Path]:
    """Writes `count` PNGs of shard `shard_index` of `spec` (the demo spec by default).

    With `shard_output` (the bytes a provider stored for that shard) the pictures show the
    provider's actual output; otherwise the shard is rendered here.
    """
    from neurotoken.workloads.shelf_job import compute_shelf_shard, decode_shelf_shard

    job = spec if spec is not None else parse_spec(DEMO_SPEC)
    if not isinstance(job, ShelfImagesSpec):
        raise TypeError("previews are of shelf-images jobs")
    data = shard_output if shard_output is not None else compute_shelf_shard(job, shard_index)
    shard = decode_shelf_shard(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(min(count, len(shard.images))):
        img = shard.images[n]
        picture = side_by_side(img.rgb, annotate(img.rgb, img.instances, img.labels))
        paths.append(write_png(out_dir / f"shelf-{shard_index:04d}-{n}.png", picture))
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--spec", type=Path, help="a shelf-images job spec (JSON)")
    args = parser.parse_args(argv)
    spec = parse_spec(args.spec.read_bytes()) if args.spec else None
    if spec is not None and not isinstance(spec, ShelfImagesSpec):
        parser.error("--spec must be a shelf-images job")
    for path in save_shelf_previews(args.out_dir, spec, args.shard, args.count):
        print(path)


if __name__ == "__main__":
    main()
