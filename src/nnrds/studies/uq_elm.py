"""ELM surrogate UQ study: MLP vs WP-ResNets x {NUTS, VI, deep ensemble, MAP} on the land-model ensemble.

One *fit job* = one architecture (or the extrapolation setting) with every method; inputs/outputs are
standardized with the training statistics and all metrics are in standardized output units (per QoI std).
Extrapolation: train on the points of a sub-box (central ``fraction`` of the range of a few inputs), test on
held-out points inside and outside it. 1-D slices: one input varied over its full range, the others at the
box midpoint; the simulator itself (same forcing and spin-up as the ensemble) gives the truth.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import pandas as pd

from .. import experiment, uq
from ..data import load_table_dataset, read_metadata
from ..train import seed_everything
from ..uq import diagnostics, metrics, stacking
from ..uq.reduction import OutputPCA

N_SLICE_SAMPLES = 5

STUDY = "uq_elm"
#: figures the claims point to (outputs of rule uq_elm_figures)
FIGURES = {"depth": "figures/uq_elm/depth_feasibility.png"}
#: the cell functions of the study contract (nnrds.studies.Study)
CELLS = ("run_job", "run_depth_cell")
log = logging.getLogger(__name__)


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
    y, _ = elm.run_ensemble(
        design[names],
        forcing,
        elm_cfg["spinup_cycles"],
        elm_cfg["analytic_jumps"],
        elm_cfg["fixed"],
        chunk=elm_cfg["chunk"],
    )
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
    return uq.NetSpec(
        d_in=d_in,
        d_out=d_out,
        kind=arch_cfg["kind"],
        degree=arch_cfg.get("degree", 0),
        width=study["width"],
        depth=study["depth"],
        T=study["T"],
        activation=study["activation"],
        **study["prior"],
    )


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


def nuts_diagnose(post, idata, study: dict) -> dict:
    """:func:`nnrds.uq.diagnostics.summarize` with the study's targets: invariant R-hat <= the larger of
    ``rhat_threshold`` (published 1.01) and the simulated threshold, each chain's split R-hat <= the simulated
    threshold (or ``within_rhat_threshold`` when a number), bulk ESS >= ``min_ess_per_chain`` x chains. The
    simulation (``calibration``) runs at this run's chains, draws and invariant quantities."""
    cal = {**{"level": 0.05, "n_sim": 100}, **(study.get("calibration") or {}), "seed": 0}
    return diagnostics.summarize(
        idata,
        study["rhat_threshold"],
        study.get("within_rhat_threshold"),
        float(study["min_ess_per_chain"]) * post.chains,
        calibrate=cal,
    )


def posterior_kind(i: dict, mixing: str) -> str:
    """What a NUTS run's reported distribution is: one posterior found by chains from several independent mode
    searches (they agree), one mode (chains started around one mode search), stacked modes (chains in different
    modes: the stacking is reported beside), or none (not converged)."""
    modes = sorted(set(i.get("chain_modes") or []))
    if mixing == diagnostics.CONVERGED:
        if len(modes) > 1:
            return f"one posterior: chains from {len(modes)} independent mode searches agree"
        return "one mode: every chain started around one mode search"
    if mixing == diagnostics.MODES:
        return "chains in different modes: see the stacked predictive (nuts_stacked)"
    return "none: not converged"


def nuts_note(i: dict, diag: dict, study: dict) -> str:
    """One sentence on a NUTS run: budget, tree depth, diagnostics against the targets, and why it is flagged."""
    why = {
        diagnostics.CONVERGED: "converged",
        diagnostics.DRIFTING: "FLAGGED: chains still drifting (some chain's own split R-hat above "
        f"{diag['within_threshold']:.3f})",
        diagnostics.MODES: "FLAGGED: each chain stationary, chains in different modes",
        diagnostics.UNDERSAMPLED: f"FLAGGED: mixed but bulk ESS below {diag['min_ess']:g}",
    }[diag["mixing"]]
    spread = (
        f"; chains' mean log posterior density spans {np.ptp(i['chain_log_density']):.0f} nats"
        if i.get("chain_log_density")
        else ""
    )
    modes = ""
    if i.get("mode_potentials"):
        u = np.asarray(i["mode_potentials"])
        over = len(set(i.get("chain_modes") or [])) > 1
        modes = (
            f"; {len(u)} independent mode searches (Adam + L-BFGS) ended at potentials spanning "
            f"{np.ptp(u):.0f} nats, "
            + (
                "chains started around each of them in turn (over-dispersed)"
                if over
                else "chains started around the best one"
            )
            if len(u) > 1
            else "; chains started around one mode search (Adam + L-BFGS)"
        )
    return (
        f"ran: {i['chains']} chains x {i['samples']} draws ({i['warmup']} warm-up), init {i['init']}, metric "
        f"{i.get('metric', 'diag')}, mean tree depth {i['mean_tree_depth']:.1f}/{i['max_tree_depth']}; "
        f"invariant R-hat {diag['rhat_invariant_max']:.3f} (target <= {diag['rhat_threshold']:.3f}), each chain "
        f"alone split R-hat {diag.get('rhat_within_invariant_max', float('nan')):.3f} (target <= "
        f"{diag['within_threshold']:.3f}), bulk ESS {diag['ess_bulk_invariant_min']:.0f} (target >= "
        f"{diag['min_ess']:g}): {why}{spread}{modes}"
    )


