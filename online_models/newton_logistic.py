"""Logistic regression fitted to its optimum on a history, then kept learning by Newton steps.

The evaluation's model. A backfill has the whole history at hand, so instead of a
few SGD passes it solves the L2-regularised problem exactly (L-BFGS), the way a
batch logistic regression does. The live part then goes on test-then-train: each
example moves the weights by one online Newton step, with the inverse Hessian
kept up to date by the Sherman–Morrison formula, so after each example the model
stays close to the regularised optimum over everything seen so far.

The encoding is fitted on the history: numbers are standardised (clipped) with
absent values at the mean (``rows_to_features`` marks them with ``col__missing``),
indicator features ``col=value`` seen fewer than ``min_count`` times share one weight
per column (so do levels first seen later, and all but the 1,000 most frequent), and,
with ``log_skewed``, every non-negative right-skewed number also gets a standardised
``log1p`` term, and with ``knots``, hinges ``max(0, z - k)`` at that many quantiles
``k`` of its standardised value ``z``: a piecewise-linear effect, for numbers that
saturate, have thresholds or a peak, or hold sentinel values (999 for "never").
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from river import base
from scipy.optimize import minimize

from online_models.evaluation import auc
from online_models.lead_scorer import Explanation

#: Regularisation strengths (inverse, as scikit-learn's ``C``) tried by :func:`select`.
GRID_C: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
#: Encodings tried by :func:`select`: (log terms for skewed numbers, hinge knots per number).
SHAPES: tuple[tuple[bool, int], ...] = ((False, 0), (True, 0), (False, 4), (True, 4))
#: A number with at least this skewness (and no negative value) gets a log term.
_SKEW = 2.0
#: Indicator features kept at most (the most frequent); the others are pooled per column.
_MAX_LEVELS = 1000
#: Tiny curvature on the intercept keeps the Hessian invertible; it is not regularised.
_INTERCEPT_RIDGE = 1e-6

Array = np.ndarray[Any, np.dtype[np.float64]]


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run numpy's linear algebra on one thread inside the block.

    The matrices here are small (thousands of rows, about a hundred columns): BLAS
    threads only fight each other and other processes for the cores. Measured on this
    project's 2-core machine under load: model selection took 2.2 s with OpenBLAS's
    threads and 0.13 s with one. Uses threadpoolctl when it is installed.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1):
        yield


class _Columns:
    """Feature dicts as arrays, read once: numbers by name (NaN where absent) and, per
    indicator, the rows it is set on and its values. Every encoding tried on a history
    is fitted on and applied to the same columns.
    """

    def __init__(self, xs: Sequence[dict[str, float]]) -> None:
        names: dict[str, int] = {}
        indicators: dict[str, tuple[list[int], list[float]]] = {}
        for i, x in enumerate(xs):
            for name, v in x.items():
                if "=" in name:
                    rows, values = indicators.setdefault(name, ([], []))
                    rows.append(i)
                    values.append(v)
                elif name not in names:
                    names[name] = len(names)
        self.rows = len(xs)
        self.names = list(names)
        nan = math.nan
        self.numbers: Array = np.array(
            [[x.get(name, nan) for name in self.names] for x in xs], dtype=np.float64
        ).reshape(len(xs), len(self.names))
        self.indicators = {
            name: (np.asarray(rows, dtype=np.intp), np.asarray(values, dtype=np.float64))
            for name, (rows, values) in indicators.items()
        }


class _Encoding:
    """Where each feature lands in the dense vector, fitted on the history.

    ``terms`` maps a feature to ``(slot, shift, factor, log_slot, log_shift, log_factor)``:
    its value lands as ``(value - shift) × factor``; with ``log_slot >= 0`` its ``log1p``
    lands there too. Numbers are standardised, indicators pass (shift 0, factor 1).
    Every encoded value is clipped to ±``clip``.
    """

    def __init__(
        self,
        xs: Sequence[dict[str, float]] | _Columns,
        min_count: int,
        clip: float,
        log_skewed: bool,
        knots: int = 0,
    ) -> None:
        cols = xs if isinstance(xs, _Columns) else _Columns(xs)
        self.clip = clip
        self.terms: dict[str, tuple[int, float, float, int, float, float]] = {}
        self.rare: dict[str, int] = {}  # column → the slot of its pooled levels
        # number → (first slot, knots): hinges max(0, z - knot) of its clipped standardised z
        self.hinges: dict[str, tuple[int, tuple[float, ...]]] = {}
        n = 0
        for j, name in enumerate(cols.names):
            a = cols.numbers[:, j]
            a = a[~np.isnan(a)]
            if not a.size:  # only ever NaN: nothing to learn from
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                sd = float(a.std())
            if not math.isfinite(sd):  # values near the float limit (1e300): no scale
                continue
            if sd == 0.0:  # constant where present (``col__missing``): an indicator
                self.terms[name] = (n, 0.0, 1.0, -1, 0.0, 0.0)
                n += 1
                continue
            if knots:
                z = np.clip((a - a.mean()) / sd, -clip, clip)
                inner = np.quantile(z, np.linspace(0, 1, knots + 2)[1:-1])
                at = tuple(sorted({float(k) for k in inner if z.min() < k < z.max()}))
                if at:
                    self.hinges[name] = (n, at)
                    n += len(at)
            if log_skewed and a.min() >= 0 and _skewness(a) >= _SKEW:
                la = np.log1p(a)
                log_sd = float(la.std()) or 1.0
                self.terms[name] = (n, float(a.mean()), 1 / sd, n + 1, float(la.mean()), 1 / log_sd)
                n += 1
            else:
                self.terms[name] = (n, float(a.mean()), 1 / sd, -1, 0.0, 0.0)
            n += 1
        # The most frequent levels, at most _MAX_LEVELS of them: the online Newton step
        # costs the square of the vector's size per example.
        counts = {name: len(rows) for name, (rows, _) in cols.indicators.items()}
        frequent = sorted(counts.items(), key=lambda item: -item[1])[:_MAX_LEVELS]
        self.levels = 0
        for name, k in frequent:
            if k >= min_count:
                self.terms[name] = (n, 0.0, 1.0, -1, 0.0, 0.0)
                self.levels += 1
                n += 1
        for column in dict.fromkeys(name.split("=", 1)[0] for name in counts):
            self.rare[column] = n
            n += 1
        self.size = n
        self.logs = any(t[3] >= 0 for t in self.terms.values())

    def add_level(self, name: str) -> int | None:
        """Give an indicator its own slot, at the end; None when _MAX_LEVELS are taken."""
        if self.levels >= _MAX_LEVELS:
            return None
        self.terms[name] = (self.size, 0.0, 1.0, -1, 0.0, 0.0)
        self.levels += 1
        self.size += 1
        return self.size - 1

    def _row(self, x: dict[str, float]) -> list[float]:
        out = [0.0] * self.size
        terms = self.terms
        for name, v in x.items():
            t = terms.get(name)
            if t is None:  # a rare or unseen level goes to its column's pool; else ignored
                slot = self.rare.get(name.split("=", 1)[0], -1) if "=" in name else -1
                if slot >= 0:
                    out[slot] += v
                continue
            if v != v:  # NaN: absent, as in :meth:`matrix`
                continue
            out[t[0]] += (v - t[1]) * t[2]
            hinge = self.hinges.get(name)
            if hinge is not None:
                z = min(max((v - t[1]) * t[2], -self.clip), self.clip)
                for slot, knot in enumerate(hinge[1], hinge[0]):
                    out[slot] = z - knot if z > knot else 0.0
            if t[3] >= 0:
                out[t[3]] = (math.log1p(max(v, 0.0)) - t[4]) * t[5]
        return out

    def matrix(self, xs: Sequence[dict[str, float]] | _Columns) -> Array:
        """The encoded rows, one per feature dict (as :meth:`vector` would give each)."""
        cols = xs if isinstance(xs, _Columns) else _Columns(xs)
        out = np.zeros((cols.rows, self.size))
        for j, name in enumerate(cols.names):
            t = self.terms.get(name)
            if t is None:  # a number the history did not have: ignored
                continue
            v = cols.numbers[:, j]
            present = ~np.isnan(v)
            z = np.where(present, (v - t[1]) * t[2], 0.0)
            out[:, t[0]] = z
            hinge = self.hinges.get(name)
            if hinge is not None:
                bent = np.clip(z, -self.clip, self.clip)
                for slot, knot in enumerate(hinge[1], hinge[0]):
                    out[:, slot] = np.where(present & (bent > knot), bent - knot, 0.0)
            if t[3] >= 0:
                logs = (np.log1p(np.maximum(np.nan_to_num(v), 0.0)) - t[4]) * t[5]
                out[:, t[3]] = np.where(present, logs, 0.0)
        for name, (rows, values) in cols.indicators.items():
            t = self.terms.get(name)
            slot = t[0] if t is not None else self.rare.get(name.split("=", 1)[0], -1)
            if slot >= 0:  # a level of a column the history did not have: ignored
                out[rows, slot] += values
        np.clip(out, -self.clip, self.clip, out=out)
        return out

    def vector(self, x: dict[str, float]) -> Array:
        row: Array = np.array(self._row(x), dtype=np.float64)
        np.clip(row, -self.clip, self.clip, out=row)
        return row


def _skewness(a: Array) -> float:
    sd = a.std()
    return float(((a - a.mean()) ** 3).mean() / sd**3) if sd > 0 else 0.0


def _sigmoid(z: Array) -> Array:
    out: Array = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def _sigmoid_one(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _penalty(d: int, c: float) -> Array:
    reg = np.full(d + 1, 1.0 / c)
    reg[-1] = 0.0
    return reg


def _fit(x: Array, y: Array, c: float, w0: Array | None = None) -> Array:
    """Weights (intercept last) minimising the log loss summed over rows + ‖w‖² / 2c."""
    reg = 1.0 / c

    def loss_grad(w: Array) -> tuple[float, Array]:
        weights = w[:-1]  # no column of ones: that would copy x
        z = x @ weights + w[-1]
        loss = float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * reg * (weights @ weights))
        r = _sigmoid(z) - y
        return loss, np.append(x.T @ r + reg * weights, r.sum())

    start = np.zeros(x.shape[1] + 1) if w0 is None else w0
    result = minimize(loss_grad, start, jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    w: Array = result.x
    return w


class NewtonLogistic(base.Classifier):
    """L2 logistic regression solved exactly on a history, then updated by online Newton steps.

    ``evaluate``'s default model and the stream's ``newton`` model kind. In the stream
    it starts from a backfill (:meth:`learn_many`) or, without one, from its first
    ``warm_up`` examples; with a ``window`` it keeps that many recent examples and
    solves again on them (new encoding, new levels and numbers included) each time as
    many examples have arrived as the last solve saw, at most every ``window``
    examples. Between solves every example takes one online Newton step.

    Parameters
    ----------
    c
        Inverse regularisation strength, as scikit-learn's ``C``: the penalty is
        ``‖w‖² / 2c`` against the log loss summed over examples. ``None``: chosen,
        with ``log_skewed`` and ``knots``, by :func:`select` (blocked cross-validation)
        at each :meth:`learn_many` and at each solve of the stream until one has a
        full ``window`` of examples; later solves keep it.
    log_skewed
        Also give each non-negative, right-skewed number a standardised ``log1p`` term.
    knots
        Also give each number hinges at this many quantiles (0: none).
    min_count
        Indicator features seen fewer times in the history are pooled per column.
    clip
        Standardised values are clipped to ±``clip``.
    warm_up
        Without :meth:`learn_many`, the first ``warm_up`` examples of :meth:`learn_one`
        are kept and then fitted as a history.
    window
        Recent examples kept for solving again (0: never solve again).

    Attributes
    ----------
    n_learned
        Number of labelled examples learned so far.
    c_
        The regularisation in use (``c``, or the one chosen).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> xs = [{"visits": float(rng.randint(0, 5)), f"channel={rng.choice('ab')}": 1.0}
    ...       for _ in range(600)]
    >>> ys = [rng.random() < x["visits"] / 6 for x in xs]
    >>> model = NewtonLogistic()
    >>> model.learn_many(xs[:500], ys[:500])
    >>> for x, y in zip(xs[500:], ys[500:]):
    ...     model.learn_one(x, y)
    >>> model.n_learned
    600
    >>> model.predict_proba_one({"visits": 5.0})[True] > model.predict_proba_one({"visits": 0.0})[True]
    True
    >>> e = model.explain_one({"visits": 4.0, "channel=b": 1.0})
    >>> abs(e.intercept + sum(c.contribution for c in e.contributions) - e.logit) < 1e-9
    True
    """

    def __init__(
        self,
        c: float | None = 1.0,
        log_skewed: bool = False,
        min_count: int = 5,
        clip: float = 5.0,
        warm_up: int = 200,
        window: int = 0,
        knots: int = 0,
    ) -> None:
        if c is not None and c <= 0:
            raise ValueError(f"c must be positive, got {c}")
        if warm_up < 2 or window < 0:
            raise ValueError(
                f"warm_up must be at least 2 and window at least 0, got {warm_up} and {window}"
            )
        self.c = c
        self.log_skewed = log_skewed
        self.min_count = min_count
        self.clip = clip
        self.warm_up = warm_up
        self.window = window
        self.c_ = 1.0 if c is None else c
        self._log_skewed = log_skewed
        self.knots = knots
        self._knots = knots
        self._encoding: _Encoding | None = None
        self._w: Array = np.zeros(1)
        self._p: Array = np.eye(1)  # inverse Hessian of the objective, intercept last
        self._recent: deque[tuple[dict[str, float], bool]] = deque(maxlen=max(window, warm_up))
        self._unseen: dict[str, int] = {}  # levels without a weight: times learned since the solve
        self._fit_rows = 0  # rows of the last solve
        self._since_fit = 0  # examples learned since
        self.n_learned = 0

    @property
    def _multiclass(self) -> bool:
        return False

    def __getstate__(self) -> dict[str, Any]:
        # Snapshots carry the model, not its recent examples (megabytes, and the scorers
        # never solve): after a restore the window fills again before the next solve.
        state = dict(self.__dict__)
        state["_recent"] = deque(maxlen=self._recent.maxlen)
        return state

    def learn_many(self, xs: Sequence[dict[str, float]], ys: Sequence[Any]) -> None:
        """Fit the encoding and solve for the weights on a history (replaces what was learned)."""
        ys = [bool(y) for y in ys]
        self._recent.clear()
        keep = self._recent.maxlen or len(ys)
        self._recent.extend(zip(xs[-keep:], ys[-keep:], strict=True))
        self._solve(xs, ys, choose=self.c is None)
        self.n_learned = len(ys)

    def _solve(self, xs: Sequence[dict[str, float]], ys: Sequence[bool], choose: bool) -> None:
        if choose:
            chosen, _ = select(xs, ys, clip=self.clip)
            self.c_, self._log_skewed = chosen.c_, chosen._log_skewed  # noqa: SLF001 - same class
            self._knots = chosen._knots  # noqa: SLF001
            encoding = chosen._encoding  # noqa: SLF001
            assert encoding is not None  # select installs its choice
            self._encoding, self._w, self._p = encoding, chosen._w, chosen._p  # noqa: SLF001
        else:
            cols = _Columns(xs)  # read once, for the encoding and the matrix
            encoding = _Encoding(cols, self.min_count, self.clip, self._log_skewed, self._knots)
            with one_blas_thread():
                self._install(encoding, encoding.matrix(cols), np.asarray(ys, dtype=float))
        self._fit_rows, self._since_fit = len(ys), 0
        self._unseen = {}

    def _install(self, encoding: _Encoding, x: Array, y: Array) -> None:
        self._encoding = encoding
        self._w = _fit(x, y, self.c_)
        xb = np.hstack([x, np.ones((len(x), 1))])
        p = _sigmoid(xb @ self._w)
        hessian = (xb * (p * (1.0 - p))[:, None]).T @ xb
        hessian[np.diag_indices_from(hessian)] += _penalty(x.shape[1], self.c_) + _INTERCEPT_RIDGE
        self._p = np.asarray(np.linalg.inv(hessian), dtype=np.float64)
        self.n_learned = len(y)

    def learn_one(
        self, x: dict[Any, Any], y: base.typing.ClfTarget, w: float = 1.0, **kwargs: Any
    ) -> None:
        self.predict_learn_one(x, bool(y), w)

    def predict_learn_one(self, x: dict[str, float], y: bool, w: float = 1.0) -> float:
        """Score ``x``, then learn ``(x, y)``; returns the score (the learner's step).

        ``w`` weighs the example in the online Newton step (its gradient and curvature);
        the solves on the recent window (warm-up and periodic) count every example once.
        """
        if self._encoding is None:
            p = self._prior()
            self._recent.append((x, y))
            self.n_learned += 1
            if len(self._recent) >= self.warm_up:
                self._solve_recent(choose=self.c is None)
            return p
        self._recent.append((x, y))
        for name in x:
            if "=" in name and name not in self._encoding.terms:
                self._count_level(name)
        xb = np.append(self._encoding.vector(x), 1.0)
        p = _sigmoid_one(float(self._w @ xb))
        h = w * p * (1.0 - p)
        px = self._p @ xb
        self._p -= np.outer(px, px) * (h / (1.0 + h * float(xb @ px)))
        self._w -= (self._p @ xb) * (w * (p - (1.0 if y else 0.0)))
        self.n_learned += 1
        self._since_fit += 1
        if (
            self.window
            and self._since_fit >= max(self.warm_up, min(self._fit_rows, self.window))
            and len(self._recent) >= self.warm_up
        ):
            # The regularisation is chosen again while the window fills, then kept.
            self._solve_recent(choose=self.c is None and self._fit_rows < self.window)
        return p

    def _solve_recent(self, choose: bool) -> None:
        """Solve again on the recent examples; what was learned so far stays counted."""
        xs, ys = zip(*self._recent, strict=True)
        learned = self.n_learned
        self._solve(xs, ys, choose)
        self.n_learned = learned

    def _count_level(self, name: str) -> None:
        """Count a level the last solve did not give a weight; at ``min_count``, give it one.

        Its weight starts at its column's pooled weight (its score so far), with the
        prior's variance ``c`` and no covariance; the next solve settles it exactly.
        Between solves, a new campaign or source thus learns as soon as it is common.
        """
        seen = self._unseen.get(name, 0) + 1
        if seen < self.min_count:
            self._unseen[name] = seen
            return
        self._unseen.pop(name, None)
        encoding = self._encoding
        assert encoding is not None
        slot = encoding.add_level(name)
        if slot is None:
            return
        pool = encoding.rare.get(name.split("=", 1)[0], -1)
        start = float(self._w[pool]) if pool >= 0 else 0.0
        self._w = np.insert(self._w, slot, start)
        grown = np.zeros((slot + 2, slot + 2))
        keep = np.r_[0:slot, slot + 1 : slot + 2]
        grown[np.ix_(keep, keep)] = self._p
        grown[slot, slot] = self.c_
        self._p = grown

    def _prior(self) -> float:
        pos = sum(y for _, y in self._recent)
        return (pos + 1) / (len(self._recent) + 2)

    def predict_proba_one(
        self, x: dict[Any, Any], **kwargs: Any
    ) -> dict[base.typing.ClfTarget, float]:
        if self._encoding is None:
            p = self._prior()
        else:
            p = _sigmoid_one(float(self._w[:-1] @ self._encoding.vector(x) + self._w[-1]))
        return {False: 1.0 - p, True: p}

    def scores(self, xs: Sequence[dict[str, float]]) -> list[float]:
        """:meth:`predict_proba_one`'s probability of a conversion for each row, at once."""
        if self._encoding is None:
            return [self._prior()] * len(xs)
        z = self._encoding.matrix(xs) @ self._w[:-1] + self._w[-1]
        out: list[float] = _sigmoid(z).tolist()
        return out

    def explain_one(self, x: dict[str, float]) -> Explanation:
        """The score with its exact split of the logit: each feature's encoded terms × weights.

        A number's share is its linear term plus its log and hinge terms; a pooled (rare
        or unseen) level's share is the pool's term in proportion to its value. Before the first
        solve the logit is all intercept.
        """
        if self._encoding is None:
            p = self._prior()
            return Explanation(p, math.log(p / (1.0 - p)), math.log(p / (1.0 - p)), [])
        encoding = self._encoding
        v = encoding.vector(x)
        w = self._w
        pooled: dict[int, float] = {}
        for name, value in x.items():
            if name not in encoding.terms and "=" in name:
                slot = encoding.rare.get(name.split("=", 1)[0], -1)
                if slot >= 0:
                    pooled[slot] = pooled.get(slot, 0.0) + value
        raw: list[tuple[str, float, float]] = []
        for name, value in x.items():
            t = encoding.terms.get(name)
            if t is not None:
                share = float(w[t[0]] * v[t[0]])
                if t[3] >= 0:
                    share += float(w[t[3]] * v[t[3]])
                if (hinge := encoding.hinges.get(name)) is not None:
                    at = slice(hinge[0], hinge[0] + len(hinge[1]))
                    share += float(w[at] @ v[at])
            elif "=" in name and (slot := encoding.rare.get(name.split("=", 1)[0], -1)) >= 0:
                share = float(w[slot] * v[slot]) * (value / pooled[slot] if pooled[slot] else 0.0)
            else:
                continue  # a number the last solve never saw: no weight yet
            raw.append((name, value, share))
        intercept = float(w[-1])
        logit = intercept + float(w[:-1] @ v)
        return Explanation(_sigmoid_one(logit), logit, intercept, raw)


@dataclass(frozen=True)
class Candidate:
    """One setting tried by :func:`select`, with its cross-validated log loss and AUC."""

    c: float
    log_skewed: bool
    logloss: float
    auc: float
    knots: int = 0


def select(
    xs: Sequence[dict[str, float]],
    ys: Sequence[Any],
    folds: int = 4,
    grid: Sequence[float] = GRID_C,
    clip: float = 5.0,
    shapes: Sequence[tuple[bool, int]] = SHAPES,
) -> tuple[NewtonLogistic, list[Candidate]]:
    """The setting chosen by blocked k-fold log loss on ``xs``, fitted on all of ``xs``.

    Tries every ``c`` in ``grid`` with every encoding in ``shapes`` (simplest first):
    plain, log terms for skewed numbers, hinges that bend each number at its
    quintiles, both. Each encoding keeps its best ``c``; the first encoding whose log
    loss is within one standard error (paired, over rows) of the lowest is chosen,
    since the more encodings are tried, the more often one wins on the folds by luck.
    Folds are contiguous blocks (rows are in time order), and only ``xs`` is used:
    pass the history, never the rows being evaluated. Log loss, a proper score summed
    over every row, picks more steadily than the folds' AUC.
    """
    with one_blas_thread():
        return _select(xs, ys, folds, grid, clip, shapes)


def _select(
    xs: Sequence[dict[str, float]],
    ys: Sequence[Any],
    folds: int,
    grid: Sequence[float],
    clip: float,
    shapes: Sequence[tuple[bool, int]] = SHAPES,
) -> tuple[NewtonLogistic, list[Candidate]]:
    y = np.asarray(ys, dtype=float)
    n = len(y)
    tried: list[Candidate] = []
    # Per encoding (in the order given, simplest first): its best c's loss per row, that
    # model and the encoding. Encoded histories are not kept: each is built again faster
    # than it would weigh (many numbers × hinges).
    bests: list[tuple[Array, NewtonLogistic, _Encoding]] = []
    cols = _Columns(xs)
    for log_skewed, knots in shapes:
        model = NewtonLogistic(log_skewed=log_skewed, clip=clip, knots=knots)
        encoding = _Encoding(cols, model.min_count, clip, log_skewed, knots)
        if (log_skewed and not encoding.logs) or (knots and not encoding.hinges):
            continue  # nothing skewed, or no number to bend: the same model as without
        x = encoding.matrix(cols)
        starts: list[Array | None] = [None] * folds
        best: tuple[Array, NewtonLogistic] | None = None
        worse = 0  # successive c's worse than the best: log loss is unimodal in log c
        for c in grid:
            if worse == 2:
                break
            aucs, losses = [], np.empty(n)
            for f in range(folds):
                lo, hi = f * n // folds, (f + 1) * n // folds
                train = np.r_[0:lo, hi:n]
                w = _fit(x[train], y[train], c, starts[f])
                starts[f] = w  # warm start the next, weaker penalty
                z = x[lo:hi] @ w[:-1] + w[-1]
                losses[lo:hi] = np.logaddexp(0.0, z) - y[lo:hi] * z
                aucs.append(auc(y[lo:hi].astype(int).tolist(), z.tolist()))
            valid = [a for a in aucs if not math.isnan(a)]
            mean_auc = sum(valid) / len(valid) if valid else float("nan")
            tried.append(Candidate(c, log_skewed, float(losses.mean()), mean_auc, knots))
            if best is None or losses.mean() < best[0].mean():
                best = (losses, NewtonLogistic(c=c, log_skewed=log_skewed, clip=clip, knots=knots))
                worse = 0
            else:
                worse += 1
        if best is not None:
            bests.append((best[0], best[1], encoding))
        del x
    if not bests:
        raise ValueError("the history has no rows to choose a model on")
    # The simplest encoding whose loss is within one standard error (paired, over rows)
    # of the best one's: more encodings tried means more chances that one wins by luck.
    lowest = min(bests, key=lambda b: b[0].mean())[0]
    _, chosen, encoding = next(
        b for b in bests if (b[0] - lowest).mean() <= (b[0] - lowest).std() / math.sqrt(n)
    )
    chosen._install(encoding, encoding.matrix(cols), y)  # noqa: SLF001 - same class
    return chosen, tried
