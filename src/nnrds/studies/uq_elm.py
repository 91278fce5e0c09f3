"""ELM surrogate UQ study: MLP vs WP-ResNets x {NUTS, VI, deep ensemble, MAP} on the land-model ensemble.

One *fit job* = one architecture (or the extrapolation setting) with every method; inputs/outputs are
standardized with the training statistics and all metrics are in standardized output units (per QoI std).
Extrapolation: train on the points of a sub-box (central ``fraction`` of the range of a few inputs), test on
held-out points inside and outside it. 1-D slices: one input varied over its full range, the others at the
box midpoint; the simulator itself (same forcing and spin-up as the ensemble) gives the truth.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from .. import uq
from ..data import load_table_dataset, read_metadata
from ..train import seed_everything
from ..uq import diagnostics, metrics
from ..uq.reduction import OutputPCA

N_SLICE_SAMPLES = 5


# ------------------------------------------------------------------------------------------- data
def slice_design(meta: dict, inputs: list[str], n_points: int) -> pd.DataFrame:
    """Rows (slice input, x) in raw units: one input swept over [low, high], the others at the midpoint."""
    names = [i["name"] for i in meta["inputs"]]
    lo = np.array([i["low"] for i in meta["inputs"]])
    hi = np.array([i["high"] for i in meta["inputs"]])
    mid = 0.5 * (lo + hi)
    rows = []
    for name in inputs:
        if name not in names:
            raise ValueError(f"`uq_elm.slices.inputs` names {name!r}, not an ensemble input ({', '.join(names)})")
        j = names.index(name)
        for x in np.linspace(lo[j], hi[j], n_points):
            p = mid.copy()
            p[j] = x
            rows.append({"slice_input": name, "x": float(x), **dict(zip(names, p))})
    return pd.DataFrame(rows)


def simulate_slices(meta: dict, elm_cfg: dict, slices_cfg: dict) -> pd.DataFrame:
    """The true simulator along the slices (long table: slice_input, x, output, y)."""
    from ..data import elm, ensembles

    design = slice_design(meta, slices_cfg["inputs"], slices_cfg["n_points"])
    names = [i["name"] for i in meta["inputs"]]
    forcing = ensembles.elm_forcing(elm_cfg)
    y, _ = elm.run_ensemble(design[names], forcing, elm_cfg["spinup_cycles"], elm_cfg["analytic_jumps"],
                            elm_cfg["fixed"], chunk=elm_cfg["chunk"])
    out = []
    for o in y.columns:
        out.append(pd.DataFrame({"slice_input": design["slice_input"], "x": design["x"], "output": o, "y": y[o]}))
    return pd.concat(out, ignore_index=True)


def in_box(P: np.ndarray, names: list[str], meta: dict, inputs: list[str], fraction: float) -> np.ndarray:
    """Points whose listed inputs lie in the central ``fraction`` of their ranges."""
    ok = np.ones(len(P), dtype=bool)
    for i in meta["inputs"]:
        if i["name"] in inputs:
            j = names.index(i["name"])
            c, half = 0.5 * (i["low"] + i["high"]), 0.5 * fraction * (i["high"] - i["low"])
            ok &= np.abs(P[:, j] - c) <= half
    return ok


# ------------------------------------------------------------------------------------------- one job
def _spec(arch_cfg: dict, study: dict, d_in: int, d_out: int) -> uq.NetSpec:
    return uq.NetSpec(d_in=d_in, d_out=d_out, kind=arch_cfg["kind"], degree=arch_cfg.get("degree", 0),
                      width=study["width"], depth=study["depth"], T=study["T"], activation=study["activation"],
                      **study["prior"])


def _settings(method: str, study: dict) -> dict:
    s = dict(study[method])
    s.pop("max_params", None)
    return s


def _predict(post, Xt, n, seed, red: OutputPCA | None, return_f: bool = False):
    """Posterior-predictive samples in (standardized) output space; through the PCA lift when ``red``."""
    out = uq.predictive_samples(post, Xt, n, seed=seed, return_f=return_f)
    if red is None:
        return out
    rng = np.random.default_rng(seed)
    if return_f:
        return red.lift(out[0], noise=True, rng=rng), red.lift(out[1])
    return red.lift(out, noise=True, rng=rng)


#: wall-clock columns of a job (kept out of metrics.csv: they are not reproducible)
TIMING_COLUMNS = ("wall_s", "warmup_s", "sampling_s", "ess_per_s")


def run_job(job: str, ensemble_dir: str, study: dict, *, base_seed: int = 0) -> dict[str, pd.DataFrame]:
    """Fit every method for one architecture (``job`` = architecture name) or ``extrapolation``."""
    seed_everything(base_seed)
    Ptr, Ytr_raw, Pte, Yte_raw, names, outs = load_table_dataset(ensemble_dir)
    meta = read_metadata(ensemble_dir)
    if job == "extrapolation":
        ex = study["extrapolation"]
        arch_name = ex["architecture"]
        mtr = in_box(Ptr, names, meta, ex["inputs"], ex["fraction"])
        mte = in_box(Pte, names, meta, ex["inputs"], ex["fraction"])
        Ptr, Ytr_raw = Ptr[mtr][:study["n_train"]], Ytr_raw[mtr][:study["n_train"]]
        test_sets = {"inside": (Pte[mte], Yte_raw[mte]), "outside": (Pte[~mte], Yte_raw[~mte])}
    else:
        arch_name = job
        Ptr, Ytr_raw = Ptr[:study["n_train"]], Ytr_raw[:study["n_train"]]
        test_sets = {"interpolation": (Pte[:study["n_test"]], Yte_raw[:study["n_test"]])}
    if len(Ptr) < 5:
        raise ValueError(f"uq_elm job {job}: only {len(Ptr)} training points (raise raw_data.elm.n_train or "
                         f"uq_elm.extrapolation.fraction)")
    mx, sx = Ptr.mean(0), Ptr.std(0) + 1e-12
    my, sy = Ytr_raw.mean(0), Ytr_raw.std(0) + 1e-12
    X, Y = (Ptr - mx) / sx, (Ytr_raw - my) / sy
    arch_cfg = study["architectures"][arch_name]
    # optional PCA of the standardized outputs: the net fits the leading k scores (module OutputPCA)
    red = OutputPCA.fit(Y, arch_cfg["pca_variance"]) if arch_cfg.get("pca_variance") else None
    Yfit = red.transform(Y) if red is not None else Y
    spec = _spec(arch_cfg, study, X.shape[1], Yfit.shape[1])
    net = uq.BayesNet(spec)
    P = net.P
    sdesign = slice_design(meta, study["slices"]["inputs"], study["slices"]["n_points"])
    Xs = (sdesign[names].to_numpy() - mx) / sx
    rows, calib, preds, slices, trace = [], [], [], [], None
    n_ps = study["n_pred_samples"]
    for method in study["methods"]:
        base = {"job": job, "architecture": arch_name, "kind": spec.kind, "degree": spec.degree,
                "width": spec.width, "depth": spec.depth, "n_params": P, "n_train": len(X), "method": method,
                "n_fit_outputs": spec.d_out,
                "pca_retained_variance": red.retained_variance if red is not None else 1.0}
        note, diag = "", {}
        if method == "nuts" and P > study["nuts"]["max_params"]:
            note = (f"not run: {P} parameters > nuts.max_params={study['nuts']['max_params']} (tree depth "
                    f"saturates and chains do not mix within the budget at this size)")
            for setting in test_sets:
                rows.append({**base, "setting": setting, "status": "skipped", "note": note})
            continue
        t0 = time.perf_counter()
        post = uq.run_method(method, net, X, Yfit, _settings(method, study), seed=base_seed)
        wall = time.perf_counter() - t0
        if method == "nuts":
            Xc = next(iter(test_sets.values()))[0][:study["nuts_check_points"]]
            idata = diagnostics.to_inference_data(post, (Xc - mx) / sx)
            diag = diagnostics.summarize(idata, study["rhat_threshold"])
            i = post.info
            note = (f"ran: {i['chains']} chains x {i['samples']} draws ({i['warmup']} warm-up), mean tree depth "
                    f"{i['mean_tree_depth']:.1f}/{i['max_tree_depth']}; invariant R-hat "
                    f"{diag['rhat_invariant_max']:.2f}" + (" > threshold: FLAGGED" if diag["flagged"] else " ok")
                    + f" (each chain alone: split R-hat {diag.get('rhat_within_invariant_max', float('nan')):.2f})"
                    + (f"; chains' mean log posterior density spans {np.ptp(i['chain_log_density']):.0f} nats"
                       if i.get("chain_log_density") else ""))
            trace = diagnostics.trace_table(idata)
            trace.insert(0, "job", job)
            ess_s = diag["ess_bulk_invariant_min"] / max(i["sampling_s"], 1e-9)
            diag = {**diag, "warmup_s": i["warmup_s"], "sampling_s": i["sampling_s"], "ess_per_s": ess_s,
                    "mean_tree_depth": i["mean_tree_depth"]}
        for setting, (Pt, Yt_raw) in test_sets.items():
            Xt, Yt = (Pt - mx) / sx, (Yt_raw - my) / sy
            ys = _predict(post, Xt, n_ps, base_seed + 1, red)
            m = metrics.summary(ys, Yt)
            rows.append({**base, "setting": setting, "status": "ok", "note": note, "n_test": len(Xt),
                         "wall_s": wall, **m, **diag})
            for lvl, cov in metrics.calibration_curve(ys, Yt):
                calib.append({"job": job, "architecture": arch_name, "method": method, "setting": setting,
                              "nominal": lvl, "observed": cov})
            lo, hi = metrics.interval(ys, 0.9)
            mean = ys.mean(0)
            for o, name in enumerate(outs):
                preds.append(pd.DataFrame({"job": job, "architecture": arch_name, "method": method,
                                           "setting": setting, "point": np.arange(len(Xt)), "output": name,
                                           "y": Yt[:, o], "mean": mean[:, o], "q05": lo[:, o], "q95": hi[:, o]}))
        ys, fs = _predict(post, Xs, n_ps, base_seed + 2, red, return_f=True)
        lo, hi = metrics.interval(ys, 0.9)
        for o, name in enumerate(outs):
            df = pd.DataFrame({"job": job, "architecture": arch_name, "method": method,
                               "slice_input": sdesign["slice_input"], "x": sdesign["x"], "output": name,
                               "mean": ys[:, :, o].mean(0) * sy[o] + my[o], "q05": lo[:, o] * sy[o] + my[o],
                               "q95": hi[:, o] * sy[o] + my[o]})
            for k in range(min(N_SLICE_SAMPLES, fs.shape[0])):
                df[f"f{k}"] = fs[k * (fs.shape[0] // N_SLICE_SAMPLES), :, o] * sy[o] + my[o]
            slices.append(df)
    # wall-clock columns go to their own table, so every other table is byte-reproducible
    mdf = pd.DataFrame(rows)
    tcols = [c for c in TIMING_COLUMNS if c in mdf.columns]
    out = {"metrics": mdf.drop(columns=tcols), "timings": mdf[["job", "architecture", "method", "setting", *tcols]],
           "calibration": pd.DataFrame(calib),
           "predictions": pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(),
           "slices": pd.concat(slices, ignore_index=True) if slices else pd.DataFrame(),
           "trace": trace if trace is not None else pd.DataFrame(columns=["job", "chain", "draw", "name", "value"])}
    return out


# ------------------------------------------------------------------------------------------- summary
def caption(metrics_df: pd.DataFrame, scale: str, study: dict) -> str:
    ok = metrics_df[metrics_df.status == "ok"]
    lines = [
        f"ELM surrogate UQ, **{scale}** scale: WP-ResNets / MLP of width {study['width']} and depth "
        f"{study['depth']} ({study['activation']}), {study['n_train']} training runs of the simplified ELM "
        f"ensemble (15 inputs -> 10 QoIs, fit jointly), inputs and outputs standardized; metrics in units of each "
        f"QoI's training std, averaged over QoIs and {study['n_test']} held-out runs. Methods: NUTS "
        f"({study['nuts']['chains']} chains x {study['nuts']['samples']} draws after {study['nuts']['warmup']} "
        f"warm-up, chain-vectorized, warm-started at posterior modes), VI (mean-field Bayes-by-backprop, "
        f"{study['vi']['steps']} steps)"
        + (f", low-rank VI (covariance W W^T + diagonal, rank {study['vi_lowrank']['rank']}, "
           f"{study['vi_lowrank']['steps']} steps)" if "vi_lowrank" in study["methods"] else "")
        + f", deep ensemble ({study['ensemble']['members']} members), MAP. "
        f"NUTS mixing is judged by R-hat of symmetry-invariant quantities (noise stds, predictions at held-out "
        f"inputs); threshold {study['rhat_threshold']}.",
        "",
    ]
    if "pca_retained_variance" in ok.columns:
        for r in ok[ok.pca_retained_variance < 1.0].drop_duplicates("job").itertuples():
            lines.append(f"* {r.job}: outputs reduced by PCA to {int(r.n_fit_outputs)} components retaining "
                         f"{r.pca_retained_variance:.1%} of the training variance of the standardized QoIs "
                         f"(the dropped components are added back as Gaussian noise with their training variance).")
    for r in metrics_df.itertuples():
        if r.status != "ok":
            lines.append(f"* {r.architecture}/{r.method} ({r.n_params} parameters): {r.note}.")
    flagged = ok[ok["flagged"].eq(True)] if "flagged" in ok.columns else ok.iloc[0:0]
    for r in flagged.drop_duplicates("job").itertuples():
        within = getattr(r, "rhat_within_invariant_max", float("nan"))
        why = ("each chain alone is stationary (split R-hat {:.2f}): the chains sit in different posterior modes "
               "that NUTS does not cross".format(within) if within <= study["rhat_threshold"] else
               "chains are not stationary even alone (split R-hat {:.2f}): longer warm-up needed".format(within)
               if np.isfinite(within) else "within-chain R-hat not available")
        lines.append(f"* **FLAGGED** {r.job}/{r.method}: invariant R-hat {r.rhat_invariant_max:.2f} > "
                     f"{study['rhat_threshold']} (weight-level R-hat {r.theta_rhat_max:.2f}); {why}; its intervals "
                     f"are not a converged posterior.")
    for setting, g in ok.groupby("setting", sort=False):
        parts = ", ".join(f"{r.architecture}/{r.method} cov90 {r.cov90:.2f} CRPS {r.crps:.3f}"
                          for r in g.itertuples())
        lines.append(f"* {setting}: {parts}.")
    ex = ok[ok.job == "extrapolation"]
    if len(ex):
        w = ex.pivot_table(index="method", columns="setting", values="width90")
        if {"inside", "outside"} <= set(w.columns):
            parts = ", ".join(f"{m} {w.loc[m, 'inside']:.2f} -> {w.loc[m, 'outside']:.2f}" for m in w.index)
            ex_cfg = study["extrapolation"]
            lines.append(f"* extrapolation ({ex_cfg['architecture']}, trained where {', '.join(ex_cfg['inputs'])} "
                         f"lie in the central {ex_cfg['fraction']:.0%} of their ranges): mean 90% interval width "
                         f"inside -> outside: {parts}.")
    return "\n".join(lines) + "\n"
