"""Champion and challengers: shadow learning, promotion by a paired test, rollback, drift."""

from __future__ import annotations

import pickle
import random

import pytest

from online_models.bundle import ModelBundle
from online_models.champion import Policy
from online_models.drift import DriftMonitor


def _stream(n: int, seed: int, flip_at: int | None = None) -> list[tuple[dict[str, float], bool]]:
    """Two informative features; after ``flip_at`` the second one's effect reverses."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.gauss(0, 1), rng.gauss(0, 1)
        sign = -1.0 if flip_at is not None and i >= flip_at else 1.0
        logit = -1.5 + 1.2 * a + sign * 1.5 * b
        out.append(({"a": a, "b": b}, rng.random() < 1 / (1 + 2.718281828 ** -logit)))
    return out


def test_a_better_challenger_is_promoted_with_its_evidence() -> None:
    # The champion learns so slowly it barely moves; the challenger is the default model.
    bundle = ModelBundle.create(
        "logistic:optimizer=sgd,learning_rate=0.00001", ("logistic",),
        policy=Policy(min_examples=500, z=3.0, margin=0.01, check_every=100), window=1000,
    )  # fmt: skip
    promoted_at = None
    for i, (x, y) in enumerate(_stream(3000, 1)):
        promotions, _ = bundle.learn_one(x, y, 0.5)
        if promotions and promoted_at is None:
            promoted_at = i
    assert promoted_at is not None and promoted_at < 1500
    assert bundle.champion == "logistic" and bundle.scorer is bundle.candidates["logistic"].model
    (record,) = bundle.history
    assert record["action"] == "promote" and record["actor"] == "learner"
    assert record["from_model"] == "logistic:optimizer=sgd,learning_rate=0.00001"
    ev = record["evidence"]
    assert ev["examples"] >= 500 and ev["z"] > 3.0 and ev["relative_improvement"] >= 0.01
    assert ev["challenger_auc"] > ev["champion_auc"]
    assert "paired" in ev["test"]


def test_an_equal_challenger_is_not_promoted() -> None:
    bundle = ModelBundle.create(
        "logistic", ("logistic:l2=0.0001",), policy=Policy(min_examples=500, check_every=50)
    )
    for x, y in _stream(6000, 2):
        bundle.learn_one(x, y, 0.5)
    assert bundle.champion == "logistic" and bundle.history == []
    # Both scored every example prequentially, on the same examples.
    assert {c.metrics.examples for c in bundle.candidates.values()} == {6000}


def test_promote_by_command_and_roll_back() -> None:
    bundle = ModelBundle.create("logistic", ("hoeffding",))
    for x, y in _stream(300, 3):
        bundle.learn_one(x, y, 0.5)
    with pytest.raises(ValueError, match="no model named 'forest'"):
        bundle.promote("forest", "cli:test")
    with pytest.raises(ValueError, match="no promotion to roll back"):
        bundle.rollback("cli:test")
    record = bundle.promote("hoeffding", "cli:test")
    assert bundle.champion == "hoeffding" and record["evidence"]["comparison"]["examples"] == 300
    for x, y in _stream(100, 4):  # the former champion keeps learning in shadow
        bundle.learn_one(x, y, 0.5)
    assert bundle.candidates["logistic"].model.n_learned == 400
    back = bundle.rollback("cli:test")
    assert bundle.champion == "logistic" and bundle.scorer is bundle.candidates["logistic"].model
    assert back["action"] == "rollback" and back["evidence"]["undoes"] == record["promotion_id"]


def test_drift_is_detected_after_the_concept_changes_and_a_fresh_challenger_takes_over() -> None:
    bundle = ModelBundle.create("logistic", policy=Policy(min_examples=1000, check_every=100))
    drifts, promotions = [], []
    for i, (x, y) in enumerate(_stream(12000, 5, flip_at=5000)):
        promoted, drift = bundle.learn_one(x, y, 0.5)
        if drift:
            drifts.append((i, drift))
        if promoted:
            promotions.append(i)
    assert drifts and 5000 <= drifts[0][0] < 5000 + 2000, [d[0] for d in drifts]
    first = drifts[0][1]
    assert first.error_recent > first.error_before
    assert first.challenger == f"logistic@drift{drifts[0][0] + 1}"
    # The fresh model, trained from the drift point, replaces the champion.
    assert promotions and promotions[0] < drifts[0][0] + 5000
    assert bundle.champion.startswith("logistic@drift")


def test_no_drift_on_a_stable_stream() -> None:
    monitor = DriftMonitor()
    rng = random.Random(6)
    fired = 0
    for _ in range(30000):
        p = rng.random() * 0.5
        fired += monitor.update(rng.random() < p, p)
    assert fired == 0


@pytest.mark.parametrize("seed", range(5))
def test_drift_seen_first_in_a_few_confident_misses_is_detected_without_false_alarms(
    seed: int,
) -> None:
    # Right after a drift the learner sees mostly old leads: here 5% of the examples are
    # conversions the old model scored 0.05, the rest stay calibrated.
    rng = random.Random(seed)
    monitor = DriftMonitor()
    fired = []
    for i in range(12000):
        if i >= 6000 and rng.random() < 0.05:
            y, p = True, 0.05
        else:
            p = rng.random() * 0.5
            y = rng.random() < p
        if monitor.update(y, p):
            fired.append(i)
    assert fired and 6000 <= fired[0] < 6000 + 1000, fired


def _late_labels(seed: int, monitor: DriftMonitor, drifted_share: float) -> list[int]:
    """A stream like the learner's after a drift at example 6000: negatives are old leads'
    (their horizon ends), calibrated; a share ``drifted_share`` of the conversions come
    from drifted leads that the old model scored low, the others stay calibrated."""
    rng = random.Random(seed)
    fired = []
    for i in range(12000):
        p = 0.05 + rng.random() * 0.3
        y = rng.random() < p
        if y and i >= 6000 and rng.random() < drifted_share:
            p = 0.03 + rng.random() * 0.05
        if monitor.update(y, p):
            fired.append(i)
    return fired


@pytest.mark.parametrize("seed", range(5))
def test_drift_in_the_conversions_is_found_before_the_test_over_every_example_finds_it(
    seed: int,
) -> None:
    both = _late_labels(seed, DriftMonitor(), drifted_share=0.3)
    without = _late_labels(seed, DriftMonitor(conversions_threshold=1e9), drifted_share=0.3)
    assert both and 6000 <= both[0] < 6000 + 1500, both
    assert not without or without[0] > both[0], (both, without)
    # The same stream without the drift raises no alarm.
    assert _late_labels(seed, DriftMonitor(), drifted_share=0.0) == []


def test_a_snapshot_from_before_the_conversions_test_loads_with_it() -> None:
    monitor = DriftMonitor(grace=10)
    state = {k: v for k, v in monitor.__dict__.items()
             if not k.startswith("_conversions") and not k.startswith("conversions_")}  # fmt: skip
    old = DriftMonitor.__new__(DriftMonitor)
    old.__setstate__(state)
    restored = pickle.loads(pickle.dumps(old))
    assert restored.conversions_threshold == 25.0
    assert not any(restored.update(True, 0.5) for _ in range(50))
