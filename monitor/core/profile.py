"""Mergeable feature profiles: a feature's values in, a fixed-size summary out.

Stage: core. Built at ingest (one per model version, window and feature, merged into
the stored one in the same transaction as the rows) and once for a reference at
upload; read by scoring, which then costs what features and bins cost, not events.

One binning, fitted to the reference (:func:`fit_bins`):

- numeric: the reference's distinct values when it has at most :data:`FINE_BINS` of
  them, otherwise its minimum, maximum, the ``k / FINE_BINS`` quantiles and a few more
  in each tail (0.0001% to 0.05% from either end). Bin ``i``
  holds ``(edges[i-1], edges[i]]``; the first bin everything up to the reference's
  minimum, the last everything above its maximum. This fine histogram is the quantile
  sketch: a rank (cumulative share) read at a bin edge is exact; between edges it is
  off by at most the share of the bin it falls in, which for the reference is at most
  ``1 / FINE_BINS`` (0.1%) of the values plus the ties at one edge, and for a window is
  that bin's share of the window (reported by each test as its error bound).
  PSI, Jensen-Shannon and Hellinger read coarser bins made of whole fine bins
  (:func:`coarse_groups`), each holding about ``1 / coarse`` of the reference.
- categorical and boolean: the reference's :data:`MAX_CATEGORIES` most frequent
  values, spelled as strings, and one bin for every other value.

A :class:`FeatureProfile` holds the count of non-missing values, the missing ones, and
for numeric features the minimum, maximum, mean and ``M2`` (sum of squared deviations
from the mean, merged with Chan et al.'s parallel formula), plus the histogram on the
bins and, per numeric bin, the sum of its values' offsets from the bin's lower edge.
``merge`` is exact for counts, histograms, minimum and maximum, and agrees with the
profile of the whole to rounding for the moments and the sums.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Literal, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt
import orjson

__all__ = [
    "FINE_BINS",
    "MAX_CATEGORIES",
    "Kind",
    "ProfileKey",
    "FeatureBins",
    "FeatureProfile",
    "ReferenceFeature",
    "ReferenceProfile",
    "category",
    "coarse_edges",
    "coarse_groups",
    "fit_bins",
    "profile_columns",
    "profile_matrix",
    "profile_rows",
]

Kind = Literal["numeric", "categorical", "boolean"]

FINE_BINS = 1000
"""Quantile bins of a numeric feature's fine histogram (its quantile sketch)."""

MAX_CATEGORIES = 100
"""Most categories of a feature counted one by one; the rest share the "other" bin."""

_MAGIC = b"SWP1"
"""The first bytes of a stored profile (and its layout's version)."""

_TAILS = np.array([1e-6, 1e-5, 1e-4, 5e-4])
"""Extra quantiles at both ends, so that the outermost bins of a long tail stay narrow."""

FORMAT = "profile-v1"
"""The stored form of profiles and reference profiles; bump it when either changes."""

IntArray: TypeAlias = npt.NDArray[np.int64]
FloatArray: TypeAlias = npt.NDArray[np.float64]

_EMPTY_EDGES: FloatArray = np.zeros(0, dtype=np.float64)


def category(value: Any) -> str:
    """The one spelling of a categorical value (JSON booleans and CSV ones alike)."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        # A CSV column with a missing value reads as floats: 3.0 is the category 3.
        return str(int(value))
    return str(value)


@dataclass(frozen=True, slots=True, eq=False)
class FeatureBins:
    """The bins fitted to one feature's reference."""

    kind: Kind
    edges: FloatArray = field(default_factory=lambda: _EMPTY_EDGES)
    """Numeric: sorted inner edges; ``len(edges) + 1`` bins."""
    categories: tuple[str, ...] = ()
    """Categorical and boolean: the counted values; one more bin holds the others."""
    discrete: bool = False
    """Numeric: the edges are all of the reference's distinct values."""

    @property
    def size(self) -> int:
        """Number of bins."""
        if self.kind == "numeric":
            return int(self.edges.size) + 1
        return len(self.categories) + 1

    @property
    def anchors(self) -> FloatArray:
        """Numeric: each bin's anchor, its lower edge (the first bin's: its upper edge);
        profiles sum each value's offset from it, which keeps the sums' rounding at the
        scale of the bin rather than of the values."""
        return np.concatenate((self.edges[:1], self.edges))

    def index(self, values: Sequence[Any] | npt.NDArray[Any]) -> npt.NDArray[np.intp]:
        """The bin of each (non-missing) value."""
        if self.kind == "numeric":
            return np.searchsorted(self.edges, np.asarray(values, dtype=np.float64), "left")
        position = {c: i for i, c in enumerate(self.categories)}
        other = len(self.categories)
        return np.fromiter(
            (position.get(category(v), other) for v in values), dtype=np.intp, count=len(values)
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FeatureBins)
            and self.kind == other.kind
            and self.categories == other.categories
            and self.discrete == other.discrete
            and np.array_equal(self.edges, other.edges)
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.categories, self.discrete, self.edges.tobytes()))

    def as_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "kind": self.kind,
            "edges": self.edges.tolist(),
            "categories": list(self.categories),
            "discrete": self.discrete,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureBins:
        """Rebuild from :meth:`as_json`."""
        return cls(
            kind=data["kind"],
            edges=np.asarray(data["edges"], dtype=np.float64),
            categories=tuple(data["categories"]),
            discrete=bool(data["discrete"]),
        )


