"""Workload 2: a product classifier trained on crops of synthetic shelf images, in segments.

Shard i is the model's parameters after segment i: `steps_per_segment` SGD steps starting
from the parameters of shard i-1 (or from a seeded initialisation for shard 0), on crops of
`images_per_segment` fresh shelf images rendered for that segment. Anyone holding shard i-1
can therefore re-execute shard i; a verifier never has to replay the whole run.

The model is a one-hidden-layer perceptron (crop pixels -> ReLU -> 16 product classes) with
softmax cross-entropy, trained by mini-batch SGD.

Two kinds of arithmetic:

* ``fixed-point`` (exact). Every number is an int64 in Q16.16; matrix products are integer
  sums (numpy never sends integers to BLAS), shifts are floors, the softmax uses a 2**x table
  built with `decimal` at import. Parameters are clipped to +-2**20 (+-16.0), activations to
  [0, 2**24], and the spec bounds dimensions, so no intermediate exceeds 2**52 (well below
  int64 overflow; the bounds are derived in `_fixed_step`). Same spec, same bytes, anywhere.
* ``float32`` (fast, GPU-capable; local and preview use). Plain float32 training, which may
  run with torch on a CUDA GPU (`neurotoken.workloads.training_torch`). Summation order
  differs between BLAS builds, thread counts and GPUs, so a segment can only be checked
  within `FLOAT32_TOLERANCE` of a re-execution. That check cannot secure a payment: a
  provider can move every parameter to just under the tolerance in every segment and steer
  the model anywhere over many segments, each segment passing. The market therefore pays for
  fixed-point training only (`neurotoken.jobs.market_problems`).
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from neurotoken.jobs.spec import NUM_CLASSES, TrainingSpec, spec_hash
from neurotoken.workloads import container
from neurotoken.workloads.rng import Rng, derive_seed
from neurotoken.workloads.shelf import render_image

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
Params = dict[str, npt.NDArray[Any]]

FORMAT = "neurotoken-training-shard/1"
FRAC_BITS = 16
ONE = 1 << FRAC_BITS
PARAM_LIMIT = 1 << 20
"""Fixed-point parameters stay within +-PARAM_LIMIT (+-16.0)."""
HIDDEN_LIMIT = 1 << 24
"""Fixed-point hidden activations are clipped to [0, HIDDEN_LIMIT] (256.0)."""
PARAM_NAMES = ("W1", "b1", "W2", "b2")


@dataclass(frozen=True)
class Tolerance:
    """|claimed - reference| <= atol + rtol * |reference|, entry by entry, all finite."""

    rtol: float
    atol: float


FLOAT32_TOLERANCE = Tolerance(rtol=1e-4, atol=2e-5)
"""The stated tolerance for float32 segments (see docs/proofs.md for how it was chosen, and why
it is not enough to pay for float32 training)."""


def _exp2_table(step: int) -> I64:
    """round(2 ** (j / step) * 2**16) for j = 0..255, computed with decimal (exact, portable)."""
    ctx = decimal.Context(prec=50)
    ln2 = ctx.ln(decimal.Decimal(2))
    values = [
        int(ctx.multiply(ctx.exp(ctx.multiply(ln2, ctx.divide(j, step))), ONE)
            .to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
        for j in range(256)
    ]  # fmt: skip
    return np.array(values, dtype=np.int64)


EXP2_HI = _exp2_table(256)
EXP2_LO = _exp2_table(65536)
LOG2E_Q16 = int(
    decimal.Context(prec=50)
    .divide(ONE, decimal.Context(prec=50).ln(decimal.Decimal(2)))
    .to_integral_value(rounding=decimal.ROUND_HALF_EVEN)
)


@dataclass(frozen=True)
class SegmentData:
    """The training data of one segment: crops, their classes and the batch schedule."""

    features: npt.NDArray[np.uint8]
    """(crops, crop_size * crop_size * 3) uint8 pixels."""
    classes: I64
    """(crops,) catalogue class of each crop."""
    batches: I64
    """(steps, batch_size) crop indices drawn for each step (empty when there are no crops)."""


@dataclass(frozen=True)
class TrainingShard:
    spec_hash: bytes
    index: int
    arithmetic: str
    params: Params
    metrics: dict[str, int]


def input_size(spec: TrainingSpec) -> int:
    return spec.crop_size * spec.crop_size * 3


def param_shapes(spec: TrainingSpec) -> dict[str, tuple[int, ...]]:
    d, h = input_size(spec), spec.hidden_units
    return {"W1": (d, h), "b1": (h,), "W2": (h, NUM_CLASSES), "b2": (NUM_CLASSES,)}


def segment_data(spec: TrainingSpec, index: int) -> SegmentData:
    """Renders segment `index`'s images and cuts out every mostly visible product."""
    digest = spec_hash(spec)
    c = spec.crop_size
    centres = 2 * np.arange(c, dtype=np.int64) + 1
    features: list[npt.NDArray[np.uint8]] = []
    classes: list[int] = []
    for n in range(spec.images_per_segment):
        image = render_image(spec.scene, derive_seed(digest, "train-image", index, n))
        for label in image.labels:
            box = label["bbox"]
            if box is None or 2 * label["visible_pixels"] < label["area_pixels"]:
                continue
            x0, y0, x1, y1 = box
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            ys = y0 + (centres * (y1 - y0)) // (2 * c)
            xs = x0 + (centres * (x1 - x0)) // (2 * c)
            features.append(image.rgb[ys[:, None], xs[None, :]].reshape(-1))
            classes.append(int(label["class"]))
    if not features:
        empty = np.zeros((0, c * c * 3), dtype=np.uint8)
        return SegmentData(empty, np.zeros(0, np.int64), np.zeros((0, spec.batch_size), np.int64))
    rng = Rng(derive_seed(digest, "train-batches", index))
    batches = rng.array_below(len(classes), (spec.steps_per_segment, spec.batch_size))
    return SegmentData(np.stack(features), np.array(classes, dtype=np.int64), batches)


