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


def nuts_note(i: dict, diag: dict, study: dict) -> str:
    """One sentence on a NUTS run: budget, tree depth, diagnostics against the targets, and why it is flagged."""
    why = {
        diagnostics.CONVERGED: "converged",
        diagnostics.DRIFTING: "FLAGGED: chains still drifting (some chain's own split R-hat above "
        f"{study['within_rhat_threshold']})",
        diagnostics.MODES: "FLAGGED: each chain stationary, chains in different modes",
        diagnostics.UNDERSAMPLED: f"FLAGGED: mixed but bulk ESS below {study['min_ess']}",
    }[diag["mixing"]]
    spread = (
        f"; chains' mean log posterior density spans {np.ptp(i['chain_log_density']):.0f} nats"
        if i.get("chain_log_density")
        else ""
    )
    modes = ""
    if i.get("mode_potentials"):
        u = np.asarray(i["mode_potentials"])
        modes = (
            f"; {len(u)} independent mode searches (Adam + L-BFGS) ended at potentials spanning "
            f"{np.ptp(u):.0f} nats, chains started around the best one"
            if len(u) > 1
            else "; chains started around one mode search (Adam + L-BFGS)"
        )
    return (
        f"ran: {i['chains']} chains x {i['samples']} draws ({i['warmup']} warm-up), init {i['init']}, metric "
        f"{i.get('metric', 'diag')}, mean tree depth {i['mean_tree_depth']:.1f}/{i['max_tree_depth']}; "
        f"invariant R-hat {diag['rhat_invariant_max']:.2f}, each chain alone split R-hat "
        f"{diag.get('rhat_within_invariant_max', float('nan')):.2f}, bulk ESS "
        f"{diag['ess_bulk_invariant_min']:.0f}: {why}{spread}{modes}"
    )


#: wall-clock columns of a job (kept out of metrics.csv: they are not reproducible)
TIMING_COLUMNS = ("wall_s", "warmup_s", "sampling_s", "ess_per_s")


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
        diag = diagnostics.summarize(idata, study["rhat_threshold"], study["within_rhat_threshold"], study["min_ess"])
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
                    {**{k: v for k, v in diag.items() if k != "flagged"}, "flagged": False},
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
                d = diagnostics.summarize(
                    idata, study["rhat_threshold"], study["within_rhat_threshold"], study["min_ess"]
                )
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


def depth_claim(depth_runs: pd.DataFrame, scale: str, study: dict):
    """``wp_makes_mcmc_feasible`` from the depth sweep: unit = one (training size, seed, depth) block at depth >=
    ``depth_sweep.claim_min_depth``; effect = mean log10 ESS per gradient evaluation of the WP runs minus that of
    the nonparametric ResNet / MLP runs of the block; Hodges-Lehmann estimate with its Wilcoxon interval;
    *supported* when the interval is above 0, *contradicted* below 0, else *inconclusive* -- and *inconclusive*
    whenever fewer than half of the compared runs have invariant R-hat <= :data:`NEAR_RHAT` (the ESS of chains
    that have not mixed measures nothing)."""
    from .. import verdicts

    sw = study["depth_sweep"]
    d = depth_runs[depth_runs.depth >= sw["claim_min_depth"]].copy()
    d["log_epg"] = np.log10(d.ess_per_grad.clip(lower=1e-12))
    g = d.groupby(["n_train", "seed", "depth", "wp"]).log_epg.mean().unstack("wp")
    diff = (g.get(True) - g.get(False)).dropna() if {True, False} <= set(g.columns) else pd.Series(dtype=float)
    est, lo, hi = verdicts.hodges_lehmann_ci(diff.to_numpy())
    # ESS of chains that have not mixed is no efficiency measure: the comparison decides only when at least half
    # of the compared runs are near convergence (invariant R-hat <= 1.1)
    near = float((d.rhat_invariant <= NEAR_RHAT).mean()) if len(d) else 0.0
    verdict = verdicts.superiority(lo, hi) if near >= 0.5 else verdicts.INCONCLUSIVE
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
    return verdicts.Claim(
        study="uq_elm",
        claim_id="wp_makes_mcmc_feasible",
        claim="Weight parameterization makes MCMC more efficient than the nonparametric ResNet / MLP at large depth "
        "(more effective draws per gradient evaluation at the same sampler settings)",
        what_was_run=run,
        unit="(training size, seed, depth) block",
        n_units=int(len(diff)),
        effect_name="log10 ESS per gradient evaluation, WP minus non-WP (Hodges-Lehmann)",
        effect=est,
        ci_low=lo,
        ci_high=hi,
        ci_level=0.95,
        verdict=verdict,
        test=(
            f"Wilcoxon signed-rank interval over blocks; ESS = invariant bulk ESS (ArviZ); decides only when at "
            f"least half of the compared runs have invariant R-hat <= {NEAR_RHAT} (else inconclusive: ESS of "
            f"unmixed chains is no efficiency measure)"
        ),
        figure="figures/uq_elm/depth_feasibility.png",
    )


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
        f"predictions at held-out inputs), its R-hat is <= {study['rhat_threshold']}, each chain's own split R-hat "
        f"<= {study['within_rhat_threshold']} and its bulk ESS >= {study['min_ess']:g}; otherwise it is "
        f"**flagged** and its numbers are listed apart below, never among the posteriors.",
        "",
    ]
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
        f"for every run): " + "; ".join(parts) + "."
    )


