"""Validation and storage of ingest batches: JSON bytes in, stored rows and outcomes out.

Each event of a batch has its own outcome: stored, a duplicate (its id is already
stored for its model), or rejected with its index and reason (invalid, unknown model,
forbidden to this token), so that one bad event costs itself alone. Only a body that is
not a batch at all (not JSON, no event list, too many events) is refused whole.
Problems are named by location, without echoing values.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from collectors.contract import (
    ID_PATTERN,
    MAX_BATCH_EVENTS,
    LabelBatch,
    LabelEvent,
    ModelDescription,
    PredictionBatch,
    PredictionEvent,
)
from monitor.api.auth import Principal
from monitor.api.schemas import IngestResult, ProblemPublic, RejectedEvent, RejectReason
from monitor.core.profile import (
    FeatureBins,
    FeatureProfile,
    Kind,
    ProfileKey,
    ReferenceProfile,
    profile_rows,
)
from monitor.core.windows import Marker, window_start
from monitor.errors import ForbiddenError, InputError, NotFoundError
from monitor.export.prometheus import IngestMetrics
from monitor.store import Store

MAX_PROBLEMS = 20
"""Most problems listed in one error answer."""

_EXPECTED = {
    "numeric": "expected a number or null (a numeric feature)",
    "categorical": "expected a string, an integer or null (a categorical feature)",
    "boolean": "expected true, false or null (a boolean feature)",
}


_ALLOWED: dict[str, frozenset[type]] = {
    "numeric": frozenset({float, int, type(None)}),
    "categorical": frozenset({str, int, type(None)}),
    "boolean": frozenset({bool, type(None)}),
}
"""The JSON types each feature type accepts (``bool`` is not a number here)."""


_ID = re.compile(ID_PATTERN)
_B = TypeVar("_B", PredictionBatch, LabelBatch)
_E = TypeVar("_E", PredictionEvent, LabelEvent)

REVISION_RECHECK_SECONDS = 1.0
"""How long ingest trusts the newest reference revision it read for a version."""


@dataclass(frozen=True, slots=True)
class _Schema:
    """A model's features, arranged for the per-event check."""

    model: ModelDescription
    names: frozenset[str]
    by_type: tuple[tuple[frozenset[type], tuple[str, ...]], ...]
    kinds: dict[str, Kind]

    @classmethod
    def of(cls, model: ModelDescription) -> _Schema:
        groups: dict[str, list[str]] = {}
        for spec in model.features:
            groups.setdefault(spec.type, []).append(spec.name)
        by_type = tuple((_ALLOWED[kind], tuple(names)) for kind, names in groups.items())
        kinds: dict[str, Kind] = {spec.name: spec.type for spec in model.features}
        return cls(model, frozenset(spec.name for spec in model.features), by_type, kinds)

    def fits(self, features: dict[str, Any]) -> bool:
        """The fast check: exactly the declared features, each of an allowed type."""
        if features.keys() != self.names:
            return False
        for allowed, names in self.by_type:
            if not set(map(type, map(features.__getitem__, names))) <= allowed:
                return False
        return True


