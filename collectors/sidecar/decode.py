"""Decode: a captured request and response in, one row (features, outputs) per prediction out.

One :class:`Decoder` per payload format (CONVENTIONS.md, "Inference payloads"), chosen
by the request's path; the first that claims a path decodes it:

- Open Inference Protocol v2 (``/v2/models/{m}[/versions/{v}]/infer``): named tensors,
  multi-row batches split into one row each;
- KServe v1 and TF Serving (``/v1/models/{m}[/versions/{v}]:predict``): ``instances``
  or ``inputs``, answered by ``predictions`` or ``outputs``;
- MLflow (``/invocations``): ``dataframe_split``, ``dataframe_records``, ``instances``,
  ``inputs``, or CSV;
- any other JSON through a configured :class:`FieldMapping`.

Decoders raise :class:`DecodeError` with a bounded reason; the reason is counted and
the message never holds a value from the payload.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

Task = Literal["auto", "classification", "regression"]
Doc = Any
"""A parsed JSON document."""


class DecodeError(Exception):
    """A payload could not be decoded; ``reason`` is a metric label value."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Row:
    """One prediction: the model's named inputs and what it returned."""

    features: dict[str, Any]
    outputs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one request and response held."""

    rows: list[Row]
    model: str | None = None
    """Model named by the path, if any."""
    version: str | None = None
    """Version named by the path or the response, if any."""
    request_id: str | None = None
    """The request's own id (Open Inference Protocol ``id``), if any."""


@dataclass(frozen=True, slots=True)
class Message:
    """One side of a captured exchange: its body and content type."""

    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class OutputRules:
    """How model outputs map to the event's outputs.

    Args:
        task: ``classification`` maps a single float output to ``score``;
            ``regression`` and ``auto`` map it to ``value``. Integers, strings and
            booleans are always a ``predicted_class``; a row of floats is
            ``probabilities``.
        class_names: Names of the probability columns, in order (default "0", "1"...).
        feature_names: Names of the columns of an unnamed input matrix, in order.
    """

    task: Task = "auto"
    class_names: tuple[str, ...] = ()
    feature_names: tuple[str, ...] = ()


class Decoder(Protocol):
    """Decodes one payload format."""

    name: str

    def claims(self, path: str) -> re.Match[str] | None:
        """A match if this decoder handles requests to ``path`` (group 1: the model)."""
        ...

    def decode(self, path: str, request: Message, response: Message | None) -> Decoded:
        """Rows of the exchange (``response`` is None when only inputs are captured)."""
        ...


