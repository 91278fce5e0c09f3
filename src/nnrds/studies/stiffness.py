"""Stiffness study: Jacobian spectra of the residual function during training; stiffness penalty vs L2.

Claims tested (from the program's abstracts):

(a) stiffness tends to increase as a result of training;
(b) penalizing stiffness has a regularizing effect, but no predictive benefit over L2 regularization.

One *cell* = one (dataset, parameterization). All its runs train as ONE batch of replicas of a
:class:`~nnrds.models.ReplicaNet`: for every seed, one unregularized run, one run per L2 strength and
one per stiffness-penalty strength (per-replica ``l2`` and ``penalty_weight`` of :func:`~nnrds.train.fit`).
Runs of one seed share the data split and the initial weights, so comparisons between regularizers
are paired. The metrics of :mod:`nnrds.stiffness` are tracked every ``track_every`` epochs on the
trajectories of the training inputs.

Model selection is honest: each run's held-out points are split into a *validation* half (used only to
pick the strength of L2 and of the penalty, per cell, by median validation MSE over seeds) and a *test*
half (reported). The generalization gap is test MSE - train MSE.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import datasets
from .. import stiffness as st
from ..models import Arch, ReplicaNet
from ..train import fit, mse_per_replica, pick_device, seed_everything

#: the per-network aggregate used in the runs table, the claims and the scatter (median over samples,
#: max over layers); the per-epoch table holds every combination
RUN_AGG = ("median", "max")
STIFF_METRICS = ("stiffness_ratio", "spectral_radius", "euler_index", "euler_amp", "euler_stable")
RUN_COLUMNS = (["dataset", "parameterization", "kind", "degree", "depth", "width", "n_params", "seed",
                "regularizer", "strength", "train_mse", "val_mse", "test_mse", "gap", "epochs"]
               + list(STIFF_METRICS) + [f"{m}_init" for m in STIFF_METRICS])
METRIC_COLUMNS = ["dataset", "parameterization", "seed", "regularizer", "strength", "epoch", "metric",
                  "sample_agg", "layer_agg", "value"]
EIG_COLUMNS = ["dataset", "parameterization", "seed", "regularizer", "strength", "epoch", "h", "layer",
               "sample", "re", "im"]


def replica_layout(study: dict) -> list[tuple[str, float, int]]:
    """(regularizer, strength, seed) of every replica, in batch order."""
    groups = [("none", 0.0)] + [("l2", float(s)) for s in study["l2_grid"]] + \
             [("stiffness", float(s)) for s in study["penalty_grid"]]
    return [(g, s, seed) for g, s in groups for seed in study["seeds"]]


def run_cell(dataset: str, dspec: dict, pname: str, pspec: dict, study: dict, *, base_seed: int = 0,
             device: str = "auto", dtype: str = "float32"):
    """Train every run of one dataset x parameterization. Returns (runs, metrics, eigenvalues, timings)."""
    seed_everything(base_seed)
    dev = pick_device(device)
    tdtype = getattr(torch, dtype)
    seeds = list(study["seeds"])
    splits = datasets.seeded_splits(dspec, seeds, base_seed)
    d_in, d_out = splits[0].X_train.shape[1], splits[0].Y_train.shape[1]
    n_te = len(splits[0].X_test)
    if n_te < 2:
        raise ValueError(f"dataset {dataset!r}: need >= 2 held-out points (validation + test), got {n_te}")
    n_val = max(1, min(n_te - 1, int(round(study["val_fraction"] * n_te))))
    layout = replica_layout(study)
    R = len(layout)
    sidx = torch.tensor([seeds.index(s) for _, _, s in layout])

    def stack(arrs) -> torch.Tensor:
        return torch.as_tensor(np.stack(arrs), dtype=tdtype, device=dev)[sidx.to(dev)]

    Xtr, Ytr = stack([s.X_train for s in splits]), stack([s.Y_train for s in splits])
    Xva, Yva = stack([s.X_test[:n_val] for s in splits]), stack([s.Y_test[:n_val] for s in splits])
    Xte, Yte = stack([s.X_test[n_val:] for s in splits]), stack([s.Y_test[n_val:] for s in splits])
    ntrack = Xtr.shape[1] if study["track_samples"] is None else min(study["track_samples"], Xtr.shape[1])
    Xtrack = Xtr[:, :ntrack]

    arch = Arch(d_in=d_in, d_out=d_out, width=study["width"], depth=study["depth"],
                param=pspec["kind"], degree=pspec.get("degree", 0), T=study["T"], activation=study["activation"])
    if arch.param == "mlp":
        raise ValueError(f"parameterization {pname!r} is an MLP; the stiffness study needs ResNets")
    net = ReplicaNet(arch, [1000 * s + base_seed for _, _, s in layout], dtype=tdtype).to(dev)
    l2 = [s if g == "l2" else 0.0 for g, s, _ in layout]
    pw = [s if g == "stiffness" else 0.0 for g, s, _ in layout]
    pen = study["penalty"]
    penalty = st.make_penalty(pen["kind"], pen["power_iters"])

    # replicas whose eigenvalues are stored: every run of the first seed when trained, and the unregularized
    # one also at initialization (the summary keeps the strengths selected on validation data)
    keep_eigs = {r: ("init_and_final" if g == "none" else "final") for r, (g, _, s) in enumerate(layout)
                 if s == seeds[0]}
    metric_rows, eig_parts, snapshots = [], [], {}
    n_eig = min(study["eig_samples"], ntrack)

    def track(epoch: int, net: ReplicaNet) -> None:
        agg, lam = st.measure(net, Xtrack, chunk=study["eig_chunk"])
        with torch.no_grad():
            errs = {"train_mse": mse_per_replica(net, Xtr, Ytr), "val_mse": mse_per_replica(net, Xva, Yva),
                    "test_mse": mse_per_replica(net, Xte, Yte)}
        agg_np = {k: v.cpu().double().numpy() for k, v in agg.items()}
        err_np = {k: v.cpu().double().numpy() for k, v in errs.items()}
        snapshots[epoch] = (agg_np, err_np)
        for r, (g, s, seed) in enumerate(layout):
            head = {"dataset": dataset, "parameterization": pname, "seed": seed, "regularizer": g,
                    "strength": s, "epoch": epoch}
            for (m, sa, la), v in agg_np.items():
                metric_rows.append({**head, "metric": m, "sample_agg": sa, "layer_agg": la, "value": float(v[r])})
            for m, v in err_np.items():
                metric_rows.append({**head, "metric": m, "sample_agg": "mean", "layer_agg": "output",
                                    "value": float(v[r])})
        if epoch not in (0, study["epochs"]):
            return
        lam_np = lam[:, :, :n_eig].cpu().numpy()  # (R, L, n_eig, w)
        layer, sample, _ = np.meshgrid(np.arange(arch.depth), np.arange(n_eig), np.arange(arch.width), indexing="ij")
        for r, when in keep_eigs.items():
            if epoch == 0 and when != "init_and_final":
                continue
            g, s, seed = layout[r]
            v = lam_np[r].ravel()
            eig_parts.append(pd.DataFrame({
                "dataset": dataset, "parameterization": pname, "seed": seed, "regularizer": g, "strength": s,
                "epoch": epoch, "h": arch.h, "layer": layer.ravel(), "sample": sample.ravel(),
                "re": v.real.astype(np.float64), "im": v.imag.astype(np.float64)}, columns=EIG_COLUMNS))

    res = fit(net, Xtr, Ytr, epochs=study["epochs"], lr=study["lr"], batch_size=study["batch_size"],
              l2=l2, penalty=penalty, penalty_weight=pw, seed=base_seed,
              log_every=study["track_every"], callback=track)
    final = max(snapshots)
    eig = pd.concat(eig_parts, ignore_index=True)
    (a0, _), (a1, e1) = snapshots[0], snapshots[final]
    rows = []
    for r, (g, s, seed) in enumerate(layout):
        row = {"dataset": dataset, "parameterization": pname, "kind": arch.param, "degree": arch.degree,
               "depth": arch.depth, "width": arch.width, "n_params": arch.n_params(), "seed": seed,
               "regularizer": g, "strength": s, "train_mse": float(e1["train_mse"][r]),
               "val_mse": float(e1["val_mse"][r]), "test_mse": float(e1["test_mse"][r]),
               "gap": float(e1["test_mse"][r]) - float(e1["train_mse"][r]), "epochs": res.epochs}
        for m in STIFF_METRICS:
            row[m] = float(a1[(m, *RUN_AGG)][r])
            row[f"{m}_init"] = float(a0[(m, *RUN_AGG)][r])
        rows.append(row)
    timings = pd.DataFrame([{"dataset": dataset, "parameterization": pname, "replicas_in_batch": R,
                             "tracked_samples": ntrack, "tracked_epochs": len(snapshots),
                             "batch_wall_time_s": res.wall_time_s, "device": str(dev)}])
    return (pd.DataFrame(rows, columns=RUN_COLUMNS), pd.DataFrame(metric_rows, columns=METRIC_COLUMNS),
            eig.reset_index(drop=True), timings)


# ----------------------------------------------------------------------------------------- summary

def _wilcoxon(d: np.ndarray) -> float:
    d = d[np.isfinite(d)]
    if len(d) < 2 or np.all(d == 0):
        return math.nan
    return float(stats.wilcoxon(d).pvalue)


def claim_a(runs: pd.DataFrame) -> pd.DataFrame:
    """Does stiffness increase through training? log10(final / initial) of each metric, per run.

    Rows per (scope = dataset or 'all', regularizer group, metric): runs, fraction of runs whose metric
    increased, median log10 ratio, Wilcoxon signed-rank p (two-sided) of the log ratios.
    """
    out = []
    for m in ("stiffness_ratio", "spectral_radius", "euler_index", "euler_amp"):
        lr = np.log10(runs[m] / runs[f"{m}_init"])
        for scope, g in [("all", runs)] + list(runs.groupby("dataset", sort=True)):
            for reg, gr in [("none", g[g.regularizer == "none"]), ("l2", g[g.regularizer == "l2"]),
                            ("stiffness", g[g.regularizer == "stiffness"])]:
                v = lr.loc[gr.index].to_numpy(dtype=float)
                v = v[np.isfinite(v)]
                out.append({"scope": scope, "regularizer": reg, "metric": m, "n_runs": len(v),
                            "frac_increased": float(np.mean(v > 0)) if len(v) else math.nan,
                            "median_log10_ratio": float(np.median(v)) if len(v) else math.nan,
                            "p_value": _wilcoxon(v)})
    return pd.DataFrame(out)


def select_strengths(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, parameterization, regularizer): the strength with the lowest median validation MSE
    over seeds, and the medians of the selected runs (test MSE, gap, primary stiffness)."""
    out = []
    for (ds, pn, reg), g in runs.groupby(["dataset", "parameterization", "regularizer"], sort=True):
        med = g.groupby("strength").val_mse.median()
        s = float(med.idxmin())
        sel = g[g.strength == s]
        out.append({"dataset": ds, "parameterization": pn, "regularizer": reg, "selected_strength": s,
                    "n_seeds": len(sel), "median_val_mse": float(sel.val_mse.median()),
                    "median_test_mse": float(sel.test_mse.median()), "median_train_mse": float(sel.train_mse.median()),
                    "median_gap": float(sel.gap.median()), "median_euler_index": float(sel.euler_index.median()),
                    "median_stiffness_ratio": float(sel.stiffness_ratio.median())})
    return pd.DataFrame(out)


