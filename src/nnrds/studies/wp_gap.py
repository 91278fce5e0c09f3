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

A dataset may run a thinner sweep than the others (``wp_gap.per_dataset.<name>``: its own parameterizations, depths,
widths; :func:`study_for`), e.g. the land-model surrogate at two training sizes within the job-time budget.

Loss landscapes (``wp_gap.landscape``; :func:`run_landscape`): the claim ``smoother_landscape`` -- WP-ResNets have
smoother loss landscapes than MLPs -- is tested on one dataset with networks of comparable parameter count (one
architecture per parameterization, config ``landscape.nets``), trained like the sweep's runs with the same seeds.
Smoothness of a trained replica: the mean relative increase of its training loss over a 2-D slice along two
filter-normalized random directions (:func:`nnrds.landscape.mean_increase`, radius ``landscape.radius``). The unit is
again the seed: per seed, the log ratio log(mean increase of the MLP / mean increase of the WP-ResNet) (positive =
WP smoother), Holm-corrected together with the sweep's claims.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import config, experiment, guards, landscape, verdicts
from ..train import mse_per_replica

log = logging.getLogger(__name__)

STUDY = "wp_gap"
#: parameterization kinds whose parameter count does not grow with depth (the "weight parameterizations")
WP_KINDS = ("const", "monomial", "legendre")
REFERENCE_KIND = "nonpar"
#: figure of each claim (relative to the repository root)
CELLS = ("run_cell",)
FIGURES = {
    "wp_vs_nonpar": "figures/wp_gap/gap_wp_vs_nonpar.png",
    "gap_vs_nparams": "figures/wp_gap/gap_vs_nparams.png",
    "smoother_landscape": "figures/wp_gap/landscape.png",
}
#: defaults of ``wp_gap.claims``: the schema's, its one source
CLAIM_DEFAULTS = config.schema_defaults("wp_gap", "claims")
#: keys of the study a dataset may override (``wp_gap.per_dataset.<name>``)
PER_DATASET_KEYS = ("parameterizations", "depths", "widths")


def study_for(study: dict, dataset: str) -> dict:
    """The study config as dataset ``dataset`` runs it: ``study`` with its ``per_dataset.<dataset>`` overrides
    applied (and the ``per_dataset`` section itself dropped: a job sees only its own sweep)."""
    over = (study.get("per_dataset") or {}).get(dataset) or {}
    base = {k: v for k, v in study.items() if k != "per_dataset"}
    return {**base, **{k: v for k, v in over.items() if k in PER_DATASET_KEYS}}


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


def _train_net(data, pspec: dict, depth: int, width: int, study: dict, seeds: list, base_seed: int, rt, labels):
    """Build and train one replica batch (one replica per seed) of the study's training setup
    (:func:`nnrds.experiment.train_replicas`). Returns (arch, net, fit result, the ``Where`` with the replicas'
    labels)."""
    arch = experiment.resnet_arch(data, pspec, width=width, depth=depth, T=study["T"])
    net = experiment.replica_net(arch, seeds, base_seed, rt)
    where = guards.current().at(labels=labels)  # the job's study/cell/config key; replicas labelled
    return arch, net, experiment.train_replicas(net, data, study, base_seed, where=where), where


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
            labels = [f"seed {s}, depth {depth}, width {width}" for s in seeds]
            arch, net, res, _ = _train_net(data, pspec, depth, width, study, seeds, base_seed, rt, labels)
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


#: defaults of ``wp_gap.landscape``: the schema's (workflow/schemas/studies/wp_gap.schema.yaml)
LANDSCAPE_DEFAULTS = config.schema_defaults("wp_gap", "landscape")
LANDSCAPE_COLUMNS = ["dataset", "parameterization", "seed", "a", "b", "loss"]
#: a landscape net's run columns (as :data:`RUN_COLUMNS`, without epochs) and its slice statistics
LANDSCAPE_STAT_COLUMNS = RUN_COLUMNS[:-1] + [
    "loss_center",
    "mean_increase",
    "sharpness",
    "hess_max",
    "hess_min",
]


