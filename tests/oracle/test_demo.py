"""The `make demo` stage runs end to end and tells the truth about what happened."""

from __future__ import annotations

from pathlib import Path

from demo.oracle import oracle_stage
from neurotoken.units import NTK


def test_oracle_stage__honest_paid_cheater_slashed(tmp_path: Path) -> None:
    lines: list[str] = []
    result = oracle_stage(lines.append, folder=tmp_path)
    assert result.honest_earned_ntk == 97_500 * NTK // 1000
    assert result.cheat_stake_lost_ntk == 400 * NTK
    assert result.client_compensation_ntk == 200 * NTK and result.burned_ntk == 200 * NTK
    text = "\n".join(lines)
    assert "JobPaid" in text and "JobRejected" in text and "400.00 NTK slashed" in text
    # a quorum of two settles each job; the third oracle may not have finished verifying it
    assert 2 <= sum(line.endswith(": accept") for line in lines) <= 3
    assert 2 <= sum(": reject (" in line for line in lines) <= 3
    assert len(list(tmp_path.glob("oracles/oracle*/oracle.sqlite"))) == 3
