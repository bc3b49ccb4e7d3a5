"""The agent's fault injection (neurotoken/provider/faults.py): inert unless configured, a
configured point SIGKILLs the process after logging it, and mid_compute fires only while a job
has shards left (the SIGKILL campaign itself: tests/agent/test_soak.py, under `make soak`)."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest
from pydantic import ValidationError

from devchain.parties import small_spec
from neurotoken.proofs.store import LocalStore
from neurotoken.provider.compute import compute_job
from neurotoken.provider.faults import CrashInjector, crash_injector
from neurotoken.provider.settings import ProviderSettings


def test_no_crash_point_unless_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEUROTOKEN_AGENT_CRASH_AT", raising=False)
    settings = ProviderSettings.model_validate({})
    assert settings.crash_at == "" and crash_injector(settings.crash_at, 1.0) is None
    monkeypatch.setenv("NEUROTOKEN_AGENT_CRASH_AT", "mid_compute, mid_serve")
    named = crash_injector(ProviderSettings.model_validate({}).crash_at, 1.0)
    assert named is not None and named.points == {"mid_compute", "mid_serve"}
    monkeypatch.setenv("NEUROTOKEN_AGENT_CRASH_AT", "after_everything")
    with pytest.raises(ValidationError, match="unknown crash points"):
        ProviderSettings.model_validate({})


def test_a_named_point_logs_then_sigkills_the_process(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    pid = os.fork()
    if pid == 0:  # the child: logs to a file, passes one point, dies at the named one
        try:
            root = logging.getLogger()
            root.handlers = [logging.FileHandler(log)]
            injector = CrashInjector(frozenset({"mid_serve"}))
            injector("after_accept_sent", 1)
            log.open("a").write("passed after_accept_sent\n")
            injector("mid_serve", "0xab")
            log.open("a").write("survived mid_serve\n")
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    lines = log.read_text().splitlines()
    assert lines == [
        "passed after_accept_sent",
        f"crash_injected point=mid_serve job=0xab pid={pid}",
    ]


def test_mid_compute_comes_after_a_journalled_shard_while_others_are_left(tmp_path: Path) -> None:
    calls: list[tuple[str, int | str | None, int]] = []
    journal = tmp_path / "journal"

    def crash(point: str, job: int | str | None = None) -> None:
        done = len(list((journal / next(journal.iterdir()).name / "done").iterdir()))
        calls.append((point, job, done))

    spec = small_spec(seed=3, shards=3)
    report = compute_job(
        spec, LocalStore(tmp_path / "store"), journal, workers=1, progress=False,
        crash=crash, job=7,
    )  # fmt: skip
    assert sorted(report.computed) == [0, 1, 2]
    # after the first and the second shard are on disk, not after the last
    assert calls == [("mid_compute", 7, 1), ("mid_compute", 7, 2)]
