"""The registry, the contract every registered test keeps, and the package's surface."""

from __future__ import annotations

import numpy as np
import pytest

import monitor.score.drift as drift
from monitor.core.profile import FeatureProfile, ReferenceProfile
from monitor.errors import ConfigError
from monitor.score.drift import DRIFT_TESTS, DriftScore, choose_test, get_drift_test
from monitor.score.drift.registry import check_test_name

EVIDENTLY_DEFAULTS = {
    "ks": ("p_value", 0.05),
    "chisquare": ("p_value", 0.05),
    "z": ("p_value", 0.05),
    "psi": ("distance", 0.1),
    "jensenshannon": ("distance", 0.1),
    "wasserstein": ("distance", 0.1),
    "hellinger": ("distance", 0.1),
}

SAMPLES = {
    "numeric": ([0.1, 0.5, 0.2, 0.9, 0.4] * 20, [0.3, 0.8, 0.6] * 20),
    "categorical": (["a", "b", "c"] * 20, ["a", "c", "c"] * 20),
    "boolean": ([True, False, False] * 20, [True, True, False] * 20),
}


def test_the_registry_holds_the_seven_tests_with_evidentlys_names_and_thresholds() -> None:
    assert {
        name: (t.statistic, t.default_threshold) for name, t in DRIFT_TESTS.items()
    } == EVIDENTLY_DEFAULTS
    assert all(name == test.name for name, test in DRIFT_TESTS.items())


def test_evidentlys_thresholds_are_the_ones_it_ships(evidently) -> None:
    for name, (_, threshold) in EVIDENTLY_DEFAULTS.items():
        assert evidently.stattests[name].default_threshold == threshold


@pytest.mark.parametrize("name", sorted(DRIFT_TESTS))
def test_every_test_keeps_the_contract(name: str) -> None:
    test = DRIFT_TESTS[name]
    for kind in sorted(test.kinds):
        reference, current = SAMPLES[kind]
        fitted = test.fit(reference, kind)
        score = fitted.score(current)
        assert isinstance(score, DriftScore)
        assert score.test == name
        assert score.threshold == test.default_threshold
        assert (score.p_value is None) == (test.statistic == "distance")
        assert (score.reference_count, score.current_count) == (len(reference), len(current))
        assert test.fit(reference, kind, threshold=0.5).score(current).threshold == 0.5
        with pytest.raises(AttributeError):
            score.drifted = True  # type: ignore[misc]
        # Fitting keeps no reference to the caller's data.
        data = np.array(reference, dtype=object)
        again = test.fit(data, kind)
        data[:] = data[0]
        assert again.score(current) == score


def test_a_bad_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as error:
        get_drift_test("kolmogorov")
    message = str(error.value)
    assert "'kolmogorov'" in message
    for name in DRIFT_TESTS:
        assert name in message


def test_an_override_wins_and_must_suit_the_kind() -> None:
    assert choose_test("numeric", 50_000, 900, override="psi").test.name == "psi"
    assert choose_test("categorical", 50, 3, override="hellinger").kind == "categorical"
    # A numeric feature with few values may take a categorical test, fitted as categorical.
    few = choose_test("numeric", 50, 3, override="chisquare")
    assert (few.test.name, few.kind) == ("chisquare", "categorical")
    with pytest.raises(ConfigError, match="applies to numeric"):
        choose_test("categorical", 50, 3, override="ks")
    with pytest.raises(ConfigError, match="valid tests"):
        choose_test("numeric", 50, 3, override="nope")


def test_the_public_names_are_the_ones_meant() -> None:
    assert set(drift.__all__) == {
        "DEFAULT_DRIFT_SHARE",
        "DRIFT_TESTS",
        "AdjustedPValue",
        "CorrelationDrift",
        "CorrelationDriftResult",
        "DatasetDrift",
        "DriftScore",
        "DriftTest",
        "DriftTestChoice",
        "FdrControl",
        "FeatureKind",
        "FittedCorrelationDrift",
        "FittedDriftTest",
        "PairCorrelationDrift",
        "adjust_bh",
        "benjamini_hochberg",
        "choose_test",
        "dataset_drift",
        "fisher_z",
        "get_drift_test",
    }
    for name in drift.__all__:
        assert hasattr(drift, name)


def test_a_setting_names_auto_or_a_registered_test() -> None:
    assert [check_test_name(name) for name in ("auto", "ks", "hellinger")] == [
        "auto",
        "ks",
        "hellinger",
    ]
    valid = "valid tests: auto, chisquare, hellinger, jensenshannon, ks, psi, wasserstein, z"
    with pytest.raises(ConfigError, match=valid):
        check_test_name("KS")


def test_one_entry_a_name_computes_on_profiles_and_on_raw_values() -> None:
    # The scorer's test on profiles and the one exact.py runs on raw values are the same
    # registered object, so they cannot differ in name, threshold, kinds or rule.
    rng = np.random.default_rng(3)
    reference, current = rng.normal(0, 1, 400), rng.normal(0.3, 1, 300)
    profile = ReferenceProfile.build({"x": ("numeric", reference.tolist())}, 400).features["x"]
    window = FeatureProfile.of(current.tolist(), "numeric", profile.bins)
    for name in ("ks", "wasserstein", "psi", "jensenshannon", "hellinger"):
        test = get_drift_test(name)
        on_profiles = test.score(profile, window, test.default_threshold)
        on_values = test.fit(reference, "numeric").score(current)
        assert on_profiles.test == on_values.test == name
        assert on_profiles.threshold == on_values.threshold == test.default_threshold
        assert (on_profiles.reference_count, on_profiles.current_count) == (400, 300)
