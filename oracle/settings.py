"""Typed settings, from the environment (prefix ``ORACLE_``) or an env-style file.

Every field can be set as ``ORACLE_<FIELD>`` (case-insensitive), for example::

    ORACLE_RPC_URL=http://127.0.0.1:8545
    ORACLE_MARKET=0x5FbDB2315678afecb367f032d93F642f64180aa3  # or, instead:
    ORACLE_DEPLOYMENT=ethereum-sepolia   # the market recorded by `ape run market deploy`
    ORACLE_KEYSTORE=~/.ape/accounts/oracle1.json     # ape's account files are keystores
    ORACLE_PASSWORD_ENV=ORACLE1_PASSWORD              # the *name* of the variable
    ORACLE_DATABASE_URL=postgresql+psycopg://oracle@db.internal/oracle
    ORACLE_PEERS=http://oracle2:8700,http://oracle3:8700

``python -m oracle run --config oracle.env`` reads the same keys from a file; the
environment wins over the file. With no keystore the oracle runs dry: it verifies and logs
its verdicts but signs and sends nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from eth_utils.address import is_address, to_checksum_address
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from neurotoken.redact import hide_password, url_origin

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ABI_PATH = REPO_ROOT / ".build" / "__local__.json"

CRASH_POINTS = ("after_verify", "after_sign", "after_send", "after_replacement", "mid_ingest")
"""Fault-injection points (for the crash tests): the process SIGKILLs itself right after
the named step has been made durable, with probability ``crash_probability``:

* ``after_verify``: a verdict recorded (before it is signed);
* ``after_sign``: a signature recorded (before any settlement);
* ``after_send``: a transaction (or a replacement) recorded and handed to the node, before
  its receipt;
* ``after_replacement``: a fee replacement of a pending transaction recorded and handed to
  the node (whatever the node answered), before any receipt;
