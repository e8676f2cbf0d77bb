"""The monitor's HTTP application: routes, error mapping and lifecycle."""

from __future__ import annotations

import logging
import pathlib
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from collectors.contract import (
    ID_PATTERN,
    NAME_PATTERN,
    LabelBatch,
    ModelDescription,
    PredictionBatch,
)
from monitor.api.auth import Authorizer, Principal
from monitor.api.ingest import Ingestor, validation_problems
from monitor.api.limits import BodySizeLimit, decompress
from monitor.api.openapi import body_schema
from monitor.api.prediction_results import prediction_results_router
from monitor.api.report import report_router
from monitor.api.results import (
    Seconds,
    Windows,
    results_router,
    window_model,
    window_public,
)
from monitor.api.schemas import (
    ErrorBody,
    IngestResult,
    ModelPublic,
    ReferencePublic,
    VersionPublic,
    WindowPublic,
)
from monitor.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    InputError,
    MissingDependencyError,
    NotFoundError,
    PayloadTooLarge,
    SidewatchError,
)
from monitor.export.prometheus import BackgroundCollector, IngestMetrics, ResultsCollector
from monitor.reference import format_for, profile_reference, read_reference, to_parquet
from monitor.runner import Runner, Schedule
from monitor.score.fitted import ScoringOptions
from monitor.score.loop import ScoringLoop
from monitor.score.part import check_part_names
from monitor.score.parts import PARTS
from monitor.score.retention import PredictionResultsRetention
from monitor.score.scorer import WindowScorer
from monitor.settings import MonitorSettings
from monitor.store import ReferenceInfo, Store

logger = logging.getLogger("sidewatch.monitor")

_STATUS: dict[type[SidewatchError], tuple[int, str]] = {
    InputError: (422, "bad_request"),
    NotFoundError: (404, "not_found"),
    ConflictError: (409, "conflict"),
    AuthError: (401, "unauthorized"),
    ForbiddenError: (403, "forbidden"),
    PayloadTooLarge: (413, "too_large"),
    MissingDependencyError: (501, "not_installed"),
}

RETENTION_INTERVAL_SECONDS = 3600.0
"""How often retention looks for results past their horizon."""

ModelPath = Annotated[str, Path(min_length=1, max_length=128, pattern=NAME_PATTERN)]
VersionPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]


def _caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    authorizer: Authorizer = request.app.state.authorizer
    return authorizer.principal(authorization)


def _admin(principal: Annotated[Principal, Depends(_caller)]) -> Principal:
    principal.check_admin()
    return principal


def _scraper(principal: Annotated[Principal, Depends(_caller)]) -> Principal:
    principal.check_scrape()
    return principal


