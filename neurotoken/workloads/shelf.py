"""Workload 1: synthetic retail-shelf images with pixel-perfect labels.

Each image is a shelving unit (wall, back panel, boards with price tags) stocked with
catalogue products (bottles, cans, boxes, jars, cartons) at random positions and scales,
some partly hidden by a front-row product or a neighbour, under random lighting with
sensor noise. Labels are exact because they come from the rasterizer itself: every pixel
of the instance map names the product drawn last at that pixel.

Determinism: only integer numpy arithmetic (add, multiply, shifts, floor division,
comparisons) on int32/int64 arrays, and randomness from `Rng` (SHAKE-256). There is no
floating point, no font and no image library, so a spec renders to the same bytes on any
machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from neurotoken.jobs.spec import MAX_PRODUCTS_PER_IMAGE, SceneSpec
from neurotoken.workloads.catalogue import CATALOGUE, GLYPHS, RGB, Product
from neurotoken.workloads.rng import Rng

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]

MAX_INSTANCES = MAX_PRODUCTS_PER_IMAGE
"""Instance ids are uint8 (0 is background)."""

WALLS: tuple[RGB, ...] = ((214, 208, 196), (200, 210, 215), (226, 220, 204), (188, 194, 200))
PANELS: tuple[RGB, ...] = ((120, 124, 130), (150, 140, 125), (95, 100, 110), (170, 172, 176))
BOARDS: tuple[RGB, ...] = ((200, 200, 205), (150, 110, 70), (90, 95, 100), (220, 215, 200))


@dataclass(frozen=True)
class ShelfImage:
    """One rendered image: RGB pixels, the instance map and one label per instance."""

    rgb: U8
    """(height, width, 3) uint8."""
    instances: U8
    """(height, width) uint8: 0 is background, i is the i-th product drawn (depth order)."""
    labels: list[dict[str, Any]]
    """Per instance: instance, class, name, depth, bbox, amodal_bbox, visible/area pixels."""


@dataclass
class _Placed:
    sku: int
    x: int
    y: int
    h: int
    w: int


def _rgb(colour: RGB) -> I64:
    return np.array(colour, dtype=np.int64)


def _fill(h: int, w: int, colour: RGB) -> I64:
    out = np.empty((h, w, 3), dtype=np.int64)
    out[:] = _rgb(colour)
    return out


def _scale(colour: I64, factor: I64 | int) -> I64:
    """colour * factor / 256, clipped to 0..255 (factor is in 1/256 units)."""
    return np.clip((colour * factor) >> 8, 0, 255)


def _glyph_mask(text: str, s: int) -> Bool:
    """`text` in the 3x5 alphabet scaled by `s`, one blank column between letters."""
    rows = ["0".join(GLYPHS[ch][r] for ch in text) for r in range(5)]
    bits = np.array([[c == "1" for c in row] for row in rows], dtype=np.bool_)
    return np.repeat(np.repeat(bits, s, axis=0), s, axis=1)


def _draw_label(colour: I64, y0: int, y1: int, x0: int, x1: int, p: Product) -> None:
    """Paints the label rectangle [y0, y1) x [x0, x1) of `colour` with the brand mark."""
    lh, lw = y1 - y0, x1 - x0
    if lh < 2 or lw < 2:
        return
    region = colour[y0:y1, x0:x1]
    region[:] = _rgb(p.label)
    ink = _rgb(p.mark_colour)
    yy = np.arange(lh, dtype=np.int64)[:, None]
    xx = np.arange(lw, dtype=np.int64)[None, :]
    mh = lh
    letters = lh >= 16 and lw >= 9
    if letters:
        mh = lh * 3 // 5
    # Doubled coordinates centred on the mark area (exact for even and odd sizes).
    dx = 2 * xx - (lw - 1)
    dy = 2 * yy - (mh - 1)
    big = max(2, min(lw, mh) * 4 // 5)
    in_mark = yy < mh
    shape: Bool
    if p.mark == "circle":
        shape = dx * dx + dy * dy <= big * big
    elif p.mark == "ring":
        rr = dx * dx + dy * dy
        shape = (rr <= big * big) & (100 * rr >= 36 * big * big)
    elif p.mark == "diamond":
        shape = np.abs(dx) + np.abs(dy) <= big
    elif p.mark == "cross":
        arm = max(1, big // 3)
        shape = (
            ((np.abs(dx) <= arm) | (np.abs(dy) <= arm)) & (np.abs(dx) <= big) & (np.abs(dy) <= big)
        )
    elif p.mark == "chevron":
        thick = max(2, big // 2)
        shape = (np.abs(dy - np.abs(dx) + big // 2) <= thick) & (np.abs(dx) <= big)
    elif p.mark == "stripes":
        shape = (yy * 6 // max(1, mh)) % 2 == 1
    elif p.mark == "dots":
        period = max(3, min(lw, mh) // 3)
        shape = (xx % period < (period + 1) // 2) & (yy % period < (period + 1) // 2)
    else:  # wave
        period = max(4, lw // 2)
        tri = np.abs(2 * (xx % period) - period)  # 0..period
        amp = max(1, mh // 4)
        centre = (mh - 1) // 2 + (tri * 2 * amp) // period - amp
        shape = np.abs(yy - centre) <= max(1, mh // 8)
    region[np.broadcast_to(shape & in_mark, (lh, lw))] = ink
    if letters:
        s = max(1, min((lh - mh - 1) // 5, (lw - 2) // 7))
        glyphs = _glyph_mask(p.brand, s)
        gh, gw = glyphs.shape
        gy = mh + (lh - mh - gh) // 2
        gx = (lw - gw) // 2
        if gh <= lh - mh and gw <= lw:
            region[gy : gy + gh, gx : gx + gw][glyphs] = ink


def _cylinder(colour: I64, w: int, strength: int, shine: int) -> I64:
    """Shades a cylinder lit from the front-left: darker towards both edges, one highlight."""
    xx = np.arange(w, dtype=np.int64)
    d = 2 * xx - (w - 1)
    factor = 256 - (strength * d * d) // (w * w)
    centre = w * 3 // 10
    factor = factor + np.where(np.abs(xx - centre) <= max(0, w // 14), shine, 0)
    return _scale(colour, factor[None, :, None])


def _bottle(p: Product, h: int, w: int) -> tuple[Bool, I64]:
    xx = np.arange(w, dtype=np.int64)[None, :]
    cap, neck, shoulder = max(1, h * 7 // 100), h * 22 // 100, h * 36 // 100
    narrow = max(2, w * 36 // 100)
    widths = np.full((h, 1), w, dtype=np.int64)
    widths[:neck] = narrow
    span = max(1, shoulder - neck)
    rows = np.arange(neck, shoulder, dtype=np.int64)[:, None]
    widths[neck:shoulder] = narrow + ((w - narrow) * (rows - neck)) // span
    widths[max(0, h - 2) :] -= 2
    mask = np.abs(2 * xx - (w - 1)) <= widths - 1
    colour = _fill(h, w, p.body)
    colour[:cap] = _rgb(p.accent)
    _draw_label(colour, h * 45 // 100, h * 80 // 100, 0, w, p)
    return mask, _cylinder(colour, w, 110, 50)


def _can(p: Product, h: int, w: int) -> tuple[Bool, I64]:
    mask = np.ones((h, w), dtype=np.bool_)
    if w > 6 and h > 4:
        mask[[0, h - 1], 0] = False
        mask[[0, h - 1], w - 1] = False
    colour = _fill(h, w, p.body)
    rim = max(1, h // 12)
    colour[:rim] = _rgb(p.accent)
    colour[h - rim :] = _rgb(p.accent)
    _draw_label(colour, h * 25 // 100, h * 78 // 100, w // 8, w - w // 8, p)
    return mask, _cylinder(colour, w, 140, 70)


def _box(p: Product, h: int, w: int) -> tuple[Bool, I64]:
    mask = np.ones((h, w), dtype=np.bool_)
    colour = _fill(h, w, p.body)
    _draw_label(colour, h * 22 // 100, h * 78 // 100, w * 12 // 100, w * 80 // 100, p)
    top = max(1, h // 14)
    side = max(1, w // 10)
    colour[:top] = _scale(colour[:top], 310)
    colour[:, w - side :] = _scale(colour[:, w - side :], 175)
    yy = np.arange(h, dtype=np.int64)[:, None, None]
    return mask, _scale(colour, 236 + (20 * yy) // h)


def _jar(p: Product, h: int, w: int) -> tuple[Bool, I64]:
    yy = np.arange(h, dtype=np.int64)[:, None]
    xx = np.arange(w, dtype=np.int64)[None, :]
    lid = max(1, h * 18 // 100)
    mask = np.ones((h, w), dtype=np.bool_)
    inset = max(0, w * 5 // 100)
    mask[:lid, :inset] = False
    mask[:lid, w - inset :] = False
    r = max(1, w // 5)
    cx = np.minimum(xx, w - 1 - xx)  # distance from the nearer side
    cy = yy - (h - 1 - r)
    corner = (cx < r) & (cy > 0) & ((r - cx) * (r - cx) + cy * cy > r * r)
    mask &= ~corner
    colour = _fill(h, w, p.body)
    colour[:lid] = _rgb(p.accent)
    _draw_label(colour, h * 40 // 100, h * 82 // 100, 0, w, p)
    return mask, _cylinder(colour, w, 100, 40)


def _carton(p: Product, h: int, w: int) -> tuple[Bool, I64]:
    yy = np.arange(h, dtype=np.int64)[:, None]
    xx = np.arange(w, dtype=np.int64)[None, :]
    gable = max(2, h * 20 // 100)
    fin = max(1, gable // 4)
    roof = np.abs(2 * xx - (w - 1)) <= ((w - 1) * (yy - fin)) // max(1, gable - fin)
    mask = np.where(yy < gable, roof, True)
    mask[:fin, (w - 1) // 2 - max(0, w // 8) : w // 2 + max(1, w // 8)] = True
    colour = _fill(h, w, p.body)
    colour[:gable] = _rgb(p.accent)
    _draw_label(colour, h * 40 // 100, h * 86 // 100, w // 10, w - w // 10, p)
    side = max(1, w // 8)
    colour[gable:, w - side :] = _scale(colour[gable:, w - side :], 185)
    return mask, colour


_SHAPES = {"bottle": _bottle, "can": _can, "box": _box, "jar": _jar, "carton": _carton}


def _bbox(sub: Bool, oy: int, ox: int) -> list[int] | None:
    rows = np.flatnonzero(sub.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(sub.any(axis=0))
    return [ox + int(cols[0]), oy + int(rows[0]), ox + int(cols[-1]) + 1, oy + int(rows[-1]) + 1]


def render_image(scene: SceneSpec, seed: bytes) -> ShelfImage:
    """Renders one shelf image and its labels from `scene` and a 32-byte `seed`."""
    rng = Rng(seed)
    H, W = scene.height, scene.width
    yy = np.arange(H, dtype=np.int64)[:, None]
    xx = np.arange(W, dtype=np.int64)[None, :]

    # Wall, then a shelving unit with one slot per shelf.
    canvas = np.empty((H, W, 3), dtype=np.int64)
    canvas[:] = _scale(_rgb(rng.choice(WALLS))[None, None, :], (210 + (46 * yy) // H)[..., None])
    top = max(2, H // 20)
    board = max(2, H // 28)
    slot = (H - top) // scene.shelves
    panel = _rgb(rng.choice(PANELS))
    wood = _rgb(rng.choice(BOARDS))
    margin = rng.between(0, W // 16)
    canvas[top:, margin : W - margin] = panel
    boards: list[int] = []
    for k in range(scene.shelves):
        slot_top = top + k * slot
        board_y = slot_top + slot - board
        boards.append(board_y)
        depth = np.arange(slot - board, dtype=np.int64)[:, None, None]
        shade = 150 + (106 * np.minimum(depth, 8)) // 8  # shadow under the board above
        canvas[slot_top:board_y, margin : W - margin] = _scale(panel[None, None, :], shade)
        canvas[board_y : board_y + board] = wood
        canvas[board_y] = _scale(wood, 300)
        canvas[board_y + board - 1] = _scale(wood, 180)
        tags = rng.between(1, max(1, W // 48))
        for _ in range(tags):
            tx = rng.between(0, max(0, W - 8))
            tw = max(3, W // 30)
            ty0, ty1 = board_y + max(1, board // 4), board_y + board - 1
            if ty1 > ty0:
                canvas[ty0:ty1, tx : tx + tw] = (250, 250, 245)
                canvas[ty0 + (ty1 - ty0) // 2, tx + 1 : tx + tw - 1] = (40, 40, 40)

    # Products, back row then front row per shelf (later drawn = nearer the camera).
    order: list[_Placed] = []
    for board_y in boards:
        free = slot - board - 1
        back: list[_Placed] = []
        front: list[_Placed] = []
        x = rng.between(-free // 4, free // 6)
        while x < W and len(back) < scene.max_products_per_shelf:
            sku = rng.below(len(CATALOGUE))
            p = CATALOGUE[sku]
            scale = rng.between(85, 115)
            h = min(max(6, free * p.height_pct * scale // 10_000), free - 1)
            w = max(4, free * p.width_pct * scale // 10_000)
            back.append(_Placed(sku, x, board_y - h, h, w))
            if rng.chance(scene.occlusion_pct):
                fsku = rng.below(len(CATALOGUE))
                fp = CATALOGUE[fsku]
                fscale = rng.between(80, 105)
                fh = min(max(6, free * fp.height_pct * fscale // 10_000), free - 1)
                fw = max(4, free * fp.width_pct * fscale // 10_000)
                fx = x + (w * rng.between(25, 85)) // 100
                fy = board_y + max(1, board // 2) - fh
                front.append(_Placed(fsku, fx, fy, fh, fw))
            x += w + rng.between(-(w // 6), max(1, w // 3))
        order += back + front
    order = order[:MAX_INSTANCES]

    instances = np.zeros((H, W), dtype=np.uint8)
    areas: list[int] = []
    amodal: list[list[int] | None] = []
    for ident, item in enumerate(order, start=1):
        mask, colour = _SHAPES[CATALOGUE[item.sku].shape](CATALOGUE[item.sku], item.h, item.w)
        y0, x0 = max(0, item.y), max(0, item.x)
        y1, x1 = min(H, item.y + item.h), min(W, item.x + item.w)
        if y1 <= y0 or x1 <= x0:
            areas.append(0)
            amodal.append(None)
            continue
        local = mask[y0 - item.y : y1 - item.y, x0 - item.x : x1 - item.x]
        # Drop shadow to the right, on whatever is already there.
        s = max(1, item.w // 8)
        sx0, sx1 = min(W, x0 + s), min(W, x1 + s)
        if sx1 > sx0:
            shadow = local[:, : sx1 - sx0]
            target = canvas[y0:y1, sx0:sx1]
            target[shadow] = _scale(target[shadow], 175)
        canvas[y0:y1, x0:x1][local] = colour[y0 - item.y : y1 - item.y, x0 - item.x : x1 - item.x][
            local
        ]
        instances[y0:y1, x0:x1][local] = ident
        areas.append(int(local.sum()))
        amodal.append(_bbox(local, y0, x0))

    # Lighting: global gain plus a directional gradient, then sensor noise.
    spread = scene.lighting_pct * 256 // 100
    gain0 = 256 + rng.between(-spread, spread // 2)
    gx = rng.between(-spread, spread)
    gy = rng.between(-spread // 2, spread // 2)
    gain = np.maximum(32, gain0 + (gx * (2 * xx - W)) // (2 * W) + (gy * (2 * yy - H)) // (2 * H))
    canvas = (canvas * gain[..., None]) >> 8
    if scene.noise_level:
        canvas += rng.array_between(-scene.noise_level, scene.noise_level, (H, W, 3))
    rgb = np.clip(canvas, 0, 255).astype(np.uint8)

    visible = np.bincount(instances.ravel(), minlength=len(order) + 1)
    labels: list[dict[str, Any]] = []
    for ident, item in enumerate(order, start=1):
        box = amodal[ident - 1]
        bbox = None
        if box is not None and visible[ident]:
            bx0, by0, bx1, by1 = box
            bbox = _bbox(instances[by0:by1, bx0:bx1] == ident, by0, bx0)
        labels.append(
            {
                "instance": ident,
                "class": item.sku,
                "name": CATALOGUE[item.sku].name,
                "depth": ident - 1,
                "bbox": bbox,
                "amodal_bbox": box,
                "visible_pixels": int(visible[ident]),
                "area_pixels": areas[ident - 1],
            }
        )
    return ShelfImage(rgb=rgb, instances=instances, labels=labels)
