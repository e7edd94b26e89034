"""Erasure of one person everywhere leadstream keeps data about them (`leadstream forget`).

A person is found by lead id, or by e-mail through the keyed e-mail hash that
ingest stored (the address itself is never stored). For each of their lead ids:

- ClickHouse: every MergeTree table with a ``lead_id`` column loses the lead's rows
  (``ALTER TABLE … DELETE`` with ``mutations_sync = 2``, so the parts are rewritten
  before the call returns), and so do dead-letter rows whose payload names the lead
  or the e-mail hash;
- Redis: engagement counters, the feature snapshot, the pending-label entry, parked
  outcomes, learner and label markers, the dedup keys of the lead's events, and any
  other key that ends in one of the lead's or its events' ids;
- Kafka: a tombstone (the lead id as key, no value) on each keyed topic leadstream
  produces (``leads.scored``, ``training.examples``), so compaction drops the lead's
  messages and consumers that keep the latest value per key delete it.

Each erasure is recorded in the ``erasures`` table with the subject as a keyed hash only.

Not erased: the raw input topics (the sources' own data; their retention applies),
the rollups (counts per day and campaign, no lead ids) and what the online model
learned from the lead's example (one example among thousands in its weights).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from clickhouse_connect.driver.client import Client
from redis.asyncio import Redis

from streaming.pii import keyed_hash, normalise_pii

log = structlog.get_logger(__name__)

#: Produces one message; ``None`` as value is a tombstone.
TombstoneSender = Callable[[str, bytes, None], Awaitable[Any]]

# Per-lead Redis keys (see sinks/redis_state.py), after "<prefix>:".
_ERASURE_COLUMNS = [
    "erasure_id", "requested_at", "subject_kind", "subject_hash", "leads", "rows_deleted",
    "redis_keys_deleted", "tombstones",
]  # fmt: skip
_LEAD_KEYS: tuple[str, ...] = ("eng", "snap", "settled", "early", "learned", "learned:revenue")


@dataclass
class Erasure:
    """What one erasure removed (no personal data)."""

    erasure_id: str
    subject_kind: str
    subject_hash: str
    lead_ids: list[str]
    rows_deleted: dict[str, int] = field(default_factory=dict)
    redis_keys_deleted: int = 0
    tombstones: int = 0

    @property
    def rows_total(self) -> int:
        """Rows deleted over every table."""
        return sum(self.rows_deleted.values())


def email_hash(email: str, key: bytes) -> str:
    """The keyed hash ingest stores for an e-mail address (normalised first).

    >>> email_hash(" Ann.Lee@Acme.IO ", b"k" * 16) == email_hash("ann.lee@acme.io", b"k" * 16)
    True
    """
    return keyed_hash(key, normalise_pii("email", email))


class Forgetter:
    """Erase people from ClickHouse, Redis and the keyed topics.

    Parameters
    ----------
    clickhouse
        A client on the deployment's ClickHouse (calls are synchronous).
    database
        The ClickHouse database.
    redis
        An asyncio Redis client.
    prefix
        The Redis key prefix of the deployment.
    send
        Produces a tombstone: ``send(topic, key, None)``.
    keyed_topics
        Topics keyed by lead id that leadstream produces.
    pii_key
        The HMAC key personal data is hashed with.
    """

    def __init__(
        self,
        clickhouse: Client,
        database: str,
        redis: Redis,
        prefix: str,
        send: TombstoneSender,
        keyed_topics: Sequence[str],
        pii_key: bytes,
    ) -> None:
        self.clickhouse = clickhouse
        self.database = database
        self.redis = redis
        self.prefix = prefix
        self.send = send
        self.keyed_topics = tuple(keyed_topics)
        self.pii_key = pii_key

    def lead_ids_for_email(self, email: str) -> list[str]:
        """Every lead id whose lead events carried this e-mail address."""
        rows = self._query(
            "SELECT DISTINCT lead_id FROM {db}.leads WHERE email_hash = {h:String} ORDER BY lead_id",
            h=email_hash(email, self.pii_key),
        )
        return [str(r[0]) for r in rows]

    async def forget_email(self, email: str) -> Erasure:
        """Erase every lead that used this e-mail address."""
        digest = email_hash(email, self.pii_key)
        return await self._forget("email", digest, self.lead_ids_for_email(email), digest)

    async def forget_lead(self, lead_id: str) -> Erasure:
        """Erase one lead by id."""
        return await self._forget("lead_id", keyed_hash(self.pii_key, lead_id), [lead_id], None)

    async def _forget(
        self, kind: str, subject_hash: str, lead_ids: list[str], mail_hash: str | None
    ) -> Erasure:
        erasure = Erasure(uuid.uuid4().hex, kind, subject_hash, lead_ids)
        if lead_ids:
            event_ids = self._event_ids(lead_ids)
            erasure.rows_deleted = self._delete_rows(lead_ids, mail_hash)
            erasure.redis_keys_deleted = await self._delete_state(lead_ids, event_ids)
            erasure.tombstones = await self._tombstones(lead_ids)
        self._record(erasure)
        log.info(
            "forget.done", erasure_id=erasure.erasure_id, subject=kind, leads=len(lead_ids),
            rows=erasure.rows_total, redis_keys=erasure.redis_keys_deleted,
            tombstones=erasure.tombstones,
        )  # fmt: skip
        return erasure

    # -- ClickHouse -----------------------------------------------------------------

    def lead_tables(self) -> list[tuple[str, bool]]:
        """(table, has an event_id column) for every MergeTree table with a lead_id column."""
        rows = self._query(
            "SELECT c.table, countIf(c.name = 'event_id') > 0 FROM system.columns AS c"
            " INNER JOIN system.tables AS t ON t.database = c.database AND t.name = c.table"
            " WHERE c.database = {d:String} AND t.engine LIKE '%MergeTree'"
            " AND c.name IN ('lead_id', 'event_id')"
            " GROUP BY c.table HAVING countIf(c.name = 'lead_id') > 0 ORDER BY c.table",
            d=self.database,
        )
        return [(str(t), bool(e)) for t, e in rows]

    def _event_ids(self, lead_ids: list[str]) -> list[str]:
        ids: set[str] = set()
        for table, has_event_id in self.lead_tables():
            if has_event_id:
                rows = self._query(
                    f"SELECT DISTINCT event_id FROM {{db}}.{table}"  # noqa: S608 - a table name from system.tables
                    " WHERE lead_id IN {ids:Array(String)}",
                    ids=lead_ids,
                )
                ids.update(str(r[0]) for r in rows)
        return sorted(ids)

    def _delete_rows(self, lead_ids: list[str], mail_hash: str | None) -> dict[str, int]:
        deleted: dict[str, int] = {}
        conditions = {table: "lead_id IN {ids:Array(String)}" for table, _ in self.lead_tables()}
        # Dead letters keep the (de-identified) payload: it may still name the lead.
        conditions["rejected_events"] = (
            "JSONExtractString(payload, 'lead_id') IN {ids:Array(String)}"
            " OR JSONExtractString(payload, 'email_hash') = {h:String}"
        )
        for table, where in conditions.items():
            params = {"ids": lead_ids, "h": mail_hash or ""}
            count = f"SELECT count() FROM {{db}}.{table} WHERE {where}"  # noqa: S608 - names from system.tables
            n = int(self._query(count, **params)[0][0])
            if n:
                self.clickhouse.command(
                    f"ALTER TABLE {self.database}.{table} DELETE WHERE {where}"
                    " SETTINGS mutations_sync = 2",
                    parameters=params,
                )
            deleted[table] = n
        return deleted

    def _record(self, erasure: Erasure) -> None:
        row = [
            erasure.erasure_id, datetime.now(UTC), erasure.subject_kind, erasure.subject_hash,
            len(erasure.lead_ids), orjson.dumps(erasure.rows_deleted).decode(),
            erasure.redis_keys_deleted, erasure.tombstones,
        ]  # fmt: skip
        self.clickhouse.insert(f"{self.database}.erasures", [row], column_names=_ERASURE_COLUMNS)

    def _query(self, sql: str, **params: Any) -> list[Any]:
        sql = sql.replace("{db}", self.database)
        return list(self.clickhouse.query(sql, parameters=params).result_rows)

    # -- Redis and Kafka ------------------------------------------------------------

    async def _delete_state(self, lead_ids: list[str], event_ids: list[str]) -> int:
        """Delete the known per-lead keys and every other key ending in a lead or event id.

        The scan finds keys that other parts of leadstream keep per lead (anomaly
        state, revenue markers…) without this module having to know them.
        """
        suffixes = tuple(f":{i}" for i in (*lead_ids, *event_ids))
        keys = {f"{self.prefix}:{part}:{lid}" for lid in lead_ids for part in _LEAD_KEYS}
        keys |= {f"{self.prefix}:dedup:{eid}" for eid in event_ids}
        async for raw in self.redis.scan_iter(match=f"{self.prefix}:*", count=1000):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            if key.endswith(suffixes):
                keys.add(key)
        ordered = sorted(keys)
        async with self.redis.pipeline(transaction=True) as pipe:
            for start in range(0, len(ordered), 1000):
                pipe.delete(*ordered[start : start + 1000])
            pipe.zrem(f"{self.prefix}:pending", *lead_ids)
            results = await pipe.execute()
        return int(sum(results[:-1]))

    async def _tombstones(self, lead_ids: list[str]) -> int:
        sent = [
            await self.send(topic, lid.encode(), None)
            for topic in self.keyed_topics
            for lid in lead_ids
        ]
        return len(sent)
