"""The delayed-feedback benchmark's offline replay: labels when they would arrive, the
learner's own code, the numbers the issue's targets are checked on."""

from __future__ import annotations

from cli._bench_delayed_feedback import delayed_feedback_benchmark, replay, stream
from config.settings import Settings
from online_models.bundle import bundle_for


def test_the_replay_learns_through_the_bundle_as_the_learner_does() -> None:
    leads = stream(3, 2500, 60)
    assert [d.created for d in leads] == sorted(d.created for d in leads)
    converted = [d for d in leads if d.converted_at is not None]
    assert 0.05 < len(converted) / len(leads) < 0.4
    assert all(d.converted_at is not None and d.converted_at > d.created for d in converted)
    m = Settings().models.model_copy(update={"horizon_days": 30.0, "window_days": 3.0})
    bundle = bundle_for(m)
    scores = replay(leads, "es_dfm", bundle, 30 * 86400.0)
    assert len(scores) == len(leads) and all(0 < s < 1 for s in scores)
    within = [d for d in converted if (d.converted_at or 0.0) - d.created <= 30 * 86400.0]
    assert bundle.positives == len(within) and bundle.examples == len(leads)
    assert bundle.delays.n == len(within)  # every conversion's delay taught the delay model


def test_the_benchmark_reports_every_strategy_against_horizon_and_oracle() -> None:
    out = delayed_feedback_benchmark(Settings(), 2500, 60, [3], horizons=(30.0,))
    run = out["runs"]["seed3_h30"]
    assert set(run) == {"horizon", "fake_negative", "fnw", "es_dfm", "oracle"}
    assert run["oracle"]["logloss_gap_closed"] == 1.0 and run["horizon"]["logloss_gap_closed"] == 0
    # even on a short stream the delayed-feedback policies win back most of the gap
    assert run["es_dfm"]["logloss_gap_closed"] > 0.5 and run["fnw"]["logloss_gap_closed"] > 0.5
    assert run["es_dfm"]["weekly"][0]["week"] == 1 and "ratio" in run["es_dfm"]["weekly"][0]
    cal = run["es_dfm"]["calibration_from_week_4"]
    assert 0.3 < cal["min"] <= cal["max"] < 3 and cal["weeks"] == len(run["es_dfm"]["weekly"]) - 3
    assert set(out["summary"]["es_dfm"]["targets_met"]) == {
        "logloss_gap_closed_ge_0.8", "calibration_0.85_1.15_from_week_4",
        "auc_within_0.01_after_2000_labels",
    }  # fmt: skip
