"""The run summary: what was processed, rejected, scored and learned, read back from ClickHouse."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client

# Every query reads deduplicated rows (FINAL): at-least-once delivery may have written a row twice.
_QUERIES: dict[str, str] = {
    "events": """
        SELECT 'lead' AS kind, event_type, count() FROM {db}.leads FINAL GROUP BY event_type
        UNION ALL SELECT 'touchpoint', event_type, count() FROM {db}.touchpoints FINAL GROUP BY event_type
        UNION ALL SELECT 'conversion', stage, count() FROM {db}.conversions FINAL GROUP BY stage
        UNION ALL SELECT 'spend', 'spend', count() FROM {db}.spend FINAL
        ORDER BY 1, 2""",
    "rejected": """
        SELECT source_topic, reason_code, count() AS n, any(reason)
        FROM {db}.rejected_events FINAL GROUP BY source_topic, reason_code ORDER BY n DESC""",
    "scored": """
        SELECT count(), countIf(band = 'A'), countIf(band = 'B'), countIf(band = 'C'),
               countIf(band = 'D'), max(model_version)
        FROM {db}.scored_leads FINAL""",
    "learning": """
        SELECT count(), sum(label), if(count() > 0 AND sum(label) > 0 AND sum(label) < count(),
               arrayAUC(groupArray(score), groupArray(label)), nan)
        FROM {db}.training_examples FINAL""",
    "channels": """
        WITH
          s AS (SELECT channel, sum(toFloat64(amount)) AS spend FROM {db}.spend FINAL GROUP BY channel),
          l AS (SELECT channel, uniqExact(lead_id) AS leads FROM {db}.leads FINAL GROUP BY channel),
          w AS (SELECT l2.channel AS channel, sum(toFloat64(ifNull(c.revenue, 0))) AS revenue,
                       uniqExact(c.lead_id) AS won
                FROM {db}.conversions AS c FINAL
                INNER JOIN (SELECT DISTINCT lead_id, channel FROM {db}.leads FINAL) AS l2
                  ON c.lead_id = l2.lead_id
                WHERE c.stage = 'won' GROUP BY l2.channel)
        SELECT l.channel, l.leads, ifNull(s.spend, 0) AS spend,
               if(l.leads > 0, ifNull(s.spend, 0) / l.leads, 0) AS cpl,
               ifNull(w.won, 0), ifNull(w.revenue, 0)
        FROM l LEFT JOIN s ON l.channel = s.channel LEFT JOIN w ON l.channel = w.channel
        ORDER BY spend DESC, l.channel""",
    # The champion's own test-then-train metrics over the learner's rolling window, as last
    # recorded (the newest version's row).
    "champion": """
        SELECT model_name, examples, auc
        FROM {db}.model_metrics FINAL
        WHERE role = 'champion' AND scope = 'rolling' AND auc IS NOT NULL
        ORDER BY model_version DESC, recorded_at DESC LIMIT 1""",
}


@dataclass
class RunSummary:
    """The numbers a demo or a test run ends with."""

    events: list[tuple[str, str, int]] = field(default_factory=list)
    rejected: list[tuple[str, str, int, str]] = field(default_factory=list)
    scored: int = 0
    bands: dict[str, int] = field(default_factory=dict)
    model_version: int = 0
    examples: int = 0
    positives: int = 0
    #: ROC AUC of the scores published at arrival (cold-start scores included).
    auc: float = float("nan")
    #: The champion, and its test-then-train ROC AUC over the learner's rolling window.
    champion: str = ""
    champion_examples: int = 0
    champion_auc: float = float("nan")
    channels: list[tuple[str, int, float, float, int, float]] = field(default_factory=list)

    def total(self, kind: str) -> int:
        """Valid events of one kind."""
        return sum(n for k, _, n in self.events if k == kind)


def run_summary(client: Client, database: str) -> RunSummary:
    """Read the summary from ClickHouse."""

    def rows(name: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in client.query(_QUERIES[name].format(db=database)).result_rows]

    out = RunSummary()
    out.events = [(k, t, int(n)) for k, t, n in rows("events")]
    out.rejected = [(t, c, int(n), r) for t, c, n, r in rows("rejected")]
    scored = rows("scored")[0]
    out.scored = int(scored[0])
    out.bands = {b: int(n) for b, n in zip("ABCD", scored[1:5], strict=True)}
    out.model_version = int(scored[5] or 0)
    examples, positives, auc = rows("learning")[0]
    out.examples, out.positives, out.auc = int(examples), int(positives or 0), float(auc)
    for name, n, area in rows("champion"):
        out.champion, out.champion_examples, out.champion_auc = str(name), int(n), float(area)
    out.channels = [
        (str(c), int(n), float(s), float(cpl), int(w), float(r))
        for c, n, s, cpl, w, r in rows("channels")
    ]
    return out
