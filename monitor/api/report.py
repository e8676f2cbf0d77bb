"""The report endpoint: a model version and a window in, Evidently's HTML page out.

``GET /v1/models/{name}/versions/{version}/report`` renders the report of
:mod:`monitor.report` for one window (``?window_start=``, default the newest window
with data); ``?download=1`` makes it an attachment. Reads need the admin token, as the
other read endpoints do. Reports run one at a time: each takes a core for seconds.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import HTMLResponse

from collectors.contract import ID_PATTERN, NAME_PATTERN
from monitor.api.auth import Authorizer
from monitor.api.schemas import ErrorBody
from monitor.report import build_report
from monitor.settings import MonitorSettings
from monitor.store import Store


def _admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    authorizer: Authorizer = request.app.state.authorizer
    authorizer.principal(authorization).check_admin()


def report_router(settings: MonitorSettings, store: Store) -> APIRouter:
    """The report route, bound to the monitor's settings and store."""
    router = APIRouter(tags=["results"])
    one_at_a_time = threading.Lock()

    @router.get(
        "/v1/models/{name}/versions/{version}/report",
        response_class=HTMLResponse,
        dependencies=[Depends(_admin)],
        responses={
            200: {"content": {"text/html": {}}, "description": "The report page"},
            **{code: {"model": ErrorBody} for code in (401, 403, 404, 422, 501)},
        },
    )
    def report(
        name: Annotated[str, Path(min_length=1, max_length=128, pattern=NAME_PATTERN)],
        version: Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)],
        window_start: Annotated[
            float | None,
            Query(
                ge=0,
                le=1e11,
                description="epoch seconds inside the window; default: the newest with data",
            ),
        ] = None,
        download: Annotated[bool, Query(description="send as a file to save")] = False,
    ) -> HTMLResponse:
        """Evidently's data-drift and data-summary report on one window's predictions.

        The window's predictions and the newest reference are each sampled at random
        down to ``SIDEWATCH_REPORT_MAX_ROWS``; at most ``SIDEWATCH_REPORT_MAX_FEATURES``
        features are compared, those the monitor found drifted first. The page is
        self-contained (inline scripts), so it can be saved and opened offline; every
        value in it is escaped, and its Content-Security-Policy lets only its own
        scripts run.
        """
        with one_at_a_time:
            built = build_report(
                store,
                name,
                version,
                window_seconds=settings.window_seconds,
                window_start=window_start,
                max_rows=settings.report_max_rows,
                max_features=settings.report_max_features,
            )
        headers = {
            "Cache-Control": "no-store",
            "Content-Security-Policy": built.content_security_policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        if download:
            headers["Content-Disposition"] = f'attachment; filename="{built.filename}"'
        return HTMLResponse(built.html, headers=headers)

    return router
