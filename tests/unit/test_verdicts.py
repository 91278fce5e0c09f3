"""Verdict functions and intervals on synthetic data whose answer is known."""

import numpy as np
import pandas as pd
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
    "lo, hi, verdict",
    [
        (0.02, 0.15, V.INCONCLUSIVE),  # above 0 but reaching below the margin: the old rule said contradicted
        (0.0999, 0.3, V.INCONCLUSIVE),  # the lower end just below the margin
        (0.1001, 0.3, V.CONTRADICTED),  # an advantage larger than the margin is shown
        (0.12, 0.5, V.CONTRADICTED),
        (0.02, 0.08, V.SUPPORTED),  # inside (0, margin): a larger advantage is excluded (TOST's upper half)
        (-0.3, 0.0999, V.SUPPORTED),
        (-0.3, 0.1, V.INCONCLUSIVE),  # touching the margin excludes nothing
        (float("nan"), 0.05, V.INCONCLUSIVE),
    ],
)
def test_non_superiority_contradicted_only_above_the_margin(lo, hi, verdict):
    """The mirror of superiority's margin rule: *contradicted* needs ci_low > margin."""
    assert V.non_superiority(lo, hi, margin=0.1) == verdict


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
    # with the power column: what would decide it
    r.n_units_to_decide, r.design_note, r.ci_high = 12.0, "", 0.3
    assert V.claim_bullet(r).endswith(
        "**inconclusive** — would decide at about 12 seeds with the observed spread and effect (runs 5)."
    )


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


# ------------------------------------------------------------------------------------------ power
def _g(k: int, level: float = 0.95) -> float:
    """t quantile / sqrt(k): the half-width of a level t interval of k units with unit spread."""
    return stats.t.ppf(1 - (1 - level) / 2, k - 1) / np.sqrt(k)


