"""The results endpoints: a model version (and a window or a feature) in, stored scores out.

- ``GET /v1/models/{name}/versions/{version}/windows/{window_start}``: one scored window.
- ``GET /v1/models/{name}/versions/{version}/drift``: per feature and window, the drift
  test, its value, threshold, verdict and error bound, newest window first; filtered by
  ``feature`` and a ``since`` / ``until`` range of window starts.

Reads need the admin token, as the other read endpoints do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request

from collectors.contract import ID_PATTERN, NAME_PATTERN
from monitor.api.auth import Authorizer
from monitor.api.schemas import (
    ErrorBody,
    FeatureDriftPublic,
    FeatureDriftWindowPublic,
    WindowPublic,
)
from monitor.errors import NotFoundError
from monitor.score.results import WindowResult
from monitor.store import Store

ModelPath = Annotated[str, Path(min_length=1, max_length=128, pattern=NAME_PATTERN)]
VersionPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
Seconds = Annotated[float | None, Query(ge=0, le=1e11, description="epoch seconds")]

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 422)
}


def _admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    authorizer: Authorizer = request.app.state.authorizer
    authorizer.principal(authorization).check_admin()


def results_router(store: Store) -> APIRouter:
    """The results routes, bound to the monitor's store."""
    router = APIRouter(tags=["results"], dependencies=[Depends(_admin)], responses=_ERRORS)

    @router.get("/v1/models/{name}/versions/{version}/windows/{window_start}")
    def window(name: ModelPath, version: VersionPath, window_start: float) -> WindowPublic:
        """One scored window, by its start (epoch seconds).

        Raises:
            NotFoundError: The model is not registered or the window was not scored.
        """
        store.get_model(name)
        found = store.window_results(name, version, since=window_start, until=window_start, limit=1)
        if not found:
            raise NotFoundError(
                f"no scored window of {name!r} version {version!r} starts at {window_start}; "
                f"GET /v1/models/{name}/versions/{version}/windows lists the scored ones"
            )
        return window_public(found[0])

    @router.get("/v1/models/{name}/versions/{version}/drift")
    def drift(
        name: ModelPath,
        version: VersionPath,
        feature: Annotated[str | None, Query(max_length=128)] = None,
        since: Seconds = None,
        until: Seconds = None,
        limit: Annotated[int, Query(ge=1, le=10_000, description="most windows")] = 100,
    ) -> list[FeatureDriftWindowPublic]:
        """Per-feature drift results, newest window first.

        Raises:
            NotFoundError: The model is not registered.
        """
        store.get_model(name)
        rows = []
        for w in store.window_results(name, version, since=since, until=until, limit=limit):
            for d in w.drift:
                if feature is None or d.feature == feature:
                    rows.append(
                        FeatureDriftWindowPublic(
                            window_start=w.window_start,
                            window_end=w.window_end,
                            definition=w.definition,
                            reference_revision=w.reference_revision,
                            feature=d.feature,
                            **d.as_json(),
                        )
                    )
        return rows

    return router


def window_public(w: WindowResult) -> WindowPublic:
    """The API's form of a window result."""
    return WindowPublic(
        model=w.model,
        model_version=w.model_version,
        window_start=w.window_start,
        window_end=w.window_end,
        definition=w.definition,
        predictions=w.predictions,
        labelled=w.labelled,
        label_coverage=w.label_coverage,
        accuracy=w.accuracy,
        latency_p50_seconds=w.latency_p50_seconds,
        latency_p95_seconds=w.latency_p95_seconds,
        latency_p99_seconds=w.latency_p99_seconds,
        reference_revision=w.reference_revision,
        drift=[FeatureDriftPublic(feature=d.feature, **d.as_json()) for d in w.drift],
        scored_at=w.scored_at,
        drift_share=w.drift_share,
        dataset_drifted=w.dataset_drifted,
    )
