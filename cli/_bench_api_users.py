"""`leadstream bench api`, many users at once: p50/p95 at 1, 4 and 16 concurrent users.

Three scenarios, each at 1, 4 and 16 users:

- ``same_dashboard``: every user opens the same dashboard (its seven views, one
  after another) at the same moment, on a cold cache: with the cache off, and
  with it on and emptied before each round. Identical requests in flight share
  one query, so 16 users should wait little longer than one.
- ``different_filters``: every user opens the KPIs and the funnel with filters of
  its own (a channel and a score band), cache off: nothing is shared, so this
  measures parallel queries. Queries per second are compared with the same
  requests served one after another.
- ``cached``: the same dashboard from a warm cache.

The users run in a separate process (asyncio and httpx), so that the client's
work does not compete with the server's for the interpreter lock.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

Request = tuple[str, dict[str, str]]

LEVELS = (1, 4, 16)
#: The views the dashboard loads when it opens (api/static/dashboard.js, loadAll).
DASHBOARD = (
    "kpis",
    "funnel",
    "lead_quality",
    "roi_channel",
    "cohorts",
    "anomalies",
    "model_health",
)
# 7 channels x 3 bands: 16 users get 16 different filter sets.
_CHANNELS = (
    "paid_search",
    "paid_social",
    "email",
    "organic_search",
    "referral",
    "events",
    "partners",
)
_BANDS = ("A", "B", "C")


def _p95(samples: Sequence[float]) -> float:
    """Nearest-rank 95th percentile.

    >>> _p95([float(i) for i in range(1, 21)])
    19.0
    """
    ordered = sorted(samples)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def summary(samples: Sequence[float], wall_s: float) -> dict[str, float]:
    """p50, p95 and max in milliseconds, the number of requests and requests per second.

    >>> summary([10.0, 20.0, 30.0, 40.0], 0.5)
    {'p50_ms': 25.0, 'p95_ms': 40.0, 'max_ms': 40.0, 'n': 4, 'requests_per_s': 8.0}
    """
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(_p95(samples), 2),
        "max_ms": round(max(samples), 2),
        "n": len(samples),
        "requests_per_s": round(len(samples) / wall_s, 2),
    }


def users_at_once(base_url: str, plans: list[list[Request]]) -> tuple[list[float], float]:
    """Each plan is one user's requests, made one after another; all users start together.

    Returns every request's milliseconds and the wall time in seconds. Runs in the
    client process.
    """
    import httpx

    async def user(http: httpx.AsyncClient, plan: list[Request], out: list[float]) -> None:
        for path, params in plan:
            t0 = time.perf_counter()
            response = await http.get(path, params=params)
            out.append((time.perf_counter() - t0) * 1000.0)
            response.raise_for_status()

    async def run() -> tuple[list[float], float]:
        limits = httpx.Limits(max_connections=len(plans), max_keepalive_connections=len(plans))
        out: list[float] = []
        async with httpx.AsyncClient(base_url=base_url, timeout=300, limits=limits) as http:
            await asyncio.gather(*(http.get("/healthz") for _ in plans))  # open the connections
            t0 = time.perf_counter()
            await asyncio.gather(*(user(http, plan, out) for plan in plans))
            return out, time.perf_counter() - t0

    return asyncio.run(run())


def _filters(i: int, base: dict[str, str]) -> dict[str, str]:
    """User ``i``'s own filters.

    >>> _filters(8, {})
    {'channel': 'paid_social', 'band': 'B'}
    """
    return {**base, "channel": _CHANNELS[i % len(_CHANNELS)], "band": _BANDS[i // len(_CHANNELS)]}


def measure_users(
    urls: dict[str, str],
    views: dict[str, Request],
    forget: Callable[[], None],
    rounds: int,
    status: Callable[[str], Any],
) -> dict[str, Any]:
    """Every scenario at every level; ``urls`` has the ``uncached`` and ``cached`` servers.

    ``forget()`` empties the cache of the cached server.
    """
    dashboard = [views[v] for v in DASHBOARD]
    base = views["kpis"][1]
    out: dict[str, Any] = {
        "levels": list(LEVELS),
        "rounds": rounds,
        "dashboard_views": list(DASHBOARD),
    }
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as client:

        def run(
            url: str, plans: list[list[Request]], before: Callable[[], None] | None = None
        ) -> dict[str, float]:
            samples: list[float] = []
            wall = 0.0
            for _ in range(rounds):
                if before is not None:
                    before()
                got, seconds = client.submit(users_at_once, url, plans).result()
                samples += got
                wall += seconds
            return summary(samples, wall)

        for name, url, before in (
            ("uncached", urls["uncached"], None),
            ("cached_cold", urls["cached"], forget),
        ):
            status(f"{name}: users opening the same dashboard at once")
            out.setdefault("same_dashboard", {})[name] = {
                str(n): run(url, [dashboard] * n, before) for n in LEVELS
            }
        status("uncached: users with different filters at once")
        mine = [[("/api/v1/kpis", _filters(i, base)), ("/api/v1/funnel", _filters(i, base))]
                for i in range(max(LEVELS))]  # fmt: skip
        different = {str(n): run(urls["uncached"], mine[:n]) for n in LEVELS}
        different["serial_16"] = run(urls["uncached"], [[r for plan in mine for r in plan]])
        out["different_filters"] = different
        status("cached: users opening the same dashboard from a warm cache")
        run(urls["cached"], [dashboard])  # warm
        out["cached"] = {str(n): run(urls["cached"], [dashboard * 3] * n) for n in LEVELS}
    return out


def targets(users: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, from :func:`measure_users`' results."""
    same = users["same_dashboard"]
    diff = users["different_filters"]
    cached = users["cached"]
    return {
        "same_dashboard_p95_16_over_1_max": 3.0,
        "same_dashboard_p95_16_over_1": {
            k: round(v["16"]["p95_ms"] / v["1"]["p95_ms"], 2) for k, v in same.items()
        },
        "met_same_dashboard": all(v["16"]["p95_ms"] <= 3 * v["1"]["p95_ms"] for v in same.values()),
        "different_filters_qps_16_over_serial": round(
            diff["16"]["requests_per_s"] / diff["serial_16"]["requests_per_s"], 2
        ),
        "met_different_filters": diff["16"]["requests_per_s"]
        >= diff["serial_16"]["requests_per_s"],
        "cached_p95_ms_max": 10.0,
        "met_cached_one_user": cached["1"]["p95_ms"] <= 10.0,
        "met_cached_every_level": all(v["p95_ms"] <= 10.0 for v in cached.values()),
    }
