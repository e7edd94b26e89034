"""`leadstream bench recommendations`: the budget policy against two baselines in the simulator.

Every seed draws a world (campaign headrooms vary around the defaults in
:data:`reporting.simulate.HEADROOM`) and plays the three policies on it with the
same luck; differences are paired by seed. The evaluation seeds start at 1000, away
from the seeds the policy's defaults were chosen on.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats

from reporting.recommend import SAMPLES, Guardrails, Priors
from reporting.simulate import (
    World,
    keep_current,
    proportional_to_conversions,
    recommendation_policy,
    run,
    world_from_generator,
)

TARGET = 0.10
FIRST_SEED = 1000


def recommendations_benchmark(
    seeds: int = 200, periods: int = 12, tick: Callable[[], None] | None = None,
    sensitivity_seeds: int = 50,
) -> dict[str, Any]:  # fmt: skip
    """Cumulative true expected return of each policy over ``periods``, for ``seeds`` worlds.

    Also: an oracle (the best allocation knowing the truth, no guardrails) for scale, and
    the gain over the better baseline in worlds with less and with more room to grow.
    """
    base = world_from_generator()
    totals, conversions = _play(base, range(FIRST_SEED, FIRST_SEED + seeds), periods, tick)
    sensitivity = {}
    for scale in (0.5, 3.0):
        seeds_s = range(FIRST_SEED, FIRST_SEED + sensitivity_seeds)
        t, _ = _play(base.with_headroom(scale), seeds_s, periods, tick)
        better_s = max(_BASELINES, key=lambda n: float(np.mean(t[n])))
        sensitivity[f"headroom_room_x{scale}"] = {
            "seeds": sensitivity_seeds, "better_baseline": better_s,
            **{k: v for k, v in _paired(t[_POLICY], t[better_s]).items()
               if k in ("relative_gain", "relative_gain_ci95", "p_value_gain_above_zero")},
        }  # fmt: skip
    means = {n: float(np.mean(v)) for n, v in totals.items()}
    names = (_POLICY, *_BASELINES)
    better = max(names[1:], key=lambda n: means[n])
    comparisons = {n: _paired(totals["recommendations"], totals[n]) for n in names[1:]}
    main = comparisons[better]
    return {
        "world": _describe(base, periods),
        "policy": {"guardrails": vars(Guardrails()), "priors": vars(Priors()), "samples": SAMPLES},
        "seeds": seeds,
        "periods": periods,
        "mean_cumulative_return_usd": {n: round(m, 0) for n, m in means.items()},
        "mean_cumulative_conversions": {
            n: round(float(np.mean(v)), 1) for n, v in conversions.items()
        },
        "better_baseline": better,
        "vs_baseline": comparisons,
        "share_of_oracle_gain_over_keep_current": round(
            (means[_POLICY] - means["keep_current"]) / (means["oracle"] - means["keep_current"]), 3
        ),
        "sensitivity": sensitivity,
        "targets": {
            "relative_gain_over_better_baseline": TARGET,
            "gain": main["relative_gain"],
            "ci95": main["relative_gain_ci95"],
            "p_value_gain_above_zero": main["p_value_gain_above_zero"],
            "met": main["relative_gain"] >= TARGET and main["p_value_gain_above_zero"] < 0.05,
            "ci95_low_at_or_above_target": main["relative_gain_ci95"][0] >= TARGET,
        },
        "machine": {"python": platform.python_version(), "cpu": platform.machine()},
    }


_POLICY = "recommendations"
_BASELINES = ("keep_current", "proportional_to_conversions")


def _play(
    base: World, seeds: range, periods: int, tick: Callable[[], None] | None
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Totals of return and conversions per policy (and the oracle), one entry per seed."""
    names = (_POLICY, *_BASELINES)
    totals: dict[str, list[float]] = {n: [] for n in (*names, "oracle")}
    conversions: dict[str, list[float]] = {n: [] for n in (*names, "oracle")}
    for seed in seeds:
        world = base.varied(np.random.default_rng([seed, 99]))
        policies = (recommendation_policy(seed=seed), keep_current, proportional_to_conversions)
        for name, policy in zip(names, policies, strict=True):
            out = run(world, policy, seed, periods=periods)
            totals[name].append(sum(out["return"]))
            conversions[name].append(sum(out["conversions"]))
        best = world.best_allocation()
        totals["oracle"].append(periods * world.expected_return(best))
        conversions["oracle"].append(periods * world.expected_conversions(best))
        if tick:
            tick()
    return totals, conversions


def _paired(policy: list[float], baseline: list[float]) -> dict[str, Any]:
    """Relative gain of the total return, with a paired bootstrap CI and a paired t-test."""
    a, b = np.array(policy), np.array(baseline)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(a), size=(4000, len(a)))
    boot = a[idx].sum(axis=1) / b[idx].sum(axis=1) - 1.0
    diff = a - b
    t = stats.ttest_1samp(diff, 0.0, alternative="greater")
    per_seed = a / b - 1.0
    half = stats.t.ppf(0.975, len(a) - 1) * diff.std(ddof=1) / math.sqrt(len(a))
    return {
        "relative_gain": round(float(a.sum() / b.sum() - 1.0), 4),
        "relative_gain_ci95": [round(float(x), 4) for x in np.quantile(boot, [0.025, 0.975])],
        "mean_difference_usd": round(float(diff.mean()), 0),
        "difference_ci95_usd": [
            round(float(diff.mean() - half), 0),
            round(float(diff.mean() + half), 0),
        ],
        "p_value_gain_above_zero": float(t.pvalue),
        "seeds_better": int((diff > 0).sum()),
        "per_seed_gain_quantiles": {
            q: round(float(np.quantile(per_seed, float(q))), 4) for q in ("0.05", "0.5", "0.95")
        },
    }


def _describe(world: World, periods: int) -> dict[str, Any]:
    return {
        "source": "streaming.synthetic generator seed 7, 30,000 leads over 84 days, 7-day periods",
        "response": "leads = L_max (1 - exp(-kappa spend)) through the generator's operating point;"
        " headroom L_max/L_0 per campaign (reporting.simulate.HEADROOM) times lognormal(0, 0.25)",
        "return": "true expected won revenue (USD) of each period's allocation, summed over periods",
        "warmup_periods_at_generator_allocation": 8,
        "periods": periods,
        "budget_per_period_usd": round(world.budget, 0),
        "campaigns": len(world.arms),
        "conversion_lag_shares_by_age": [round(x, 3) for x in world.lag],
        "won_share_of_conversions": round(world.won_share, 3),
    }
