"""Every drift test against Evidently 0.7's test of the same name, on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.score.drift import DRIFT_TESTS, choose_test
from tests.monitor.drift.cases import CASES, Case, clean

# Where the computation is the same, the results agree to the last bits or nearly
# (summation order differs); two tests are looser, for reasons of Evidently's arithmetic:
TOLERANCE = {
    "ks": {"rel": 1e-12, "abs": 0.0},
    "chisquare": {"rel": 1e-12, "abs": 0.0},
    # Evidently's 2 * (1 - cdf(|z|)) is off by up to 1.1e-16 absolute; ours uses sf.
    "z": {"rel": 1e-9, "abs": 2.3e-16},
    "psi": {"rel": 1e-12, "abs": 1e-15},
    "jensenshannon": {"rel": 1e-12, "abs": 1e-15},
    "wasserstein": {"rel": 1e-12, "abs": 1e-15},
    # Evidently's sqrt(1 - sum(sqrt(p q))) cancels: an error of 1e-16 in the sum is
    # 1e-8 in a distance near 0 and 5e-15 / d in a distance d; ours does not cancel.
    "hellinger": {"rel": 1e-9, "abs": 2e-8},
}

PAIRS = [
    pytest.param(name, case, id=f"{name}-{case.id}")
    for name, test in sorted(DRIFT_TESTS.items())
    for case in CASES
    if case.kind in test.kinds
]


@pytest.mark.parametrize(("name", "case"), PAIRS)
def test_score_and_verdict_match_evidently(evidently, name: str, case: Case) -> None:
    test = DRIFT_TESTS[name]
    ours = test.fit(case.reference, case.kind).score(case.current)
    theirs, theirs_drifted = evidently.run(
        name, case.reference, case.current, case.kind, test.default_threshold
    )
    assert ours.drift_score == pytest.approx(float(theirs), **TOLERANCE[name])
    assert ours.drifted == bool(theirs_drifted)
    assert ours.threshold == test.default_threshold


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_automatic_choice_matches_evidently(evidently, case: Case) -> None:
    ref, cur = clean(case.reference), clean(case.current)
    n_unique = len(set(ref) | set(cur))
    choice = choose_test(case.kind, len(ref), n_unique)  # type: ignore[arg-type]
    assert choice.test.name == evidently.default(case.reference, case.current, case.kind)
    ours = choice.test.fit(case.reference, choice.kind).score(case.current)
    theirs, drifted = evidently.run(
        choice.test.name, case.reference, case.current, case.kind, choice.test.default_threshold
    )
    assert ours.drift_score == pytest.approx(float(theirs), **TOLERANCE[choice.test.name])
    assert ours.drifted == bool(drifted)


@pytest.mark.parametrize(
    ("kind", "size", "values"),
    [
        ("numeric", 800, [1.0, 2.0]),
        ("numeric", 800, [1.0, 2.0, 3.0]),
        ("numeric", 800, [0.0, 1.0, 2.0, 3.0, 4.0]),
        ("numeric", 800, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
        ("numeric", 1000, list(range(50))),
        ("numeric", 1001, list(range(50))),
        ("numeric", 3000, [1.0, 2.0, 3.0]),
        ("categorical", 1000, ["a", "b"]),
        ("categorical", 1000, ["a", "b", "c"]),
        ("categorical", 1001, ["a", "b"]),
        ("boolean", 500, [True, False]),
        ("boolean", 5000, [True, False]),
    ],
)
def test_every_branch_of_the_choice_matches_evidently(evidently, kind, size, values) -> None:
    reference = [values[i % len(values)] for i in range(size)]
    current = list(values)
    choice = choose_test(kind, size, len(set(values)))
    assert choice.test.name == evidently.default(reference, current, kind)
    assert choice.kind in choice.test.kinds


# Only where the computation is the same step for step: Evidently sums chi-squared
# terms in its set's order, which changes with the hash seed.
@pytest.mark.parametrize("name", ["ks", "psi", "jensenshannon", "wasserstein"])
def test_a_score_equal_to_the_threshold_is_judged_as_evidently_judges_it(evidently, name) -> None:
    data = next(c for c in CASES if c.id == "normal-small")
    score = DRIFT_TESTS[name].fit(data.reference, "numeric").score(data.current).drift_score
    ours = DRIFT_TESTS[name].fit(data.reference, "numeric", threshold=score).score(data.current)
    theirs, drifted = evidently.run(name, data.reference, data.current, "numeric", score)
    assert float(theirs) == score  # the tie is exact in both
    assert ours.drifted == bool(drifted) is True  # KS: p <= threshold; distances: >=


def test_chi_squared_over_one_category_says_no_drift_where_evidently_says_nan(evidently) -> None:
    ours = DRIFT_TESTS["chisquare"].fit(["a"] * 10, "categorical").score(["a"] * 5)
    theirs, drifted = evidently.run("chisquare", ["a"] * 10, ["a"] * 5, "categorical", 0.05)
    assert math.isnan(theirs) and not drifted
    assert ours.p_value == 1.0 and not ours.drifted


def test_z_keeps_its_precision_where_evidently_rounds_to_zero(evidently) -> None:
    reference, current = [True] * 300 + [False] * 700, [True] * 700 + [False] * 300
    ours = DRIFT_TESTS["z"].fit(reference, "boolean").score(current)
    theirs, _ = evidently.run("z", reference, current, "boolean", 0.05)
    assert theirs == 0.0
    assert 0 < ours.drift_score < 1e-60 and ours.drifted


numbers = st.lists(st.integers(-5_000, 5_000).map(lambda i: i / 8), min_size=2, max_size=120)
few_numbers = st.lists(st.integers(0, 6).map(float), min_size=2, max_size=120)
categories = st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=120)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reference=st.one_of(numbers, few_numbers), current=st.one_of(numbers, few_numbers))
def test_numeric_tests_match_evidently_on_any_data(evidently, reference, current) -> None:
    for name in ("ks", "psi", "jensenshannon", "wasserstein", "hellinger"):
        ours = DRIFT_TESTS[name].fit(np.array(reference), "numeric").score(np.array(current))
        theirs, drifted = evidently.run(name, reference, current, "numeric", 0.1)
        ours_at = DRIFT_TESTS[name].fit(reference, "numeric", 0.1).score(current)
        assert ours.drift_score == pytest.approx(float(theirs), **TOLERANCE[name]), name
        if not math.isclose(float(theirs), 0.1, rel_tol=1e-9):
            assert ours_at.drifted == bool(drifted), name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reference=categories, current=categories)
def test_categorical_tests_match_evidently_on_any_data(evidently, reference, current) -> None:
    for name in ("chisquare", "z", "psi", "jensenshannon", "hellinger"):
        threshold = DRIFT_TESTS[name].default_threshold
        ours = DRIFT_TESTS[name].fit(reference, "categorical").score(current)
        theirs, drifted = evidently.run(name, reference, current, "categorical", threshold)
        if name == "chisquare" and len(set(reference) | set(current)) == 1:
            continue  # Evidently: NaN; see the test above
        assert ours.drift_score == pytest.approx(float(theirs), **TOLERANCE[name]), name
        if not math.isclose(float(theirs), threshold, rel_tol=1e-9):
            assert ours.drifted == bool(drifted), name
