"""A hypothesis state machine over the RandaoRecorder on anvil: blocks are mined, and real,
altered, future and malformed headers are posted in any order. After every step each block's
recorded mix is its header's prevRandao or zero, a recorded mix never changes, and only a
real header of a block in reach with a non-zero mix ever records anything."""

from __future__ import annotations

from typing import Any

import rlp
from eth_utils.crypto import keccak
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from neurotoken.chain.headers import header_at
from tests.stateful import ChainStateMachine, TxRevertedError, batch_view, reverts, run_machine

MIX, NUMBER = 13, 8
FIELDS = 21  # a Prague header's


class RandaoRecorderMachine(ChainStateMachine):
    recorder: Any = None
    sender: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.tx = self.fast.wrap(self.recorder)
        self.web3 = self.chain.provider.web3
        self.head, self.now = self.fast.head()
        self.first = self.head  # blocks before the example may hold records of none
        self.recorded: dict[int, bytes] = {}

    def _header(self, number: int) -> bytes:
        return header_at(self.web3, number)

    @rule(blocks=st.integers(min_value=1, max_value=4))
    def mine(self, blocks: int) -> None:
        for _ in range(blocks):
            self.now += 12
            self.fast.mine(self.now)
        self.head += blocks

    @rule(back=st.integers(min_value=0, max_value=300))
    def record(self, back: int) -> None:
        """A real header of block head - back (block 0 has a zero mix, as a chain without
        RANDAO; blocks past 256 back come from EIP-2935 history)."""
        number = self.head - back % (self.head + 1)
        header = self._header(number)
        mix = rlp.decode(header)[MIX]
        if number in self.recorded:
            with reverts(self.recorder.RandaoAlreadyRecorded, blockNumber=number, mix=mix):
                self.tx.record(header, sender=self.sender)
        elif mix == bytes(32):
            with reverts(self.recorder.RandaoMissing, blockNumber=number):
                self.tx.record(header, sender=self.sender)
        else:
            self.tx.record(header, sender=self.sender)
            self.recorded[number] = mix

    @rule(
        back=st.integers(min_value=0, max_value=20),
        field=st.integers(min_value=0, max_value=FIELDS - 1).filter(lambda f: f != NUMBER),
        value=st.binary(min_size=0, max_size=40),
    )
    def record_altered(self, back: int, field: int, value: bytes) -> None:
        """Any field but the number replaced: another mix, timestamp, extra data, ..."""
        number = max(1, self.head - back)
        fields = rlp.decode(self._header(number))
        if fields[field] == value:
            return
        fields[field] = value
        altered = rlp.encode(fields)
        try:
            self.tx.record(altered, sender=self.sender)
        except TxRevertedError as exc:  # an unknown header; a mix of 32 bytes no more: no header
            known = {_selector(self.recorder.RandaoBlockHeaderUnknown)}
            if field == MIX and len(value) != 32:
                known = {_selector(self.recorder.HeaderFieldsMalformed)}
            assert exc.data[:4] in known, exc
        else:
            raise AssertionError(f"an altered header of block {number} was recorded")

    @rule(ahead=st.integers(min_value=1, max_value=10))
    def record_future(self, ahead: int) -> None:
        fields = rlp.decode(self._header(self.head))
        fields[NUMBER] = self.head + ahead
        with reverts(self.recorder.RandaoBlockHeaderUnknown, blockNumber=self.head + ahead):
            self.tx.record(rlp.encode(fields), sender=self.sender)

    @rule(data=st.binary(max_size=120))
    def record_garbage(self, data: bytes) -> None:
        with reverts(self.recorder.HeaderFieldsMalformed):
            self.tx.record(b"\xc1\xc0" + data, sender=self.sender)  # a list in a header's place

    @invariant()
    def mixes_are_the_headers_and_never_change(self) -> None:
        blocks = list(range(self.first, self.head + 1)) + sorted(self.recorded)
        mixes = batch_view(self.recorder, [("mixOf", n) for n in blocks])
        for number, mix in zip(blocks, mixes, strict=True):
            assert bytes(mix) == self.recorded.get(number, bytes(32)), number


def _selector(error: Any) -> bytes:
    return keccak(text=error.abi.selector)[:4]


def test_randao_recorder_state_machine(project: Any, chain: Any, owner: Any) -> None:
    recorder = project.RandaoRecorder.deploy(sender=owner)
    run_machine(RandaoRecorderMachine, chain, recorder=recorder, sender=owner)
