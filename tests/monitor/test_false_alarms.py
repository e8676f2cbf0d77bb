"""False alarms: 100 undrifted features over 200 windows.

Each window draws a fresh reference (500 rows) and a fresh window (200 rows) from the
same distributions, so the 200 windows are independent trials: under the global null,
Benjamini-Hochberg at q bounds the chance of any alarm in a window (the family-wise
error rate) by q, and the number of alarmed windows is at most Binomial(200, q). A
fixed reference would make the windows dependent through it, and the binomial bound
would not apply.

The test per feature is the drift library's choice for these sizes (:func:`choose_test`,
as Evidently chooses): KS for the 80 numeric features, the two-proportion Z test for the
20 boolean ones. Categorical features are left out on purpose: the chi-squared test
Evidently picks for them treats the reference's shares as exact (a goodness-of-fit
test), and at these sizes its p-values are too small: 15% to 18% of unchanged windows
fall below 0.05, against 4.4% for the two-sample test on the 2 x k table
(``scipy.stats.chi2_contingency``); see the report on issue 4.

Runtime: about 0.2 s a window (100 tests), 40 s in all on the 2-core machine.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from monitor.score.drift import CorrelationDrift, benjamini_hochberg, choose_test

NUMERIC, BOOLEAN = 80, 20
WINDOWS, REFERENCE_ROWS, WINDOW_ROWS = 200, 500, 200
Q = 0.05


def draw(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    data = {f"n{i}": rng.normal(size=rows) for i in range(NUMERIC)}
    data.update({f"b{i}": rng.random(rows) < 0.3 for i in range(BOOLEAN)})
    return data


def test_bh_holds_the_false_alarm_rate_where_per_feature_testing_does_not() -> None:
    rng = np.random.default_rng(2026)
    bh_windows = raw_windows = raw_alarms = correlation_windows = 0
    for _ in range(WINDOWS):
        reference, window = draw(rng, REFERENCE_ROWS), draw(rng, WINDOW_ROWS)
        p_values = {}
        for name, values in reference.items():
            kind = "numeric" if name.startswith("n") else "boolean"
            choice = choose_test(kind, values.size, len(np.unique(values)))
            assert choice.test.name == ("ks" if kind == "numeric" else "z")
            score = choice.test.fit(values, choice.kind).score(window[name])
            assert score.p_value is not None
            p_values[name] = score.p_value
        flagged = sum(p < Q for p in p_values.values())
        raw_alarms += flagged
        raw_windows += flagged > 0
        bh_windows += bool(benjamini_hochberg(p_values, fdr=Q).rejected)
        # The 190 pairs of the first 20 numeric features, BH alone (no effect-size floor).
        numeric = {f"n{i}": reference[f"n{i}"] for i in range(20)}
        fitted = CorrelationDrift(max_features=20, min_difference=0.0).fit(numeric)
        correlation_windows += bool(fitted.score(window).drifted_pairs)
    # BH: alarmed windows ~ Binomial(WINDOWS, FWER) with FWER <= Q. The one-sided 99.9%
    # Clopper-Pearson lower bound of the FWER must not exceed Q, i.e. the count must not
    # exceed Binomial(WINDOWS, Q)'s 99.9% quantile (19 of 200; about 10 expected).
    bound = stats.binom.ppf(0.999, WINDOWS, Q)
    assert bh_windows <= bound, (bh_windows, bound)
    lower = stats.binomtest(bh_windows, WINDOWS).proportion_ci(0.998, "exact").low
    assert lower <= Q
    # Correlation pairs are not independent tests, but BH holds them too.
    assert correlation_windows <= bound, (correlation_windows, bound)
    # Uncorrected, each feature at p < 0.05: nearly every window alarms (expected
    # 1 - 0.95^100 = 99.4%), about five features a window.
    assert raw_windows >= stats.binom.ppf(0.001, WINDOWS, 1 - (1 - Q) ** 100), raw_windows
    assert raw_windows >= 3 * bound
    expected = (NUMERIC + BOOLEAN) * WINDOWS * Q
    assert abs(raw_alarms - expected) <= 4 * np.sqrt(expected * (1 - Q)), raw_alarms
