"""Rows through Kafka: what a process without the store sends is what the sink inserts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from sinks.row_stream import TopicRows, TopicTableSink, decode
from sinks.rows import COLUMNS

T = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)

ROWS: dict[str, list[Any]] = {
    "training_examples": ["L1", 1, 0.25, 3, T, T, 1200.5],
    "model_metrics": ["logreg", "champion", 4, "overall", T, 100, 12, 0.8, 0.4, 0.1, 0.5,
                      0.6, 0.7, 0.65, 1.02, None, None, None],
    "model_promotions": ["p1", T, "promote", "logreg", "newton", 3, 4, "auto", "{}"],
    "anomalies": ["a1", "volume_drop", "leads|channel=ads", "channel", "ads", "leads", T, T,
                  3.0, 10.0, 8.0, 12.0, "high", "down", 0.0, "fewer leads", T],
}  # fmt: skip


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    async def __call__(self, topic: str, key: bytes | None, value: bytes) -> Any:
        self.sent.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.mark.parametrize("table", sorted(ROWS))
def test_a_learner_or_monitor_row_comes_back_as_it_left(table: str) -> None:
    assert len(ROWS[table]) == len(COLUMNS[table])
    send = Recorder()
    asyncio.run(TopicTableSink(table, send, "events.valid").write([ROWS[table]]))
    [(topic, key, value)] = send.sent
    assert topic == "events.valid" and key
    assert decode("valid", value) == (table, ROWS[table])


def test_every_table_but_the_stream_topics_has_a_topic_sink() -> None:
    sinks = TopicTableSink.every(Recorder(), "events.valid")
    assert set(sinks) == set(COLUMNS) - {"scored_leads", "rejected_events"}
    with pytest.raises(ValueError, match="does not travel"):
        TopicTableSink("scored_leads", Recorder(), "events.valid")


def test_scored_leads_and_rejections_are_not_sent_again() -> None:
    send = Recorder()
    rows = TopicRows(send, "events.valid")
    assert asyncio.run(rows.write("scored_leads", [["x"] * len(COLUMNS["scored_leads"])])) == []
    assert send.sent == []


def test_a_row_of_an_unknown_table_is_refused_by_the_sink() -> None:
    with pytest.raises(ValueError, match="not a row of a table"):
        decode("valid", b'["schema_migrations", [1, "x", "2026-01-01T00:00:00+00:00"]]')
