"""The per-prediction results endpoints: an event id or a part's window in, what window
parts kept about single predictions (anomaly flags, explanations) out.

- ``GET /v1/models/{name}/versions/{version}/predictions/{event_id}/results``: every
  part's result about one prediction.
- ``GET /v1/models/{name}/versions/{version}/results/{part}``: one part's results about
  the predictions of ``[since, until)`` (event time; of one split value if given),
  oldest first, paged: when more remain, the ``Link`` header's ``rel="next"`` URL reads
  the next page (the same query with ``after_ts`` and ``after_event_id`` set).

The payload of a result is the part's own document, returned as the part wrote it.
Reads need the admin token, as the other read endpoints do.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import BaseModel, Field

from collectors.contract import ID_PATTERN, NAME_PATTERN
from monitor.api.auth import Authorizer
from monitor.api.schemas import ErrorBody
from monitor.core.prediction_results import PredictionResultRecord
from monitor.core.windows import Window, parse_split
from monitor.errors import InputError, NotFoundError
from monitor.store import Store

ModelPath = Annotated[str, Path(min_length=1, max_length=128, pattern=NAME_PATTERN)]
VersionPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
EventPath = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]
PartPath = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)]
Seconds = Annotated[float | None, Query(ge=0, le=1e11, description="epoch seconds")]

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 422)
}
_FOREVER = 1e11 + 1
"""Past every accepted ``until``: an open range's end."""


class PredictionResultPublic(BaseModel):
    """What one window part kept about one prediction."""

    event_id: str
    model_version: str
    part: str = Field(description="the window part that kept it")
    ts: float = Field(description="the prediction's event time, epoch seconds")
    payload: dict[str, Any] = Field(description="the part's document, as the part wrote it")
    created_at: float | None = Field(description="when it was stored, epoch seconds")


def _public(record: PredictionResultRecord) -> PredictionResultPublic:
    return PredictionResultPublic(
        event_id=record.event_id,
        model_version=record.model_version,
        part=record.part,
        ts=record.ts,
        payload=dict(record.payload),
        created_at=record.created_at,
    )


def _admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    authorizer: Authorizer = request.app.state.authorizer
    authorizer.principal(authorization).check_admin()


def prediction_results_router(store: Store) -> APIRouter:
    """The per-prediction results routes, bound to the monitor's store."""
    router = APIRouter(tags=["results"], dependencies=[Depends(_admin)], responses=_ERRORS)

    @router.get("/v1/models/{name}/versions/{version}/predictions/{event_id}/results")
    def prediction_results(
        name: ModelPath, version: VersionPath, event_id: EventPath
    ) -> list[PredictionResultPublic]:
        """Every part's result about one prediction, by part name.

        Raises:
            NotFoundError: The model is not registered, or no part kept a result about
                that prediction of that version.
        """
        store.get_model(name)
        found = store.prediction_results(name, event_id, version)
        if not found:
            raise NotFoundError(
                f"no part kept a result about prediction {event_id!r} of {name!r} version "
                f"{version!r}; only parts that keep per-prediction results (anomalies, "
                "explanations) write them, and retention deletes old ones"
            )
        return [_public(r) for r in found]

    @router.get("/v1/models/{name}/versions/{version}/results/{part}")
    def part_results(
        name: ModelPath,
        version: VersionPath,
        part: PartPath,
        request: Request,
        response: Response,
        since: Seconds = None,
        until: Seconds = None,
        segment: Annotated[
            str,
            Query(
                max_length=300,
                description="a split's label: key=value of a segment, @variant=v, "
                "@stage=s or @group:attribute=value; empty: all events",
            ),
        ] = "",
        after_ts: Seconds = None,
        after_event_id: Annotated[
            str | None, Query(max_length=128, pattern=ID_PATTERN, description="next page")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=10_000, description="most results per page")] = 1000,
    ) -> list[PredictionResultPublic]:
        """One part's results about the predictions of event time ``[since, until)``
        (open where not given), oldest first; ``segment`` keeps one split value's (a
        segment's ``key=value``, or another split's label).
        At most ``limit`` per page; when more remain, the ``Link`` header's
        ``rel="next"`` URL reads the next page.

        Raises:
            InputError: ``since`` is after ``until``, ``segment`` is no split's label,
                or only one of ``after_ts`` and ``after_event_id`` is given.
            NotFoundError: The model is not registered.
        """
        start = 0.0 if since is None else since
        end = _FOREVER if until is None else until
        if start > end:
            raise InputError(
                "the time range is empty",
                [("query.since", f"expected since <= until ({until}), got {since}")],
            )
        if (after_ts is None) != (after_event_id is None):
            raise InputError(
                "a page cursor is after_ts and after_event_id together",
                [("query.after_event_id", "give both (from the Link header) or neither")],
            )
        try:
            which = parse_split(segment)
        except ValueError as exc:
            raise InputError("invalid split", [("query.segment", str(exc))]) from exc
        store.get_model(name)
        window = Window(name, version, start, end, "time", which)
        after = None if after_ts is None or after_event_id is None else (after_ts, after_event_id)
        found = store.prediction_results_in_window(window, part, limit=limit + 1, after=after)
        if len(found) > limit:
            found = found[:limit]
            url = request.url.include_query_params(
                after_ts=found[-1].ts, after_event_id=found[-1].event_id
            )
            response.headers["Link"] = f'<{url}>; rel="next"'
        return [_public(r) for r in found]

    return router
