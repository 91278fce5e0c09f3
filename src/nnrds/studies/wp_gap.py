"""Weight-parameterization generalization-gap study.

Claim tested: parameterizing W(t) with a small basis (parameter count independent of depth) shrinks
the generalization gap. One *cell* = one (dataset, parameterization); it trains every depth x width,
with all seeds of an architecture batched as replicas of one :class:`~nnrds.models.ReplicaNet`.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import datasets
from ..models import Arch, ReplicaNet
from ..train import fit, mse_per_replica, pick_device, seed_everything

RUN_COLUMNS = ["dataset", "parameterization", "kind", "degree", "depth", "width", "n_params", "seed",
               "train_mse", "test_mse", "gap", "epochs"]


def run_cell(dataset: str, dspec: dict, pname: str, pspec: dict, study: dict, *, base_seed: int = 0,
             device: str = "auto", dtype: str = "float32") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every (depth, width, seed) of one dataset x parameterization. Returns (runs, timings)."""
    seed_everything(base_seed)
    dev = pick_device(device)
    tdtype = getattr(torch, dtype)
    seeds = list(study["seeds"])
    splits = datasets.seeded_splits(dspec, seeds, base_seed)
    d_in, d_out = splits[0].X_train.shape[1], splits[0].Y_train.shape[1]

    def stack(attr: str) -> torch.Tensor:
        return torch.as_tensor(np.stack([getattr(s, attr) for s in splits]), dtype=tdtype, device=dev)

    Xtr, Ytr, Xte, Yte = (stack(a) for a in ("X_train", "Y_train", "X_test", "Y_test"))
    rows, timings = [], []
    for depth in study["depths"]:
        for width in study["widths"]:
            arch = Arch(d_in=d_in, d_out=d_out, width=width, depth=depth,
                        param=pspec["kind"], degree=pspec.get("degree", 0), T=study["T"])
            net = ReplicaNet(arch, [1000 * s + base_seed for s in seeds], dtype=tdtype).to(dev)
            res = fit(net, Xtr, Ytr, epochs=study["epochs"], lr=study["lr"], batch_size=study["batch_size"],
                      seed=base_seed)
            with torch.no_grad():
                tr = mse_per_replica(net, Xtr, Ytr).cpu().numpy()
                te = mse_per_replica(net, Xte, Yte).cpu().numpy()
            for r, s in enumerate(seeds):
                rows.append({"dataset": dataset, "parameterization": pname, "kind": arch.param,
                             "degree": arch.degree, "depth": depth, "width": width,
                             "n_params": arch.n_params(), "seed": s, "train_mse": float(tr[r]),
                             "test_mse": float(te[r]), "gap": float(te[r]) - float(tr[r]), "epochs": res.epochs})
                timings.append({"dataset": dataset, "parameterization": pname, "depth": depth, "width": width,
                                "seed": s, "wall_time_s": res.wall_time_s / len(seeds),
                                "batch_wall_time_s": res.wall_time_s, "replicas_in_batch": len(seeds),
                                "device": str(dev)})
    return pd.DataFrame(rows, columns=RUN_COLUMNS), pd.DataFrame(timings)


def summarize(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per dataset: Spearman rank correlation of gap with n_params, and median gap per parameterization."""
    corr, med = [], []
    for ds, g in runs.groupby("dataset", sort=True):
        rho, p = stats.spearmanr(g["n_params"], g["gap"])
        corr.append({"dataset": ds, "n_runs": len(g), "spearman_rho_gap_vs_nparams": float(rho),
                     "p_value": float(p)})
        for pn, gp in g.groupby("parameterization", sort=True):
            med.append({"dataset": ds, "parameterization": pn, "n_runs": len(gp),
                        "median_n_params": float(gp["n_params"].median()),
                        "median_train_mse": float(gp["train_mse"].median()),
                        "median_test_mse": float(gp["test_mse"].median()),
                        "median_gap": float(gp["gap"].median()),
                        "q25_gap": float(gp["gap"].quantile(0.25)), "q75_gap": float(gp["gap"].quantile(0.75))})
    return pd.DataFrame(corr), pd.DataFrame(med)


def caption(corr: pd.DataFrame, med: pd.DataFrame, scale: str, study: dict, dataset_notes: dict[str, str]) -> str:
    """RST caption with the numbers, used by the report for every figure of this study."""
    lines = [
        f"Weight-parameterization generalization gap, **{scale}** scale: depths {study['depths']}, "
        f"widths {study['widths']}, seeds {study['seeds']}, {study['epochs']} epochs of Adam (lr {study['lr']}). "
        "Each dot is one training run; MSE is in units of the training outputs' variance "
        "(inputs and outputs standardized with training statistics); gap = test MSE − train MSE.",
        "",
        "Datasets: " + "; ".join(f"*{k}*: {v}" for k, v in dataset_notes.items()) + ".",
        "",
    ]
    for _, r in corr.iterrows():
        m = med[med.dataset == r.dataset].sort_values("median_gap")
        meds = ", ".join(f"{x.parameterization} {x.median_gap:.3g}" for x in m.itertuples())
        lines.append(f"* **{r.dataset}**: Spearman ρ(gap, n_params) = {r.spearman_rho_gap_vs_nparams:.2f} "
                     f"(p = {r.p_value:.2g}, {r.n_runs} runs); median gap by parameterization: {meds}.")
    return "\n".join(lines) + "\n"
