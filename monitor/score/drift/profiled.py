"""The drift tests computed from profiles: a reference profile and a window's in, a score out.

Stage: score. The same tests as on raw arrays (Evidently's names, defaults and
verdict rules), computed from :class:`~monitor.core.profile.FeatureProfile` histograms
on the reference's bins, so that a test costs what the bins cost, not what the
events cost. How far each can be from the exact value on the raw data:

- ``ks``: the statistic ``D_b`` is the largest gap between the two empirical CDFs at
  the fine bin edges, a lower bound of the exact ``D``; within a bin both CDFs are
  monotone, so ``D <= max over bins (F(b) - G(a), G(b) - F(a))`` for a bin ``(a, b]``,
  at most ``D_b`` plus the largest share of either sample in one bin (about 0.1% for
  the reference). ``error_bound`` is that upper bound minus ``D_b``. The p-value is
  Smirnov's asymptotic one at ``D_b`` (scipy's ``ks_2samp(method="asymp")``), so it is
  at least the exact-statistic p-value (never a false alarm the exact test would not
  raise on the same statistic). Up to 10,000 values in either sample scipy (and so
  Evidently) gives the exact p-value instead, which a profile cannot: there the scorer
  computes KS from the raw values.
- ``wasserstein``: profiles keep, per bin, the sum of the values' offsets from the
  bin's edge, which gives the exact integral of each empirical CDF over every bin; the
  sum of ``|∫ (F - G)|`` over the bins is a lower bound of the distance, exact wherever
  ``F - G`` keeps one sign within a bin. Where it may change sign
  (``F(a) - G(b-) < 0 < F(b-) - G(a)`` for a bin ``(a, b]`` of width ``w``; ``F(b-)``
  is ``F(a)`` when all of the bin's values sit on ``b``), the error is ``2 min(P, N)``
  for its positive and negative parts, each at most the least of three integrals known
  exactly (``P <= w (F(b-) - G(a))``, ``∫ F - w min(F(a), G(a))`` and
  ``w max(F(b-), G(b-)) - ∫ G``); ``error_bound`` is the sum over bins of that error,
  divided by the reference's standard deviation, as the distance is.
- ``chisquare`` and ``z``: exact (equal to scipy on the raw values) when the reference
  has at most :data:`~monitor.core.profile.MAX_CATEGORIES` values and every window
  value is one of them or new (a new value gives chi-squared infinity, p = 0, as in
  Evidently); with more, the "other" bin lumps categories and the result says it is
  not exact (``error_bound`` 1), as do Jensen-Shannon and Hellinger where the window
  has values in that bin, and PSI wherever it has (Evidently fills each new
  category's empty reference share apart). A numeric feature with few values is
  counted by value; a window value that is none of the reference's is counted with a
  neighbour, so there the result says it is not exact (``error_bound`` 1) and the
  scorer counts the raw values.
- ``psi``, ``jensenshannon``, ``hellinger``: exact for their definition here, which
  bins numbers into coarse reference-quantile bins (:func:`coarse_groups`) rather than
  Evidently's equal-width bins over both samples (which depend on each window and so
  cannot be fixed ahead); categories, and numbers with at most five distinct values
  (:func:`counted_by_value`, categories to Evidently too), are counted by value as in
  Evidently, with the same caveat as chi-squared for window values the reference
  never had.

No verdict is taken on a bound: :func:`exact_range` gives the range in which the exact
value lies, and :func:`~monitor.score.drift.registry.needs_raw_values` says when that
range is wider than :data:`EXACT_TOLERANCE` or holds both verdicts; the scorer then
computes the test from the raw values (:mod:`monitor.score.exact`), by the raw-value
form of the same :class:`ProfileTest`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple, TypeAlias

import numpy as np

from monitor.core.profile import FeatureProfile, ReferenceFeature, coarse_groups
from monitor.score.drift.base import (
    FEW_NUMERIC_VALUES,
    Comparison,
    DriftScore,
    FeatureKind,
    FittedDriftTest,
    FloatArray,
    SampleTest,
    StatisticKind,
    Values,
    judged,
)
from monitor.score.drift.distance import (
    MIN_WASSERSTEIN_SCALE,
    BinnedDistance,
    Hellinger,
    JensenShannon,
    Psi,
    Wasserstein,
)
from monitor.score.drift.pvalue import (
    ChiSquare,
    CountsTest,
    KolmogorovSmirnov,
    TwoProportionZ,
    chi_square,
    ks_asymptotic_p,
    two_proportion_z,
)

__all__ = [
    "EXACT_TOLERANCE",
    "TESTS",
    "ProfileTest",
    "RawTest",
    "choice_may_change",
    "counted_by_value",
    "exact_range",
    "ks_asymptotic_p",
    "reference_values",
]

DEFAULT_COARSE_BINS = 10

EXACT_TOLERANCE = 1e-3
"""Widest range of exact values a profile-based result may stand for: wider than this
(or straddling the threshold), the test is computed from the raw values instead."""

_EXACT_KS_MAX_N = 10_000
"""scipy's ``ks_2samp`` (Evidently's KS) computes exact p-values up to this sample size;
the asymptotic p-value a profile gives is then another number."""


def _counts(reference: ReferenceFeature, current: FeatureProfile) -> tuple[FloatArray, FloatArray]:
    ref = reference.profile.histogram.astype(np.float64)
    cur = current.histogram.astype(np.float64)
    if cur.size != ref.size:
        raise ValueError("the window's histogram is not on the reference's bins")
    if current.count == 0 or cur.sum() == 0:
        raise ValueError("the window has no values for this feature")
    return ref, cur


class _Statistic(NamedTuple):
    """What a profile test computes, before its threshold is applied."""

    value: float
    p_value: float | None
    reference_count: int
    current_count: int
    error_bound: float = 0.0


class _Pair(NamedTuple):
    """A reference and a window, as a profile test reads them."""

    reference: ReferenceFeature
    current: FeatureProfile
    ref: FloatArray
    """The reference's histogram, as floats."""
    cur: FloatArray
    """The window's histogram on the same bins, as floats."""
    coarse_bins: int


