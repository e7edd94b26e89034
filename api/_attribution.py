"""The attribution route: ``/api/v1/attribution?model=…&compare=…``.

One model's credit by channel and campaign for a period (conversions in it),
optionally a second model side by side and the channels whose share of won
revenue moves most between the two. ``channel`` narrows the campaigns to that
channel's (the drill-down); segment and band filters do not apply to journeys.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from api._params import channel_span
from reporting.attribution import Attribution, AttributionComparison, Model
from reporting.cache import QueryCache
from reporting.queries import Analytics, Filters


def attribution_router(analytics: Analytics, cache: QueryCache) -> APIRouter:
    """The router. It declares the range and ``channel`` only: journeys cross campaigns
    and segments, so no other filter would change its answer."""
    router = APIRouter()

    @router.get(
        "/api/v1/attribution",
        response_model=AttributionComparison,
        summary="Multi-touch attribution by channel and campaign under a model, "
        "optionally compared with a second",
    )
    def attribution(
        model: Annotated[Model, Query(description="attribution model")] = "data_driven",
        compare: Annotated[Model | None, Query(description="a second model")] = None,
        lookback_days: Annotated[int, Query(ge=1, le=365)] = 90,
        half_life_days: Annotated[float, Query(gt=0, le=365, description="time decay")] = 7.0,
        f: Filters = Depends(channel_span),  # noqa: B008 - FastAPI's dependency default
    ) -> Response:
        def compute() -> AttributionComparison:
            # A client of the app's pool for the few queries of one answer (chDB: one of
            # its handles; a server: the shared client).
            with analytics.pool.client() as client:
                attribution = Attribution(client, analytics.database)
                table = attribution.table(
                    f.start, f.end, lookback_days=lookback_days, half_life_days=half_life_days
                )
            out = table.compare(model, compare)
            if f.channel is not None:
                for view in (out.model, out.compare):
                    if view is not None:
                        view.campaigns = [r for r in view.campaigns if r.channel == f.channel]
            return out

        params = {**f.model_dump(mode="json"), "model": model, "compare": compare,
                  "lookback_days": lookback_days, "half_life_days": half_life_days}  # fmt: skip
        body = cache.get("attribution", params, compute)
        return Response(content=body, media_type="application/json")

    return router
