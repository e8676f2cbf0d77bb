"""Multivariate drift: a change in the joint distribution that no single feature shows.

Stage: score. In: numeric features' values by row, for the reference (once, at fit)
and for a window. Out: a frozen :class:`MultivariateDrift` per window.

Two detectors, each with the two phases ``fit(reference)`` then ``score(window)``:

- :class:`DomainClassifier`: a classifier learns to tell reference rows from window
  rows; its cross-validated ROC AUC is 0.5 when the two are alike. The model is a
  logistic regression on the standardised features, their squares and their pairwise
  products (a change in correlation is a quadratic boundary), so it is deterministic and
  fast (scikit-learn's histogram gradient boosting took 15 to 30 s a window on the shared
  2-core machine, against 0.3 s, and is left out). Drift when the AUC exceeds ``min_auc``
  (0.55, an effect size) **and** its p-value is below ``alpha``: the AUC is the
  Mann-Whitney U of the out-of-fold scores, so its p-value is that of the U test, i.e. of
  permuting the reference/window labels over those scores.
- :class:`PcaReconstruction`: as NannyML's data-reconstruction drift, PCA on the
  standardised reference keeps the components that explain ``variance`` (65%) of it,
  but never all of them (then every row would be rebuilt exactly); a
  window's statistic is its rows' mean squared reconstruction error. The threshold is
  learned from the reference: rows held out of the PCA fit give the error of unchanged
  data, and the threshold is their mean plus the ``1 - alpha`` quantile of the bootstrap
  distribution of ``window mean - reference mean`` under no change (both resampled from
  the held-out errors, at the window's and the held-out sizes, so that the uncertainty
  of the reference's own mean counts too), but at least ``1 + min_increase`` times
  their mean.

Bounds: at most ``max_features`` features (the first ones given), at most
``reference_rows`` reference rows kept (a uniform sample), at most ``window_rows`` rows of
a window scored (a uniform sample); sampling uses ``seed``, so a window's result is
reproducible. The bounded samples also keep a large window from making a negligible
change significant. Missing values are imputed with the reference's median; a feature
constant in the reference is left out. Categorical features are not used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from collectors.errors import MissingDependencyError
from monitor.score.drift.base import FloatArray, Values

__all__ = [
    "DomainClassifier",
    "FittedDomainClassifier",
    "FittedPcaReconstruction",
    "MultivariateDrift",
    "PcaReconstruction",
]

DetectorName = Literal["domain_classifier", "pca_reconstruction"]

_MIN_ROWS: Final = 10


class MultivariateDrift(BaseModel):
    """A multivariate drift detector's verdict on one window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: DetectorName
    statistic: float
    """Domain classifier: the cross-validated ROC AUC. PCA: the mean reconstruction error."""
    threshold: float
    """Drift when the statistic exceeds it (and, for the classifier, ``p_value < alpha``)."""
    p_value: float
    drifted: bool
    reference_rows: int
    """Reference rows used."""
    current_rows: int
    """Window rows used (after sampling)."""
    features: tuple[str, ...]
    features_cut: tuple[str, ...]
    """Features left out: beyond ``max_features``, or constant in the reference."""

    def as_json(self) -> dict[str, Any]:
        """The stored form (a JSON document)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MultivariateDrift:
        """Rebuild from :meth:`as_json`."""
        return cls.model_validate(data)


@dataclass(frozen=True, slots=True)
class _Columns:
    """Numeric features chosen at fit, with the reference's medians to impute."""

    features: tuple[str, ...]
    features_cut: tuple[str, ...]
    medians: FloatArray

    def matrix(self, data: Mapping[str, Values]) -> FloatArray:
        missing = [n for n in self.features if n not in data]
        if missing:
            raise ValueError(f"the window lacks features {missing}")
        return _impute(_stack(data, self.features), self.medians)


