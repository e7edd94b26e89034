"""A store's owner for the relay tests, run as a separate process.

``python -m tests.sinks._relay_owner PATH OUT [--load]`` opens chDB in ``PATH``,
runs the migrations, with ``--load`` writes the dashboard tests' generated events
and saves what the views and the report show to ``OUT`` (as JSON), starts the
store relay, prints ``ready``, and then inserts a tick row every 50 ms under the
lock it shares with the relay, until a line arrives on standard input. It then
stops the relay and prints what it sees in the store as one JSON line.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import clickhouse_connect
import structlog

from sinks.clickhouse import migrate, start_relay
from tests.sinks import _views

TICKS = f"{_views.DB}.relay_ticks"


def main(path: str, out: str, load: bool) -> None:
    client = clickhouse_connect.get_client(interface="chdb", path=path)
    migrate(client, _views.DB)
    client.command(f"CREATE TABLE IF NOT EXISTS {TICKS} (n UInt64, at DateTime64(3, 'UTC')) "
                   "ENGINE = MergeTree ORDER BY n")  # fmt: skip
    seen: dict[str, object] = {}
    if load:
        _views.load(client)
        seen = _views.snapshot(client, path)
    seen["direct_select_1_ms"] = _views.select_1_ms(client)
    Path(out).write_text(json.dumps(seen), encoding="utf-8")
    lock = threading.Lock()
    relay = start_relay(client, lock, path)
    print("ready", flush=True)
    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    n = 0
    while not stop.wait(0.05):
        n += 1
        with lock:
            client.insert(TICKS, [[n, datetime.now(UTC)]], column_names=["n", "at"])
    relay.stop()
    rows = client.query(f"SELECT count() FROM {TICKS}").result_rows
    probes = client.query(f"SELECT n FROM {TICKS} WHERE n >= 1000000 ORDER BY n").result_rows
    client.close()
    print(json.dumps({"ticks": rows[0][0], "inserted_by_owner": n,
                      "relayed": [r[0] for r in probes]}), flush=True)  # fmt: skip


if __name__ == "__main__":
    # Standard output carries the handshake with the test; logs go to standard error.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    main(sys.argv[1], sys.argv[2], "--load" in sys.argv[3:])
