"""The results endpoints: a model version (and a window or a feature) in, stored scores out.

- ``GET /v1/models/{name}/versions/{version}/windows/{window_start}``: one scored window.
- ``GET /v1/models/{name}/versions/{version}/drift``: per feature and window, the drift
  test, its value, threshold, verdict and error bound, newest window first; filtered by
  ``feature`` and a ``since`` / ``until`` range of window starts.

- ``GET /v1/models/{name}/groups``: the numbers of the model's sensitive groups, as
  ``/metrics`` labels them (``group="g3"``) where the model does not allow the values.

Every route that reads windows takes which ones (:func:`window_query`): at most one
split, ``segment`` (``key=value``), ``variant``, ``stage`` or ``attribute`` with
``group`` (a sensitive attribute's value; none of them, the default: every event),
``kind`` (``time``, the default, or ``count``) and, for time windows, ``seconds`` (the
base window length, the default, or a rollup length).

Reads need the admin token, as the other read endpoints do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, create_model

from collectors.contract import ID_PATTERN, NAME_PATTERN
from monitor.api.auth import Authorizer
from monitor.api.schemas import (
    ErrorBody,
    FeatureDriftPublic,
    FeatureDriftWindowPublic,
    GroupPublic,
    NotScoredPublic,
    OutputDriftPublic,
    WindowPublic,
)
from monitor.core.records import WindowRecord
from monitor.core.windows import Split, WindowKind, parse_split
from monitor.errors import ConfigError, InputError, NotFoundError
from monitor.score.part import AnyPart
from monitor.score.parts import PARTS
from monitor.score.results import WindowResult
from monitor.settings import MonitorSettings
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


@dataclass(frozen=True, slots=True)
class WindowQuery:
    """Which stored windows a read is about (the filters of :meth:`Store.window_results`)."""

    segment: str = ""
    """The split's label (:attr:`~monitor.core.windows.Split.label`); empty: every event."""
    window_kind: WindowKind = "time"
    window_seconds: float | None = None
    block_size: int | None = None


def window_query(
    request: Request,
    segment: Annotated[
        str,
        Query(
            max_length=300,
            description="key=value of a scored segment (e.g. region=eu); empty: all events",
        ),
    ] = "",
    variant: Annotated[
        str | None,
        Query(max_length=64, pattern=ID_PATTERN, description="a scored variant (e.g. shadow)"),
    ] = None,
    stage: Annotated[
        str | None,
        Query(max_length=64, pattern=ID_PATTERN, description="a scored pipeline stage"),
    ] = None,
    attribute: Annotated[
        str | None,
        Query(max_length=128, pattern=NAME_PATTERN, description="a sensitive attribute"),
    ] = None,
    group: Annotated[
        str | None,
        Query(max_length=1024, description="with attribute: one of its values"),
    ] = None,
    kind: Annotated[
        WindowKind, Query(description="time windows, or count windows (N predictions)")
    ] = "time",
    seconds: Annotated[
        int | None,
        Query(ge=1, description="time windows of this length (default: the base window)"),
    ] = None,
) -> WindowQuery:
    """The query parameters that choose windows, checked against what is scored.

    Raises:
        InputError: A segment key or split kind that is not scored, more than one
            split, a group without its attribute (or the reverse), a length that is
            neither the base window's nor a rollup's, or a length or split asked of
            count windows.
    """
    settings: MonitorSettings = request.app.state.settings
    lengths = [settings.window_seconds, *settings.rollups]
    keys = list(settings.segment_keys)
    problems = []
    split: Split | None = None
    try:
        split = parse_split(segment)
    except ValueError as exc:
        problems.append(("query.segment", str(exc)))
    if split is not None and split.kind != "segment":
        problems.append(("query.segment", "a segment is key=value; use variant, stage or group"))
    elif split is not None and split.key not in keys:
        scored = ", ".join(keys) if keys else "none (SIDEWATCH_SEGMENT_KEYS is empty)"
        problems.append(
            ("query.segment", f"segment key {split.key!r} is not scored; scored keys: {scored}")
        )
    if (attribute is None) != (group is None):
        problems.append(("query.group", "give a group with its attribute (attribute=sex&group=f)"))
    asked: list[tuple[str, bool, Split]] = []
    if variant is not None:
        asked.append(("variant", settings.split_variants, Split("variant", "", variant)))
    if stage is not None:
        asked.append(("stage", settings.split_stages, Split("stage", "", stage)))
    if attribute is not None and group is not None:
        asked.append(("group", settings.split_sensitive_groups, Split("group", attribute, group)))
    for name, on, _ in asked:
        if not on:
            setting = "SENSITIVE_GROUPS" if name == "group" else f"{name.upper()}S"
            problems.append(
                (f"query.{name}", f"{name} windows are not scored (SIDEWATCH_SPLIT_{setting})")
            )
    if len(asked) + bool(segment) > 1:
        problems.append(("query", "ask for one split at a time: segment, variant, stage or group"))
    label = asked[0][2].label if asked else segment
    if kind == "count":
        if seconds is not None:
            problems.append(("query.seconds", "count windows have no length in seconds"))
        if label:
            problems.append(("query.segment", "count windows cover every event, no split"))
    elif seconds is not None and seconds not in lengths:
        valid = ", ".join(str(n) for n in lengths)
        problems.append(
            (
                "query.seconds",
                f"no {seconds} s windows are scored; scored lengths: {valid} "
                "(SIDEWATCH_WINDOW_SECONDS and SIDEWATCH_ROLLUP_SECONDS)",
            )
        )
    if problems:
        raise InputError("the window parameters ask for windows that are not scored", problems)
    if kind == "count":
        return WindowQuery("", "count", None, settings.count_window or None)
    return WindowQuery(label, "time", seconds or settings.window_seconds)


