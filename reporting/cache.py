"""A Redis cache for analytics views, keyed by the normalised query and the data watermark.

A view's result is stored under a hash of (view, its parameters in a canonical
order, the watermark). The watermark changes whenever data lands in a table the
views read (:meth:`reporting.queries.Analytics.watermark`), so new data means
new keys: an answer computed before the data landed is never served after it.
Old keys simply expire. The watermark itself is re-read every
``watermark_every_s`` seconds by a background thread, which bounds how stale an
answer can be without making any request wait for the read.

Caching is advisory: when Redis fails, the view is computed and the error is
counted and logged, never raised.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import redis
import structlog
from clickhouse_connect.driver.exceptions import ClickHouseError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from reporting._flight import SingleFlight

log = structlog.get_logger(__name__)

#: Milliseconds, for view latency: cached answers take ~1 ms, uncached up to seconds.
MS_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


@dataclass(frozen=True)
class CacheMetrics:
    """Cache and view metrics; build with :meth:`create` on a registry.

    Examples
    --------
    >>> registry = CollectorRegistry()
    >>> m = CacheMetrics.create(registry)
    >>> m.requests.labels(view="kpis", result="hit").inc()
    >>> registry.get_sample_value("leadstream_api_cache_hit_ratio")
    1.0
    """

    requests: Counter
    errors: Counter
    view_ms: Histogram
    hit_ratio: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry, namespace: str = "leadstream") -> CacheMetrics:
        """Register the metrics on ``registry`` (never the global one)."""
        requests = Counter(
            "api_cache_requests",
            "Analytics view requests by view and cache result (hit, miss, shared: waited for "
            "an identical request's computation)",
            ["view", "result"], namespace=namespace, registry=registry,
        )  # fmt: skip
        ratio = Gauge(
            "api_cache_hit_ratio", "Share of analytics view requests answered from the cache",
            namespace=namespace, registry=registry,
        )  # fmt: skip

        def _ratio() -> float:
            hits = misses = 0.0
            for metric in requests.collect():
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        if sample.labels.get("result") in ("hit", "shared"):
                            hits += sample.value
                        else:
                            misses += sample.value
            return hits / (hits + misses) if hits + misses else 0.0

        ratio.set_function(_ratio)
        return cls(
            requests=requests,
            errors=Counter(
                "api_cache_errors", "Redis errors of the analytics cache (the view was computed)",
                namespace=namespace, registry=registry,
            ),
            view_ms=Histogram(
                "api_view_milliseconds", "Milliseconds to answer an analytics view, by view and cache result",
                ["view", "result"], buckets=MS_BUCKETS, namespace=namespace, registry=registry,
            ),
            hit_ratio=ratio,
        )  # fmt: skip


def cache_key(prefix: str, view: str, params: Mapping[str, Any], watermark: str) -> str:
    """The Redis key of one view answer: parameters in canonical order, None dropped.

    >>> a = cache_key("ls", "kpis", {"start": "2026-01-01", "channel": None}, "7:x")
    >>> a == cache_key("ls", "kpis", {"start": "2026-01-01"}, "7:x")
    True
    >>> a == cache_key("ls", "kpis", {"start": "2026-01-01"}, "8:x")
    False
    >>> a.startswith("ls:api:kpis:")
    True
    """
    canonical = orjson.dumps(
        {k: params[k] for k in sorted(params) if params[k] is not None},
        option=orjson.OPT_SORT_KEYS,
    )
    digest = hashlib.sha256(canonical + b"\0" + watermark.encode()).hexdigest()[:32]
    return f"{prefix}:api:{view}:{digest}"


class QueryCache:
    """Answers views from Redis when the same query was answered at the same watermark.

    Parameters
    ----------
    client
        A synchronous Redis client, or None to turn caching off.
    prefix
        Key prefix (the deployment's Redis prefix).
    ttl_s
        Lifetime of a cached answer; 0 turns caching off.
    watermark
        Returns the current data watermark.
    watermark_every_s
        The watermark is re-read this often in the background (0: on every request).
    metrics
        Where hits, misses and latencies are counted.
    clock
        Monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        client: redis.Redis | None,
        prefix: str,
        ttl_s: int,
        watermark: Callable[[], str],
        watermark_every_s: float,
        metrics: CacheMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.watermark = watermark
        self.watermark_every_s = watermark_every_s
        self.metrics = metrics
        self.clock = clock
        self._mark: tuple[float, str] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flight: SingleFlight[bytes] = SingleFlight()

    def current_watermark(self) -> str:
        """The watermark, at most ``watermark_every_s`` old.

        With an interval, a background thread re-reads it so that no request waits
        for the read (the first one does); with 0 every call reads it.
        """
        if self.watermark_every_s <= 0:
            return self.watermark()
        with self._lock:
            if self._mark is None:
                self._mark = (self.clock(), self.watermark())
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._follow, name="leadstream-watermark", daemon=True
                )
                self._thread.start()
            return self._mark[1]

    def _follow(self) -> None:
        while not self._stop.wait(self.watermark_every_s):
            try:
                mark = self.watermark()
            except (ClickHouseError, OSError) as exc:  # advisory: keep the last watermark
                self._failed("watermark", exc)
                continue
            with self._lock:
                self._mark = (self.clock(), mark)

    def close(self) -> None:
        """Stop the watermark thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def get(self, view: str, params: Mapping[str, Any], compute: Callable[[], Any]) -> bytes:
        """The view's answer as JSON bytes, from the cache or computed (and then stored).

        Identical requests that miss at the same time share one computation (single
        flight), with the cache on or off; the ones that waited count as ``shared``.
        """
        started = time.perf_counter()
        caching = self.client is not None and self.ttl_s > 0
        key = cache_key(self.prefix, view, params, self.current_watermark() if caching else "")
        if caching:
            cached = self._read(key)
            if cached is not None:
                self._count(view, "hit", started)
                return cached
        body, shared = self._flight.do(key, lambda: self._compute(key, compute, caching))
        self._count(view, "shared" if shared else "miss", started)
        return body

    def _read(self, key: str) -> bytes | None:
        assert self.client is not None
        try:
            cached = self.client.get(key)
        except redis.RedisError as exc:
            self._failed("get", exc)
            return None
        return cached if isinstance(cached, bytes) else None

    def _compute(self, key: str, compute: Callable[[], Any], caching: bool) -> bytes:
        body = dumps(compute())
        if caching and self.client is not None:
            try:
                self.client.set(key, body, ex=self.ttl_s)
            except redis.RedisError as exc:
                self._failed("set", exc)
        return body

    def _count(self, view: str, result: str, started: float) -> None:
        self.metrics.requests.labels(view=view, result=result).inc()
        self.metrics.view_ms.labels(view=view, result=result).observe(
            (time.perf_counter() - started) * 1000.0
        )

    def _failed(self, op: str, exc: Exception) -> None:
        self.metrics.errors.inc()
        log.warning("api.cache_error", op=op, error=str(exc)[:200])


def dumps(value: Any) -> bytes:
    """JSON of a view's answer; every timestamp in RFC 3339 with its offset.

    ClickHouse hands ``DateTime64(3, 'UTC')`` columns back as naive datetimes: they
    are UTC, and are written so (``Z``), nested in plain dicts too.

    >>> from datetime import date, datetime
    >>> dumps({"at": datetime(2026, 1, 2, 3, 4, 5), "day": date(2026, 1, 2)})
    b'{"at":"2026-01-02T03:04:05Z","day":"2026-01-02"}'
    """
    return orjson.dumps(
        value,
        default=_default,
        option=orjson.OPT_NON_STR_KEYS | orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z,
    )


def _default(value: Any) -> Any:
    """Pydantic models as Python values (orjson then writes their dates and datetimes)."""
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        return dump()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
