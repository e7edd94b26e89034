"""Offline evaluation of the online model on a labelled table, the way the stream would see it.

Rows are ordered by time. The first part is history: the model is trained on it
as a backfill would. By default that is :class:`~online_models.newton_logistic.NewtonLogistic`,
solved exactly on the history with settings cross-validated on the history alone;
``model="sgd"`` is the stream's default learner after several shuffled SGD passes. The
rest is scored test-then-train, as the live stream does: each row is scored before
its label is learned.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from online_models.lead_scorer import LeadScorer
from online_models.tables import TableSchema, feature_column, prepare, rows_to_features

#: The stages ``evaluate`` reports to its ``progress`` callback.
CHOOSING, FOLDS, SENSITIVITY, SCORING = (
    "choosing the model on the history", "cross-validation", "sensitivity",
    "scoring test-then-train",
)  # fmt: skip


@dataclass
class Metrics:
    """Binary classification metrics of scores against labels."""

    rows: int
    positives: int
    auc: float
    logloss: float
    brier: float
    precision: float
    recall: float
    f1: float
    threshold: float
    lift_top_decile: float

    @classmethod
    def compute(cls, y: Sequence[int], p: Sequence[float], threshold: float) -> Metrics:
        """All metrics at once.

        >>> m = Metrics.compute([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.5)
        >>> m.auc, m.precision, m.recall
        (0.75, 1.0, 0.5)
        """
        n = len(y)
        pos = sum(y)
        eps = 1e-15
        logloss = -sum(
            yi * math.log(max(pi, eps)) + (1 - yi) * math.log(max(1 - pi, eps))
            for yi, pi in zip(y, p, strict=True)
        ) / max(n, 1)
        brier = sum((pi - yi) ** 2 for yi, pi in zip(y, p, strict=True)) / max(n, 1)
        tp = sum(1 for yi, pi in zip(y, p, strict=True) if pi >= threshold and yi)
        predicted = sum(1 for pi in p if pi >= threshold)
        precision = tp / predicted if predicted else 0.0
        recall = tp / pos if pos else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        order = sorted(range(n), key=lambda i: -p[i])
        top = order[: max(1, n // 10)]
        base = pos / n if n else 0.0
        lift = (sum(y[i] for i in top) / len(top)) / base if base else 0.0
        return cls(n, pos, auc(y, p), logloss, brier, precision, recall, f1, threshold, lift)


def auc(y: Sequence[int], p: Sequence[float]) -> float:
    """ROC AUC by ranks (ties share their average rank); NaN without both classes.

    >>> auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    n = len(y)
    pos = sum(y)
    neg = n - pos
    if not pos or not neg:
        return float("nan")
    order = sorted(range(n), key=lambda i: p[i])
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and p[order[j + 1]] == p[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, yi in zip(ranks, y, strict=True) if yi)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def history_size(rows: int, holdout: float) -> int:
    """How many of the earliest rows are history.

    >>> history_size(1000, 0.4)
    600
    """
    if not 0 < holdout < 1:
        raise ValueError(f"--holdout must be between 0 and 1, got {holdout}")
    split = round(rows * (1 - holdout))
    if split < 10 or rows - split < 10:
        raise ValueError(f"{rows} rows is too few for a holdout of {holdout}")
    return split


def best_f1_threshold(y: Sequence[int], p: Sequence[float]) -> float:
    """The score threshold with the best F1 on these (training) predictions."""
    pairs = sorted(zip(p, y, strict=True), reverse=True)
    pos = sum(y)
    tp = 0
    best, best_t = -1.0, 0.5
    for k, (pk, yk) in enumerate(pairs, start=1):
        tp += yk
        f1 = 2 * tp / (k + pos) if pos else 0.0
        if f1 > best:
            best, best_t = f1, pk
    return best_t


class Learner(Protocol):
    """Anything that learns one labelled example at a time."""

    def learn_one(self, x: dict[Any, Any], y: Any, **kwargs: Any) -> None: ...


class Scorer(Learner, Protocol):
    """A learner that also scores."""

    def predict_proba_one(self, x: dict[Any, Any], **kwargs: Any) -> dict[Any, float]: ...


#: Models ``evaluate`` can run; see its ``model`` parameter.
MODELS: tuple[str, ...] = ("newton", "sgd")


def backfill(
    model: Learner,
    xs: Sequence[dict[str, float]],
    ys: Sequence[int],
    passes: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Train on history: the first pass in time order, later passes shuffled.

    ``progress`` is called with the number of examples learned, every 1,000 and at the end.
    """
    order = list(range(len(xs)))
    rng = random.Random(seed)  # noqa: S311 - shuffling, not security
    for n in range(passes):
        if n:
            rng.shuffle(order)
        for k, i in enumerate(order, 1):
            model.learn_one(xs[i], bool(ys[i]))
            if progress is not None and k % 1000 == 0:
                progress(1000)
        if progress is not None and len(order) % 1000:
            progress(len(order) % 1000)


@dataclass(frozen=True)
class EvaluationResult:
    """What `leadstream evaluate --json` prints."""

    metrics: Metrics
    history_rows: int
    seconds: float
    folds: list[float] | None = None
    sensitivity: list[dict[str, Any]] | None = None
    #: The holdout's scores in time order, each given before its row was learned (not printed).
    scores: tuple[float, ...] = ()
    #: Rows left out because their label was missing.
    unlabelled_rows: int = 0
    #: Labelled rows left out because their time was missing.
    untimed_rows: int = 0
    #: Columns left out as identifiers (given, or found by their name and unique values).
    ids: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        m = self.metrics
        out: dict[str, Any] = {
            "rows": m.rows, "positives": m.positives, "auc": m.auc, "logloss": m.logloss,
            "brier": m.brier, "precision": m.precision, "recall": m.recall, "f1": m.f1,
            "threshold": m.threshold, "lift_top_decile": m.lift_top_decile,
            "history_rows": self.history_rows, "unlabelled_rows": self.unlabelled_rows,
            "untimed_rows": self.untimed_rows,
            "id_columns": list(self.ids), "seconds": round(self.seconds, 3),
        }  # fmt: skip
        if self.folds is not None:
            out["folds_auc"] = self.folds
            valid = [a for a in self.folds if not math.isnan(a)]  # a fold without both classes
            out["folds_auc_mean"] = sum(valid) / len(valid) if valid else float("nan")
        if self.sensitivity is not None:
            out["sensitivity"] = self.sensitivity
        return {k: _json_number(v) for k, v in out.items()}


def _json_number(v: Any) -> Any:
    """Floats rounded to 6 places; NaN (an AUC without both classes) as None, which JSON has.

    >>> _json_number([0.12345678, float("nan")]), _json_number({"a": float("nan")})
    ([0.123457, None], {'a': None})
    """
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 6)
    if isinstance(v, list):
        return [_json_number(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_number(x) for k, x in v.items()}
    return v


def evaluate(
    frame: pd.DataFrame,
    label: str,
    time_col: str,
    ids: Sequence[str] = (),
    holdout: float = 0.5,
    passes: int = 12,
    threshold: float | None = None,
    folds: int = 0,
    sensitivity: bool = False,
    learning_rate: float = 0.005,
    l2: float = 1e-3,
    seed: int = 0,
    model: str = "newton",
    groups: Mapping[str, Sequence[str]] | None = None,
    positive: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> EvaluationResult:
    """Backfill on the history part, then test-then-train on the rest.

    Parameters
    ----------
    holdout
        Share of rows (the latest) scored test-then-train.
    passes
        Passes over the history during the backfill (``sgd`` only).
    threshold
        Score at which a row counts as predicted positive; by default the one with
        the best F1 on the history's own (in-sample) scores.
    folds
        If above 1, also k-fold cross-validation AUCs on the history part.
    sensitivity
        Also, per source column, the holdout AUC of the backfilled model with the
        column removed and with its values shuffled across rows.
    positive
        The label value that counts as a conversion, when the label is not 0/1,
        true/false, yes/no or another known pair (see :func:`~online_models.tables.labels`).
        Rows without a label are left out and counted.
    progress
        Called with ``(stage, done, total)`` as the work goes on (the stages: choosing
        the model, cross-validation, sensitivity, scoring test-then-train).
    groups
        Named groups of columns (implies ``sensitivity``): each group is also removed,
        and shuffled as a block, at once.
    model
        ``newton`` (default): a :class:`~online_models.newton_logistic.NewtonLogistic`
        (the stream's ``newton`` kind) solved exactly on the history, its regularisation
        and encoding chosen by blocked cross-validation on the history alone, then
        updated by online Newton steps. ``sgd``: the stream's default
        :class:`LeadScorer`, backfilled by ``passes`` SGD passes (``learning_rate``, ``l2``).
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    started = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    schema, frame, ys, unlabelled, untimed = prepare(frame, label, time_col, ids, positive)
    checked = _checked_groups(groups or {}, schema)
    sensitivity = sensitivity or bool(checked)
    xs = rows_to_features(frame, schema)
    split = history_size(len(frame), holdout)

    blas_context: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext
    if model == "newton":
        from online_models.newton_logistic import NewtonLogistic, one_blas_thread, select

        blas_context = one_blas_thread

        report(CHOOSING, 0, 1)
        chosen, _ = select(xs[:split], ys[:split])
        report(CHOOSING, 1, 1)
        scorer: Scorer = chosen

        def fresh() -> NewtonLogistic:
            return NewtonLogistic(c=chosen.c, log_skewed=chosen.log_skewed, knots=chosen.knots)

        def fit(
            m: NewtonLogistic, xs_: Sequence[dict[str, float]], ys_: Sequence[int], _: int
        ) -> None:
            m.learn_many(xs_, ys_)

        fold_aucs = _cross_validate(xs[:split], ys[:split], folds, fresh, fit, seed, report)
    else:
        prior = max(0.01, min(0.99, sum(ys[:split]) / split))

        def fresh_sgd() -> LeadScorer:
            return LeadScorer(learning_rate=learning_rate, l2=l2, prior=prior)

        def fit_sgd(
            m: LeadScorer, xs_: Sequence[dict[str, float]], ys_: Sequence[int], s: int
        ) -> None:
            backfill(m, xs_, ys_, passes, s)

        fold_aucs = _cross_validate(
            xs[:split], ys[:split], folds, fresh_sgd, fit_sgd, seed, report
        )
        report(CHOOSING, 0, 1)
        scorer = fresh_sgd()
        backfill(scorer, xs[:split], ys[:split], passes, seed)
        report(CHOOSING, 1, 1)
    effects = (
        column_sensitivity(scorer, xs[split:], ys[split:], schema, seed, checked, report)
        if sensitivity
        else None
    )
    if threshold is None:
        in_sample = _scores(scorer, xs[:split])
        threshold = best_f1_threshold(ys[:split], in_sample)
    scores = []
    total = len(xs) - split
    with blas_context():
        for i, (x, y) in enumerate(zip(xs[split:], ys[split:], strict=True)):
            if i % 250 == 0:
                report(SCORING, i, total)
            scores.append(scorer.predict_proba_one(x)[True])
            scorer.learn_one(x, bool(y))
    report(SCORING, total, total)
    metrics = Metrics.compute(ys[split:], scores, threshold)
    seconds = time.perf_counter() - started
    return EvaluationResult(
        metrics, split, seconds, fold_aucs, effects, tuple(scores), unlabelled, untimed,
        schema.ids,
    )  # fmt: skip


def _scores(model: Scorer, xs: Sequence[dict[str, float]]) -> list[float]:
    """The model's probability of a conversion for each row (all at once when it can)."""
    many = getattr(model, "scores", None)
    if many is not None:
        out: list[float] = many(xs)
        return out
    return [model.predict_proba_one(x)[True] for x in xs]


def _column(feature: str) -> str:
    """The source column of a feature name (``col``, ``col__missing`` or ``col=value``)."""
    return feature.split("=", 1)[0].removesuffix("__missing")


def _checked_groups(
    groups: Mapping[str, Sequence[str]], schema: TableSchema
) -> dict[str, tuple[str, ...]]:
    features = {*schema.numeric, *schema.categorical, *schema.dates}
    out = {}
    for name, columns in groups.items():
        unknown = [c for c in columns if c not in features]
        if unknown or not columns:
            raise ValueError(
                f"group {name!r}: {', '.join(map(repr, unknown)) or 'no columns'} "
                f"{'is not a feature column' if len(unknown) == 1 else 'are not feature columns'}; "
                f"feature columns are: {', '.join(sorted(features))}"
            )
        out[name] = tuple(columns)
    return out


def column_sensitivity(
    model: Scorer,
    xs: Sequence[dict[str, float]],
    ys: Sequence[int],
    schema: TableSchema,
    seed: int,
    groups: dict[str, tuple[str, ...]] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """How the (frozen) model's AUC moves when each column, or group, is removed or shuffled.

    Removing a column drops its features, so it contributes nothing; shuffling gives
    each row another row's values of that column. A group of columns is removed at
    once, and shuffled as a block (a row gets all of one other row's values, so the
    columns keep their relation to each other and lose only that to the label). Rows
    for groups carry their ``columns``. Sorted by the larger AUC loss.
    """
    base = auc(ys, _scores(model, xs))
    rng = random.Random(seed)  # noqa: S311 - shuffling, not security
    out = []
    units: list[tuple[str, frozenset[str], bool]] = [
        (c, frozenset([c]), False) for c in (*schema.numeric, *schema.categorical, *schema.dates)
    ]
    units += [(name, frozenset(cols), True) for name, cols in (groups or {}).items()]
    column_of = {k: _column(k) for x in xs for k in x}  # once per feature name, not per use
    for done, (name, names, is_group) in enumerate(units):
        if progress is not None:
            progress(SENSITIVITY, done, len(units))
        columns = frozenset(feature_column(c) for c in names)
        removed = [{k: v for k, v in x.items() if column_of[k] not in columns} for x in xs]
        parts = [{k: v for k, v in x.items() if column_of[k] in columns} for x in xs]
        rng.shuffle(parts)
        shuffled = [{**r, **p} for r, p in zip(removed, parts, strict=True)]
        auc_removed = auc(ys, _scores(model, removed))
        auc_shuffled = auc(ys, _scores(model, shuffled))
        out.append({
            "column": name,
            **({"columns": sorted(names)} if is_group else {}),
            "auc_without": round(auc_removed, 4),
            "auc_shuffled": round(auc_shuffled, 4),
            "auc_loss_without": round(base - auc_removed, 4),
            "auc_loss_shuffled": round(base - auc_shuffled, 4),
        })  # fmt: skip
    if progress is not None:
        progress(SENSITIVITY, len(units), len(units))
    return sorted(out, key=lambda r: -max(r["auc_loss_without"], r["auc_loss_shuffled"]))


def _cross_validate(
    xs: Sequence[dict[str, float]],
    ys: Sequence[int],
    k: int,
    fresh: Any,
    fit: Any,
    seed: int,
    progress: Callable[[str, int, int], None],
) -> list[float] | None:
    """AUC of each of ``k`` contiguous folds, the model fitted on the others; None if k < 2."""
    if k < 2:
        return None
    n = len(xs)
    out = []
    for f in range(k):
        progress(FOLDS, f, k)
        lo, hi = f * n // k, (f + 1) * n // k
        model = fresh()
        train_x = [*xs[:lo], *xs[hi:]]
        train_y = [*ys[:lo], *ys[hi:]]
        fit(model, train_x, train_y, seed + f)
        out.append(auc(ys[lo:hi], _scores(model, xs[lo:hi])))
    progress(FOLDS, k, k)
    return out
