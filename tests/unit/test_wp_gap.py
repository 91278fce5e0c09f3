"""WP-gap claims (issue 11, item 12): the seed is the unit of replication; verdicts on synthetic runs with a
known answer (supported, contradicted, inconclusive), Holm-consistent intervals, clean RST caption."""

import io

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nnrds import verdicts
from nnrds.models import Arch
from nnrds.studies import wp_gap

PARAMS = {"mlp": ("mlp", 0), "nonpar": ("nonpar", 0), "const": ("const", 0), "cubic": ("monomial", 3)}
DEPTHS, WIDTHS = [2, 4, 8], [8, 16]


def synthetic_runs(gap_fn, seeds, datasets=("a",), rng_seed=0) -> pd.DataFrame:
    """Runs of the study's layout with gap = gap_fn(log n_params, kind, seed, rng)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for ds in datasets:
        for pname, (kind, deg) in PARAMS.items():
            for depth in DEPTHS:
                for width in WIDTHS:
                    n = Arch(10, 1, width, depth, kind, deg).n_params()
                    for s in seeds:
                        gap = gap_fn(np.log(n), kind, s, rng, ds)
                        rows.append(
                            {
                                "dataset": ds,
                                "parameterization": pname,
                                "kind": kind,
                                "degree": deg,
                                "depth": depth,
                                "width": width,
                                "n_params": n,
                                "seed": s,
                                "train_mse": 0.2,
                                "test_mse": 0.2 + gap,
                                "gap": gap,
                                "epochs": 10,
                            }
                        )
    return pd.DataFrame(rows, columns=wp_gap.RUN_COLUMNS)


def study(seeds):
    return {
        "seeds": list(seeds),
        "depths": DEPTHS,
        "widths": WIDTHS,
        "epochs": 10,
        "lr": 0.01,
        "parameterizations": list(PARAMS),
    }


def verdict_of(claims: pd.DataFrame) -> dict[str, str]:
    return dict(zip(claims.claim_id, claims.verdict))


def test_claims_supported_when_gap_grows_with_parameters():
    seeds = range(6)
    runs = synthetic_runs(lambda ln, k, s, r, ds: 0.1 * ln + r.normal(0, 0.01), seeds)
    per_seed, _, claims = wp_gap.summarize(runs, study(seeds))
    assert list(claims.columns) == verdicts.CLAIM_COLUMNS
    assert verdict_of(claims) == {"wp_vs_nonpar:a": "supported", "gap_vs_nparams:a": "supported"}
    assert (claims.n_units == 6).all() and (claims.ci_low > 0).all()
    assert per_seed.spearman_rho_gap_vs_nparams.gt(0.9).all()
    assert set(claims.figure) == {"figures/wp_gap/gap_wp_vs_nonpar.png", "figures/wp_gap/gap_vs_nparams.png"}


def test_claims_contradicted_when_gap_shrinks_with_parameters():
    seeds = range(6)
    runs = synthetic_runs(lambda ln, k, s, r, ds: 2.0 - 0.1 * ln + r.normal(0, 0.01), seeds)
    _, _, claims = wp_gap.summarize(runs, study(seeds))
    assert verdict_of(claims) == {"wp_vs_nonpar:a": "contradicted", "gap_vs_nparams:a": "contradicted"}
    assert (claims.ci_high < 0).all()


def test_claims_contradicted_by_margin_when_no_meaningful_effect():
    """No effect, tight interval around 0: a meaningful effect (> margin) is excluded -> contradicted."""
    seeds = range(10)
    runs = synthetic_runs(lambda ln, k, s, r, ds: 0.3 + r.normal(0, 1e-3), seeds, rng_seed=3)
    _, _, claims = wp_gap.summarize(runs, {**study(seeds), "claims": {"margin_rho": 0.5, "margin_gap": 0.01}})
    c = claims.set_index("claim_id")
    assert c.loc["wp_vs_nonpar:a", "verdict"] == "contradicted"  # |diff| ~ 1e-3 << margin 0.01
    assert c.loc["wp_vs_nonpar:a", "ci_low"] < 0 < c.loc["wp_vs_nonpar:a", "ci_high"] < 0.01


def test_pseudo_replication_is_inconclusive():
    """Seed-level effects of opposite sign: pooling the 72 runs as independent finds a 'significant'
    correlation; with the seed as the unit (3 seeds) the verdict is inconclusive."""
    slopes = {0: 0.3, 1: -0.25, 2: 0.35}
    seeds = list(slopes)
    runs = synthetic_runs(lambda ln, k, s, r, ds: slopes[s] * ln + r.normal(0, 0.01), seeds)
    pooled_rho, pooled_p = stats.spearmanr(runs.n_params, runs.gap)
    assert pooled_rho > 0 and pooled_p < 0.05  # what the old summary reported as evidence
    per_seed, _, claims = wp_gap.summarize(runs, study(seeds))
    assert np.allclose(per_seed.spearman_rho_gap_vs_nparams, [1, -1, 1], atol=0.05)
    assert verdict_of(claims) == {"wp_vs_nonpar:a": "inconclusive", "gap_vs_nparams:a": "inconclusive"}
    assert (claims.n_units == 3).all()
    # the correlation's interval is clipped to [-1, 1]: the units to decide come from the unclipped t interval
    r = claims.set_index("claim_id").loc["gap_vs_nparams:a"]
    assert (r.ci_low, r.ci_high) == (-1.0, 1.0)
    x = per_seed.spearman_rho_gap_vs_nparams.to_numpy()
    eff, lo, hi = verdicts.mean_ci(x, r.ci_level)
    assert lo < -1 and r.n_units_to_decide == verdicts.units_to_decide(
        eff, lo, hi, r.ci_level, 3, r.verdict, "superiority", r.margin
    )
    assert r.n_units_to_decide > verdicts.units_to_decide(
        eff, -1.0, 1.0, r.ci_level, 3, r.verdict, "superiority", r.margin
    )


def test_one_seed_is_inconclusive():
    runs = synthetic_runs(lambda ln, k, s, r, ds: 0.1 * ln + r.normal(0, 0.01), [0])
    _, _, claims = wp_gap.summarize(runs, study([0]))
    assert (claims.verdict == "inconclusive").all() and claims.ci_low.isna().all()


def test_per_seed_paired_difference_by_hand():
    """gap(nonpar) - gap(WP) pairs runs of the same depth, width and seed; MLP runs are not WP."""

    def gap(ln, kind, s, r, ds):
        return {"nonpar": 1.0 + s, "const": 0.25, "monomial": 0.75, "mlp": 9.0}[kind]

    per_seed = wp_gap.per_seed(synthetic_runs(gap, [0, 1]))
    np.testing.assert_allclose(per_seed.gap_diff_nonpar_minus_wp, [0.5, 1.5])
    assert per_seed.n_pairs.tolist() == [12, 12]  # 2 WP bases x 3 depths x 2 widths
    assert per_seed.n_runs.tolist() == [24, 24]


@pytest.mark.parametrize("rng_seed", range(12))
def test_holm_interval_agrees_with_adjusted_p(rng_seed):
    """Several datasets with effects of different sizes: interval excludes 0 <=> Holm-adjusted p <= alpha,
    and the step-down levels are between Bonferroni's and alpha's."""
    eff = {"a": 0.0, "b": 0.005, "c": 0.01, "d": 0.05}
    seeds = range(4)
    runs = synthetic_runs(
        lambda ln, k, s, r, ds: eff[ds] * ln + r.normal(0, 0.05), seeds, datasets=tuple(eff), rng_seed=rng_seed
    )
    _, _, claims = wp_gap.summarize(runs, study(seeds))
    m = len(claims)
    assert m == 8
    excl = (claims.ci_low > 0) | (claims.ci_high < 0)
    assert (excl == (claims.p_adjusted <= 0.05)).all()
    assert np.allclose(claims.p_adjusted, verdicts.holm(claims.p_value))
    assert claims.ci_level.between(0.95 - 1e-12, 1 - 0.05 / m + 1e-12).all()


def test_caption_renders_as_clean_rst():
    docutils_core = pytest.importorskip("docutils.core")
    seeds = range(3)
    runs = synthetic_runs(lambda ln, k, s, r, ds: 0.1 * ln + r.normal(0, 0.05), seeds, datasets=("a", "b"))
    per_seed, med, claims = wp_gap.summarize(runs, study(seeds))
    from nnrds.data.regression import DESCRIPTIONS

    text = wp_gap.caption(per_seed, med, claims, "smoke", study(seeds), dict(DESCRIPTIONS))
    warnings = io.StringIO()
    html = docutils_core.publish_string(
        text, writer="html", settings_overrides={"warning_stream": warnings, "report_level": 1, "halt_level": 5}
    )
    assert warnings.getvalue() == "" and b"System Message" not in html
    for c in claims.itertuples():
        assert c.claim_id in text and c.verdict in text


def test_identical_seeds_need_enough_seeds():
    """Tied per-seed effects (zero spread) are not certainty: 2 equal seeds are inconclusive (the smoke DAG's
    diabetes had rho = 0.93, 0.93), 10 equal seeds are supported by the sign test; rho intervals stay in [-1, 1]."""

    def claims_for(n):
        seeds = range(n)
        runs = synthetic_runs(lambda ln, k, s, r, ds: 0.1 * ln, seeds)  # per seed: rho = 1 exactly
        return wp_gap.summarize(runs, study(seeds))[2].set_index("claim_id").loc["gap_vs_nparams:a"]

    two, ten = claims_for(2), claims_for(10)
    assert two.verdict == "inconclusive" and np.isnan(two.ci_low) and two.p_value == 0.5
    assert ten.verdict == "supported" and ten.ci_low == ten.ci_high == 1.0 and ten.p_value == 2 * 0.5**10
    seeds = range(3)
    runs = synthetic_runs(lambda ln, k, s, r, ds: (0.1 if s else -0.1) * ln + r.normal(0, 0.01), seeds)
    c = wp_gap.summarize(runs, study(seeds))[2].set_index("claim_id").loc["gap_vs_nparams:a"]
    assert -1.0 <= c.ci_low < c.ci_high <= 1.0


# ---------------------------------------------------------------------------------------------- loss landscapes
def quadratic_surface(curvatures, coords, L0=0.1):
    """Surfaces (R, n, n) of L = L0 + k (a^2 + b^2) / 2, one k per replica."""
    A, B = np.meshgrid(coords, coords, indexing="ij")
    return np.stack([L0 + 0.5 * k * (A**2 + B**2) for k in curvatures])


def test_mean_increase_known_answer_on_quadratics():
    """On L = L0 + k (a^2 + b^2) / 2 the statistic is k mean(a^2) / (1 + L0) and the fitted curvature is k; a
    flatter quadratic comes out smoother; a constant loss has statistic 0."""
    from nnrds import landscape

    coords = np.linspace(-0.5, 0.5, 11)
    surf = quadratic_surface([4.0, 1.0, 0.0], coords)
    st = landscape.slice_stats(surf, coords)
    want = np.array([4.0, 1.0, 0.0]) * np.mean(coords**2) / 1.1
    np.testing.assert_allclose(st.mean_increase, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(landscape.mean_increase(surf, coords), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(st.hess_max, [4.0, 1.0, 0.0], atol=1e-10)
    assert st.mean_increase[1] < st.mean_increase[0]
    with pytest.raises(ValueError, match="symmetric"):
        landscape.mean_increase(surf, np.linspace(0, 1, 11))


def landscape_stats(k_ref, k_wp, seeds, noise=0.0, rng_seed=0, wp="legendre3"):
    """Landscape-job statistics of quadratic slices: the reference (mlp) with curvature k_ref, the WP net k_wp,
    each seed's curvatures multiplied by exp(N(0, noise))."""
    rng = np.random.default_rng(rng_seed)
    coords = np.linspace(-0.5, 0.5, 5)
    rows = []
    for pn, kind, k in (("mlp", "mlp", k_ref), (wp, "legendre", k_wp)):
        ks = k * np.exp(rng.normal(0, noise, len(seeds))) if noise else np.full(len(seeds), k)
        from nnrds import landscape

        st = landscape.slice_stats(quadratic_surface(ks, coords), coords)
        for i, s in enumerate(seeds):
            rows.append(
                {
                    "dataset": "elm",
                    "parameterization": pn,
                    "kind": kind,
                    "degree": 0,
                    "depth": 4,
                    "width": 8,
                    "n_params": 100,
                    "seed": s,
                    "train_mse": 0.1,
                    "test_mse": 0.2,
                    "gap": 0.1,
                    **st.iloc[i].to_dict(),
                }
            )
    return pd.DataFrame(rows, columns=wp_gap.LANDSCAPE_STAT_COLUMNS)


