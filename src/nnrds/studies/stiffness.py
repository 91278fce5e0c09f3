"""Stiffness study: Jacobian spectra of the residual function during training; stiffness penalty vs L2.

Claims tested (from the program's abstracts):

(a) stiffness tends to increase as a result of training;
(b) penalizing stiffness has a regularizing effect, but no predictive benefit over L2 regularization.

One *cell* = one (dataset, parameterization). All its runs train as ONE batch of replicas of a
:class:`~nnrds.models.ReplicaNet`: for every seed, one unregularized run, one run per L2 strength and
one per stiffness-penalty strength (per-replica ``l2`` and ``penalty_weight`` of :func:`~nnrds.train.fit`).
Runs of one seed share the data split and the initial weights, so comparisons between regularizers
are paired. The metrics of :mod:`nnrds.dynamics.spectrum` are tracked every ``track_every`` epochs on the
trajectories of the training inputs.

Model selection is honest: each run's held-out points are split into a *validation* half (used only to
pick the strength of L2 and of the penalty, per cell, by median validation MSE over seeds) and a *test*
half (reported). The generalization gap is test MSE - train MSE.

Verdicts (:func:`claims`, ``results/stiffness/claims.csv`` with :data:`nnrds.verdicts.CLAIM_COLUMNS`): the
unit of replication is the (dataset, seed) pair -- the two parameterizations of one seed share its data split,
so each paired difference is averaged over them first. Each claim gets a Hodges-Lehmann interval of its
oriented effect and a verdict from it: (a) and (b1) are superiority claims; "no benefit over L2" (b2) is a null
claim, tested for non-superiority against a stated relative test-MSE margin (``stiffness.claims.margin_rel``).
Holm over the four claims, each interval at its Holm step-down level (:func:`claims`).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import experiment, verdicts
from ..dynamics.penalties import make_penalty
from ..dynamics.spectrum import measure
from ..models import ReplicaNet

#: the per-network aggregate used in the runs table, the claims and the scatter (median over samples,
#: max over layers); the per-epoch table holds every combination
RUN_AGG = ("median", "max")
STIFF_METRICS = ("stiffness_ratio", "spectral_radius", "euler_index", "euler_amp", "euler_stable")
#: what names one run (one replica of a cell)
RUN_KEY = ["dataset", "parameterization", "seed", "regularizer", "strength"]
RUN_COLUMNS = [
    "dataset",
    "parameterization",
    *experiment.ARCH_COLUMNS,
    *RUN_KEY[2:],
    *["train_mse", "val_mse", "test_mse", "gap", "epochs"],
    *STIFF_METRICS,
    *[f"{m}_init" for m in STIFF_METRICS],
]
METRIC_COLUMNS = [*RUN_KEY, "epoch", "metric", "sample_agg", "layer_agg", "value"]
EIG_COLUMNS = [*RUN_KEY, "epoch", "h", "layer", "sample", "re", "im"]


def replica_layout(study: dict) -> list[tuple[str, float, int]]:
    """(regularizer, strength, seed) of every replica, in batch order."""
    groups = (
        [("none", 0.0)]
        + [("l2", float(s)) for s in study["l2_grid"]]
        + [("stiffness", float(s)) for s in study["penalty_grid"]]
    )
    return [(g, s, seed) for g, s in groups for seed in study["seeds"]]


def cell_data(dataset: str, dspec: dict, study: dict, layout: list, base_seed: int, rt: experiment.Runtime):
    """The replicas' data (R, N, d) -- replica r sees the split of its seed -- and the held-out points split into
    a validation part (``study.val_fraction``, picks the strengths) and a test part (reported)."""
    seeds = list(study["seeds"])
    data = experiment.regression_data(dspec, seeds, base_seed, rt, [seeds.index(s) for _, _, s in layout])
    n_te = data.n_heldout
    if n_te < 2:
        raise ValueError(f"dataset {dataset!r}: need >= 2 held-out points (validation + test), got {n_te}")
    n_val = max(1, min(n_te - 1, int(round(study["val_fraction"] * n_te))))
    val, test = data.heldout_halves(n_val)
    return data, val, test


def build_net(
    data: experiment.ReplicaData,
    pname: str,
    pspec: dict,
    study: dict,
    layout: list,
    base_seed: int,
    rt: experiment.Runtime,
) -> ReplicaNet:
    """One ResNet replica per entry of the layout, initialised from its run seed (paired across regularizers)."""
    arch = experiment.resnet_arch(
        data, pspec, width=study["width"], depth=study["depth"], T=study["T"], activation=study["activation"]
    )
    if arch.param == "mlp":
        raise ValueError(f"parameterization {pname!r} is an MLP; the stiffness study needs ResNets")
    return experiment.replica_net(arch, [s for _, _, s in layout], base_seed, rt)


class Tracker:
    """The ``fit`` callback: every tracked epoch, the spectrum metrics of every replica on the trajectories of
    the tracked training inputs and its train / validation / test MSE (:attr:`metric_rows`, :attr:`snapshots`);
    at initialization and at the end, the eigenvalues of the first seed's replicas (:attr:`eig_parts`) -- every
    run's when trained, and the unregularized run's also at initialization (the summary keeps the strengths
    selected on validation data)."""

    def __init__(
        self,
        dataset: str,
        pname: str,
        study: dict,
        layout: list,
        X_track: torch.Tensor,
        pairs: dict[str, tuple[torch.Tensor, torch.Tensor]],
    ):
        self.head = {"dataset": dataset, "parameterization": pname}
        self.study, self.layout, self.X_track, self.pairs = study, layout, X_track, pairs
        first = study["seeds"][0]
        self.keep_eigs = {
            r: ("init_and_final" if g == "none" else "final") for r, (g, _, s) in enumerate(layout) if s == first
        }
        self.n_eig = min(study["eig_samples"], X_track.shape[1])
        self.metric_rows: list[dict] = []
        self.eig_parts: list[pd.DataFrame] = []
        self.snapshots: dict[int, tuple[dict, dict]] = {}

    def replica_head(self, r: int, epoch: int) -> dict:
        g, s, seed = self.layout[r]
        return {**self.head, "seed": seed, "regularizer": g, "strength": s, "epoch": epoch}

    def __call__(self, epoch: int, net: ReplicaNet) -> None:
        agg, lam = measure(net, self.X_track, chunk=self.study["eig_chunk"])
        err_np = experiment.errors(net, self.pairs)
        agg_np = {k: v.cpu().double().numpy() for k, v in agg.items()}
        self.snapshots[epoch] = (agg_np, err_np)
        for r in range(len(self.layout)):
            head = self.replica_head(r, epoch)
            for (m, sa, la), v in agg_np.items():
                self.metric_rows.append({**head, "metric": m, "sample_agg": sa, "layer_agg": la, "value": float(v[r])})
            for m, v in err_np.items():
                self.metric_rows.append(
                    {**head, "metric": m, "sample_agg": "mean", "layer_agg": "output", "value": float(v[r])}
                )
        if epoch in (0, self.study["epochs"]):
            self.keep_eigenvalues(epoch, lam, net.arch)

    def keep_eigenvalues(self, epoch: int, lam: torch.Tensor, arch) -> None:
        lam_np = lam[:, :, : self.n_eig].cpu().numpy()  # (R, L, n_eig, w)
        layer, sample, _ = np.meshgrid(
            np.arange(arch.depth), np.arange(self.n_eig), np.arange(arch.width), indexing="ij"
        )
        for r, when in self.keep_eigs.items():
            if epoch == 0 and when != "init_and_final":
                continue
            v = lam_np[r].ravel()
            head = self.replica_head(r, epoch)
            self.eig_parts.append(
                pd.DataFrame(
                    {
                        **head,
                        "h": arch.h,
                        "layer": layer.ravel(),
                        "sample": sample.ravel(),
                        "re": v.real.astype(np.float64),
                        "im": v.imag.astype(np.float64),
                    },
                    columns=EIG_COLUMNS,
                )
            )

    def runs_table(self, dataset: str, pname: str, arch, epochs: int) -> pd.DataFrame:
        """One row per run: final errors, and the stiffness metrics (:data:`RUN_AGG`) at the end and at init."""
        (a0, _), (a1, e1) = self.snapshots[0], self.snapshots[max(self.snapshots)]
        stiff = {m: a1[(m, *RUN_AGG)] for m in STIFF_METRICS} | {f"{m}_init": a0[(m, *RUN_AGG)] for m in STIFF_METRICS}
        head = {"dataset": dataset, "parameterization": pname, **experiment.arch_columns(arch), "epochs": epochs}
        own = [{"seed": seed, "regularizer": g, "strength": s} for g, s, seed in self.layout]
        return pd.DataFrame(experiment.tabulate(head, own, {**e1, **stiff}), columns=RUN_COLUMNS)


def run_cell(cell: experiment.Cell) -> dict[str, pd.DataFrame]:
    """Train every run of one dataset x parameterization (``cell["dataset"]``, ``cell["param"]``). Returns the
    tables runs, metrics, eigenvalues and timings."""
    dataset, pname, study, base_seed = cell["dataset"], cell["param"], cell.study, cell.base_seed
    rt = cell.prepare()
    layout = replica_layout(study)
    data, val, test = cell_data(dataset, cell.dataset, study, layout, base_seed, rt)
    net = build_net(data, pname, cell.parameterization, study, layout, base_seed, rt)
    ntrack = (
        data.X_train.shape[1] if study["track_samples"] is None else min(study["track_samples"], data.X_train.shape[1])
    )
    pairs = {"train_mse": (data.X_train, data.Y_train), "val_mse": val, "test_mse": test}
    tracker = Tracker(dataset, pname, study, layout, data.X_train[:, :ntrack], pairs)
    pen = study["penalty"]
    res = experiment.train_replicas(
        net,
        data,
        study,
        base_seed,
        l2=[s if g == "l2" else 0.0 for g, s, _ in layout],
        penalty=make_penalty(pen["kind"], pen["power_iters"]),
        penalty_weight=[s if g == "stiffness" else 0.0 for g, s, _ in layout],
        log_every=study["track_every"],
        callback=tracker,
    )
    timings = pd.DataFrame(
        [
            {
                "dataset": dataset,
                "parameterization": pname,
                "replicas_in_batch": len(layout),
                "tracked_samples": ntrack,
                "tracked_epochs": len(tracker.snapshots),
                "batch_wall_time_s": res.wall_time_s,
                "device": str(rt.device),
            }
        ]
    )
    return {
        "runs": tracker.runs_table(dataset, pname, net.arch, res.epochs),
        "metrics": pd.DataFrame(tracker.metric_rows, columns=METRIC_COLUMNS),
        "eigenvalues": pd.concat(tracker.eig_parts, ignore_index=True).reset_index(drop=True),
        "timings": timings,
    }


# ----------------------------------------------------------------------------------------- summary
# Unit of replication. Runs of one seed share the data split in every cell of a dataset (experiment.regression_data)
# and, within a cell, the initial weights: so the regularizers are compared per (dataset, parameterization,
# seed), and the two parameterizations of one (dataset, seed) are NOT independent (same training and test
# points). Each claim's statistic is therefore averaged over parameterizations within (dataset, seed), and
# the (dataset, seed) pairs are the independent units of the interval and the test.
UNIT = ["dataset", "seed"]
UNIT_TEXT = (
    "(dataset, seed) pairs: the paired difference of each (dataset, parameterization, seed) -- same data "
    "split and initial weights -- averaged over parameterizations, which share the seed's data split"
)
CLAIM_METRICS = ("stiffness_ratio", "spectral_radius", "euler_index", "euler_amp")


def unit_means(df: pd.DataFrame, col: str) -> pd.Series:
    """Mean of ``col`` over parameterizations per (dataset, seed) unit, non-finite values dropped first
    (a unit without any finite value is dropped)."""
    d = df[np.isfinite(df[col].to_numpy(dtype=float))]
    return d.groupby(UNIT, sort=True)[col].mean()


def _signed_rank_p(d: np.ndarray, shift: float = 0.0, alternative: str = "greater") -> float:
    """Wilcoxon signed-rank p-value of H0: pseudo-median = shift against ``alternative`` (scipy's: "greater",
    "less", "two-sided"; NaN for < 2 non-zero values)."""
    d = np.asarray(d, dtype=float) - shift
    if len(d) < 2 or np.all(d == 0):
        return math.nan
    return float(stats.wilcoxon(d, alternative=alternative).pvalue)


def interval_row(values: np.ndarray, level: float) -> dict:
    """n, Hodges-Lehmann estimate and its Wilcoxon interval, fraction of positive values."""
    v = np.asarray(values, dtype=float)
    est, lo, hi = verdicts.hodges_lehmann_ci(v, level) if len(v) else (math.nan, math.nan, math.nan)
    return {
        "n_units": len(v),
        "estimate": est,
        "ci_low": lo,
        "ci_high": hi,
        "frac_positive": float(np.mean(v > 0)) if len(v) else math.nan,
    }


def growth(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """log10(final / initial) of ``metric`` per run (NaN where either is not finite or not positive)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.log10(runs[metric].to_numpy(dtype=float) / runs[f"{metric}_init"].to_numpy(dtype=float))
    out = runs[["dataset", "parameterization", "seed", "regularizer", "strength"]].copy()
    out["value"] = lr
    return out


