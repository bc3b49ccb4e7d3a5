"""The `make demo` stage runs end to end on the test chain (so it cannot rot unseen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from demo.agent import agent_stage


def test_agent_stage__runs_a_job_from_post_to_payment(
    project: Any, accounts: Any, chain: Any, tmp_path: Path
) -> None:
    lines: list[str] = []
    paths = agent_stage(
        lines.append, tmp_path / "pngs", project=project, test_accounts=accounts, chain=chain
    )
    text = "\n".join(lines)
    assert "agent: job 1: accepted - 16 shards for 160.00 NTK" in text
    assert "agent: job 1: result submitted, root 0x" in text
    assert text.count("matched") == 2  # two oracles re-executed the challenged shards
    assert "client downloaded all 16 outputs" in text
    assert "a stranger with the bundle URL gets nothing (refused: HTTP 403)" in text
    assert "agent: job 1: paid on chain" in text
    assert "gross paid by clients 160 NTK; protocol fees 4 NTK; net earned 156 NTK" in text
    assert "withdrew 156 NTK of earnings" in text
    assert len(paths) == 2 and all(p.stat().st_size > 1000 for p in paths)