def landscape_verdict(k_ref, k_wp, n_seeds, noise, rng_seed=0):
    seeds = range(n_seeds)
    runs = synthetic_runs(lambda ln, k, s, r, ds: 0.1 * ln + r.normal(0, 0.05), seeds)
    cfg = {**study(seeds), "landscape": {"nets": {"mlp": {"depth": 4, "width": 8}}, "points": 5, "radius": 0.5}}
    claims = wp_gap.summarize(runs, cfg, landscape_stats(k_ref, k_wp, seeds, noise, rng_seed))[2]
    return claims.set_index("claim_id").loc["smoother_landscape:elm:legendre3"]


def test_landscape_claim_supported_contradicted_inconclusive():
    """Per-seed log ratios: WP 3x flatter -> supported (effect log 3); WP as sharp as the MLP with little noise ->
    contradicted by the margin (effect ~0); WP 3x sharper -> contradicted; 2 noisy seeds -> inconclusive."""
    sup = landscape_verdict(3.0, 1.0, 10, 0.1)
    assert sup.verdict == "supported" and sup.ci_low < np.log(3.0) < sup.ci_high and sup.n_units == 10
    assert landscape_verdict(1.0, 1.0, 10, 0.02).verdict == "contradicted"
    assert landscape_verdict(1.0, 3.0, 10, 0.1).verdict == "contradicted"
    inc = landscape_verdict(1.5, 1.0, 2, 0.5)
    assert inc.verdict == "inconclusive" and inc.ci_low < 0 < inc.ci_high


