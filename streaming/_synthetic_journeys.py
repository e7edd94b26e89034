"""Multi-channel journeys of the synthetic generator, and their hidden truth.

With ``GeneratorConfig(journeys=True)`` a lead is not touched by its own channel
only. After the lead is created (by its channel and campaign: the first touch),
other channels reach it over the following weeks: retargeting ads, e-mail
nurture, organic visits, webinars and events, partners, sales outreach. Each
touchpoint carries its own ``channel`` and ``campaign_id``. The lead's own
engagement (site visits, opens, calls once it is qualified) is ``direct``.

Whether a channel reached the lead (at least once, before the funnel starts)
shifts the lead's conversion logit by the channel's hidden ``effect``: that is
the causal truth. Who is reached does not depend on the lead's propensity, so
the effects are identifiable from the data.

Truth shares (:class:`ChannelTruth`)
    A channel's *removal effect* is the drop in expected conversions (reaching
    ``sql``, the outcome the propensity is the probability of) if the channel's
    touches were removed: for a lead the channel created, the lead would not
    exist, so its whole propensity is lost; for a lead the channel only reached
    later, the propensity falls to what it would be without that channel's
    logit effect. The shares are the removal effects normalised to sum to 1.
    ``direct`` has no effect by construction (its share is 0).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from streaming._synthetic_writers import url

DIRECT = "direct"
DAY = 86_400


class JourneyChannel(NamedTuple):
    """A channel that reaches leads after they were created."""

    channel: str
    reach: float  # share of leads it reaches at least once
    effect: float  # logit shift of the propensity when it reached the lead (the truth)
    event_type: str
    campaigns: tuple[str, ...]
    extra_touches: float  # mean further touches once it reached the lead


#: The channels of a journey after the lead's creation. Reach and effect are not
#: related on purpose: retargeting ads reach many leads and change nothing.
JOURNEY: tuple[JourneyChannel, ...] = (
    JourneyChannel("paid_social", 0.45, 0.0, "page_view",
                   ("so-linkedin-01", "so-meta-02", "so-lookalike-03"), 1.5),
    JourneyChannel("paid_search", 0.30, 0.2, "page_view", ("ps-retarget-04", "ps-brand-01"), 0.8),
    JourneyChannel("email", 0.55, 0.35, "email_click",
                   ("em-nurture-02", "em-newsletter-01", "em-product-03"), 1.2),
    JourneyChannel("organic_search", 0.30, 0.1, "page_view", ("os-seo-01", "os-blog-02"), 0.6),
    JourneyChannel("events", 0.15, 0.9, "webinar", ("ev-webinar-02", "ev-conference-01"), 0.3),
    JourneyChannel("partners", 0.08, 0.5, "page_view", ("pa-cosell-02",), 0.4),
    JourneyChannel("referral", 0.05, 0.6, "page_view", ("rf-customer-01",), 0.2),
    JourneyChannel("sales_outreach", 0.25, 0.7, "call", ("sdr-outbound-01",), 1.0),
)  # fmt: skip
#: Logit shift of every lead in journey mode, so that the conversion rate stays near
#: the single-channel generator's although journeys add effects.
INTERCEPT = -0.55
_WINDOW = 14 * DAY  # journeys unfold over the first two weeks after creation


class Touch(NamedTuple):
    """One touch of a journey: when, through which channel and campaign, of what type."""

    at: int
    channel: str
    campaign_id: str
    event_type: str


def journey(rng: random.Random, created: int) -> list[Touch]:
    """The touches after a lead's creation (at ``created``, seconds), in time order.

    Examples
    --------
    >>> touches = journey(random.Random(3), 0)
    >>> all(0 < t.at <= 14 * DAY for t in touches), touches == sorted(touches)
    (True, True)
    """
    out: list[Touch] = []
    for jc in JOURNEY:
        if rng.random() >= jc.reach:
            continue
        n = 1 + int(rng.expovariate(1.0 / jc.extra_touches))
        for _ in range(min(n, 8)):
            at = created + 600 + int(rng.random() * _WINDOW)
            out.append(Touch(at, jc.channel, rng.choice(jc.campaigns), jc.event_type))
    out.sort()
    return out


def bodies(
    rng: random.Random, lead_id: str, touches: Iterable[Touch]
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Each touch as (time, event type, event body), with its page when it has one.

    >>> list(bodies(random.Random(1), "L1", [Touch(5, "sales_outreach", "sdr-01", "call")]))
    [(5, 'call', {'lead_id': 'L1', 'channel': 'sales_outreach', 'campaign_id': 'sdr-01'})]
    """
    for t in touches:
        body: dict[str, Any] = {"lead_id": lead_id, "channel": t.channel,
                                "campaign_id": t.campaign_id}  # fmt: skip
        page = url(rng, t.event_type)
        yield t.at, t.event_type, body if page is None else {**body, "url": page}


