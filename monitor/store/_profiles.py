"""Feature profiles: each window's mergeable per-feature profiles, merged at ingest.

Stage: store (private). In: profile deltas of newly stored rows (computed by the caller,
below scoring), a window to profile again. Out: a window's stored profiles.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Connection

from monitor.core.profile import FeatureBins, FeatureProfile, Kind, ProfileKey, profile_rows
from monitor.core.windows import Window
from monitor.store._common import PREDICTIONS, PROFILES, in_window
from monitor.store._engine import StoreBase

STALE_BINS = -1
"""``bins_revision`` of a profile that merged histograms on different bins: its window
is profiled again from its rows when scored."""

ProfileDeltas = Mapping[ProfileKey, tuple[int, FeatureProfile]]
"""Profiles of newly stored rows, by key, with the reference revision of their bins."""


class ProfileTables(StoreBase):
    """Feature profiles: each window's mergeable per-feature profiles."""

    def window_profiles(
        self, model: str, version: str, window_seconds: int, start: float, segment: str = ""
    ) -> dict[str, tuple[int, FeatureProfile]]:
        """The stored profiles of one window: feature to (bins revision, profile)."""
        f = PROFILES.c
        stmt = select(f.feature, f.bins_revision, f.profile).where(
            f.model == model,
            f.model_version == version,
            f.window_seconds == window_seconds,
            f.window_start == start,
            f.segment == segment,
        )
        with self.engine.connect() as conn:
            return {
                feature: (revision, FeatureProfile.from_bytes(blob))
                for feature, revision, blob in conn.execute(stmt)
            }

    def window_profiles_between(
        self, model: str, version: str, window_seconds: int, start: float, end: float
    ) -> Iterator[tuple[float, dict[str, tuple[int, FeatureProfile]]]]:
        """The stored whole-version profiles of the windows starting in ``[start, end)``.

        Yields ``(window start, {feature: (bins revision, profile)})``, one window at a
        time and oldest first, so that a long span is merged without holding it all.
        """
        f = PROFILES.c
        stmt = (
            select(f.window_start, f.feature, f.bins_revision, f.profile)
            .where(
                f.model == model,
                f.model_version == version,
                f.window_seconds == window_seconds,
                f.window_start >= start,
                f.window_start < end,
                f.segment == "",
            )
            .order_by(f.window_start)
        )
        with self.engine.connect().execution_options(stream_results=True) as conn:
            current: float | None = None
            found: dict[str, tuple[int, FeatureProfile]] = {}
            for window_start, feature, revision, blob in conn.execute(stmt):
                if window_start != current:
                    if current is not None:
                        yield current, found
                    current, found = window_start, {}
                found[feature] = (revision, FeatureProfile.from_bytes(blob))
            if current is not None:
                yield current, found

    def profile_window(
        self, window: Window, kinds: dict[str, Kind], bins: dict[str, FeatureBins] | None
    ) -> dict[str, FeatureProfile]:
        """Each feature's profile of the window's rows, on ``bins`` (nothing is stored).

        How segment and count windows get their profiles: built when scored.
        """
        with self.engine.connect() as conn:
            return profile_rows(self._window_features(conn, window), kinds, bins)

    def rebuild_window_profiles(
        self,
        window: Window,
        kinds: dict[str, Kind],
        bins: dict[str, FeatureBins] | None,
        revision: int,
    ) -> dict[str, FeatureProfile]:
        """Profile a whole-version time window again from its rows, on ``bins``, and
        store that (when it has rows).

        Used when the stored profiles are missing or on another reference's bins.
        """
        seconds = int(window.seconds)
        key = (window.model, window.version, seconds, window.start)
        probe = in_window(select(PREDICTIONS.c.event_id), window).limit(1)
        with self.engine.connect() as conn:
            if conn.execute(probe).first() is None:  # no rows: no write, nothing stored
                return profile_rows([], kinds, bins)
        with self._write() as conn:
            lock_windows(conn, self.dialect, [key])
            features = self._window_features(conn, window)
            profiles = profile_rows(features, kinds, bins)
            now = time.time()
            params = [
                (*key, "", name, revision, prof.to_bytes(), now) for name, prof in profiles.items()
            ]
            if params:
                upsert_profiles(conn, self.dialect, params)
        return profiles

    def _window_features(self, conn: Connection, window: Window) -> list[dict[str, Any]]:
        stmt = in_window(select(PREDICTIONS.c.features), window)
        return [f for (f,) in conn.execute(stmt)]

    def save_window_profiles(
        self,
        model: str,
        version: str,
        window_seconds: int,
        start: float,
        revision: int,
        profiles: Mapping[str, FeatureProfile],
    ) -> None:
        """Store a window's profiles, replacing those stored (a backfill, a batch job)."""
        now = time.time()
        params = [
            (model, version, window_seconds, start, "", name, revision, p.to_bytes(), now)
            for name, p in profiles.items()
        ]
        with self._write() as conn:
            lock_windows(conn, self.dialect, [(model, version, window_seconds, start)])
            if params:
                upsert_profiles(conn, self.dialect, params)


def lock_windows(
    conn: Connection, dialect: str, windows: Iterable[tuple[str, str, int, float]]
) -> None:
    """Lock the windows' profiles for this transaction (PostgreSQL; a no-op on SQLite)."""
    # SQLite: the store's write lock already serialises writers. PostgreSQL: a
    # transaction-scoped advisory lock per window, taken in one order, so that two
    # writers never merge into the same profile at once (no lost update, no deadlock).
    if dialect != "postgresql":
        return
    for window in sorted(set(windows)):
        conn.exec_driver_sql(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", (orjson.dumps(window).decode(),)
        )


def merge_profiles(conn: Connection, dialect: str, deltas: ProfileDeltas) -> None:
    """Merge newly stored rows' profiles into the stored window profiles."""
    if not deltas:
        return
    windows = {(k.model, k.model_version, k.window_seconds, k.window_start) for k in deltas}
    lock_windows(conn, dialect, windows)
    mark = "?" if dialect == "sqlite" else "%s"
    stored: dict[ProfileKey, tuple[int, bytes]] = {}
    for model, version, seconds, start in sorted(windows):
        found = conn.exec_driver_sql(
            "SELECT segment, feature, bins_revision, profile FROM feature_profiles "
            f"WHERE model = {mark} AND model_version = {mark} AND window_seconds = {mark} "
            f"AND window_start = {mark}",
            (model, version, seconds, start),
        )
        for segment, feature, revision, blob in found:
            key = ProfileKey(model, version, seconds, start, segment, feature)
            stored[key] = (revision, blob)
    now = time.time()
    params = []
    for key, (revision, profile) in deltas.items():
        old = stored.get(key)
        if old is not None:
            if old[0] == revision:
                profile = FeatureProfile.from_bytes(old[1]).merge(profile)
            else:
                revision = STALE_BINS
        params.append((*key, revision, profile.to_bytes(), now))
    upsert_profiles(conn, dialect, params)


def upsert_profiles(conn: Connection, dialect: str, params: list[tuple[Any, ...]]) -> None:
    """Store profile rows, replacing those of the same keys."""
    mark = "?" if dialect == "sqlite" else "%s"
    keys = "model, model_version, window_seconds, window_start, segment, feature"
    conn.exec_driver_sql(
        f"INSERT INTO feature_profiles ({keys}, bins_revision, profile, updated_at) "
        f"VALUES ({', '.join([mark] * 9)}) ON CONFLICT ({keys}) DO UPDATE SET "
        "bins_revision = excluded.bins_revision, profile = excluded.profile, "
        "updated_at = excluded.updated_at",
        params,
    )