def landscape_config(study: dict) -> dict:
    """``wp_gap.landscape`` with its defaults."""
    return {**LANDSCAPE_DEFAULTS, **(study.get("landscape") or {})}


def run_landscape(cell: experiment.Cell, pspecs: dict[str, dict]) -> dict[str, pd.DataFrame]:
    """Train one net per entry of ``landscape.nets`` (parameterization name -> depth, width; ``pspecs`` their
    specs) for every seed, batched as replicas like :func:`run_cell`, on ``cell.dataset``, then slice each replica's
    training loss (:func:`nnrds.landscape.loss_surface`) and take its statistics (:func:`nnrds.landscape.slice_stats`).
    Returns the tables landscape (surfaces of the first seed), landscape_stats (every replica) and timings."""
    import time

    study, base_seed, rt = cell.study, cell.base_seed, cell.prepare()
    ls = landscape_config(study)
    dataset = ls["dataset"]
    seeds = list(study["seeds"])
    data = experiment.regression_data(cell.dataset, seeds, base_seed, rt)
    coords = np.linspace(-float(ls["radius"]), float(ls["radius"]), int(ls["points"]))
    A, B = np.meshgrid(coords, coords, indexing="ij")

    @torch.no_grad()
    def train_loss(net):
        return mse_per_replica(net, data.X_train, data.Y_train)

    surfaces, stats, timings = [], [], []
    for pname, na in ls["nets"].items():
        labels = [f"seed {s}, landscape net {pname}" for s in seeds]
        arch, net, res, where = _train_net(
            data, pspecs[pname], int(na["depth"]), int(na["width"]), study, seeds, base_seed, rt, labels
        )
        t0 = time.perf_counter()
        surf, _, _ = landscape.loss_surface(net, train_loss, coords, seed=base_seed)
        guards.check_finite(
            surf, what=f"loss slice of {pname}", where=where.at(config_key="wp_gap.landscape.radius"), step="slice"
        )
        t_slice = time.perf_counter() - t0
        st = landscape.slice_stats(surf, coords)
        err = experiment.errors(
            net, {"train_mse": (data.X_train, data.Y_train), "test_mse": (data.X_test, data.Y_test)}
        )
        log.info(
            "%s/landscape %s (depth %d width %d, %d parameters): %d seeds trained in %.1f s, sliced in %.1f s; "
            "mean relative increase over the slice: median %.3g",
            dataset,
            pname,
            arch.depth,
            arch.width,
            arch.n_params(),
            len(seeds),
            res.wall_time_s,
            t_slice,
            float(np.median(st["mean_increase"])),
        )
        head = {"dataset": dataset, "parameterization": pname, **experiment.arch_columns(arch)}
        rows = experiment.tabulate(head, [{"seed": s} for s in seeds], err)
        stats += [{**row, **st.iloc[r].to_dict()} for r, row in enumerate(rows)]
        surfaces.append(
            pd.DataFrame(
                {
                    "dataset": dataset,
                    "parameterization": pname,
                    "seed": seeds[0],
                    "a": A.ravel(),
                    "b": B.ravel(),
                    "loss": surf[0].ravel(),
                }
            )
        )
        timings.append(
            {
                "dataset": dataset,
                "parameterization": pname,
                "replicas_in_batch": len(seeds),
                "batch_wall_time_s": res.wall_time_s,
                "slice_wall_time_s": t_slice,
                "device": str(rt.device),
            }
        )
    return {
        "landscape": pd.concat(surfaces, ignore_index=True)[LANDSCAPE_COLUMNS],
        "landscape_stats": pd.DataFrame(stats)[LANDSCAPE_STAT_COLUMNS],
        "timings": pd.DataFrame(timings),
    }


