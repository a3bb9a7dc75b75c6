from math import comb

import pytest

from eval.scoring.passk import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (5, 2, 1), (10, 3, 5), (20, 0, 10), (200, 13, 100), (7, 7, 3), (10, 1, 10)])
def test_pass_at_k_matches_closed_form(n, c, k):
    expected = 1.0 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_1_is_fraction_correct():
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)


def test_mean_pass_at_k_reports_only_ks_every_problem_supports():
    results = [[True, False, False, False, False], [False] * 5, [True] * 5]
    out = mean_pass_at_k(results, ks=(1, 5, 10))
    assert set(out) == {"pass@1", "pass@5"}
    assert out["pass@1"] == pytest.approx(100 * (0.2 + 0 + 1) / 3)
    assert out["pass@5"] == pytest.approx(100 * (1 + 0 + 1) / 3)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="got n=3, c=4, k=1"):
        pass_at_k(3, 4, 1)