def claim_a(runs: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Does stiffness increase through training? log10(final / initial) of each metric.

    Rows per (scope = 'all' or one dataset, regularizer group, metric): the per-unit values (mean over
    parameterizations per (dataset, seed), and for the regularized groups also over strengths), their
    Hodges-Lehmann estimate and ``level`` interval, the fraction of units that increased, and the one-sided
    Wilcoxon p-value (H0: no increase)."""
    out = []
    for m in CLAIM_METRICS:
        g_all = growth(runs, m)
        for scope, g in [("all", g_all)] + list(g_all.groupby("dataset", sort=True)):
            for reg in ("none", "l2", "stiffness"):
                v = unit_means(g[g.regularizer == reg], "value").to_numpy()
                out.append(
                    {
                        "scope": scope,
                        "regularizer": reg,
                        "metric": m,
                        **interval_row(v, level),
                        "p_value": _signed_rank_p(v),
                    }
                )
    return pd.DataFrame(out)


def select_strengths(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, parameterization, regularizer): the strength with the lowest median validation MSE
    over seeds, and the medians of the selected runs (test MSE, gap, primary stiffness)."""
    out = []
    for (ds, pn, reg), g in runs.groupby(["dataset", "parameterization", "regularizer"], sort=True):
        med = g.groupby("strength").val_mse.median()
        s = float(med.idxmin())
        sel = g[g.strength == s]
        out.append(
            {
                "dataset": ds,
                "parameterization": pn,
                "regularizer": reg,
                "selected_strength": s,
                "n_seeds": len(sel),
                "median_val_mse": float(sel.val_mse.median()),
                "median_test_mse": float(sel.test_mse.median()),
                "median_train_mse": float(sel.train_mse.median()),
                "median_gap": float(sel.gap.median()),
                "median_euler_index": float(sel.euler_index.median()),
                "median_stiffness_ratio": float(sel.stiffness_ratio.median()),
            }
        )
    return pd.DataFrame(out)


def select_eigenvalues(eigs: pd.DataFrame, sel: pd.DataFrame) -> pd.DataFrame:
    """Eigenvalue rows of the unregularized runs and of the L2 / penalty runs at their selected strengths."""
    s = sel[["dataset", "parameterization", "regularizer", "selected_strength"]]
    m = eigs.merge(s, on=["dataset", "parameterization", "regularizer"], how="left")
    keep = (m.regularizer == "none") | np.isclose(m.strength, m.selected_strength)
    return eigs[keep.to_numpy()].reset_index(drop=True)


GAP_CORRELATION_COLUMNS = ["dataset", "metric", "n_runs", "spearman_rho", "p_value"]


def gap_correlation(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per dataset: Spearman rank correlation of the trained networks' ``metric`` with their generalization gap,
    over every run of the dataset (all parameterizations, regularizers, strengths and seeds; runs whose metric is
    not finite left out) -- what the stiffness-vs-gap figure shows. Descriptive: runs share seeds and data
    splits, so its p-value is not a test of a claim (claim b1 is)."""
    rows = []
    for ds, g in runs.groupby("dataset", sort=True):
        g = g[np.isfinite(g[metric].to_numpy(dtype=float))]
        rho, p = stats.spearmanr(g[metric], g.gap) if len(g) >= 2 else (math.nan, math.nan)
        rows.append(
            {"dataset": ds, "metric": metric, "n_runs": len(g), "spearman_rho": float(rho), "p_value": float(p)}
        )
    return pd.DataFrame(rows, columns=GAP_CORRELATION_COLUMNS)


EIGEN_PANEL_COLUMNS = [*RUN_KEY, "epoch", "h", "n_eigenvalues", "max_abs", "frac_in_euler_disc"]


def eigenvalue_panels(eigs: pd.DataFrame, parameterization: str) -> pd.DataFrame:
    """Per panel of the eigenvalue figure (one ``parameterization``; per dataset, regularizer, strength and
    epoch of the stored eigenvalues): the largest |lambda| and the fraction of eigenvalues inside the
    explicit-Euler stability disc |1 + h lambda| <= 1."""
    e = eigs[eigs.parameterization == parameterization]
    rows = []
    for key, g in e.groupby(["dataset", "parameterization", "seed", "regularizer", "strength", "epoch"], sort=True):
        h = float(g.h.iloc[0])
        inside = np.hypot(1 + h * g.re.to_numpy(), h * g.im.to_numpy()) <= 1 + 1e-9
        rows.append(
            {
                **dict(zip(EIGEN_PANEL_COLUMNS, key)),
                "h": h,
                "n_eigenvalues": len(g),
                "max_abs": float(np.hypot(g.re, g.im).max()),
                "frac_in_euler_disc": float(inside.mean()),
            }
        )
    return pd.DataFrame(rows, columns=EIGEN_PANEL_COLUMNS)


def _selected(runs: pd.DataFrame, sel: pd.DataFrame, reg: str) -> pd.DataFrame:
    s = sel[sel.regularizer == reg][["dataset", "parameterization", "selected_strength"]]
    g = runs[runs.regularizer == reg].merge(s, on=["dataset", "parameterization"])
    return g[np.isclose(g.strength, g.selected_strength)].set_index(["dataset", "parameterization", "seed"])


#: quantities of the paired comparisons: (column, transform of (a, b) oriented so that > 0 = a is better)
ADVANTAGE = {
    "test_mse": ("ln(test MSE of B / test MSE of A)", lambda a, b: np.log(b / a)),
    "gap": ("gap of B - gap of A (units of training output variance)", lambda a, b: b - a),
    "euler_index": ("log10(Euler index of B / Euler index of A)", lambda a, b: np.log10(b / a)),
}


def paired_advantage(runs: pd.DataFrame, sel: pd.DataFrame, a: str, b: str, col: str) -> pd.Series:
    """Advantage of regularizer ``a`` over ``b`` (each at its selected strength) per (dataset, seed) unit:
    the paired per-(dataset, parameterization, seed) advantage (:data:`ADVANTAGE`, > 0 = ``a`` better / lower)
    averaged over parameterizations."""
    A, B = _selected(runs, sel, a)[col], _selected(runs, sel, b)[col]
    B = B.reindex(A.index)
    with np.errstate(divide="ignore", invalid="ignore"):
        adv = ADVANTAGE[col][1](A.to_numpy(dtype=float), B.to_numpy(dtype=float))
    df = A.index.to_frame(index=False)
    df["value"] = adv
    return unit_means(df, "value")


COMPARISONS = (("stiffness", "none"), ("l2", "none"), ("stiffness", "l2"))


def claim_b(runs: pd.DataFrame, sel: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Paired comparisons at the selected strengths, per (dataset, seed) unit: advantage of A over B
    (> 0 = A lower), Hodges-Lehmann estimate with its ``level`` interval, one-sided Wilcoxon p (H0: no advantage)."""
    rows = []
    for a, b in COMPARISONS:
        for col in ADVANTAGE:
            v = paired_advantage(runs, sel, a, b, col).to_numpy()
            rows.append(
                {
                    "comparison": f"{a} vs {b}",
                    "quantity": col,
                    "advantage": ADVANTAGE[col][0],
                    **interval_row(v, level),
                    "p_value": _signed_rank_p(v),
                }
            )
    return pd.DataFrame(rows)


STUDY = "stiffness"
CELLS = ("run_cell",)
FIGURES = {
    "a": "figures/stiffness/metrics_vs_epoch.png",
    "b1": "figures/stiffness/stiffness_vs_gap.png",
    "b1_test": "figures/stiffness/test_vs_strength.png",
    "b2": "figures/stiffness/test_vs_strength.png",
}


def claims(runs: pd.DataFrame, sel: pd.DataFrame, study: dict) -> pd.DataFrame:
    """The study's claims table (:data:`nnrds.verdicts.CLAIM_COLUMNS`), one row per claim.

    * (a)  stiffness (``study.primary_metric``) grows in training: superiority of log10(final/initial) > 0
      in the unregularized runs;
    * (b1) the penalty regularizes: its generalization gap is lower than without regularization (superiority);
    * (b1_test) the penalty lowers the test MSE vs no regularization (superiority, relative: ln ratio);
    * (b2) the penalty is no better than L2: non-superiority of the penalty's relative test-MSE advantage
      over L2, margin ln(1 + ``study.claims.margin_rel``) (the non-superiority half of TOST).

    p-values: Wilcoxon signed-rank, two-sided against 0 for the superiority claims, one-sided against the margin
    for (b2); Holm over the four claims, each Hodges-Lehmann interval at its Holm step-down level
    (:func:`nnrds.verdicts.holm_alphas`): 1 - alpha_j for a superiority claim, 1 - 2 alpha_j for (b2), so the
    interval and the adjusted p-value agree. Verdicts: :func:`nnrds.verdicts.superiority` /
    :func:`nnrds.verdicts.non_superiority`. A claim with too few units for a Wilcoxon interval at its level gets a
    ``design_note`` (:func:`nnrds.verdicts.design_note`) saying how many would give one.
    """
    cfg = study.get("claims", {})
    alpha, margin_rel = float(cfg.get("alpha", 0.05)), float(cfg.get("margin_rel", 0.05))
    primary = study["primary_metric"]
    margin = math.log1p(margin_rel)
    n_ds = len(runs.dataset.unique())
    run = (
        f"{n_ds} datasets x {len(runs.parameterization.unique())} parameterizations x "
        f"{runs.seed.nunique()} seeds; {study['epochs']} epochs; strengths selected on validation data"
    )
    g = growth(runs, primary)
    specs = [
        dict(
            claim_id="a",
            claim=f"Stiffness ({primary}) increases through training (unregularized runs).",
            effect_name=f"log10({primary} final / initial), Hodges-Lehmann",
            v=unit_means(g[g.regularizer == "none"], "value").to_numpy(),
        )
    ]
    for cid, col, text in (
        ("b1", "gap", "The stiffness penalty regularizes: lower generalization gap than no regularization."),
        ("b1_test", "test_mse", "The stiffness penalty lowers the test MSE compared with no regularization."),
    ):
        ename = ADVANTAGE[col][0].replace(" of B", " (none)").replace(" of A", " (penalty)")
        specs.append(
            dict(claim_id=cid, claim=text, effect_name=ename, v=paired_advantage(runs, sel, "stiffness", "none", col))
        )
    specs.append(
        dict(
            claim_id="b2",
            claim="The stiffness penalty predicts no better than L2 regularization "
            f"(test MSE advantage below {margin_rel:.0%}).",
            effect_name="ln(test MSE (L2) / test MSE (penalty))",
            v=paired_advantage(runs, sel, "stiffness", "l2", "test_mse"),
            margin=margin,
        )
    )
    for sp in specs:
        sp["v"] = np.asarray(sp["v"], dtype=float)
        ns = "margin" in sp
        sp["p_value"] = (
            _signed_rank_p(sp["v"], shift=margin, alternative="less")
            if ns
            else _signed_rank_p(sp["v"], alternative="two-sided")
        )
    p_adj, a_j = verdicts.holm_alphas([sp["p_value"] for sp in specs], alpha)
    rows = []
    for sp, pa, a in zip(specs, p_adj, a_j):
        v = sp.pop("v")
        if "margin" in sp:
            lv = 1 - 2 * a
            r = interval_row(v, lv)
            sp.update(
                test=f"non-superiority: Wilcoxon signed-rank against the margin (one-sided), HL interval at "
                f"{_lvl(lv)} = 1 - 2 alpha_j (Holm step-down over {len(specs)} claims, alpha {alpha:g})",
                verdict=verdicts.non_superiority(r["ci_low"], r["ci_high"], margin),
                decision_rule="non_superiority",
            )
        else:
            lv = 1 - a
            r = interval_row(v, lv)
            sp.update(
                test=f"Wilcoxon signed-rank, two-sided; HL interval at {_lvl(lv)} = 1 - alpha_j (Holm step-down over "
                f"{len(specs)} claims, alpha {alpha:g})",
                verdict=verdicts.superiority(r["ci_low"], r["ci_high"]),
                decision_rule="superiority",
            )
        n_min = verdicts.min_units_rank_interval(lv)
        if r["n_units"] < n_min:
            sp["design_note"] = verdicts.design_note(
                f"a Wilcoxon interval at {_lvl(lv)} needs at least {n_min} units, this scale runs {r['n_units']}",
                f"at least {n_min} (dataset, seed) units, e.g. {math.ceil(n_min / max(n_ds, 1))} seeds on each of "
                f"the {n_ds} datasets",
            )
        rows.append({**sp, **r, "ci_level": lv, "p_adjusted": float(pa)})
    return holm_claims(rows, run)


def superiority_row(claim_id: str, claim: str, effect_name: str, v: np.ndarray, level: float) -> dict:
    """A superiority claim from per-unit effects ``v`` at a given interval ``level``: two-sided Wilcoxon
    signed-rank p-value, Hodges-Lehmann interval at ``level`` (:func:`interval_row`), verdict
    :func:`nnrds.verdicts.superiority`."""
    r = interval_row(v, level)
    return dict(
        claim_id=claim_id,
        claim=claim,
        effect_name=effect_name,
        ci_level=level,
        p_value=_signed_rank_p(v, alternative="two-sided"),
        test="Wilcoxon signed-rank, two-sided; HL interval",
        verdict=verdicts.superiority(r["ci_low"], r["ci_high"]),
        decision_rule="superiority",
        **r,
    )


def holm_claims(rows: list[dict], run: str) -> pd.DataFrame:
    """The claims table of the study's claim rows (:func:`claims`, :func:`superiority_row`): ``p_adjusted`` as
    given, else Holm over all rows' p-values; ``run`` says what was run."""
    padj = verdicts.holm([x["p_value"] for x in rows])
    out = []
    for x, pa in zip(rows, padj):
        out.append(
            verdicts.Claim(
                study="stiffness",
                claim_id=x["claim_id"],
                claim=x["claim"],
                what_was_run=run,
                unit=UNIT_TEXT,
                n_units=int(x["n_units"]),
                effect_name=x["effect_name"],
                effect=float(x["estimate"]),
                ci_low=float(x["ci_low"]),
                ci_high=float(x["ci_high"]),
                ci_level=float(x["ci_level"]),
                margin=float(x.get("margin", math.nan)),
                p_value=float(x["p_value"]),
                p_adjusted=float(x.get("p_adjusted", pa)),
                test=x["test"],
                verdict=x["verdict"],
                figure=FIGURES[x["claim_id"]],
                decision_rule=x.get("decision_rule", ""),
                design_note=x.get("design_note", ""),
            )
        )
    return verdicts.claims_frame(out)


def _rst(text: str) -> str:
    """Text from elsewhere (dataset descriptions) with RST markup characters escaped."""
    return re.sub(r"([\\`*_|])", r"\\\1", str(text))


def _fmt_p(p: float) -> str:
    return "n/a" if not np.isfinite(p) else f"{p:.2g}"


def _fmt_ci(lo: float, hi: float, fmt: str = "+.3g") -> str:
    return "[n/a: too few units]" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:{fmt}}, {hi:{fmt}}]"