def _finite(values: Sequence[Any] | npt.NDArray[Any]) -> tuple[FloatArray, int]:
    """The finite values as floats, and how many were missing (None, NaN, infinite)."""
    arr = np.asarray(values, dtype=np.float64) if len(values) else np.zeros(0)
    ok = np.isfinite(arr)
    finite = arr if ok.all() else arr[ok]
    return finite, int(arr.size - finite.size)


def _present(values: Sequence[Any] | npt.NDArray[Any]) -> tuple[list[Any], int]:
    present = [v for v in values if not _is_missing(v)]
    return present, len(values) - len(present)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def fit_bins(
    reference: Sequence[Any] | npt.NDArray[Any],
    kind: Kind,
    fine_bins: int = FINE_BINS,
    max_categories: int = MAX_CATEGORIES,
) -> FeatureBins:
    """Fit the bins of one feature on its reference values (missing ones allowed).

    Raises:
        ValueError: The reference has no non-missing value for the feature.
    """
    if kind == "numeric":
        values, _ = _finite(reference)
        if values.size == 0:
            raise ValueError("the reference has no finite values for this feature")
        distinct = np.unique(values)
        if distinct.size <= fine_bins:
            return FeatureBins(kind, distinct, discrete=True)
        inner = np.quantile(
            values, np.concatenate((_TAILS, np.arange(1, fine_bins) / fine_bins, 1 - _TAILS))
        )
        edges = np.unique(np.concatenate(([distinct[0]], inner, [distinct[-1]])))
        return FeatureBins(kind, edges)
    present, _ = _present(reference)
    if not present:
        raise ValueError("the reference has no values for this feature")
    counts = Counter(category(v) for v in present)
    top = sorted(counts, key=lambda c: (-counts[c], c))[:max_categories]
    return FeatureBins(kind, categories=tuple(sorted(top)))


