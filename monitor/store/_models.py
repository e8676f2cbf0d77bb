"""Models, versions and reference datasets: what is monitored, and against what.

Stage: store (private). In: model descriptions, reference uploads. Out: the
descriptions, the versions, the newest reference revision of a version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select

from collectors.contract import FeatureSpec, ModelDescription
from monitor.errors import ConflictError, NotFoundError
from monitor.store._common import MODELS, REFERENCES, VERSIONS
from monitor.store._engine import StoreBase

logger = logging.getLogger("sidewatch.store")


@dataclass(frozen=True, slots=True)
class ReferenceInfo:
    """A stored reference dataset, without its data."""

    model: str
    version: str
    revision: int
    rows: int
    source_format: str
    profile: dict[str, Any]
    created_at: float


class ModelTables(StoreBase):
    """Models, their versions, and the versions' reference datasets."""

    # -- models and versions -----------------------------------------------------------

    def put_model(self, description: ModelDescription) -> bool:
        """Register a model; registering the same description again changes nothing.

        Returns:
            True if the model was created, False if it already existed unchanged.

        Raises:
            ConflictError: A model of that name exists with another description.
        """
        row = {
            "name": description.name,
            "task": description.task,
            "features": [f.model_dump() for f in description.features],
            "positive_class": description.positive_class,
            "sensitive_attributes": list(description.sensitive_attributes),
            "group_labels_allowed": description.group_labels_allowed,
            "description": description.description,
            "prediction_column": description.prediction_column,
            "score_column": description.score_column,
            "target_column": description.target_column,
            "created_at": time.time(),
        }
        with self._write() as conn:
            existing = conn.execute(select(MODELS).where(MODELS.c.name == description.name))
            found = existing.mappings().first()
            if found is None:
                conn.execute(insert(MODELS), [row])
                return True
        if _describe(found) != description:
            raise ConflictError(
                f"model {description.name!r} is registered with another description; "
                "register the changed model under a new name"
            )
        return False

    def get_model(self, name: str) -> ModelDescription:
        """The description of a registered model.

        Raises:
            NotFoundError: No model has that name.
        """
        with self.engine.connect() as conn:
            found = conn.execute(select(MODELS).where(MODELS.c.name == name)).mappings().first()
        if found is None:
            raise NotFoundError(f"model {name!r} is not registered; register it first")
        return _describe(found)

    def list_models(self) -> list[ModelDescription]:
        """Every registered model, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(MODELS).order_by(MODELS.c.name)).mappings().all()
        return [_describe(r) for r in rows]

    def ensure_versions(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Create the ``(model, version)`` pairs that do not exist yet."""
        rows = [{"model": m, "version": v, "created_at": time.time()} for m, v in set(pairs)]
        if not rows:
            return
        stmt = self._insert(VERSIONS).on_conflict_do_nothing(index_elements=["model", "version"])
        with self._write() as conn:
            conn.execute(stmt, rows)

    def list_versions(self, model: str | None = None) -> list[tuple[str, str]]:
        """``(model, version)`` pairs, oldest first, for one model or all."""
        v = VERSIONS.c
        stmt = select(v.model, v.version).order_by(v.id)
        if model is not None:
            stmt = stmt.where(v.model == model)
        with self.engine.connect() as conn:
            return [(m, v) for m, v in conn.execute(stmt)]

    # -- reference datasets ------------------------------------------------------------

    def add_reference(
        self,
        model: str,
        version: str,
        *,
        rows: int,
        source_format: str,
        data: bytes,
        profile: dict[str, Any],
    ) -> ReferenceInfo:
        """Store a new revision of a version's reference dataset."""
        self.ensure_versions([(model, version)])
        with self._write() as conn:
            latest = conn.execute(
                select(func.max(REFERENCES.c.revision)).where(
                    REFERENCES.c.model == model, REFERENCES.c.version == version
                )
            ).scalar()
            info = ReferenceInfo(
                model, version, (latest or 0) + 1, rows, source_format, profile, time.time()
            )
            conn.execute(
                insert(REFERENCES),
                [
                    {
                        "model": model,
                        "version": version,
                        "revision": info.revision,
                        "rows": rows,
                        "source_format": source_format,
                        "data": data,
                        "profile": profile,
                        "created_at": info.created_at,
                    }
                ],
            )
        return info

    def latest_reference(self, model: str, version: str) -> ReferenceInfo | None:
        """The newest reference revision of a version, or None if none was uploaded."""
        r = REFERENCES.c
        stmt = (
            select(r.model, r.version, r.revision, r.rows, r.source_format, r.profile, r.created_at)
            .where(r.model == model, r.version == version)
            .order_by(r.revision.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            found = conn.execute(stmt).first()
        return ReferenceInfo(*found) if found is not None else None

    def reference_data(self, model: str, version: str) -> tuple[ReferenceInfo, bytes] | None:
        """The newest reference revision of a version with its Parquet bytes, or None."""
        r = REFERENCES.c
        stmt = (
            select(
                r.model,
                r.version,
                r.revision,
                r.rows,
                r.source_format,
                r.profile,
                r.created_at,
                r.data,
            )
            .where(r.model == model, r.version == version)
            .order_by(r.revision.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            found = conn.execute(stmt).first()
        if found is None:
            return None
        return ReferenceInfo(*found[:-1]), bytes(found[-1])

    def latest_reference_revision(self, model: str, version: str) -> int | None:
        """The newest reference revision of a version, or None if none was uploaded."""
        r = REFERENCES.c
        stmt = select(func.max(r.revision)).where(r.model == model, r.version == version)
        with self.engine.connect() as conn:
            found = conn.execute(stmt).scalar()
        return int(found) if found is not None else None


_IGNORED_WARNED: set[str] = set()
"""Models whose stored sensitive attributes that are no feature were logged once."""


def _describe(row: Any) -> ModelDescription:
    features = [FeatureSpec(**f) for f in row["features"]]
    declared = {f.name for f in features}
    sensitive = [a for a in row["sensitive_attributes"] if a in declared]
    if len(sensitive) < len(row["sensitive_attributes"]) and row["name"] not in _IGNORED_WARNED:
        # Registered before descriptions were checked for this: still load the model.
        _IGNORED_WARNED.add(row["name"])
        logger.warning(
            "model %r: sensitive attributes that are no feature are ignored: %s",
            row["name"],
            sorted(set(row["sensitive_attributes"]) - declared),
        )
    return ModelDescription(
        name=row["name"],
        task=row["task"],
        features=features,
        positive_class=row["positive_class"],
        sensitive_attributes=sensitive,
        group_labels_allowed=bool(row["group_labels_allowed"]),
        description=row["description"],
        prediction_column=row["prediction_column"],
        score_column=row["score_column"],
        target_column=row["target_column"],
    )