#: wall-clock columns of a job (kept out of metrics.csv: they are not reproducible)
TIMING_COLUMNS = ("wall_s", "warmup_s", "sampling_s", "ess_per_s")
#: columns of ``metrics`` only a sampler (NUTS) fills: NaN by design in the rows of the other methods; the job's
#: table check (:func:`nnrds.commands.common.cell_job`) holds every other number finite
SAMPLER_COLUMNS = (
    "sigma_rhat_max",
    "sigma_ess_bulk_min",
    "sigma_ess_tail_min",
    "pred_rhat_max",
    "pred_ess_bulk_min",
    "pred_ess_tail_min",
    "theta_rhat_max",
    "theta_ess_bulk_min",
    "theta_ess_tail_min",
    "rhat_invariant_max",
    "ess_bulk_invariant_min",
    "rhat_within_invariant_max",
    "ess_bulk_within_invariant_min",
    "divergences",
    "ess_per_chain_median",
    "null_phi",
    "null_level",
    "rhat_threshold",
    "within_threshold",
    "min_ess",
    "mean_tree_depth",
    "chains",
    "draws_per_chain",
    "n_invariant",
    "n_mode_searches",
)
#: NaN-by-design columns per table of a fit job (``allow_nonfinite`` of :func:`nnrds.commands.common.cell_job`)
NONFINITE_BY_DESIGN = {"metrics": SAMPLER_COLUMNS}


def not_run(df: pd.DataFrame) -> pd.Series:
    """Rows of a method that was not run (status ``skipped``, e.g. NUTS above ``nuts.max_params``): no numbers by
    design, so the table check skips them (``unchecked_rows`` of :func:`nnrds.commands.common.cell_job`)."""
    return df["status"].eq("skipped") if "status" in df else pd.Series(False, index=df.index)


#: rows without numbers by design per table of a fit job
UNCHECKED_ROWS = {"metrics": not_run}


