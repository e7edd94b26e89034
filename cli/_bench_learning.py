"""Learning benchmark: the real pipeline replayed in event-time order, against the hidden truth.

Events from the generator go through :class:`streaming.pipeline.Pipeline` (real Redis and
chDB) in small batches in the order they occurred; produced training examples go to the
learner, which publishes after each batch, and the scorer switches to the new model at
once. So the model that scores a lead has learned from every outcome known at that
moment in event time, as in a steady-state deployment where the label delay (days) is far
longer than the publish interval (seconds).

Reported: the prequential ROC AUC (each lead's score given before its outcome was known)
over the second half of the leads, next to the AUC of the generator's true propensities
on the same leads; and the learner's speed on labelled examples.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from config.settings import Settings
from online_models.evaluation import auc
from sinks.clickhouse import connect, migrate
from streaming import synthetic
from streaming.pipeline import Message
from streaming.runtime import build_pipeline


class _Collect:
    """A sender that keeps produced messages and delivers them at once."""

    def __init__(self) -> None:
        self.by_topic: dict[str, list[bytes]] = {}

    async def __call__(self, topic: str, key: bytes | None, value: bytes) -> Any:
        self.by_topic.setdefault(topic, []).append(value)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def take(self, topic: str) -> list[bytes]:
        return self.by_topic.pop(topic, [])


async def replay(
    settings: Settings, cfg: synthetic.GeneratorConfig, batch: int = 200, time_learner: bool = True
) -> dict[str, Any]:
    """Run the stream; returns scores, labels and truths per lead plus learner timings.

    With ``time_learner``, the labelled examples are also learned again by a fresh
    learner in the agent's batches, for its speed (``batch_seconds``; else 0).
    """
    truths: dict[str, synthetic.LeadTruth] = {}
    events = list(synthetic.generate(cfg, truth=lambda t: truths.__setitem__(t.lead_id, t)))
    client = aioredis.from_url(settings.redis.url)
    ch = connect(settings.clickhouse)
    migrate(ch, settings.clickhouse.database)
    sent = _Collect()
    pipeline = build_pipeline(settings, client, ch, sent)
    examples: list[dict[str, Any]] = []  # outcomes: the examples with a real label
    relearn: list[bytes] = []  # what the learner got (outcomes and provisional negatives)
    # The batch (its first event's index) in which each lead arrived, and in which each
    # example was learned: when, in event time, a score was given and a label known.
    arrived: dict[str, int] = {}
    learned_at: list[int] = []
    learn_seconds = 0.0
    offset = 0
    for i in range(0, len(events), batch):
        chunk = events[i : i + batch]
        for e in chunk:
            if e.kind == "lead" and isinstance(e.value, dict):
                arrived.setdefault(str(e.value.get("lead_id")), i)
        for kind in ("spend", "touchpoint", "lead", "conversion"):
            msgs = [
                Message(0, offset + n, e.key.encode(), orjson.dumps(e.value), 0.0)
                for n, e in enumerate(chunk)
                if e.kind == kind and isinstance(e.value, dict)
            ]
            offset += len(chunk)
            if msgs:
                await pipeline.handle_raw(kind, msgs)
        await pipeline.sweep()
        produced = sent.take(settings.kafka.topics.training)
        if produced:
            t = time.perf_counter()
            await pipeline.learn([Message(0, n, None, v, 0.0) for n, v in enumerate(produced)])
            learn_seconds += time.perf_counter() - t
            decoded = [orjson.loads(v) for v in produced]
            relearn += [v for v, e in zip(produced, decoded, strict=True) if e.get("kind") != "revenue"]
            labelled = [e for e in decoded if e.get("kind") not in ("revenue", "provisional")]
            examples.extend(labelled)
            learned_at.extend([i] * len(labelled))
            await pipeline.publish()
            await pipeline.refresh_model()
        sent.by_topic.clear()
    batch_seconds = 0.0
    if time_learner:
        # The learner as the agent runs it: batches of up to `batch_size`, a fresh model.
        learner = build_pipeline(
            settings, client, ch, sent, key_prefix=f"{settings.redis.key_prefix}-re"
        )
        size = settings.kafka.batch_size
        t = time.perf_counter()
        for i in range(0, len(relearn), size):
            await learner.learn(
                [Message(0, i + n, None, v, 0.0) for n, v in enumerate(relearn[i : i + size])]
            )
        batch_seconds = time.perf_counter() - t
    await client.aclose()
    ch.close()
    return {
        "bundle": pipeline.learning,
        "examples": examples,
        "truths": truths,
        "arrived": arrived,
        "learned_at": learned_at,
        "learn_seconds": learn_seconds,
        "batch_seconds": batch_seconds,
    }


def learning_benchmark(
    settings: Settings, leads: int, seed: int, drift_at: float | None = None
) -> dict[str, Any]:
    """The benchmark's numbers for one generated stream."""
    cfg = synthetic.GeneratorConfig(seed=seed, leads=leads, days=180, drift_at=drift_at)
    started = time.perf_counter()
    out = asyncio.run(replay(settings, cfg))
    examples, truths = out["examples"], out["truths"]
    order = sorted(examples, key=lambda e: truths[e["lead_id"]].occurred_at)
    second = order[len(order) // 2 :]
    y = [int(e["label"]) for e in second]
    prequential = auc(y, [float(e["score"]) for e in second])
    truth = auc(y, [truths[e["lead_id"]].propensity for e in second])
    return {
        "leads": leads, "seed": seed, "labelled_examples": len(examples),
        "positive_rate": round(sum(int(e["label"]) for e in examples) / max(1, len(examples)), 4),
        "prequential_auc_second_half": round(prequential, 4),
        "truth_auc_second_half": round(truth, 4),
        "ratio_to_truth": round(prequential / truth, 4),
        "learner_examples_per_s": round(len(examples) / out["batch_seconds"]),
        "learner_examples_per_s_in_replay_batches": round(len(examples) / out["learn_seconds"]),
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip


def bench_learning_settings(base: Settings, redis_url: str, folder: Path) -> Settings:
    """Isolated settings for one run (its own Redis prefix and chDB folder)."""
    from pydantic import SecretStr

    return base.model_copy(update={
        "redis": base.redis.model_copy(update={"url": redis_url, "key_prefix": f"bl{time.time_ns()}"}),
        "clickhouse": base.clickhouse.model_copy(update={"chdb_path": folder / "chdb", "dsn": None}),
        "kafka": base.kafka.model_copy(update={"partitions": 1}),
        "pii_hash_key": base.pii_hash_key or SecretStr("benchmark-only-key-0123456789"),
    })  # fmt: skip
