"""The store relay, end to end: a separate process owns a chDB store, this one reads it.

The owner (:mod:`tests.sinks._relay_owner`) opens chDB, runs the migrations, loads
the dashboard tests' events, starts the relay and keeps inserting under its lock.
This process never opens chDB (one engine per process would tie the rest of the
session to this store): it calls :func:`sinks.clickhouse.connect`, gets
clickhouse-connect's HTTP client to the relay, and runs the project's own reads,
binds, DataFrame and Arrow queries, inserts and failing queries through it.
"""

from __future__ import annotations

import http.client
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver._backend.chdb_backend import CHDB_TRANSPORT_SETTINGS
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from config.settings import ClickHouseSettings
from reporting.queries import Analytics
from sinks._relay_protocol import TRANSPORT_PARAMS
from sinks.clickhouse import connect
from sinks.store_relay import RELAY_FILE, find_relay
from tests.sinks import _views

ROOT = Path(__file__).resolve().parents[2]
TICKS = f"{_views.DB}.relay_ticks"


@dataclass
class Owner:
    """A running owner process and what it saw before starting its relay."""

    proc: subprocess.Popen[str]
    path: Path
    seen: dict[str, Any]

    def stop(self) -> dict[str, Any]:
        """Ask the owner to stop its relay and exit; what it then sees in the store."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert self.proc.wait(timeout=60) == 0
        return dict(json.loads(line))


def _start_owner(tmp: Path, load: bool) -> Owner:
    path, out = tmp / "chdb", tmp / "seen.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (tmp / "owner.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.sinks._relay_owner", str(path), str(out),
         *(["--load"] if load else [])],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    log.close()  # the child has its own descriptor
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        tail = (tmp / "owner.log").read_text()[-2000:]
        pytest.fail(f"the owner did not start its relay (exit {proc.wait()}): {line!r}\n{tail}")
    return Owner(proc, path, json.loads(out.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Owner]:
    """An owner with the dashboard data loaded, inserting ticks, for the whole module."""
    running = _start_owner(tmp_path_factory.mktemp("relay"), load=True)
    yield running
    if running.proc.poll() is None:
        running.stop()


@pytest.fixture(scope="module")
def client(owner: Owner) -> Iterator[Client]:
    """What `connect` gives this process for the held store."""
    c = connect(ClickHouseSettings(chdb_path=owner.path, database=_views.DB))
    yield c
    c.close()


def _same(a: Any, b: Any) -> bool:
    """Equal, floats to a cent: ClickHouse adds floats in parallel, in no fixed order, so a
    sum rounded to cents can land a cent apart between two runs of one query (7162.995)."""
    if isinstance(a, float) and isinstance(b, float | int):
        return abs(a - b) <= 0.0101
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_connect_to_a_held_store_reaches_the_owners_relay(owner: Owner, client: Client) -> None:
    relay = find_relay(owner.path)
    assert relay is not None and relay.pid == owner.proc.pid
    assert str(client.uri) == relay.url  # clickhouse-connect's HTTP client, not chDB
    assert client.server_version and client.command("SELECT 1") == 1


def test_the_dashboard_and_report_read_through_the_relay_what_the_owner_reads(
    owner: Owner, client: Client
) -> None:
    relayed = json.loads(json.dumps(_views.snapshot(client, str(owner.path))))
    expected = {k: v for k, v in owner.seen.items() if k != "direct_select_1_ms"}
    assert relayed.keys() == expected.keys()
    for name in expected:
        assert _same(relayed[name], expected[name]), name
    assert relayed["kpis"]["current"]["leads"] > 1000


def test_concurrent_readers_get_the_same_answers_while_the_owner_inserts(
    owner: Owner, client: Client
) -> None:
    once = _views.jsonable(Analytics(client, _views.DB).kpis(_views.FILTERS))
    answers: list[Any] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(3):
                analytics = Analytics(client, _views.DB)
                answers.append(_views.jsonable(analytics.kpis(_views.FILTERS)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(answers) == 12 and all(_same(a, once) for a in answers)


def test_server_side_binds_of_every_kind(client: Client) -> None:
    text = "it's\ta \\ tab, 'quote' and ünïcode"
    row = client.query(
        "SELECT {n:UInt32} + 1, {s:String}, {d:Date}, {xs:Array(String)}, {t:DateTime64(3, 'UTC')}",
        parameters={"n": 41, "s": text, "d": date(2026, 1, 5), "xs": ["a", "b'c"],
                    "t": datetime(2026, 1, 5, 12, 30, tzinfo=UTC)},
    ).result_rows[0]  # fmt: skip
    # A UTC column comes back naive, as from chDB in-process (clickhouse-connect's rule).
    assert row == (42, text, date(2026, 1, 5), ["a", "b'c"], datetime(2026, 1, 5, 12, 30))
    # Long binds go as a multipart form instead of URL parameters.
    long = "x" * 50_000
    assert client.query("SELECT length({s:String})", parameters={"s": long}).result_rows == [
        (50_000,)
    ]
    leads = client.query(
        f"SELECT count() FROM {_views.DB}.leads WHERE toDate(occurred_at) BETWEEN {{a:Date}} AND {{b:Date}}",
        parameters={"a": _views.FILTERS.start, "b": _views.FILTERS.end},
    ).result_rows[0][0]
    assert leads > 1000


def test_dataframes_and_arrow_tables_match_the_rows(client: Client) -> None:
    sql = f"SELECT lead_id, channel, occurred_at FROM {_views.DB}.leads ORDER BY lead_id LIMIT 200"
    rows = client.query(sql).result_rows
    df = client.query_df(sql)
    table = client.query_arrow(sql)
    assert len(rows) == len(df) == table.num_rows == 200
    assert list(df["lead_id"]) == [r[0] for r in rows] == table.column("lead_id").to_pylist()
    assert list(df["channel"]) == [r[1] for r in rows]


def test_an_insert_through_the_relay_lands_in_the_owners_store(tmp_path: Path) -> None:
    owner = _start_owner(tmp_path, load=False)
    try:
        relay_file = owner.path / RELAY_FILE
        assert stat.S_IMODE(relay_file.stat().st_mode) == 0o600
        assert set(json.loads(relay_file.read_text())) == {"url", "user", "password", "pid"}
        c = connect(ClickHouseSettings(chdb_path=owner.path, database=_views.DB))
        now = datetime.now(UTC)
        summary = c.insert(
            TICKS, [[1_000_000 + i, now] for i in range(3)], column_names=["n", "at"]
        )
        assert summary.written_rows == 3  # from the X-ClickHouse-Summary header
        # A client that compresses its inserts (clickhouse-connect's default) is read too.
        a = find_relay(owner.path)
        assert a is not None
        zipped = clickhouse_connect.get_client(host=a.host, port=a.port, username=a.user,
                                               password=a.password)  # fmt: skip
        zipped.insert(TICKS, [[1_000_003, now]], column_names=["n", "at"])
        zipped.close()
        got = c.query(f"SELECT n FROM {TICKS} WHERE n >= 1000000 ORDER BY n").result_rows
        assert got == [(1_000_000,), (1_000_001,), (1_000_002,), (1_000_003,)]
        c.close()
    finally:
        seen = owner.stop()
    assert seen["relayed"] == [1_000_000, 1_000_001, 1_000_002, 1_000_003]
    assert seen["ticks"] == seen["inserted_by_owner"] + 4
    assert not relay_file.exists()  # removed when the relay stopped
    assert find_relay(owner.path) is None


def test_a_bad_query_is_clickhouse_connects_database_error_with_the_engines_message(
    client: Client,
) -> None:
    with pytest.raises(DatabaseError) as missing:
        client.query(f"SELECT * FROM {_views.DB}.no_such_table")
    assert missing.value.code == 60 and "UNKNOWN_TABLE" in str(missing.value)
    with pytest.raises(DatabaseError) as syntax:
        client.command("SELEC 1")
    assert syntax.value.code == 62 and "Syntax error" in str(syntax.value)
    with pytest.raises(DatabaseError) as garbage:
        client.raw_insert(TICKS, ["n"], insert_block=b"not native", fmt="Native")
    assert garbage.value.code in (32, 33)  # the engine could not read the rows
    assert client.command("SELECT 2") == 2  # the relay goes on


def test_a_wrong_or_missing_password_is_refused(owner: Owner) -> None:
    relay = find_relay(owner.path)
    assert relay is not None
    with pytest.raises(DatabaseError) as refused:
        clickhouse_connect.get_client(host=relay.host, port=relay.port, username=relay.user,
                                      password="not-the-password")  # fmt: skip
    assert refused.value.code == 516 and "AUTHENTICATION_FAILED" in str(refused.value)
    conn = http.client.HTTPConnection(relay.host, relay.port, timeout=10)
    conn.request("POST", "/", body=b"SELECT 1")
    response = conn.getresponse()
    assert (response.status, response.getheader("X-ClickHouse-Exception-Code")) == (401, "516")
    assert response.read().startswith(b"Code: 516. DB::Exception:")
    conn.close()


def test_a_stale_relay_file_is_ignored(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = {"url": "http://127.0.0.1:9", "user": "leadstream", "password": "x",
             "pid": int(dead.stdout)}  # fmt: skip
    (tmp_path / RELAY_FILE).write_text(json.dumps(stale))
    assert find_relay(tmp_path) is None
    # A live process that does not answer (this one, on a closed port) is no relay either.
    (tmp_path / RELAY_FILE).write_text(json.dumps({**stale, "pid": os.getpid()}))
    assert find_relay(tmp_path, timeout=1.0) is None
    (tmp_path / RELAY_FILE).write_text("{not json")
    assert find_relay(tmp_path) is None


def test_a_held_store_without_a_relay_still_says_how_to_fix_it(tmp_path: Path) -> None:
    path = tmp_path / "chdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, clickhouse_connect\n"
         f"c = clickhouse_connect.get_client(interface='chdb', path={str(path)!r})\n"
         "print('open', flush=True)\nsys.stdin.readline()"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
    try:
        # In a child process: a failed engine start must not happen in this one.
        out = subprocess.run(
            [sys.executable, "-c", "from config.settings import ClickHouseSettings\n"
             "from sinks.clickhouse import connect\nfrom sinks.exceptions import SinkError\n"
             f"try:\n    connect(ClickHouseSettings(chdb_path={str(path)!r}))\n"
             "except SinkError as e:\n    print(e)"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
            text=True, timeout=120, check=True,
        )  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    message = out.stdout.strip()
    assert len(message.splitlines()) == 1, message
    assert "run the store's owner with its relay (`leadstream worker`, which serves it)" in message


def test_the_relay_drops_every_setting_clickhouse_connect_treats_as_transport() -> None:
    assert set(CHDB_TRANSPORT_SETTINGS) <= TRANSPORT_PARAMS


def test_overhead_of_a_small_query_through_the_relay(owner: Owner, client: Client) -> None:
    """Measured, not asserted: printed to the test log (``-s`` or ``-rP`` shows it)."""
    relayed = _views.select_1_ms(client)
    direct = owner.seen["direct_select_1_ms"]
    print(f"\nSELECT 1: {direct:.3f} ms in the owner (chDB), {relayed:.3f} ms through the relay"
          f" (+{relayed - direct:.3f} ms per query)")  # fmt: skip
    assert relayed > 0


def test_settings_last_for_their_request_only(owner: Owner, client: Client) -> None:
    default = client.command("SELECT getSetting('max_threads')")
    one = client.query("SELECT getSetting('max_threads')", settings={"max_threads": 1})
    assert one.result_rows == [(1,)]
    assert client.command("SELECT getSetting('max_threads')") == default
    # Without a session, SET and USE are a no-op beyond their own request, as over HTTP.
    client.command("SET max_threads = 1")
    client.command(f"USE {_views.DB}")
    assert client.command("SELECT getSetting('max_threads')") == default
    assert client.command("SELECT currentDatabase()") == "default"


def test_a_client_with_a_database_reads_unqualified_names(owner: Owner) -> None:
    relay = find_relay(owner.path)
    assert relay is not None
    c = clickhouse_connect.get_client(host=relay.host, port=relay.port, username=relay.user,
                                      password=relay.password, database=_views.DB)  # fmt: skip
    try:
        assert c.command("SELECT currentDatabase()") == _views.DB
        assert c.query("SELECT count() FROM leads").result_rows[0][0] > 1000
        csv = c.raw_query("SELECT 1 AS a, 'x' AS b", fmt="CSVWithNames")
        assert csv == b'"a","b"\n1,"x"\n'
    finally:
        c.close()


def test_get_runs_reads_only(owner: Owner) -> None:
    relay = find_relay(owner.path)
    assert relay is not None
    auth = {"X-ClickHouse-User": relay.user, "X-ClickHouse-Key": relay.password}
    conn = http.client.HTTPConnection(relay.host, relay.port, timeout=10)
    try:
        conn.request("GET", "/?query=SELECT%2040%2B2", headers=auth)
        read = conn.getresponse()
        assert (read.status, read.read(), read.getheader("X-ClickHouse-Format")) == (
            200, b"42\n", "TabSeparated",
        )  # fmt: skip
        conn.request("GET", f"/?query=DROP%20TABLE%20{TICKS}", headers=auth)
        write = conn.getresponse()
        assert (write.status, write.getheader("X-ClickHouse-Exception-Code")) == (400, "164")
        write.read()
        conn.request("GET", "/ping")
        ping = conn.getresponse()
        assert (ping.status, ping.read()) == (200, b"Ok.\n")
    finally:
        conn.close()


def test_leadstream_report_runs_while_another_process_holds_the_store(
    owner: Owner, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSTREAM_")}
    env.update(PYTHONPATH=str(ROOT), COLUMNS="200", LEADSTREAM_CLICKHOUSE__CHDB_PATH=str(owner.path),
               LEADSTREAM_CLICKHOUSE__DATABASE=_views.DB, LEADSTREAM_LOG_LEVEL="debug")  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "report", "--format", "csv"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "clickhouse.via_relay" in out.stdout + out.stderr
    written = sorted(p.name for p in (tmp_path / "var" / "reports").rglob("*-kpis.csv"))
    assert len(written) == 1, out.stdout