LANDSCAPE_EFFECT_COLUMNS = [
    "dataset",
    "parameterization",
    "reference",
    "seed",
    "mean_increase_wp",
    "mean_increase_ref",
    "log_ratio_ref_over_wp",
]


def landscape_effects(stats: pd.DataFrame, ls: dict) -> pd.DataFrame:
    """Per (dataset, WP net, seed): log(mean increase of the reference net / that of the WP net) on the seed's
    slices (positive = the WP-ResNet is smoother). NaN when a statistic is not positive (the trained point is not
    a minimum of its slice on average: no ratio)."""
    ref = ls.get("reference", LANDSCAPE_DEFAULTS["reference"])
    kinds = stats.set_index("parameterization")["kind"].to_dict()
    rows = []
    for ds, g in stats.groupby("dataset", sort=True):
        r = g[g.parameterization == ref].set_index("seed")["mean_increase"]
        for pn, gp in g[g.parameterization != ref].groupby("parameterization", sort=True):
            if kinds[pn] not in WP_KINDS:
                continue
            for row in gp.itertuples():
                if row.seed not in r.index:
                    continue
                a, b = float(r.loc[row.seed]), float(row.mean_increase)
                lr = float(np.log(a / b)) if a > 0 and b > 0 else float("nan")
                if not np.isfinite(lr):
                    log.warning(
                        "%s seed %d: mean increase %s=%g %s=%g not both > 0: no ratio", ds, row.seed, ref, a, pn, b
                    )
                rows.append(
                    {
                        "dataset": ds,
                        "parameterization": pn,
                        "reference": ref,
                        "seed": int(row.seed),
                        "mean_increase_wp": b,
                        "mean_increase_ref": a,
                        "log_ratio_ref_over_wp": lr,
                    }
                )
    return pd.DataFrame(rows, columns=LANDSCAPE_EFFECT_COLUMNS)


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


def _interval(x: np.ndarray, level: float, bounds: tuple[float, float] | None) -> tuple[float, float, float]:
    """(mean, low, high) from :func:`nnrds.verdicts.t_or_sign_ci`; a bounded effect (a correlation) has its interval
    clipped to the bounds, which the mean cannot leave."""
    eff, lo, hi = verdicts.t_or_sign_ci(x, level)
    if bounds is not None and np.isfinite(lo):
        lo, hi = float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds))
    return eff, lo, hi


def _what(study: dict) -> str:
    """What was run (the ``what_was_run`` of a claim), for a study config as one dataset runs it."""
    params = ", ".join(study.get("parameterizations", []))
    return (
        f"{len(study['seeds'])} seeds x parameterizations [{params}] x depths {study['depths']} x widths "
        f"{study['widths']}, {study['epochs']} epochs of Adam (lr {study['lr']}); every seed has its own data split"
    )


def _landscape_rows(effects: pd.DataFrame | None, study: dict, margin: float) -> list[dict]:
    """Claim rows (before Holm) of ``smoother_landscape``, one per (dataset, WP parameterization)."""
    if effects is None or effects.empty:
        return []
    ls = study.get("landscape") or {}
    nets = ls.get("nets") or {}
    rows = []
    for (ds, pn), g in effects.groupby(["dataset", "parameterization"], sort=True):
        x = g["log_ratio_ref_over_wp"].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        if x.size == 0:
            continue
        ref = str(g["reference"].iloc[0])
        arch = ", ".join(f"{k} depth {v['depth']} width {v['width']}" for k, v in nets.items())
        rows.append(
            {
                "study": STUDY,
                "claim_id": f"smoother_landscape:{ds}:{pn}",
                "claim": f"{ds}: the WP-ResNet {pn} has a smoother training-loss landscape than the {ref} of "
                "comparable parameter count (same seeds)",
                "what_was_run": f"{len(study['seeds'])} seeds x nets [{arch}], {study['epochs']} epochs of Adam "
                f"(lr {study['lr']}); 2-D slice of {ls.get('points')} x {ls.get('points')} points along two "
                f"filter-normalized random directions, radius {ls.get('radius')}",
                "unit": "seed (one data split + initializations; both nets of the pair trained on it)",
                "n_units": int(x.size),
                "effect_name": f"mean over seeds of log[mean relative loss increase of {ref} / that of {pn}] over "
                "the slice (positive = WP smoother)",
                "x": x,
                "margin": margin,
                "p_value": verdicts.one_sample_p(x),
                "figure": FIGURES["smoother_landscape"],
                "bounds": None,
            }
        )
    return rows


