"""State that must survive a worker restart, kept in Redis.

- dedup keys per event_id (with an expiry);
- engagement counters per lead (touchpoints so far);
- the feature snapshot taken when a lead was scored, and a sorted set of leads
  still waiting for their label, by creation time;
- outcomes that arrived before their lead was scored;
- per-stream event-time watermarks (the conversion stream's drives the negative-label sweep).

Every multi-key change is a Lua script, so that a replayed batch changes
nothing twice. All calls are batched into one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

# One script call per batch: redis-py spends far more time packing a command
# than Redis spends running it, so per-event commands cap the worker's speed.

# ARGV: dedup ttl, engagement ttl, then (dedup key, engagement key, touch type) per event.
# Counts each touchpoint once per event_id, whatever the number of deliveries.
_TOUCH = """
local out = {}
for i = 3, #ARGV, 3 do
  if redis.call('SET', ARGV[i], 1, 'NX', 'EX', ARGV[1]) then
    redis.call('HINCRBY', ARGV[i + 1], ARGV[i + 2], 1)
    redis.call('EXPIRE', ARGV[i + 1], ARGV[2])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

# ARGV: ttl, then keys. Sets every key to 1 with the ttl.
_MARK = """
for i = 2, #ARGV do redis.call('SET', ARGV[i], 1, 'EX', ARGV[1]) end
return #ARGV - 1
"""

# KEYS: pending zset. ARGV: ttl, then (snapshot key, settled key, lead id, created,
# snapshot) per lead. A lead whose label was already emitted does not wait for another.
_SNAPSHOTS = """
for i = 2, #ARGV, 5 do
  redis.call('SET', ARGV[i], ARGV[i + 4], 'EX', ARGV[1])
  if redis.call('EXISTS', ARGV[i + 1]) == 0 then
    redis.call('ZADD', KEYS[1], 'NX', ARGV[i + 3], ARGV[i + 2])
  end
end
return 1
"""

# ARGV: engagement keys. Returns each hash flattened.
_HGETALL = """
local out = {}
for i = 1, #ARGV do out[i] = redis.call('HGETALL', ARGV[i]) end
return out
"""