def select_eigenvalues(eigs: pd.DataFrame, sel: pd.DataFrame) -> pd.DataFrame:
    """Eigenvalue rows of the unregularized runs and of the L2 / penalty runs at their selected strengths."""
    s = sel[["dataset", "parameterization", "regularizer", "selected_strength"]]
    m = eigs.merge(s, on=["dataset", "parameterization", "regularizer"], how="left")
    keep = (m.regularizer == "none") | np.isclose(m.strength, m.selected_strength)
    return eigs[keep.to_numpy()].reset_index(drop=True)


def _paired(runs: pd.DataFrame, sel: pd.DataFrame, a: str, b: str, col: str) -> np.ndarray:
    """Per (dataset, parameterization, seed): col(a at its selected strength) - col(b at its selected strength)."""
    def pick(reg):
        s = sel[sel.regularizer == reg][["dataset", "parameterization", "selected_strength"]]
        g = runs[runs.regularizer == reg].merge(s, on=["dataset", "parameterization"])
        return g[g.strength == g.selected_strength].set_index(["dataset", "parameterization", "seed"])[col]
    A, B = pick(a), pick(b)
    return (A - B.reindex(A.index)).to_numpy(dtype=float)


def claim_b(runs: pd.DataFrame, sel: pd.DataFrame) -> pd.DataFrame:
    """Paired comparisons pooled over datasets x parameterizations x seeds, at the selected strengths."""
    rows = []
    for a, b in (("stiffness", "none"), ("l2", "none"), ("stiffness", "l2")):
        for col in ("test_mse", "gap", "euler_index"):
            d = _paired(runs, sel, a, b, col)
            d = d[np.isfinite(d)]
            rows.append({"comparison": f"{a} - {b}", "quantity": col, "n_pairs": len(d),
                         "median_difference": float(np.median(d)) if len(d) else math.nan,
                         "frac_lower": float(np.mean(d < 0)) if len(d) else math.nan, "p_value": _wilcoxon(d)})
    return pd.DataFrame(rows)


