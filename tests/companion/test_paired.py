"""xcf.companion.paired: the statistics over seeds every rule decides with, against scipy's own
one-sample t test and binomial test (a peer implementation), and hand-computed cases."""
import math

import pytest
from scipy import stats

from xcf.companion import paired


@pytest.mark.parametrize("diffs", [[1.0, 2.0, 3.0], [0.4, -0.1, 0.9, 1.3, 0.2],
                                   [-2.0, -1.5, -3.1], [5.0, 5.0, 5.5, 4.5]])
def test_the_interval_and_sign_test_match_scipys(diffs):
    p = paired.paired(diffs)
    ci = stats.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    assert p.ci == pytest.approx((ci.low, ci.high), abs=1e-12)
    pos = sum(d > 0 for d in diffs)
    assert p.positive == pos
    assert p.sign_p == pytest.approx(stats.binomtest(pos, len(diffs), 0.5).pvalue)


def test_by_hand_three_seeds():
    # mean 2, sd 1, t(0.975, 2) = 4.3027: 2 ± 2.484
    p = paired.paired([1.0, 2.0, 3.0])
    assert p.mean == 2.0 and p.ci == pytest.approx((2 - 4.302653 / math.sqrt(3),
                                                     2 + 4.302653 / math.sqrt(3)), abs=1e-5)
    assert p.text() == "+2.00 [-0.48, +4.48] (3/3 > 0)"


def test_verdicts_read_off_the_interval():
    assert paired.verdict_of(paired.paired([2.0, 2.5, 3.0])) == "holds"
    assert paired.verdict_of(paired.paired([-2.0, -2.5, -3.0])) == "does not hold"
    assert paired.verdict_of(paired.paired([1.0, 2.0, 3.0])) == "inconclusive"
    assert paired.verdict_of(paired.paired([2.0, 2.5])) == "inconclusive"  # < 3 seeds
    assert paired.verdict_of(paired.paired([])) == "not tested"


def test_non_finite_differences_are_refused_by_value():
    with pytest.raises(ValueError, match="nan"):
        paired.paired([1.0, float("nan")])
