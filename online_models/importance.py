"""Explanations: what each score publishes, and which features matter to the model overall.

Both come from the same numbers: the model's exact split of a score's logit into an
intercept and one signed contribution per feature (:meth:`LeadScorer.explain_one`).

- :func:`published_explanation` is what a scored lead carries: the top contributions as
  sales-readable reasons, plus the intercept, the sum of the contributions not listed
  and the logit, so that ``intercept + Σ reasons + unlisted_contribution == logit``
  holds for every published record (up to the rounding of the published numbers:
  4 decimals per reason, 6 for the rest).
- :func:`feature_importance` is global importance over a sample of leads: the mean
  absolute contribution (how much a feature moves scores, on average) and the change
  in logit per standard deviation of the feature (for a linear model, the standard
  deviation of ``w·x`` is ``|w|·sd(x)``: the standardised weight, read off the
  contributions, so it is the same for numeric and indicator features).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import orjson

from online_models.bundle import RAW_FIELD, reason
from online_models.kinds import Scorer
from online_models.lead_scorer import Contribution, Explanation

__all__ = [
    "UNEXPLAINED",
    "Explainer",
    "FeatureImportance",
    "feature_importance",
    "field_of",
    "published_explanation",
    "scored_fields",
    "scored_many",
]


class Explainer(Protocol):
    """A model whose scores split exactly into an intercept and per-feature contributions."""

    def explain_one(self, x: dict[str, float]) -> Explanation: ...


#: The explanation fields of a score published with explanations turned off.
UNEXPLAINED: Mapping[str, Any] = {
    "reasons": [],
    "intercept": None,
    "unlisted_contribution": None,
    "logit": None,
}


def published_explanation(
    explanation: Explanation, top: int, raw: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The explanation fields of one published score.

    Parameters
    ----------
    explanation
        The model's exact decomposition of the score.
    top
        How many contributions to publish as reasons (largest absolute effect first).
    raw
        The lead as received, to quote raw values in the reasons' text.

    Examples
    --------
    >>> from online_models.lead_scorer import Contribution, Explanation
    >>> e = Explanation(0.5, 0.0, -1.0, [("a", 1.0, 0.75), ("b", 2.0, 0.2), ("c", 1.0, 0.05)])
    >>> out = published_explanation(e, 2)
    >>> [r["feature"] for r in out["reasons"]], out["intercept"], out["unlisted_contribution"]
    (['a', 'b'], -1.0, 0.05)
    >>> out["intercept"] + sum(r["contribution"] for r in out["reasons"]) + out["unlisted_contribution"]
    0.0
    >>> out["reasons"][0] == reason(Contribution("a", 1.0, 0.75))
    True
    """
    return _published(
        sorted(explanation.raw, key=_by_size)[:top], explanation.intercept, explanation.logit, raw
    )


def _published(
    best: list[tuple[str, float, float]], intercept: float, logit: float, raw: dict[str, Any] | None
) -> dict[str, Any]:
    """The published fields from the top terms (already sorted), the intercept and the logit."""
    # The hot path of the score agent with explanations on (issue 3: they may cost at
    # most 10% of scoring throughput). A sort of ~25 terms beats a heap (nlargest) and
    # a key in C built first; a reason's text depends only on the feature, the sign and
    # the quoted raw value, so it is cached; round() costs ~0.2 µs, so whole numbers
    # (counts, indicators), which it returns unchanged, skip it.
    listed = 0.0
    reasons = []
    for name, value, c in best:
        listed += c
        shown = raw.get(RAW_FIELD.get(name, name)) if raw is not None and "=" not in name else None
        try:
            text = _text(name, c > 0, shown)
        except TypeError:  # an unhashable raw value: no cache
            text = reason(Contribution(name, value, c), raw)["text"]
        reasons.append({
            "feature": name,
            "value": value if type(value) is float and value.is_integer() else round(value, 4),
            "contribution": round(c, 4),
            "text": text,
        })  # fmt: skip
    return {
        "reasons": reasons,
        "intercept": round(intercept, 6),
        "unlisted_contribution": round(logit - intercept - listed, 6),
        "logit": round(logit, 6),
    }