def claims(seed_table: pd.DataFrame, study: dict, landscape_effects: pd.DataFrame | None = None) -> pd.DataFrame:
    """The study's claims table (:data:`nnrds.verdicts.CLAIM_COLUMNS`), one row per claim x dataset.

    Effect per claim and dataset: the mean over seeds of the per-seed effect (:func:`per_seed`); interval:
    Student t over seeds. The m comparisons are Holm-corrected: sorted by p-value, comparison j (1-based)
    gets the level 1 - alpha/(m - j + 1) while every smaller p-value was rejected, 1 - alpha/m after the
    first non-rejection -- so the interval excludes 0 exactly when the Holm-adjusted p-value is <= alpha.
    Verdict: :func:`nnrds.verdicts.superiority` of that interval with the margin of the claim
    (contradicted also when a meaningful effect -- above the margin -- is excluded). ``landscape_effects``
    (:func:`landscape_effects`) adds one ``smoother_landscape`` comparison per (dataset, WP net) to the family.
    """
    cfg = {**CLAIM_DEFAULTS, **(study.get("claims") or {})}
    alpha = float(cfg["alpha"])
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
                    "what_was_run": _what(study_for(study, ds)),
                    "unit": "seed (one data split + initializations; effect computed within the seed)",
                    "n_units": int(x.size),
                    "effect_name": ename,
                    "x": x,
                    "margin": margin,
                    "p_value": verdicts.one_sample_p(x),
                    "figure": FIGURES[cid],
                    "bounds": bounds,
                }
            )
    rows += _landscape_rows(landscape_effects, study, float(cfg["margin_landscape"]))
    m = len(rows)
    p = np.array([r["p_value"] for r in rows], dtype=float)
    p_adj, a = verdicts.holm_alphas(p, alpha)
    level = 1.0 - a
    out = []
    for i, r in enumerate(rows):
        x, bounds = r.pop("x"), r.pop("bounds")
        eff, lo, hi = _interval(x, float(level[i]), bounds)
        verdict = verdicts.superiority(lo, hi, margin=r["margin"])
        # a clipped interval (a correlation's, at the bounds) hides the spread: units to decide from the unclipped
        # t interval (clipping at +-1 moves neither threshold, 0 and the margin, so the verdict is the same)
        raw = verdicts.t_or_sign_ci(x, float(level[i]))[1:]
        k = (
            None
            if (lo, hi) == raw or not np.all(np.isfinite(raw))
            else verdicts.units_to_decide(eff, *raw, float(level[i]), x.size, verdict, "superiority", r["margin"])
        )
        out.append(
            verdicts.Claim(
                **r,
                effect=eff,
                ci_low=lo,
                ci_high=hi,
                ci_level=float(level[i]),
                p_adjusted=float(p_adj[i]),
                verdict=verdict,
                decision_rule="superiority",
                n_units_to_decide=k,
                test=(
                    f"one-sample t over seeds (two-sided; sign test if all seeds agree exactly); Holm over {m} "
                    "comparisons (claims x datasets, landscape claims x WP nets), "
                    f"interval at the Holm step-down level; superiority with margin {r['margin']:g}"
                ),
            )
        )
    return verdicts.claims_frame(out) if out else pd.DataFrame(columns=verdicts.CLAIM_COLUMNS)


