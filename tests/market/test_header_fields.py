"""HeaderFields (the RandaoRecorder's header reader) against OpenZeppelin's BlockHeader and
Python's rlp, on headers of every shape a chain could give: numbers of 0 to 8 bytes, extra
data of 0 to 97 bytes (past the 55-byte short-string limit), the pre- and post-London field
counts; and shapes that are no header at all revert HeaderFieldsMalformed."""

from __future__ import annotations

from typing import Any

import ape
import pytest
import rlp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NUMBER, MIX = 8, 13


@pytest.fixture(scope="module")
def harness(project: Any, owner: Any) -> Any:
    return project.HeaderFieldsHarness.deploy(sender=owner)


def word(size: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=size, max_size=size)


uint = st.one_of(
    st.integers(min_value=0, max_value=200),
    st.integers(min_value=0, max_value=2**64 - 1),
)
frontier = st.tuples(
    word(32), word(32), word(20), word(32), word(32), word(32), word(256),  # .. logs bloom
    uint, uint, uint, uint, uint,  # difficulty, number, gas limit, gas used, timestamp
    st.binary(max_size=97),  # extra data
    word(32), word(8),  # prevRandao (mix hash), nonce
)  # fmt: skip
later = st.lists(st.one_of(word(32), uint), max_size=7)  # base fee, withdrawals root, ...


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(fields=frontier, extra=later)
def test_header_fields__any_header_shape__reads_what_openzeppelin_and_rlp_read(
    harness, fields, extra
):
    header = rlp.encode([*fields, *extra])
    expected = (fields[NUMBER], fields[MIX])
    number, mix = harness.fields(header)
    assert (number, bytes(mix)) == expected
    oz_number, oz_mix = harness.openZeppelin(header)
    assert (oz_number, bytes(oz_mix)) == expected


HEADER = rlp.encode([b"\x11" * 32] * 13 + [b"\x22" * 32, b"\x00" * 8])


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x80",  # a string, not a list
        b"\xc0",  # an empty list
        b"\xff" * 40,  # a list whose first item is a list
        HEADER[:100],  # cut short
        rlp.encode([b"\x11" * 32] * 13),  # no prevRandao
        rlp.encode([b"\x11" * 32] * 8 + [b"\x01" * 33] + [b"\x11" * 32] * 6),  # a 33-byte number
        rlp.encode([b"\x11" * 32] * 13 + [b"\x22" * 31, b"\x00" * 8]),  # a 31-byte mix
        rlp.encode([b"\x11" * 32] * 3 + [[b"\x11"]] + [b"\x11" * 32] * 11),  # a nested list
        b"\xf9\xff\xff" + b"\xbf" + b"\xff" * 8,  # an item claiming 2**64 bytes
    ],
)
def test_header_fields__not_a_header__malformed(harness, garbage):
    with ape.reverts(harness.HeaderFieldsMalformed):
        harness.fields(garbage)
