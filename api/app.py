"""The FastAPI application: the JSON API over :mod:`reporting.queries` and the dashboard.

Every view takes the same filters as query parameters; answers are cached in
Redis by :class:`reporting.cache.QueryCache`. The dashboard is a static page
with vanilla JavaScript and SVG charts, served from ``api/static`` with no
external assets, so it works without internet access.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api import _errors
from api._attribution import attribution_router
from api._errors import RESPONSES, ApiError, ErrorItem
from api._login import LoginLimiter, client_address, over_tls
from api._login_page import login_page, prefers_html
from api._openapi import document
from api._params import (
    DAY,
    DAY_WORDS,
    DEFAULT_DAYS,
    PathValue,
    clamp,
    filters,
    narrow,
    parse_day,
    scope,
    span,
)
from api._security import COOKIE, Authenticator, Guard
from config.settings import ApiSettings, ModelSettings, Settings
from reporting._period import Period, PeriodKind
from reporting.cache import QueryCache
from reporting.queries import (
    Analytics,
    AnomalyRow,
    CohortRow,
    Filters,
    Funnel,
    Kpis,
    LeadQuality,
    LeadRow,
    ModelHealth,
    Options,
    RoiBy,
    RoiRow,
)
from reporting.recommend import Recommendations, recommendations

STATIC = Path(str(resources.files("api") / "static"))

F = Annotated[Filters, Depends(filters)]
Scope = Annotated[Filters, Depends(scope)]
Span = Annotated[Filters, Depends(span)]
#: The schema's maximum is set to this server's ``api.max_rows`` (see api._openapi).
Limit = Annotated[int, Query(ge=1, le=10_000, description="most rows (at most api.max_rows)")]


def _json(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")


def create_app(
    analytics: Analytics,
    cache: QueryCache,
    settings: ApiSettings,
    registry: CollectorRegistry,
    models: ModelSettings | None = None,
    full: Settings | None = None,
) -> FastAPI:
    """The app; ``registry`` holds the cache metrics and is served on ``/metrics``.

    ``full`` is the whole configuration, which the budget recommendations read (report
    guardrails, currency, target stage); without it they use the defaults and the
    environment, on ``analytics``'s database.
    """
    auth = Authenticator(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        cache.close()  # the watermark thread
        analytics.pool.close()  # the chDB handles the app opened

    app = FastAPI(
        lifespan=lifespan,
        title="leadstream analytics API",
        version="1",
        description="Executive KPIs, funnel, lead quality, ROI, cohorts, anomalies, model health "
        "drill-down from channel to campaign to lead, and budget recommendations. "
        "Authenticate with "
        "`Authorization: Bearer <token>` or HTTP basic.",
        docs_url=None,  # Swagger UI loads from a CDN; the OpenAPI document is at /openapi.json
        redoc_url=None,
        responses=RESPONSES,
    )
    _errors.install(app, {DAY: DAY_WORDS})
    document(app, auth, settings.max_rows)
    app.add_middleware(Guard, auth=auth)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def options() -> Options:
        return Options.model_validate_json(cache.get("options", {}, analytics.options))

    app.state.options = options

    def view(name: str, f: Filters, compute: Any, **extra: Any) -> Response:
        return _json(cache.get(name, {**f.model_dump(mode="json"), **extra}, compute))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    limiter = LoginLimiter(settings.login_attempts, settings.login_window_s)
    trusted = frozenset(settings.trusted_proxies)

    @app.get("/login", include_in_schema=False)
    def login(request: Request, token: str | None = Query(None, max_length=512)) -> Response:
        if not auth.enabled:
            return RedirectResponse("/", status_code=303)
        # A browser (the login page's form) is answered with the page again, not JSON.
        browser = prefers_html(request.headers.get("accept", ""))
        if token is None:
            if browser:
                return login_page(200, basic=auth.password_set)
            raise ApiError(422, "query.token: Field required",
                           [ErrorItem(loc=["query", "token"], msg="Field required", type="missing")])  # fmt: skip
        address = client_address(request, trusted)
        wait = limiter.retry_after(address)
        if wait is not None:
            detail = f"too many failed logins; try again in {wait} s"
            if browser:
                return login_page(429, detail[0].upper() + detail[1:] + ".",
                                  basic=auth.password_set, headers={"Retry-After": str(wait)})  # fmt: skip
            raise ApiError(429, detail, headers={"Retry-After": str(wait)})
        if not auth.token_ok(token):
            limiter.failed(address)
            if browser:
                return login_page(401, "That token was not accepted.", basic=auth.password_set)
            raise ApiError(401, "wrong token")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE, auth.session_value(), httponly=True, samesite="strict", path="/",
            secure=over_tls(request, trusted),  # a browser then sends it over TLS only
        )  # fmt: skip
        return response

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/v1/config", summary="Dashboard settings: live-refresh interval")
    def config() -> dict[str, Any]:
        return {"refresh_s": settings.refresh_s, "default_days": DEFAULT_DAYS}

    @app.get("/api/v1/watermark", summary="Changes whenever new data lands")
    def watermark() -> dict[str, str]:
        return {"watermark": cache.current_watermark()}

    @app.get(
        "/api/v1/options",
        response_model=Options,
        summary="Channels, campaigns, segment values, data range",
    )
    def get_options() -> Response:
        return _json(cache.get("options", {}, analytics.options))

    @app.get(
        "/api/v1/kpis",
        response_model=Kpis,
        summary="Executive KPIs with change vs the previous period",
    )
    def kpis(f: F) -> Response:
        return view("kpis", f, lambda: analytics.kpis(f))

    @app.get(
        "/api/v1/funnel", response_model=Funnel, summary="Lead → MQL → SQL → opportunity → won"
    )
    def funnel(f: F) -> Response:
        return view("funnel", f, lambda: analytics.funnel(f))

    @app.get(
        "/api/v1/lead-quality",
        response_model=LeadQuality,
        summary="Score histogram and band mix by channel",
    )
    def lead_quality(f: F) -> Response:
        return view("lead_quality", f, lambda: analytics.lead_quality(f))

    @app.get(
        "/api/v1/roi",
        response_model=list[RoiRow],
        summary="Spend, CPL, CPA, revenue, ROAS, ROI by a dimension",
    )
    def roi(f: F, by: RoiBy = "channel") -> Response:
        return view("roi", f, lambda: analytics.roi(f, by), by=by)

    @app.get("/api/v1/cohorts", response_model=list[CohortRow], summary="Weekly conversion cohorts")
    def cohorts(f: F) -> Response:
        return view("cohorts", f, lambda: analytics.cohorts(f))

    @app.get(
        "/api/v1/anomalies",
        response_model=list[AnomalyRow],
        summary="Detected anomalies, newest first",
    )
    def anomalies(
        f: Scope, limit: Annotated[int, Query(ge=1, le=1000, description="most rows")] = 100
    ) -> Response:
        return view("anomalies", f, lambda: analytics.anomalies(f, limit), limit=limit)

    @app.get(
        "/api/v1/model-health",
        response_model=ModelHealth,
        summary="Model metrics over time and promotions",
    )
    def model_health(f: Span) -> Response:
        return view("model_health", f, lambda: analytics.model_health(f))

    @app.get("/api/v1/live", summary="New leads per hour over the last hours of data")
    def live(hours: Annotated[int, Query(ge=1, le=24 * 14)] = 48) -> Response:
        return _json(cache.get("live", {"hours": hours}, lambda: analytics.live(hours)))

    @app.get(
        "/api/v1/channels/{channel_name}/campaigns",
        response_model=list[RoiRow],
        summary="Drill-down: a channel's campaigns",
    )
    def channel_campaigns(channel_name: PathValue, f: F) -> Response:
        g = narrow(f, "channel", channel_name)
        if g is None:
            return _json(b"[]")
        return view("campaigns", g, lambda: analytics.roi(g, "campaign_id"))

    @app.get(
        "/api/v1/campaigns/{campaign}/leads",
        response_model=list[LeadRow],
        summary="Drill-down: a campaign's leads with scores and reasons",
    )
    def campaign_leads(
        campaign: PathValue, f: F,
        limit: Limit = 100,
    ) -> Response:  # fmt: skip
        limit = _cap(limit, settings.max_rows)
        g = narrow(f, "campaign_id", campaign)
        if g is None:
            return _json(b"[]")
        return view("leads", g, lambda: analytics.leads(g, limit), limit=limit)

    @app.get(
        "/api/v1/leads",
        response_model=list[LeadRow],
        summary="The best-scored leads that match the filters (drill-down)",
    )
    def leads(f: F, limit: Limit = 100) -> Response:
        limit = _cap(limit, settings.max_rows)
        return view("leads", f, lambda: analytics.leads(f, limit), limit=limit)

    @app.get("/api/v1/insights", summary="Characteristics of successful leads (segment analysis)")
    def insights(f: F, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> Response:
        return view(
            "insights",
            f,
            lambda: _insights(analytics, models or ModelSettings(), f, limit),
            limit=limit,
        )

    @app.get(
        "/api/v1/recommendations",
        response_model=Recommendations,
        summary="Budget moves and lead segments for the next period, with effect and confidence",
    )
    def get_recommendations(
        period: Annotated[PeriodKind, Query(description="report period")] = "weekly",
        for_day: Annotated[
            str | None,
            Query(
                alias="for",
                pattern=DAY,
                json_schema_extra={"format": "date"},
                description="a day (YYYY-MM-DD, 2000-01-01 to 2099-12-31) of the period the "
                "advice is based on; default: the last complete period before the data's last "
                "day",
            ),
        ] = None,
    ) -> Response:
        if for_day is None:
            p = Period.last_complete(period, clamp(options().last_day or date.today()))
        else:
            p = Period.containing(period, parse_day(for_day, "for"))
        return _json(
            cache.get(
                "recommendations",
                {"period": p.kind, "start": p.start.isoformat()},
                lambda: _recommend(analytics, full, p),
            )
        )

    app.include_router(attribution_router(analytics, cache))
    return app


def _recommend(analytics: Analytics, full: Settings | None, period: Period) -> Recommendations:
    """Budget recommendations for the period after ``period``, on ``analytics``'s database."""
    if full is None:
        full = Settings()
    if full.clickhouse.database != analytics.database:
        ch = full.clickhouse.model_copy(update={"database": analytics.database})
        full = full.model_copy(update={"clickhouse": ch})
    with analytics.pool.client() as client:
        return recommendations(client, full, period)


def _cap(limit: int, most: int) -> int:
    if limit > most:
        raise ApiError(422, f"limit {limit} is above the most allowed, {most} (api.max_rows)")
    return limit


def _insights(analytics: Analytics, models: ModelSettings, f: Filters, limit: int) -> Any:
    """Segments of successful leads, from reporting.insights (helper H3b's module)."""
    from reporting.insights import segment_insights

    since = datetime.combine(f.start, time(0), tzinfo=UTC)
    until = datetime.combine(f.end + timedelta(days=1), time(0), tzinfo=UTC)
    chosen = {name: str(getattr(f, name)) for name in f.set_filters()}
    with analytics.pool.client() as client:
        return segment_insights(
            client, analytics.database, models, since=since, until=until, limit=limit,
            leads=chosen,
        )  # fmt: skip
