"""Settings, keystores, structured logs and the metrics text: the oracle's edges."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from neurotoken.chain.keystore import write_keystore
from oracle.errors import KeystoreError
from oracle.keys import load_key
from oracle.logs import JsonFormatter, event, get_logger
from oracle.metrics import Metrics, parse_text
from oracle.settings import OracleSettings, load_settings
from tests.oracle.helpers import oracle_cli

KEY = "0x" + "42" * 32
MARKET = "0x5fbdb2315678afecb367f032d93f642f64180aa3"


def test_settings__from_environment_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORACLE_MARKET", MARKET)
    monkeypatch.setenv("ORACLE_CONFIRMATIONS", "5")
    monkeypatch.setenv("ORACLE_PEERS", "http://a:8700/, http://b:8700")
    monkeypatch.setenv("ORACLE_DATABASE_URL", "postgresql+psycopg://oracle:s3cret@db/oracle")
    monkeypatch.setenv("ORACLE_RPC_URL", "https://u:p4ss@eth.example:8443/v3/api-key-123?k=2")
    s = OracleSettings()
    assert s.market == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert s.confirmations == 5
    assert s.peers == ["http://a:8700", "http://b:8700"]
    assert s.dry_run  # no keystore
    assert s.redacted()["database_url"] == "postgresql+psycopg://oracle:***@db/oracle"
    # an RPC URL's path and query hold API keys: only its origin is ever logged
    assert s.redacted()["rpc_url"] == "https://eth.example:8443"


def test_settings__market_from_deployments_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEUROTOKEN_DEPLOYMENTS_DIR", str(tmp_path))
    (tmp_path / "ethereum-sepolia.json").write_text(
        json.dumps({"ComputeMarket": {"address": MARKET, "block": 7_123_456}})
    )
    monkeypatch.setenv("ORACLE_DEPLOYMENT", "ethereum-sepolia")
    s = OracleSettings()
    assert s.market == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert s.start_block == 7_123_456
    # what is set explicitly wins over the record
    other = "0x" + "ab" * 20
    s = OracleSettings(market=other, start_block=5)
    assert s.market.lower() == other and s.start_block == 5
    assert OracleSettings(start_block=9).start_block == 9


def test_settings__deployment_without_market__explains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEUROTOKEN_DEPLOYMENTS_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="no ComputeMarket recorded for 'ethereum-sepolia'"):
        OracleSettings(deployment="ethereum-sepolia")
    result = oracle_cli(
        "run", "--deployment=ethereum-holesky", env={"NEUROTOKEN_DEPLOYMENTS_DIR": str(tmp_path)}
    )
    assert result.returncode == 2
    assert "no ComputeMarket recorded for 'ethereum-holesky'" in result.stderr
    assert "ape run market deploy" in result.stderr


def test_settings__from_file_under_environment_and_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "oracle.env"
    config.write_text(f"ORACLE_MARKET={MARKET}\nORACLE_POLL_INTERVAL_S=3\nORACLE_HTTP_PORT=9000\n")
    monkeypatch.setenv("ORACLE_POLL_INTERVAL_S", "2")
    s = load_settings(config, http_port=9100)
    assert s.market.lower() == MARKET and s.poll_interval_s == 2 and s.http_port == 9100


@pytest.mark.parametrize(
    ("name", "value"),
    [("ORACLE_MARKET", "0x1234"), ("ORACLE_CONFIRMATIONS", "-1"), ("ORACLE_CRASH_AT", "lunch"),
     ("ORACLE_FEE_BUMP_PCT", "5")],
)  # fmt: skip
def test_settings__invalid_value__is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError):
        OracleSettings()


def test_keystore__round_trip_and_ape_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "oracle.json"
    write_keystore(path, KEY, "correct horse", iterations=1024)
    address = Account.from_key(KEY).address
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    doc = json.loads(path.read_text())
    assert doc["version"] == 3 and "crypto" in doc and doc["address"].lower() == address[2:].lower()
    monkeypatch.setenv("PW", "correct horse")
    key = load_key(path, "PW")
    assert key.address == address == Account.from_key(KEY).address
    assert KEY[2:] not in repr(key) and KEY[2:] not in str(key)


def test_keystore__wrong_or_missing_password__says_so_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "oracle.json"
    write_keystore(path, KEY, "right", iterations=1024)
    with pytest.raises(KeystoreError, match=r"\$PW, which is not set"):
        load_key(path, "PW")
    monkeypatch.setenv("PW", "hunter2-guess")
    with pytest.raises(KeystoreError, match="wrong password") as info:
        load_key(path, "PW")
    assert "hunter2" not in str(info.value)
    assert KEY[2:] not in str(info.value)
    with pytest.raises(KeystoreError, match="no keystore"):
        load_key(tmp_path / "absent.json", "PW")


def test_keystore_cli__writes_a_keystore_the_oracle_can_read(tmp_path: Path) -> None:
    out = tmp_path / "k.json"
    result = oracle_cli("keystore", str(out), "--key-env=K", "--password-env=P",
                        env={"K": KEY, "P": "pw"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["address"] == Account.from_key(KEY).address
    assert KEY[2:] not in result.stdout + result.stderr


def test_json_logs__one_object_per_line_with_fields() -> None:
    record_log = get_logger("test")
    formatter = JsonFormatter()
    captured: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(formatter.format(record))

    handler = Capture()
    record_log.addHandler(handler)
    record_log.setLevel(logging.INFO)
    try:
        event(record_log, "verified", job=7, root=b"\x01" * 32, reasons=["A", "B"], module="x")
    finally:
        record_log.removeHandler(handler)
    (line,) = captured
    doc = json.loads(line)
    assert doc["event"] == "verified" and doc["level"] == "info" and doc["job"] == 7
    assert doc["root"] == "0x" + "01" * 32 and doc["reasons"] == ["A", "B"]
    assert doc["module_"] == "x"  # a reserved LogRecord attribute is renamed, not lost


def test_metrics__prometheus_text_round_trips() -> None:
    m = Metrics()
    m.inc("oracle_reorgs_total", 2)
    m.set("oracle_head_lag_blocks", 3)
    for seconds in (0.2, 0.4, 7.0):
        m.observe_latency(seconds)
    text = m.render({"seen": 1, "settled": 4})
    assert "# TYPE oracle_verification_seconds histogram" in text
    values = parse_text(text)
    assert values['oracle_jobs{state="settled"}'] == 4
    assert values["oracle_reorgs_total"] == 2 and values["oracle_head_lag_blocks"] == 3
    assert values['oracle_verification_seconds_bucket{le="0.25"}'] == 1
    assert values['oracle_verification_seconds_bucket{le="10.0"}'] == 3
    assert values["oracle_verification_seconds_count"] == 3


SECRET = "Zq7pW3xKv"
RPC_KEY = "Hj4rT8mNc"


def leaks(stream: str, secret: str) -> bool:
    """Whether any 5 characters in a row of `secret` show in `stream` (error printers
    truncate long values: a secret's tail is still a leak)."""
    return any(secret[i : i + 5] in stream for i in range(len(secret) - 4))


@pytest.mark.parametrize(
    ("args", "env"),
    [
        # a model validator's error (a deployment with no record) beside a database password
        (["run", "--deployment=ethereum-holesky"], {}),
        (["status"], {"ORACLE_DEPLOYMENT": "ethereum-holesky"}),
        # a field's error (not an address) beside them
        (["run"], {"ORACLE_MARKET": "0x1234"}),
        # a type error on a number
        (["run"], {"ORACLE_POLL_INTERVAL_S": "often"}),
    ],
)
def test_bad_settings_beside_secrets__one_line__no_secret_in_any_stream(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    full_env = {
        "NEUROTOKEN_DEPLOYMENTS_DIR": str(tmp_path),
        "ORACLE_DATABASE_URL": f"postgresql://o:{SECRET}@db:5432/o",
        "ORACLE_RPC_URL": f"https://u:{RPC_KEY}@rpc.example/{RPC_KEY}",
        **env,
    }
    result = oracle_cli(*args, env=full_env)
    assert result.returncode == 2, result.stderr
    for stream in (result.stdout, result.stderr):
        assert not leaks(stream, SECRET) and not leaks(stream, RPC_KEY), stream
    assert "Traceback" not in result.stderr
    (reason,) = [line for line in result.stderr.splitlines() if "bad settings" in line]
    assert reason.strip()


def test_status__missing_sqlite_database__one_line_and_nothing_created(tmp_path: Path) -> None:
    database = tmp_path / "absent.sqlite"
    result = oracle_cli("status", f"--database-url=sqlite:///{database}")
    assert result.returncode == 1
    assert "no oracle database at" in result.stderr and "Traceback" not in result.stderr
    assert not database.exists()


def test_settle__unreachable_node__one_line_without_the_urls_secrets(tmp_path: Path) -> None:
    result = oracle_cli(
        "settle", "--job=1", "--peer=http://127.0.0.1:2", "--dry-run",
        f"--rpc-url=http://u:{SECRET}@127.0.0.1:1/{RPC_KEY}", f"--market={MARKET}",
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot reach the node at http://127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr
    for stream in (result.stdout, result.stderr):
        assert not leaks(stream, SECRET) and not leaks(stream, RPC_KEY)


def test_logs__urls_in_errors_cut_to_their_origin_passwords_masked_everywhere() -> None:
    import logging

    from oracle.logs import JsonFormatter

    def line(**fields: str) -> str:
        record = logging.LogRecord("oracle.test", logging.WARNING, "", 0, "event", None, None)
        record.__dict__.update(fields)
        return JsonFormatter().format(record)

    url = f"https://user:{SECRET}@rpc.example:8545/v3/{RPC_KEY}"
    out = line(error=f"ConnectionError: {url} refused")
    out += line(database_url=f"postgresql://o:{SECRET}@db/o")
    assert not leaks(out, SECRET) and not leaks(out, RPC_KEY), out
    assert "https://rpc.example:8545" in out and "postgresql://o:***@db/o" in out


def test_sigterm_while_waiting_for_the_node__clean_stop_no_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
    env.update({
        "ORACLE_MARKET": MARKET, "ORACLE_RPC_URL": "http://127.0.0.1:1",
        "ORACLE_DATABASE_URL": f"sqlite:///{tmp_path / 'oracle.sqlite'}", "ORACLE_HTTP_PORT": "0",
    })  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "oracle", "run"], env=env, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    lines = []
    for line in process.stderr:  # wait for the condition: it is retrying its node
        lines.append(line)
        if '"rpc_unavailable"' in line:
            break
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=60)
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert "Traceback" not in output and '"oracle_stopped"' in output


def test_metrics__exposition_parses_with_prometheus_client__instances_apart() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    first, second = Metrics(), Metrics()
    first.inc("oracle_reorgs_total", 3)
    first.set("oracle_head_block", 12)
    first.counters["oracle_transactions_replaced_total"] = 4
    first.observe_latency(0.3)
    second.inc("oracle_signatures_total")
    text = first.render({"settled": 2})
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # a counter's family drops `_total`, its sample keeps it: the names served are unchanged
    assert families["oracle_reorgs"].type == "counter"
    assert [(s.name, s.value) for s in families["oracle_reorgs"].samples] == [
        ("oracle_reorgs_total", 3)
    ]
    assert families["oracle_jobs"].type == "gauge"
    assert families["oracle_verification_seconds"].type == "histogram"
    assert not any(s.name.endswith("_created") for f in families.values() for s in f.samples)
    assert first.gauges["oracle_head_block"] == 12 and first.counters["oracle_reorgs_total"] == 3
    # a count kept elsewhere rises to the value given, and a lower one is a reset
    first.counters["oracle_transactions_replaced_total"] = 6
    assert first.counters["oracle_transactions_replaced_total"] == 6
    first.counters["oracle_transactions_replaced_total"] = 1
    assert first.counters["oracle_transactions_replaced_total"] == 1
    # two oracles in one process: each registry holds its own values only
    other = parse_text(second.render({}))
    assert other["oracle_reorgs_total"] == 0 and other["oracle_signatures_total"] == 1
    assert other["oracle_head_block"] == 0 and other["oracle_verification_seconds_count"] == 0
    assert not any(k.startswith("oracle_jobs{") for k in other)
    mine = parse_text(text)
    assert mine["oracle_signatures_total"] == 0 and mine['oracle_jobs{state="settled"}'] == 2
