"""The detectors on series with known truth: seasonality, noise models, robustness, state."""

from __future__ import annotations

import math
import random

import pytest

from online_models.anomaly import ReferenceDistribution, SeasonalBaseline, psi

HOUR, DAY = 3600, 86_400
# Hour-of-day and weekday profiles (Monday first), like marketing traffic.
HOD = [0.2] * 6 + [0.6, 1.0, 1.6, 2.0, 2.0, 1.8, 1.6, 1.8, 2.0, 1.8, 1.4, 1.0, 0.8, 0.6, 0.4, 0.3, 0.2, 0.2]
DOW = [1.1, 1.15, 1.1, 1.05, 0.9, 0.35, 0.3]


def poisson(rng: random.Random, lam: float) -> int:
    # Knuth for small means, a normal approximation for large ones (both fine here).
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def hourly_mean(t: int, level: float = 20.0) -> float:
    dow = ((t // DAY) + 3) % 7
    return level * DOW[dow] * HOD[(t % DAY) // HOUR] / (sum(HOD) / 24)


def test_hourly_counts_learn_weekday_and_hour_of_day_and_rarely_false_alarm() -> None:
    rng = random.Random(3)
    model = SeasonalBaseline("count", window_s=HOUR, warmup=14 * 24)
    alarms = 0
    start = 4 * DAY  # a Monday
    for h in range(10 * 7 * 24):  # ten weeks
        t = start + h * HOUR
        x = poisson(rng, hourly_mean(t))
        v = model.check_one(x, t)
        alarms += v is not None and v.surprise >= 5
        model.learn_one(x, t)
    assert alarms <= 1  # 8 weeks checked: at most one false alarm
    monday_noon, sunday_noon = start + 70 * DAY + 12 * HOUR, start + 76 * DAY + 12 * HOUR
    assert model.expected(monday_noon) == pytest.approx(hourly_mean(monday_noon), rel=0.15)
    assert model.expected(sunday_noon) == pytest.approx(hourly_mean(sunday_noon), rel=0.2)
    # Sunday night's normal count is news at Monday noon, not on a Sunday night.
    sunday_night = start + 76 * DAY + 2 * HOUR
    quiet = round(hourly_mean(sunday_night))
    collapse = model.check_one(quiet, monday_noon)
    assert collapse is not None and collapse.direction == "down" and collapse.surprise > 6
    night = model.check_one(quiet, sunday_night)
    assert night is not None and night.surprise < 2


def test_an_anomaly_barely_moves_the_baseline_and_a_spike_is_found_both_ways() -> None:
    rng = random.Random(5)
    model = SeasonalBaseline("count", window_s=DAY, warmup=14)
    for d in range(60):
        model.learn_one(poisson(rng, 200 * DOW[(d + 3) % 7]), d * DAY)
    before = model.expected(60 * DAY)
    for d in range(60, 63):  # three days at five times the volume
        v = model.check_one(1000 * DOW[(d + 3) % 7], d * DAY)
        assert v is not None and v.direction == "up" and v.surprise > 10
        model.learn_one(1000 * DOW[(d + 3) % 7], d * DAY)
    assert model.expected(60 * DAY) < before * 1.5
    assert model.check_one(200 * DOW[(63 + 3) % 7], 63 * DAY).surprise < 3  # type: ignore[union-attr]


def test_ratio_drop_is_judged_by_its_denominator() -> None:
    rng = random.Random(7)
    model = SeasonalBaseline("ratio", window_s=DAY, warmup=14)
    for d in range(40):
        n = 400 if (d + 3) % 7 < 5 else 80
        model.learn_one(sum(rng.random() < 0.12 for _ in range(n)) / n, d * DAY, n)
    assert model.expected(40 * DAY) == pytest.approx(0.12, abs=0.02)
    big = model.check_one(0.05, 40 * DAY, 400)
    small = model.check_one(0.05, 40 * DAY, 40)
    assert big is not None and small is not None
    assert big.surprise > 4 > small.surprise  # the same rate on 40 leads is no news
    assert big.low < 0.12 < big.high


def test_costs_are_log_normal_and_state_survives_a_round_trip() -> None:
    rng = random.Random(11)
    model = SeasonalBaseline("cost", window_s=DAY, warmup=14)
    for d in range(50):
        leads = 80
        model.learn_one(50.0 * math.exp(rng.gauss(0, 0.1)), d * DAY, leads)
    doubled = model.check_one(100.0, 50 * DAY, 80)
    assert doubled is not None and doubled.direction == "up" and doubled.surprise > 5
    assert doubled.low < 50 < doubled.high < 100
    copy = SeasonalBaseline.from_dict(model.to_dict())
    assert copy.check_one(100.0, 50 * DAY, 80) == doubled
    copy.learn_one(55.0, 50 * DAY, 80)
    model.learn_one(55.0, 50 * DAY, 80)
    assert copy.to_dict() == model.to_dict()


def test_psi_reference_flags_a_shifted_mix_and_does_not_learn_it() -> None:
    ref = ReferenceDistribution(warmup=3, threshold=0.25)
    normal = {"US": 300.0, "DE": 100.0, "IN": 90.0, "BR": 60.0}
    for _ in range(5):
        ref.learn_one(normal)
    assert ref.check_one(normal) == pytest.approx(0.0, abs=1e-9)
    shifted = {"US": 100.0, "DE": 100.0, "IN": 300.0, "BR": 60.0}
    value = ref.check_one(shifted)
    assert value is not None and value > 0.25
    ref.learn_one(shifted)  # a drifted window does not become the reference
    assert ref.check_one(shifted) == pytest.approx(value)
    assert ref.top_shifts(shifted, 1)[0][0] in ("US", "IN")
    assert psi({"a": 1.0}, {"a": 2.0}) == pytest.approx(0.0)


def test_bad_family_is_refused() -> None:
    with pytest.raises(ValueError, match="family must be"):
        SeasonalBaseline("gauge")  # type: ignore[arg-type]
