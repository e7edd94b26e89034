"""The recommendation engine on known truths: estimates, the optimiser, guardrails, the simulator."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from reporting._period import Period
from reporting.recommend import CohortStats, Guardrails, advise, allocate, bounds, fit, optimise
from reporting.simulate import (
    Observation,
    keep_current,
    proportional_to_conversions,
    recommendation_policy,
    run,
    world_from_generator,
)


def _cohorts(rng: np.random.Generator, truth: dict[str, tuple[float, float, float]],
             periods: int = 30, lag: tuple[float, ...] = (0.5, 0.3, 0.2)) -> list[CohortStats]:  # fmt: skip
    """Cohorts from ``leads = scale * (spend/100)^b``, ``rate``; spend varies ±40%; lagged conversions."""
    out = []
    for cid, (scale, b, rate) in truth.items():
        for t in range(periods):
            spend = 100.0 * float(rng.lognormal(0, 0.4))
            leads = int(rng.poisson(scale * (spend / 100.0) ** b))
            conv = rng.multinomial(int(rng.binomial(leads, rate)), lag)
            age = periods - 1 - t
            seen = np.cumsum(conv)[: age + 1].tolist() + [int(conv.sum())] * max(
                0, age + 1 - len(lag)
            )
            out.append(CohortStats(cid, "x", t, spend, leads, tuple(seen), 1000.0 * seen[-1]))
    return out


def test_fit_recovers_elasticity_and_rate_with_honest_intervals() -> None:
    truth = {"a": (200.0, 0.4, 0.10), "b": (80.0, 0.8, 0.25)}
    hits = 0
    for seed in range(10):
        posts = {p.campaign_id: p for p in fit(_cohorts(np.random.default_rng(seed), truth))}
        for cid, (_, b, rate) in truth.items():
            p = posts[cid]
            sd = float(np.sqrt(p.coef_cov[1, 1]))
            hits += abs(p.coef_mean[1] - b) < 1.96 * sd
            assert p.coef_mean[1] == pytest.approx(b, abs=0.2)
            # young cohorts count with their maturity: no downward bias from the lag
            assert p.rate_alpha / (p.rate_alpha + p.rate_beta) == pytest.approx(rate, rel=0.12)
    assert hits >= 17  # ~95% coverage of 20 intervals


def test_optimise_equalises_marginal_returns_within_bounds() -> None:
    rng = np.random.default_rng(3)
    k, b, ref = rng.uniform(1, 10, 12), rng.uniform(0.2, 0.9, 12), rng.uniform(50, 500, 12)
    lo, hi = ref * 0.5, ref * 2.0
    budget = float(ref.sum())
    s = optimise(k, b, ref, budget, lo, hi)
    assert s.sum() == pytest.approx(budget) and np.all(s >= lo - 1e-9) and np.all(s <= hi + 1e-9)
    marginal = k * b * s ** (b - 1) / ref**b
    free = (s > lo + 1e-6) & (s < hi - 1e-6)
    assert free.sum() >= 2
    lam = marginal[free].mean()
    assert np.allclose(marginal[free], lam, rtol=1e-4)
    assert np.all(marginal[s >= hi - 1e-6] >= lam * (1 - 1e-4))
    assert np.all(marginal[s <= lo + 1e-6] <= lam * (1 + 1e-4))
    with pytest.raises(ValueError, match="outside the bounds"):
        optimise(k, b, ref, float(hi.sum()) * 1.1, lo, hi)


def test_allocation_keeps_the_budget_and_the_guardrails() -> None:
    truth = {f"c{i}": (50.0 + 40 * i, 0.3 + 0.1 * i, 0.05 + 0.04 * i) for i in range(6)}
    posts = fit(_cohorts(np.random.default_rng(1), truth, periods=12))
    current = {f"c{i}": 100.0 + 50 * i for i in range(6)}
    g = Guardrails(max_shift=0.1, max_increase=0.3, max_decrease=0.2)
    plan = allocate(posts, current, g, np.random.default_rng(0))
    cur, new = np.array(list(current.values())), np.array([plan[c] for c in current])
    lo, hi = bounds(cur, float(cur.sum()), g)
    assert new.sum() == pytest.approx(cur.sum())
    assert np.all(new >= lo - 1e-6) and np.all(new <= hi + 1e-6)
    assert 0.5 * np.abs(new - cur).sum() == pytest.approx(0.1 * cur.sum(), rel=1e-6)
    # the best campaign (highest rate and elasticity) gains, the worst loses
    assert new[-1] > cur[-1] and new[0] < cur[0]


def test_advice_explains_moves_with_effects() -> None:
    truth = {f"c{i}": (50.0 + 40 * i, 0.3 + 0.1 * i, 0.05 + 0.04 * i) for i in range(4)}
    posts = fit(_cohorts(np.random.default_rng(2), truth, periods=12))
    period = Period.containing("weekly", date(2026, 3, 4))
    recs = advise(posts, {f"c{i}": 100.0 for i in range(4)}, Guardrails(), period, currency="EUR")
    assert recs.period_start == period.end + timedelta(days=1)
    assert recs.moves and all(
        m.text.startswith(f"Move EUR {m.amount:,.0f} from ") for m in recs.moves
    )
    assert sum(m.amount for m in recs.moves) <= 0.2 * 400 + 1e-6
    assert (
        recs.conversions is not None
        and recs.conversions.low <= recs.conversions.mean <= recs.conversions.high
    )
    assert recs.revenue is not None and recs.revenue.probability_positive > 0.5


def test_young_data_claims_no_revenue_and_still_moves_money_to_conversions() -> None:
    # Three weekly periods: no cohort is 4 periods old, so won revenue is not complete
    # anywhere and revenue per conversion is unknown (not zero).
    truth = {f"c{i}": (80.0, 0.5, 0.04 + 0.08 * i) for i in range(4)}
    posts = fit(_cohorts(np.random.default_rng(3), truth, periods=3))
    assert posts and not any(p.value_known for p in posts)
    period = Period.containing("weekly", date(2026, 3, 4))
    current = {f"c{i}": 100.0 for i in range(4)}
    recs = advise(posts, current, Guardrails(), period, currency="USD")
    assert recs.revenue is None and recs.conversions is not None
    assert "Revenue is not estimated yet" in recs.summary and "USD 0" not in recs.summary
    assert recs.moves and all(m.revenue is None for m in recs.moves)
    assert all("USD 0 expected revenue" not in m.text for m in recs.moves)
    assert all(c.revenue is None for c in recs.campaigns)
    # The split maximises conversions: the best-converting campaign gains, the worst loses.
    by_id = {c.campaign_id: c for c in recs.campaigns}
    assert by_id["c3"].change > 0 > by_id["c0"].change
    assert recs.conversions.mean > 0


def test_proportional_baseline_follows_last_period_conversions() -> None:
    obs = Observation(3, (), {"a": 100.0, "b": 300.0, "c": 0.0}, {"a": 3, "b": 1}, {})
    assert proportional_to_conversions(obs) == {"a": 300.0, "b": 100.0, "c": 0.0}
    assert keep_current(obs) == {"a": 100.0, "b": 300.0, "c": 0.0}


def test_policy_beats_both_baselines_in_the_simulated_market() -> None:
    base = world_from_generator(leads=8000, days=56)
    gains = []
    for seed in range(6):
        world = base.varied(np.random.default_rng([seed, 99]))
        totals = {
            name: sum(run(world, policy, seed, periods=12)["return"])
            for name, policy in (("rec", recommendation_policy(seed=seed)), ("keep", keep_current),
                                 ("prop", proportional_to_conversions))
        }  # fmt: skip
        gains.append(totals["rec"] / max(totals["keep"], totals["prop"]) - 1)
    assert min(gains) > 0.0 and float(np.mean(gains)) > 0.05


def test_the_oracle_allocation_cannot_be_improved_by_moving_money() -> None:
    world = world_from_generator(leads=4000, days=28).varied(np.random.default_rng(5))
    best = world.best_allocation()
    top = world.expected_return(best)
    assert sum(best.values()) == pytest.approx(world.budget)
    assert top > world.expected_return({a.campaign_id: a.spend for a in world.arms})
    rng, ids = np.random.default_rng(0), list(best)
    for _ in range(300):
        i, j = rng.choice(len(ids), 2, replace=False)
        moved = dict(best)
        step = min(moved[ids[i]], float(rng.uniform(0, 0.02)) * world.budget)
        moved[ids[i]] -= step
        moved[ids[j]] += step
        assert world.expected_return(moved) <= top + 1e-6