def verdicts(ca: pd.DataFrame, cb: pd.DataFrame, primary: str, alpha: float = 0.05) -> pd.DataFrame:
    """The small results table: one row per claim with the numbers behind the verdict."""
    a = ca[(ca.scope == "all") & (ca.regularizer == "none") & (ca.metric == primary)].iloc[0]
    held_a = bool(a.median_log10_ratio > 0 and a.frac_increased > 0.5 and a.p_value < alpha)
    g = cb.set_index(["comparison", "quantity"])
    sg, st_ = g.loc[("stiffness - none", "gap")], g.loc[("stiffness - none", "test_mse")]
    held_b1 = bool(sg.median_difference < 0 and sg.p_value < alpha)
    sl = g.loc[("stiffness - l2", "test_mse")]
    better = bool(sl.median_difference < 0 and sl.p_value < alpha)
    return pd.DataFrame([
        {"claim": "a: stiffness increases through training (unregularized runs)", "metric": primary,
         "n": int(a.n_runs), "statistic": "median log10(final/initial)", "value": float(a.median_log10_ratio),
         "frac": float(a.frac_increased), "p_value": float(a.p_value), "held": held_a},
        {"claim": "b1: stiffness penalty regularizes (gap lower than unregularized)", "metric": "gap",
         "n": int(sg.n_pairs), "statistic": "median paired difference (penalty - none)",
         "value": float(sg.median_difference), "frac": float(sg.frac_lower), "p_value": float(sg.p_value),
         "held": held_b1},
        {"claim": "b1': stiffness penalty lowers test error vs unregularized", "metric": "test_mse",
         "n": int(st_.n_pairs), "statistic": "median paired difference (penalty - none)",
         "value": float(st_.median_difference), "frac": float(st_.frac_lower), "p_value": float(st_.p_value),
         "held": bool(st_.median_difference < 0 and st_.p_value < alpha)},
        {"claim": "b2: no predictive benefit of the penalty over L2", "metric": "test_mse",
         "n": int(sl.n_pairs), "statistic": "median paired difference (penalty - L2)",
         "value": float(sl.median_difference), "frac": float(sl.frac_lower), "p_value": float(sl.p_value),
         "held": not better},
    ])


