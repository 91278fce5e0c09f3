"""Weight-parameterization generalization-gap study.

Claims tested (per dataset; :func:`claims`): parameterizing W(t) with a small basis (parameter count
independent of depth) shrinks the generalization gap -- against the non-parametric ResNet of the same depth
and width (``wp_vs_nonpar``) -- and the gap grows with the parameter count (``gap_vs_nparams``). One
*cell* = one (dataset, parameterization); it trains every depth x width, with all seeds of an architecture
batched as replicas of one :class:`~nnrds.models.ReplicaNet`.

Unit of replication. All runs of one seed share a data split (:func:`nnrds.experiment.regression_data`) and an
architecture's runs share their architecture, so runs are not independent. The effects are therefore
computed *within* a seed -- the Spearman correlation of gap with parameter count across that seed's
architectures, and that seed's mean paired gap difference nonpar - WP at equal depth and width -- and the
seeds (independent splits and initializations) are the units of the test: a one-sample t interval of the
mean over seeds. Several comparisons (claims x datasets) are Holm-corrected; each interval is taken at the
level Holm's step-down uses for that comparison, so interval and adjusted p-value agree, and the verdict
comes from :func:`nnrds.verdicts.superiority` with a smallest effect of interest (``wp_gap.claims``).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from .. import experiment, guards, verdicts
from ..train import fit

log = logging.getLogger(__name__)

STUDY = "wp_gap"
#: parameterization kinds whose parameter count does not grow with depth (the "weight parameterizations")
WP_KINDS = ("const", "monomial", "legendre")
REFERENCE_KIND = "nonpar"
#: figure of each claim (relative to the repository root)
FIGURES = {"wp_vs_nonpar": "figures/wp_gap/gap_wp_vs_nonpar.png", "gap_vs_nparams": "figures/wp_gap/gap_vs_nparams.png"}
#: defaults of ``wp_gap.claims`` (the schema holds the same)
CLAIM_DEFAULTS = {"alpha": 0.05, "margin_rho": 0.1, "margin_gap": 0.05}

RUN_COLUMNS = [
    "dataset",
    "parameterization",
    "kind",
    "degree",
    "depth",
    "width",
    "n_params",
    "seed",
    "train_mse",
    "test_mse",
    "gap",
    "epochs",
]


def run_cell(cell: experiment.Cell) -> dict[str, pd.DataFrame]:
    """Train every (depth, width, seed) of one dataset x parameterization (``cell["dataset"]``, ``cell["param"]``).
    Returns the tables runs and timings."""
    dataset, pname, pspec, study = cell["dataset"], cell["param"], cell.parameterization, cell.study
    base_seed, rt = cell.base_seed, cell.prepare()
    seeds = list(study["seeds"])
    data = experiment.regression_data(cell.dataset, seeds, base_seed, rt)
    rows, timings = [], []
    for depth in study["depths"]:
        for width in study["widths"]:
            arch = experiment.resnet_arch(data, pspec, width=width, depth=depth, T=study["T"])
            net = experiment.replica_net(arch, seeds, base_seed, rt)
            where = guards.current()  # the job's study/cell/config key; replicas labelled for a divergence message
            where = where.at(labels=[f"seed {s}, depth {depth}, width {width}" for s in seeds])
            res = fit(
                net,
                data.X_train,
                data.Y_train,
                epochs=study["epochs"],
                lr=study["lr"],
                batch_size=study["batch_size"],
                seed=base_seed,
                where=where,
            )
            log.info(
                "%s/%s depth %d width %d: %d seeds trained in %.1f s",
                dataset,
                pname,
                depth,
                width,
                len(seeds),
                res.wall_time_s,
            )
            err = experiment.errors(
                net, {"train_mse": (data.X_train, data.Y_train), "test_mse": (data.X_test, data.Y_test)}
            )
            head = {
                "dataset": dataset,
                "parameterization": pname,
                **experiment.arch_columns(arch),
                "epochs": res.epochs,
            }
            rows += experiment.tabulate(head, [{"seed": s} for s in seeds], err)
            timings += [
                {
                    "dataset": dataset,
                    "parameterization": pname,
                    "depth": depth,
                    "width": width,
                    "seed": s,
                    "wall_time_s": res.wall_time_s / len(seeds),
                    "batch_wall_time_s": res.wall_time_s,
                    "replicas_in_batch": len(seeds),
                    "device": str(rt.device),
                }
                for s in seeds
            ]
    return {"runs": pd.DataFrame(rows, columns=RUN_COLUMNS), "timings": pd.DataFrame(timings)}


PER_SEED_COLUMNS = ["dataset", "seed", "n_runs", "spearman_rho_gap_vs_nparams", "n_pairs", "gap_diff_nonpar_minus_wp"]


def per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, seed): the within-seed effects that are the units of the claims' tests.

    ``spearman_rho_gap_vs_nparams``: rank correlation of gap with parameter count across the seed's runs
    (all parameterizations, depths, widths). ``gap_diff_nonpar_minus_wp``: mean over the seed's (WP basis,
    depth, width) of gap(nonpar) - gap(WP basis) at the same depth and width (positive = WP has the smaller
    gap; NaN when the study has no nonpar or no WP runs); ``n_pairs`` such pairs.
    """
    rows = []
    for (ds, seed), g in runs.groupby(["dataset", "seed"], sort=True):
        rho = stats.spearmanr(g["n_params"], g["gap"])[0] if g["n_params"].nunique() > 1 else float("nan")
        ref = g[g.kind == REFERENCE_KIND].set_index(["depth", "width"])["gap"]
        wpr = g[g.kind.isin(WP_KINDS)]
        diffs = [ref.loc[(r.depth, r.width)] - r.gap for r in wpr.itertuples() if (r.depth, r.width) in ref.index]
        rows.append(
            {
                "dataset": ds,
                "seed": int(seed),
                "n_runs": len(g),
                "spearman_rho_gap_vs_nparams": float(rho),
                "n_pairs": len(diffs),
                "gap_diff_nonpar_minus_wp": float(np.mean(diffs)) if diffs else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=PER_SEED_COLUMNS)


def _degenerate(x: np.ndarray) -> bool:
    """All units equal (e.g. tied rank correlations of a tiny sweep): the t interval would have width 0."""
    return x.size >= 2 and bool(np.all(x == x[0]))


def _p_value(x: np.ndarray) -> float:
    """Two-sided one-sample t-test of mean 0 (the dual of :func:`nnrds.verdicts.mean_ci`); for identical
    values, the exact sign test (the dual of :func:`nnrds.verdicts.median_ci`, used for them)."""
    if x.size < 2:
        return float("nan")
    if _degenerate(x):
        return 1.0 if x[0] == 0 else float(min(1.0, 2.0 * 0.5**x.size))
    return float(stats.ttest_1samp(x, 0.0).pvalue)


def _interval(x: np.ndarray, level: float, bounds: tuple[float, float] | None) -> tuple[float, float, float]:
    """(mean, low, high): Student t over units; identical values (zero spread says nothing about the spread
    of the population) get the distribution-free median interval instead (NaN, i.e. inconclusive, when
    there are too few units for the level). A bounded effect (a correlation) has its interval clipped to
    the bounds, which the mean cannot leave."""
    if _degenerate(x):
        _, lo, hi = verdicts.median_ci(x, level=level)
        eff = float(x[0])
    else:
        eff, lo, hi = verdicts.mean_ci(x, level=level)
    if bounds is not None and np.isfinite(lo):
        lo, hi = float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds))
    return eff, lo, hi