* ``mid_ingest``: one range of market logs committed to the store while ingesting, before
  the next range is read (only after a range that held logs)."""


class OracleSettings(BaseSettings):
    """Everything `oracle run`, `oracle status` and `oracle settle` need."""

    model_config = SettingsConfigDict(
        env_prefix="ORACLE_", case_sensitive=False, extra="ignore", validate_default=True
    )

    # --- chain
    rpc_url: str = "http://127.0.0.1:8545"
    """JSON-RPC endpoint of an Ethereum node."""
    rpc_timeout_s: float = Field(default=10.0, gt=0)
    market: str = ""
    """Address of the ComputeMarket contract (required by `run` and `settle`, unless
    `deployment` names a network whose deployments file records it)."""
    deployment: str = ""
    """A network key (``ethereum-sepolia``, ``ethereum-local``): with no `market` set, the
    ComputeMarket address (and, with no `start_block` set, its deploy block) is read from
    ``deployments/<deployment>.json``, where ``ape run market deploy`` recorded it."""
    start_block: int = Field(default=0, ge=0)
    """First block to read when the database has no cursor yet (the market's deploy block)."""
    confirmations: int = Field(default=2, ge=0)
    """Blocks on top of a log's block before the oracle acts on it."""
    poll_interval_s: float = Field(default=1.0, gt=0)
    block_range: int = Field(default=500, ge=1)
    """Most blocks per eth_getLogs query."""
    abi_path: Path = DEFAULT_ABI_PATH
    """Ape's build manifest (``.build/__local__.json``); the market ABI is read from it."""

    # --- keys
    keystore: Path | None = None
    """Encrypted JSON keystore (eth-account / ape ``~/.ape/accounts/<alias>.json``)."""
    password_env: str = "ORACLE_KEYSTORE_PASSWORD"
    """Name of the environment variable holding the keystore password."""

    # --- storage and HTTP
    database_url: str = "sqlite:///oracle.sqlite"
    """SQLAlchemy URL: SQLite by default; PostgreSQL as ``postgresql+psycopg://...``."""
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8700, ge=0, le=65535)
    """0 picks a free port (written to the log line ``http_started``)."""

    # --- m-of-n
    peers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Base URLs of the other oracles (comma-separated in the environment)."""
    peer_timeout_s: float = Field(default=3.0, gt=0)
    transmit: bool = True
    """Whether this oracle sends settlements once it holds a quorum (any party may)."""
    transmit_backup_delay_s: float = Field(default=4.0, ge=0)
    """A quorum signer that is not the job's designated transmitter waits this long per rank
    before sending the settlement itself (0: everyone sends at once)."""
    upkeep: bool = True
    """Whether this oracle (when it transmits) also makes the calls anyone may make to keep
    jobs moving: `fixChallengeSeed` when an unsettled job's seed block is `seed_fix_after_blocks`
    old (before the EIP-2935 window of 8,191 blocks loses it: a lost seed can only lapse),
    and `expireJob` when a job's verdict deadline passed unsettled (the client gets its
    payment back, the provider its collateral) or nobody accepted or delivered it in time.
    Oracles take turns as they do for settlements."""
    seed_fix_after_blocks: int = Field(default=4096, ge=1, le=8000)
    """Age (in blocks) of an unsettled job's seed block at which upkeep stores its seed."""
    batch_max: int = Field(default=16, ge=1)
    """Most jobs per settleBatch transaction (1 disables batching)."""
    batch_wait_s: float = Field(default=0.0, ge=0)
    """How long a ready job may wait for others still being verified, to share a batch
    (0: settle at once; jobs ready in the same tick are batched anyway)."""

    # --- verification
    verify_workers: int = Field(default=1, ge=1)
    verify_timeout_s: float = Field(default=300.0, gt=0)
    """Wall-clock bound on one verification (fetches and re-execution); killed past it."""
    verify_memory_mb: int = Field(default=4096, ge=64)
    """Address-space bound (RLIMIT_AS) of a verification worker."""
    fetch_timeout_s: float = Field(default=10.0, gt=0)
    fetch_retries: int = Field(default=2, ge=0)
    retry_backoff_s: float = Field(default=2.0, gt=0)
    """First pause before verifying again after a transient failure; doubles, capped at 60s."""
    give_up_margin_s: int = Field(default=300, ge=0)
    """A job still failing only for transient reasons this close to its verdict deadline is
    rejected (the provider did not serve its bundle in time)."""
    max_verify_attempts: int = Field(default=5, ge=1)
    """Attempts after which a job whose verification keeps crashing is left to lapse."""

    # --- transactions
    stuck_after_blocks: int = Field(default=3, ge=1)
    """Blocks without a receipt after which a transaction is replaced with a higher fee."""
    fee_bump_pct: int = Field(default=25, ge=11)
    """Fee increase of a replacement (nodes require at least 10%)."""
    priority_fee_gwei: float = Field(default=1.0, ge=0)
    max_fee_gwei: float = Field(default=500.0, gt=0)
    """Hard cap on maxFeePerGas."""

    # --- logging and testing
    log_level: str = "INFO"
    crash_at: str | None = None
    """Fault injection for tests: one of CRASH_POINTS; never set it in production."""
    crash_probability: float = Field(default=1.0, ge=0, le=1)

    @field_validator("peers", mode="before")
    @classmethod
    def _split_peers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return [str(part).strip().rstrip("/") for part in value if str(part).strip()]
        return value

    @field_validator("market")
    @classmethod
    def _checksum_market(cls, value: str) -> str:
        if not value:
            return value
        if not is_address(value):
            raise ValueError(f"not an address: {value!r}")
        return to_checksum_address(value)

    @model_validator(mode="after")
    def _market_from_deployment(self) -> OracleSettings:
        if self.market or not self.deployment:
            return self
        from neurotoken.chain import deployments

        record = deployments.load(self.deployment).get("ComputeMarket")
        if record is None:
            path = deployments.deployments_dir() / f"{self.deployment}.json"
            raise ValueError(
                f"no ComputeMarket recorded for '{self.deployment}' in {path}: deploy it "
                "with `ape run market deploy`, or set ORACLE_MARKET"
            )
        self.market = self._checksum_market(str(record["address"]))
        if self.start_block == 0 and "block" in record:
            self.start_block = int(record["block"])
        return self

    @field_validator("keystore", "abi_path", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("crash_at")
    @classmethod
    def _known_crash_point(cls, value: str | None) -> str | None:
        if value and value not in CRASH_POINTS:
            raise ValueError(f"crash_at must be one of {CRASH_POINTS}")
        return value or None

    @property
    def dry_run(self) -> bool:
        """No key: verify and log, sign nothing, send nothing."""
        return self.keystore is None

    @property
    def http_bind(self) -> str:
        return f"{self.http_host}:{self.http_port}"

    def redacted(self) -> dict[str, Any]:
        """The settings for a log line: the database password hidden, the RPC URL cut to its
        origin (API keys live in its path), keys never held here."""
        data = self.model_dump(mode="json")
        data["database_url"] = hide_password(self.database_url)
        data["rpc_url"] = url_origin(self.rpc_url)
        return data


def load_settings(config_file: Path | None = None, **overrides: Any) -> OracleSettings:
    """Settings from the environment, over `config_file` (env format) if given, under
    explicit `overrides` (command-line options)."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    if config_file is not None:
        return OracleSettings(_env_file=str(config_file), **clean)  # type: ignore[call-arg]
    return OracleSettings(**clean)
