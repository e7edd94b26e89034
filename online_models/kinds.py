"""Model kinds chosen by configuration: a spec string names a kind and its parameters.

A spec is ``kind`` or ``kind:param=value,param=value``, for example ``forest``,
``logistic:optimizer=sgd,learning_rate=0.01``, ``newton:c=0.3`` or ``hoeffding:max_size_mb=8``.
The spec is also the model's name in metrics, promotions and ``leadstream models``.

``logistic`` is the default AdaGrad learner (:class:`LeadScorer`); ``newton`` is the
model ``leadstream evaluate`` measures (:class:`~online_models.newton_logistic.NewtonLogistic`:
solved exactly on its history, by a backfill or its first examples, then online Newton
steps and periodic solves over a window of recent examples); ``hoeffding`` and
``forest`` are River trees with a memory cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from online_models.lead_scorer import Explanation, LeadScorer
from online_models.tree_scorer import TreeScorer

KINDS: tuple[str, ...] = ("logistic", "newton", "hoeffding", "forest")

_PARAMS: dict[str, dict[str, type]] = {
    "logistic": {"learning_rate": float, "l2": float, "prior": float, "optimizer": str},
    "newton": {"c": float, "window": int, "warm_up": int},
    "hoeffding": {"max_size_mb": float, "seed": int},
    "forest": {"max_size_mb": float, "n_models": int, "seed": int},
}


class Scorer(Protocol):
    """What the learner and the scorers need from a conversion model."""

    n_learned: int

    def predict_proba_one(self, x: dict[Any, Any], **kwargs: Any) -> dict[Any, float]: ...

    def predict_learn_one(self, x: dict[str, float], y: bool, w: float = 1.0) -> float: ...

    def learn_one(self, x: dict[Any, Any], y: Any, **kwargs: Any) -> None: ...

    def explain_one(self, x: dict[str, float]) -> Explanation: ...


@dataclass(frozen=True)
class Defaults:
    """Parameters a spec does not set, from the settings."""

    learning_rate: float = 0.1
    l2: float = 1e-4
    optimizer: str = "adagrad"
    tree_max_size_mb: float = 32.0
    prior: float = 0.1


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """The kind and parameters of a spec, or a ValueError naming the fix.

    >>> parse_spec("logistic:optimizer=sgd,learning_rate=0.01")
    ('logistic', {'optimizer': 'sgd', 'learning_rate': 0.01})
    >>> parse_spec("tree")
    Traceback (most recent call last):
    ...
    ValueError: model kind 'tree' is not one of logistic, newton, hoeffding, forest
    """
    kind, _, rest = spec.strip().partition(":")
    if kind not in KINDS:
        raise ValueError(f"model kind {kind!r} is not one of {', '.join(KINDS)}")
    params: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        name, eq, value = part.partition("=")
        types = _PARAMS[kind]
        if not eq or name not in types:
            raise ValueError(
                f"model spec {spec!r}: {part!r} is not name=value with a name among "
                f"{', '.join(types)}"
            )
        try:
            params[name] = types[name](value)
        except ValueError as exc:
            raise ValueError(
                f"model spec {spec!r}: {name} must be a {types[name].__name__}"
            ) from exc
    return kind, params


def build_model(spec: str, defaults: Defaults | None = None) -> Scorer:
    """A fresh, untrained model for ``spec``.

    >>> type(build_model("forest:n_models=3")).__name__, build_model("logistic").optimizer
    ('TreeScorer', 'adagrad')
    """
    d = defaults or Defaults()
    kind, params = parse_spec(spec)
    if kind == "newton":
        from online_models.newton_logistic import NewtonLogistic  # numpy and scipy: on demand

        return NewtonLogistic(
            c=params.get("c"),
            window=params.get("window", 10_000),
            warm_up=params.get("warm_up", 200),
        )
    if kind == "logistic":
        return LeadScorer(
            learning_rate=params.get("learning_rate", d.learning_rate),
            l2=params.get("l2", d.l2),
            prior=params.get("prior", d.prior),
            optimizer=params.get("optimizer", d.optimizer),
        )
    return TreeScorer(
        kind,  # type: ignore[arg-type]  # parse_spec returned one of the tree kinds
        max_size_mb=params.get("max_size_mb", d.tree_max_size_mb),
        n_models=params.get("n_models", 5),
        seed=params.get("seed", 0),
    )