@dataclass(frozen=True, slots=True, eq=False)
class FeatureProfile:
    """A mergeable summary of one feature's values over a window or a reference.

    ``histogram`` is empty when the profile was built without bins (no reference yet).
    The numeric statistics are NaN when there is no value (and for non-numeric features).
    """

    count: int
    """Non-missing values."""
    missing: int
    minimum: float
    maximum: float
    mean: float
    m2: float
    """Sum of squared deviations from the mean."""
    histogram: IntArray
    offsets: FloatArray = field(default_factory=lambda: _EMPTY_EDGES)
    """Numeric features with bins: per bin, the sum of its values' offsets from the
    bin's anchor (:attr:`FeatureBins.anchors`). With the counts, this gives the exact
    integral of the empirical CDF over every bin (used by Wasserstein)."""

    @classmethod
    def zero(cls, bins: FeatureBins | None) -> FeatureProfile:
        """The profile of no values (the identity of :meth:`merge`)."""
        size = 0 if bins is None else bins.size
        nan = math.nan
        sums = np.zeros(size if bins is not None and bins.kind == "numeric" else 0)
        return cls(0, 0, nan, nan, nan, nan, np.zeros(size, dtype=np.int64), sums)

    @classmethod
    def of(
        cls, values: Sequence[Any] | npt.NDArray[Any], kind: Kind, bins: FeatureBins | None
    ) -> FeatureProfile:
        """The profile of a batch of values (missing ones counted, not binned)."""
        size = 0 if bins is None else bins.size
        nan = math.nan
        if kind != "numeric":
            present, missing = _present(values)
            histogram = (
                np.bincount(bins.index(present), minlength=size).astype(np.int64)
                if bins is not None
                else np.zeros(0, dtype=np.int64)
            )
            return cls(len(present), missing, nan, nan, nan, nan, histogram)
        finite, missing = _finite(values)
        if finite.size == 0:
            zero = cls.zero(bins)
            return cls(0, missing, nan, nan, nan, nan, zero.histogram, zero.offsets)
        mean = float(finite.mean())
        m2 = float(np.dot(finite - mean, finite - mean))
        if bins is not None:
            index = bins.index(finite)
            histogram = np.bincount(index, minlength=size).astype(np.int64)
            offsets: FloatArray = np.bincount(
                index, finite - bins.anchors[index], minlength=size
            ).astype(np.float64)
        else:
            histogram, offsets = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        return cls(
            int(finite.size),
            missing,
            float(finite.min()),
            float(finite.max()),
            mean,
            m2,
            histogram,
            offsets.astype(np.float64),
        )

    @property
    def variance(self) -> float:
        """Population variance (NaN without values)."""
        return self.m2 / self.count if self.count else math.nan

    def merge(self, other: FeatureProfile) -> FeatureProfile:
        """The profile of both profiles' values together.

        Raises:
            ValueError: The histograms were built on different bins.
        """
        if (self.histogram.size, self.offsets.size) != (
            other.histogram.size,
            other.offsets.size,
        ):
            raise ValueError("profiles on different bins cannot be merged")
        n = self.count + other.count
        if other.count == 0 or math.isnan(other.mean):
            stats = (self.minimum, self.maximum, self.mean, self.m2)
        elif self.count == 0 or math.isnan(self.mean):
            stats = (other.minimum, other.maximum, other.mean, other.m2)
        else:
            # Chan, Golub and LeVeque's pairwise update: stable for any split.
            delta = other.mean - self.mean
            mean = self.mean + delta * (other.count / n)
            m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / n)
            stats = (min(self.minimum, other.minimum), max(self.maximum, other.maximum), mean, m2)
        return FeatureProfile(
            n,
            self.missing + other.missing,
            *stats,
            self.histogram + other.histogram,
            self.offsets + other.offsets,
        )

    def as_json(self) -> dict[str, Any]:
        """A JSON document (NaN as null), as the reference profile keeps it."""
        return {
            "n": self.count,
            "missing": self.missing,
            "min": _or_none(self.minimum),
            "max": _or_none(self.maximum),
            "mean": _or_none(self.mean),
            "m2": _or_none(self.m2),
            "h": self.histogram.tolist(),
            "o": self.offsets.tolist(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FeatureProfile:
        """Rebuild from :meth:`as_json`."""
        return cls(
            int(d["n"]),
            int(d["missing"]),
            _or_nan(d["min"]),
            _or_nan(d["max"]),
            _or_nan(d["mean"]),
            _or_nan(d["m2"]),
            np.asarray(d["h"], dtype=np.int64),
            np.asarray(d.get("o", ()), dtype=np.float64),
        )

    def to_bytes(self) -> bytes:
        """The stored form, compact: :data:`_MAGIC`, a 4-byte length, a JSON header
        with the scalars and the array sizes, then the histogram as little-endian int64
        and the offsets as little-endian float64 (no pickle)."""
        header = orjson.dumps(
            [
                self.count,
                self.missing,
                _or_none(self.minimum),
                _or_none(self.maximum),
                _or_none(self.mean),
                _or_none(self.m2),
                int(self.histogram.size),
                int(self.offsets.size),
            ]
        )
        return b"".join(
            (
                _MAGIC,
                len(header).to_bytes(4, "little"),
                header,
                self.histogram.astype("<i8", copy=False).tobytes(),
                self.offsets.astype("<f8", copy=False).tobytes(),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> FeatureProfile:
        """Rebuild from :meth:`to_bytes`.

        Raises:
            ValueError: The bytes are not a stored profile.
        """
        data = bytes(data)
        if data[:4] != _MAGIC:
            raise ValueError("not a stored feature profile")
        size = int.from_bytes(data[4:8], "little")
        n, missing, low, high, mean, m2, bins, sums = orjson.loads(data[8 : 8 + size])
        start = 8 + size
        histogram = np.frombuffer(data, "<i8", bins, start).astype(np.int64)
        offsets = np.frombuffer(data, "<f8", sums, start + 8 * bins).astype(np.float64)
        return cls(
            int(n),
            int(missing),
            _or_nan(low),
            _or_nan(high),
            _or_nan(mean),
            _or_nan(m2),
            histogram,
            offsets,
        )


def _or_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def _or_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


@dataclass(frozen=True, slots=True)
class ReferenceFeature:
    """What scoring keeps of one feature's reference: its bins and its profile."""

    bins: FeatureBins
    profile: FeatureProfile
    distinct: int
    """Distinct non-missing values (capped at ``FINE_BINS + 1`` for numeric features);
    the automatic test choice reads it."""

    @property
    def kind(self) -> Kind:
        """The feature's kind."""
        return self.bins.kind


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """A reference's profile: its rows and each feature's bins and profile."""

    rows: int
    features: dict[str, ReferenceFeature]

    @classmethod
    def build(
        cls,
        columns: dict[str, tuple[Kind, Sequence[Any] | npt.NDArray[Any]]],
        rows: int,
        fine_bins: int = FINE_BINS,
    ) -> ReferenceProfile:
        """Fit bins and profile every feature of a reference.

        Args:
            columns: Feature name to its kind and reference values.
            rows: Rows in the reference.
            fine_bins: Quantile bins of a numeric feature.

        Raises:
            ValueError: A feature has no non-missing value.
        """
        features = {}
        for name, (kind, values) in columns.items():
            bins = fit_bins(values, kind, fine_bins)
            profile = FeatureProfile.of(values, kind, bins)
            if kind == "numeric":
                distinct = int(bins.edges.size) if bins.discrete else fine_bins + 1
            else:
                distinct = len({category(v) for v in _present(values)[0]})
            features[name] = ReferenceFeature(bins, profile, distinct)
        return cls(rows, features)

    def as_json(self) -> dict[str, Any]:
        """The stored form (a JSON document)."""
        return {
            "format": FORMAT,
            "rows": self.rows,
            "features": {
                name: {
                    "bins": f.bins.as_json(),
                    "profile": f.profile.as_json(),
                    "distinct": f.distinct,
                }
                for name, f in self.features.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReferenceProfile:
        """Rebuild from :meth:`as_json`.

        Raises:
            ValueError: The document is not a profile of this format (an older one).
        """
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} reference profile")
        return cls(
            int(data["rows"]),
            {
                name: ReferenceFeature(
                    FeatureBins.from_json(f["bins"]),
                    FeatureProfile.from_json(f["profile"]),
                    int(f["distinct"]),
                )
                for name, f in data["features"].items()
            },
        )


def profile_columns(
    columns: dict[str, tuple[Kind, Sequence[Any] | npt.NDArray[Any]]],
    bins: dict[str, FeatureBins] | None,
) -> dict[str, FeatureProfile]:
    """Each feature's profile of a batch given column by column."""
    return {
        name: FeatureProfile.of(values, kind, None if bins is None else bins.get(name))
        for name, (kind, values) in columns.items()
    }


def profile_rows(
    features: Iterable[dict[str, Any]],
    kinds: dict[str, Kind],
    bins: dict[str, FeatureBins] | None,
) -> dict[str, FeatureProfile]:
    """Each feature's profile of a batch of events' feature dicts (the ingest path)."""
    rows = list(features)
    found: dict[str, FeatureProfile] = {}
    numeric = [name for name, kind in kinds.items() if kind == "numeric"]
    if numeric and rows:
        # One pass over the rows for every numeric feature: a float matrix.
        get = operator.itemgetter(*numeric)
        shape = (len(rows), len(numeric))
        values = chain.from_iterable(map(get, rows)) if len(numeric) > 1 else map(get, rows)
        try:
            table = np.fromiter(values, np.float64, shape[0] * shape[1]).reshape(shape)
        except (KeyError, TypeError, ValueError):
            try:  # a missing value (None): NaN
                table = np.array(list(map(get, rows)), dtype=np.float64).reshape(shape)
            except (KeyError, TypeError, ValueError):
                table = None  # a row without a feature, or not a number: column by column
        if table is not None:
            found = profile_matrix(table, numeric, bins)
    columns: dict[str, tuple[Kind, Sequence[Any] | npt.NDArray[Any]]] = {
        name: (kind, [row.get(name) for row in rows])
        for name, kind in kinds.items()
        if name not in found
    }
    found.update(profile_columns(columns, bins))
    return {name: found[name] for name in kinds}


def profile_matrix(
    table: FloatArray, names: Sequence[str], bins: dict[str, FeatureBins] | None
) -> dict[str, FeatureProfile]:
    """Numeric features' profiles from one float matrix, a row per event and a column
    per feature of ``names`` (NaN or infinite: missing).

    Equal to :meth:`FeatureProfile.of` on each column, the moments and offsets to
    rounding, in a few whole-matrix operations: each feature's values sorted (a binary
    search for sorted values costs a third of one for values in arrival order), the
    statistics along the rows, and one ``bincount`` each for every feature's
    histogram and offsets.
    """
    n = table.shape[0]
    complete = np.isfinite(table).all(axis=0) if n else np.zeros(len(names), dtype=bool)
    found: dict[str, FeatureProfile] = {}
    for j in np.flatnonzero(~complete).tolist():  # missing values: the general path
        name = names[j]
        found[name] = FeatureProfile.of(table[:, j], "numeric", _bins_of(bins, name))
    cols: list[int] = np.flatnonzero(complete).tolist()
    if not cols:
        return found
    # A row per feature, its values in ascending order.
    ordered = np.sort((table[:, cols] if len(cols) < len(names) else table).T, axis=1)
    mean = ordered.mean(axis=1)
    deviation = ordered - mean[:, None]
    m2 = np.einsum("ij,ij->i", deviation, deviation)
    fitted = [(c, b) for c, j in enumerate(cols) if (b := _bins_of(bins, names[j])) is not None]
    binned = [c for c, _ in fitted]
    histograms: list[IntArray] = []
    sums: list[FloatArray] = []
    if binned:
        edges = [b.edges for _, b in fitted]
        sizes = np.array([e.size + 1 for e in edges])
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        index = np.empty((len(binned), n), dtype=np.intp)
        for k, (c, e) in enumerate(zip(binned, edges, strict=True)):
            index[k] = np.searchsorted(e, ordered[c], "left")
        index += starts[:, None]
        anchors = np.concatenate([np.concatenate((e[:1], e)) for e in edges])
        flat = index.ravel()
        total = int(sizes.sum())
        counts = np.bincount(flat, minlength=total).astype(np.int64)
        offsets = np.bincount(
            flat, (ordered[binned] - anchors[index]).ravel(), minlength=total
        ).astype(np.float64)
        histograms = np.split(counts, starts[1:])
        sums = np.split(offsets, starts[1:])
    position = {c: k for k, c in enumerate(binned)}
    no_bins = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    for c, j in enumerate(cols):
        at = position.get(c)
        histogram, offset = no_bins if at is None else (histograms[at], sums[at])
        found[names[j]] = FeatureProfile(
            n,
            0,
            float(ordered[c, 0]),
            float(ordered[c, -1]),
            float(mean[c]),
            float(m2[c]),
            histogram,
            offset,
        )
    return found


def _bins_of(bins: dict[str, FeatureBins] | None, name: str) -> FeatureBins | None:
    return None if bins is None else bins.get(name)


def coarse_groups(reference_histogram: IntArray, coarse: int) -> npt.NDArray[np.intp]:
    """For each fine bin, the coarse bin it belongs to.

    Coarse bins are runs of whole fine bins; a coarse bin closes at the first fine bin
    where the reference's cumulative share reaches ``j / coarse``, so each holds about
    ``1 / coarse`` of the reference (a value that many share, more).
    """
    total = int(reference_histogram.sum())
    cumulative = np.cumsum(reference_histogram) / total
    closes = np.unique(np.searchsorted(cumulative, np.arange(1, coarse) / coarse, "left"))
    return np.searchsorted(closes, np.arange(reference_histogram.size), "left")


class ProfileKey(NamedTuple):
    """Where a stored profile belongs."""

    model: str
    model_version: str
    window_seconds: int
    window_start: float
    segment: str
    """Empty: every event of the window."""
    feature: str


def coarse_edges(bins: FeatureBins, reference_histogram: IntArray, coarse: int) -> FloatArray:
    """The inner edges, as values, of the coarse bins of a numeric feature.

    Coarse bin ``j`` holds ``(edges[j-1], edges[j]]``, as the fine bins do.
    """
    groups = coarse_groups(reference_histogram, coarse)
    last_fine_of_group = np.flatnonzero(np.diff(groups))
    return bins.edges[last_fine_of_group]