def _lvl(level: float) -> str:
    """An interval level in percent (98.75%, 95%)."""
    return f"{100 * level:.4g}%"


def _pct(x: float) -> str:
    """A log-ratio as a relative change in percent."""
    return "n/a" if not np.isfinite(x) else f"{math.expm1(x):+.1%}"


def design_paragraphs(scale: str, study: dict, dataset_notes: dict[str, str]) -> list[str]:
    """The caption's paragraphs on the design: networks, metrics, regularizers and selection, datasets,
    statistics."""
    pen = study["penalty"]
    cfg = study.get("claims", {})
    alpha, margin_rel = float(cfg.get("alpha", 0.05)), float(cfg.get("margin_rel", 0.05))
    n_runs = len(replica_layout(study))
    track = "all" if study["track_samples"] is None else "up to " + str(study["track_samples"])
    pen_text = (
        f"mean (h·‖J‖₂)², spectral norm by {pen['power_iters']} power iterations"
        if pen["kind"] == "spectral_norm"
        else "mean h²‖J‖_F²"
    )
    return [
        f"Stiffness of ResNets x_(n+1) = x_n + h tanh(W(t_n) x_n + b(t_n)), **{scale}** scale: depth "
        f"{study['depth']} (h = {study['T'] / study['depth']:.3g}), width {study['width']}, parameterizations "
        f"{', '.join(study['parameterizations'])}, seeds {', '.join(map(str, study['seeds']))}, {study['epochs']} "
        f"epochs of Adam (lr {study['lr']}), {n_runs} runs per dataset x parameterization trained as one replica "
        "batch. Metrics of the Jacobian J = diag(σ'(Wx+b)) W of the residual function at every layer and training "
        f"sample, tracked every {study['track_every']} epochs on the trajectories of {track} training inputs; a "
        "network's number is the maximum over layers of the median over samples. Stiffness ratio = max|Re λ| / "
        "min|Re λ| over Re λ < 0; explicit-Euler index = h·ρ(J); amplification = max|1 + hλ| (at most 1 inside the "
        "explicit-Euler stability disc).",
        "",
        f"Regularizers: none; L2 on all weights, strength in {study['l2_grid']}; stiffness penalty ({pen_text}), "
        f"strength in {study['penalty_grid']}. Each strength is selected per dataset x parameterization on a "
        f"validation half ({study['val_fraction']:.0%}) of the held-out points; test MSE and gap (test − train "
        "MSE, units of the training output variance) are on the other half.",
        "",
        "Datasets: " + "; ".join(f"*{_rst(k)}*: {_rst(v)}" for k, v in dataset_notes.items()) + ".",
        "",
        "**Statistics.** Unit of replication: the (dataset, seed) pair. Runs of one seed share the data split in "
        "every cell of a dataset and, within a cell, the initial weights, so regularizers are compared per "
        "(dataset, parameterization, seed) and each paired difference is averaged over the parameterizations "
        "(which share the seed's data) before the test. p-values: Wilcoxon signed-rank, two-sided against 0 "
        "for the superiority claims, one-sided against the margin for the null claim; Holm over the study's "
        f"claims (α = {alpha:g}). Intervals: Hodges-Lehmann estimate of the median paired difference with its "
        "Wilcoxon signed-rank interval, each at its Holm step-down level: the claim with the j-th smallest "
        "p-value gets α_j = α/(m − j + 1) while the smaller ones were rejected (α/m after the first "
        "non-rejection), a 1 − α_j interval for a superiority claim and 1 − 2α_j for the null claim (its upper "
        "end is the one-sided bound), so interval and adjusted p-value agree. "
        "Verdicts come from the interval: *supported* when it lies on the claim's side of 0 (of the margin for "
        "the null claim), *contradicted* when it lies on the other side (for the null claim: above the margin), "
        "*inconclusive* otherwise. The claim "
        "that the penalty is no better than L2 is a null claim: it is supported only if an advantage of the "
        f"penalty of {margin_rel:.0%} or more in test MSE (margin ln(1 + {margin_rel:g}) on the log ratio; config "
        "``stiffness.claims.margin_rel``) is excluded, never because a test is not significant, and contradicted "
        "only if an advantage larger than the margin is shown. For an inconclusive claim the line says at about "
        "how many units its interval would decide with the observed spread and effect (``n_units_to_decide``; "
        "the spread is taken from the interval's width through the t quantile, the level kept fixed), and when "
        "too few units give no interval at that level, how many would.",
        "",
    ]