def load_json(body: bytes) -> Doc:
    """Parse JSON, telling non-UTF-8 and NaN/Infinity apart from other malformed bodies."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("not_utf8") from None
        if re.search(rb"\b(NaN|-?Infinity)\b", body):
            raise DecodeError("non_finite") from None
        raise DecodeError("malformed_json") from None


# -- shared helpers -------------------------------------------------------------------


def _columns_to_rows(columns: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise DecodeError("malformed_payload", "columns differ in length")
    n = lengths.pop()
    names = list(columns)
    return [{name: columns[name][i] for name in names} for i in range(n)]


def _record_features(item: Any, rules: OutputRules) -> dict[str, Any]:
    """Features of one instance: a mapping by name, or a list named by position."""
    if isinstance(item, dict):
        return item
    if isinstance(item, list):
        names = rules.feature_names
        if names and len(names) == len(item):
            return dict(zip(names, item, strict=True))
        return {f"f{j}": v for j, v in enumerate(item)}
    return {"input": item}


def _output_of(item: Any, rules: OutputRules) -> dict[str, Any]:
    """Event outputs of one prediction (scalar, row of probabilities, or mapping)."""
    if isinstance(item, dict):
        out: dict[str, Any] = {}
        for key, value in item.items():
            out.update(_output_of(value, rules) if key != "value" else {"value": value})
        return out
    if isinstance(item, list):
        if len(item) == 1:
            return _output_of(item[0], rules)
        if item and all(isinstance(p, float | int) and not isinstance(p, bool) for p in item):
            return _probabilities(item, rules)
        raise DecodeError("unsupported_output")
    if isinstance(item, bool | int | str):
        return {"predicted_class": int(item) if isinstance(item, bool) else item}
    if isinstance(item, float):
        return {"score" if rules.task == "classification" else "value": item}
    if item is None:
        return {}
    raise DecodeError("unsupported_output")


def _probabilities(row: Sequence[float], rules: OutputRules) -> dict[str, Any]:
    names = rules.class_names if len(rules.class_names) == len(row) else ()
    labels = list(names) if names else [str(j) for j in range(len(row))]
    probs = {label: float(p) for label, p in zip(labels, row, strict=True)}
    best = max(range(len(row)), key=row.__getitem__)
    out: dict[str, Any] = {"probabilities": probs}
    out["predicted_class"] = labels[best] if names else best
    if len(row) == 2:
        out["score"] = float(row[1])
    return out


def _merge_outputs(rows: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> list[Row]:
    if len(outputs) != len(rows):
        raise DecodeError("row_mismatch", f"{len(rows)} inputs, {len(outputs)} outputs")
    return [Row(f, o) for f, o in zip(rows, outputs, strict=True)]


def _instances(doc: Doc, rules: OutputRules) -> list[dict[str, Any]]:
    """Rows of a TF Serving / KServe v1 / MLflow ``instances`` or ``inputs`` field."""
    data = doc.get("instances", doc.get("inputs")) if isinstance(doc, dict) else None
    if isinstance(data, dict):  # columnar: {name: [value per row]}
        if all(isinstance(v, list) for v in data.values()):
            return _columns_to_rows(data)
        return [data]
    if isinstance(data, list):
        return [_record_features(item, rules) for item in data]
    raise DecodeError("unknown_format")


def _predictions(doc: Doc, rules: OutputRules) -> list[dict[str, Any]]:
    preds = doc.get("predictions", doc.get("outputs")) if isinstance(doc, dict) else doc
    if isinstance(preds, dict) and all(isinstance(v, list) for v in preds.values()):
        preds = _columns_to_rows(preds)
    if not isinstance(preds, list):
        raise DecodeError("unknown_format")
    return [_output_of(p, rules) for p in preds]


# -- Open Inference Protocol v2 --------------------------------------------------------

_OIP_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
_CLASS_TYPES = ("INT", "UINT", "BOOL", "BYTES")


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise DecodeError("malformed_payload", "tensor data is not a list")
    if data and isinstance(data[0], list):
        flat: list[Any] = []
        stack = [data]
        while stack:  # depth-first, in order
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            else:
                flat.append(item)
        return flat
    return data


def _tensor_columns(tensor: Any) -> tuple[str, str, int, int, list[Any]]:
    """(name, datatype, rows, columns, flat data) of a v2 tensor."""
    if not isinstance(tensor, dict):
        raise DecodeError("malformed_payload", "a tensor is not an object")
    name, shape, dtype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
    if not isinstance(name, str) or not isinstance(shape, list) or not isinstance(dtype, str):
        raise DecodeError("malformed_payload", "a tensor lacks name, shape or datatype")
    if not shape or not all(isinstance(d, int) and d >= 0 for d in shape) or len(shape) > 2:
        raise DecodeError("unsupported_shape")
    rows = shape[0]
    cols = shape[1] if len(shape) == 2 else 1
    flat = _flatten(tensor.get("data"))
    if len(flat) != rows * cols:
        raise DecodeError("malformed_payload", "tensor data does not match its shape")
    return name, dtype.upper(), rows, cols, flat


class OpenInferenceDecoder:
    """Open Inference Protocol v2 (KServe v2, Seldon MLServer, Triton)."""

    name = "oip_v2"

    def __init__(self, rules: OutputRules) -> None:
        self._rules = rules

    def claims(self, path: str) -> re.Match[str] | None:
        return _OIP_PATH.match(path)

    def decode(self, path: str, request: Message, response: Message | None) -> Decoded:
        match = _OIP_PATH.match(path)
        doc = load_json(request.body)
        inputs = doc.get("inputs") if isinstance(doc, dict) else None
        if not isinstance(inputs, list) or not inputs:
            raise DecodeError("unknown_format")
        rows = self._rows([_tensor_columns(t) for t in inputs], features=True)
        request_id = doc.get("id") if isinstance(doc.get("id"), str) else None
        version = match.group(2) if match else None
        if response is None:
            return Decoded([Row(f, {}) for f in rows], match and match.group(1), version,
                           request_id)  # fmt: skip
        answer = load_json(response.body)
        outputs = answer.get("outputs") if isinstance(answer, dict) else None
        if not isinstance(outputs, list):
            raise DecodeError("unknown_format")
        outs = self._rows([_tensor_columns(t) for t in outputs], features=False)
        if version is None and isinstance(answer.get("model_version"), str):
            version = answer["model_version"]
        return Decoded(_merge_outputs(rows, outs), match and match.group(1), version, request_id)

    def _rows(
        self, tensors: list[tuple[str, str, int, int, list[Any]]], *, features: bool
    ) -> list[dict[str, Any]]:
        counts = {rows for _, _, rows, _, _ in tensors}
        if len(counts) != 1:
            raise DecodeError("row_mismatch", "tensors differ in rows")
        n = counts.pop()
        result: list[dict[str, Any]] = [{} for _ in range(n)]
        for name, dtype, _, cols, flat in tensors:
            if features:
                names = self._column_names(name, cols, len(tensors))
                for i, row in enumerate(result):
                    for j, column in enumerate(names):
                        row[column] = flat[i * cols + j]
            else:
                is_class = dtype.startswith(_CLASS_TYPES)
                for i, row in enumerate(result):
                    if cols == 1:
                        value = flat[i]
                        row.update(_output_of(value if is_class else float(value), self._rules))
                    else:
                        row.update(_probabilities(flat[i * cols : (i + 1) * cols], self._rules))
        return result

    def _column_names(self, name: str, cols: int, tensors: int) -> Sequence[str]:
        if cols == 1:
            return (name,)
        names = self._rules.feature_names
        if tensors == 1 and len(names) == cols:
            return names
        return [f"{name}_{j}" for j in range(cols)]


# -- KServe v1 / TF Serving ------------------------------------------------------------

_V1_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/([^/:]+))?:predict$")


class KServeV1Decoder:
    """KServe v1 and TF Serving's REST ``:predict``."""

    name = "kserve_v1"

    def __init__(self, rules: OutputRules) -> None:
        self._rules = rules

    def claims(self, path: str) -> re.Match[str] | None:
        return _V1_PATH.match(path)

    def decode(self, path: str, request: Message, response: Message | None) -> Decoded:
        match = _V1_PATH.match(path)
        rows = _instances(load_json(request.body), self._rules)
        model, version = (match.group(1), match.group(2)) if match else (None, None)
        if response is None:
            return Decoded([Row(f, {}) for f in rows], model, version)
        outs = _predictions(load_json(response.body), self._rules)
        return Decoded(_merge_outputs(rows, outs), model, version)