def claims(seed_table: pd.DataFrame, study: dict) -> pd.DataFrame:
    """The study's claims table (:data:`nnrds.verdicts.CLAIM_COLUMNS`), one row per claim x dataset.

    Effect per claim and dataset: the mean over seeds of the per-seed effect (:func:`per_seed`); interval:
    Student t over seeds. The m comparisons are Holm-corrected: sorted by p-value, comparison j (1-based)
    gets the level 1 - alpha/(m - j + 1) while every smaller p-value was rejected, 1 - alpha/m after the
    first non-rejection -- so the interval excludes 0 exactly when the Holm-adjusted p-value is <= alpha.
    Verdict: :func:`nnrds.verdicts.superiority` of that interval with the margin of the claim
    (contradicted also when a meaningful effect -- above the margin -- is excluded).
    """
    cfg = {**CLAIM_DEFAULTS, **(study.get("claims") or {})}
    alpha = float(cfg["alpha"])
    params = ", ".join(study.get("parameterizations", []))
    what = (
        f"{len(study['seeds'])} seeds x parameterizations [{params}] x depths {study['depths']} x widths "
        f"{study['widths']}, {study['epochs']} epochs of Adam (lr {study['lr']}); every seed has its own data split"
    )
    specs = [  # (claim id, per-seed column, margin, bounds of the effect, claim, effect name)
        (
            "wp_vs_nonpar",
            "gap_diff_nonpar_minus_wp",
            float(cfg["margin_gap"]),
            None,
            "{ds}: a weight parameterization with a depth-independent basis (const, monomial, Legendre) has a smaller "
            "generalization gap than the non-parametric ResNet of the same depth and width",
            "mean over seeds of [gap(nonpar) - gap(WP)] at equal depth/width, averaged over WP bases and architectures "
            "(MSE, units of training-output variance)",
        ),
        (
            "gap_vs_nparams",
            "spearman_rho_gap_vs_nparams",
            float(cfg["margin_rho"]),
            (-1.0, 1.0),
            "{ds}: the generalization gap grows with the number of trainable parameters",
            "mean over seeds of the within-seed Spearman rho(gap, n_params) across architectures",
        ),
    ]
    rows = []
    for cid, col, margin, bounds, text, ename in specs:
        for ds, g in seed_table.groupby("dataset", sort=True):
            x = g[col].to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            if x.size == 0:
                continue  # the study ran no such comparison (e.g. no nonpar)
            rows.append(
                {
                    "study": STUDY,
                    "claim_id": f"{cid}:{ds}",
                    "claim": text.format(ds=ds),
                    "what_was_run": what,
                    "unit": "seed (one data split + initializations; effect computed within the seed)",
                    "n_units": int(x.size),
                    "effect_name": ename,
                    "x": x,
                    "margin": margin,
                    "p_value": _p_value(x),
                    "figure": FIGURES[cid],
                    "bounds": bounds,
                }
            )
    m = len(rows)
    p = np.array([r["p_value"] for r in rows], dtype=float)
    p_adj = verdicts.holm(p) if m else p
    level = np.full(m, 1.0 - alpha / max(m, 1))
    order = np.argsort(np.where(np.isfinite(p), p, np.inf), kind="stable")
    for j, i in enumerate(order):
        if not (np.isfinite(p_adj[i]) and p_adj[i] <= alpha):
            break  # Holm stops at the first non-rejection: the rest keep the Bonferroni level
        level[i] = 1.0 - alpha / (m - j)
    out = []
    for i, r in enumerate(rows):
        x, bounds = r.pop("x"), r.pop("bounds")
        eff, lo, hi = _interval(x, float(level[i]), bounds)
        out.append(
            verdicts.Claim(
                **r,
                effect=eff,
                ci_low=lo,
                ci_high=hi,
                ci_level=float(level[i]),
                p_adjusted=float(p_adj[i]),
                verdict=verdicts.superiority(lo, hi, margin=r["margin"]),
                test=(
                    f"one-sample t over seeds (two-sided; sign test if all seeds agree exactly); Holm over {m} "
                    "comparisons (claims x datasets), "
                    f"interval at the Holm step-down level; superiority with margin {r['margin']:g}"
                ),
            )
        )
    return verdicts.claims_frame(out) if out else pd.DataFrame(columns=verdicts.CLAIM_COLUMNS)


