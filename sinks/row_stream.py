"""Rows on their way to ClickHouse through Kafka: encoded by the stream, decoded by the sink.

A chDB (or ClickHouse) insert has a large fixed cost here: the event tables feed
materialized views (daily, hourly and funnel rollups, lead facts), so every insert
writes a part into each of them. Measured with chDB: about 55 ms for an insert of 10 or
of 1,000 lead rows, 5 ms into a table without views. Inserting once per consumer batch
(tens of milliseconds of events) would spend most of the worker's time there and put it
on the scoring latency. So the stream workers do not insert: they produce what
ClickHouse should hold, and the sink (agents/sink.py) inserts it in large batches and
commits only after the insert. Scored leads and rejections already travel on their own
topics (``leads.scored``, ``deadletter``); validated events go to ``events.valid``, each
message one row: ``[table, [column values…]]``.

A process that does not own the store (a stream worker, a learner of its own, see
streaming/roles.py) sends its other tables' rows the same way (:class:`TopicTableSink`):
training examples, model metrics and promotions, anomalies. Every one of those tables
collapses a repeated row (ReplacingMergeTree on the row's own key), so a replay is harmless.

JSON loses Python's types on the way, so the sink turns the temporal and decimal
columns back (:func:`decode`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import orjson

from sinks.rows import COLUMNS, Row, mapping_row
from streaming.codec import dumps

__all__ = ["ROLES", "TopicRows", "TopicTableSink", "decode", "encode_valid"]

#: What each topic carries on its way to ClickHouse.
ROLES = ("valid", "scored", "deadletter")


def _decimal(v: Any) -> Decimal | None:
    return None if v is None else Decimal(str(v))


def _datetime(v: Any) -> datetime | None:
    return None if v is None else datetime.fromisoformat(v)


def _date(v: Any) -> date | None:
    return None if v is None else date.fromisoformat(v)


#: Columns JSON cannot carry as they are, by table: (column index, converter).
_TYPED: dict[str, dict[str, Callable[[Any], Any]]] = {
    "leads": {"occurred_at": _datetime, "ingested_at": _datetime},
    "touchpoints": {"occurred_at": _datetime, "ingested_at": _datetime},
    "conversions": {"occurred_at": _datetime, "ingested_at": _datetime, "revenue": _decimal},
    "spend": {"date": _date, "amount": _decimal, "occurred_at": _datetime,
              "ingested_at": _datetime},
    "scored_leads": {"occurred_at": _datetime, "scored_at": _datetime},
    "rejected_events": {"received_at": _datetime},
    "training_examples": {"scored_at": _datetime, "labelled_at": _datetime},
    "anomalies": {"window_start": _datetime, "window_end": _datetime, "detected_at": _datetime},
    "model_metrics": {"recorded_at": _datetime},
    "model_promotions": {"at": _datetime},
}  # fmt: skip
#: Tables whose rows travel on ``events.valid``: everything but scored leads and rejections,
#: which have topics of their own.
_VALID = frozenset(_TYPED) - {"scored_leads", "rejected_events"}
#: The key of each table's messages on ``events.valid`` (its rows' partitioning).
_KEY = {"spend": "campaign_id", "anomalies": "series", "model_metrics": "model_name",
        "model_promotions": "promotion_id"}  # fmt: skip
_AT: dict[str, list[tuple[int, Callable[[Any], Any]]]] = {
    table: [(COLUMNS[table].index(name), fn) for name, fn in typed.items()]
    for table, typed in _TYPED.items()
}
_REASONS_AT = COLUMNS["scored_leads"].index("reasons")


def encode_valid(table: str, row: Row) -> bytes:
    """The ``events.valid`` message for one row of an event table.

    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 5, tzinfo=UTC)
    >>> encode_valid("touchpoints", ["e1", "page_view", "L1", t, t, "ads", "", "{}"])
    b'["touchpoints",["e1","page_view","L1","2026-01-05T00:00:00+00:00","2026-01-05T00:00:00+00:00","ads","","{}"]]'
    """
    return dumps([table, row])


def decode(role: str, value: bytes) -> tuple[str, Row]:
    """The table and the row one message of ``role``'s topic becomes.

    Raises ``ValueError`` (or ``KeyError``) for a message that is not what the role
    carries; the sink counts and skips it.

    Examples
    --------
    >>> table, row = decode("valid", encode_valid("spend", ["s1", "c1", "ads", "2026-01-05",
    ...     "12.50", "USD", "2026-01-05T00:00:00Z", "2026-01-05T00:00:00Z"]))
    >>> table, row[3], row[4], row[6].isoformat()
    ('spend', datetime.date(2026, 1, 5), Decimal('12.50'), '2026-01-05T00:00:00+00:00')
    >>> decode("deadletter", b'{"reason": "r", "reason_code": "c", "source_topic": "t",'
    ...     b' "partition": 2, "offset": 7, "received_at": "2026-01-05T00:00:00Z",'
    ...     b' "payload_sha256": "00", "payload": "{}"}')[1][:3]
    ['t', 2, 7]
    """
    decoded = orjson.loads(value)
    if role == "valid":
        table, row = decoded
        if table not in _VALID or len(row) != len(COLUMNS[table]):
            raise ValueError(f"not a row of a table the stream writes: {str(decoded)[:100]}")
    elif role == "scored":
        table = "scored_leads"
        row = mapping_row(table, decoded)
        row[_REASONS_AT] = orjson.dumps(decoded.get("reasons") or []).decode()
    elif role == "deadletter":
        table = "rejected_events"
        row = mapping_row(table, _rejected(decoded))
    else:
        raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
    for i, convert in _AT[table]:
        row[i] = convert(row[i])
    return table, row


def _rejected(envelope: Mapping[str, Any]) -> dict[str, Any]:
    return {**envelope, "source_partition": envelope["partition"],
            "source_offset": envelope["offset"]}  # fmt: skip


class _Send(Protocol):
    async def __call__(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]: ...


class TopicRows:
    """Rows for ClickHouse produced to ``events.valid``, for the sink to insert.

    Scored leads and rejections are not produced again: the sink reads them from
    ``leads.scored`` and ``deadletter``, where the pipeline already put them. The
    returned deliveries are awaited with the batch's other messages, before its commit.
    """

    def __init__(self, send: _Send, topic: str) -> None:
        self.send = send
        self.topic = topic

    async def write(self, table: str, rows: Sequence[Row]) -> list[Awaitable[Any]]:
        """Queue ``rows`` of an event table; scored leads and rejections need nothing."""
        if table in ("scored_leads", "rejected_events") or not rows:
            return []
        return [
            await self.send(self.topic, _key(table, row), encode_valid(table, row)) for row in rows
        ]


def _key(table: str, row: Row) -> bytes:
    return str(row[COLUMNS[table].index(_KEY.get(table, "lead_id"))]).encode()


class TopicTableSink:
    """One table's rows produced to ``events.valid`` for the store's owner to insert.

    The :class:`sinks.rows.TableSink` of a process without the store: ``write`` returns
    once the broker has acknowledged every row, so a caller that commits afterwards
    loses nothing.
    """

    def __init__(self, table: str, send: _Send, topic: str) -> None:
        if table not in _VALID:
            raise ValueError(f"table {table!r} does not travel on {topic}")
        self.table = table
        self.send = send
        self.topic = topic

    async def write(self, rows: Sequence[Row]) -> None:
        """Produce ``rows`` and wait for their acknowledgements."""
        sent = [await self.send(self.topic, _key(self.table, r), encode_valid(self.table, r))
                for r in rows]  # fmt: skip
        for delivery in sent:
            await delivery

    @classmethod
    def every(cls, send: _Send, topic: str) -> dict[str, TopicTableSink]:
        """A sink for each table that travels on ``topic``."""
        return {table: cls(table, send, topic) for table in sorted(_VALID)}
