"""A versioned model bundle, its Redis store, and what a score means to sales.

One bundle is what the learner publishes and every scorer loads: the champion
conversion model (``scorer``) with its challengers, the revenue model, their
prequential metrics, the drift monitor and the promotion history.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog

# Re-exported: callers import these from here.
from online_models.bands import RAW_FIELD as RAW_FIELD
from online_models.bands import band as band
from online_models.bands import reason as reason
from online_models.bands import value_band as value_band
from online_models.calibration import WeeklyCalibration
from online_models.champion import Candidate, Comparison, Policy, compare
from online_models.delayed_feedback import (
    POLICIES,
    DelayModel,
    es_dfm_weight,
    fnw_weight,
    published,
    segment_of,
)
from online_models.delayed_feedback import (  # re-exported: scorers and tests import it here
    from_fake_negatives as from_fake_negatives,
)
from online_models.drift import CONVERSIONS_DELTA, CONVERSIONS_THRESHOLD, DriftMonitor
from online_models.kinds import Defaults, Scorer, build_model
from online_models.lead_scorer import LeadScorer
from online_models.model_store import (
    ModelStore as ModelStore,  # re-exported: callers import it here
)
from online_models.prequential import ClassificationMetrics, RegressionMetrics
from online_models.revenue import RevenueModel

log = structlog.get_logger(__name__)

#: Promotions kept in the bundle (ClickHouse keeps them all).
_KEEP_HISTORY = 50
#: Leads whose candidates' scores the learner keeps until their label arrives (a few
#: hundred bytes each); older ones are judged on the candidates' scores at label time.
_KEEP_GIVEN = 100_000


@dataclass(frozen=True)
class DriftEvent:
    """A drift of the champion's error, found at the learner's ``example``."""

    model: str
    example: int
    error_recent: float
    error_before: float
    challenger: str


@dataclass
class ModelBundle:
    """Everything a scorer needs, published together under one version.

    ``published`` holds the prequential metrics of the published scores: each
    example's score was given before its label was known. Each candidate's
    ``metrics`` are prequential on the learner: the candidate scored the example just
    before learning it. ``format`` changes when a snapshot of an older layout can no
    longer be read (see :meth:`ModelStore.load`).
    """

    version: int = 0
    scorer: Scorer = field(default_factory=LeadScorer)
    revenue: RevenueModel = field(default_factory=RevenueModel)
    published: ClassificationMetrics = field(default_factory=ClassificationMetrics)
    examples: int = 0
    positives: int = 0
    champion: str = "logistic"
    candidates: dict[str, Candidate] = field(default_factory=dict)
    revenue_metrics: RegressionMetrics = field(default_factory=RegressionMetrics)
    drift: DriftMonitor = field(default_factory=DriftMonitor)
    policy: Policy = field(default_factory=Policy)
    defaults: Defaults = field(default_factory=Defaults)
    history: list[dict[str, Any]] = field(default_factory=list)
    origin: str = "learner"  # or "backfill": a learner adopts a bundle it did not publish
    format: int = 2
    #: Latest scoring time (Unix seconds) of the provisional negatives learned so far.
    scored_through: float = 0.0
    #: ``es_dfm``: the window after which a lead not converted is learned as a negative.
    window_s: float = 86_400.0
    #: Conversion delays learned so far (``es_dfm`` weighs its examples with them).
    delays: DelayModel = field(default_factory=lambda: DelayModel(90 * 86_400.0))
    #: The published scores against the outcomes, by week of the leads' creation.
    calibration: WeeklyCalibration = field(default_factory=lambda: WeeklyCalibration())
    _given: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.champion not in self.candidates:
            self.candidates[self.champion] = Candidate(
                self.champion, self.scorer, ClassificationMetrics()
            )

    @classmethod
    def create(
        cls,
        champion: str = "logistic",
        challengers: tuple[str, ...] = (),
        defaults: Defaults | None = None,
        window: int = 5000,
        threshold: float = 0.25,
        policy: Policy | None = None,
        drift_delta: float = 0.05,
        revenue_min_examples: int = 30,
        drift_threshold: float = 100.0,
        drift_conversions: tuple[float, float] = (CONVERSIONS_DELTA, CONVERSIONS_THRESHOLD),
    ) -> ModelBundle:
        """An untrained bundle: the champion built from its spec, and its challengers.

        >>> b = ModelBundle.create("logistic", ("hoeffding",))
        >>> b.champion, sorted(b.candidates)
        ('logistic', ['hoeffding', 'logistic'])
        """
        d = defaults or Defaults()
        scorer = build_model(champion, d)
        candidates = {
            name: Candidate(name, build_model(name, d), ClassificationMetrics(window, threshold))
            for name in (champion, *challengers)
        }
        candidates[champion].model = scorer
        return cls(
            scorer=scorer, champion=champion, candidates=candidates, defaults=d,
            revenue=RevenueModel(min_examples=revenue_min_examples),
            revenue_metrics=RegressionMetrics(window),
            drift=DriftMonitor(
                drift_delta, drift_threshold,
                conversions_delta=drift_conversions[0], conversions_threshold=drift_conversions[1],
            ),
            policy=policy or Policy(),
        )  # fmt: skip

    # -- scoring --------------------------------------------------------------------

    def expected_revenue(self, x: dict[str, float] | None = None, default: float = 0.0) -> float:
        """Expected revenue if won: per lead from the revenue model, else the mean so far."""
        if not self.revenue.mean:
            return default
        return self.revenue.predict_one(x)

    # -- learning -------------------------------------------------------------------

    def learn_one(
        self,
        x: dict[str, float],
        y: bool,
        published_score: float,
        policy: str | bool = "horizon",
        scored_at: float = 0.0,
        lead_id: str | None = None,
        created_at: float | None = None,
        delay_s: float | None = None,
    ) -> tuple[list[Comparison], DriftEvent | None]:
        """Test-then-train every candidate on one labelled example.

        ``policy`` is the label policy (:mod:`online_models.delayed_feedback`; ``True``
        means ``fake_negative``, as before policies had names). With ``horizon`` the
        example is learned as it is. With the others the lead was seen when it was scored
        (:meth:`learn_provisional`): a positive is learned (again) as a positive, with
        its importance weight; a negative (the horizon passed) is only scored. Under
        ``fake_negative`` a candidate started after the lead was scored (``scored_at``)
        never learned its provisional negative, so it learns it now; under ``fnw`` and
        ``es_dfm`` it leaves out the leads scored before it started. ``delay_s`` (creation to conversion)
        teaches a positive's delay to :attr:`delays`.

        Each candidate is judged on the score it gave when the lead was scored, if the
        learner saw the lead then (``lead_id``; a metric fair under delay: neither the
        lead's fake negative nor a later model is in it), else on its score now.

        Returns the comparisons that led to a promotion (at most one) and a drift, if
        one was detected at this example.
        """
        policy = _policy_name(policy)
        self.published.update(y, published_score)
        if created_at is not None:
            self.calibration.update(created_at, y, published_score)
        self.examples += 1
        self.positives += y
        given = self._given.pop(lead_id, None) if lead_id is not None else None
        f = 0.0
        if policy == "es_dfm":
            segment = segment_of(x)
            if y and delay_s is not None:
                self.delays.update(segment, delay_s)
            f = self.delays.cdf(segment, self.window_s)
        p_champion = 0.0
        for c in self.candidates.values():
            if policy == "horizon":
                p = c.model.predict_learn_one(x, y)
            elif policy == "fake_negative":
                missed = scored_at <= c.scored_through  # its provisional came before c
                if y or missed:
                    p = from_fake_negatives(c.model.predict_learn_one(x, y))
                    if y and missed:
                        c.model.learn_one(x, False)
                else:
                    p = from_fake_negatives(c.model.predict_proba_one(x)[True])
            else:  # fnw, es_dfm: weighted examples, the model's q is the probability
                p = c.model.predict_proba_one(x)[True]
                # A candidate started after the lead was scored never saw its negative, and
                # learning it now would come weeks late for the leads that do not convert:
                # it learns from the leads scored after it started, as a fresh stream.
                if y and scored_at > c.scored_through:
                    c.model.learn_one(x, True, w=es_dfm_weight(True, p, f))
            if given is not None and c.name in given:
                p = given[c.name]
            elif (
                policy in ("fnw", "es_dfm")
                and c.name == self.champion
                and len(self.candidates) == 1
            ):
                p = published_score  # what it gave when the lead was scored
            c.metrics.update(y, p)
            if c.name == self.champion:
                p_champion = p
        drifted = self._drift(y, p_champion)
        promoted: list[Comparison] = []
        if len(self.candidates) > 1 and self.examples % self.policy.check_every == 0:
            best = self._best_challenger()
            if best is not None:
                self.promote(best.challenger, "learner", best.evidence())
                promoted.append(best)
        return promoted, drifted

    def learn_provisional(
        self,
        x: dict[str, float],
        scored_at: float,
        policy: str | bool = "fake_negative",
        lead_id: str | None = None,
    ) -> None:
        """A lead just scored: every candidate scores it and, but for ``es_dfm``, learns it
        as a negative (``fnw``: with weight ``(1 - p)(1 + p)``).

        With ``lead_id`` and challengers, each candidate's score is kept (not in the
        snapshot) until the lead's label arrives (:meth:`learn_one`).
        """
        policy = _policy_name(policy)
        # With the champion alone its published score is the one it gave (learn_one's
        # published_score): no scoring here then, unless the weight needs it (fnw).
        keep = lead_id is not None and len(self.candidates) > 1
        given: dict[str, float] = {}
        for c in self.candidates.values():
            if policy == "fake_negative" and not keep:
                c.model.learn_one(x, False)
                continue
            if policy == "es_dfm" and not keep:
                continue
            q = c.model.predict_proba_one(x)[True]
            given[c.name] = published(policy, q)
            if policy == "fake_negative":
                c.model.learn_one(x, False)
            elif policy == "fnw":
                c.model.learn_one(x, False, w=fnw_weight(False, q))
        if keep and lead_id is not None:
            self._given[lead_id] = given
            while len(self._given) > _KEEP_GIVEN:
                del self._given[next(iter(self._given))]
        self.scored_through = max(self.scored_through, scored_at)

    def learn_window(self, x: dict[str, float], scored_at: float = math.inf) -> None:
        """A lead not converted when its window passed (``es_dfm``): a weighted negative,
        for each candidate that was there when the lead was scored (``scored_at``)."""
        f = self.delays.cdf(segment_of(x), self.window_s)
        for c in self.candidates.values():
            if scored_at <= c.scored_through:
                continue
            q = c.model.predict_proba_one(x)[True]
            c.model.learn_one(x, False, w=es_dfm_weight(False, q, f))

    def published_score(self, q: float, policy: str | bool) -> float:
        """The probability published for a model output ``q`` under ``policy``."""
        return published(_policy_name(policy), q)

    def __getstate__(self) -> dict[str, Any]:
        # The candidates' scores of leads still waiting for a label stay with the learner:
        # every scorer loads the snapshot, and a learner restarted without them judges
        # those leads by the candidates' scores at label time.
        state = dict(self.__dict__)
        state["_given"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Snapshots from before delayed-feedback strategies lack these.
        state.setdefault("_given", {})
        state.setdefault("window_s", 86_400.0)
        state.setdefault("delays", DelayModel(90 * 86_400.0))
        state.setdefault("calibration", WeeklyCalibration())
        self.__dict__.update(state)

    def learn_revenue(self, x: dict[str, float] | None, revenue: float) -> None:
        """Test-then-train the revenue model on one won deal (``x`` None: features unknown)."""
        if x is None:
            self.revenue.update(revenue)
            return
        if self.revenue.n_learned >= self.revenue.min_examples:
            self.revenue_metrics.update(revenue, self.revenue.predict_one(x))
        self.revenue.learn_one(x, revenue)

    def _drift(self, y: bool, p: float) -> DriftEvent | None:
        if not self.drift.update(y, p):
            return None
        recent = list(self.candidates[self.champion].metrics.recent)
        tail, head = recent[-500:], recent[:-500]
        err = lambda pairs: sum((q - t) ** 2 for t, q in pairs) / max(1, len(pairs))  # noqa: E731
        # Adapt: a fresh model of the champion's kind learns from the drift point on and
        # is promoted by the usual test once it is significantly better.
        for name in [n for n in self.candidates if "@drift" in n and n != self.champion]:
            del self.candidates[name]
        base = self.champion.split("@", 1)[0]
        name = f"{base}@drift{self.examples}"
        self.add_challenger(name)
        self.drift.reset()
        return DriftEvent(self.champion, self.examples, err(tail), err(head), name)

    def add_challenger(self, name: str) -> None:
        """Start a fresh challenger (its spec is the name up to an ``@``)."""
        champion_metrics = self.candidates[self.champion].metrics
        self.candidates[name] = Candidate(
            name,
            build_model(name.split("@", 1)[0], self.defaults),
            ClassificationMetrics(champion_metrics.window, champion_metrics.threshold),
            since=self.examples,
            scored_through=self.scored_through,
        )

    def _best_challenger(self) -> Comparison | None:
        champion = self.candidates[self.champion]
        wins = [
            c
            for name, cand in self.candidates.items()
            if name != self.champion and (c := compare(champion, cand, self.policy)) is not None
            and c.better
        ]  # fmt: skip
        return max(wins, key=lambda c: c.z, default=None)

    # -- champion changes -----------------------------------------------------------

    def promote(
        self, name: str, actor: str, evidence: dict[str, Any] | None = None, action: str = "promote"
    ) -> dict[str, Any]:
        """Make ``name`` the champion; returns the promotion record (``to_version`` is
        filled when the bundle is next published)."""
        if name not in self.candidates:
            raise ValueError(
                f"no model named {name!r}; models: {', '.join(sorted(self.candidates))}"
            )
        if name == self.champion:
            raise ValueError(f"{name!r} is already the champion")
        if evidence is None:
            champion = self.candidates[self.champion]
            comparison = compare(champion, self.candidates[name], Policy(min_examples=2))
            evidence = {"comparison": comparison.evidence() if comparison else None}
        record = {
            "promotion_id": uuid.uuid4().hex, "at": time.time(), "action": action,
            "from_model": self.champion, "to_model": name, "from_version": self.version,
            "to_version": None, "actor": actor, "evidence": evidence,
            "examples": self.examples,
        }  # fmt: skip
        self.champion = name
        self.scorer = self.candidates[name].model
        self.drift.reset()
        self.history = [*self.history, record][-_KEEP_HISTORY:]
        return record

    def rollback(self, actor: str) -> dict[str, Any]:
        """Undo the latest champion change: its former champion (which kept learning in
        shadow) is champion again."""
        if not self.history:
            raise ValueError("no promotion to roll back")
        last = self.history[-1]
        previous = last["from_model"]
        if previous not in self.candidates:
            raise ValueError(f"the former champion {previous!r} is no longer kept")
        return self.promote(previous, actor, {"undoes": last["promotion_id"]}, action="rollback")

    def summary(self) -> list[dict[str, Any]]:
        """One row per model: name, role, examples and rolling metrics."""
        out = []
        for name, c in self.candidates.items():
            r = c.metrics.report("rolling")
            out.append({
                "model": name, "role": "champion" if name == self.champion else "challenger",
                "since": c.since, "examples": c.metrics.examples, "auc": r["auc"],
                "logloss": r["logloss"], "brier": r["brier"],
            })  # fmt: skip
        return out


def _policy_name(policy: str | bool) -> str:
    """A label policy's name; ``True``/``False`` as the former ``fake_negatives`` flag."""
    if isinstance(policy, bool):
        return "fake_negative" if policy else "horizon"
    if policy not in POLICIES:
        raise ValueError(f"label policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    return policy


def defaults_for(m: Any) -> Defaults:
    """Model parameters from the ``models`` settings section."""
    return Defaults(m.learning_rate, m.l2, m.optimizer, m.tree_max_size_mb)


def policy_for(m: Any) -> Policy:
    """The promotion policy from the ``models`` settings section."""
    return Policy(m.promote_min_examples, m.promote_z, m.promote_margin)


def bundle_for(m: Any) -> ModelBundle:
    """An untrained bundle as the ``models`` settings section describes it."""
    bundle = ModelBundle.create(
        m.kind, tuple(c for c in m.challengers if c != m.kind), defaults_for(m),
        m.metrics_window, m.threshold, policy_for(m), m.drift_delta, m.revenue_min_examples,
        m.drift_threshold, (m.drift_conversions_delta, m.drift_conversions_threshold),
    )  # fmt: skip
    configure_delays(bundle, m)
    return bundle


def configure_delays(bundle: ModelBundle, m: Any) -> None:
    """The delayed-feedback settings of ``m`` on ``bundle``: its window, its delays' horizon.

    A delay model learned with another horizon is started afresh.
    """
    bundle.window_s = m.window_days * 86_400.0
    horizon_s = m.horizon_days * 86_400.0
    if bundle.delays.horizon_s != horizon_s:
        bundle.delays = DelayModel(horizon_s)


def apply_command(bundle: ModelBundle, command: dict[str, Any]) -> dict[str, Any]:
    """Apply a queued command to ``bundle``; returns the promotion record or raises ValueError."""
    if command["action"] == "promote":
        return bundle.promote(str(command["model"]), str(command["actor"]))
    if command["action"] == "rollback":
        return bundle.rollback(str(command["actor"]))
    raise ValueError(f"unknown model command {command['action']!r}")
