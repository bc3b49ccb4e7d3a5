"""The float32 training segment on a CUDA GPU with torch (optional; import-guarded).

torch is not a dependency of this project. Where it is installed and a CUDA device is
present, float32 training segments run here; the arithmetic mirrors `training._float_step`
operation for operation, with TF32 disabled so matrix products stay true float32, and
results agree with the numpy CPU path within `training.FLOAT32_TOLERANCE`. Float32 training
is for local and preview use: the market pays for fixed-point training only, which always
runs on the CPU (exactness; see `neurotoken.jobs.market_problems`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurotoken.jobs.spec import TrainingSpec
from neurotoken.workloads.training import PARAM_NAMES, Params, SegmentData

try:  # pragma: no cover - depends on the machine
    import torch
except (ImportError, OSError):  # pragma: no cover - absent, or installed without its libraries
    torch = None


def cuda_available() -> bool:
    """Whether torch is importable and sees a CUDA device."""
    return torch is not None and bool(torch.cuda.is_available())


def run_segment_torch(
    spec: TrainingSpec, params: Params, data: SegmentData, device: str = "cuda"
) -> tuple[Params, dict[str, int]]:
    """`training.run_segment` for float32 specs, on `device` (any torch device works)."""
    if torch is None:
        raise RuntimeError("torch is not installed")
    if spec.arithmetic != "float32":
        raise ValueError("only float32 segments run on torch; fixed-point is CPU-exact")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    pool = len(data.classes)
    metrics = {"pool_size": pool, "pool_correct_before": 0, "train_seen": 0, "train_correct": 0}
    if pool == 0:
        return dict(params), metrics
    dev = torch.device(device)
    p: dict[str, Any] = {
        k: torch.from_numpy(np.array(params[k], dtype=np.float32)).to(dev) for k in PARAM_NAMES
    }
    x_all = (torch.from_numpy(data.features.astype(np.float32)).to(dev) - 128.0) / 128.0
    y_all = torch.from_numpy(data.classes).to(dev)
    lr = float(np.float32(spec.learning_rate_ppm / 1_000_000))

    def forward(x: Any) -> tuple[Any, Any, Any]:
        z1 = x @ p["W1"] + p["b1"]
        h = torch.clamp(z1, min=0.0)
        return z1, h, h @ p["W2"] + p["b2"]

    with torch.no_grad():
        _, _, logits = forward(x_all)
        metrics["pool_correct_before"] = int((logits.argmax(dim=1) == y_all).sum().item())
        for rows_np in data.batches:
            rows = torch.from_numpy(rows_np).to(dev)
            x, y = x_all[rows], y_all[rows]
            batch = len(rows_np)
            z1, h, z2 = forward(x)
            metrics["train_correct"] += int((z2.argmax(dim=1) == y).sum().item())
            metrics["train_seen"] += batch
            e = torch.exp(z2 - z2.max(dim=1, keepdim=True).values)
            dz2 = e / e.sum(dim=1, keepdim=True)
            dz2[torch.arange(batch, device=dev), y] -= 1.0
            dz2 = dz2 / batch
            grads = {"W2": h.T @ dz2, "b2": dz2.sum(dim=0)}
            dz1 = (dz2 @ p["W2"].T) * (z1 > 0)
            grads["W1"] = x.T @ dz1
            grads["b1"] = dz1.sum(dim=0)
            p = {k: p[k] - lr * grads[k] for k in PARAM_NAMES}
    return {k: p[k].cpu().numpy().astype(np.float32) for k in PARAM_NAMES}, metrics