class Ingestor:
    """Validates and stores batches of predictions and labels.

    Args:
        store: Where rows go.
        metrics: Counters to update.
        on_stored: Called with (model, version, event times) for what was stored, so
            that the windows holding them get scored; for labels, also with the
            labelled predictions' places in ingest order (their count windows).
        window_seconds: Length of the windows whose feature profiles are kept up to
            date with each batch (None: no profiles).
    """

    def __init__(
        self,
        store: Store,
        metrics: IngestMetrics,
        on_stored: Marker,
        window_seconds: int | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._on_stored = on_stored
        self._window = window_seconds
        self._models: dict[str, _Schema] = {}
        self._versions: set[tuple[str, str]] = set()
        self._bins: dict[tuple[str, str], tuple[int, dict[str, FeatureBins]]] = {}
        self._bins_checked: dict[tuple[str, str], float] = {}
        """When each version's newest reference revision was last read from the store."""
        self._lock = threading.Lock()

    def forget_model(self, name: str) -> None:
        """Drop a cached model description (after it was registered)."""
        with self._lock:
            self._models.pop(name, None)

    def forget_reference(self, model: str, version: str) -> None:
        """Look the version's reference up again on its next batch (after an upload)."""
        with self._lock:
            self._bins_checked.pop((model, version), None)

    def predictions(self, body: bytes, principal: Principal) -> IngestResult:
        """Validate a :class:`PredictionBatch` and store its valid events.

        Raises:
            InputError: The body is not a batch (not JSON, no event list, too many).
            ForbiddenError: The caller's token may not ingest at all.
        """
        principal.check_ingests()
        received, events, rejected = _parse(PredictionBatch, PredictionEvent, "events", body)
        rows: list[dict[str, Any]] = []
        now = time.time()
        for i, event in events:
            problem = self._writable(principal, event.model)
            if problem is not None:
                rejected.append(_rejected(i, event.event_id, *problem))
                continue
            schema = self._models[event.model]
            problems = _feature_problems(i, event, schema)
            if problems:
                rejected.append(_rejected(i, event.event_id, "invalid", problems))
                continue
            rows.append(_prediction_row(event, now))
        new_versions = {(r["model"], r["model_version"]) for r in rows} - self._versions
        if new_versions:
            self._store.ensure_versions(new_versions)
            self._versions |= new_versions
        unique = _first_of_each(rows)
        profiles = self._profiles(unique) if self._window is not None and unique else None
        stored_ids = self._store.insert_predictions(unique, profiles)
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in unique:
            if (row["model"], row["event_id"]) in stored_ids:
                groups.setdefault((row["model"], row["model_version"]), []).append(row)
        for (model_name, version), stored in groups.items():
            latency = self._metrics.latency.labels(model_name, version)
            for row in stored:
                if row["latency_seconds"] is not None:
                    latency.observe(row["latency_seconds"])
            self._metrics.events.labels(model_name, "predictions", "stored").inc(len(stored))
            self._on_stored(model_name, version, [r["ts"] for r in stored])
        self._count_duplicates("predictions", rows, unique, stored_ids)
        self._count_rejected("predictions", rejected)
        return IngestResult(
            received=received,
            stored=len(stored_ids),
            duplicates=len(rows) - len(stored_ids),
            rejected=sorted(rejected, key=lambda r: r.index),
        )

    def labels(self, body: bytes, principal: Principal) -> IngestResult:
        """Validate a :class:`LabelBatch` and store its valid labels.

        A label whose prediction is not stored (yet) is stored, joins the prediction
        when it arrives, and is counted in the answer's ``unmatched``.

        Raises:
            InputError: The body is not a batch (not JSON, no label list, too many).
            ForbiddenError: The caller's token may not ingest at all.
        """
        principal.check_ingests()
        received, labels, rejected = _parse(LabelBatch, LabelEvent, "labels", body)
        now = time.time()
        rows = []
        for i, label in labels:
            problem = self._writable(principal, label.model)
            if problem is not None:
                rejected.append(_rejected(i, label.event_id, *problem))
                continue
            rows.append(
                {
                    "event_id": label.event_id,
                    "model": label.model,
                    "prediction_id": label.prediction_id,
                    "correlation_key": label.correlation_key,
                    "value": label.value,
                    "ts": label.timestamp.timestamp(),
                    "received_at": now,
                }
            )
        unique = _first_of_each(rows)
        stored = self._store.insert_labels(unique)
        per_model = Counter(r["model"] for r in unique if (r["model"], r["event_id"]) in stored)
        for model_name, count in per_model.items():
            self._metrics.events.labels(model_name, "labels", "stored").inc(count)
        for found in self._store.predictions_labelled_by(stored):
            places = [] if found.position is None else [found.position]
            self._on_stored(found.model, found.model_version, [found.ts], places)
        unmatched = Counter(r.model for r in self._store.labels_without_prediction(stored))
        for model_name, count in unmatched.items():
            self._metrics.events.labels(model_name, "labels", "unmatched").inc(count)
        self._count_duplicates("labels", rows, unique, stored)
        self._count_rejected("labels", rejected)
        return IngestResult(
            received=received,
            stored=len(stored),
            duplicates=len(rows) - len(stored),
            rejected=sorted(rejected, key=lambda r: r.index),
            unmatched=sum(unmatched.values()),
        )

    def _writable(
        self, principal: Principal, model: str
    ) -> tuple[RejectReason, list[Problem]] | None:
        """Why the caller may not write an event of ``model`` here, or None if it may."""
        try:
            principal.check_writes(model)
        except ForbiddenError as exc:
            return "forbidden", [("model", str(exc))]
        if self._model(model) is None:
            return "unknown_model", [
                ("model", f"model {model!r} is not registered: PUT /v1/models/{model} first")
            ]
        return None

    def _count_rejected(self, kind: str, rejected: list[RejectedEvent]) -> None:
        for reason, count in Counter(r.reason for r in rejected).items():
            self._metrics.rejected_events.labels(kind, reason).inc(count)

    def _count_duplicates(
        self,
        kind: str,
        rows: list[dict[str, Any]],
        unique: list[dict[str, Any]],
        stored: set[tuple[str, str]],
    ) -> None:
        # Duplicates: rows repeated within the batch, and rows already stored before.
        per_model = Counter(r["model"] for r in rows)
        per_model.subtract(r["model"] for r in unique if (r["model"], r["event_id"]) in stored)
        for model_name, count in per_model.items():
            if count:
                self._metrics.events.labels(model_name, kind, "duplicate").inc(count)

    def _profiles(
        self, rows: list[dict[str, Any]]
    ) -> Callable[[list[dict[str, Any]]], dict[ProfileKey, tuple[int, FeatureProfile]]]:
        """The profile builder for this batch: bins are looked up before the write."""
        assert self._window is not None
        seconds = self._window
        bins = {
            pair: self._reference_bins(*pair)
            for pair in {(r["model"], r["model_version"]) for r in rows}
        }

        def build(new: list[dict[str, Any]]) -> dict[ProfileKey, tuple[int, FeatureProfile]]:
            groups: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
            for row in new:
                key = (row["model"], row["model_version"], window_start(row["ts"], seconds))
                groups.setdefault(key, []).append(row["features"])
            deltas: dict[ProfileKey, tuple[int, FeatureProfile]] = {}
            for (model, version, start), features in groups.items():
                schema = self._models[model]
                revision, fitted = bins[(model, version)]
                for name, profile in profile_rows(features, schema.kinds, fitted).items():
                    deltas[ProfileKey(model, version, seconds, start, "", name)] = (
                        revision,
                        profile,
                    )
            return deltas

        return build

    def _reference_bins(self, model: str, version: str) -> tuple[int, dict[str, FeatureBins]]:
        """The newest reference's bins of a version (revision 0 and none without one).

        The revision is read from the store at most every :data:`REVISION_RECHECK_SECONDS`
        (a query per batch cost about 1 us per event): an upload here forgets it at
        once, one through another replica is seen within that time, and profiles built
        on the older bins meanwhile are rebuilt when their window is scored.
        """
        cached = self._bins.get((model, version))
        checked = self._bins_checked.get((model, version))
        now = time.monotonic()
        if cached is not None and checked is not None and now - checked < REVISION_RECHECK_SECONDS:
            return cached
        revision = self._store.latest_reference_revision(model, version) or 0
        with self._lock:
            self._bins_checked[(model, version)] = now
        if cached is not None and cached[0] == revision:
            return cached
        fitted: dict[str, FeatureBins] = {}
        if revision:
            reference = self._store.latest_reference(model, version)
            if reference is not None and reference.revision == revision:
                try:
                    profile = ReferenceProfile.from_json(reference.profile)
                    fitted = {name: f.bins for name, f in profile.features.items()}
                except ValueError:  # an older profile format: no histograms until re-upload
                    fitted = {}
        with self._lock:
            self._bins[(model, version)] = (revision, fitted)
        return revision, fitted

    def _model(self, name: str) -> _Schema | None:
        schema = self._models.get(name)
        if schema is None:
            try:
                schema = _Schema.of(self._store.get_model(name))
            except NotFoundError:
                return None
            with self._lock:
                self._models[name] = schema
        return schema


def _first_of_each(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with the first occurrence of each model's event id (a batch may repeat
    one; ids are unique within a model only)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        seen.setdefault((row["model"], row["event_id"]), row)
    return list(seen.values())


Problem = tuple[str, str]
"""Where something is wrong, and what."""


def _rejected(
    index: int, event_id: str | None, reason: RejectReason, problems: list[Problem]
) -> RejectedEvent:
    return RejectedEvent(
        index=index,
        event_id=event_id,
        reason=reason,
        problems=[ProblemPublic(loc=loc, msg=msg) for loc, msg in problems[:MAX_PROBLEMS]],
    )


def _parse(
    batch: type[_B], item: type[_E], key: str, body: bytes
) -> tuple[int, list[tuple[int, _E]], list[RejectedEvent]]:
    """The batch's valid items by index, and the invalid ones rejected one by one.

    The whole batch is validated at once (fast); only when that fails is each item
    validated on its own, so that the valid ones are still stored.

    Raises:
        InputError: The body is not a batch at all.
    """
    try:
        items: list[_E] = getattr(batch.model_validate_json(body), key)
        return len(items), list(enumerate(items)), []
    except ValidationError as exc:
        whole = exc
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    raw = document.get(key) if isinstance(document, dict) else None
    if not isinstance(document, dict) or not isinstance(raw, list):
        raise InputError("the batch is not valid", validation_problems(whole)) from whole
    try:  # the batch's own fields, with an empty list: what is wrong beyond the items?
        batch.model_validate({**{k: v for k, v in document.items() if k != key}, key: []})
    except ValidationError as exc:
        raise InputError("the batch is not valid", validation_problems(exc)) from whole
    if len(raw) > MAX_BATCH_EVENTS:
        raise InputError(
            "the batch is not valid", [(key, f"at most {MAX_BATCH_EVENTS} per batch; split it")]
        )
    valid: list[tuple[int, _E]] = []
    rejected: list[RejectedEvent] = []
    for i, value in enumerate(raw):
        try:
            valid.append((i, item.model_validate_json(orjson.dumps(value))))
        except (ValidationError, orjson.JSONEncodeError) as exc:
            found = value.get("event_id") if isinstance(value, dict) else None
            event_id = found if isinstance(found, str) and _ID.match(found) else None
            problems = (
                validation_problems(exc, (key, i))
                if isinstance(exc, ValidationError)
                else [(f"{key}[{i}]", "not encodable")]
            )
            rejected.append(_rejected(i, event_id, "invalid", problems))
    return len(raw), valid, rejected


def validation_problems(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[Problem]:
    """Pydantic errors as ``(location, message)`` pairs, without the input values.

    A value that matches no member of a union (a feature value, a label value) is
    reported once, at the value's location. ``prefix`` goes before every location (an
    item validated on its own: ``("events", 3)``).
    """
    problems: dict[str, str] = {}
    for error in exc.errors(include_input=False, include_url=False):
        loc = [*prefix, *error["loc"]]
        if len(loc) >= 4 and loc[0] == "events" and loc[2] == "features":
            loc = loc[:4]
            message = (
                "expected a finite number, a boolean, a string (≤1024 chars, no U+0000) or null"
            )
        elif len(loc) >= 3 and loc[0] == "labels" and loc[2] == "value":
            loc = loc[:3]
            message = "expected a finite number, a boolean or a string (≤256 chars, no U+0000)"
        else:
            message = error["msg"]
        where = _location(loc) or "body"
        if where in problems and problems[where] != message and not where.startswith("events"):
            problems[where] = f"{problems[where]}; {message}"
        else:
            problems.setdefault(where, message)
        if len(problems) >= MAX_PROBLEMS:
            break
    return list(problems.items())


def _location(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _feature_problems(i: int, event: PredictionEvent, schema: _Schema) -> list[Problem]:
    features = event.features
    if schema.fits(features):
        return []
    model = schema.model
    problems = []
    for spec in model.features:
        if spec.name not in features:
            problems.append((f"events[{i}].features.{spec.name}", "missing: the model declares it"))
            continue
        value = features[spec.name]
        if type(value) not in _ALLOWED[spec.type]:
            problems.append((f"events[{i}].features.{spec.name}", _EXPECTED[spec.type]))
    if len(features) > len(model.features) - len(problems):
        declared = {spec.name for spec in model.features}
        for name in features:
            if name not in declared:
                problems.append(
                    (f"events[{i}].features.{name}", "unknown: the model does not declare it")
                )
    return problems


def _prediction_row(event: PredictionEvent, received_at: float) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "model": event.model,
        "model_version": event.model_version,
        "ts": event.timestamp.timestamp(),
        "received_at": received_at,
        "features": event.features,
        "outputs": event.outputs.model_dump(exclude_none=True),
        "latency_seconds": event.latency_seconds,
        "trace_id": event.trace_id,
        "parent_span_id": event.parent_span_id,
        "variant": event.variant,
        "stage": event.stage,
        "segment": event.segment,
        "correlation_key": event.correlation_key,
    }
