"""Faust's own ceiling: an agent that does nothing with its batches (run as a child process).

Usage: python -m cli._bench_faust_floor BROKER_URL TOPIC EVENTS RESULT_FILE
(writes the events per second to RESULT_FILE).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import faust

from streaming.runtime import request_stop


def main(broker: str, topic_name: str, events: int, result: Path) -> None:
    app = faust.App(
        f"floor-{topic_name}", broker=broker, store="memory://", datadir=tempfile.mkdtemp(),
        topic_partitions=4, consumer_auto_offset_reset="earliest", broker_session_timeout=2.0,
        broker_heartbeat_interval=0.5, web_enabled=False,
    )  # fmt: skip
    topic = app.topic(
        topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    state = {"n": 0, "t0": 0.0}

    @app.agent(topic)
    async def empty(stream: faust.StreamT[bytes]) -> None:
        # faust-streaming's StreamT protocol lacks take_events; Stream has it.
        async for batch in stream.take_events(2000, within=0.2):  # type: ignore[attr-defined]
            state["t0"] = state["t0"] or time.perf_counter()
            state["n"] += len(batch)
            if state["n"] >= events:
                result.write_text(f"{events / (time.perf_counter() - state['t0']):.0f}")
                request_stop()

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