def scored_fields(
    scorer: Scorer, x: dict[str, float], raw: dict[str, Any], top: int, explain: bool
) -> tuple[float, dict[str, Any], str]:
    """Score one lead: its probability, its published explanation fields, its reasons as JSON.

    With ``explain`` the fields are :func:`published_explanation`'s and the score comes
    from the same pass over the features (:meth:`LeadScorer.explain_one`); without, they
    are :data:`UNEXPLAINED`. ``fields["reasons"]`` is already encoded: an
    ``orjson.Fragment`` of the returned JSON text, so the ``leads.scored`` message embeds
    the very bytes the ``scored_leads`` row stores, and the reasons are encoded once.

    Examples
    --------
    >>> from online_models.lead_scorer import LeadScorer
    >>> model = LeadScorer()
    >>> for i in range(200):
    ...     model.learn_one({"visits": float(i % 5), "channel=ads": 1.0}, i % 5 > 2)
    >>> p, fields, text = scored_fields(model, {"visits": 4.0, "channel=ads": 1.0}, {}, 1, True)
    >>> round(p, 9) == round(model.predict_proba_one({"visits": 4.0, "channel=ads": 1.0})[True], 9)
    True
    >>> orjson.loads(text)[0]["text"], orjson.dumps(fields["reasons"]) == text.encode()
    ('visits: raises the score', True)
    >>> _, fields, text = scored_fields(model, {"visits": 4.0}, {}, 1, False)
    >>> text, fields["logit"], orjson.dumps(fields)
    ('[]', None, b'{"reasons":[],"intercept":null,"unlisted_contribution":null,"logit":null}')
    """
    if explain:
        explanation = scorer.explain_one(x)
        score = explanation.proba
        fields = published_explanation(explanation, top, raw)
    else:
        score = scorer.predict_proba_one(x)[True]
        fields = dict(UNEXPLAINED)
    return score, *_encoded(fields)


