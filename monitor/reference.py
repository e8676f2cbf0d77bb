"""Reference datasets: an uploaded file in, a validated table and its profile out.

A reference is what a model version's inputs looked like when it was trusted
(usually its training or validation data). The upload may be CSV, Parquet or JSON (a
list of records); it is checked against the model's declared features, stored as
Parquet, and profiled once so that scoring never reads it again.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pandas.api import types as ptypes

from collectors.contract import ModelDescription
from monitor.core.profile import FINE_BINS, ReferenceProfile
from monitor.errors import InputError

ReferenceFormat = Literal["csv", "parquet", "json"]

CONTENT_TYPES: dict[str, ReferenceFormat] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/octet-stream": "parquet",
    "application/json": "json",
}


def format_for(content_type: str | None, explicit: str | None) -> ReferenceFormat:
    """The upload's format, from ``?format=`` or else the Content-Type header.

    Raises:
        InputError: Neither names a supported format.
    """
    if explicit is not None:
        if explicit not in ("csv", "parquet", "json"):
            raise InputError(
                "unsupported reference format",
                [("format", f"expected csv, parquet or json, got {explicit!r}")],
            )
        return explicit  # type: ignore[return-value]
    media = (content_type or "").split(";")[0].strip().lower()
    if media in CONTENT_TYPES:
        return CONTENT_TYPES[media]
    raise InputError(
        "unsupported reference content type",
        [
            (
                "Content-Type",
                f"expected one of {sorted(CONTENT_TYPES)} (or ?format=csv|parquet|json), "
                f"got {media or 'none'!r}",
            )
        ],
    )


def read_reference(
    source: bytes | Path, fmt: ReferenceFormat, model: ModelDescription
) -> pd.DataFrame:
    """Parse an uploaded reference and check it against the model's features.

    Columns the model does not declare are kept (targets, predictions); every declared
    feature must be present with a compatible type.

    Args:
        source: The file's bytes, or its path (the upload spooled to disk: the parser
            then reads it in blocks, and the raw file is never held in memory).

    Raises:
        InputError: The file cannot be parsed or does not fit the model.
    """
    data: Path | io.BytesIO = source if isinstance(source, Path) else io.BytesIO(source)
    try:
        if fmt == "csv":
            frame = pd.read_csv(data)
        elif fmt == "parquet":
            frame = pd.read_parquet(data, engine="pyarrow")
        else:
            frame = pd.read_json(data, orient="records")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(
            f"the reference is not valid {fmt}", [("body", f"expected a {fmt} file")]
        ) from exc
    if frame.empty:
        raise InputError("the reference has no rows", [("body", "expected at least one row")])
    problems: list[tuple[str, str]] = []
    for spec in model.features:
        if spec.name not in frame.columns:
            problems.append((f"columns.{spec.name}", "expected a column for this feature"))
            continue
        column = frame[spec.name]
        if spec.type == "numeric" and not (
            ptypes.is_numeric_dtype(column) and not ptypes.is_bool_dtype(column)
        ):
            problems.append((f"columns.{spec.name}", "expected numbers (a numeric feature)"))
        elif column.notna().sum() == 0:
            problems.append((f"columns.{spec.name}", "expected at least one non-missing value"))
    if problems:
        raise InputError("the reference does not match the model's features", problems)
    return frame


def profile_reference(
    frame: pd.DataFrame, model: ModelDescription, fine_bins: int = FINE_BINS
) -> dict[str, Any]:
    """What scoring needs from a reference: every feature's bins and profile on them.

    See :mod:`monitor.core.profile`; the result is the stored (JSON) form.
    """
    columns = {
        spec.name: (spec.type, frame[spec.name].dropna().to_numpy()) for spec in model.features
    }
    return ReferenceProfile.build(columns, len(frame), fine_bins).as_json()


def to_parquet(frame: pd.DataFrame) -> bytes:
    """The reference as Parquet bytes, the one form the store keeps."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    return buffer.getvalue()