_Compute: TypeAlias = Callable[[_Pair], _Statistic]


RawTest: TypeAlias = SampleTest | CountsTest | BinnedDistance
"""A drift test on raw values: the exact computation a profile-based result stands for."""


@dataclass(frozen=True, slots=True)
class ProfileTest:
    """One registered drift test, on either input: ``score`` computes it from profiles
    (what the scorer runs on every window), ``fit`` then ``score`` of the fitted object
    from raw values (what :mod:`monitor.score.exact` runs where a profile cannot settle
    the result, and what tests check against scipy and Evidently). Its name, default
    threshold, kinds and rule for "drifted" are those of the raw-value test, so the two
    forms cannot disagree on them."""

    raw: RawTest
    compute: _Compute

    @property
    def name(self) -> str:
        """The registry name (Evidently's name for the same test)."""
        return self.raw.name

    @property
    def default_threshold(self) -> float:
        """The threshold used when none is given (Evidently's default)."""
        return self.raw.default_threshold

    @property
    def statistic(self) -> StatisticKind:
        """Whether the test yields a p-value or a distance."""
        return self.raw.statistic

    @property
    def kinds(self) -> frozenset[FeatureKind]:
        """The kinds a feature is fitted as (a numeric feature counted by value is
        categorical: :func:`~monitor.score.drift.registry.choose_test`)."""
        return self.raw.kinds

    @property
    def drifts_when(self) -> Comparison:
        """The rule for "drifted", applied as ``rule(drift_score, threshold)``."""
        return self.raw.drifts_when

    def fit(
        self, reference: Values, kind: FeatureKind, threshold: float | None = None
    ) -> FittedDriftTest:
        """The test on raw values (:meth:`~monitor.score.drift.base.DriftTest.fit`).

        Raises:
            ValueError: See :meth:`~monitor.score.drift.base.DriftTest.fit`.
        """
        return self.raw.fit(reference, kind, threshold)

    def score(
        self,
        reference: ReferenceFeature,
        current: FeatureProfile,
        threshold: float,
        coarse_bins: int = DEFAULT_COARSE_BINS,
    ) -> DriftScore:
        """The test on profiles: a window's profile against the reference's.

        Raises:
            ValueError: The window has no values, or its histogram is on other bins.
        """
        ref, cur = _counts(reference, current)
        value, p, n_ref, n_cur, bound = self.compute(
            _Pair(reference, current, ref, cur, coarse_bins)
        )
        return judged(self, value, p, threshold, (n_ref, n_cur), bound)