Windows = Annotated[WindowQuery, Depends(window_query)]
"""A route parameter: the windows a read is about."""


def window_model(parts: Mapping[str, AnyPart] | None = None) -> type[WindowPublic]:
    """The window API's answer: :class:`WindowPublic` and one field per registered window
    part (default: the registry's, read now), named by its ``public_name`` and typed by
    its result model (None when the part was not scored), so that the OpenAPI schema
    comes from the result models themselves.

    Raises:
        ConfigError: Two parts answer under one name, or a part under a field of
            :class:`WindowPublic`.
    """
    chosen = PARTS if parts is None else parts
    fields: dict[str, Any] = {}
    for part in chosen.values():
        key = part.public_name
        if key in fields or key in WindowPublic.model_fields:
            raise ConfigError(f"window part {part.name!r} answers as {key!r}, a name taken")
        fields[key] = (part.result_model | None, None)
    return create_model("WindowPublic", __base__=WindowPublic, **fields)


def results_router(store: Store, model: type[WindowPublic] | None = None) -> APIRouter:
    """The results routes, bound to the monitor's store.

    Args:
        store: The store.
        model: The window answer's model (default: :func:`window_model` of the
            registry).
    """
    router = APIRouter(tags=["results"], dependencies=[Depends(_admin)], responses=_ERRORS)
    answer = model or window_model()

    @router.get(
        "/v1/models/{name}/versions/{version}/windows/{window_start}", response_model=answer
    )
    def window(
        name: ModelPath, version: VersionPath, window_start: float, which: Windows
    ) -> WindowPublic:
        """One scored window, by its start (epoch seconds).

        Raises:
            NotFoundError: The model is not registered or the window was not scored.
        """
        store.get_model(name)
        found = store.window_results(
            name, version, since=window_start, until=window_start, limit=1, **asdict(which)
        )
        if not found:
            raise NotFoundError(
                f"no scored window of {name!r} version {version!r} starts at {window_start}; "
                f"GET /v1/models/{name}/versions/{version}/windows lists the scored ones"
            )
        return window_public(found[0], answer)

    @router.get("/v1/models/{name}/versions/{version}/drift")
    def drift(
        name: ModelPath,
        version: VersionPath,
        which: Windows,
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
        found = store.window_results(
            name, version, since=since, until=until, limit=limit, **asdict(which)
        )
        for w in map(WindowResult.from_record, found):
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

    @router.get("/v1/models/{name}/groups")
    def groups(name: ModelPath) -> list[GroupPublic]:
        """The model's numbered sensitive groups: each value of a sensitive attribute
        scored so far and its number, as ``/metrics`` labels it (``group="g3"``) where
        the model's description does not allow the values as labels.

        Raises:
            NotFoundError: The model is not registered.
        """
        store.get_model(name)
        return [
            GroupPublic(attribute=a, value=v, number=n, label=f"g{n}")
            for a, v, n in store.split_groups(name)
        ]

    return router


_P = TypeVar("_P", bound=BaseModel)


def _public(model: type[_P], record: object | None) -> _P | None:
    """The public model of a frozen result record (read by its attributes), or None."""
    return None if record is None else model.model_validate(record, from_attributes=True)


def window_public(record: WindowRecord, model: type[WindowPublic] | None = None) -> WindowPublic:
    """The API's form of a stored window result (the one conversion every route uses).

    Args:
        record: The stored result.
        model: The answer's model, from :func:`window_model` (default: the registry's).
    """
    answer = model or window_model()
    w = WindowResult.from_record(record)
    s = w.scores
    outputs = s.prediction_drift
    parts = {
        part.public_name: s.parts.get(name)
        for name, part in PARTS.items()
        if part.public_name in answer.model_fields
    }
    return answer(
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
        segment=w.segment,
        window_kind=w.window_kind,
        block=w.block,
        prediction_drift=None
        if outputs is None
        else [OutputDriftPublic.model_validate(d, from_attributes=True) for d in outputs],
        label_drift=_public(OutputDriftPublic, s.label_drift),
        not_scored=[NotScoredPublic(part=n.part, reason=n.reason) for n in s.not_scored],
        **parts,
    )