def _stack(data: Mapping[str, Values], names: tuple[str, ...]) -> FloatArray:
    columns = [np.asarray(data[n], dtype=np.float64) for n in names]
    if len({c.shape for c in columns}) > 1 or columns[0].ndim != 1:
        raise ValueError("every feature needs one value per row")
    return np.column_stack(columns)


def _impute(matrix: FloatArray, medians: FloatArray) -> FloatArray:
    missing = ~np.isfinite(matrix)
    if missing.any():
        matrix = np.where(missing, medians, matrix)
    return matrix


def _choose(reference: Mapping[str, Values], max_features: int) -> tuple[_Columns, FloatArray]:
    names = list(reference)
    varying: list[str] = []
    medians: list[float] = []
    for name in names:
        col = np.asarray(reference[name], dtype=np.float64)
        finite = col[np.isfinite(col)]
        if len(varying) < max_features and finite.size and np.ptp(finite) > 0:
            varying.append(name)
            medians.append(float(np.median(finite)))
    if not varying:
        raise ValueError("multivariate drift needs a numeric feature that varies in the reference")
    columns = _Columns(
        tuple(varying), tuple(n for n in names if n not in varying), np.array(medians)
    )
    matrix = columns.matrix(reference)
    if matrix.shape[0] < _MIN_ROWS:
        raise ValueError(f"multivariate drift needs at least {_MIN_ROWS} reference rows")
    return columns, matrix


def _sample(matrix: FloatArray, rows: int, rng: np.random.Generator) -> FloatArray:
    if matrix.shape[0] <= rows:
        return matrix
    return matrix[np.sort(rng.choice(matrix.shape[0], rows, replace=False))]


def _check(**limits: float) -> None:
    for name, value in limits.items():
        if not value >= 1:
            raise ValueError(f"{name} must be at least 1, got {value!r}")


# ------------------------------------------------------------------ domain classifier


@dataclass(frozen=True, slots=True)
class DomainClassifier:
    """Settings of the domain-classifier detector."""

    min_auc: float = 0.55
    alpha: float = 0.01
    folds: int = 5
    max_features: int = 20
    reference_rows: int = 1_000
    window_rows: int = 1_000
    seed: int = 0

    def fit(self, reference: Mapping[str, Values]) -> FittedDomainClassifier:
        """Keep a bounded sample of the reference's rows.

        Args:
            reference: Numeric feature name to its reference values, most important first.

        Raises:
            ValueError: No usable feature, fewer than 10 rows, or invalid settings.
        """
        _check(
            max_features=self.max_features,
            reference_rows=self.reference_rows,
            window_rows=self.window_rows,
        )
        if not 0.5 <= self.min_auc < 1 or not 0 < self.alpha < 1 or self.folds < 2:
            raise ValueError("DomainClassifier needs 0.5 <= min_auc < 1, 0 < alpha < 1, folds >= 2")
        columns, matrix = _choose(reference, self.max_features)
        sample = _sample(matrix, self.reference_rows, np.random.default_rng(self.seed))
        return FittedDomainClassifier(self, columns, sample)


@dataclass(frozen=True, slots=True)
class FittedDomainClassifier:
    """A bounded sample of the reference's rows."""

    settings: DomainClassifier
    columns: _Columns
    reference: FloatArray

    @property
    def features(self) -> tuple[str, ...]:
        """The features used."""
        return self.columns.features

    def score(self, current: Mapping[str, Values]) -> MultivariateDrift:
        """How well a classifier tells the window's rows from the reference's.

        Raises:
            ValueError: A feature is absent, or the window has fewer rows than folds x 2.
            MissingDependencyError: scikit-learn is not installed.
        """
        settings = self.settings
        rng = np.random.default_rng(settings.seed + 1)
        window = _sample(self.columns.matrix(current), settings.window_rows, rng)
        if window.shape[0] < 2 * settings.folds:
            raise ValueError(f"the domain classifier needs at least {2 * settings.folds} rows")
        x = np.vstack((self.reference, window))
        y = np.concatenate((np.zeros(self.reference.shape[0]), np.ones(window.shape[0])))
        scores = _out_of_fold_scores(x, y, settings)
        auc, p_value = _auc_and_p_value(scores[y == 1], scores[y == 0])
        return MultivariateDrift(
            method="domain_classifier",
            statistic=auc,
            threshold=settings.min_auc,
            p_value=p_value,
            drifted=auc > settings.min_auc and p_value < settings.alpha,
            reference_rows=self.reference.shape[0],
            current_rows=window.shape[0],
            features=self.columns.features,
            features_cut=self.columns.features_cut,
        )


