"""The Redis store of model bundles: versioned snapshots, the learner's commands, its heartbeat."""

from __future__ import annotations

import pickle
import uuid
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from redis.asyncio import Redis

if TYPE_CHECKING:
    from online_models.bundle import ModelBundle

log = structlog.get_logger(__name__)

_KEEP_VERSIONS = 5


class ModelStore:
    """Versioned model snapshots in Redis; scorers poll :meth:`latest_version`.

    Also the learner's command queue (promote, rollback from ``leadstream models``)
    and its heartbeat. Snapshots are pickles written only by our own learner (or
    command) into our own Redis namespace; never point this at a Redis others can
    write to.
    """

    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, "model", *parts))

    async def publish(self, bundle: ModelBundle) -> int:
        """Store ``bundle`` as the next version and make it the latest; returns the version."""
        version = int(await self.client.incr(self._k("seq")))
        bundle.version = version
        for record in bundle.history:
            if record["to_version"] is None:
                record["to_version"] = version
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._k(str(version)), pickle.dumps(bundle, protocol=pickle.HIGHEST_PROTOCOL))
            pipe.set(self._k("latest"), version)
            pipe.delete(self._k(str(version - _KEEP_VERSIONS)))
            await pipe.execute()
        return version

    async def latest_version(self) -> int:
        """The newest published version, 0 if none."""
        raw = await self.client.get(self._k("latest"))
        return int(raw) if raw else 0

    async def load(self, version: int | None = None) -> ModelBundle | None:
        """A published bundle (the latest by default), or None if there is none."""
        if version is None:
            version = await self.latest_version()
        if version == 0:
            return None
        raw = await self.client.get(self._k(str(version)))
        if raw is None:
            return None
        if not isinstance(raw, bytes):
            raise TypeError(f"model snapshot {version} is not bytes")
        from online_models.bundle import ModelBundle  # here: bundle.py re-exports this module

        bundle = pickle.loads(raw)  # noqa: S301 - our own snapshot, see the class docstring
        if not isinstance(bundle, ModelBundle):
            raise TypeError(f"model snapshot {version} is not a ModelBundle")
        if getattr(bundle, "format", 1) != ModelBundle.format:
            # An older layout: unusable by this code. The learner starts afresh (or from a
            # backfill); scorers keep the model they have until a new version is published.
            log.warning("model.snapshot_format_unknown", version=version,
                        format=getattr(bundle, "format", 1))  # fmt: skip
            return None
        return bundle

    async def push_command(self, action: str, model: str | None, actor: str) -> str:
        """Queue a champion change for the learner; returns the command's id."""
        command_id = uuid.uuid4().hex
        body = {"id": command_id, "action": action, "model": model, "actor": actor}
        await self.client.rpush(self._k("commands"), orjson.dumps(body))
        return command_id

    async def pop_commands(self) -> list[dict[str, Any]]:
        """Take every queued command, oldest first."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lrange(self._k("commands"), 0, -1)
            pipe.delete(self._k("commands"))
            raw, _ = await pipe.execute()
        return [orjson.loads(r) for r in raw]

    async def set_result(self, command_id: str, result: dict[str, Any]) -> None:
        """Record what became of a command (kept for a day)."""
        await self.client.set(self._k("result", command_id), orjson.dumps(result), ex=86400)

    async def result(self, command_id: str) -> dict[str, Any] | None:
        """What became of a command, once the learner applied it."""
        raw = await self.client.get(self._k("result", command_id))
        return orjson.loads(raw) if raw else None

    async def heartbeat(self, ttl_s: float) -> None:
        """The learner says it is alive (for ``ttl_s`` seconds)."""
        await self.client.set(self._k("learner"), 1, px=max(1, int(ttl_s * 1000)))

    async def learner_alive(self) -> bool:
        """Whether a learner beat its heart recently."""
        return bool(await self.client.exists(self._k("learner")))