def initial_params(spec: TrainingSpec) -> Params:
    """Seeded Glorot-uniform weights and zero biases, as Q16 integers (exact in float32 too)."""
    rng = Rng(derive_seed(spec_hash(spec), "train-init"))
    out: Params = {}
    for name, shape in param_shapes(spec).items():
        if name.startswith("b"):
            out[name] = np.zeros(shape, dtype=np.int64)
            continue
        limit = math.isqrt(6 * ONE * ONE // (shape[0] + shape[1]))
        out[name] = rng.array_between(-limit, limit, shape)
    if spec.arithmetic == "float32":
        return {
            k: (v.astype(np.float32) / np.float32(ONE)).astype(np.float32) for k, v in out.items()
        }
    return out


def learning_rate_q16(spec: TrainingSpec) -> int:
    return max(1, spec.learning_rate_ppm * ONE // 1_000_000)


# --- fixed point -------------------------------------------------------------------------


def fixed_features(pixels: npt.NDArray[np.uint8]) -> I64:
    """Pixels 0..255 as Q16 values in [-1, 1)."""
    return (pixels.astype(np.int64) - 128) << (FRAC_BITS - 7)


def softmax_fixed(logits: I64) -> I64:
    """Row-wise softmax of Q16 logits, in Q16 (each row sums to about 2**16)."""
    d = logits - logits.max(axis=1, keepdims=True)  # <= 0, >= -2**38
    t = (d * LOG2E_Q16) >> FRAC_BITS  # d * log2(e), Q16, <= 0
    whole = t >> FRAC_BITS  # floor
    frac = t - (whole << FRAC_BITS)  # 0 .. 2**16 - 1
    mant = (EXP2_HI[frac >> 8] * EXP2_LO[frac & 255]) >> FRAC_BITS  # 2**frac in Q16
    e = mant >> np.minimum(-whole, 62)
    out: I64 = (e << FRAC_BITS) // e.sum(axis=1, keepdims=True)
    return out


def _fixed_forward(p: Params, x: I64) -> tuple[I64, I64, I64]:
    z1 = ((x @ p["W1"]) >> FRAC_BITS) + p["b1"]  # |x*W1| <= 2**36, D <= 3072: sums < 2**48
    h = np.clip(z1, 0, HIDDEN_LIMIT)
    z2 = ((h @ p["W2"]) >> FRAC_BITS) + p["b2"]  # 2**24 * 2**20 * 256 units = 2**52
    return z1, h, z2


def _fixed_step(p: Params, x: I64, y: I64, lr_q: int) -> tuple[Params, int]:
    """One SGD step in Q16; returns the new parameters and the batch's correct count.

    Bounds (|.| of int64 intermediates): dz2 <= 2**16; dh <= 2**16 * 2**20 * 16 >> 16 = 2**24;
    gW2 <= 2**24 * 2**16 * 256 >> 16 = 2**32; gW1 <= 2**16 * 2**24 * 256 >> 16 = 2**32;
    g * lr_q <= 2**32 * 2**16 = 2**48.
    """
    batch = len(y)
    z1, h, z2 = _fixed_forward(p, x)
    correct = int((z2.argmax(axis=1) == y).sum())
    dz2 = softmax_fixed(z2)
    dz2[np.arange(batch), y] -= ONE
    g_w2 = (h.T @ dz2) >> FRAC_BITS
    g_b2 = dz2.sum(axis=0)
    dh = (dz2 @ p["W2"].T) >> FRAC_BITS
    dz1 = np.where((z1 > 0) & (z1 < HIDDEN_LIMIT), dh, 0)
    g_w1 = (x.T @ dz1) >> FRAC_BITS
    g_b1 = dz1.sum(axis=0)
    denom = batch << FRAC_BITS
    new: Params = {}
    for name, grad in (("W1", g_w1), ("b1", g_b1), ("W2", g_w2), ("b2", g_b2)):
        new[name] = np.clip(p[name] - (grad * lr_q) // denom, -PARAM_LIMIT, PARAM_LIMIT)
    return new, correct


# --- float32 -----------------------------------------------------------------------------


def float_features(pixels: npt.NDArray[np.uint8]) -> F32:
    return ((pixels.astype(np.float32) - np.float32(128)) / np.float32(128)).astype(np.float32)


def _float_forward(p: Params, x: F32) -> tuple[F32, F32, F32]:
    z1: F32 = x @ p["W1"] + p["b1"]
    h: F32 = np.maximum(z1, np.float32(0))
    z2: F32 = h @ p["W2"] + p["b2"]
    return z1, h, z2


def _float_step(p: Params, x: F32, y: I64, lr: np.float32) -> tuple[Params, int]:
    batch = len(y)
    z1, h, z2 = _float_forward(p, x)
    correct = int((z2.argmax(axis=1) == y).sum())
    z = z2 - z2.max(axis=1, keepdims=True)
    e = np.exp(z)
    dz2 = e / e.sum(axis=1, keepdims=True)
    dz2[np.arange(batch), y] -= np.float32(1)
    dz2 = (dz2 / np.float32(batch)).astype(np.float32)
    g_w2 = h.T @ dz2
    g_b2 = dz2.sum(axis=0)
    dz1 = (dz2 @ p["W2"].T) * (z1 > 0)
    g_w1 = x.T @ dz1
    g_b1 = dz1.sum(axis=0)
    grads = {"W1": g_w1, "b1": g_b1, "W2": g_w2, "b2": g_b2}
    return {k: (p[k] - lr * grads[k]).astype(np.float32) for k in PARAM_NAMES}, correct


# --- segments ----------------------------------------------------------------------------


def run_segment(
    spec: TrainingSpec, params: Params, data: SegmentData
) -> tuple[Params, dict[str, int]]:
    """`steps_per_segment` SGD steps from `params` on `data` (numpy, CPU).

    Metrics: the pool's correct count before training (fresh images, so a held-out score),
    and the correct count over the segment's training batches.
    """
    pool = len(data.classes)
    metrics = {"pool_size": pool, "pool_correct_before": 0, "train_seen": 0, "train_correct": 0}
    if pool == 0:
        return dict(params), metrics
    step: Callable[[Params, Any, I64], tuple[Params, int]]
    if spec.arithmetic == "fixed-point":
        x_all: Any = fixed_features(data.features)
        lr_q = learning_rate_q16(spec)
        logits: npt.NDArray[Any] = _fixed_forward(params, x_all)[2]

        def step(p: Params, x: Any, y: I64) -> tuple[Params, int]:
            return _fixed_step(p, x, y, lr_q)
    else:
        x_all = float_features(data.features)
        lr = np.float32(spec.learning_rate_ppm / 1_000_000)
        logits = _float_forward(params, x_all)[2]

        def step(p: Params, x: Any, y: I64) -> tuple[Params, int]:
            return _float_step(p, x, y, lr)

    metrics["pool_correct_before"] = int((logits.argmax(axis=1) == data.classes).sum())
    current = dict(params)
    for rows in data.batches:
        current, correct = step(current, x_all[rows], data.classes[rows])
        metrics["train_seen"] += len(rows)
        metrics["train_correct"] += correct
    return current, metrics


def encode_training_shard(
    spec: TrainingSpec, index: int, params: Params, metrics: dict[str, int]
) -> bytes:
    dtype = np.int64 if spec.arithmetic == "fixed-point" else np.float32
    meta = {
        "format": FORMAT,
        "spec_hash": "0x" + spec_hash(spec).hex(),
        "shard_index": index,
        "arithmetic": spec.arithmetic,
        "metrics": dict(metrics),
    }
    return container.encode(meta, {k: np.asarray(params[k], dtype=dtype) for k in PARAM_NAMES})


def decode_training_shard(spec: TrainingSpec, data: bytes) -> TrainingShard:
    """A checkpoint, checked against `spec` (names, shapes, dtype, value range, metadata)."""
    meta, arrays = container.decode(data)
    if meta.get("format") != FORMAT or meta.get("arithmetic") != spec.arithmetic:
        raise container.ContainerError("not a training shard of this arithmetic")
    if meta.get("spec_hash") != "0x" + spec_hash(spec).hex():
        raise container.ContainerError("training shard belongs to another spec")
    index, metrics = meta.get("shard_index"), meta.get("metrics")
    if not isinstance(index, int) or not isinstance(metrics, dict):
        raise container.ContainerError("training shard lacks shard_index or metrics")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in metrics.values()):
        raise container.ContainerError("training metrics must be integers")
    want = np.dtype("<i8") if spec.arithmetic == "fixed-point" else np.dtype("<f4")
    shapes = param_shapes(spec)
    if set(arrays) != set(shapes):
        raise container.ContainerError(
            f"training shard arrays {sorted(arrays)} != {sorted(shapes)}"
        )
    params: Params = {}
    for name, shape in shapes.items():
        arr = arrays[name]
        if arr.shape != shape or arr.dtype != want:
            raise container.ContainerError(
                f"{name}: {arr.dtype}{arr.shape}, expected {want}{shape}"
            )
        if spec.arithmetic == "fixed-point" and arr.size and int(np.abs(arr).max()) > PARAM_LIMIT:
            raise container.ContainerError(f"{name}: values beyond +-{PARAM_LIMIT}")
        if spec.arithmetic == "float32" and not np.isfinite(arr).all():
            raise container.ContainerError(f"{name}: non-finite values")
        params[name] = arr.astype(want.newbyteorder("="))
    # One encoding per checkpoint: extra meta keys or a reformatted header are refused, so a
    # provider cannot vary a checkpoint's bytes without changing what it says.
    if encode_training_shard(spec, index, params, metrics) != data:
        raise container.ContainerError("training shard is not in its canonical encoding")
    return TrainingShard(spec_hash(spec), index, spec.arithmetic, params, dict(metrics))


def compute_training_shard(
    spec: TrainingSpec,
    index: int,
    previous: bytes | None,
    data: SegmentData | None = None,
) -> bytes:
    """Shard `index`: segment `index` run from checkpoint `previous` (None for shard 0)."""
    if not 0 <= index < spec.shard_count:
        raise IndexError(f"shard {index} is outside 0..{spec.shard_count - 1}")
    if (previous is None) != (index == 0):
        raise ValueError("shard 0 starts from the seed; every later shard needs its predecessor")
    params = (
        initial_params(spec) if previous is None else decode_training_shard(spec, previous).params
    )
    data = data if data is not None else segment_data(spec, index)
    new, metrics = run_segment(spec, params, data)
    return encode_training_shard(spec, index, new, metrics)


def within_tolerance(claimed: Params, reference: Params, tol: Tolerance) -> tuple[bool, str]:
    """Whether every claimed entry is within `tol` of the reference; says where it is not."""
    for name in PARAM_NAMES:
        a, b = claimed.get(name), reference.get(name)
        if a is None or b is None or a.shape != b.shape:
            return False, f"{name}: missing or shaped differently"
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        if not (np.isfinite(a64).all() and np.isfinite(b64).all()):
            return False, f"{name}: non-finite values"
        excess = np.abs(a64 - b64) - (tol.atol + tol.rtol * np.abs(b64))
        if excess.size and float(excess.max()) > 0:
            at = int(excess.argmax())
            return False, (
                f"{name}[{at}] = {a64.flat[at]:.6g}, re-executed {b64.flat[at]:.6g} "
                f"(allowed {tol.atol:g} + {tol.rtol:g} * |ref|)"
            )
    return True, ""


def metrics_agree(claimed: dict[str, int], reference: dict[str, int]) -> tuple[bool, str]:
    """Float32 metrics may differ by argmax ties: allow 1% (at least 1) per count."""
    if set(claimed) != set(reference):
        return False, f"metrics {sorted(claimed)} != {sorted(reference)}"
    for key, ref in reference.items():
        if abs(claimed[key] - ref) > max(1, abs(ref) // 100):
            return False, f"metric {key} = {claimed[key]}, re-executed {ref}"
    return True, ""