def test_landscape_claims_join_the_holm_family():
    """The landscape comparison counts in Holm's m with the sweep's claims (2 claims x 1 dataset + 1)."""
    c = landscape_verdict(3.0, 1.0, 10, 0.1)
    assert "Holm over 3 comparisons" in c.test
    seeds = range(10)
    runs = synthetic_runs(lambda ln, k, s, r, ds: 0.1 * ln + r.normal(0, 0.05), seeds)
    assert "Holm over 2 comparisons" in wp_gap.summarize(runs, study(seeds))[2].test.iloc[0]


def test_landscape_effect_by_hand_and_nonpositive_statistic():
    st = landscape_stats(2.0, 1.0, [0, 1])
    eff = wp_gap.landscape_effects(st, {"reference": "mlp"})
    np.testing.assert_allclose(eff.log_ratio_ref_over_wp, np.log(2.0), rtol=1e-12)
    st.loc[(st.parameterization == "legendre3") & (st.seed == 1), "mean_increase"] = -0.01  # not a minimum
    eff = wp_gap.landscape_effects(st, {"reference": "mlp"})
    assert np.isfinite(eff.log_ratio_ref_over_wp.iloc[0]) and np.isnan(eff.log_ratio_ref_over_wp.iloc[1])


def test_study_for_applies_per_dataset_sweep():
    s = {**study([0]), "per_dataset": {"elm": {"depths": [2], "parameterizations": ["mlp"]}}}
    e = wp_gap.study_for(s, "elm")
    assert e["depths"] == [2] and e["parameterizations"] == ["mlp"] and e["widths"] == WIDTHS
    assert "per_dataset" not in e and wp_gap.study_for(s, "other")["depths"] == DEPTHS