def summarize(
    runs: pd.DataFrame, study: dict | None = None, land_stats: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per-seed effects, median gap per parameterization, claims table); ``land_stats``: the landscape job's
    per-replica statistics (:func:`run_landscape`), whose per-seed effects join the claims."""
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
    effects = None if land_stats is None else landscape_effects(land_stats, (study.get("landscape") or {}))
    return seed_table, pd.DataFrame(med), claims(seed_table, study, effects)


def _num(x: float) -> str:
    return f"{x:.2g}" if np.isfinite(x) else "n/a"


def caption(
    seed_table: pd.DataFrame,
    med: pd.DataFrame,
    claims_table: pd.DataFrame,
    scale: str,
    study: dict,
    dataset_notes: dict[str, str],
    land_effects: pd.DataFrame | None = None,
) -> str:
    """RST caption with the numbers, used by the report for every figure and table of this study."""
    cfg = {**CLAIM_DEFAULTS, **(study.get("claims") or {})}
    per_ds = [
        f"*{ds}*: parameterizations [{', '.join(sd['parameterizations'])}], depths {sd['depths']}, widths "
        f"{sd['widths']}"
        for ds in (study.get("per_dataset") or {})
        for sd in [study_for(study, ds)]
    ]
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
    ]
    if per_ds:
        lines += ["Datasets with their own (thinner) sweep: " + "; ".join(per_ds) + ".", ""]
    lines += [
        "Runs of one seed share a data split, so the seed is the unit of replication: each effect is computed "
        "within a seed, and its interval is a Student t interval over seeds. The comparisons are Holm-corrected "
        f"(α = {cfg['alpha']:g}, intervals at the Holm step-down level); a claim is *supported* when its "
        "interval lies above 0, *contradicted* when it lies below the smallest effect of interest "
        f"(ρ {cfg['margin_rho']:g}; gap difference {cfg['margin_gap']:g}), *inconclusive* otherwise. For an "
        "inconclusive claim the bullet says at about how many seeds its interval would decide with the observed "
        "spread and effect (``n_units_to_decide``: spread from the interval's width through the t quantile, the Holm "
        "level kept fixed), or that the design cannot decide it at this scale (``design_note``).",
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
    if land_effects is not None and not land_effects.empty:
        ls = landscape_config(study)
        nets = ", ".join(f"{k} (depth {v['depth']}, width {v['width']})" for k, v in ls["nets"].items())
        lines += [
            "",
            f"Loss landscapes (figure *landscape*) on *{ls['dataset']}*: nets {nets}, trained like the sweep with the "
            f"same seeds. Each replica's training loss is evaluated on a {ls['points']} × {ls['points']} grid of a "
            rf"2-D slice θ + aδ + bη, \|a\|, \|b\| ≤ {ls['radius']:g}, along two filter-normalized random "
            "directions (Li et al. 2018; every filter of δ, η has the norm of the trained filter). Smoothness "
            "statistic: the mean relative loss increase over the slice, mean over (a, b) of "
            "(L(a, b) − L(0)) / (1 + L(0)) (smaller = smoother). Per seed the effect is "
            f"log(statistic of {ls['reference']} / statistic of the WP net) (positive = WP smoother); smallest "
            f"effect of interest {cfg['margin_landscape']:g} (a factor {np.exp(cfg['margin_landscape']):.2f}).",
            "",
        ]
        for (ds, pn), g in land_effects.groupby(["dataset", "parameterization"], sort=True):
            lines.append(
                f"* **{ds}, {pn}** vs {g.reference.iloc[0]}: per-seed log ratio = "
                + ", ".join(_num(v) for v in g.log_ratio_ref_over_wp)
                + f"; median statistic {pn} {np.median(g.mean_increase_wp):.3g}, {g.reference.iloc[0]} "
                f"{np.median(g.mean_increase_ref):.3g}."
            )
    lines.append("")
    for r in claims_table.itertuples():
        lines.append(verdicts.claim_bullet(r))
    return "\n".join(lines) + "\n"