def _out_of_fold_scores(x: FloatArray, y: FloatArray, settings: DomainClassifier) -> FloatArray:
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import PolynomialFeatures, StandardScaler
    except ImportError as exc:  # pragma: no cover - the test environment has it
        raise MissingDependencyError("scikit-learn", "monitor") from exc
    model = make_pipeline(
        StandardScaler(),
        PolynomialFeatures(degree=2, include_bias=False),
        StandardScaler(),
        LogisticRegression(max_iter=1_000),
    )
    folds = StratifiedKFold(settings.folds, shuffle=True, random_state=settings.seed)
    proba = cross_val_predict(model, x, y, cv=folds, method="predict_proba")
    return np.asarray(proba[:, 1], dtype=np.float64)


def _auc_and_p_value(positive: FloatArray, negative: FloatArray) -> tuple[float, float]:
    """ROC AUC of ``positive`` over ``negative`` and the one-sided p-value of its
    Mann-Whitney U (normal approximation with the tie correction)."""
    from scipy import stats

    result = stats.mannwhitneyu(positive, negative, alternative="greater", method="asymptotic")
    n1, n2 = positive.size, negative.size
    return float(result.statistic) / (n1 * n2), float(result.pvalue)


# ------------------------------------------------------------------- PCA reconstruction


@dataclass(frozen=True, slots=True)
class PcaReconstruction:
    """Settings of the PCA reconstruction-error detector."""

    variance: float = 0.65
    """Share of the standardised reference's variance the kept components explain."""
    alpha: float = 0.01
    min_increase: float = 0.1
    """The threshold is at least ``1 + min_increase`` times the reference's mean error."""
    bootstrap: int = 2_000
    max_features: int = 50
    reference_rows: int = 10_000
    window_rows: int = 2_000
    seed: int = 0

    def fit(self, reference: Mapping[str, Values]) -> FittedPcaReconstruction:
        """Fit PCA on half the (sampled) reference; keep the other half's errors.

        Raises:
            ValueError: No usable feature, fewer than 10 rows, or invalid settings.
        """
        _check(
            max_features=self.max_features,
            reference_rows=self.reference_rows,
            window_rows=self.window_rows,
            bootstrap=self.bootstrap,
        )
        if not 0 < self.variance < 1 or not 0 < self.alpha < 1 or self.min_increase < 0:
            raise ValueError(
                "PcaReconstruction needs 0 < variance < 1, 0 < alpha < 1, min_increase >= 0"
            )
        columns, matrix = _choose(reference, self.max_features)
        rng = np.random.default_rng(self.seed)
        sample = _sample(matrix, self.reference_rows, rng)
        shuffled = sample[rng.permutation(sample.shape[0])]
        half = shuffled.shape[0] // 2
        fit_rows, held_out = shuffled[:half], shuffled[half:]
        mean = fit_rows.mean(axis=0)
        scale = fit_rows.std(axis=0)
        scale[scale == 0] = 1.0  # constant in this half: centred to 0, nothing to scale
        z = (fit_rows - mean) / scale
        _, singular, vt = np.linalg.svd(z, full_matrices=False)
        explained = np.cumsum(singular**2) / np.sum(singular**2)
        # Never every component: the reconstruction of all of them is exact, its error
        # rounding noise (two uncorrelated features need both for 65% of the variance).
        kept = min(int(np.searchsorted(explained, self.variance) + 1), z.shape[1] - 1)
        fitted = FittedPcaReconstruction(
            self, columns, mean, scale, vt[:kept], np.empty(0), sample.shape[0]
        )
        errors = fitted.errors(held_out)
        return FittedPcaReconstruction(
            self, columns, mean, scale, vt[:kept], errors, sample.shape[0]
        )