# -- MLflow ----------------------------------------------------------------------------

_MLFLOW_PATH = re.compile(r"^/invocations$")


def _csv_rows(body: bytes) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("not_utf8") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
        rows = [dict(zip(header, map(_csv_value, line), strict=True)) for line in reader if line]
    except (StopIteration, ValueError, csv.Error):
        raise DecodeError("malformed_csv") from None
    return rows


def _csv_value(text: str) -> Any:
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        raise DecodeError("non_finite")
    return int(number) if number.is_integer() and "." not in text and "e" not in text else number


class MlflowDecoder:
    """MLflow's pyfunc scoring server (``/invocations``)."""

    name = "mlflow"

    def __init__(self, rules: OutputRules) -> None:
        self._rules = rules

    def claims(self, path: str) -> re.Match[str] | None:
        return _MLFLOW_PATH.match(path)

    def decode(self, path: str, request: Message, response: Message | None) -> Decoded:
        if request.content_type.startswith("text/csv"):
            rows = _csv_rows(request.body)
        else:
            rows = self._json_rows(load_json(request.body))
        if response is None:
            return Decoded([Row(f, {}) for f in rows])
        outs = _predictions(load_json(response.body), self._rules)
        return Decoded(_merge_outputs(rows, outs))

    def _json_rows(self, doc: Doc) -> list[dict[str, Any]]:
        if not isinstance(doc, dict):
            raise DecodeError("unknown_format")
        if "dataframe_split" in doc:
            split = doc["dataframe_split"]
            columns, data = split.get("columns"), split.get("data")
            if not isinstance(columns, list) or not isinstance(data, list):
                raise DecodeError("malformed_payload", "dataframe_split needs columns and data")
            if not all(isinstance(r, list) and len(r) == len(columns) for r in data):
                raise DecodeError("malformed_payload", "a row does not match the columns")
            return [dict(zip(columns, r, strict=True)) for r in data]
        if "dataframe_records" in doc:
            records = doc["dataframe_records"]
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise DecodeError("malformed_payload", "dataframe_records needs objects")
            return records
        return _instances(doc, self._rules)


