"""The drift tests computed from profiles: a reference profile and a window's in, a score out.

Stage: score. The same tests as on raw arrays (Evidently's names, defaults and
verdict rules), computed from :class:`~monitor.score.profile.FeatureProfile` histograms
on the reference's bins, so that a test costs what the bins cost, not what the
events cost. How far each can be from the exact value on the raw data:

- ``ks``: the statistic ``D_b`` is the largest gap between the two empirical CDFs at
  the fine bin edges, a lower bound of the exact ``D``; within a bin both CDFs are
  monotone, so ``D <= max over bins (F(b) - G(a), G(b) - F(a))`` for a bin ``(a, b]``,
  at most ``D_b`` plus the largest share of either sample in one bin (about 0.1% for
  the reference). ``error_bound`` is that upper bound minus ``D_b``. The p-value is
  Smirnov's asymptotic one at ``D_b`` (scipy's ``ks_2samp(method="asymp")``), so it is
  at least the exact-statistic p-value (never a false alarm the exact test would not
  raise on the same statistic).
- ``wasserstein``: profiles keep, per bin, the sum of the values' offsets from the
  bin's edge, which gives the exact integral of each empirical CDF over every bin; the
  distance is the sum of ``|∫ (F - G)|`` over the bins, exact wherever ``F - G`` keeps
  one sign within a bin. Where it may change sign (``F(a) - G(b-) < 0 < F(b-) - G(a)``
  for a bin ``(a, b]`` of width ``w``; ``F(b-)`` is ``F(a)`` when all of the bin's
  values sit on ``b``), the error is ``2 min(P, N)`` for its positive and negative
  parts, at most ``w (F(b-) - G(a))`` and ``w (G(b-) - F(a))``;
  ``error_bound`` is the sum over bins, divided by the reference's standard deviation.
- ``chisquare`` and ``z``: exact (equal to scipy on the raw values) when the reference
  has at most :data:`~monitor.score.profile.MAX_CATEGORIES` values and every window
  value is one of them or new (a new value gives chi-squared infinity, p = 0, as in
  Evidently). A numeric feature with few values is counted by value.
- ``psi``, ``jensenshannon``, ``hellinger``: exact for their definition here, which
  bins numbers into coarse reference-quantile bins (:func:`coarse_groups`) rather than
  Evidently's equal-width bins over both samples (which depend on each window and so
  cannot be fixed ahead); categories are counted by value as in Evidently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Final, Literal, Protocol

import numpy as np
from scipy import stats

from monitor.errors import ConfigError
from monitor.score.drift.base import DriftScore, FeatureKind, FloatArray, StatisticKind
from monitor.score.drift.distance import MIN_WASSERSTEIN_SCALE, hellinger, jensen_shannon
from monitor.score.profile import FeatureProfile, ReferenceFeature, coarse_groups
from monitor.score.psi import psi

__all__ = [
    "PROFILE_TESTS",
    "ProfileDriftTest",
    "get_profile_test",
]

DEFAULT_COARSE_BINS = 10


class ProfileDriftTest(Protocol):
    """A univariate drift test on profiles."""

    @property
    def name(self) -> str:
        """The registry name (Evidently's)."""
        ...

    @property
    def default_threshold(self) -> float:
        """Evidently's default threshold."""
        ...

    @property
    def statistic(self) -> StatisticKind:
        """Whether the test yields a p-value or a distance."""
        ...

    @property
    def kinds(self) -> frozenset[FeatureKind]:
        """The feature kinds the test applies to."""
        ...

    def score(
        self,
        reference: ReferenceFeature,
        current: FeatureProfile,
        threshold: float,
        coarse_bins: int = DEFAULT_COARSE_BINS,
    ) -> DriftScore:
        """Test a window's profile against the reference's.

        Raises:
            ValueError: The window has no values, or its histogram is on other bins.
        """
        ...


def _counts(reference: ReferenceFeature, current: FeatureProfile) -> tuple[FloatArray, FloatArray]:
    ref = reference.profile.histogram.astype(np.float64)
    cur = current.histogram.astype(np.float64)
    if cur.size != ref.size:
        raise ValueError("the window's histogram is not on the reference's bins")
    if current.count == 0 or cur.sum() == 0:
        raise ValueError("the window has no values for this feature")
    return ref, cur


_ALL: frozenset[FeatureKind] = frozenset({"numeric", "categorical", "boolean"})


@dataclass(frozen=True, slots=True)
class ProfileKolmogorovSmirnov:
    """Two-sample KS from the fine histograms (numeric features)."""

    name: ClassVar[str] = "ks"
    default_threshold: ClassVar[float] = 0.05
    statistic: ClassVar[StatisticKind] = "p_value"
    kinds: ClassVar[frozenset[FeatureKind]] = frozenset({"numeric"})

    def score(
        self,
        reference: ReferenceFeature,
        current: FeatureProfile,
        threshold: float,
        coarse_bins: int = DEFAULT_COARSE_BINS,
    ) -> DriftScore:
        """See :class:`ProfileDriftTest`."""
        ref, cur = _counts(reference, current)
        n1, n2 = ref.sum(), cur.sum()
        f = np.cumsum(ref) / n1
        g = np.cumsum(cur) / n2
        d_low = float(np.max(np.abs(f - g)))
        f_before = np.concatenate(([0.0], f[:-1]))
        g_before = np.concatenate(([0.0], g[:-1]))
        d_high = float(max(np.max(f - g_before), np.max(g - f_before)))
        p = ks_asymptotic_p(d_low, int(n1), int(n2))
        return DriftScore(
            self.name,
            d_low,
            p,
            threshold,
            p <= threshold,
            int(n1),
            int(n2),
            error_bound=max(0.0, d_high - d_low),
        )


def ks_asymptotic_p(d: float, n1: int, n2: int) -> float:
    """scipy's ``ks_2samp(method="asymp")`` two-sided p-value for statistic ``d``."""
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))