def _docs_reader(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    settings: MonitorSettings = request.app.state.settings
    if not settings.public_docs:
        _caller(request, authorization).check_admin()


Caller = Annotated[Principal, Depends(_caller)]
"""Any caller with a valid token (anyone, when no token is configured)."""
Admin = Annotated[Principal, Depends(_admin)]
"""A caller with the admin token (anyone, when no token is configured)."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 413, 422)
}


def create_app(
    settings: MonitorSettings, *, store: Store | None = None, clock: Callable[[], float] = time.time
) -> FastAPI:
    """Build the monitor application.

    Args:
        settings: Validated settings.
        store: The store to use; by default one on ``settings.database_url``. The
            schema is migrated at start-up either way.
        clock: Current epoch time, for the scoring loop (injected in tests).
    """
    store = store or Store(settings.database_url)
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    scorer = WindowScorer(
        store,
        window_seconds=settings.window_seconds,
        min_window_events=settings.min_window_events,
        psi_threshold=settings.psi_threshold,
        psi_bins=settings.psi_bins,
        drift_test=settings.drift_test,
        drift_tests=settings.drift_tests,
        parts=settings.window_parts,
        model_parts=settings.model_window_parts,
        fdr=settings.drift_fdr or None,
        drift_share=settings.drift_share,
        options=ScoringOptions(
            sample_rows=settings.score_sample_rows,
            multivariate=None
            if settings.multivariate_method == "off"
            else settings.multivariate_method,
            correlation_max_features=settings.correlation_max_features,
        ),
    )
    loop = ScoringLoop(
        store,
        scorer,
        window_seconds=settings.window_seconds,
        rollup_seconds=settings.rollups,
        count_window=settings.count_window,
        segment_keys=settings.segment_keys,
        max_segment_values=settings.max_segment_values,
        split_variants=settings.split_variants,
        split_stages=settings.split_stages,
        split_groups=settings.split_sensitive_groups,
        clock=clock,
    )
    runner = Runner()
    runner.add(
        "scoring",
        loop,
        Schedule(settings.score_interval_seconds, settings.score_budget_seconds),
    )
    runner.add(
        "prediction_results_retention",
        PredictionResultsRetention(store, settings.prediction_results_retention_seconds, clock),
        Schedule(RETENTION_INTERVAL_SECONDS, settings.score_budget_seconds),
    )
    ingestor = Ingestor(store, metrics, loop.mark, window_seconds=settings.window_seconds)
    authorizer = Authorizer(settings)
    registry.register(
        ResultsCollector(
            loop.latest,
            store.list_models,
            lambda: (loop.last_success, runner.job_stats("scoring").runs["error"]),
            settings.max_feature_labels,
            splits=loop.latest_splits,
        )
    )
    registry.register(BackgroundCollector(runner.stats))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(store.migrate)
        store.start_checkpoints()
        loop.recover()
        runner.start()
        if not settings.auth_enabled:
            logger.warning(
                "No token configured: the API is open to anyone on this host, so the "
                "monitor listens on %s only. Set SIDEWATCH_ADMIN_TOKEN to open it up.",
                settings.host,
            )
        yield
        runner.stop()
        store.close()

    app = FastAPI(
        title="Sidewatch monitor",
        version="0.1.0",
        description="Ingest captured predictions and late labels; score drift and accuracy.",
        lifespan=lifespan,
        # Served below, behind the admin token once tokens are configured.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.loop = loop
    app.state.runner = runner
    app.state.registry = registry
    app.state.authorizer = authorizer

    def limit_for(path: str) -> int:
        if path.endswith("/reference"):
            return settings.max_reference_bytes
        return settings.max_request_bytes

    app.add_middleware(
        BodySizeLimit, limit_for=limit_for, on_reject=metrics.rejected.labels("too_large").inc
    )

    @app.exception_handler(SidewatchError)
    async def _sidewatch_error(_request: Request, exc: SidewatchError) -> JSONResponse:
        status, reason = _STATUS.get(type(exc), (400, "bad_request"))
        metrics.rejected.labels(reason).inc()
        problems = getattr(exc, "problems", [])
        body = {"detail": str(exc), "problems": [{"loc": loc, "msg": msg} for loc, msg in problems]}
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.rejected.labels("bad_request").inc()
        problems = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        return JSONResponse({"detail": "the request is not valid", "problems": problems}, 422)

    # -- health and metrics ------------------------------------------------------------

    @app.get("/livez", tags=["health"])
    def livez() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": ErrorBody}})
    def readyz() -> JSONResponse:
        """The store answers: the monitor can take events."""
        if store.ping():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"detail": "the database does not answer"}, status_code=503)

    @app.get("/metrics", tags=["health"], response_class=Response, responses=_ERRORS)
    def prometheus_metrics(
        _: Annotated[Principal, Depends(_scraper)], accept: Annotated[str | None, Header()] = None
    ) -> Response:
        """Prometheus exposition of ingest counters and the latest window results (the
        scrape token or the admin token, once tokens are configured)."""
        encoder, content_type = choose_encoder(accept or "")
        return Response(encoder(registry), media_type=content_type)

    # -- API documentation -------------------------------------------------------------

    docs_reader = [Depends(_docs_reader)]

    @app.get("/openapi.json", include_in_schema=False, dependencies=docs_reader)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=docs_reader)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

    @app.get("/redoc", include_in_schema=False, dependencies=docs_reader)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")

    # -- models ------------------------------------------------------------------------

    @app.put("/v1/models/{name}", tags=["models"], responses=_ERRORS, response_model=ModelPublic)
    def put_model(
        name: ModelPath, description: ModelDescription, _: Admin, response: Response
    ) -> ModelPublic:
        """Register a model (idempotent: the same description again changes nothing)."""
        if description.name != name:
            raise InputError(
                "the path and the body name different models",
                [("name", f"expected {name!r}, as in the path")],
            )
        created = store.put_model(description)
        ingestor.forget_model(name)
        response.status_code = 201 if created else 200
        return _model_public(store, description)

    @app.get("/v1/models", tags=["models"], responses=_ERRORS)
    def list_models(_: Admin) -> list[ModelPublic]:
        """Every registered model."""
        return [_model_public(store, m) for m in store.list_models()]

    @app.get("/v1/models/{name}", tags=["models"], responses=_ERRORS)
    def get_model(name: ModelPath, _: Admin) -> ModelPublic:
        """One registered model."""
        return _model_public(store, store.get_model(name))

    @app.put("/v1/models/{name}/versions/{version}", tags=["models"], responses=_ERRORS)
    def put_version(name: ModelPath, version: VersionPath, _: Admin) -> VersionPublic:
        """Register a version (events of an unknown version also register it)."""
        store.get_model(name)
        public = VersionPublic(model=name, version=version)
        store.ensure_versions([(name, public.version)])
        return public

    @app.put(
        "/v1/models/{name}/versions/{version}/reference",
        tags=["models"],
        status_code=201,
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/vnd.apache.parquet": {
                        "schema": {"type": "string", "format": "binary"}
                    },
                    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                },
            }
        },
    )
    async def put_reference(
        name: ModelPath,
        version: VersionPath,
        request: Request,
        _: Admin,
        format: Annotated[str | None, Query(description="csv, parquet or json")] = None,
    ) -> ReferencePublic:
        """Upload a reference dataset for a version (a new revision each time).

        Every declared feature must be a column; other columns are kept.
        """
        fmt = format_for(request.headers.get("content-type"), format)
        with tempfile.TemporaryDirectory(prefix="sidewatch-reference-") as spool:
            # The body goes to disk as it arrives (the size cap counts it on the way),
            # so a large upload is never held whole in memory; the parser reads the
            # file in blocks. Writes land in the page cache: too short to matter to
            # the event loop.
            path = pathlib.Path(spool) / f"upload.{fmt}"
            with path.open("wb") as file:
                async for chunk in request.stream():
                    file.write(chunk)

            def work() -> ReferenceInfo:
                model = store.get_model(name)
                frame = read_reference(path, fmt, model)
                path.unlink()
                profile = profile_reference(frame, model)
                rows, data = len(frame), to_parquet(frame)
                del frame  # the table's memory before the store copies the Parquet
                return store.add_reference(
                    name, version, rows=rows, source_format=fmt, data=data, profile=profile
                )

            info = await run_in_threadpool(work)
        ingestor.forget_reference(name, version)
        return ReferencePublic(
            model=name,
            version=version,
            revision=info.revision,
            rows=info.rows,
            source_format=fmt,
            features_profiled=sorted(info.profile["features"]),
            created_at=info.created_at,
        )

    # -- ingest ------------------------------------------------------------------------

    @app.post(
        "/v1/ingest/predictions",
        tags=["ingest"],
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body_schema(PredictionBatch)}},
            }
        },
    )
    async def ingest_predictions(request: Request, principal: Caller) -> IngestResult:
        """Store a batch of prediction events; event ids already stored are skipped.

        The body may be gzip-compressed (``Content-Encoding: gzip``).
        """
        body = await _body(request, settings.max_request_bytes)
        return await run_in_threadpool(ingestor.predictions, body, principal)

    @app.post(
        "/v1/ingest/labels",
        tags=["ingest"],
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body_schema(LabelBatch)}},
            }
        },
    )
    async def ingest_labels(request: Request, principal: Caller) -> IngestResult:
        """Store a batch of labels; label ids already stored are skipped (gzip allowed)."""
        body = await _body(request, settings.max_request_bytes)
        return await run_in_threadpool(ingestor.labels, body, principal)

    # -- results -----------------------------------------------------------------------

    answered = check_part_names(PARTS, settings.window_parts)
    for names in settings.model_window_parts.values():
        answered |= check_part_names(PARTS, names)
    # Answered in the registry's order: every part that runs for some model.
    answer = window_model({name: part for name, part in PARTS.items() if name in answered})

    @app.get(
        "/v1/models/{name}/versions/{version}/windows",
        tags=["results"],
        response_model=list[answer],  # type: ignore[valid-type]
        responses=_ERRORS
        | {
            200: {
                "headers": {
                    "Link": {
                        "description": '<URL of the next page>; rel="next", when there '
                        "are older windows than this page's (the same query with before=)",
                        "schema": {"type": "string"},
                    }
                }
            }
        },
    )
    def windows(
        name: ModelPath,
        version: VersionPath,
        _: Admin,
        which: Windows,
        request: Request,
        response: Response,
        since: Seconds = None,
        until: Seconds = None,
        before: Annotated[
            float | None,
            Query(ge=0, le=1e11, description="only windows starting before this (next page)"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="most windows per page")] = 100,
    ) -> list[WindowPublic]:
        """The version's scored windows, newest first: by default the base time windows
        of every event; ``segment``, ``variant``, ``stage``, ``group``, ``kind`` and
        ``seconds`` choose others; ``since``
        and ``until`` bound their starts (epoch seconds, inclusive). At most ``limit``
        per page; when older ones remain, the ``Link`` header's ``rel="next"`` URL reads
        the next page (the same query with ``before`` set).

        Raises:
            InputError: ``since`` is after ``until``.
        """
        if since is not None and until is not None and since > until:
            raise InputError(
                "the time range is empty",
                [("query.since", f"expected since <= until ({until}), got {since}")],
            )
        store.get_model(name)
        found = store.window_results(
            name,
            version,
            since=since,
            until=until,
            before=before,
            limit=limit + 1,
            **asdict(which),
        )
        if len(found) > limit:
            found = found[:limit]
            url = request.url.include_query_params(before=found[-1].window_start)
            response.headers["Link"] = f'<{url}>; rel="next"'
        return [window_public(w, answer) for w in found]

    app.include_router(report_router(settings, store))
    app.include_router(results_router(store, answer))
    app.include_router(prediction_results_router(store))
    return app


async def _body(request: Request, limit: int) -> bytes:
    body = await request.body()
    return decompress(body, request.headers.get("content-encoding"), limit)


def _model_public(store: Store, model: ModelDescription) -> ModelPublic:
    versions = [v for _, v in store.list_versions(model.name)]
    return ModelPublic(**model.model_dump(), versions=versions)


__all__ = ["create_app", "validation_problems"]