def _sample(n: int, mean: float, sd: float) -> np.ndarray:
    """n values with exactly this mean and standard deviation (ddof 1)."""
    z = np.random.default_rng(n).normal(size=n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


def test_units_to_decide_decided_now_is_n_units():
    assert V.units_to_decide(0.5, 0.1, 0.9, 0.95, 6, V.SUPPORTED) == 6
    assert V.units_to_decide(-0.5, -0.9, -0.1, 0.95, 7, V.CONTRADICTED, "non_superiority", 0.1) == 7


@pytest.mark.parametrize("k", [7, 12, 40])
def test_units_to_decide_needs_exactly_k_units(k):
    """An effect placed between the k-1 and k half-widths of a t interval of unit spread: 5 units are
    inconclusive, k units decide -- and the same mean and spread over k (k - 1) units give an interval that
    excludes (does not exclude) 0, through :func:`mean_ci` itself."""
    d = (_g(k) + _g(k - 1)) / 2
    lo, hi = d - _g(5), d + _g(5)
    assert V.superiority(lo, hi) == V.INCONCLUSIVE
    assert V.units_to_decide(d, lo, hi, 0.95, 5, V.INCONCLUSIVE) == k
    assert V.mean_ci(_sample(5, d, 1.0), 0.95)[1:] == pytest.approx((lo, hi))
    assert V.mean_ci(_sample(k, d, 1.0), 0.95)[1] > 0 > V.mean_ci(_sample(k - 1, d, 1.0), 0.95)[1]
    # the same through verdict_table (one claim: Holm's level is 95%) and the claims table's column
    blank = dict(study="s", claim="c", what_was_run="", unit="seed", effect_name="", figure="")
    spec = dict(blank, claim_id="a", kind="superiority", margin=0.0)
    t5 = V.verdict_table([dict(spec, x=_sample(5, d, 1.0))], 0.05).iloc[0]
    assert t5.verdict == V.INCONCLUSIVE and t5.n_units_to_decide == k
    assert V.verdict_table([dict(spec, x=_sample(k, d, 1.0))], 0.05).iloc[0].verdict == V.SUPPORTED
    assert V.verdict_table([dict(spec, x=_sample(k - 1, d, 1.0))], 0.05).iloc[0].verdict == V.INCONCLUSIVE


def test_units_to_decide_non_superiority_both_sides_and_a_margin():
    m, lev = 0.1, 0.9
    up = m + (_g(20, lev) + _g(19, lev)) / 2  # above the margin: contradicted at 20 units
    assert V.units_to_decide(up, up - _g(6, lev), up + _g(6, lev), lev, 6, V.INCONCLUSIVE, "non_superiority", m) == 20
    down = m - (_g(9, lev) + _g(8, lev)) / 2  # below: supported at 9 units
    r = V.units_to_decide(down, down - _g(4, lev), down + _g(4, lev), lev, 4, V.INCONCLUSIVE, "non_superiority", m)
    assert r == 9
    # superiority with a margin: an effect in (0, margin) is decided either way eventually; at 0 it is contradicted
    assert np.isfinite(V.units_to_decide(0.0, -0.5, 0.5, 0.95, 5, V.INCONCLUSIVE, "superiority", 0.1))
    # threshold rule (superiority of effect - t): supported above t = 1
    e = 1 + (_g(15) + _g(14)) / 2
    assert V.units_to_decide(e, e - _g(5), e + _g(5), 0.95, 5, V.INCONCLUSIVE, ("threshold", 1.0)) == 15


def test_units_to_decide_never_or_unknown():
    # the effect sits on the threshold: no number of units decides
    assert V.units_to_decide(0.0, -0.4, 0.4, 0.95, 5, V.INCONCLUSIVE) == np.inf
    assert V.units_to_decide(0.1, -0.2, 0.4, 0.9, 5, V.INCONCLUSIVE, "non_superiority", 0.1) == np.inf
    # no interval (too few units for the level) or one unit: no spread to go by
    assert V.units_to_decide(0.4, np.nan, np.nan, 0.95, 5, V.INCONCLUSIVE) == np.inf
    assert V.units_to_decide(0.4, 0.1, 0.2, 0.95, 1, V.INCONCLUSIVE) == np.inf
    # the rule would decide this "inconclusive" row (a gate decided it) or cannot be applied: not computed
    assert np.isnan(V.units_to_decide(0.5, 0.2, 0.8, 0.95, 6, V.INCONCLUSIVE))
    assert np.isnan(V.units_to_decide(0.5, -0.2, 0.8, 0.95, 6, V.INCONCLUSIVE, "non_superiority", np.nan))
    assert np.isnan(V.units_to_decide(0.5, -0.2, 0.8, 0.95, 6, V.INCONCLUSIVE, "none"))


def test_units_to_decide_keeps_an_asymmetric_interval_shape():
    # lower half-width 3x the upper one: the lower end decides, at the k where 3 x the t half-width fits
    k = 30
    d = 3 * (_g(k) + _g(k - 1)) / 2
    assert V.units_to_decide(d, d - 3 * _g(5), d + _g(5), 0.95, 5, V.INCONCLUSIVE) == k


def test_decision_rule_given_or_inferred():
    assert V.decision_rule({"decision_rule": "non_superiority"}) == (
        "non_superiority",
        pytest.approx(np.nan, nan_ok=True),
    )
    assert V.decision_rule({"test": "one-sided t test of mean >= 0.3 (non-superiority)"})[0] == "non_superiority"
    assert V.decision_rule({"test": "Holm; supported when the interval lies above 1, contradicted when below"}) == (
        "threshold",
        1.0,
    )
    assert V.decision_rule({"test": "paired t-test"})[0] == "superiority"  # the safe default
    with pytest.raises(ValueError):
        V.decision_rule({"decision_rule": "equivalence"})
    with pytest.raises(ValueError, match="decision_rule"):
        V.claims_frame([_row(decision_rule="equivalence")])


def _row(**kw):
    base = dict(study="s", claim_id="a", claim="c", what_was_run="w", unit="seed", n_units=5, effect_name="e")
    base.update(effect=0.3, ci_low=-0.1, ci_high=0.7, ci_level=0.95, verdict=V.INCONCLUSIVE, test="t")
    base.update(kw)
    return base


def test_claims_frame_computes_power_and_design_notes(tmp_path):
    from nnrds import store

    rows = [
        V.Claim(**_row(claim_id="open")),
        V.Claim(**_row(claim_id="done", ci_low=0.1, verdict=V.SUPPORTED)),
        V.Claim(**_row(claim_id="flat", effect=0.0, ci_low=-0.4, ci_high=0.4)),
        V.Claim(**_row(claim_id="no_ci", ci_low=np.nan, ci_high=np.nan)),
        V.Claim(**_row(claim_id="capped", n_units_max=6)),
        V.Claim(**_row(claim_id="given", n_units_to_decide=np.inf, design_note=V.design_note("a gate", "20 seeds"))),
        _row(claim_id="as_dict"),  # a dict row without the optional fields
    ]
    t = V.claims_frame(rows).set_index("claim_id")
    assert list(V.claims_frame(rows).columns) == V.CLAIM_COLUMNS
    k = t.loc["open", "n_units_to_decide"]
    assert k == 7 and t.loc["as_dict", "n_units_to_decide"] == k  # 0.3 [-0.1, 0.7] of 5: 7 units
    assert t.loc["done", "n_units_to_decide"] == 5 and t.loc["flat", "n_units_to_decide"] == np.inf
    assert t.loc["no_ci", "n_units_to_decide"] == np.inf and t.loc["given", "n_units_to_decide"] == np.inf
    # ordinary inconclusive rows carry no design note; those the design cannot decide do
    assert t.loc["open", "design_note"] == t.loc["flat", "design_note"] == t.loc["done", "design_note"] == ""
    assert t.loc["no_ci", "design_note"].startswith("cannot decide at this design: no 0.95 interval from 5 units")
    assert f"about {k:.0f} units" in t.loc["capped", "design_note"] and "at most 6" in t.loc["capped", "design_note"]
    assert t.loc["given", "design_note"] == "cannot decide at this design: a gate; would decide: 20 seeds"
    # the CSV stays parseable: inf as "inf", integers as integers
    store.write_table(tmp_path / "c.csv", t.reset_index()[V.CLAIM_COLUMNS])
    text = (tmp_path / "c.csv").read_text()
    assert ",inf," in text
    back = pd.read_csv(tmp_path / "c.csv").set_index("claim_id")
    assert back.loc["flat", "n_units_to_decide"] == np.inf and back.loc["open", "n_units_to_decide"] == k


def test_decision_text_for_captions():
    from types import SimpleNamespace

    t = V.claims_frame([V.Claim(**_row(claim_id=c, **kw)) for c, kw in CASES]).set_index("claim_id")
    txt = {c: V.decision_text(SimpleNamespace(**r), "seeds") for c, r in zip(t.index, t.to_dict("records"))}
    assert txt["done"] == ""
    assert txt["open"].startswith("would decide at about ") and "seeds" in txt["open"] and "(runs 5)" in txt["open"]
    assert "the effect sits on the threshold" in txt["flat"]
    assert txt["no_ci"].startswith("no interval") and "cannot decide at this design" in txt["no_ci"]
    assert V.decision_text(SimpleNamespace(verdict=V.INCONCLUSIVE)) == ""  # a row from before the column


CASES = [
    ("done", dict(ci_low=0.1, verdict=V.SUPPORTED)),
    ("open", {}),
    ("flat", dict(effect=0.0, ci_low=-0.4, ci_high=0.4)),
    ("no_ci", dict(ci_low=np.nan, ci_high=np.nan)),
]


def test_min_units_rank_interval_matches_the_intervals():
    for level in (0.9, 0.95, 0.9875, 0.995):
        n = V.min_units_rank_interval(level)
        x = np.arange(1.0, n + 1)
        assert np.isfinite(V.hodges_lehmann_ci(x, level)[1]) and np.isfinite(V.median_ci(x, level)[1])
        assert np.isnan(V.hodges_lehmann_ci(x[:-1], level)[1]) and np.isnan(V.median_ci(x[:-1], level)[1])
    assert V.min_units_rank_interval(0.95) == 6 and V.min_units_rank_interval(0.9) == 5