@dataclass(frozen=True, slots=True)
class FittedPcaReconstruction:
    """The reference's standardisation, principal components and held-out errors."""

    settings: PcaReconstruction
    columns: _Columns
    mean: FloatArray
    scale: FloatArray
    components: FloatArray
    """Kept principal axes, one per row."""
    reference_errors: FloatArray
    """Reconstruction errors of reference rows held out of the PCA fit."""
    reference_rows: int

    @property
    def features(self) -> tuple[str, ...]:
        """The features used."""
        return self.columns.features

    def errors(self, matrix: FloatArray) -> npt.NDArray[np.float64]:
        """Each row's mean squared reconstruction error over the standardised features."""
        z = (matrix - self.mean) / self.scale
        residual = z - (z @ self.components.T) @ self.components
        return np.asarray(np.mean(residual**2, axis=1), dtype=np.float64)

    def null_differences(self, rows: int) -> FloatArray:
        """Bootstrap draws of ``window mean - reference mean`` under no change.

        Each draw takes a window of ``rows`` errors and a reference of as many errors as
        were held out, both with replacement from the held-out errors, so the spread
        covers the sampling of the window and that of the reference's own mean.
        """
        settings = self.settings
        rng = np.random.default_rng(settings.seed + rows)
        errors = self.reference_errors
        window = _bootstrap_means(rng, errors, rows, settings.bootstrap)
        reference = _bootstrap_means(rng, errors, errors.size, settings.bootstrap)
        return window - reference

    def threshold(self, rows: int) -> float:
        """The threshold on a window of ``rows`` rows: the reference's mean error plus
        the ``1 - alpha`` quantile of :meth:`null_differences`, but at least
        ``1 + min_increase`` times the reference's mean error."""
        return self._threshold(self.null_differences(rows))

    def _threshold(self, null: FloatArray) -> float:
        mean = float(self.reference_errors.mean())
        quantile = float(np.quantile(null, 1 - self.settings.alpha))
        return max(mean + quantile, (1 + self.settings.min_increase) * mean)

    def score(self, current: Mapping[str, Values]) -> MultivariateDrift:
        """The window's mean reconstruction error against the reference's threshold.

        Raises:
            ValueError: A feature is absent, or the window has fewer than 10 rows.
        """
        rng = np.random.default_rng(self.settings.seed + 1)
        window = _sample(self.columns.matrix(current), self.settings.window_rows, rng)
        if window.shape[0] < _MIN_ROWS:
            raise ValueError(f"PCA reconstruction needs at least {_MIN_ROWS} window rows")
        statistic = float(self.errors(window).mean())
        null = self.null_differences(window.shape[0])
        threshold = self._threshold(null)
        excess = statistic - float(self.reference_errors.mean())
        p_value = (1 + int(np.count_nonzero(null >= excess))) / (null.size + 1)
        return MultivariateDrift(
            method="pca_reconstruction",
            statistic=statistic,
            threshold=threshold,
            p_value=p_value,
            drifted=statistic > threshold,
            reference_rows=self.reference_rows,
            current_rows=window.shape[0],
            features=self.columns.features,
            features_cut=self.columns.features_cut,
        )


def _bootstrap_means(
    rng: np.random.Generator, values: FloatArray, size: int, draws: int
) -> FloatArray:
    """Means of ``draws`` samples of ``size`` values drawn with replacement, computed in
    chunks of at most about a million draws, so memory stays near 8 MB."""
    per_chunk = max(1, 1_000_000 // size)
    means = [
        rng.choice(values, size=(min(per_chunk, draws - start), size)).mean(axis=1)
        for start in range(0, draws, per_chunk)
    ]
    return np.concatenate(means)
