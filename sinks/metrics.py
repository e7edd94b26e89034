"""All of the worker's Prometheus metrics, as fields of one object built against a registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Seconds from the broker's append time to the scored lead being produced.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
SCORE_BUCKETS: tuple[float, ...] = tuple(round(i / 10, 1) for i in range(1, 11))
BATCH_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


@dataclass(frozen=True)
class Metrics:
    """The worker's metrics; build with :meth:`create`.

    Examples
    --------
    >>> registry = CollectorRegistry()
    >>> m = Metrics.create(registry)
    >>> m.events_in.labels(topic="leads.raw", event_type="lead_created").inc(3)
    >>> registry.get_sample_value(
    ...     "leadstream_events_in_total", {"topic": "leads.raw", "event_type": "lead_created"})
    3.0
    """

    events_in: Counter
    events_rejected: Counter
    events_duplicate: Counter
    leads_scored: Counter
    scoring_latency: Histogram
    lead_score: Histogram
    consumer_lag: Gauge
    sink_batches: Counter
    sink_rows: Counter
    sink_failures: Counter
    sink_batch_seconds: Histogram
    model_version: Gauge
    training_examples: Counter
    labels_unmatched: Counter
    model_auc: Gauge
    published_quality: Gauge
    anomalies: Counter
    anomaly_active: Gauge
    series_value: Gauge
    series_expected: Gauge
    feature_psi: Gauge
    windows_closed: Counter
    events_too_late: Counter
    anomaly_errors: Counter
    model_quality: Gauge
    revenue_quality: Gauge
    model_drifts: Counter
    model_promotions: Counter
    examples_learned: Counter
    topics_created: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, namespace: str = "leadstream") -> Metrics:
        """Register every metric on ``registry`` (never the global one)."""
        return cls(
            events_in=Counter(
                "events_in", "Valid events ingested, by topic and event type",
                ["topic", "event_type"], namespace=namespace, registry=registry),
            events_rejected=Counter(
                "events_rejected", "Events sent to the dead-letter topic, by topic and reason",
                ["topic", "reason"], namespace=namespace, registry=registry),
            events_duplicate=Counter(
                "events_duplicate", "Events dropped as duplicates of an earlier event_id",
                ["topic"], namespace=namespace, registry=registry),
            leads_scored=Counter("leads_scored", "Leads scored and published", namespace=namespace, registry=registry),
            scoring_latency=Histogram(
                "scoring_latency_seconds",
                "Seconds from the lead event reaching the broker to its score being published",
                buckets=LATENCY_BUCKETS, namespace=namespace, registry=registry),
            lead_score=Histogram(
                "lead_score", "Distribution of published lead scores", buckets=SCORE_BUCKETS, namespace=namespace, registry=registry),
            consumer_lag=Gauge(
                "consumer_lag_messages",
                "Messages between the log end and the worker's position, by topic and partition",
                ["topic", "partition"], namespace=namespace, registry=registry),
            sink_batches=Counter(
                "sink_batches", "Batches written to ClickHouse, by table", ["table"], namespace=namespace, registry=registry),
            sink_rows=Counter("sink_rows", "Rows written to ClickHouse, by table", ["table"], namespace=namespace, registry=registry),
            sink_failures=Counter(
                "sink_failures", "Failed ClickHouse batch writes, by table", ["table"], namespace=namespace, registry=registry),
            sink_batch_seconds=Histogram(
                "sink_batch_seconds", "Seconds one ClickHouse batch insert took",
                buckets=BATCH_BUCKETS, namespace=namespace, registry=registry),
            model_version=Gauge("model_version", "Version of the model this worker scores with", namespace=namespace, registry=registry),
            training_examples=Counter(
                "training_examples",
                "Examples produced by the label join, by label (0, 1, or provisional: a negative"
                " until it converts, with the fake_negative policy)",
                ["label"], namespace=namespace, registry=registry),
            labels_unmatched=Counter(
                "labels_unmatched",
                "Conversions that found no scored lead to label, by reason",
                ["reason"], namespace=namespace, registry=registry),
            # Not the learner's AUC (model_prequential): the scores sales tools received, each
            # from the model version live when its lead arrived, cold-start scores included.
            model_auc=Gauge(
                "published_scores_roc_auc",
                "ROC AUC of the scores published on leads.scored against the outcomes, over every"
                " labelled lead since the learner started (cold-start scores included; 0.5 is"
                " chance, 1 ranks every converter first). The learner's own test-then-train AUC"
                " of each model is leadstream_model_prequential{metric=\"auc\"}",
                namespace=namespace, registry=registry),
            published_quality=Gauge(
                "published_scores_quality",
                "The published scores against the outcomes (the model's live quality): logloss"
                " over every labelled lead; mean_predicted, observed and calibration (their ratio,"
                " 1 is calibrated) of the leads created in the latest week whose horizon has"
                " passed (scope=last_complete_week) or in every kept week (scope=weeks)",
                ["scope", "metric"], namespace=namespace, registry=registry),
            anomalies=Counter(
                "anomalies", "Anomalies and drift reported (after the cool-down), by kind and severity",
                ["kind", "severity"], namespace=namespace, registry=registry),
            anomaly_active=Gauge(
                "anomaly_active",
                "1 while the last closed window of a series is anomalous (every worker exports it)",
                ["series", "kind", "severity", "dimension"], namespace=namespace, registry=registry),
            series_value=Gauge(
                "series_value", "Value of a series in its last closed window", ["series"],
                namespace=namespace, registry=registry),
            series_expected=Gauge(
                "series_expected", "Expected value of a series in its last closed window",
                ["series"], namespace=namespace, registry=registry),
            feature_psi=Gauge(
                "feature_psi", "Population stability index of a lead feature in the last day window",
                ["feature"], namespace=namespace, registry=registry),
            windows_closed=Counter(
                "series_windows_closed", "Series windows closed by the event-time watermark, by length",
                ["window"], namespace=namespace, registry=registry),
            events_too_late=Counter(
                "series_events_too_late",
                "Events that arrived after their window closed (not in the series)",
                namespace=namespace, registry=registry),
            anomaly_errors=Counter(
                "anomaly_errors", "Failures of the advisory anomaly detection, by stage", ["stage"],
                namespace=namespace, registry=registry),
            model_quality=Gauge(
                "model_prequential", "Test-then-train metrics of each conversion model on the"
                " learner: every labelled example is scored before it is learned (auc: 0.5 is"
                " chance; logloss, brier: lower is better; precision, recall, f1 at the threshold),"
                " by model and scope (rolling: the last models.metrics_window examples; overall)",
                ["model", "scope", "metric"], namespace=namespace, registry=registry),
            revenue_quality=Gauge(
                "revenue_prequential", "Prequential metrics of the revenue model (rmse, mae, r2),"
                " by scope", ["model", "scope", "metric"], namespace=namespace, registry=registry),
            model_drifts=Counter(
                "model_drifts", "Concept drifts detected on the champion's prediction error",
                ["model"], namespace=namespace, registry=registry),
            model_promotions=Counter(
                "model_promotions", "Champion changes, by action (promote, rollback) and actor",
                ["action", "actor"], namespace=namespace, registry=registry),
            examples_learned=Counter(
                "examples_learned", "Labelled examples the learner learned (each lead once)",
                namespace=namespace, registry=registry),
            topics_created=Counter(
                "topics_created", "Topics the worker created because the broker lacked them",
                ["topic"], namespace=namespace, registry=registry),
        )  # fmt: skip