@dataclass(frozen=True, slots=True)
class ProfileChiSquare:
    """Pearson's chi-squared of the window's counts against the reference's frequencies."""

    name: ClassVar[str] = "chisquare"
    default_threshold: ClassVar[float] = 0.05
    statistic: ClassVar[StatisticKind] = "p_value"
    kinds: ClassVar[frozenset[FeatureKind]] = _ALL

    def score(
        self,
        reference: ReferenceFeature,
        current: FeatureProfile,
        threshold: float,
        coarse_bins: int = DEFAULT_COARSE_BINS,
    ) -> DriftScore:
        """See :class:`ProfileDriftTest`."""
        ref, cur = _counts(reference, current)
        seen = (ref > 0) | (cur > 0)
        ref, cur = ref[seen], cur[seen]
        n_ref, n_cur = ref.sum(), cur.sum()
        expected = ref * (n_cur / n_ref)
        if (expected == 0).any():
            statistic, p = math.inf, 0.0
        else:
            statistic = float(np.sum((cur - expected) ** 2 / expected))
            p = float(stats.chi2.sf(statistic, ref.size - 1)) if ref.size > 1 else 1.0
        return DriftScore(self.name, statistic, p, threshold, p < threshold, int(n_ref), int(n_cur))


@dataclass(frozen=True, slots=True)
class ProfileTwoProportionZ:
    """Two-proportion Z test on the share of values other than the smallest one."""

    name: ClassVar[str] = "z"
    default_threshold: ClassVar[float] = 0.05
    statistic: ClassVar[StatisticKind] = "p_value"
    kinds: ClassVar[frozenset[FeatureKind]] = _ALL

    def score(
        self,
        reference: ReferenceFeature,
        current: FeatureProfile,
        threshold: float,
        coarse_bins: int = DEFAULT_COARSE_BINS,
    ) -> DriftScore:
        """See :class:`ProfileDriftTest`."""
        ref, cur = _counts(reference, current)
        n1, n2 = float(ref.sum()), float(cur.sum())
        seen = np.flatnonzero((ref > 0) | (cur > 0))
        # The smallest value either sample holds: numeric bins are in value order, and
        # categories are kept sorted by spelling with the "other" bin last.
        first = int(seen[0])
        if np.count_nonzero(ref) == 1 and np.array_equal(ref > 0, cur > 0):
            z, p = 0.0, 1.0
        else:
            p1 = (n1 - ref[first]) / n1
            p2 = (n2 - cur[first]) / n2
            pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
            z = float((p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2)))
            p = float(2 * stats.norm.sf(abs(z)))
        return DriftScore(self.name, z, p, threshold, p < threshold, int(n1), int(n2))


BinnedName = Literal["psi", "jensenshannon", "hellinger"]