# KEYS: watermark key. ARGV: candidate (epoch seconds). Keeps the maximum.
_WATERMARK = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local new = tonumber(ARGV[1])
if new > cur then redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1] end
return tostring(cur)
"""

# KEYS: pending zset. ARGV: (lead id, snapshot key) per lead.
# Each snapshot of a lead still waiting for its label, else false. Reading does
# not settle the label: that happens after the example is safely produced.
_PENDING = """
local out = {}
for i = 1, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    out[#out + 1] = redis.call('GET', ARGV[i + 1]) or ''
  else
    out[#out + 1] = ''
  end
end
return out
"""

# ARGV: ttl, then learned keys. 1 for each key set for the first time.
_FIRST = """
local out = {}
for i = 2, #ARGV do
  out[#out + 1] = redis.call('SET', ARGV[i], 1, 'NX', 'EX', ARGV[1]) and 1 or 0
end
return out
"""


class RedisState:
    """Worker state in Redis; one instance per worker, shared by its agents.

    Parameters
    ----------
    client
        An asyncio Redis client.
    prefix
        Prefix of every key (one per deployment or test run).
    dedup_ttl_s
        How long an event_id is remembered.
    state_ttl_s
        How long engagement counters and snapshots live (horizon plus margin).
    """

    def __init__(self, client: Redis, prefix: str, dedup_ttl_s: int, state_ttl_s: int) -> None:
        self.client = client
        self.prefix = prefix
        self.dedup_ttl_s = dedup_ttl_s
        self.state_ttl_s = state_ttl_s
        self._touch = client.register_script(_TOUCH)
        self._mark = client.register_script(_MARK)
        self._snapshots = client.register_script(_SNAPSHOTS)
        self._hgetall = client.register_script(_HGETALL)
        self._watermark = client.register_script(_WATERMARK)
        self._pending = client.register_script(_PENDING)
        self._first = client.register_script(_FIRST)

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def seen(self, event_ids: Sequence[str]) -> list[bool]:
        """Which of these event ids were already fully processed."""
        if not event_ids:
            return []
        values = await self.client.mget([self._k("dedup", e) for e in event_ids])
        return [v is not None for v in values]

    async def mark(self, event_ids: Sequence[str]) -> None:
        """Remember these event ids as processed (call after their effects are durable)."""
        if event_ids:
            await self._mark(args=[self.dedup_ttl_s, *(self._k("dedup", e) for e in event_ids)])

    async def count_touchpoints(self, touches: Sequence[tuple[str, str, str]]) -> list[bool]:
        """Count (event_id, lead_id, touch type) once each; returns which were new."""
        if not touches:
            return []
        args: list[Any] = [self.dedup_ttl_s, self.state_ttl_s]
        for event_id, lead_id, kind in touches:
            args += (self._k("dedup", event_id), self._k("eng", lead_id), kind)
        return [bool(r) for r in await self._touch(args=args)]

    async def engagement(self, lead_ids: Sequence[str]) -> list[dict[str, float]]:
        """Touchpoint counts so far for each lead."""
        if not lead_ids:
            return []
        raw = await self._hgetall(args=[self._k("eng", lead_id) for lead_id in lead_ids])
        return [
            {flat[i].decode(): float(flat[i + 1]) for i in range(0, len(flat), 2)} for flat in raw
        ]

    async def save_snapshots(self, snapshots: Sequence[tuple[str, float, dict[str, Any]]]) -> None:
        """Keep (lead_id, created epoch seconds, snapshot) until the lead's label is known.

        A lead scored again (an update) keeps its first creation time in the
        pending set, and its newest snapshot.
        """
        if not snapshots:
            return
        args: list[Any] = [self.state_ttl_s]
        for lead_id, created, snapshot in snapshots:
            args += (
                self._k("snap", lead_id), self._k("settled", lead_id), lead_id, created,
                orjson.dumps(snapshot),
            )  # fmt: skip
        await self._snapshots(keys=[self._k("pending")], args=args)

    async def pending_snapshots(self, lead_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Each lead's snapshot while its label is pending; ``None`` if settled or unknown."""
        if not lead_ids:
            return []
        args: list[Any] = []
        for lead_id in lead_ids:
            args += (lead_id, self._k("snap", lead_id))
        raw = await self._pending(keys=[self._k("pending")], args=args)
        return [orjson.loads(r) if r else None for r in raw]

    async def settle(self, lead_ids: Sequence[str]) -> None:
        """Mark these leads' labels as emitted (after the examples were produced)."""
        if not lead_ids:
            return
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(self._k("pending"), *lead_ids)
            pipe.mset({self._k("settled", lead_id): 1 for lead_id in lead_ids})
            for lead_id in lead_ids:
                pipe.expire(self._k("settled", lead_id), self.state_ttl_s)
            await pipe.execute()

    async def first_learning(self, lead_ids: Sequence[str]) -> list[bool]:
        """For each lead, True only the first time its example reaches the learner."""
        if not lead_ids:
            return []
        keys = [self._k("learned", lead_id) for lead_id in lead_ids]
        return [bool(r) for r in await self._first(args=[self.state_ttl_s, *keys])]

    async def keep_features(self, features: dict[str, dict[str, float]]) -> None:
        """Keep the features a lead was labelled positive with, for its revenue example.

        The first kept set wins: a later rescore (an update) does not replace the
        features known when the label was settled.
        """
        if not features:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for lead_id, x in features.items():
                pipe.set(self._k("won_x", lead_id), orjson.dumps(x), ex=self.state_ttl_s, nx=True)
            await pipe.execute()

    async def kept_features(self, lead_ids: Sequence[str]) -> list[dict[str, float] | None]:
        """The features kept by :meth:`keep_features` for each lead, if any."""
        if not lead_ids:
            return []
        raw = await self.client.mget([self._k("won_x", lead_id) for lead_id in lead_ids])
        return [orjson.loads(r) if r else None for r in raw]

    async def was_scored(self, lead_ids: Sequence[str]) -> list[bool]:
        """Whether a snapshot exists for each lead (labelled or not)."""
        if not lead_ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for lead_id in lead_ids:
                pipe.exists(self._k("snap", lead_id))
            return [bool(r) for r in await pipe.execute()]

    async def advance_watermark(self, stream: str, epoch_s: float) -> float:
        """Raise ``stream``'s event-time watermark to ``epoch_s`` if later; return the watermark."""
        return float(await self._watermark(keys=[self._k("watermark", stream)], args=[epoch_s]))

    async def park_outcomes(self, outcomes: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Keep outcomes that arrived before their lead was scored (topics are consumed
        independently, so a conversion can overtake its lead). A positive replaces a loss."""
        if not outcomes:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for lead_id, outcome in outcomes:
                key = self._k("early", lead_id)
                pipe.set(key, orjson.dumps(outcome), ex=self.state_ttl_s, nx=not outcome["label"])
            await pipe.execute()

    async def parked_outcomes(self, lead_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """The parked outcome of each lead, if any."""
        if not lead_ids:
            return []
        raw = await self.client.mget([self._k("early", lead_id) for lead_id in lead_ids])
        return [orjson.loads(r) if r else None for r in raw]

    async def unpark(self, lead_ids: Sequence[str]) -> None:
        """Drop parked outcomes once their examples were produced."""
        if lead_ids:
            await self.client.delete(*(self._k("early", lead_id) for lead_id in lead_ids))

    async def due(
        self, after_epoch_s: float, through_epoch_s: float, limit: int = 5000
    ) -> list[tuple[str, float]]:
        """Leads still waiting for a label created in ``(after, through]``, oldest first, with
        their creation times (the ``es_dfm`` window: leads not converted within it)."""
        raw = await self.client.zrangebyscore(
            self._k("pending"), f"({after_epoch_s!r}", through_epoch_s, start=0, num=limit,
            withscores=True,
        )  # fmt: skip
        pairs: list[tuple[bytes | str, float]] = raw  # type: ignore[assignment]  # withscores
        return [(r.decode() if isinstance(r, bytes) else str(r), float(t)) for r, t in pairs]

    async def expired(self, before_epoch_s: float, limit: int = 5000) -> list[str]:
        """Leads created before ``before_epoch_s`` that are still waiting for a label."""
        raw = await self.client.zrangebyscore(
            self._k("pending"), "-inf", before_epoch_s, start=0, num=limit
        )
        return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]
