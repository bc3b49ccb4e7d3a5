"""The oracle service's errors, under the project's one root (neurotoken.errors)."""

from __future__ import annotations

from neurotoken.errors import ConfigError, KeystoreError, NeurotokenError

__all__ = [
    "ConfigError",
    "ConflictingVerdictError",
    "KeystoreError",
    "OracleError",
    "StartupInterruptedError",
    "StoreError",
]


class OracleError(NeurotokenError):
    """Base of the errors only the oracle service raises (the shared `ConfigError` and
    `KeystoreError` of neurotoken.errors are raised by it too)."""


class StoreError(OracleError):
    """The database refused an operation or holds something it should not."""


class ConflictingVerdictError(StoreError):
    """An attempt to record a second, different verdict or signature for one (job, root)."""

    def __init__(self, job_id: int, root: bytes, existing: bool, attempted: bool) -> None:
        super().__init__(
            f"job {job_id} root 0x{root.hex()}: verdict {'accept' if existing else 'reject'} "
            f"already recorded, refusing {'accept' if attempted else 'reject'}"
        )
        self.job_id = job_id
        self.root = root


class StartupInterruptedError(OracleError):
    """SIGTERM or Ctrl-C arrived while the oracle was still starting (e.g. waiting for its
    node): a requested stop, not a failure."""