def summarize(runs: pd.DataFrame, study: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per-seed effects, median gap per parameterization, claims table)."""
    seed_table = per_seed(runs)
    med = []
    for ds, g in runs.groupby("dataset", sort=True):
        for pn, gp in g.groupby("parameterization", sort=True):
            med.append(
                {
                    "dataset": ds,
                    "parameterization": pn,
                    "n_runs": len(gp),
                    "median_n_params": float(gp["n_params"].median()),
                    "median_train_mse": float(gp["train_mse"].median()),
                    "median_test_mse": float(gp["test_mse"].median()),
                    "median_gap": float(gp["gap"].median()),
                    "q25_gap": float(gp["gap"].quantile(0.25)),
                    "q75_gap": float(gp["gap"].quantile(0.75)),
                }
            )
    study = (
        study
        if study is not None
        else {
            "seeds": sorted(runs.seed.unique()),
            "depths": sorted(runs.depth.unique()),
            "widths": sorted(runs.width.unique()),
            "epochs": "?",
            "lr": "?",
        }
    )
    return seed_table, pd.DataFrame(med), claims(seed_table, study)


def _num(x: float) -> str:
    return f"{x:.2g}" if np.isfinite(x) else "n/a"


def caption(
    seed_table: pd.DataFrame,
    med: pd.DataFrame,
    claims_table: pd.DataFrame,
    scale: str,
    study: dict,
    dataset_notes: dict[str, str],
) -> str:
    """RST caption with the numbers, used by the report for every figure and table of this study."""
    cfg = {**CLAIM_DEFAULTS, **(study.get("claims") or {})}
    lines = [
        f"Weight-parameterization generalization gap, **{scale}** scale: depths {study['depths']}, "
        f"widths {study['widths']}, seeds {study['seeds']}, {study['epochs']} epochs of Adam (lr {study['lr']}). "
        "Each dot is one training run (in the WP-vs-nonpar figure: a WP run against the nonpar run of the same "
        "depth, width and seed); MSE is in units of the training outputs' variance "
        "(inputs and outputs standardized with training statistics); gap = test MSE − train MSE. "
        "Every layer's W(t) starts with variance 1/width, and bases of one span start from the same network.",
        "",
        "Datasets: " + "; ".join(f"*{k}*: {v}" for k, v in dataset_notes.items()) + ".",
        "",
        "Runs of one seed share a data split, so the seed is the unit of replication: each effect is computed "
        "within a seed, and its interval is a Student t interval over seeds. The comparisons are Holm-corrected "
        f"(α = {cfg['alpha']:g}, intervals at the Holm step-down level); a claim is *supported* when its "
        "interval lies above 0, *contradicted* when it lies below the smallest effect of interest "
        f"(ρ {cfg['margin_rho']:g}; gap difference {cfg['margin_gap']:g}), *inconclusive* otherwise.",
        "",
    ]
    for ds, g in seed_table.groupby("dataset", sort=True):
        m = med[med.dataset == ds].sort_values("median_gap")
        meds = ", ".join(f"{x.parameterization} {x.median_gap:.3g}" for x in m.itertuples())
        rhos = ", ".join(_num(v) for v in g.spearman_rho_gap_vs_nparams)
        diffs = ", ".join(_num(v) for v in g.gap_diff_nonpar_minus_wp)
        lines.append(
            f"* **{ds}**: per-seed Spearman ρ(gap, n_params) = {rhos}; per-seed mean gap(nonpar) − "
            f"gap(WP) = {diffs}; median gap by parameterization: {meds}."
        )
    lines.append("")
    for r in claims_table.itertuples():
        lines.append(
            f"* Claim ``{r.claim_id}`` — {r.claim}: effect {r.effect:.3g} "
            f"[{_num(r.ci_low)}, {_num(r.ci_high)}] ({100 * r.ci_level:.1f}% interval, {r.n_units} seeds, "
            f"Holm-adjusted p = {_num(r.p_adjusted)}): **{r.verdict}**."
        )
    return "\n".join(lines) + "\n"