def run_job(cell: experiment.Cell) -> dict[str, pd.DataFrame]:
    """Fit every method for one architecture (``cell["job"]`` = architecture name) or ``extrapolation``, on the ELM
    ensemble of ``cell.in_dirs[0]``."""
    job, ensemble_dir, study, base_seed = cell["job"], cell.in_dirs[0], cell.study, cell.base_seed
    seed_everything(base_seed)
    Ptr, Ytr_raw, Pte, Yte_raw, names, outs = load_table_dataset(ensemble_dir)
    meta = read_metadata(ensemble_dir)
    if job == "extrapolation":
        ex = study["extrapolation"]
        arch_name = ex["architecture"]
        mtr = in_box(Ptr, names, meta, ex["inputs"], ex["fraction"])
        mte = in_box(Pte, names, meta, ex["inputs"], ex["fraction"])
        Ptr, Ytr_raw = Ptr[mtr][: study["n_train"]], Ytr_raw[mtr][: study["n_train"]]
        test_sets = {"inside": (Pte[mte], Yte_raw[mte]), "outside": (Pte[~mte], Yte_raw[~mte])}
    else:
        arch_name = job
        Ptr, Ytr_raw = Ptr[: study["n_train"]], Ytr_raw[: study["n_train"]]
        test_sets = {"interpolation": (Pte[: study["n_test"]], Yte_raw[: study["n_test"]])}
    if len(Ptr) < 5:
        raise ValueError(
            f"uq_elm job {job}: only {len(Ptr)} training points (raise data.elm.n_train or "
            f"uq_elm.extrapolation.fraction)"
        )
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
    evals = []  # (method label, posterior, status, note, diagnostics)
    for method in study["methods"]:
        base_note = ""
        if method == "nuts" and P > study["nuts"]["max_params"]:
            note = (
                f"not run: {P} parameters > nuts.max_params={study['nuts']['max_params']} (tree depth "
                f"saturates and chains do not mix within the budget at this size)"
            )
            evals.append((method, None, "skipped", note, {}))
            continue
        t0 = time.perf_counter()
        post = uq.run_method(method, net, X, Yfit, _settings(method, study), seed=base_seed)
        wall = time.perf_counter() - t0
        if method != "nuts":
            evals.append((method, post, "ok", base_note, {"wall_s": wall}))
            continue
        Xc = next(iter(test_sets.values()))[0][: study["nuts_check_points"]]
        idata = diagnostics.to_inference_data(post, (Xc - mx) / sx)
        diag = nuts_diagnose(post, idata, study)
        i = post.info
        note = nuts_note(i, diag, study)
        trace = diagnostics.trace_table(idata)
        trace.insert(0, "job", job)
        ess_s = diag["ess_bulk_invariant_min"] / max(i["sampling_s"], 1e-9)
        diag = {
            **diag,
            "wall_s": wall,
            "warmup_s": i["warmup_s"],
            "sampling_s": i["sampling_s"],
            "ess_per_s": ess_s,
            "mean_tree_depth": i["mean_tree_depth"],
            "chains": post.chains,
            "draws_per_chain": post.n_draws // post.chains,
            "n_invariant": diagnostics.n_invariant(idata),
            "n_mode_searches": len(set(i.get("chain_modes") or [])) or 1,
            "posterior": posterior_kind(i, diag["mixing"]),
        }
        # a run that is not a converged posterior is kept apart (status "flagged"), never pooled with posteriors
        evals.append((method, post, "ok" if not diag["flagged"] else "flagged", note, diag))
        if diag["mixing"] == diagnostics.MODES and study["stacking"]:
            # every chain stationary, chains in different modes: stacking of the chains (Yao, Vehtari & Gelman
            # 2022) -- a predictive mixture weighted by each chain's PSIS-LOO performance, not the posterior
            st = stacking.stack_chains(net, post, X, Yfit)
            spost = dataclasses.replace(post, chain_weights=st["weights"])
            w = np.round(st["weights"], 3)
            snote = (
                f"stacking of {post.chains} non-mixing chains (Yao, Vehtari & Gelman 2022) by PSIS-LOO on the "
                f"training data: weights {w.tolist()}, LOO log score {st['lpd_loo_stacked']:.1f} vs "
                f"{st['lpd_loo_equal']:.1f} for equal weights (max Pareto k {st['pareto_k_max']:.2f}); a "
                f"predictive mixture, not the exact posterior"
            )
            evals.append(
                (
                    "nuts_stacked",
                    spost,
                    "stacked",
                    snote,
                    {
                        **{k: v for k, v in diag.items() if k != "flagged"},
                        "flagged": False,
                        "posterior": "stacked modes: a predictive mixture of the chains, not the posterior",
                    },
                )
            )
    for method, post, status, note, diag in evals:
        base = {
            "job": job,
            "architecture": arch_name,
            "kind": spec.kind,
            "degree": spec.degree,
            "width": spec.width,
            "depth": spec.depth,
            "n_params": P,
            "n_train": len(X),
            "method": method,
            "n_fit_outputs": spec.d_out,
            "pca_retained_variance": red.retained_variance if red is not None else 1.0,
        }
        if post is None:
            for setting in test_sets:
                rows.append({**base, "setting": setting, "status": status, "note": note})
            continue
        for setting, (Pt, Yt_raw) in test_sets.items():
            Xt, Yt = (Pt - mx) / sx, (Yt_raw - my) / sy
            ys = _predict(post, Xt, n_ps, base_seed + 1, red)
            m = metrics.summary(ys, Yt)
            rows.append({**base, "setting": setting, "status": status, "note": note, "n_test": len(Xt), **m, **diag})
            for lvl, cov in metrics.calibration_curve(ys, Yt):
                calib.append(
                    {
                        "job": job,
                        "architecture": arch_name,
                        "method": method,
                        "setting": setting,
                        "status": status,
                        "nominal": lvl,
                        "observed": cov,
                    }
                )
            lo, hi = metrics.interval(ys, 0.9)
            mean = ys.mean(0)
            for o, name in enumerate(outs):
                preds.append(
                    pd.DataFrame(
                        {
                            "job": job,
                            "architecture": arch_name,
                            "method": method,
                            "setting": setting,
                            "status": status,
                            "point": np.arange(len(Xt)),
                            "output": name,
                            "y": Yt[:, o],
                            "mean": mean[:, o],
                            "q05": lo[:, o],
                            "q95": hi[:, o],
                        }
                    )
                )
        ys, fs = _predict(post, Xs, n_ps, base_seed + 2, red, return_f=True)
        lo, hi = metrics.interval(ys, 0.9)
        for o, name in enumerate(outs):
            df = pd.DataFrame(
                {
                    "job": job,
                    "architecture": arch_name,
                    "method": method,
                    "status": status,
                    "slice_input": sdesign["slice_input"],
                    "x": sdesign["x"],
                    "output": name,
                    "mean": ys[:, :, o].mean(0) * sy[o] + my[o],
                    "q05": lo[:, o] * sy[o] + my[o],
                    "q95": hi[:, o] * sy[o] + my[o],
                }
            )
            for k in range(min(N_SLICE_SAMPLES, fs.shape[0])):
                df[f"f{k}"] = fs[k * (fs.shape[0] // N_SLICE_SAMPLES), :, o] * sy[o] + my[o]
            slices.append(df)
    # wall-clock columns go to their own table, so every other table is byte-reproducible
    mdf = pd.DataFrame(rows)
    tcols = [c for c in TIMING_COLUMNS if c in mdf.columns]
    out = {
        "metrics": mdf.drop(columns=tcols),
        "timings": mdf[["job", "architecture", "method", "setting", *tcols]],
        "calibration": pd.DataFrame(calib),
        "predictions": pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(),
        "slices": pd.concat(slices, ignore_index=True) if slices else pd.DataFrame(),
        "trace": trace if trace is not None else pd.DataFrame(columns=["job", "chain", "draw", "name", "value"]),
    }
    return out


# ------------------------------------------------------------------------------------------- depth sweep
DEPTH_KEYS = ["n_train", "parameterization", "depth", "seed"]
#: runs with invariant R-hat at most this are "near convergence": their ESS can be compared
NEAR_RHAT = 1.1


def run_depth_cell(cell: experiment.Cell) -> dict[str, pd.DataFrame]:
    """NUTS feasibility over depth (issue 12 part 2) for one training size (``cell["n_train"]``, ELM ensemble of
    ``cell.in_dirs[0]``): every parameterization x depth x seed
    of ``study["depth_sweep"]``, same data, priors and sampler settings (so the same cap on gradient evaluations:
    chains x (warm-up + draws) x 2^max_tree_depth). Outputs are the leading PCA scores of the standardized QoIs
    (``pca_variance``), which keeps the networks small enough for the budget. Per run: posterior dimension,
    invariant R-hat, each chain's split R-hat, bulk / tail ESS, gradient evaluations, ESS per gradient evaluation,
    divergences, step size, tree depth, held-out CRPS and 90% coverage (in the space of the fitted scores lifted
    back to the QoIs)."""
    n_train, ensemble_dir, study, base_seed = int(cell["n_train"]), cell.in_dirs[0], cell.study, cell.base_seed
    sw = study["depth_sweep"]
    Ptr, Ytr_raw, Pte, Yte_raw, names, outs = load_table_dataset(ensemble_dir)
    if len(Ptr) < n_train:
        raise ValueError(
            f"uq_elm.depth_sweep.n_train asks for {n_train} runs, the ensemble has {len(Ptr)} (raise data.elm.n_train)"
        )
    Ptr, Ytr_raw = Ptr[:n_train], Ytr_raw[:n_train]
    Pte, Yte_raw = Pte[: study["n_test"]], Yte_raw[: study["n_test"]]
    mx, sx = Ptr.mean(0), Ptr.std(0) + 1e-12
    my, sy = Ytr_raw.mean(0), Ytr_raw.std(0) + 1e-12
    X, Y = (Ptr - mx) / sx, (Ytr_raw - my) / sy
    Xt, Yt = (Pte - mx) / sx, (Yte_raw - my) / sy
    red = OutputPCA.fit(Y, sw["pca_variance"])
    Yfit = red.transform(Y)
    Xc = Xt[: study["nuts_check_points"]]
    rows, times = [], []
    settings = dict(sw["nuts"])
    for pname, pc in sw["parameterizations"].items():
        for depth in sw["depths"]:
            spec = uq.NetSpec(
                d_in=X.shape[1],
                d_out=Yfit.shape[1],
                kind=pc["kind"],
                degree=pc.get("degree", 0),
                width=sw["width"],
                depth=depth,
                T=study["T"],
                activation=study["activation"],
                **study["prior"],
            )
            net = uq.BayesNet(spec)
            for seed in sw["seeds"]:
                t0 = time.perf_counter()
                post = uq.run_nuts(net, X, Yfit, seed=base_seed + seed, **settings)
                wall = time.perf_counter() - t0
                i = post.info
                idata = diagnostics.to_inference_data(post, Xc)
                d = nuts_diagnose(post, idata, study)
                ys = _predict(post, Xt, study["n_pred_samples"], base_seed + 1, red)
                m = metrics.summary(ys, Yt)
                n_grad = int(i["n_grad_warmup"] + i["n_grad_sampling"])
                ess = d["ess_bulk_invariant_min"]
                rows.append(
                    {
                        "n_train": n_train,
                        "parameterization": pname,
                        "kind": spec.kind,
                        "degree": spec.degree,
                        "wp": spec.kind in WP_KINDS,
                        "width": spec.width,
                        "depth": depth,
                        "seed": seed,
                        "dim": net.dim,
                        "n_fit_outputs": spec.d_out,
                        "rhat_invariant": d["rhat_invariant_max"],
                        "rhat_within": d.get("rhat_within_invariant_max", float("nan")),
                        "rhat_threshold": d["rhat_threshold"],
                        "within_threshold": d["within_threshold"],
                        "ess_bulk": ess,
                        "ess_tail": min(d.get(f"{v}_ess_tail_min", np.inf) for v in diagnostics.INVARIANT),
                        "n_grad": n_grad,
                        "n_grad_sampling": int(i["n_grad_sampling"]),
                        "ess_per_grad": ess / max(i["n_grad_sampling"], 1),
                        "divergences": d["divergences"],
                        "step_size": float(np.median(i["step_size"])),
                        "mean_tree_depth": i["mean_tree_depth"],
                        "mixing": d["mixing"],
                        "converged": not d["flagged"],
                        "crps": m["crps"],
                        "cov90": m["cov90"],
                    }
                )
                times.append(
                    {
                        "n_train": n_train,
                        "parameterization": pname,
                        "depth": depth,
                        "seed": seed,
                        "wall_s": wall,
                        "sampling_s": i["sampling_s"],
                        "ess_per_s": ess / max(i["sampling_s"], 1e-9),
                    }
                )
                log.info(
                    "depth sweep n=%d %s depth %d seed %d: dim %d, R-hat %.3f / %.3f, ESS %.0f, %.2g ESS per "
                    "1000 gradients, %.1f s",
                    n_train,
                    pname,
                    depth,
                    seed,
                    net.dim,
                    rows[-1]["rhat_invariant"],
                    rows[-1]["rhat_within"],
                    ess,
                    1000 * rows[-1]["ess_per_grad"],
                    wall,
                )
    return {"depth_runs": pd.DataFrame(rows), "depth_timings": pd.DataFrame(times)}


def depth_units(depth_runs: pd.DataFrame, study: dict) -> pd.Series:
    """Per (training size, seed) -- the independent units: runs of one seed share its data and its chains' seeds
    across depths -- the mean over depths >= ``depth_sweep.claim_min_depth`` of (mean log10 ESS per gradient
    evaluation of the WP runs minus that of the nonparametric ResNet / MLP runs at that depth)."""
    sw = study["depth_sweep"]
    d = depth_runs[depth_runs.depth >= sw["claim_min_depth"]].copy()
    d["log_epg"] = np.log10(d.ess_per_grad.clip(lower=1e-12))
    g = d.groupby(["n_train", "seed", "depth", "wp"]).log_epg.mean().unstack("wp")
    if not {True, False} <= set(g.columns):
        return pd.Series(dtype=float)
    return (g[True] - g[False]).dropna().groupby(["n_train", "seed"]).mean()


def depth_claim(depth_runs: pd.DataFrame, scale: str, study: dict) -> pd.DataFrame:
    """``wp_makes_mcmc_feasible`` from the depth sweep (a claims table of one row, through
    :func:`nnrds.verdicts.verdict_table`): unit = (training size, seed) (:func:`depth_units`); superiority of the
    WP-minus-non-WP log10 ESS per gradient evaluation, margin ``depth_sweep.claim_margin`` (contradicted when an
    advantage of that size is excluded); and *inconclusive* whenever fewer than half of the compared runs have
    invariant R-hat <= :data:`NEAR_RHAT` (the ESS of chains that have not mixed measures nothing)."""
    from .. import verdicts

    sw = study["depth_sweep"]
    x = depth_units(depth_runs, study)
    d = depth_runs[depth_runs.depth >= sw["claim_min_depth"]]
    near = float((d.rhat_invariant <= NEAR_RHAT).mean()) if len(d) else 0.0
    conv = d.groupby("wp").converged.agg(["sum", "count"])
    cstr = ", ".join(
        f"{'WP' if k else 'non-WP'} {int(r['sum'])}/{int(r['count'])} converged" for k, r in conv.iterrows()
    )
    nu = sw["nuts"]
    run = (
        f"{scale} scale: width {sw['width']}, depths {sw['depths']}, parameterizations "
        f"{', '.join(sw['parameterizations'])}, training sizes {sw['n_train']}, seeds {sw['seeds']}; NUTS "
        f"{nu['chains']} chains x {nu['samples']} draws ({nu['warmup']} warm-up), tree depth <= "
        f"{nu['max_tree_depth']}, metric {nu['metric']}, init {nu['init']}; outputs: leading PCA scores "
        f"({sw['pca_variance']:.0%} of the variance); at depth >= {sw['claim_min_depth']}: {cstr}; "
        f"{near:.0%} of these runs have invariant R-hat <= {NEAR_RHAT}"
    )
    spec = dict(
        study="uq_elm",
        claim_id="wp_makes_mcmc_feasible",
        claim="Weight parameterization makes MCMC more efficient than the nonparametric ResNet / MLP at large depth "
        "(more effective draws per gradient evaluation at the same sampler settings)",
        what_was_run=run,
        unit="(training size, seed): its effect averaged over the depths >= claim_min_depth",
        effect_name="log10 ESS per gradient evaluation, WP minus non-WP",
        kind="superiority",
        margin=float(sw["claim_margin"]),
        x=x.to_numpy(),
        figure=FIGURES["depth"],
    )
    c = verdicts.verdict_table([spec], float(sw.get("claim_alpha", 0.05)))
    if near < 0.5:
        c.loc[:, "verdict"] = verdicts.INCONCLUSIVE
    c.loc[:, "test"] = c.test + (
        f"; ESS = invariant bulk ESS (ArviZ); decides only when at least half of the compared runs have invariant "
        f"R-hat <= {NEAR_RHAT} (else inconclusive: ESS of unmixed chains is no efficiency measure)"
    )
    return c


#: columns of the depth sweep's efficiency table
EFFICIENCY_COLUMNS = [
    "parameterization",
    "wp",
    "depth",
    "n_runs",
    "dim",
    "median_ess_per_1000_grad",
    "median_rhat_invariant",
    "median_rhat_within",
    "converged",
]


def depth_efficiency(depth_runs: pd.DataFrame) -> pd.DataFrame:
    """The depth sweep as an efficiency table: per (parameterization, depth), the runs' median ESS per 1000 gradient
    evaluations, median invariant and within-chain R-hat, and how many runs converged (all at the same sampler
    settings)."""
    if depth_runs is None or not len(depth_runs):
        return pd.DataFrame(columns=EFFICIENCY_COLUMNS)
    rows = []
    for (name, depth), g in depth_runs.groupby(["parameterization", "depth"], sort=False):
        rows.append(
            {
                "parameterization": name,
                "wp": bool(g.wp.iloc[0]),
                "depth": int(depth),
                "n_runs": len(g),
                "dim": int(g.dim.median()),
                "median_ess_per_1000_grad": 1000 * float(g.ess_per_grad.median()),
                "median_rhat_invariant": float(g.rhat_invariant.median()),
                "median_rhat_within": float(g.rhat_within.median()),
                "converged": f"{int(g.converged.sum())}/{len(g)}",
            }
        )
    return pd.DataFrame(rows, columns=EFFICIENCY_COLUMNS).sort_values(["parameterization", "depth"], kind="stable")


#: columns of the per-posterior diagnostics table (one row per NUTS run of a fit job)
DIAGNOSTIC_COLUMNS = [
    "job",
    "architecture",
    "kind",
    "n_params",
    "chains",
    "draws_per_chain",
    "n_invariant",
    "n_mode_searches",
    "rhat_invariant_max",
    "rhat_threshold",
    "rhat_invariant_ok",
    "rhat_within_invariant_max",
    "within_threshold",
    "rhat_within_ok",
    "ess_bulk_invariant_min",
    "min_ess",
    "ess_ok",
    "ess_per_chain_median",
    "null_phi",
    "divergences",
    "mixing",
    "status",
    "posterior",
]


def nuts_diagnostics(metrics_df: pd.DataFrame) -> pd.DataFrame:
    """Convergence of every NUTS posterior, one row each (the unit is the posterior, not a replicate): invariant
    R-hat, each chain's split R-hat and bulk ESS with the targets they were held to (simulated thresholds, the
    published ESS rule) and whether each is met; the reason (``mixing``) and what the reported distribution is
    (``posterior``)."""
    if "method" not in metrics_df.columns:
        return pd.DataFrame(columns=DIAGNOSTIC_COLUMNS)
    n = metrics_df[(metrics_df.method == "nuts") & metrics_df.status.isin(["ok", "flagged"])].drop_duplicates("job")
    if not len(n):
        return pd.DataFrame(columns=DIAGNOSTIC_COLUMNS)
    n = n.copy()
    n["rhat_invariant_ok"] = n.rhat_invariant_max <= n.rhat_threshold
    n["rhat_within_ok"] = n.rhat_within_invariant_max <= n.within_threshold
    n["ess_ok"] = n.ess_bulk_invariant_min >= n.min_ess
    st = metrics_df[metrics_df.method == "nuts_stacked"].drop_duplicates("job").set_index("job")
    for k in n.index:
        if n.at[k, "job"] in st.index:
            n.at[k, "posterior"] = str(st.at[n.at[k, "job"], "posterior"])
    return n[[c for c in DIAGNOSTIC_COLUMNS if c in n.columns]].reset_index(drop=True)


# ------------------------------------------------------------------------------------------- summary
def caption(metrics_df: pd.DataFrame, scale: str, study: dict, depth_runs: pd.DataFrame | None = None) -> str:
    """The study caption. Converged posteriors (status ``ok``) are summarized together; NUTS runs that are not
    converged (``flagged``) are listed apart with the reason, and their numbers are labelled as not being a
    posterior; stacked predictives (``stacked``) are labelled as what they are."""
    ok = metrics_df[metrics_df.status == "ok"]
    nu = study["nuts"]
    init = {
        "laplace": f"started at Laplace draws around the best of {nu.get('starts', 2)} mode searches (Adam then L-BFGS)"
        if nu.get("starts", 2) > 1
        else "started at Laplace draws around one mode search (Adam then L-BFGS)",
        "mode": f"warm-started after {nu.get('init_steps', 0)} Adam steps",
        "prior": "started at the backbone's initialization",
    }.get(nu.get("init", "mode"), nu.get("init", ""))
    metric = (
        "dense Laplace metric (the Hessian at that mode) times an adapted diagonal"
        if nu.get("metric") == "laplace"
        else "adapted diagonal metric"
    )
    lines = [
        f"ELM surrogate UQ, **{scale}** scale: WP-ResNets / MLP of width {study['width']} and depth "
        f"{study['depth']} ({study['activation']}), {study['n_train']} training runs of the simplified ELM "
        f"ensemble (15 inputs -> 10 QoIs, fit jointly), inputs and outputs standardized; metrics in units of each "
        f"QoI's training std, averaged over QoIs and {study['n_test']} held-out runs. Methods: NUTS "
        f"({nu['chains']} chains x {nu['samples']} draws after {nu['warmup']} warm-up, chain-vectorized, "
        f"tree depth <= {nu['max_tree_depth']}, {init}, {metric}), VI (mean-field Bayes-by-backprop, "
        f"{study['vi']['steps']} steps)"
        + (
            f", low-rank VI (covariance W W^T + diagonal, rank {study['vi_lowrank']['rank']}, "
            f"{study['vi_lowrank']['steps']} steps)"
            if "vi_lowrank" in study["methods"]
            else ""
        )
        + f", deep ensemble ({study['ensemble']['members']} members), MAP. "
        f"A NUTS run counts as a converged posterior only if, on symmetry-invariant quantities (noise stds, "
        f"predictions at {study['nuts_check_points']} held-out inputs; weight-level R-hat is reported beside, never "
        f"used), its rank-normalized R-hat, each chain's own split R-hat and its bulk ESS meet their targets: the "
        f"R-hat targets are the {1 - study['calibration']['level']:.0%} quantiles of the maxima that a perfect "
        f"sampler produces at the run's chains, draws, number of quantities and per-chain ESS (stationary AR(1) "
        f"chains, {study['calibration']['n_sim']} simulated runs), the multi-chain one never below the published "
        f"{study['rhat_threshold']}; the ESS target is the published {study['min_ess_per_chain']:g} per chain "
        f"(Vehtari et al. 2021). Otherwise the run is **flagged** and its numbers are listed apart below, never among "
        f"the posteriors. "
        + (
            f"Chains start over-dispersed: chain c at a Laplace draw around mode search c mod {nu.get('starts', 2)}."
            if nu.get("init") == "laplace" and nu.get("start_modes", "all") == "all" and nu.get("starts", 2) > 1
            else ""
        ),
        "",
    ]
    diag = nuts_diagnostics(metrics_df)
    for r in diag.itertuples():
        lines.append(
            f"* NUTS diagnostics, {r.job} ({r.n_params} parameters, {r.chains} chains x {r.draws_per_chain} draws, "
            f"{r.n_invariant} invariant quantities, {r.n_mode_searches} mode search(es) as starts): R-hat "
            f"{r.rhat_invariant_max:.3f} (target <= {r.rhat_threshold:.3f}: {'met' if r.rhat_invariant_ok else 'not met'}),"
            f" each chain's split R-hat {r.rhat_within_invariant_max:.3f} (target <= {r.within_threshold:.3f}: "
            f"{'met' if r.rhat_within_ok else 'not met'}), bulk ESS {r.ess_bulk_invariant_min:.0f} (target >= "
            f"{r.min_ess:g}: {'met' if r.ess_ok else 'not met'}); reported distribution: {r.posterior}."
        )
    if "pca_retained_variance" in ok.columns:
        for r in ok[ok.pca_retained_variance < 1.0].drop_duplicates("job").itertuples():
            lines.append(
                f"* {r.job}: outputs reduced by PCA to {int(r.n_fit_outputs)} components retaining "
                f"{r.pca_retained_variance:.1%} of the training variance of the standardized QoIs "
                f"(the dropped components are added back as Gaussian noise with their training variance)."
            )
    for r in metrics_df[metrics_df.status == "skipped"].drop_duplicates(["job", "method"]).itertuples():
        lines.append(f"* {r.architecture}/{r.method} ({r.n_params} parameters): {r.note}.")
    for setting, g in ok.groupby("setting", sort=False):
        parts = ", ".join(f"{r.architecture}/{r.method} cov90 {r.cov90:.2f} CRPS {r.crps:.3f}" for r in g.itertuples())
        lines.append(f"* {setting} (converged posteriors and the other methods): {parts}.")
    for status, head in (
        ("stacked", "STACKED (a predictive mixture of non-mixing chains, not the posterior)"),
        ("flagged", "FLAGGED (not a converged posterior; numbers for the record only)"),
    ):
        sub = metrics_df[metrics_df.status == status]
        for (job, method), g in sub.groupby(["job", "method"], sort=False):
            nums = "; ".join(f"{r.setting}: cov90 {r.cov90:.2f}, CRPS {r.crps:.3f}" for r in g.itertuples())
            lines.append(f"* **{head}** {job}/{method}: {g.note.iloc[0]}. {nums}.")
    ex = ok[ok.job == "extrapolation"]
    if len(ex):
        w = ex.pivot_table(index="method", columns="setting", values="width90")
        if {"inside", "outside"} <= set(w.columns):
            parts = ", ".join(f"{m} {w.loc[m, 'inside']:.2f} -> {w.loc[m, 'outside']:.2f}" for m in w.index)
            ex_cfg = study["extrapolation"]
            lines.append(
                f"* extrapolation ({ex_cfg['architecture']}, trained where {', '.join(ex_cfg['inputs'])} "
                f"lie in the central {ex_cfg['fraction']:.0%} of their ranges): mean 90% interval width "
                f"inside -> outside (converged posteriors and the other methods): {parts}."
            )
    if depth_runs is not None and len(depth_runs):
        lines.append(depth_caption(depth_runs, study))
    return "\n".join(lines) + "\n"


def depth_caption(depth_runs: pd.DataFrame, study: dict) -> str:
    """The caption's paragraph on the NUTS feasibility sweep over depth."""
    sw, nu = study["depth_sweep"], study["depth_sweep"]["nuts"]
    parts = []
    for (name, wp), g in depth_runs.groupby(["parameterization", "wp"], sort=False):
        parts.append(
            f"{name} ({'WP' if wp else 'non-WP'}; {int(g.dim.min())}-{int(g.dim.max())} dims): "
            f"{int(g.converged.sum())}/{len(g)} converged, median R-hat {g.rhat_invariant.median():.2f}, "
            f"median {1000 * g.ess_per_grad.median():.2g} ESS per 1000 gradient evaluations"
        )
    return (
        f"* NUTS feasibility over depth (figure depth_feasibility; a deliberately small version sized to the "
        f"default budget: width {sw['width']}, outputs = leading PCA scores keeping {sw['pca_variance']:.0%} of "
        f"the QoI variance, {nu['chains']} chains x {nu['samples']} draws after {nu['warmup']} warm-up, tree "
        f"depth <= {nu['max_tree_depth']}, metric {nu['metric']}; depths {sw['depths']}, training sizes "
        f"{sw['n_train']}, seeds {sw['seeds']}; the same settings, hence the same cap on gradient evaluations, "
        f"for every run; table depth_efficiency): "
        + "; ".join(parts)
        + "."
        + (
            ""
            if sw.get("claim", False)
            else " At this budget no run can reach the ESS target, so the sweep is an efficiency table and decides "
            "no claim (``wp_makes_mcmc_feasible`` is decided at paper scale, unit = training size x seed)."
        )
    )


# ------------------------------------------------------------------------------------------- claims
WP_KINDS = ("const", "monomial", "legendre")


def claims(metrics_df: pd.DataFrame, scale: str, study: dict, depth_runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The study's claims table (:data:`nnrds.verdicts.CLAIM_COLUMNS`).

    Convergence of the NUTS posteriors is no claim with replicates -- each posterior is run once -- but a
    diagnostic per posterior (:func:`nuts_diagnostics`, table ``nuts_diagnostics.csv``). The one claim is
    ``wp_makes_mcmc_feasible`` from the depth sweep (:func:`depth_claim`), decided only where
    ``depth_sweep.claim`` is on (paper scale: a budget at which the runs can mix); elsewhere the sweep is the
    efficiency table ``depth_efficiency.csv`` and the claims table is empty."""
    from .. import verdicts

    if depth_runs is not None and len(depth_runs) and study["depth_sweep"].get("claim", False):
        return depth_claim(depth_runs, scale, study)
    return pd.DataFrame(columns=verdicts.CLAIM_COLUMNS)