def effects(touches: Iterable[Touch]) -> dict[str, float]:
    """The logit effect of each channel that reached the lead.

    >>> effects([Touch(1, "email", "em-nurture-02", "email_click"),
    ...          Touch(2, "email", "em-newsletter-01", "email_click")])
    {'email': 0.35}
    """
    by_name = {jc.channel: jc.effect for jc in JOURNEY}
    return {t.channel: by_name[t.channel] for t in touches}


def removal(
    p: float, own_channel: str, reached: Mapping[str, float], without: Mapping[str, float]
) -> dict[str, float]:
    """Per channel, the drop in this lead's propensity ``p`` if its touches were removed.

    ``without[c]`` is the propensity without channel ``c``'s effect. The lead's own
    channel created it, so removing that channel removes the whole propensity.

    >>> removal(0.3, "email", {"events": 0.9}, {"events": 0.15})
    {'events': 0.15, 'email': 0.3}
    """
    out = {c: round(p - without[c], 12) for c in reached if c != own_channel}
    out[own_channel] = p
    return out


class ChannelTruth:
    """Sums the removal effects of the leads' truths; shares are the normalised sums.

    Examples
    --------
    >>> t = ChannelTruth()
    >>> t.update({"email": 0.3, "events": 0.1})
    >>> t.update({"events": 0.2})
    >>> t.shares()
    {'email': 0.5, 'events': 0.5}
    """

    def __init__(self) -> None:
        self._removal: dict[str, float] = defaultdict(float)
        self._leads = 0

    def update(self, removal: Mapping[str, float]) -> None:
        """Add one lead's removal effects."""
        self._leads += 1
        for channel, drop in removal.items():
            self._removal[channel] += drop

    def removal(self) -> dict[str, float]:
        """Expected conversions lost per channel if its touches were removed."""
        return dict(sorted(self._removal.items()))

    def shares(self) -> dict[str, float]:
        """The removal effects normalised to sum to 1 (``direct`` gets 0)."""
        total = sum(self._removal.values())
        return {c: (v / total if total else 0.0) for c, v in self.removal().items()}

    def write(self, path: str | Path) -> None:
        """Write the truth as JSON: definition, logit effects, removal effects, shares."""
        doc = {
            "definition": "share of channel c = removal effect of c / sum of removal effects; "
            "removal effect = drop in expected sql conversions if c's touches were removed "
            "(a lead c created is lost entirely; a lead c reached later loses c's logit effect)",
            "outcome": "sql",
            "leads": self._leads,
            "effects": {jc.channel: jc.effect for jc in JOURNEY} | {DIRECT: 0.0},
            "reach": {jc.channel: jc.reach for jc in JOURNEY},
            "removal": {c: round(v, 6) for c, v in self.removal().items()},
            "shares": {c: round(v, 6) for c, v in self.shares().items()} | {DIRECT: 0.0},
        }
        Path(path).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def sigmoid(x: float) -> float:
    """The logistic function.

    >>> sigmoid(0.0)
    0.5
    """
    return 1.0 / (1.0 + math.exp(-x))