def claim_line(r) -> str:
    """The caption line of one claim (a row of the claims table): verdict, claim, effect with its interval,
    p-value and Holm-adjusted p; for an inconclusive claim what would decide it
    (:func:`nnrds.verdicts.decision_text`)."""
    ci = _fmt_ci(r.ci_low, r.ci_high)
    head = f"* **({r.claim_id}) {r.verdict}**: {r.claim} "
    holm = f"(Holm {_fmt_p(r.p_adjusted)})"
    if r.claim_id == "a":
        body = (
            f"Median log10(final/initial) = {r.effect:+.3g}, {_lvl(r.ci_level)} interval {ci} "
            f"over {r.n_units} units, p = {_fmt_p(r.p_value)} {holm}."
        )
    elif r.claim_id == "b1":
        body = (
            f"Gap reduction (none − penalty) = {r.effect:+.3g}, {_lvl(r.ci_level)} interval {ci} "
            f"over {r.n_units} units, p = {_fmt_p(r.p_value)} {holm}."
        )
    elif r.claim_id == "b1_test":
        body = (
            f"Test MSE without regularization relative to the penalty: {_pct(r.effect)} "
            f"(ln ratio {r.effect:+.3g}, {_lvl(r.ci_level)} interval {ci}) over {r.n_units} units, "
            f"p = {_fmt_p(r.p_value)} {holm}."
        )
    else:
        body = (
            f"Test MSE of L2 relative to the penalty: {_pct(r.effect)} (ln ratio "
            f"{r.effect:+.3g}, {_lvl(r.ci_level)} interval {ci}, margin {r.margin:+.3g}) over "
            f"{r.n_units} units, p = {_fmt_p(r.p_value)} against the margin {holm}."
        )
    why = verdicts.decision_text(r, "units")
    return head + body + (f" Inconclusive: {_rst(why)}." if why else "")


