"""The learner's side of the pipeline: test-then-train, model snapshots, champion commands.

Learning is the one serial step (one partition, one consumer): labelled examples come
in from ``training.examples``, each lead's example is learned once (a Redis SET NX marks
it first), and the learning bundle is published as a versioned snapshot that every
scorer loads within its reload interval. A mixin of :class:`streaming.pipeline.Pipeline`,
whose worker runs the learner agent and the publish and reload timers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from config.settings import Settings
from online_models.bundle import (
    ModelBundle,
    ModelStore,
    apply_command,
    bundle_for,
    configure_delays,
    defaults_for,
    policy_for,
)
from online_models.records import REVENUE_MODEL, drift_row, metric_rows, promotion_row
from sinks.clickhouse import write_with_retry
from sinks.metrics import Metrics
from sinks.redis_state import RedisState
from sinks.rows import Row, TableSink, mapping_row

if TYPE_CHECKING:
    from streaming.pipeline import Message

log = structlog.get_logger(__name__)


class LearnerRole:
    """Learning, publishing and loading models; state set up by the pipeline's constructor."""

    settings: Settings
    state: RedisState
    store: ModelStore
    sinks: dict[str, TableSink]
    metrics: Metrics
    clock: Callable[[], float]
    model: ModelBundle
    learning: ModelBundle | None
    _learned_since_publish: int
    _promotions: list[dict[str, Any]]

    def new_bundle(self) -> ModelBundle:
        """An untrained model configured from the settings: champion, challengers, revenue."""
        return bundle_for(self.settings.models)

    # -- learning -------------------------------------------------------------------

    async def learn(self, messages: Sequence[Message]) -> None:
        """The learner: test-then-train on labelled examples, each lead once."""
        if self.learning is None:
            self.learning = await self._resume()
        decoded = [orjson.loads(m.value) for m in messages if m.value]
        bundle = self.learning
        revenues = [e for e in decoded if e.get("kind") == "revenue"]
        first_revenue = await self.state.first_learning(
            [f"revenue:{e['lead_id']}" for e in revenues]
        )
        for example, is_first in zip(revenues, first_revenue, strict=True):
            if is_first:
                bundle.learn_revenue(example.get("features"), example["revenue"])
                self._learned_since_publish += 1
        policy = self.settings.models.label_policy
        provisional = [e for e in decoded if e.get("kind") == "provisional"]
        first_provisional = await self.state.first_learning(
            [f"provisional:{e['lead_id']}" for e in provisional]
        )
        for example, is_first in zip(provisional, first_provisional, strict=True):
            if is_first:  # seen now (fake_negative, fnw: learned as a negative)
                bundle.learn_provisional(
                    example["features"], datetime.fromisoformat(example["scored_at"]).timestamp(),
                    policy, example["lead_id"],
                )  # fmt: skip
                self._learned_since_publish += 1
        examples = [e for e in decoded if e.get("kind") not in ("revenue", "provisional", "window")]
        first = await self.state.first_learning([e["lead_id"] for e in examples])
        if policy == "es_dfm":
            await self._learn_windows(bundle, decoded, examples, first)
        rows: list[Row] = []
        drifts: list[Row] = []
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        for example, is_first in zip(examples, first, strict=True):
            if not is_first:
                continue
            label = bool(example["label"])
            scored_at = datetime.fromisoformat(example["scored_at"])
            created_at, converted_at = example.get("created_at"), example.get("converted_at")
            promoted, drift = bundle.learn_one(
                example["features"], label, example["score"], policy, scored_at.timestamp(),
                example["lead_id"], scored_at.timestamp() if created_at is None else created_at,
                converted_at - created_at if label and converted_at and created_at else None,
            )  # fmt: skip
            if promoted:
                self._promoted(bundle.history[-1])
            if drift is not None:
                self.metrics.model_drifts.labels(model=drift.model).inc()
                drifts.append(mapping_row("anomalies", drift_row(drift, now)))
                log.warning("model.drift", model=drift.model, example=drift.example,
                            error=round(drift.error_recent, 4), before=round(drift.error_before, 4),
                            challenger=drift.challenger)  # fmt: skip
            rows.append(mapping_row("training_examples", {
                **example, "scored_at": scored_at,
                "labelled_at": datetime.fromisoformat(example["labelled_at"]),
            }))  # fmt: skip
            self._learned_since_publish += 1
        await write_with_retry(self.sinks["training_examples"], rows, self.metrics)
        self.metrics.examples_learned.inc(len(rows))
        if drifts:
            await write_with_retry(self.sinks["anomalies"], drifts, self.metrics)
        if bundle.examples:
            auc = bundle.published.report("overall")["auc"]
            if auc is not None:
                self.metrics.model_auc.set(auc)
            self._export_published(bundle)

    async def _learn_windows(
        self,
        bundle: ModelBundle,
        decoded: list[dict[str, Any]],
        examples: list[dict[str, Any]],
        first: list[bool],
    ) -> None:
        """``es_dfm``: a lead whose window passed without a conversion is a weighted negative.

        A lead's window is claimed once (Redis SET NX): by its conversion if that came
        within the window (then no negative is learned), else by its window example. A
        conversion after the window whose window example has not come (the sweep runs
        after the batch that moved the watermark past it) claims it and learns the
        negative first. The conversions' claims go first, so a window example replayed
        or racing with a conversion is not learned twice.
        """
        windows = [e for e in decoded if e.get("kind") == "window"]
        window_s = self.settings.models.window_days * 86400.0
        converted = [
            e for e, is_first in zip(examples, first, strict=True)
            if is_first and e["label"] and e.get("converted_at") is not None
            and e.get("created_at") is not None
        ]  # fmt: skip
        if not windows and not converted:
            return
        claimed = await self.state.first_learning(
            [f"window:{e['lead_id']}" for e in (*converted, *windows)]
        )
        for example, is_first in zip((*converted, *windows), claimed, strict=True):
            late = example.get("kind") == "window" or (
                example["converted_at"] - example["created_at"] > window_s
            )
            if is_first and late:
                scored_at = datetime.fromisoformat(example["scored_at"]).timestamp()
                bundle.learn_window(example["features"], scored_at)
                self._learned_since_publish += 1

    def _export_published(self, bundle: ModelBundle) -> None:
        """The published scores' log loss and calibration, as the model's live quality."""
        gauge = self.metrics.published_quality
        logloss = bundle.published.report("overall")["logloss"]
        if logloss is not None:
            gauge.labels(scope="overall", metric="logloss").set(logloss)
        horizon_s = self.settings.models.horizon_days * 86400.0
        scopes = {"last_complete_week": bundle.calibration.last_complete(horizon_s),
                  "weeks": bundle.calibration.overall()}  # fmt: skip
        for scope, week in scopes.items():
            if week is None:
                continue
            for metric, key in (("mean_predicted", "mean_predicted"), ("observed", "observed"),
                                ("calibration", "ratio"), ("logloss", "logloss")):  # fmt: skip
                if week[key] is not None:
                    gauge.labels(scope=scope, metric=metric).set(week[key])

    async def _resume(self) -> ModelBundle:
        """The learner's bundle: the latest snapshot (or a new one), with today's settings."""
        latest = await self.store.latest_version()
        bundle = await self.store.load(latest) or self.new_bundle()
        # A snapshot that could not be read is skipped, not adopted again and again.
        bundle.version = max(bundle.version, latest)
        bundle.policy = policy_for(self.settings.models)
        bundle.defaults = defaults_for(self.settings.models)
        configure_delays(bundle, self.settings.models)
        for spec in self.settings.models.challengers:
            if spec not in bundle.candidates:
                bundle.add_challenger(spec)
        log.info("model.resumed", version=bundle.version, examples=bundle.examples,
                 champion=bundle.champion)  # fmt: skip
        return bundle

    def _promoted(self, record: dict[str, Any]) -> None:
        self._promotions.append(record)
        self.metrics.model_promotions.labels(action=record["action"], actor=record["actor"]).inc()
        log.info("model.promoted", action=record["action"], from_model=record["from_model"],
                 to_model=record["to_model"], actor=record["actor"])  # fmt: skip

    async def publish(self) -> int | None:
        """Apply queued champion commands, then publish the learning model if it changed.

        Each published version's metrics go to ClickHouse (``model_metrics``) and
        Prometheus; champion changes since the last publish go to ``model_promotions``.
        """
        if self.learning is None:
            return None
        m = self.settings.models
        await self.store.heartbeat(3 * m.publish_every_s + 5)
        if await self.store.latest_version() > self.learning.version:
            # Someone else published (a backfill): continue learning from that model. What
            # this learner learned since its last snapshot is dropped with its old bundle.
            self.learning = await self._resume()
            self._learned_since_publish = 0
            return None
        bundle = self.learning
        applied: list[tuple[str, dict[str, Any]]] = []
        for command in await self.store.pop_commands():
            try:
                record = apply_command(bundle, command)
            except ValueError as exc:
                await self.store.set_result(command["id"], {"ok": False, "error": str(exc)})
                continue
            self._promoted(record)
            applied.append((command["id"], record))
        if not self._learned_since_publish and not applied:
            return None
        self._learned_since_publish = 0
        version = await self.store.publish(bundle)
        for command_id, record in applied:
            await self.store.set_result(command_id, {"ok": True, "record": record})
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        if self._promotions:
            rows = [mapping_row("model_promotions", promotion_row(r)) for r in self._promotions]
            await write_with_retry(self.sinks["model_promotions"], rows, self.metrics)
            self._promotions = []
        stats = metric_rows(bundle, now)
        await write_with_retry(
            self.sinks["model_metrics"], [mapping_row("model_metrics", r) for r in stats],
            self.metrics,
        )
        self._export(stats)
        log.debug("model.published", version=version, examples=bundle.examples)
        return version

    def _export(self, stats: list[dict[str, Any]]) -> None:
        for r in stats:
            labels = {"model": r["model_name"], "scope": r["scope"]}
            names: tuple[str, ...]
            if r["model_name"] == REVENUE_MODEL:
                gauge, names = self.metrics.revenue_quality, ("rmse", "mae", "r2")
            else:
                gauge = self.metrics.model_quality
                names = ("auc", "logloss", "brier", "precision", "recall", "f1")
            for name in names:
                if r[name] is not None:
                    gauge.labels(metric=name, **labels).set(r[name])

    async def refresh_model(self) -> bool:
        """Switch the scorer to a newer published model, if there is one."""
        latest = await self.store.latest_version()
        if latest <= self.model.version:
            return False
        bundle = await self.store.load(latest)
        if bundle is None:
            return False
        self.model = bundle
        self.metrics.model_version.set(bundle.version)
        return True
