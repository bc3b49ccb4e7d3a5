"""PNG previews of shelf images with their labels drawn on."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from neurotoken.jobs import ShelfImagesSpec
from neurotoken.workloads import compute_shard
from neurotoken.workloads.preview import annotate, png_bytes, save_shelf_previews
from neurotoken.workloads.shelf_job import decode_shelf_shard


def read_png(data: bytes) -> npt.NDArray[np.uint8]:
    """A minimal PNG reader for 8-bit RGB, filter 0 (what png_bytes writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    chunks: dict[bytes, bytes] = {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2)
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(
        height, 1 + 3 * width
    )
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, 3)


def test_png_bytes__round_trip_exactly() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    assert np.array_equal(read_png(png_bytes(rgb)), rgb)


def test_annotate__draws_boxes_only_where_products_are(shelf_spec: ShelfImagesSpec) -> None:
    image = decode_shelf_shard(compute_shard(shelf_spec, 0, {})).images[0]
    drawn = annotate(image.rgb, image.instances, image.labels)
    changed = (drawn != image.rgb).any(axis=2)
    assert changed.any()
    boxes = np.zeros_like(changed)
    for label in image.labels:
        if label["bbox"]:
            x0, y0, x1, y1 = label["bbox"]
            boxes[y0:y1, x0:x1] = True
    assert not (changed & ~boxes).any()


def test_save_shelf_previews__writes_readable_pngs(
    tmp_path: Path, shelf_spec: ShelfImagesSpec
) -> None:
    paths = save_shelf_previews(tmp_path, shelf_spec, shard_index=2, count=3)
    assert len(paths) == 1  # the spec has one image per shard
    picture = read_png(paths[0].read_bytes())
    assert picture.shape == (2 * 48, 2 * (2 * 64 + 4), 3)
