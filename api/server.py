"""Wiring for `leadstream serve`, the demo and the tests: clients, cache, app, a server thread."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import redis
import uvicorn
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from api.app import create_app
from config.settings import Settings
from reporting.cache import CacheMetrics, QueryCache
from reporting.pool import ClientPool
from reporting.queries import Analytics


@dataclass
class Built:
    """The app and the parts tests and benchmarks look into."""

    app: FastAPI
    analytics: Analytics
    cache: QueryCache
    registry: CollectorRegistry

    def close(self) -> None:
        """What the app's shutdown does: stop the watermark thread, close extra handles."""
        self.cache.close()
        self.analytics.pool.close()


def connect_readonly(settings: Settings) -> Client:
    """The views' client: the read-only DSN if set, else the main ClickHouse settings.

    A server client gets no session, so that every request thread can query through
    it at once (clickhouse-connect refuses concurrent queries in one session).
    """
    import clickhouse_connect

    from sinks.clickhouse import connect

    dsn = settings.api.clickhouse_dsn
    if dsn is not None and dsn.get_secret_value():
        cfg = settings.clickhouse.model_copy(update={"dsn": dsn.get_secret_value()})
    else:
        cfg = settings.clickhouse
    if cfg.dsn:
        return clickhouse_connect.get_client(dsn=cfg.dsn, autogenerate_session_id=False)
    return connect(cfg)


def build_app(
    settings: Settings,
    client: Client,
    registry: CollectorRegistry | None = None,
    redis_client: redis.Redis | None = None,
) -> Built:
    """The app over ``client``; Redis from the settings unless given.

    On chDB the app opens ``api.chdb_handles`` handles in all (``client`` and more on
    the same directory) and closes the ones it opened at shutdown.
    """
    registry = registry or CollectorRegistry()
    pool = ClientPool.for_client(client, settings.api.chdb_handles)
    analytics = Analytics(client, settings.clickhouse.database, pool)
    cache = QueryCache(
        redis_client if redis_client is not None else redis.Redis.from_url(settings.redis.url),
        settings.redis.key_prefix,
        settings.api.cache_ttl_s,
        analytics.watermark,
        settings.api.watermark_every_s,
        CacheMetrics.create(registry),
    )
    app = create_app(analytics, cache, settings.api, registry, settings.models, settings)
    return Built(app, analytics, cache, registry)


class ServerThread:
    """A uvicorn server on a background thread; ``stop()`` shuts it down and joins."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        # uvicorn installs signal handlers only on the main thread: the owner keeps them.
        self.thread = threading.Thread(target=self.server.run, name="leadstream-api", daemon=True)
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8600``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        """Start and wait until the server accepts connections."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_in_thread(app: FastAPI, host: str, port: int) -> ServerThread:
    """Serve ``app`` on a background thread (the demo and the tests)."""
    return ServerThread(app, host, port).start()


def demo_dashboard(settings: Settings, client: Client, port: int) -> ServerThread:
    """The embedded demo's dashboard: same chDB client, the demo's Redis, no authentication."""
    api = settings.api.model_copy(update={"auth_enabled": False, "refresh_s": 2.0})
    built = build_app(settings.model_copy(update={"api": api}), client)
    return serve_in_thread(built.app, "127.0.0.1", port)