def _ks(pair: _Pair) -> _Statistic:
    n1, n2 = int(pair.ref.sum()), int(pair.cur.sum())
    f = np.cumsum(pair.ref) / n1
    g = np.cumsum(pair.cur) / n2
    d_low = float(np.max(np.abs(f - g)))
    f_before = np.concatenate(([0.0], f[:-1]))
    g_before = np.concatenate(([0.0], g[:-1]))
    d_high = float(max(np.max(f - g_before), np.max(g - f_before)))
    p = ks_asymptotic_p(d_low, n1, n2)
    return _Statistic(d_low, p, n1, n2, max(0.0, d_high - d_low))


def _chi_square(pair: _Pair) -> _Statistic:
    ref, cur = pair.ref, pair.cur
    seen = (ref > 0) | (cur > 0)
    statistic, p = chi_square(ref[seen], cur[seen])
    inexact = max(_unknown_values(pair), _lumped(pair, window_too=False))
    return _Statistic(statistic, p, int(ref.sum()), int(cur.sum()), inexact)


def _z(pair: _Pair) -> _Statistic:
    # The smallest value either sample holds: numeric bins are in value order, and
    # categories are kept sorted by spelling with the "other" bin last.
    ref, cur = pair.ref, pair.cur
    first = int(np.flatnonzero((ref > 0) | (cur > 0))[0])
    z, p = two_proportion_z(ref, cur, first)
    return _Statistic(z, p, int(ref.sum()), int(cur.sum()), _unknown_values(pair))


def _lumped(pair: _Pair, window_too: bool) -> float:
    """1 where a categorical feature's "other" bin lumps reference categories together
    (the reference had more than :data:`~monitor.core.profile.MAX_CATEGORIES`), so
    that the counts are not the categories' (for the distances, whose terms add up
    over categories only one sample holds, only where the window has some too)."""
    if pair.reference.kind == "numeric" or pair.ref[-1] == 0:
        return 0.0
    return 1.0 if not window_too or pair.cur[-1] > 0 else 0.0


def _unknown_values(pair: _Pair) -> float:
    """1 where a numeric feature counted by value has window values that are none of the
    reference's (its bins then count them with a neighbouring value, so the counts are
    not the values'), else 0."""
    return 1.0 if _new_numbers(pair.reference, pair.current) else 0.0


def _new_numbers(reference: ReferenceFeature, current: FeatureProfile) -> bool:
    """Whether a window holds numbers that a reference whose bins are its values never
    had.

    A bin ``(a, b]`` holds only ``b`` exactly when its values' offsets from ``a`` sum
    to ``count * (b - a)``; the first bin only its edge when they sum to 0; the last,
    above the reference's maximum, holds only unknown values.
    """
    bins, offsets = reference.bins, current.offsets
    cur = current.histogram.astype(np.float64)
    if reference.kind != "numeric" or not bins.discrete or offsets.size != cur.size:
        return False
    width = np.diff(bins.edges)
    expected = cur[1:-1] * width
    scale = np.maximum(np.abs(expected), np.abs(bins.edges[1:]) * cur[1:-1])
    inside = np.abs(offsets[1:-1] - expected) > 1e-9 * np.maximum(scale, 1e-300)
    below = abs(float(offsets[0])) > 1e-9 * max(abs(float(bins.edges[0])) * cur[0], 1e-300)
    return bool(inside.any()) or below or bool(cur[-1] > 0)


def choice_may_change(reference: ReferenceFeature, current: FeatureProfile) -> bool:
    """Whether Evidently's choice of test could differ from the one made on the
    reference alone: it counts distinct values over both samples, and the window holds
    values the reference lacks where that count decides (a numeric feature with at
    most five values; a categorical one with at most two)."""
    if reference.kind == "numeric":
        return counted_by_value(reference) and _new_numbers(reference, current)
    ref, cur = reference.profile.histogram, current.histogram
    return (
        reference.distinct <= 2
        and cur.size == ref.size
        and bool(cur[-1] > 0)
        and bool(ref[-1] == 0)
    )


def binned_shares(
    reference: ReferenceFeature, current: FeatureProfile, coarse_bins: int
) -> tuple[FloatArray, FloatArray]:
    """Reference and window shares on the bins PSI, JS and Hellinger compare.

    Numeric features: the coarse reference-quantile bins (by value when the reference
    has few values). Categories: each counted value and "other". Bins empty in both
    samples are left out, as Evidently's union of observed values leaves them out.
    """
    return _coarse_shares(reference, *_counts(reference, current), coarse_bins)


