"""Drift of a whole window from profiles: test choice, multiple-testing control, verdict."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from monitor.core.profile import FeatureProfile, ReferenceProfile
from monitor.errors import ConfigError
from monitor.score.drift import benjamini_hochberg
from monitor.score.scorer import WindowScorer

FEATURES = [f"x{i:03d}" for i in range(100)]


def scorer(**options) -> WindowScorer:
    return WindowScorer(None, window_seconds=60, min_window_events=30, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def undrifted():
    """A small reference (KS is chosen) and 200 windows drawn from the same distributions."""
    rng = np.random.default_rng(2026)
    reference = ReferenceProfile.build(
        {name: ("numeric", rng.normal(0, 1, 800)) for name in FEATURES}, 800
    )
    windows = [
        {
            name: FeatureProfile.of(rng.normal(0, 1, 300), "numeric", f.bins)
            for name, f in reference.features.items()
        }
        for _ in range(200)
    ]
    return reference, windows


def test_100_undrifted_features_raise_false_alarms_at_the_promised_rate(undrifted) -> None:
    reference, windows = undrifted
    controlled = [scorer().drift(reference, w) for w in windows]
    uncontrolled = [scorer(fdr=None).drift(reference, w) for w in windows]
    assert {d.test for r in controlled for d in r} == {"ks"}
    # Without control, about 5 of 100 features per window are flagged (p <= 0.05; the
    # profile's p-value is at least the exact one, so a little fewer).
    per_window = np.mean([sum(d.drifted for d in r) for r in uncontrolled])
    assert 3.0 <= per_window <= 5.5
    # With Benjamini-Hochberg at q = 0.05 and nothing drifted, the chance of any alarm in
    # a window is at most 0.05: over 200 windows, at most 0.05 plus three standard errors.
    any_alarm = np.mean([any(d.drifted for d in r) for r in controlled])
    assert any_alarm <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 200)
    # The adjusted p-values are Benjamini-Hochberg's, as scipy computes them.
    for result in controlled[:20]:
        raw = np.array([d.value for d in result])
        expected = stats.false_discovery_control(raw, method="bh")
        np.testing.assert_allclose([d.adjusted_p_value for d in result], expected, rtol=1e-12)


def test_a_drifted_quarter_is_found_and_the_dataset_verdict_follows_the_share() -> None:
    rng = np.random.default_rng(7)
    names = FEATURES[:20]
    reference = ReferenceProfile.build(
        {name: ("numeric", rng.normal(0, 1, 800)) for name in names}, 800
    )
    window = {
        name: FeatureProfile.of(rng.normal(1.0 if i < 5 else 0, 1, 400), "numeric", f.bins)
        for i, (name, f) in enumerate(reference.features.items())
    }
    result = scorer().drift(reference, window)
    flagged = sorted(d.feature for d in result if d.drifted)
    assert flagged == names[:5]
    control = benjamini_hochberg({d.feature: d.value for d in result}, 0.05)
    assert sorted(control.rejected) == flagged


def test_the_test_is_chosen_as_evidently_does_and_can_be_set_per_feature() -> None:
    rng = np.random.default_rng(1)
    small = ReferenceProfile.build(
        {
            "num": ("numeric", rng.normal(0, 1, 500)),
            "few": ("numeric", rng.integers(0, 3, 500).astype(float)),
            "cat": ("categorical", rng.choice(["a", "b", "c"], 500)),
            "flag": ("boolean", rng.random(500) < 0.5),
        },
        500,
    )
    large = ReferenceProfile.build(
        {
            "num": ("numeric", rng.normal(0, 1, 5000)),
            "cat": ("categorical", rng.choice(["a", "b", "c"], 5000)),
        },
        5000,
    )

    def window(reference):
        return {
            n: FeatureProfile.of(
                rng.normal(0, 1, 300)
                if n == "num"
                else rng.integers(0, 3, 300).astype(float)
                if n == "few"
                else rng.choice(["a", "b", "c"], 300)
                if n == "cat"
                else rng.random(300) < 0.5,
                f.kind,
                f.bins,
            )
            for n, f in reference.features.items()
        }

    tests = {d.feature: d.test for d in scorer().drift(small, window(small))}
    assert tests == {"num": "ks", "few": "chisquare", "cat": "chisquare", "flag": "z"}
    tests = {d.feature: d.test for d in scorer().drift(large, window(large))}
    assert tests == {"num": "wasserstein", "cat": "jensenshannon"}
    chosen = scorer(drift_test="psi", drift_tests={"num": "ks"}).drift(large, window(large))
    assert {d.feature: d.test for d in chosen} == {"num": "ks", "cat": "psi"}
    # A test that does not apply to the kind falls back to the automatic choice.
    chosen = scorer(drift_tests={"cat": "wasserstein"}).drift(large, window(large))
    assert {d.feature: d.test for d in chosen} == {"num": "wasserstein", "cat": "jensenshannon"}
    with pytest.raises(ConfigError, match="valid tests: auto, chisquare"):
        scorer(drift_test="kolmogorov")
