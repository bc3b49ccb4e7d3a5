"""One exception hierarchy for the oracle service; each class carries its message."""

from __future__ import annotations


class OracleError(Exception):
    """Base of every error the oracle service raises on purpose."""


class ConfigError(OracleError):
    """The settings are unusable (missing market address, unreadable keystore, ...)."""


class KeystoreError(ConfigError):
    """The keystore cannot be read or decrypted. The message never contains key material."""


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


class ReorgDetectedError(OracleError):
    """The chain no longer contains a block the oracle processed; ingestion must roll back."""

    def __init__(self, number: int, stored: str, current: str | None) -> None:
        super().__init__(f"block {number}: stored hash {stored}, chain has {current}")
        self.number = number


class RpcError(OracleError):
    """A JSON-RPC call failed in a way worth retrying later."""


class PeerError(OracleError):
    """A peer oracle answered with something unusable (logged and ignored)."""


class SettlementError(OracleError):
    """A settlement could not be assembled or sent."""