def counted_by_value(reference: ReferenceFeature) -> bool:
    """Whether a feature's values are compared one by one as categories: a numeric
    feature with at most :data:`~monitor.score.drift.base.FEW_NUMERIC_VALUES`
    distinct values, whose bins are its values (as Evidently treats it)."""
    return (
        reference.kind == "numeric"
        and reference.bins.discrete
        and reference.distinct <= FEW_NUMERIC_VALUES
    )


def _coarse_shares(
    reference: ReferenceFeature, ref: FloatArray, cur: FloatArray, coarse_bins: int
) -> tuple[FloatArray, FloatArray]:
    if reference.kind == "numeric" and not counted_by_value(reference):
        groups = coarse_groups(reference.profile.histogram, coarse_bins)
        size = int(groups[-1]) + 1
        ref = np.bincount(groups, weights=ref, minlength=size).astype(np.float64)
        cur = np.bincount(groups, weights=cur, minlength=size).astype(np.float64)
    seen = (ref > 0) | (cur > 0)
    return ref[seen] / ref.sum(), cur[seen] / cur.sum()


def _binned(test: BinnedDistance) -> _Compute:
    """PSI, Jensen-Shannon or Hellinger on :func:`binned_shares`."""

    def compute(pair: _Pair) -> _Statistic:
        r, c = _coarse_shares(pair.reference, pair.ref, pair.cur, pair.coarse_bins)
        count = pair.reference.profile.count
        unknown = _unknown_values(pair) if counted_by_value(pair.reference) else 0.0
        inexact = max(unknown, _lumped(pair, window_too=True))
        if test.name == "psi" and pair.reference.kind != "numeric" and pair.cur[-1] > 0:
            # New categories: Evidently fills each one's empty reference share apart,
            # and PSI's terms do not add up over them as the others' do.
            inexact = 1.0
        return _Statistic(test.distance(r, c), None, count, pair.current.count, inexact)

    return compute


def _wasserstein(pair: _Pair) -> _Statistic:
    rp, current = pair.reference.profile, pair.current
    edges = pair.reference.bins.edges
    # Bin i spans [a_i, b_i]: the first from the lowest value of either sample to the
    # first edge, the last from the last edge to the highest value.
    a = np.concatenate(([min(rp.minimum, current.minimum)], edges))
    b = np.concatenate((edges, [max(rp.maximum, current.maximum)]))
    width = b - a
    f_int, f_a, f_top = _cdf_integrals(pair.ref, rp.offsets, width)
    g_int, g_a, g_top = _cdf_integrals(pair.cur, current.offsets, width)
    gap = f_int - g_int
    # Where F - G keeps one sign over a bin, |integral| is exact; where it may cross
    # zero, ∫|F - G| = |gap| + 2 min(P, N) with P, N its positive and negative parts.
    # Both CDFs rise over the bin, so F - G <= F(b-) - G(a), F - G <= F - min(F(a), G(a))
    # (as G >= G(a)) and F - G <= max(F(b-), G(b-)) - G: P is at most the least of the
    # three integrals, each known exactly; N likewise with F and G swapped.
    low = np.minimum(f_a, g_a)
    high = np.maximum(f_top, g_top)
    positive = np.minimum(
        width * np.maximum(0.0, f_top - g_a),
        np.minimum(f_int - width * low, width * high - g_int),
    )
    negative = np.minimum(
        width * np.maximum(0.0, g_top - f_a),
        np.minimum(g_int - width * low, width * high - f_int),
    )
    slack = np.where(
        gap >= 0, np.minimum(negative, positive - gap), np.minimum(positive, negative + gap)
    )
    scale = max(math.sqrt(rp.variance), MIN_WASSERSTEIN_SCALE)
    # The exact distance lies in [lower, lower + bound]. In practice it sits near the
    # lower end (the CDFs of a bin seldom cross), so that is the value reported.
    lower = float(np.abs(gap).sum()) / scale
    bound = float(2 * np.maximum(slack, 0.0).sum()) / scale
    return _Statistic(lower, None, rp.count, current.count, bound)


