"""Delayed-feedback strategies on the model bundle: weights, calibration, snapshots."""

from __future__ import annotations

import heapq
import math
import pickle
import random

import pytest

from online_models.bundle import ModelBundle
from online_models.delayed_feedback import DelayModel, es_dfm_weight, fnw_weight

DAY = 86_400.0


def _stream(seed: int, n: int) -> list[tuple[float, dict[str, float], float | None]]:
    """Leads every hour: one feature, P(convert) from it, delays of days (exponential)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        v = rng.gauss(0.0, 1.0)
        p = 1.0 / (1.0 + math.exp(-(-1.8 + 0.9 * v)))
        at = i * 3600.0 + rng.expovariate(1 / (4 * DAY)) if rng.random() < p else None
        out.append((i * 3600.0, {"v": v, "channel=ads": 1.0}, at))
    return out


def _replay(policy: str, n: int = 6000, window_s: float = DAY) -> tuple[float, float]:
    """Mean published score and conversion rate of the second half, as the learner learns."""
    bundle = ModelBundle.create()
    bundle.window_s = window_s
    leads = _stream(1, n)
    heap: list[tuple[float, int, int, str]] = [
        (t, 1, i, "lead") for i, (t, _, _) in enumerate(leads)
    ]
    heapq.heapify(heap)
    scores = [0.0] * n
    inside: set[int] = set()
    while heap:
        t, _, i, kind = heapq.heappop(heap)
        created, x, at = leads[i]
        if kind == "lead":
            scores[i] = bundle.published_score(bundle.scorer.predict_proba_one(x)[True], policy)
            bundle.learn_provisional(x, t, policy, str(i))
            heapq.heappush(heap, (at if at is not None else t + 30 * DAY, 0, i, "label"))
            if policy == "es_dfm":
                heapq.heappush(heap, (t + window_s, 0, i, "window"))
        elif kind == "window":
            if i not in inside:
                bundle.learn_window(x)
        else:
            delay = None if at is None else at - created
            if delay is not None and delay <= window_s:
                inside.add(i)
            bundle.learn_one(x, at is not None, scores[i], policy, created, str(i), created, delay)
    half = n // 2
    return sum(scores[half:]) / (n - half), sum(a is not None for _, _, a in leads[half:]) / (
        n - half
    )


@pytest.mark.parametrize("policy", ["fnw", "es_dfm", "fake_negative"])
def test_delayed_feedback_policies_publish_calibrated_probabilities(policy: str) -> None:
    predicted, observed = _replay(policy)
    assert predicted / observed == pytest.approx(1.0, abs=0.15)


def test_fake_negatives_without_weights_learn_p_over_one_plus_p() -> None:
    """What fnw's weights correct: unweighted, the model's own output is too low."""
    bundle = ModelBundle.create()
    x = {"channel=ads": 1.0}
    for i in range(4000):
        bundle.learn_provisional(x, float(i), "fake_negative")
        if i % 5 == 0:
            bundle.learn_one(x, True, 0.2, "fake_negative", float(i))
    q = bundle.scorer.predict_proba_one(x)[True]
    assert q == pytest.approx(0.2 / 1.2, abs=0.02)
    assert bundle.published_score(q, "fake_negative") == pytest.approx(0.2, abs=0.03)


def test_weights_make_the_biased_sample_unbiased() -> None:
    """Expected weighted labels under the fake-negative sample equal p (FNW's derivation)."""
    for p in (0.05, 0.3, 0.8):
        for f in (0.0, 0.4, 0.9):
            delayed = p * (1 - f)
            # the sample: p positives (all learned once), p(1-f) learned once more after a
            # negative, (1 - p) + p(1-f) negatives at the window
            pos = p * es_dfm_weight(True, p, f)
            neg = (1 - p + delayed) * es_dfm_weight(False, p, f)
            assert pos / (pos + neg) == pytest.approx(p)
    assert fnw_weight(True, 0.3) == es_dfm_weight(True, 0.3, 0.0)


def test_the_delay_model_and_the_window_live_in_the_snapshot() -> None:
    bundle = ModelBundle.create("logistic", ("logistic:optimizer=sgd",))
    bundle.window_s = 2 * DAY
    for d in (0.5, 1, 3, 8):
        bundle.delays.update("channel=ads", d * DAY)
    bundle.learn_provisional({"channel=ads": 1.0}, 1.0, "fnw", "lead-1")
    restored = pickle.loads(pickle.dumps(bundle))
    assert restored.window_s == 2 * DAY and restored.delays.n == 4
    assert restored.delays.cdf("channel=ads", 2 * DAY) == bundle.delays.cdf("channel=ads", 2 * DAY)
    assert restored._given == {} and bundle._given  # scorers never load the learner's scores
    old = dict(bundle.__dict__)
    for name in ("window_s", "delays", "calibration", "_given"):
        del old[name]
    legacy = ModelBundle.__new__(ModelBundle)
    legacy.__setstate__(old)  # a snapshot from before delayed feedback
    assert legacy.delays.n == 0 and legacy.calibration.weeks() == []


def test_candidates_are_judged_on_the_score_they_gave_when_the_lead_was_scored() -> None:
    bundle = ModelBundle.create("logistic", ("logistic:optimizer=sgd",))
    x = {"v": 1.0, "channel=ads": 1.0}
    given = {n: c.model.predict_proba_one(x)[True] for n, c in bundle.candidates.items()}
    bundle.learn_provisional(x, 1.0, "fnw", "a")  # scored, then learned as a negative
    for i in range(50):  # the models move on before a's label arrives
        bundle.learn_provisional({"v": float(i), "channel=ads": 1.0}, 2.0 + i, "fnw", f"o{i}")
    bundle.learn_one(x, True, 0.5, "fnw", 1.0, "a", 1.0, DAY)
    for name, c in bundle.candidates.items():
        ((y, p),) = list(c.metrics.recent)
        assert y is True and p == pytest.approx(given[name])


def test_delay_models_merge_and_grow() -> None:
    a, b = DelayModel(30 * DAY), DelayModel(30 * DAY)
    for d in (1, 2, 3):
        a.update("channel=x", d * DAY)
    b.update("channel=y", 20 * DAY)
    b.update("channel=y", 45 * DAY)  # past the horizon: not a conversion
    both = a + b
    assert both.n == 4
    cdf = [both.cdf("channel=x", d * DAY) for d in (0, 1, 2, 5, 10, 29, 30)]
    assert cdf == sorted(cdf) and cdf[0] == 0.0 and cdf[-1] == 1.0
    with pytest.raises(ValueError, match="bins"):
        _ = a + DelayModel(90 * DAY)
