"""Generated journeys with a known truth: the data-driven model finds it, rule-based ones do not."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from reporting.attribution import Attribution, AttributionTable
from sinks.clickhouse import connect
from streaming.synthetic import DIRECT, ChannelTruth, GeneratorConfig, generate
from tests.insights._data import chdb_settings, load_generated

CFG = GeneratorConfig(seed=5, leads=8000, days=40, journeys=True)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[AttributionTable, dict[str, float]]:
    settings = chdb_settings(Path(tmp_path_factory.mktemp("attribution-truth")) / "chdb")
    load_generated(settings, CFG)  # through the real ingest path
    truth = ChannelTruth()
    for _ in generate(CFG, channel_truth=truth):
        pass
    client = connect(settings.clickhouse)
    try:
        end = CFG.start + timedelta(days=CFG.days + 120)
        table = Attribution(client, settings.clickhouse.database).table(
            CFG.start, end, lookback_days=365, replicates=100
        )
    finally:
        client.close()
    return table, truth.shares()


def _shares(table: AttributionTable, model: str) -> dict[str, float]:
    rows = table.view(model).channels  # type: ignore[arg-type]
    total = sum(r.sql for r in rows)
    return {r.key: r.sql / total for r in rows}


def _mae(shares: dict[str, float], truth: dict[str, float]) -> float:
    names = set(truth) | set(shares) | {DIRECT}
    return sum(abs(shares.get(c, 0.0) - truth.get(c, 0.0)) for c in names) / len(names)


def test_data_driven_is_closest_to_the_truth(
    result: tuple[AttributionTable, dict[str, float]],
) -> None:
    table, truth = result
    errors = {m: _mae(_shares(table, m), truth) for m in table.conversions}
    assert errors["data_driven"] < 0.015
    for rule in ("first_touch", "last_touch", "last_non_direct", "linear", "position_based"):
        assert errors["data_driven"] < errors[rule] / 2, errors
    # the channel that reaches many leads and changes nothing is not rewarded
    dd = _shares(table, "data_driven")
    assert dd["paid_social"] == pytest.approx(truth["paid_social"], abs=0.02)
    assert _shares(table, "markov")["paid_social"] > truth["paid_social"] + 0.05


def test_intervals_cover_the_truth(result: tuple[AttributionTable, dict[str, float]]) -> None:
    table, truth = result
    view = table.view("data_driven")
    assert view.interval_level == 0.9
    rows = view.intervals["sql"]
    assert {r.channel for r in rows} == set(truth) - {DIRECT}
    covered = 0
    for r in rows:
        assert r.low is not None and r.high is not None
        assert r.low <= r.share <= r.high and r.high - r.low < 0.1
        covered += r.low <= truth[r.channel] <= r.high
    assert covered >= len(rows) - 2  # 90% intervals: most cover