def binned_shares(
    reference: ReferenceFeature, current: FeatureProfile, coarse_bins: int
) -> tuple[FloatArray, FloatArray]:
    """Reference and window shares on the bins PSI, JS and Hellinger compare.

    Numeric features: the coarse reference-quantile bins (by value when the reference
    has few values). Categories: each counted value and "other". Bins empty in both
    samples are left out, as Evidently's union of observed values leaves them out.
    """
    ref, cur = _counts(reference, current)
    if reference.kind == "numeric":
        groups = coarse_groups(reference.profile.histogram, coarse_bins)
        size = int(groups[-1]) + 1
        ref = np.bincount(groups, weights=ref, minlength=size).astype(np.float64)
        cur = np.bincount(groups, weights=cur, minlength=size).astype(np.float64)
    seen = (ref > 0) | (cur > 0)
    return ref[seen] / ref.sum(), cur[seen] / cur.sum()


@dataclass(frozen=True, slots=True)
class ProfileBinned:
    """PSI, Jensen-Shannon or Hellinger on :func:`binned_shares`."""

    name: BinnedName
    default_threshold: ClassVar[float] = 0.1
    statistic: ClassVar[StatisticKind] = "distance"
    kinds: ClassVar[frozenset[FeatureKind]] = _ALL

    def score(
        self,
        reference: ReferenceFeature,
        current: FeatureProfile,
        threshold: float,
        coarse_bins: int = DEFAULT_COARSE_BINS,
    ) -> DriftScore:
        """See :class:`ProfileDriftTest`."""
        r, c = binned_shares(reference, current, coarse_bins)
        if self.name == "psi":
            value = psi(r, c)
        elif self.name == "jensenshannon":
            value = jensen_shannon(r, c)
        else:
            value = hellinger(r, c)
        return DriftScore(
            self.name,
            value,
            None,
            threshold,
            value >= threshold,
            reference.profile.count,
            current.count,
        )


@dataclass(frozen=True, slots=True)
class ProfileWasserstein:
    """First Wasserstein distance over the reference's standard deviation."""

    name: ClassVar[str] = "wasserstein"
    default_threshold: ClassVar[float] = 0.1
    statistic: ClassVar[StatisticKind] = "distance"
    kinds: ClassVar[frozenset[FeatureKind]] = frozenset({"numeric"})

    def score(
        self,
        reference: ReferenceFeature,
        current: FeatureProfile,
        threshold: float,
        coarse_bins: int = DEFAULT_COARSE_BINS,
    ) -> DriftScore:
        """See :class:`ProfileDriftTest`."""
        ref, cur = _counts(reference, current)
        rp = reference.profile
        edges = reference.bins.edges
        # Bin i spans [a_i, b_i]: the first from the lowest value of either sample to the
        # first edge, the last from the last edge to the highest value.
        a = np.concatenate(([min(rp.minimum, current.minimum)], edges))
        b = np.concatenate((edges, [max(rp.maximum, current.maximum)]))
        width = b - a
        f_int, f_a, f_top = _cdf_integrals(ref, rp.offsets, width)
        g_int, g_a, g_top = _cdf_integrals(cur, current.offsets, width)
        gap = f_int - g_int
        # Where F - G keeps one sign over a bin, |integral| is exact; where it may cross
        # zero, ∫|F - G| = |gap| + 2 min(P, N) with P, N its positive and negative parts.
        positive = width * np.maximum(0.0, f_top - g_a)
        negative = width * np.maximum(0.0, g_top - f_a)
        slack = np.where(
            gap >= 0, np.minimum(negative, positive - gap), np.minimum(positive, negative + gap)
        )
        scale = max(math.sqrt(rp.variance), MIN_WASSERSTEIN_SCALE)
        value = float(np.abs(gap).sum()) / scale
        bound = float(2 * np.maximum(slack, 0.0).sum()) / scale
        return DriftScore(
            self.name,
            value,
            None,
            threshold,
            value >= threshold,
            rp.count,
            current.count,
            error_bound=bound,
        )


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


PROFILE_TESTS: Final[dict[str, ProfileDriftTest]] = {
    t.name: t
    for t in (
        ProfileKolmogorovSmirnov(),
        ProfileChiSquare(),
        ProfileTwoProportionZ(),
        ProfileBinned("psi"),
        ProfileBinned("jensenshannon"),
        ProfileBinned("hellinger"),
        ProfileWasserstein(),
    )
}
"""Every profile-based drift test, by the same names as :data:`DRIFT_TESTS`."""


def get_profile_test(name: str) -> ProfileDriftTest:
    """The profile-based test registered under ``name``.

    Raises:
        ConfigError: No test has that name; the message lists the valid ones.
    """
    try:
        return PROFILE_TESTS[name]
    except KeyError:
        valid = ", ".join(sorted(PROFILE_TESTS))
        raise ConfigError(f"unknown drift test {name!r}; valid tests: {valid}") from None
