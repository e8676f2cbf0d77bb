"""Multivariate drift: a flipped correlation that no single feature shows, the quiet
case, agreement with scikit-learn, and the false-alarm rate of unchanged windows.

Sizes: reference and windows of 1,000 rows x 10 features; the domain classifier costs
about 0.3 s a window (5-fold logistic regression on 65 quadratic terms), PCA about 20 ms.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from monitor.score.drift import DRIFT_TESTS, CorrelationDrift, benjamini_hochberg, choose_test
from monitor.score.multivariate import DomainClassifier, PcaReconstruction

ROWS, OTHERS = 1_000, 8


def sample(rng: np.random.Generator, rho: float, n: int = ROWS) -> dict[str, np.ndarray]:
    """``x`` and ``y`` standard normal with correlation ``rho``; 8 independent others."""
    x = rng.normal(size=n)
    data = {"x": x, "y": rho * x + math.sqrt(1 - rho**2) * rng.normal(size=n)}
    data.update({f"f{i}": rng.normal(size=n) for i in range(OTHERS)})
    return data


def rematched(
    ref: dict[str, np.ndarray], rho: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """A window whose every column holds exactly the reference's values, re-paired so that
    ``x`` and ``y`` have a rank correlation near ``rho``: each feature's values (its
    marginal sample) stay the same, only the joint distribution changes."""
    x = ref["x"]
    latent = rho * (x - x.mean()) / x.std() + math.sqrt(1 - rho**2) * rng.normal(size=x.size)
    y = np.empty_like(ref["y"])
    y[np.argsort(latent)] = np.sort(ref["y"])
    window = {"x": x.copy(), "y": y}
    window.update({n: rng.permutation(v) for n, v in ref.items() if n not in window})
    return window


def univariate_alarms(ref: dict[str, np.ndarray], cur: dict[str, np.ndarray]) -> tuple[str, ...]:
    """Features flagged by the test Evidently would choose, under BH at q = 0.05."""
    p_values = {}
    for name in ref:
        n_unique = len(np.unique(np.concatenate([ref[name], cur[name]])))
        choice = choose_test("numeric", ref[name].size, n_unique)
        assert choice.test.name == "ks"  # 1,000 reference rows: KS, as Evidently picks
        p_values[name] = choice.test.fit(ref[name], choice.kind).score(cur[name]).p_value
    return benjamini_hochberg(p_values).rejected


def test_a_flipped_correlation_fires_correlation_and_multivariate_drift_only() -> None:
    rng = np.random.default_rng(7)
    ref = sample(rng, 0.8)
    flipped = rematched(ref, -0.8, rng)
    # Univariate: quiet, both by KS under BH and by every registered test on each feature.
    assert univariate_alarms(ref, flipped) == ()
    for name in ref:
        for test in ("ks", "wasserstein", "psi", "jensenshannon", "hellinger"):
            score = DRIFT_TESTS[test].fit(ref[name], "numeric").score(flipped[name])
            assert not score.drifted and score.statistic == 0, (name, test)
    correlation = CorrelationDrift().fit(ref).score(flipped)
    assert correlation.drifted_pairs == (("x", "y"),)
    assert correlation.pairs[0].current_r < -0.7
    domain = DomainClassifier().fit(ref).score(flipped)
    assert domain.drifted and domain.statistic > 0.8 and domain.p_value < 1e-50
    pca = PcaReconstruction().fit(ref).score(flipped)
    assert pca.drifted and pca.statistic > 1.3 * pca.threshold and pca.p_value < 0.001


def test_an_unchanged_window_fires_nothing() -> None:
    rng = np.random.default_rng(8)
    ref, same = sample(rng, 0.8), sample(rng, 0.8)
    assert univariate_alarms(ref, same) == ()
    assert CorrelationDrift().fit(ref).score(same).drifted_pairs == ()
    domain = DomainClassifier().fit(ref).score(same)
    assert not domain.drifted and abs(domain.statistic - 0.5) < 0.05
    pca = PcaReconstruction().fit(ref).score(same)
    assert not pca.drifted and pca.p_value > 0.01


def test_the_domain_classifier_auc_is_scikit_learns_cross_validated_auc() -> None:
    rng = np.random.default_rng(9)
    ref = sample(rng, 0.8, 300)
    cur = sample(rng, 0.5, 200)
    detector = DomainClassifier(folds=4, seed=3)
    result = detector.fit(ref).score(cur)
    # The same model and folds built here from scikit-learn's parts.
    x = np.vstack([np.column_stack(list(ref.values())), np.column_stack(list(cur.values()))])
    y = np.r_[np.zeros(300), np.ones(200)]
    model = make_pipeline(
        StandardScaler(),
        PolynomialFeatures(2, include_bias=False),
        StandardScaler(),
        LogisticRegression(max_iter=1_000),
    )
    folds = StratifiedKFold(4, shuffle=True, random_state=3)
    scores = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    assert result.statistic == pytest.approx(roc_auc_score(y, scores), rel=1e-12)
    u = stats.mannwhitneyu(scores[y == 1], scores[y == 0], alternative="greater")
    assert result.p_value == pytest.approx(u.pvalue, rel=1e-9)
    assert (result.reference_rows, result.current_rows) == (300, 200)
    assert result.features == tuple(ref)


def test_pca_components_and_errors_are_scikit_learns() -> None:
    rng = np.random.default_rng(10)
    ref = sample(rng, 0.8, 600)
    fitted = PcaReconstruction(seed=5).fit(ref)
    # The fit half, drawn as the detector draws it (no subsampling at 600 <= 10,000 rows).
    matrix = np.column_stack(list(ref.values()))
    order = np.random.default_rng(5).permutation(600)
    fit_rows = matrix[order][:300]
    z = (fit_rows - fit_rows.mean(axis=0)) / fit_rows.std(axis=0)
    pca = PCA(n_components=0.65, svd_solver="full").fit(z)
    assert fitted.components.shape == pca.components_.shape
    np.testing.assert_allclose(
        fitted.components.T @ fitted.components, pca.components_.T @ pca.components_, atol=1e-10
    )
    window = np.column_stack(list(sample(rng, -0.5, 50).values()))
    zw = (window - fit_rows.mean(axis=0)) / fit_rows.std(axis=0)
    residual = zw - pca.inverse_transform(pca.transform(zw))
    np.testing.assert_allclose(fitted.errors(window), np.mean(residual**2, axis=1), rtol=1e-9)
    held_out = matrix[order][300:]
    np.testing.assert_allclose(fitted.reference_errors, fitted.errors(held_out), rtol=0)


WINDOWS = 60


def test_unchanged_windows_alarm_no_more_than_alpha_promises() -> None:
    # A new reference with each window: the rate alpha promises is over references and
    # windows alike (one fixed reference's held-out mean may sit a little high or low).
    rng = np.random.default_rng(11)
    pca_alarms = domain_alarms = 0
    p_values = []
    for i in range(WINDOWS):
        ref, window = sample(rng, 0.8), sample(rng, 0.8)
        # The bootstrap threshold alone, without the effect-size floor.
        result = PcaReconstruction(min_increase=0.0, seed=i).fit(ref).score(window)
        pca_alarms += result.drifted
        p_values.append(result.p_value)
        if i < 10:  # the classifier costs 0.3 s a window: 10 of them
            domain_alarms += DomainClassifier(seed=i).fit(ref).score(window).drifted
    # At alpha = 0.01 the count of alarms is at most Binomial(WINDOWS, 0.01): allow its
    # 99.9% quantile (3 of 60).
    assert pca_alarms <= stats.binom.ppf(0.999, WINDOWS, 0.01), pca_alarms
    assert domain_alarms == 0
    # The p-values of unchanged windows are close to uniform: the threshold is neither
    # loose nor needlessly strict. (KS against U(0, 1), at a 0.1% level.)
    assert stats.kstest(p_values, "uniform").pvalue > 0.001, sorted(p_values)


def test_missing_values_are_imputed_and_bounds_hold() -> None:
    rng = np.random.default_rng(12)
    ref = sample(rng, 0.8, 3_000)
    ref["const"] = np.ones(3_000)
    ref["x"][::7] = np.nan
    detector = DomainClassifier(max_features=5, reference_rows=500, window_rows=400)
    fitted = detector.fit(ref)
    assert fitted.features == ("x", "y", "f0", "f1", "f2")
    assert fitted.columns.features_cut == ("f3", "f4", "f5", "f6", "f7", "const")
    assert fitted.reference.shape == (500, 5) and np.isfinite(fitted.reference).all()
    result = fitted.score(sample(rng, 0.8, 2_000))
    assert (result.reference_rows, result.current_rows) == (500, 400)
    again = fitted.score(sample(np.random.default_rng(12), 0.8, 2_000))
    assert fitted.score(sample(np.random.default_rng(12), 0.8, 2_000)) == again  # seeded
    pca = PcaReconstruction(reference_rows=1_000, window_rows=300).fit(ref)
    assert pca.reference_rows == 1_000 and pca.reference_errors.size == 500
    assert pca.score(sample(rng, 0.8, 5_000)).current_rows == 300


def test_unusable_input_is_refused() -> None:
    with pytest.raises(ValueError, match="varies"):
        DomainClassifier().fit({"a": np.ones(50)})
    with pytest.raises(ValueError, match="at least 10 reference rows"):
        PcaReconstruction().fit({"a": np.arange(5.0)})
    with pytest.raises(ValueError, match="min_auc"):
        DomainClassifier(min_auc=0.4).fit({"a": np.arange(50.0)})
    with pytest.raises(ValueError, match="window_rows"):
        PcaReconstruction(window_rows=0).fit({"a": np.arange(50.0)})
    fitted = DomainClassifier().fit({"a": np.arange(50.0), "b": np.arange(50.0) ** 2})
    with pytest.raises(ValueError, match="lacks features"):
        fitted.score({"a": np.arange(50.0)})
    with pytest.raises(ValueError, match="at least 10 rows"):
        fitted.score({"a": np.arange(5.0), "b": np.arange(5.0)})


def test_the_public_names_are_the_intended_ones() -> None:
    import monitor.score.multivariate as module

    assert sorted(module.__all__) == [
        "DomainClassifier",
        "FittedDomainClassifier",
        "FittedPcaReconstruction",
        "MultivariateDrift",
        "PcaReconstruction",
    ]
    assert all(hasattr(module, name) for name in module.__all__)


def test_pca_never_keeps_every_component() -> None:
    # Two uncorrelated features need both components for 65% of the variance; keeping
    # both would rebuild every row exactly, leaving rounding noise as the "error".
    rng = np.random.default_rng(4)
    ref = {"x": rng.normal(size=1000), "y": rng.normal(size=1000)}
    fitted = PcaReconstruction().fit(ref)
    assert fitted.components.shape == (1, 2)
    # The minor axis' variance (about 1, standardised) spread over the two features.
    assert 0.35 < fitted.reference_errors.mean() < 0.65
    same = {"x": rng.normal(size=500), "y": rng.normal(size=500)}
    assert not fitted.score(same).drifted
    wider = {"x": 2 * rng.normal(size=500), "y": 2 * rng.normal(size=500)}
    assert fitted.score(wider).drifted
