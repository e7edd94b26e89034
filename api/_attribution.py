"""The attribution route: ``/api/v1/attribution?model=…&compare=…``.

One model's credit by channel and campaign for a period (conversions in it),
optionally a second model side by side and the channels whose share of won
revenue moves most between the two. ``channel`` narrows the campaigns to that
channel's (the drill-down); segment and band filters do not apply to journeys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from reporting.attribution import Attribution, AttributionComparison, Model
from reporting.cache import QueryCache
from reporting.queries import Analytics, Filters


def attribution_router(
    analytics: Analytics, cache: QueryCache, filters: Callable[..., Filters]
) -> APIRouter:
    """The router; ``filters`` is the app's dependency that reads the common filters."""
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
        # a default, not Annotated: a string annotation cannot name this closure's `filters`
        f: Filters = Depends(filters),  # noqa: B008 - FastAPI's dependency default
    ) -> Response:
        extra = [n for n in f.set_filters() if n != "channel"]
        if extra:
            raise HTTPException(422, f"attribution takes no {', '.join(extra)} filter")

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