# -- configured field mapping ----------------------------------------------------------

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)?((?:\[(?:\*|\d+)\])*)")


def compile_path(path: str) -> Callable[[Doc], list[Any]]:
    """A JSONPath-like selector: ``a.b[*].c``, ``[0]``; ``[*]`` fans out over a list.

    Raises:
        ValueError: The path is not of that form.
    """
    steps: list[str | int | None] = []  # a key, an index, or None for [*]
    for part in path.removeprefix("$").removeprefix(".").split("."):
        match = _STEP.fullmatch(part)
        if match is None or not part:
            raise ValueError(f"bad path segment {part!r} in {path!r}; expected name, "
                             "name[*] or name[3]")  # fmt: skip
        if match.group(1):
            steps.append(match.group(1))
        for index in re.findall(r"\[(\*|\d+)\]", match.group(2)):
            steps.append(None if index == "*" else int(index))

    def select(doc: Doc) -> list[Any]:
        current = [doc]
        fanned = False
        for step in steps:
            nxt: list[Any] = []
            for item in current:
                if step is None:
                    if not isinstance(item, list):
                        raise DecodeError("mapping_mismatch")
                    nxt.extend(item)
                elif isinstance(step, int):
                    if not isinstance(item, list) or step >= len(item):
                        raise DecodeError("mapping_mismatch")
                    nxt.append(item[step])
                else:
                    if not isinstance(item, dict) or step not in item:
                        raise DecodeError("mapping_mismatch")
                    nxt.append(item[step])
            fanned = fanned or step is None
            current = nxt
        return current if fanned else [current[0]]

    return select


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """Where features and outputs sit in a custom JSON format.

    Each path selects from the request (``features``) or the response (the outputs);
    a path with ``[*]`` yields one item per row. A features item is an object (named
    features) or a list (named by ``feature_names``).
    """

    path_pattern: str
    """Regular expression matched against the request path."""
    features: str
    predicted_class: str | None = None
    score: str | None = None
    value: str | None = None
    probabilities: str | None = None
    _compiled: dict[str, Callable[[Doc], list[Any]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        re.compile(self.path_pattern)
        for key in ("features", "predicted_class", "score", "value", "probabilities"):
            path = getattr(self, key)
            if path is not None:
                self._compiled[key] = compile_path(path)


class MappingDecoder:
    """Any JSON format, through a :class:`FieldMapping`."""

    name = "mapping"

    def __init__(self, mapping: FieldMapping, rules: OutputRules) -> None:
        self._mapping = mapping
        self._pattern = re.compile(mapping.path_pattern)
        self._rules = rules

    def claims(self, path: str) -> re.Match[str] | None:
        return self._pattern.search(path)

    def decode(self, path: str, request: Message, response: Message | None) -> Decoded:
        selectors = self._mapping._compiled
        items = selectors["features"](load_json(request.body))
        rows = [_record_features(item, self._rules) for item in items]
        outs: list[dict[str, Any]] = [{} for _ in rows]
        if response is not None:
            answer = load_json(response.body)
            for key in ("predicted_class", "score", "value", "probabilities"):
                if key not in selectors:
                    continue
                values = selectors[key](answer)
                if len(values) != len(rows):
                    raise DecodeError("row_mismatch")
                for out, value in zip(outs, values, strict=True):
                    if key == "probabilities":
                        out.update(_output_of(value, self._rules))
                    else:
                        out[key] = value
        return Decoded(_merge_outputs(rows, outs))


def build_decoders(rules: OutputRules, mapping: FieldMapping | None) -> list[Decoder]:
    """The decoders in the order they are tried: a configured mapping first."""
    decoders: list[Decoder] = [
        OpenInferenceDecoder(rules),
        KServeV1Decoder(rules),
        MlflowDecoder(rules),
    ]
    if mapping is not None:
        decoders.insert(0, MappingDecoder(mapping, rules))
    return decoders


def model_in_path(decoders: tuple[Decoder, ...], path: str) -> tuple[Decoder | None, str | None]:
    """The decoder that claims ``path`` and the model the path names, if any."""
    for decoder in decoders:
        match = decoder.claims(path)
        if match:
            return decoder, match.group(1) if match.re.groups else None
    return None, None
