"""Verdict functions and intervals on synthetic data whose answer is known."""

import numpy as np
import pytest
from scipy import stats

from nnrds import verdicts as V


def test_superiority_three_outcomes():
    assert V.superiority(0.1, 0.5) == V.SUPPORTED
    assert V.superiority(-0.5, -0.1) == V.CONTRADICTED
    assert V.superiority(-0.1, 0.5) == V.INCONCLUSIVE
    # a margin (smallest effect of interest) turns "tight around zero" into contradicted
    assert V.superiority(-0.01, 0.02, margin=0.05) == V.CONTRADICTED
    assert V.superiority(-0.01, 0.02) == V.INCONCLUSIVE
    assert V.superiority(float("nan"), 1.0) == V.INCONCLUSIVE


def test_non_superiority_three_outcomes():
    assert V.non_superiority(-0.2, 0.05, margin=0.1) == V.SUPPORTED
    assert V.non_superiority(0.2, 0.6, margin=0.1) == V.CONTRADICTED
    assert V.non_superiority(-0.5, 0.5, margin=0.1) == V.INCONCLUSIVE  # "not significant" is not enough
    with pytest.raises(ValueError):
        V.non_superiority(0, 1, margin=0)


@pytest.mark.parametrize(
    "ci, draw, truth, reps, seed, low, high",
    [
        (lambda x: V.mean_ci(x, 0.9), lambda r: r.normal(1.0, 2.0, size=12), 1.0, 400, 0, 0.85, 0.95),
        (lambda x: V.median_ci(x, 0.95), lambda r: r.standard_cauchy(size=20) + 3.0, 3.0, 400, 1, 0.93, 1.0),
        (lambda x: V.hodges_lehmann_ci(x, 0.95), lambda r: r.laplace(0.5, 1.0, size=15), 0.5, 300, 2, 0.92, 0.99),
    ],
    ids=["mean_ci", "median_ci", "hodges_lehmann_ci"],
)
def test_interval_coverage(ci, draw, truth, reps, seed, low, high):
    """Each interval covers the true location at about its level (mean: normal data; median: Cauchy data, where
    the t interval fails; Hodges-Lehmann: symmetric Laplace differences)."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        _, lo, hi = ci(draw(rng))
        hits += lo <= truth <= hi
    assert low <= hits / reps <= high


def test_median_ci_small_n():
    _, lo, hi = V.median_ci([1, 2, 3, 4, 5], 0.95)  # n = 5 cannot reach 95%: no interval
    assert np.isnan(lo) and np.isnan(hi)
    _, lo, hi = V.median_ci(np.arange(1, 7), 0.95)  # n = 6: [x_(1), x_(6)], coverage 1 - 2/64
    assert (lo, hi) == (1.0, 6.0)


def test_signed_rank_cdf_matches_enumeration():
    import itertools

    n = 8
    sums = [sum(r for r, keep in zip(range(1, n + 1), bits) if keep) for bits in itertools.product([0, 1], repeat=n)]
    brute = np.cumsum(np.bincount(sums, minlength=n * (n + 1) // 2 + 1)) / 2**n
    np.testing.assert_allclose(V._signed_rank_cdf(n), brute)


def test_hodges_lehmann_ci_small_n():
    _, lo, hi = V.hodges_lehmann_ci([0.1, 0.2, 0.3, 0.4, 0.5], 0.95)  # n = 5: min p = 1/16 > 0.025
    assert np.isnan(lo)


def test_holm_known_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    np.testing.assert_allclose(V.holm(p), [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(V.holm([np.nan, 0.5])[0])


def test_holm_alphas_step_down_levels():
    p_adj, a = V.holm_alphas([0.001, 0.04, 0.5], 0.05)
    np.testing.assert_allclose(p_adj, [0.003, 0.08, 0.5])
    np.testing.assert_allclose(a, [0.05 / 3] * 3)  # Holm stops at 0.04: the rest keep Bonferroni's level
    p_adj, a = V.holm_alphas([0.02, 0.001, 0.01], 0.05)  # all rejected: alpha/3, alpha/2, alpha by rank
    np.testing.assert_allclose(a, [0.05, 0.05 / 3, 0.05 / 2])
    assert (p_adj <= 0.05).all()
    p_adj, a = V.holm_alphas([float("nan"), 0.001], 0.05)  # NaN sorts last, keeps Bonferroni's level
    np.testing.assert_allclose(a, [0.05 / 2, 0.05 / 2])
    assert np.isnan(p_adj[0]) and p_adj[1] == pytest.approx(0.001)
    p_adj, a = V.holm_alphas([], 0.05)
    assert a.size == 0 and p_adj.size == 0


def test_one_sample_p_t_test_and_sign_test():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, 12)
    assert V.one_sample_p(x) == pytest.approx(stats.ttest_1samp(x, 0.0).pvalue)
    assert V.one_sample_p(np.full(6, 0.3)) == pytest.approx(2 * 0.5**6)  # every unit agrees: exact sign test
    assert V.one_sample_p(np.full(6, 0.0)) == 1.0 and V.one_sample_p(np.full(1, 2.0)) != V.one_sample_p(x)
    assert np.isnan(V.one_sample_p(np.array([1.0])))


def test_t_or_sign_ci_three_verdicts():
    rng = np.random.default_rng(1)
    up, down, flat = rng.normal(2.0, 0.5, 10), rng.normal(-2.0, 0.5, 10), rng.normal(0.0, 1.0, 10)
    assert V.superiority(*V.t_or_sign_ci(up, 0.95)[1:]) == V.SUPPORTED
    assert V.superiority(*V.t_or_sign_ci(down, 0.95)[1:]) == V.CONTRADICTED
    assert V.superiority(*V.t_or_sign_ci(flat, 0.95)[1:]) == V.INCONCLUSIVE
    assert V.t_or_sign_ci(up, 0.9) == V.mean_ci(up, 0.9)
    # identical values: the median interval, not the zero-width t interval (inconclusive with 5 units at 95%)
    eff, lo, hi = V.t_or_sign_ci(np.full(5, 0.4), 0.95)
    assert eff == 0.4 and np.isnan(lo) and np.isnan(hi)
    assert V.t_or_sign_ci(np.full(8, 0.4), 0.95) == (0.4, 0.4, 0.4)


def test_claim_bullet_text():
    from types import SimpleNamespace

    r = SimpleNamespace(
        claim_id="a:x",
        claim="A beats B",
        effect=0.12345,
        ci_low=0.01234,
        ci_high=float("nan"),
        ci_level=0.975,
        n_units=5,
        p_adjusted=0.0321,
        verdict="inconclusive",
    )
    assert V.claim_bullet(r) == (
        "* Claim ``a:x`` — A beats B: effect 0.123 [0.012, n/a] (97.5% interval, 5 seeds, Holm-adjusted p = 0.032): "
        "**inconclusive**."
    )
    assert "[0.0123, n/a]" in V.claim_bullet(r, ".3g")


def test_claims_frame_rejects_bad_verdict():
    row = dict(
        study="s",
        claim_id="a",
        claim="c",
        what_was_run="w",
        unit="seed",
        n_units=3,
        effect_name="e",
        effect=1.0,
        ci_low=0.0,
        ci_high=2.0,
        ci_level=0.95,
        verdict="held",
        test="t",
    )
    with pytest.raises(ValueError):
        V.claims_frame([row])
    row["verdict"] = V.INCONCLUSIVE
    df = V.claims_frame([V.Claim(**row)])
    assert list(df.columns) == V.CLAIM_COLUMNS
    with pytest.raises(ValueError):
        V.mean_ci([1.0, np.nan])


def test_verdict_table_holm_levels_and_interval_sides():
    x_sup = np.array([1.0, 1.1, 0.9, 1.05, 0.95])
    blank = dict(study="s", claim="", what_was_run="", unit="seed", effect_name="", figure="")
    t = V.verdict_table(
        [
            dict(blank, claim_id="a", kind="superiority", margin=0.1, x=x_sup),
            dict(blank, claim_id="b", kind="non_superiority", margin=0.3, x=np.array([0.0, 0.01, -0.01, 0.02, -0.02])),
        ],
        alpha=0.05,
    )
    a, b = t.set_index("claim_id").loc["a"], t.set_index("claim_id").loc["b"]
    assert a.verdict == b.verdict == "supported"
    # both rejected; b has the smaller p (t ~ -40): alpha_b = alpha/2 with a (1 - 2 alpha_b) interval, a gets
    # alpha/1 with a (1 - alpha) interval -- both 95% here
    assert b.p_value < a.p_value
    assert b.ci_level == pytest.approx(1 - 2 * 0.05 / 2) and a.ci_level == pytest.approx(1 - 0.05)
    assert b.ci_high < 0.3 and a.ci_low > 0
    lo, hi = V.mean_ci(x_sup, level=a.ci_level)[1:]
    assert (a.ci_low, a.ci_high) == pytest.approx((lo, hi))


def test_verdict_table_contradicted_inconclusive_and_empty():
    """Known answers: a clear negative effect contradicts a superiority claim; a clear effect far above the margin
    contradicts a non-superiority claim; noise around 0 with 3 units is inconclusive; no specs, an empty table."""
    blank = dict(study="s", claim="", what_was_run="", unit="seed", effect_name="", figure="")
    t = V.verdict_table(
        [
            dict(blank, claim_id="neg", kind="superiority", margin=0.1, x=[-1.0, -1.1, -0.9, -1.05]),
            dict(blank, claim_id="big", kind="non_superiority", margin=0.1, x=[2.0, 2.1, 1.9, 2.05]),
            dict(blank, claim_id="noise", kind="superiority", margin=0.1, x=[0.5, -0.4, 0.1]),
        ],
        alpha=0.05,
    )
    assert list(t.columns) == V.CLAIM_COLUMNS
    t = t.set_index("claim_id")
    assert t.loc["neg", "verdict"] == V.CONTRADICTED and t.loc["big", "verdict"] == V.CONTRADICTED
    assert t.loc["noise", "verdict"] == V.INCONCLUSIVE
    assert (t["p_adjusted"] >= t["p_value"]).all()
    assert list(V.verdict_table([], 0.05).columns) == V.CLAIM_COLUMNS


def test_non_superiority_p_is_the_one_sided_t_test_or_the_sign_test():
    x = np.array([0.1, 0.3, -0.2, 0.05])
    assert V.non_superiority_p(x, 0.5) == pytest.approx(stats.ttest_1samp(x, 0.5, alternative="less").pvalue)
    assert V.non_superiority_p(np.full(4, 0.2), 0.5) == 0.5**4  # identical values below the margin: sign test
    assert V.non_superiority_p(np.full(4, 0.7), 0.5) == 1.0
    assert np.isnan(V.non_superiority_p(np.array([0.1]), 0.5))