def _encoded(fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The fields with their reasons encoded once (a Fragment), and that JSON text."""
    reasons = orjson.dumps(fields["reasons"])
    fields["reasons"] = orjson.Fragment(reasons)
    return fields, reasons.decode()


def scored_many(
    scorer: Scorer, xs: list[dict[str, float]], raws: list[dict[str, Any]], top: int, explain: bool
) -> list[tuple[float, dict[str, Any], str]]:
    """:func:`scored_fields` for a batch of leads: the same scores, fields and reasons.

    The default model (:class:`LeadScorer`) explains the whole batch from one matrix
    of contributions (:meth:`LeadScorer.explain_many`); other kinds score lead by lead.

    Examples
    --------
    >>> from online_models.lead_scorer import LeadScorer
    >>> model = LeadScorer()
    >>> for i in range(200):
    ...     model.learn_one({"visits": float(i % 5), "channel=ads": 1.0}, i % 5 > 2)
    >>> xs = [{"visits": 4.0, "channel=ads": 1.0}, {"visits": 0.0}]
    >>> many = scored_many(model, xs, [{}, {}], 1, True)
    >>> one = [scored_fields(model, x, {}, 1, True) for x in xs]
    >>> [m[2] for m in many] == [o[2] for o in one]
    True
    >>> all(abs(m[0] - o[0]) < 1e-12 for m, o in zip(many, one))
    True
    """
    batch = getattr(scorer, "explain_many", None) if explain else None
    if batch is None:
        return [scored_fields(scorer, x, raw, top, explain) for x, raw in zip(xs, raws, strict=True)]
    explained = batch(xs, top)
    intercept = explained.intercept
    out = []
    for proba, logit, best, raw in zip(
        explained.proba, explained.logit, explained.top, raws, strict=True
    ):
        out.append((proba, *_encoded(_published(best, intercept, logit, raw))))
    return out


def _by_size(term: tuple[str, float, float]) -> float:
    return -abs(term[2])


# typed: 3 and 3.0, or 1 and True, are quoted differently, so they must not share an entry.
@lru_cache(maxsize=8192, typed=True)
def _text(feature: str, raises: bool, shown: Any) -> str:
    """The sentence :func:`online_models.bundle.reason` writes for these inputs."""
    sign = 1.0 if raises else -1.0
    quoted = None if shown is None else {RAW_FIELD.get(feature, feature): shown}
    return str(reason(Contribution(feature, 0.0, sign), quoted)["text"])


def field_of(feature: str) -> str:
    """The lead field a feature comes from: ``channel=email`` → ``channel``.

    >>> field_of("channel=email"), field_of("pricing_page_visits")
    ('channel', 'pricing_page_visits')
    """
    return feature.split("=", 1)[0]


@dataclass(frozen=True, slots=True)
class FeatureImportance:
    """How much one feature (or field) moves the scores of a sample of leads.

    Attributes
    ----------
    feature
        The feature (``channel=referral``, ``pricing_page_visits``) or, grouped, the field.
    mean_abs_contribution
        Mean absolute contribution to the logit over the sample (0 where absent).
    mean_contribution
        Mean signed contribution: on balance, does it raise or lower scores?
    logit_per_sd
        Change in logit per standard deviation of the feature, with the sign of its
        effect (the standardised weight); None for grouped fields.
    share
        ``mean_abs_contribution`` over the sum of all of them.
    present
        Leads of the sample with a non-zero contribution from it.
    """

    feature: str
    mean_abs_contribution: float
    mean_contribution: float
    logit_per_sd: float | None
    share: float
    present: int


class _Acc:
    __slots__ = ("abs", "n", "s", "s2", "sv", "svc")

    def __init__(self) -> None:
        self.abs = self.s = self.s2 = self.sv = self.svc = 0.0
        self.n = 0

    def add(self, value: float, c: float) -> None:
        self.abs += abs(c)
        self.s += c
        self.s2 += c * c
        self.sv += value
        self.svc += value * c
        if c != 0.0:
            self.n += 1


def feature_importance(
    model: Explainer, samples: Iterable[Mapping[str, float]], *, by_field: bool = False
) -> list[FeatureImportance]:
    """Global importance of every feature over ``samples``, most important first.

    Parameters
    ----------
    model
        The model to explain (the current one: importance is about what it does now).
    samples
        Feature dicts of recent leads, as the scorer sees them.
    by_field
        Add the contributions of a field's indicators (``channel=…``) into one row.

    Examples
    --------
    >>> import random
    >>> from online_models.lead_scorer import LeadScorer
    >>> rng = random.Random(5)
    >>> def lead():
    ...     return {"visits": float(rng.randint(0, 4)), "noise": rng.random(),
    ...             f"channel={rng.choice(['ads', 'email'])}": 1.0}
    >>> model = LeadScorer(learning_rate=0.05)
    >>> for _ in range(3000):
    ...     x = lead()
    ...     model.learn_one(x, rng.random() < 0.05 + 0.2 * x["visits"])
    >>> rows = feature_importance(model, [lead() for _ in range(500)])
    >>> rows[0].feature, rows[0].logit_per_sd > 0, round(sum(r.share for r in rows), 6)
    ('visits', True, 1.0)
    >>> [r.feature for r in feature_importance(model, [lead() for _ in range(500)], by_field=True)]
    ['visits', 'channel', 'noise']
    """
    acc: dict[str, _Acc] = {}
    n = 0
    for x in samples:
        n += 1
        raw = model.explain_one(dict(x)).raw
        if by_field:
            grouped: dict[str, float] = {}
            for name, _, c in raw:
                key = field_of(name)
                grouped[key] = grouped.get(key, 0.0) + c
            terms: Iterable[tuple[str, float, float]] = ((k, 0.0, c) for k, c in grouped.items())
        else:
            terms = raw
        for name, value, c in terms:
            a = acc.get(name)
            if a is None:
                a = acc[name] = _Acc()
            a.add(value, c)
    if n == 0:
        return []
    total = math.fsum(a.abs for a in acc.values()) / n
    rows = []
    for name, a in acc.items():
        mean = a.s / n
        sd = math.sqrt(max(0.0, a.s2 / n - mean * mean))
        cov = a.svc / n - (a.sv / n) * mean
        per_sd = None if by_field else math.copysign(sd, cov) if sd > 0 else 0.0
        mean_abs = a.abs / n
        rows.append(
            FeatureImportance(
                feature=name,
                mean_abs_contribution=mean_abs,
                mean_contribution=mean,
                logit_per_sd=per_sd,
                share=mean_abs / total if total > 0 else 0.0,
                present=a.n,
            )
        )
    rows.sort(key=lambda r: (-r.mean_abs_contribution, r.feature))
    return rows
