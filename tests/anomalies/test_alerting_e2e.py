"""Anomaly to alert, end to end with real servers.

A worker (a real `leadstream worker` process on the shared broker and Redis) is scraped
by its own Prometheus, which loads the project's rule files and alerts to its own
Alertmanager with the project's routes; notifications reach a webhook and an SMTP
server on 127.0.0.1. The generator injects a collapse of one channel's leads; the
alert fires, and resolves once the channel's next window is normal again.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cli._spawn import ServiceHandle
from streaming import synthetic
from tests.anomalies._alerting import Mailbox, Webhook, eventually
from tests.integration._worker import WorkerRun

pytestmark = pytest.mark.integration

SERIES = "channel=paid_search/lead_volume"
DAY = 86_400


@pytest.fixture
def run(broker_url: str, redis_url: str, run_id: str, tmp_path: Path) -> Iterator[WorkerRun]:
    worker = WorkerRun(run_id=run_id, broker_url=broker_url, redis_url=redis_url, tmp=tmp_path)
    worker.extra_env.update({
        "LEADSTREAM_ANOMALIES__WINDOW_S": str(DAY),  # event time: days pass in milliseconds
        "LEADSTREAM_ANOMALIES__WARMUP_DAYS": "7",
        "LEADSTREAM_ANOMALIES__ALLOWED_LATENESS_S": "600",
    })  # fmt: skip
    yield worker
    if worker.process is not None and worker.process.poll() is None:
        worker.stop()


def leads_split(at_day: float) -> tuple[list[synthetic.Emitted], list[synthetic.Emitted]]:
    """Generated lead events before and after ``at_day``: paid search collapses on day 10."""
    collapse = synthetic.Anomaly("volume_drop", "paid_search", None, start_day=10, days=1, factor=0.0)
    cfg = synthetic.GeneratorConfig(seed=5, leads=2600, days=13, anomalies=(collapse,))
    t0 = datetime(cfg.start.year, cfg.start.month, cfg.start.day, tzinfo=UTC).timestamp()
    cut = datetime.fromtimestamp(t0 + at_day * DAY, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    leads = [e for e in synthetic.generate(cfg) if e.kind == "lead"]
    return ([e for e in leads if _at(e) < cut], [e for e in leads if _at(e) >= cut])


def _at(e: synthetic.Emitted) -> str:
    assert isinstance(e.value, dict)
    return str(e.value["occurred_at"])


def ours(hook: Webhook, status: str) -> list[tuple[str, dict[str, Any]]]:
    return [(path, a) for path, s, a in hook.alerts()
            if s == status and a["labels"].get("series") == SERIES]  # fmt: skip


def test_a_channel_collapse_alerts_through_alertmanager_and_resolves(
    run: WorkerRun,
    webhook: Webhook,
    mailbox: tuple[Mailbox, int],
    prometheus_for: Callable[[int], ServiceHandle],
) -> None:
    before, after = leads_split(11 + 2 / 24)  # day 10 closes once day 11 is 10 minutes old
    prometheus_for(run.metrics_port)
    run.start()
    run.send(before)
    assert eventually(lambda: bool(ours(webhook, "firing")), timeout=45), (
        f"no firing alert for {SERIES}; received {webhook.alerts()}\n{run.log_tail()}"
    )
    path, alert = ours(webhook, "firing")[0]
    assert path == "/alerts/critical"  # critical: the on-call route
    assert alert["labels"]["alertname"] == "LeadstreamAnomalyCritical"
    assert alert["labels"]["kind"] == "volume_drop" and alert["labels"]["component"] == "anomaly"
    assert eventually(lambda: any(SERIES in body for _, _, body in mailbox[0].messages), 15), (
        "the critical alert did not reach the on-call e-mail"
    )
    assert ["oncall@example.com"] in [to for to, _, _ in mailbox[0].messages]

    run.send(after)  # day 11 is normal again; its window closes once day 12 starts
    assert eventually(lambda: bool(ours(webhook, "resolved")), timeout=45), (
        f"the alert for {SERIES} did not resolve; received {webhook.alerts()}\n{run.log_tail()}"
    )
    records = [r for r in run.read_topic(run.topics.anomalies, expect=1) if r["series"] == SERIES]
    assert records and records[0]["kind"] == "volume_drop" and records[0]["value"] == 0.0
    assert records[0]["expected_low"] > 0 and records[0]["window_start"].startswith("2026-01-15")
    assert records[0]["description"].startswith("Lead volume of channel paid_search was 0 from")


def test_a_worker_down_alert_inhibits_the_anomalies_of_its_job(
    alertmanager: ServiceHandle, webhook: Webhook
) -> None:
    def post(alerts: list[dict[str, Any]]) -> None:
        req = urllib.request.Request(
            f"{alertmanager.url}/api/v2/alerts", data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        urllib.request.urlopen(req, timeout=5).close()

    def status() -> dict[str, list[str]]:
        with urllib.request.urlopen(f"{alertmanager.url}/api/v2/alerts", timeout=5) as r:
            return {a["labels"]["alertname"] + ":" + a["labels"].get("series", ""):
                    a["status"]["inhibitedBy"] for a in json.load(r)}  # fmt: skip

    def alert(name: str, **labels: str) -> dict[str, Any]:
        return {"labels": {"alertname": name, **labels}, "startsAt": _now()}

    post([
        alert("LeadstreamAnomalyWarning", job="a", severity="warning", component="anomaly", series="overall/lead_volume"),
        alert("LeadstreamAnomalyCritical", job="b", severity="critical", component="anomaly", series="channel=email/lead_volume"),
        alert("LeadstreamAnomalyWarning", job="b", severity="warning", component="anomaly", series="channel=email/lead_volume"),
        alert("LeadstreamAnomalyWarning", job="b", severity="warning", component="anomaly", series="overall/lateness_s"),
    ])  # fmt: skip
    time.sleep(0.5)
    before = status()
    assert before["LeadstreamAnomalyWarning:overall/lead_volume"] == []
    # A critical anomaly silences the warning of the same series, not another series'.
    assert before["LeadstreamAnomalyWarning:channel=email/lead_volume"] != []
    assert before["LeadstreamAnomalyWarning:overall/lateness_s"] == []
    post([alert("LeadstreamWorkerDown", job="a", severity="critical", component="worker", instance="w")])
    assert eventually(lambda: status()["LeadstreamAnomalyWarning:overall/lead_volume"] != [], 10)
    assert status()["LeadstreamAnomalyWarning:overall/lateness_s"] == []  # job b's worker is up


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