# ------------------------------------------------------------------------------------------- claims
WP_KINDS = ("const", "monomial", "legendre")


def _fraction_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval of a fraction k/n (NaN for n = 0)."""
    from scipy import stats

    if n == 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def claims(metrics_df: pd.DataFrame, scale: str, study: dict, depth_runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The study's claims table (:data:`nnrds.verdicts.CLAIM_COLUMNS`), decided from the NUTS diagnostics.

    * ``nuts_converges_wp``: "NUTS converges on the WP-ResNet posteriors at the study's budget" -- unit: one NUTS
      run (job); effect: fraction of WP runs that meet all three convergence targets (Clopper-Pearson interval).
      *supported* when every WP run converged, *contradicted* when none did, *inconclusive* otherwise.
    * ``wp_makes_mcmc_feasible``: "WP makes MCMC feasible where the nonparametric ResNet / MLP is not" -- effect:
      converged fraction of WP runs minus that of the other runs. *supported* only when every WP run converged and
      no other run did, *contradicted* when no WP run converged but some other run did, *inconclusive* otherwise
      (in particular when the sampler converges for neither: the budget then cannot tell them apart).
    """
    from .. import verdicts

    nuts = metrics_df[(metrics_df.method == "nuts") & metrics_df.status.isin(["ok", "flagged"])]
    nuts = nuts.drop_duplicates("job")
    nu = study["nuts"]
    run = (
        f"{scale} scale: {nu['chains']} chains x {nu['samples']} draws ({nu['warmup']} warm-up), tree depth <= "
        f"{nu['max_tree_depth']}, init {nu.get('init')}, metric {nu.get('metric')}, width {study['width']}, depth "
        f"{study['depth']}, {study['n_train']} training runs; targets: invariant R-hat <= {study['rhat_threshold']}, "
        f"each chain's split R-hat <= {study['within_rhat_threshold']}, bulk ESS >= {study['min_ess']:g}"
    )
    test = "rank-normalized split R-hat and bulk ESS (Vehtari et al. 2021) on symmetry-invariant quantities"
    wp = nuts[nuts.kind.isin(WP_KINDS)]
    other = nuts[~nuts.kind.isin(WP_KINDS)]
    k_wp, n_wp = int((wp.status == "ok").sum()), len(wp)
    k_o, n_o = int((other.status == "ok").sum()), len(other)
    rows = []
    if n_wp:
        lo, hi = _fraction_ci(k_wp, n_wp)
        v = verdicts.SUPPORTED if k_wp == n_wp else verdicts.CONTRADICTED if k_wp == 0 else verdicts.INCONCLUSIVE
        worst = ", ".join(
            f"{r.job}: R-hat {r.rhat_invariant_max:.2f}/{r.rhat_within_invariant_max:.2f}, ESS "
            f"{r.ess_bulk_invariant_min:.0f} ({r.mixing})"
            for r in wp.itertuples()
        )
        rows.append(
            verdicts.Claim(
                study="uq_elm",
                claim_id="nuts_converges_wp",
                claim="NUTS on the WP-ResNet posteriors of the ELM surrogate converges at the study's budget",
                what_was_run=f"{run}; runs: {worst}",
                unit="NUTS run (fit job)",
                n_units=n_wp,
                effect_name="fraction of WP NUTS runs converged",
                effect=k_wp / n_wp,
                ci_low=lo,
                ci_high=hi,
                ci_level=0.95,
                verdict=v,
                test=test,
                figure="figures/uq_elm/flagged.png",
            )
        )
    if depth_runs is not None and len(depth_runs):
        rows.append(depth_claim(depth_runs, scale, study))
    elif n_wp:
        f_wp, f_o = k_wp / n_wp, (k_o / n_o if n_o else float("nan"))
        v = (
            verdicts.SUPPORTED
            if (n_o and k_wp == n_wp and k_o == 0)
            else verdicts.CONTRADICTED
            if (n_o and k_wp == 0 and k_o > 0)
            else verdicts.INCONCLUSIVE
        )
        others = ", ".join(other.job) if n_o else "no non-WP run sampled (NUTS skipped above nuts.max_params)"
        rows.append(
            verdicts.Claim(
                study="uq_elm",
                claim_id="wp_makes_mcmc_feasible",
                claim="Weight parameterization makes MCMC feasible where the nonparametric ResNet / MLP is not",
                what_was_run=(
                    f"{run}; WP runs {', '.join(wp.job)} vs {others} (one seed each, one depth; "
                    f"the depth sweep of issue 12 part 2 was not run)"
                ),
                unit="NUTS run (fit job)",
                n_units=n_wp + n_o,
                effect_name="converged fraction WP minus non-WP",
                effect=f_wp - f_o,
                ci_low=float("nan"),
                ci_high=float("nan"),
                ci_level=0.95,
                verdict=v,
                test=test + "; no sweep: neither converging is no evidence",
                figure="figures/uq_elm/flagged.png",
            )
        )
    return verdicts.claims_frame(rows) if rows else pd.DataFrame(columns=verdicts.CLAIM_COLUMNS)
