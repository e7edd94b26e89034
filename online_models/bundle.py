"""A versioned model bundle, its Redis store, and what a score means to sales."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from river import metrics, stats

from online_models.lead_scorer import Contribution, LeadScorer

_KEEP_VERSIONS = 5


@dataclass
class ModelBundle:
    """Everything a scorer needs, published together under one version.

    ``auc`` is prequential: each example's score was given before its label was known.
    """

    version: int = 0
    scorer: LeadScorer = field(default_factory=LeadScorer)
    revenue: stats.Mean = field(default_factory=stats.Mean)
    auc: metrics.ROCAUC = field(default_factory=metrics.ROCAUC)
    examples: int = 0
    positives: int = 0

    def expected_revenue(self, default: float = 0.0) -> float:
        """Mean revenue of won deals so far (``default`` before the first)."""
        return float(self.revenue.get()) if self.revenue.n else default


class ModelStore:
    """Versioned model snapshots in Redis; scorers poll :meth:`latest_version`.

    Snapshots are pickles written only by our own learner into our own Redis
    namespace; never point this at a Redis others can write to.
    """

    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, "model", *parts))

    async def publish(self, bundle: ModelBundle) -> int:
        """Store ``bundle`` as the next version and make it the latest; returns the version."""
        version = int(await self.client.incr(self._k("seq")))
        bundle.version = version
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._k(str(version)), pickle.dumps(bundle, protocol=pickle.HIGHEST_PROTOCOL))
            pipe.set(self._k("latest"), version)
            pipe.delete(self._k(str(version - _KEEP_VERSIONS)))
            await pipe.execute()
        return version

    async def latest_version(self) -> int:
        """The newest published version, 0 if none."""
        raw = await self.client.get(self._k("latest"))
        return int(raw) if raw else 0

    async def load(self, version: int | None = None) -> ModelBundle | None:
        """A published bundle (the latest by default), or None if there is none."""
        if version is None:
            version = await self.latest_version()
        if version == 0:
            return None
        raw = await self.client.get(self._k(str(version)))
        if raw is None:
            return None
        if not isinstance(raw, bytes):
            raise TypeError(f"model snapshot {version} is not bytes")
        bundle = pickle.loads(raw)  # noqa: S301 - our own snapshot, see the class docstring
        if not isinstance(bundle, ModelBundle):
            raise TypeError(f"model snapshot {version} is not a ModelBundle")
        return bundle


def band(score: float, a: float, b: float, c: float) -> str:
    """Band A–D from a score and the thresholds of A, B and C.

    >>> [band(s, 0.5, 0.25, 0.1) for s in (0.9, 0.5, 0.3, 0.1, 0.05)]
    ['A', 'A', 'B', 'C', 'D']
    """
    if score >= a:
        return "A"
    if score >= b:
        return "B"
    if score >= c:
        return "C"
    return "D"


_LABELS: dict[str, str] = {
    "pages_viewed": "pages viewed",
    "pricing_page_visits": "pricing-page visits",
    "email_opens": "e-mail opens",
    "email_clicks": "e-mail clicks",
    "demo_requested": "requested a demo",
    "log_company_size": "company size",
    "email_is_free": "uses a free e-mail address",
    "email_is_role": "uses a role mailbox",
    "has_phone": "left a phone number",
}


def reason(c: Contribution, raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """A contribution as a record with a sentence sales can read.

    >>> reason(Contribution("channel=paid_search", 1.0, 0.42))["text"]
    'channel is paid_search: raises the score'
    >>> reason(Contribution("pricing_page_visits", 1.386, 0.3), {"pricing_page_visits": 3})["text"]
    'pricing-page visits: 3: raises the score'
    """
    effect = "raises the score" if c.contribution > 0 else "lowers the score"
    if "=" in c.feature:
        name, value = c.feature.split("=", 1)
        text = f"{name.replace('_', ' ')} is {value}: {effect}"
    else:
        label = _LABELS.get(c.feature, c.feature.removeprefix("eng_").replace("_", " "))
        shown = (raw or {}).get(c.feature)
        text = (
            f"{label}: {shown}: {effect}"
            if shown not in (None, True, False)
            else f"{label}: {effect}"
        )
    return {
        "feature": c.feature,
        "value": round(c.value, 4),
        "contribution": round(c.contribution, 4),
        "text": text,
    }