def _fmt_p(p: float) -> str:
    return "n/a" if not np.isfinite(p) else f"{p:.2g}"


def caption(ver: pd.DataFrame, ca: pd.DataFrame, sel: pd.DataFrame, scale: str, study: dict,
            dataset_notes: dict[str, str]) -> str:
    """RST caption with the numbers, used by the report for every figure and table of this study."""
    pen = study["penalty"]
    n_runs = len(replica_layout(study))
    lines = [
        f"Stiffness of ResNets x_(n+1) = x_n + h tanh(W(t_n) x_n + b(t_n)), **{scale}** scale: depth "
        f"{study['depth']} (h = {study['T'] / study['depth']:.3g}), width {study['width']}, parameterizations "
        f"{study['parameterizations']}, seeds {study['seeds']}, {study['epochs']} epochs of Adam (lr {study['lr']}), "
        f"{n_runs} runs per dataset x parameterization trained as one replica batch. Metrics of the Jacobian "
        "J = diag(σ'(Wx+b)) W of the residual function at every layer and training sample, tracked every "
        f"{study['track_every']} epochs on the trajectories of {'all' if study['track_samples'] is None else 'up to ' + str(study['track_samples'])} training inputs; "
        "a network's number is the maximum over layers of the median over samples. "
        "Stiffness ratio = max|Re λ| / min|Re λ| over Re λ < 0; explicit-Euler index = h·ρ(J); "
        "amplification = max|1 + hλ| (≤ 1 inside the explicit-Euler stability disc).",
        "",
        f"Regularizers: none; L2 on all weights, strength in {study['l2_grid']}; stiffness penalty "
        f"({'mean (h·‖J‖₂)², spectral norm by ' + str(pen['power_iters']) + ' power iterations' if pen['kind'] == 'spectral_norm' else 'mean h²‖J‖_F²'}), "
        f"strength in {study['penalty_grid']}. Each strength is selected per dataset x parameterization on a "
        f"validation half ({study['val_fraction']:.0%}) of the held-out points; test MSE and gap "
        "(test − train MSE, units of the training output variance) are on the other half. "
        "p-values: Wilcoxon signed-rank, two-sided, pooled over datasets x parameterizations x seeds.",
        "",
        "Datasets: " + "; ".join(f"*{k}*: {v}" for k, v in dataset_notes.items()) + ".",
        "",
    ]
    for r in ver.itertuples():
        verdict = "**held**" if r.held else "**did not hold**"
        if r.claim.startswith("a"):
            lines.append(f"* Claim (a) {verdict} for the stiffness measure `{r.metric}`: median log10(final/initial) = "
                         f"{r.value:+.3g}, increased in {r.frac:.0%} of {r.n} unregularized runs, p = {_fmt_p(r.p_value)}.")
        elif r.claim.startswith("b1:"):
            lines.append(f"* Claim (b), regularizing effect, {verdict}: selected penalty vs none, median paired Δgap = "
                         f"{r.value:+.3g} (lower in {r.frac:.0%} of {r.n} pairs, p = {_fmt_p(r.p_value)}).")
        elif r.claim.startswith("b1'"):
            lines.append(f"  Test MSE, penalty − none: median {r.value:+.3g} (lower in {r.frac:.0%}, p = {_fmt_p(r.p_value)}).")
        else:
            lines.append(f"* Claim (b), no benefit over L2, {verdict}: median paired Δ test MSE (penalty − L2) = "
                         f"{r.value:+.3g} (penalty better in {r.frac:.0%} of {r.n} pairs, p = {_fmt_p(r.p_value)}).")
    others = ca[(ca.scope == "all") & (ca.regularizer == "none")]
    lines += ["", "Other stiffness measures, unregularized runs, median log10(final/initial): "
              + "; ".join(f"{r.metric} {r.median_log10_ratio:+.3g} (up in {r.frac_increased:.0%}, "
                          f"p = {_fmt_p(r.p_value)})" for r in others.itertuples()) + "."]
    lines += ["", "Selected strengths and median test MSE (none / L2 / penalty): " + "; ".join(
        f"{ds}/{pn}: " + " / ".join(
            f"{g.median_test_mse.iloc[0]:.3g}" + ("" if reg == "none" else f" (λ={g.selected_strength.iloc[0]:g})")
            for reg in ("none", "l2", "stiffness") for g in [grp[grp.regularizer == reg]] if len(g))
        for (ds, pn), grp in sel.groupby(["dataset", "parameterization"], sort=True)) + "."]
    return "\n".join(lines) + "\n"
