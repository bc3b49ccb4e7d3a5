"""`python -m neurotoken.client spec ...`: a client writes a job spec and sees what it
commits to.

    python -m neurotoken.client spec new shelf --shards 16 --out spec.json
    python -m neurotoken.client spec new training --segments 12 --out spec.json
    python -m neurotoken.client spec check spec.json --challenges 8

Each prints one JSON object: the spec's hash (what `ape run market post --spec-hash` takes),
its kind and size, what one oracle spends verifying it with k challenged shards, and the
reasons, if any, the market would refuse to pay for it (then the exit status is 1). The spec
file is written canonically: its keccak256 is the hash the market records.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import click

from neurotoken.chain.cli import friendly
from neurotoken.errors import InputError
from neurotoken.jobs.canonical import keccak256
from neurotoken.jobs.spec import (
    MAX_CHALLENGES,
    ShelfImagesSpec,
    TrainingSpec,
    market_problems,
    parse_spec,
    spec_json,
    verification_cost,
)


def summary(spec: ShelfImagesSpec | TrainingSpec, raw: bytes, challenges: int) -> dict[str, Any]:
    """What a client needs to know before posting `spec` with `challenges` challenged shards."""
    cost = verification_cost(spec, challenges)
    return {
        "hash": "0x" + keccak256(raw).hex(),
        "kind": spec.kind,
        "shards": spec.shard_count,
        "challenges": cost.challenged,
        "verification": {
            "cpu_s": round(cost.cpu_s, 3),
            "fetch_s": round(cost.fetch_s, 3),
            "result_bytes": cost.result_bytes,
            "memory_bytes": cost.memory_bytes,
        },
        "problems": market_problems(spec, challenges),
    }


def _emit(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2))
    if data["problems"]:
        raise SystemExit(1)


def _scene_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option("--width", type=int, default=320, show_default=True),
            click.option("--height", type=int, default=240, show_default=True),
            click.option("--shelves", type=int, default=3, show_default=True),
            click.option("--max-products-per-shelf", type=int, default=12, show_default=True),
            click.option("--occlusion-pct", type=int, default=35, show_default=True),
            click.option("--lighting-pct", type=int, default=25, show_default=True),
            click.option("--noise-level", type=int, default=6, show_default=True),
            click.option(
                "--seed", type=int, default=None, help="The workload's seed (default: random)."
            ),
            click.option(
                "--challenges",
                type=int,
                default=8,
                show_default=True,
                help="k: the shards oracles will re-execute (for the cost shown).",
            ),
            click.option(
                "--out",
                type=click.Path(dir_okay=False, path_type=Path),
                required=True,
                help="Where to write the spec (canonical JSON).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _write(data: dict[str, Any], out: Path, challenges: int) -> None:
    spec = parse_spec(data)  # the same rules an oracle and a provider apply
    raw = spec_json(spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(raw)
    _emit({"spec": str(out), **summary(spec, raw, challenges)})


def _scene(options: dict[str, Any]) -> dict[str, Any]:
    names = (
        "width", "height", "shelves", "max_products_per_shelf", "occlusion_pct",
        "lighting_pct", "noise_level",
    )  # fmt: skip
    return {n: options.pop(n) for n in names}


def _seed(seed: int | None) -> int:
    return secrets.randbits(63) if seed is None else seed


@click.group()
def spec() -> None:
    """Write and check job specs for the compute market."""


@spec.group()
def new() -> None:
    """Write a new job spec."""


@new.command("shelf")
@click.option("--shards", type=int, required=True, help="How many shards the job has.")
@click.option("--images-per-shard", type=int, default=4, show_default=True)
@_scene_options
@friendly
def new_shelf(shards: int, images_per_shard: int, **options: Any) -> None:
    """Synthetic shelf images with pixel-perfect labels."""
    out, challenges = options.pop("out"), options.pop("challenges")
    seed = _seed(options.pop("seed"))
    data = {
        "kind": "shelf-images", "version": 1, "seed": seed, "scene": _scene(options),
        "images_per_shard": images_per_shard, "shard_count": shards,
    }  # fmt: skip
    _write(data, out, challenges)


@new.command("training")
@click.option("--segments", type=int, required=True, help="Training segments (the shards).")
@click.option("--images-per-segment", type=int, default=1, show_default=True)
@click.option("--crop-size", type=int, default=8, show_default=True)
@click.option("--hidden-units", type=int, default=16, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--steps-per-segment", type=int, default=16, show_default=True)
@click.option("--learning-rate-ppm", type=int, default=100_000, show_default=True)
@_scene_options
@friendly
def new_training(segments: int, **options: Any) -> None:
    """A small product classifier trained in fixed-point (bit-exact, payable)."""
    out, challenges = options.pop("out"), options.pop("challenges")
    seed = _seed(options.pop("seed"))
    scene = _scene(options)
    data = {
        "kind": "classifier-training", "version": 1, "seed": seed, "scene": scene,
        **options, "arithmetic": "fixed-point", "shard_count": segments,
    }  # fmt: skip
    _write(data, out, challenges)


@spec.command()
@click.argument("spec_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--challenges", type=int, default=8, show_default=True,
    help=f"k, the challenged shards (1 to {MAX_CHALLENGES}).",
)  # fmt: skip
@friendly
def check(spec_file: Path, challenges: int) -> None:
    """Check a spec file: its hash, the verification cost and whether it is payable."""
    try:
        raw = spec_file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {spec_file}: {exc.strerror}") from None
    spec = parse_spec(raw)
    data = summary(spec, raw, challenges)
    if raw != spec_json(spec):
        data["problems"].append(
            "the file is not in canonical form: its hash is not the spec's; rewrite it with "
            "`python -m neurotoken.client spec new` (or canonical_json)"
        )
    _emit({"spec": str(spec_file), **data})
