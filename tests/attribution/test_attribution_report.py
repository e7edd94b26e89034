"""The report's attribution text, checked number by number against the attribution results."""

from __future__ import annotations

import re

import pytest
from clickhouse_connect.driver.client import Client

from reporting.attribution import MODELS, Attribution, AttributionView, attribution_section
from tests.attribution.conftest import Journeys

pytestmark = pytest.mark.integration

_STORY = re.compile(
    r"Which channels earned this month's ([\d,]+) SQLs depends on the model: last touch gives"
    r" (\w+) ([\d.]+)% of them, the data-driven model ([\d.]+)% \((?:90% interval ([\d.]+)% to"
    r" ([\d.]+)%|it gives (\w+) touches no credit)\), the largest move of any channel; (\w+) goes"
    r" from ([\d.]+)% to ([\d.]+)%\."
)


def test_story_numbers_are_the_models(journeys: Journeys, journeys_chdb: Client) -> None:
    db = journeys.settings.clickhouse.database
    section = attribution_section(journeys_chdb, db, journeys.start, journeys.end, "month")
    m = _STORY.fullmatch(section.story)
    assert m, section.story
    table = Attribution(journeys_chdb, db).table(journeys.start, journeys.end)
    last, dd = table.view("last_touch"), table.view("data_driven")
    assert int(m[1].replace(",", "")) == round(dd.totals["sql"])

    def share(view: AttributionView, channel: str) -> float:
        rows = view.channels
        return sum(r.sql for r in rows if r.key == channel) / sum(r.sql for r in rows)

    names = {r.key for r in last.channels} | {r.key for r in dd.channels}
    moves = {c: share(dd, c) - share(last, c) for c in names}
    biggest = max(moves, key=lambda c: abs(moves[c]))
    assert m[2] == biggest
    assert float(m[3]) == pytest.approx(100 * share(last, biggest), abs=0.051)
    assert float(m[4]) == pytest.approx(100 * share(dd, biggest), abs=0.051)
    interval = next((i for i in dd.intervals["sql"] if i.channel == biggest), None)
    if interval is None:  # direct: the data-driven model does not credit it
        assert m[7] == biggest == "direct" and share(dd, biggest) == 0.0
    else:
        assert interval.low is not None and interval.high is not None
        assert float(m[5]) == pytest.approx(100 * interval.low, abs=0.051)
        assert float(m[6]) == pytest.approx(100 * interval.high, abs=0.051)
    runner_up = sorted(moves, key=lambda c: -abs(moves[c]))[1]
    assert m[8] == runner_up
    assert float(m[9]) == pytest.approx(100 * share(last, runner_up), abs=0.051)
    assert float(m[10]) == pytest.approx(100 * share(dd, runner_up), abs=0.051)
    # the table: one row per channel, each model's shares summing to 1
    assert section.columns[1 : 1 + len(MODELS)] == list(MODELS)
    for j in range(1, 1 + len(MODELS)):
        assert sum(row[j] for row in section.rows) == pytest.approx(1.0, abs=0.002)
