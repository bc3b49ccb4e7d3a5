"""Platform-stable randomness: SHAKE-256 in counter mode.

Every draw is a pure function of (seed, draw number), computed with SHA-3's XOF and integer
arithmetic only, so the same seed gives the same numbers on every machine, Python and numpy
version. (numpy's `Generator` methods may change streams between releases; this cannot.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from neurotoken.jobs.canonical import keccak256

T = TypeVar("T")


def derive_seed(parent: bytes, label: str, *numbers: int) -> bytes:
    """A 32-byte child seed for `label` and `numbers` (each a uint256) under `parent`."""
    body = parent + label.encode("ascii") + b"".join(n.to_bytes(32, "big") for n in numbers)
    return keccak256(body)


class Rng:
    """A deterministic random stream; each call consumes one fresh SHAKE-256 block."""

    def __init__(self, seed: bytes) -> None:
        self._seed = bytes(seed)
        self._counter = 0

    def bytes(self, n: int) -> bytes:
        """`n` pseudo-random bytes."""
        block = self._seed + self._counter.to_bytes(8, "big")
        self._counter += 1
        return hashlib.shake_256(block).digest(n)

    def below(self, n: int) -> int:
        """An integer in [0, n) (n >= 1); modulo bias is below 2**-56 for n < 256."""
        if n < 1:
            raise ValueError("below(n) needs n >= 1")
        return int.from_bytes(self.bytes(8), "big") % n

    def between(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi], both inclusive."""
        return lo + self.below(hi - lo + 1)

    def chance(self, percent: int) -> bool:
        """True with probability percent/100."""
        return self.below(100) < percent

    def choice(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]

    def array_below(self, n: int, shape: tuple[int, ...]) -> npt.NDArray[np.int64]:
        """An int64 array of `shape` with entries in [0, n) (1 <= n <= 2**32)."""
        if not 1 <= n <= 1 << 32:
            raise ValueError("array_below(n) needs 1 <= n <= 2**32")
        count = int(np.prod(shape, dtype=np.int64))
        if n <= 1 << 16:  # 32-bit draws: modulo bias below 2**-16, and half the bytes
            raw = np.frombuffer(self.bytes(4 * count), dtype="<u4").astype(np.int64)
            return (raw % n).reshape(shape)
        wide = np.frombuffer(self.bytes(8 * count), dtype="<u8")
        return (wide % np.uint64(n)).astype(np.int64).reshape(shape)

    def array_between(self, lo: int, hi: int, shape: tuple[int, ...]) -> npt.NDArray[np.int64]:
        """An int64 array of `shape` with entries in [lo, hi]."""
        return self.array_below(hi - lo + 1, shape) + lo
