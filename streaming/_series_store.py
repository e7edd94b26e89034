"""Where the series live between batches: window sums, watermark, detector states.

:class:`RedisSeriesStore` is what workers share, so any worker can take over
any partition (and close any window); :class:`MemorySeriesStore` has the same
behaviour in one process, for benchmarks and tests in simulated time.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

from streaming.series import Deltas

_STATE_TTL_S = 366 * 86_400

# ARGV: frontier key, candidate frontier, groups key, hash ttl, attribution ttl,
# closed-key prefix, then counts and blocks:
#   G, G group names; A, A x (attribution key, value); C, C x (class, first window start);
#   then hash blocks to the end: (hash key, F, F x (field, delta)).
# Returns {frontier, closed boundary of each class in the order given}.
_ADD = """
local i = 7
local g = tonumber(ARGV[i]); i = i + 1
for j = 1, g do redis.call('SADD', ARGV[3], ARGV[i]); i = i + 1 end
local a = tonumber(ARGV[i]); i = i + 1
for j = 1, a do redis.call('SET', ARGV[i], ARGV[i + 1], 'EX', ARGV[5]); i = i + 2 end
local c = tonumber(ARGV[i]); i = i + 1
local closed = {}
for j = 1, c do
  local key = ARGV[6] .. ARGV[i]
  redis.call('SET', key, ARGV[i + 1], 'NX')
  closed[#closed + 1] = redis.call('GET', key)
  i = i + 2
end
while i <= #ARGV do
  local key = ARGV[i]
  local f = tonumber(ARGV[i + 1]); i = i + 2
  for j = 1, f do redis.call('HINCRBYFLOAT', key, ARGV[i], ARGV[i + 1]); i = i + 2 end
  redis.call('EXPIRE', key, ARGV[4])
end
local cur = tonumber(redis.call('GET', ARGV[1]) or '-1e18')
if tonumber(ARGV[2]) > cur then redis.call('SET', ARGV[1], ARGV[2]); cur = tonumber(ARGV[2]) end
local out = {tostring(cur)}
for j = 1, #closed do out[#out + 1] = closed[j] end
return out
"""

# KEYS: closed key. ARGV: new boundary. Moves the boundary forward; returns the old one or false.
_CLAIM = """
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(ARGV[1]) > tonumber(cur) then
  redis.call('SET', KEYS[1], ARGV[1])
  return cur
end
return false
"""

# KEYS: hash. Reads and deletes it.
_TAKE = """
local v = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return v
"""

# KEYS: lock. ARGV: token. Deletes the lock only if we hold it.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SeriesStore(Protocol):
    """The state behind :class:`streaming.anomalies.AnomalyMonitor`."""

    async def add(
        self,
        deltas: Deltas,
        groups: Iterable[str],
        attributions: Sequence[tuple[str, str]],
        candidate_frontier: float,
        first_windows: Mapping[str, int],
    ) -> tuple[float, dict[str, int]]:
        """Add a batch's sums; returns the frontier and each class's closed boundary."""
        ...

    async def attribution(self, lead_ids: Sequence[str]) -> list[str | None]: ...

    async def claim(self, cls: str, upto: int) -> int | None:
        """Move the closed boundary of ``cls`` to ``upto``; the old boundary, or None if not ours."""
        ...

    async def take(self, cls: str, start: int) -> dict[str, float]: ...

    async def groups(self) -> set[str]: ...

    async def load(self, series: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    async def save(self, states: Mapping[str, dict[str, Any]]) -> None: ...

    async def set_active(self, active: Mapping[str, dict[str, str]], cleared: Sequence[str]) -> None: ...

    async def active(self) -> dict[str, dict[str, str]]: ...

    async def lock(self, ttl_s: float) -> str | None: ...

    async def unlock(self, token: str) -> None: ...


class MemorySeriesStore:
    """A :class:`SeriesStore` in one process's memory."""

    def __init__(self) -> None:
        self.frontier = float("-inf")
        self.closed: dict[str, int] = {}
        self.sums: dict[tuple[str, int], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.known: set[str] = set()
        self.leads: dict[str, str] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.active_series: dict[str, dict[str, str]] = {}

    async def add(
        self,
        deltas: Deltas,
        groups: Iterable[str],
        attributions: Sequence[tuple[str, str]],
        candidate_frontier: float,
        first_windows: Mapping[str, int],
    ) -> tuple[float, dict[str, int]]:
        self.known.update(groups)
        self.leads.update(attributions)
        for cls, first in first_windows.items():
            self.closed.setdefault(cls, first)
        for key, fields in deltas.items():
            bucket = self.sums[key]
            for f, v in fields.items():
                bucket[f] += v
        self.frontier = max(self.frontier, candidate_frontier)
        return self.frontier, dict(self.closed)

    async def attribution(self, lead_ids: Sequence[str]) -> list[str | None]:
        return [self.leads.get(k) for k in lead_ids]

    async def claim(self, cls: str, upto: int) -> int | None:
        cur = self.closed.get(cls)
        if cur is None or upto <= cur:
            return None
        self.closed[cls] = upto
        return cur

    async def take(self, cls: str, start: int) -> dict[str, float]:
        return dict(self.sums.pop((cls, start), {}))

    async def groups(self) -> set[str]:
        return set(self.known)

    async def load(self, series: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {s: self.states[s] for s in series if s in self.states}

    async def save(self, states: Mapping[str, dict[str, Any]]) -> None:
        self.states.update(states)

    async def set_active(self, active: Mapping[str, dict[str, str]], cleared: Sequence[str]) -> None:
        self.active_series.update(active)
        for s in cleared:
            self.active_series.pop(s, None)

    async def active(self) -> dict[str, dict[str, str]]:
        return dict(self.active_series)

    async def lock(self, ttl_s: float) -> str | None:
        return "memory"

    async def unlock(self, token: str) -> None:
        return None


class RedisSeriesStore:
    """A :class:`SeriesStore` in Redis, shared by every worker of a deployment.

    Parameters
    ----------
    client
        An asyncio Redis client.
    prefix
        Key prefix (the deployment's prefix plus ``:an``).
    sums_ttl_s
        Lifetime of an open window's sums (a stream may pause for this long).
    attribution_ttl_s
        How long a lead's channel and campaign are kept for its conversions.
    """

    def __init__(
        self, client: Redis, prefix: str, sums_ttl_s: int, attribution_ttl_s: int
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.sums_ttl_s = sums_ttl_s
        self.attribution_ttl_s = attribution_ttl_s
        self._add = client.register_script(_ADD)
        self._claim = client.register_script(_CLAIM)
        self._take = client.register_script(_TAKE)
        self._unlock = client.register_script(_UNLOCK)

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def add(
        self,
        deltas: Deltas,
        groups: Iterable[str],
        attributions: Sequence[tuple[str, str]],
        candidate_frontier: float,
        first_windows: Mapping[str, int],
    ) -> tuple[float, dict[str, int]]:
        names = list(groups)
        args: list[Any] = [
            self._k("frontier"), repr(float(candidate_frontier)), self._k("groups"),
            self.sums_ttl_s, self.attribution_ttl_s, self._k("closed", ""), len(names), *names,
            len(attributions),
        ]  # fmt: skip
        for lead_id, value in attributions:
            args += [self._k("lead", lead_id), value]
        classes = list(first_windows)
        args.append(len(classes))
        for cls in classes:
            args += [cls, first_windows[cls]]
        for (cls, start), fields in deltas.items():
            args += [self._k("acc", cls, str(start)), len(fields)]
            for f, v in fields.items():
                args += [f, repr(v)]
        out = await self._add(args=args)
        closed = {cls: int(float(v)) for cls, v in zip(classes, out[1:], strict=True)}
        return float(out[0]), closed

    async def attribution(self, lead_ids: Sequence[str]) -> list[str | None]:
        if not lead_ids:
            return []
        values = await self.client.mget([self._k("lead", k) for k in lead_ids])
        return [_text(v) if v is not None else None for v in values]

    async def claim(self, cls: str, upto: int) -> int | None:
        old = await self._claim(keys=[self._k("closed", cls)], args=[upto])
        return None if old is None else int(float(old))

    async def take(self, cls: str, start: int) -> dict[str, float]:
        flat = await self._take(keys=[self._k("acc", cls, str(start))])
        return {_text(flat[i]): float(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def groups(self) -> set[str]:
        return {_text(g) for g in await self.client.smembers(self._k("groups"))}

    async def load(self, series: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not series:
            return {}
        values = await self.client.mget([self._k("state", s) for s in series])
        return {s: orjson.loads(v) for s, v in zip(series, values, strict=True) if v is not None}

    async def save(self, states: Mapping[str, dict[str, Any]]) -> None:
        if states:
            pipe = self.client.pipeline(transaction=False)
            for s, v in states.items():  # a series unseen for a year is forgotten
                pipe.set(self._k("state", s), orjson.dumps(v), ex=_STATE_TTL_S)
            await pipe.execute()

    async def set_active(self, active: Mapping[str, dict[str, str]], cleared: Sequence[str]) -> None:
        pipe = self.client.pipeline(transaction=True)
        if active:
            pipe.hset(self._k("active"), mapping={s: orjson.dumps(v) for s, v in active.items()})
        if cleared:
            pipe.hdel(self._k("active"), *cleared)
        await pipe.execute()

    async def active(self) -> dict[str, dict[str, str]]:
        raw = await self.client.hgetall(self._k("active"))
        return {_text(k): orjson.loads(v) for k, v in raw.items()}

    async def lock(self, ttl_s: float) -> str | None:
        token = f"{uuid.uuid4().hex}-{time.time():.0f}"
        ok = await self.client.set(self._k("lock"), token, nx=True, px=int(ttl_s * 1000))
        return token if ok else None

    async def unlock(self, token: str) -> None:
        await self._unlock(keys=[self._k("lock")], args=[token])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
