"""The agent's state file on its own (no chain): identity binding, updates, and the history of
transaction attempts a restart looks at."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from neurotoken.errors import ConfigError
from neurotoken.provider.state import AgentState, JobStatus, first_block_of

MARKET = "0x" + "11" * 20
PROVIDER = "0x" + "22" * 20
H1, H2, H3 = ("0x" + c * 64 for c in "abc")


def open_state(path: Path, chain_id: int = 1337, market: str = MARKET) -> AgentState:
    return AgentState(path / "agent.sqlite3", chain_id, market, PROVIDER)


def test_state__bound_to_one_chain_market_and_provider(tmp_path: Path) -> None:
    open_state(tmp_path).close()
    open_state(tmp_path).close()  # same identity: fine
    with pytest.raises(ConfigError, match="belongs to chain_id 1337"):
        open_state(tmp_path, chain_id=1)
    with pytest.raises(ConfigError, match="use another --state folder"):
        open_state(tmp_path, market="0x" + "33" * 20)


def test_update__unknown_field_or_job__raises_and_changes_nothing(tmp_path: Path) -> None:
    state = open_state(tmp_path)
    assert state.add_seen(1, "file:///spec.json", "0x" + "00" * 32)
    assert not state.add_seen(1, "file:///other.json", "0x" + "00" * 32)  # a rescan
    with pytest.raises(ValueError, match="unknown job fields"):
        state.update(1, owner="me")
    with pytest.raises(KeyError, match="job 2"):
        state.update(2, status=JobStatus.ACCEPTING, accept_tx=H1)
    assert state.tx_attempts(2, "accept_tx") == []  # the failed update left no attempt behind
    record = state.get(1)
    assert record is not None and record.status is JobStatus.SEEN
    assert record.spec_uri == "file:///spec.json"


def test_tx_attempts__every_hash_kept_in_order_until_the_field_is_cleared(tmp_path: Path) -> None:
    state = open_state(tmp_path)
    state.add_seen(7, "file:///spec.json", "0x" + "00" * 32)
    state.update(7, status=JobStatus.ACCEPTING, accept_tx=H1)
    state.update(7, accept_tx=H2.upper().replace("0X", "0x"))  # stored lower-case
    state.update(7, accept_tx=H2)  # written twice: kept once
    state.update(7, submit_tx=H3)
    assert state.tx_attempts(7, "accept_tx") == [H1, H2]
    assert state.tx_attempts(7, "submit_tx") == [H3]
    state.close()

    state = open_state(tmp_path)  # survives a restart
    assert state.tx_attempts(7, "accept_tx") == [H1, H2]
    state.update(7, status=JobStatus.SEEN, accept_tx=None)
    assert state.tx_attempts(7, "accept_tx") == []
    assert state.tx_attempts(7, "submit_tx") == [H3]  # the other field is untouched
    with pytest.raises(ValueError, match="not a transaction field"):
        state.tx_attempts(7, "root")


def test_tx_attempts__a_file_written_before_the_history__still_gives_its_hash(
    tmp_path: Path,
) -> None:
    state = open_state(tmp_path)
    state.add_seen(3, "file:///spec.json", "0x" + "00" * 32)
    state.update(3, status=JobStatus.SUBMITTING, submit_tx=H1)
    state.close()
    with sqlite3.connect(tmp_path / "agent.sqlite3") as db:
        db.execute("DROP TABLE tx_attempts")  # as an older agent left it
    state = open_state(tmp_path)
    assert state.tx_attempts(3, "submit_tx") == [H1]
    state.update(3, submit_tx=H2)
    assert state.tx_attempts(3, "submit_tx") == [H1, H2]


def test_first_block__kept_from_the_first_run_for_every_later_one(tmp_path: Path) -> None:
    """Job records are searched for from the block the first scan started at: a later run
    given another --from-block must still find the jobs the file knows."""
    path = tmp_path / "agent.sqlite3"
    assert first_block_of(path) == 0  # no file yet
    state = open_state(tmp_path)
    assert state.first_block(500) == 500
    state.set_next_block(900)
    state.close()
    state = open_state(tmp_path)
    assert state.first_block(800) == 500
    state.close()
    assert first_block_of(path) == 500


def test_first_block__a_file_that_scanned_before_it_was_kept__starts_at_zero(
    tmp_path: Path,
) -> None:
    state = open_state(tmp_path)
    state.set_next_block(900)  # as an older agent left it: scanned, from where unknown
    state.close()
    assert first_block_of(tmp_path / "agent.sqlite3") == 0
    state = open_state(tmp_path)
    assert state.first_block(700) == 0
    state.close()
    assert first_block_of(tmp_path / "agent.sqlite3") == 0