def test_run_landscape_tiny_replicanet():
    """The landscape job end to end on a tiny synthetic regression: tables of the right shape, centre loss equals
    the training MSE, statistics positive at a trained point, parameters untouched by slicing (train MSE)."""
    spec = {"kind": "friedman1", "n_features": 5, "noise": 0.1, "n_train": 12, "n_test": 8}
    st = {
        **study([0, 1]),
        "epochs": 15,
        "batch_size": None,
        "T": 1.0,
        "landscape": {"nets": {"mlp": {"depth": 2, "width": 4}, "const": {"depth": 2, "width": 4}}, "points": 3},
    }
    from nnrds.experiment import Cell

    st["landscape"]["dataset"] = "f"
    out = wp_gap.run_landscape(
        Cell(id={}, study=st, dtype="float64", dataset=spec), {"mlp": {"kind": "mlp"}, "const": {"kind": "const"}}
    )
    surf, stats_, tim = out["landscape"], out["landscape_stats"], out["timings"]
    assert len(surf) == 2 * 9 and len(stats_) == 4 and len(tim) == 2
    np.testing.assert_allclose(stats_.loss_center, stats_.train_mse, rtol=1e-10)
    centre = surf[(surf.a == 0) & (surf.b == 0)].set_index("parameterization").loss
    first = stats_[stats_.seed == 0].set_index("parameterization").train_mse
    np.testing.assert_allclose(centre.loc[first.index], first, rtol=1e-10)
    assert (stats_.mean_increase > 0).all()


def test_caption_with_landscape_and_per_dataset_renders_as_clean_rst():
    docutils_core = pytest.importorskip("docutils.core")
    seeds = range(3)
    runs = synthetic_runs(lambda ln, k, s, r, ds: 0.1 * ln + r.normal(0, 0.05), seeds)
    cfg = {
        **study(seeds),
        "per_dataset": {"a": {"depths": [2, 4]}},
        "landscape": {"dataset": "elm", "nets": {"mlp": {"depth": 4, "width": 8}}, "points": 5, "radius": 0.5},
    }
    stats_ = landscape_stats(2.0, 1.0, seeds, 0.1)
    per_seed, med, claims = wp_gap.summarize(runs, cfg, stats_)
    eff = wp_gap.landscape_effects(stats_, cfg["landscape"])
    text = wp_gap.caption(per_seed, med, claims, "smoke", cfg, {"a": "synthetic"}, eff)
    warnings = io.StringIO()
    html = docutils_core.publish_string(
        text, writer="html", settings_overrides={"warning_stream": warnings, "report_level": 1, "halt_level": 5}
    )
    assert warnings.getvalue() == "" and b"System Message" not in html
    assert "smoother_landscape:elm:legendre3" in text and "mean relative loss increase" in text
    assert "Datasets with their own (thinner) sweep: *a*" in text