def number_paragraphs(ca: pd.DataFrame, cb: pd.DataFrame, sel: pd.DataFrame, alpha: float) -> list[str]:
    """The caption's paragraphs after the claims: L2 vs none for scale, every stiffness measure's growth, the
    selected strengths with their median test MSE."""
    lines: list[str] = []
    g = cb.set_index(["comparison", "quantity"])
    if ("l2 vs none", "test_mse") in g.index:
        l2 = g.loc[("l2 vs none", "test_mse")]
        lines += [
            "",
            f"For scale: L2 vs no regularization, test MSE of none relative to L2 {_pct(l2.estimate)} "
            f"(ln ratio {l2.estimate:+.3g}, {_fmt_ci(l2.ci_low, l2.ci_high)}, {int(l2.n_units)} units).",
        ]
    others = ca[(ca.scope == "all") & (ca.regularizer == "none")]
    lines += [
        "",
        "All stiffness measures, unregularized runs, median log10(final/initial) per unit with "
        f"{1 - alpha:.0%} interval: "
        + "; ".join(
            f"{r.metric} {r.estimate:+.3g} {_fmt_ci(r.ci_low, r.ci_high)} (up in {r.frac_positive:.0%} of {r.n_units})"
            for r in others.itertuples()
        )
        + ".",
    ]
    lines += [
        "",
        "Selected strengths and median test MSE (none / L2 / penalty): "
        + "; ".join(
            f"{ds}/{pn}: "
            + " / ".join(
                f"{g.median_test_mse.iloc[0]:.3g}" + ("" if reg == "none" else f" (λ={g.selected_strength.iloc[0]:g})")
                for reg in ("none", "l2", "stiffness")
                for g in [grp[grp.regularizer == reg]]
                if len(g)
            )
            for (ds, pn), grp in sel.groupby(["dataset", "parameterization"], sort=True)
        )
        + ".",
    ]
    return lines


def caption(
    claims_df: pd.DataFrame,
    ca: pd.DataFrame,
    cb: pd.DataFrame,
    sel: pd.DataFrame,
    scale: str,
    study: dict,
    dataset_notes: dict[str, str],
) -> str:
    """RST caption with the numbers, used by the report for every figure and table of this study: the design
    (:func:`design_paragraphs`), one line per claim (:func:`claim_line`), the other numbers
    (:func:`number_paragraphs`)."""
    alpha = float(study.get("claims", {}).get("alpha", 0.05))
    lines = design_paragraphs(scale, study, dataset_notes)
    lines += [claim_line(r) for r in claims_df.itertuples()]
    lines += number_paragraphs(ca, cb, sel, alpha)
    return "\n".join(lines) + "\n"
