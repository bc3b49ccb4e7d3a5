"""The provider's compute side: resumable after a crash or a kill, the same root anywhere."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from neurotoken.jobs import ShelfImagesSpec, TrainingSpec, keccak256, parse_spec, spec_json
from neurotoken.proofs import LocalStore, MerkleTree
from neurotoken.provider import Journal, compute_job, publish_bundle
from tests.compute.crashes import SimulatedCrashError, crash_after
from tests.constants import shelf_spec_dict, training_spec_dict

ROOT = Path(__file__).resolve().parents[2]


def test_compute_job__after_a_crash__resumes_without_recomputing(
    tmp_path: Path, shelf_spec: ShelfImagesSpec
) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(SimulatedCrashError):
        compute_job(
            shelf_spec,
            store,
            tmp_path / "state",
            workers=1,
            progress=False,
            on_shard=crash_after(5),
        )
    again = compute_job(shelf_spec, store, tmp_path / "state", workers=1, progress=False)
    assert again.reused == [0, 1, 2, 3, 4]
    assert sorted(again.computed) == list(range(5, 16))
    fresh = compute_job(
        shelf_spec,
        LocalStore(tmp_path / "fresh"),
        tmp_path / "fresh-state",
        workers=1,
        progress=False,
    )
    assert again.output_hashes == fresh.output_hashes
    # A third run has nothing left to do.
    assert (
        compute_job(shelf_spec, store, tmp_path / "state", workers=1, progress=False).computed == []
    )


def test_compute_job__training_after_a_crash__continues_from_the_last_checkpoint(
    tmp_path: Path, training_spec: TrainingSpec
) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(SimulatedCrashError):
        compute_job(
            training_spec,
            store,
            tmp_path / "state",
            workers=1,
            progress=False,
            on_shard=crash_after(3),
        )
    again = compute_job(training_spec, store, tmp_path / "state", workers=1, progress=False)
    assert again.reused == [0, 1, 2] and again.computed == list(range(3, 12))
    fresh = compute_job(
        training_spec, LocalStore(tmp_path / "fresh"), tmp_path / "s2", workers=1, progress=False
    )
    assert again.output_hashes == fresh.output_hashes


def test_compute_job__damaged_object__is_recomputed_not_trusted(
    tmp_path: Path, shelf_spec: ShelfImagesSpec
) -> None:
    store = LocalStore(tmp_path / "store")
    first = compute_job(shelf_spec, store, tmp_path / "state", workers=1, progress=False)
    victim = store.root_dir / f"objects/0x{first.output_hashes[7].hex()}"
    victim.write_bytes(victim.read_bytes()[:-1])
    again = compute_job(shelf_spec, store, tmp_path / "state", workers=1, progress=False)
    assert again.computed == [7] and again.output_hashes == first.output_hashes


def test_compute_job__training_journal_with_a_gap__reuses_only_the_unbroken_prefix(
    tmp_path: Path, training_spec: TrainingSpec
) -> None:
    store = LocalStore(tmp_path / "store")
    first = compute_job(training_spec, store, tmp_path / "state", workers=1, progress=False)
    (Journal(tmp_path / "state", training_spec).folder / "4").unlink()
    again = compute_job(training_spec, store, tmp_path / "state", workers=1, progress=False)
    assert again.reused == [0, 1, 2, 3] and again.computed == list(range(4, 12))
    assert again.output_hashes == first.output_hashes


def test_compute_job__on_a_process_pool__gives_the_same_outputs(tmp_path: Path) -> None:
    shelf = parse_spec(shelf_spec_dict(shard_count=6))
    training = parse_spec(training_spec_dict(shard_count=5))
    for spec in (shelf, training):
        pooled = compute_job(
            spec, LocalStore(tmp_path / "a"), tmp_path / "sa", workers=2, progress=False
        )
        inline = compute_job(
            spec, LocalStore(tmp_path / "b"), tmp_path / "sb", workers=1, progress=False
        )
        assert pooled.output_hashes == inline.output_hashes
        assert sorted(pooled.computed) == list(range(spec.shard_count))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "neurotoken.provider", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_provider_killed_mid_job__restarts_without_recomputing(tmp_path: Path) -> None:
    spec = parse_spec(
        shelf_spec_dict(
            scene={**shelf_spec_dict()["scene"], "width": 320, "height": 240}, shard_count=48
        )
    )
    spec_file = tmp_path / "spec.json"
    spec_file.write_bytes(spec_json(spec))
    args = [
        "compute",
        str(spec_file),
        "--job-id",
        "3",
        "--store",
        str(tmp_path / "store"),
        "--state",
        str(tmp_path / "state"),
        "--workers",
        "1",
        "--quiet",
    ]
    proc = subprocess.Popen(_cli(*args), env=_env(), cwd=ROOT)
    journal = Journal(tmp_path / "state", spec).folder
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.is_dir() and sum(1 for p in journal.iterdir() if p.name.isdigit()) >= 3:
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finished = {int(p.name) for p in journal.iterdir() if p.name.isdigit()}
    assert 3 <= len(finished) < 48, "the provider was killed mid-job"
    resumed = compute_job(
        spec, LocalStore(tmp_path / "store"), tmp_path / "state", workers=1, progress=False
    )
    assert set(resumed.reused) == finished
    assert set(resumed.computed) == set(range(48)) - finished


def test_same_spec__gives_the_same_root_in_two_separate_processes(tmp_path: Path) -> None:
    spec = parse_spec(training_spec_dict(shard_count=6))
    spec_file = tmp_path / "spec.json"
    spec_file.write_bytes(spec_json(spec))
    roots = []
    for n in range(2):
        out = subprocess.run(
            _cli(
                "compute",
                str(spec_file),
                "--job-id",
                "9",
                "--store",
                str(tmp_path / f"store{n}"),
                "--state",
                str(tmp_path / f"state{n}"),
                "--workers",
                "1",
                "--quiet",
            ),
            env=_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        roots.append(json.loads(out.stdout.strip().splitlines()[-1])["root"])
    here = compute_job(
        spec, LocalStore(tmp_path / "here"), tmp_path / "sh", workers=1, progress=False
    )
    assert roots[0] == roots[1] == "0x" + MerkleTree.of_shards(here.output_hashes).root.hex()


def test_publish_bundle__then_serve_over_http(tmp_path: Path, shelf_spec: ShelfImagesSpec) -> None:
    store = LocalStore(tmp_path / "store")
    report = compute_job(shelf_spec, store, tmp_path / "state", workers=1, progress=False)
    manifest = publish_bundle(store, 5, shelf_spec, report.output_hashes)
    with socket.socket() as probe:  # a free port (the server binds it a moment later)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        _cli("serve", "--public", "--store", str(store.root_dir), "--port", str(port)),
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:
                    assert json.load(resp) == {"ok": True}
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with urllib.request.urlopen(f"{url}/bundles/{manifest.root}/manifest", timeout=5) as resp:
            assert json.load(resp)["root"] == manifest.root
        # the bundle carries the spec's exact bytes, so oracles need not rely on the client
        with urllib.request.urlopen(f"{url}/bundles/{manifest.root}/spec", timeout=5) as resp:
            served = resp.read()
        assert served == spec_json(shelf_spec)
        assert "0x" + keccak256(served).hex() == manifest.spec_hash
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve__without_a_market_or_public__refuses_to_start(tmp_path: Path) -> None:
    """A bundle is a paid result: the server gives it to the job's readers (known from the
    chain), or to anyone only when told so (--public, local demos)."""
    env = {k: v for k, v in _env().items() if k != "NEUROTOKEN_MARKET"}
    out = subprocess.run(
        _cli("serve", "--store", str(tmp_path)), env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 2 and "--public" in out.stderr


def test_publish_bundle__with_missing_outputs__raises(
    tmp_path: Path, shelf_spec: ShelfImagesSpec
) -> None:
    with pytest.raises(ValueError, match="missing"):
        publish_bundle(LocalStore(tmp_path), 1, shelf_spec, [b"\x01" * 32] * shelf_spec.shard_count)