def _cdf_integrals(
    counts: FloatArray, offsets: FloatArray, width: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per bin: the exact integral of the empirical CDF, its value at the bin's lower
    end, and its highest value inside the bin (below the upper edge).

    With ``n`` values, ``c`` of them in bin ``(a, b]`` and ``O`` the sum of their
    offsets from ``a``: ``∫ F = w F(a) + (c w - O) / n``. The first bin's values lie at
    or below its upper edge, its anchor, and ``F`` is 0 below them: ``∫ F = -O / n``.
    """
    if offsets.size != counts.size:
        raise ValueError("the profile has no per-bin sums (an older profile)")
    n = counts.sum()
    at_b = np.cumsum(counts) / n
    at_a = np.concatenate(([0.0], at_b[:-1]))
    integral = width * at_a + (counts * width - offsets) / n
    integral[0] = -offsets[0] / n
    # Where every value of a bin sits on its upper edge (counted values: a discrete
    # feature), F stays at F(a) inside the bin: its highest value there is F(a).
    on_edge = np.abs(offsets - counts * width) <= 1e-12 * np.maximum(counts * np.abs(width), 1)
    on_edge[0] = abs(offsets[0]) <= 1e-12 * max(float(counts[0]) * abs(float(width[0])), 1.0)
    return integral, at_a, np.where(on_edge, at_a, at_b)


TESTS: Final[tuple[ProfileTest, ...]] = (
    ProfileTest(KolmogorovSmirnov, _ks),
    ProfileTest(ChiSquare, _chi_square),
    ProfileTest(TwoProportionZ, _z),
    *(ProfileTest(binned, _binned(binned)) for binned in (Psi, JensenShannon, Hellinger)),
    ProfileTest(Wasserstein, _wasserstein),
)
"""Every drift test, each with its computation on profiles; registered by name in
:data:`~monitor.score.drift.registry.DRIFT_TESTS`."""


def exact_range(score: DriftScore) -> tuple[float, float]:
    """The range in which the exact value of ``score.drift_score`` lies: the value the
    test of the same name in :data:`~monitor.score.drift.registry.DRIFT_TESTS` gives on
    the raw values.

    - ``wasserstein``: the profile's distance is a lower bound (``|∫ (F - G)|`` per bin
      is at most ``∫ |F - G|``): ``[value, value + error_bound]``.
    - ``ks``: the statistic lies in ``[D_b, D_b + error_bound]``; above 10,000 values in
      either sample the p-value is the asymptotic one at the exact statistic, which
      falls as the statistic grows. Up to 10,000, scipy's p-value is the exact one, which
      a profile does not give: the range is ``[0, 1]``.
    - ``chisquare`` and ``z`` on a numeric feature counted by value: exact, unless the
      window holds values the reference does not (``error_bound`` 1): ``[0, 1]``; the
      same for ``psi``, ``jensenshannon`` and ``hellinger`` (then ``[0, inf)``).
    - every other test: exact on its profile definition (a single point).
    """
    if score.test == "wasserstein":
        return score.statistic, score.statistic + score.error_bound
    if score.test in ("chisquare", "z") and score.error_bound > 0:
        return 0.0, 1.0  # window values the reference's bins do not count apart
    if score.test in ("psi", "jensenshannon", "hellinger") and score.error_bound > 0:
        return 0.0, math.inf
    if score.test == "ks" and score.p_value is not None:
        n1, n2 = score.reference_count, score.current_count
        if max(n1, n2) <= _EXACT_KS_MAX_N:
            return 0.0, 1.0
        if score.error_bound == 0:
            return score.p_value, score.p_value
        highest = min(1.0, score.statistic + score.error_bound)
        return ks_asymptotic_p(highest, n1, n2), score.p_value
    return score.drift_score, score.drift_score


def reference_values(reference: ReferenceFeature) -> FloatArray | None:
    """A numeric reference's values, rebuilt from its profile where the profile holds
    them all (the bins are the reference's distinct values, each counted), else None.

    Bin 0 counts the values equal to the lowest edge, bin ``i`` those equal to edge
    ``i`` and the last bin those above the highest edge (none, for the reference).
    """
    bins, histogram = reference.bins, reference.profile.histogram
    if reference.kind != "numeric" or not bins.discrete or histogram.size != bins.size:
        return None
    if histogram[-1] != 0:
        return None
    return np.repeat(bins.edges, histogram[:-1]).astype(np.float64)
