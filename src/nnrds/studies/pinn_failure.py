"""PINN failure modes and two ways out (Krishnapriyan, Gholami, Zhe, Kirby & Mahoney, NeurIPS 2021).

Problems (:mod:`nnrds.data.pde`): convection (coefficient beta), reaction (rho) and reaction-diffusion (nu, with a
fixed rho). One *cell* = one (problem, training mode); it trains every swept coefficient x seed as replicas of one
:class:`~nnrds.models.ReplicaNet` (MLP 2 -> 4 x 50 tanh -> 1) with per-replica L-BFGS (:mod:`nnrds.pinn`,
:mod:`nnrds.lbfgs`). Every mode spends the same number of L-BFGS iterations; the seed fixes the initialization
and the collocation draw, and is shared by the modes, so comparisons between modes are paired by seed.

Claims (:func:`claims`; the seed is the unit: the runs of one seed at different coefficients share an
initialization, so effects are summarized within the seed first):

* ``plain_fails:<problem>`` -- the plain PINN fails (relative L2 error of order 1) at the large coefficients
  (beta >= 20; the upper part of the rho / nu sweeps, ``large_from``). Per seed: the smallest, over the large
  coefficients, of log10(rel. error / ``fail_rel_error``); supported when the interval lies above 0.
* ``curriculum_improves:convection`` -- curriculum regularization lowers the convection error by one to two
  orders of magnitude. Per seed: the mean over the large betas of log10(error plain / error curriculum);
  supported when the interval lies above ``min_orders`` (1), contradicted when it lies below.
* ``seq2seq_improves:<problem>:<mode>`` -- sequence-to-sequence training greatly lowers the reaction and
  reaction-diffusion errors: as the previous claim with the seq2seq mode in place of curriculum.

Intervals: Student t over seeds (distribution-free median interval when all seeds agree exactly), at the level
of Holm's step-down procedure over all the study's claims, so an interval excludes the threshold exactly when
the Holm-adjusted p-value (two-sided one-sample t test against the threshold) is <= alpha.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch

from .. import experiment, landscape, pinn, verdicts
from ..data import pde
from ..models import Arch, ReplicaNet

log = logging.getLogger(__name__)

STUDY = "pinn_failure"
#: the coefficient each problem sweeps
SWEPT = {"convection": "beta", "reaction": "rho", "reaction_diffusion": "nu"}
ARCH = dict(d_in=2, d_out=1, width=50, depth=4, param="mlp", activation="tanh")
CLAIM_DEFAULTS = {"alpha": 0.05, "fail_rel_error": 0.3, "min_orders": 1.0}
FIGURES = {
    "plain_fails": "figures/pinn_failure/error_vs_coefficient.png",
    "curriculum_improves": "figures/pinn_failure/error_vs_coefficient.png",
    "seq2seq_improves": "figures/pinn_failure/error_vs_coefficient.png",
}

RUN_COLUMNS = [
    "problem",
    "mode",
    "coef_name",
    "coef",
    "beta",
    "nu",
    "rho",
    "seed",
    "rel_l2",
    "mean_abs_err",
    "loss_final",
    "loss_ic",
    "loss_bc",
    "loss_residual",
    "iterations",
    "stages",
]


def coefficients(problem: str, pspec: dict) -> list[dict]:
    """(beta, nu, rho) of every swept point of a problem."""
    out = []
    for c in pspec["coefs"]:
        co = {"beta": 0.0, "nu": 0.0, "rho": 0.0, SWEPT[problem]: float(c)}
        if problem == "reaction_diffusion":
            co["rho"] = float(pspec.get("rho", 5.0))
        out.append(co)
    return out


def replica_setup(
    problem: str,
    reps: list,
    cfg: dict,
    dtype: torch.dtype,
    device: torch.device | None = None,
    lbfgs: dict | None = None,
) -> tuple[dict[str, np.ndarray], pinn.Setup]:
    """Coefficient arrays (one entry per replica) and the :class:`nnrds.pinn.Setup` of replicas ``reps`` =
    ``[(coefficients, seed), ...]`` with ``cfg``'s ``n_collocation``, ``iterations`` and ``normalize_inputs``."""
    coef_arr = {k: np.array([co[k] for co, _ in reps]) for k in pinn.COEFS}
    setup = pinn.Setup(
        problem,
        coef_arr,
        [s for _, s in reps],
        int(cfg["n_collocation"]),
        int(cfg["iterations"]),
        lbfgs=dict(lbfgs or {}),
        normalize=bool(cfg.get("normalize_inputs", True)),
        dtype=dtype,
        device=torch.device("cpu") if device is None else device,
    )
    return coef_arr, setup


def run_cell(cell: experiment.Cell, where=None) -> dict[str, pd.DataFrame]:
    """Train every coefficient x seed of one (problem, mode) (``cell["problem"]``, ``cell["mode"]``). Returns the
    tables runs, history, fields, landscape, landscape_stats and timings."""
    problem, mode, study, base_seed = cell["problem"], cell["mode"], cell.study, cell.base_seed
    rt = cell.prepare()
    dev, tdtype = rt.device, rt.dtype
    pspec = study["problems"][problem]
    seeds = [int(s) for s in study["seeds"]]
    cos = coefficients(problem, pspec)
    reps = [(co, s) for co in cos for s in seeds]  # replica order: coefficient-major
    coef_arr, setup = replica_setup(problem, reps, study, tdtype, dev, lbfgs=study.get("lbfgs"))
    net = experiment.replica_net(Arch(**ARCH), [s for _, s in reps], base_seed, rt)
    t0 = time.perf_counter()
    trained = pinn.train(net, setup, mode, study.get("curriculum"), where=where)
    wall = time.perf_counter() - t0
    log.info("%s/%s: %d replicas trained in %.1f s", problem, mode, len(reps), wall)

    exact = np.stack([pde.reference_solution(problem, co, setup.x, setup.t) for co, _ in reps])
    rel, mae = pinn.errors(trained.u, exact)
    final_loss = setup.loss(coef_arr, 0.0, 1.0, setup.tensor(np.broadcast_to(setup.u0, (len(reps), setup.nx)).copy()))
    with torch.enable_grad():
        parts = {k: v.detach().cpu().numpy() for k, v in final_loss.parts(net, create_graph=False).items()}
    key = SWEPT[problem]
    rows = []
    for r, (co, s) in enumerate(reps):
        tot = parts["loss_ic"][r] + parts["loss_bc"][r] + parts["loss_residual"][r]
        rows.append(
            {
                "problem": problem,
                "mode": mode,
                "coef_name": key,
                "coef": co[key],
                **co,
                "seed": s,
                "rel_l2": float(rel[r]),
                "mean_abs_err": float(mae[r]),
                "loss_final": float(tot),
                **{k: float(parts[k][r]) for k in ("loss_ic", "loss_bc", "loss_residual")},
                "iterations": setup.iterations,
                "stages": trained.stages,
            }
        )
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)

    hist = pd.DataFrame(trained.history)
    hist.insert(0, "seed", [reps[r][1] for r in hist["replica"]])
    hist.insert(0, "coef", [reps[r][0][key] for r in hist["replica"]])
    hist.insert(0, "mode", mode)
    hist.insert(0, "problem", problem)
    hist = hist.drop(columns=["replica"])[
        ["problem", "mode", "coef", "seed", "stage", "iteration", "train_loss", "loss_ic", "loss_bc", "loss_residual"]
    ]

    # fields for the heat maps: every coefficient, first seed, x subsampled by field_stride
    stride = int(study.get("field_stride", 2))
    X, T = np.meshgrid(setup.x[::stride], setup.t)
    frames = []
    for r, (co, s) in enumerate(reps):
        if s != seeds[0]:
            continue
        up, ue = trained.u[r][:, ::stride], exact[r][:, ::stride]
        frames.append(
            pd.DataFrame(
                {
                    "problem": problem,
                    "mode": mode,
                    "coef": co[key],
                    "seed": s,
                    "x": X.ravel(),
                    "t": T.ravel(),
                    "u_exact": ue.ravel(),
                    "u_pred": up.ravel(),
                    "abs_err": np.abs(up - ue).ravel(),
                }
            )
        )
    fields = pd.concat(frames, ignore_index=True)

    land, lstats = _landscapes(net, setup, problem, mode, reps, study, coef_arr, base_seed)
    timings = pd.DataFrame(
        [
            {
                "problem": problem,
                "mode": mode,
                "replicas_in_batch": len(reps),
                "iterations": setup.iterations,
                "batch_wall_time_s": wall,
                "wall_time_s_per_replica": wall / len(reps),
                "device": str(dev),
            }
        ]
    )
    return {
        "runs": runs,
        "history": hist,
        "fields": fields,
        "landscape": land,
        "landscape_stats": lstats,
        "timings": timings,
    }


LAND_COLUMNS = ["problem", "mode", "coef", "seed", "a", "b", "loss"]
LSTAT_COLUMNS = [
    "problem",
    "mode",
    "coef",
    "seed",
    "loss_center",
    "sharpness",
    "curv_a",
    "curv_b",
    "hess_max",
    "hess_min",
]


def _landscapes(
    net, setup: pinn.Setup, problem: str, mode: str, reps, study: dict, coef_arr, base_seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Loss slices of the convection runs at the configured betas (all replicas in one batch; surfaces of the
    first seed kept for plotting, statistics of every seed)."""
    ls = study.get("landscape") or {}
    if problem != "convection" or not ls.get("enabled", True):
        return pd.DataFrame(columns=LAND_COLUMNS), pd.DataFrame(columns=LSTAT_COLUMNS)
    coords = np.linspace(-float(ls.get("radius", 1.0)), float(ls.get("radius", 1.0)), int(ls.get("points", 11)))
    loss = setup.loss(coef_arr, 0.0, 1.0, setup.tensor(np.broadcast_to(setup.u0, (len(reps), setup.nx)).copy()))
    t0 = time.perf_counter()
    surf, _, _ = landscape.loss_surface(net, loss.total, coords, seed=base_seed)
    log.info(
        "%s/%s: loss landscape %dx%d for %d replicas in %.1f s",
        problem,
        mode,
        len(coords),
        len(coords),
        len(reps),
        time.perf_counter() - t0,
    )
    st = landscape.slice_stats(surf, coords)
    betas = {float(b) for b in ls.get("betas", [1, 20, 30, 40])}
    first = int(study["seeds"][0])
    A, B = np.meshgrid(coords, coords, indexing="ij")
    land, stat_rows = [], []
    for r, (co, s) in enumerate(reps):
        if co["beta"] not in betas:
            continue
        stat_rows.append({"problem": problem, "mode": mode, "coef": co["beta"], "seed": s, **st.iloc[r].to_dict()})
        if s == first:
            land.append(
                pd.DataFrame(
                    {
                        "problem": problem,
                        "mode": mode,
                        "coef": co["beta"],
                        "seed": s,
                        "a": A.ravel(),
                        "b": B.ravel(),
                        "loss": surf[r].ravel(),
                    }
                )
            )
    return (
        pd.concat(land, ignore_index=True) if land else pd.DataFrame(columns=LAND_COLUMNS),
        pd.DataFrame(stat_rows, columns=LSTAT_COLUMNS),
    )


# ---------------------------------------------------------------------------------------------------- summary
def per_seed(runs: pd.DataFrame, study: dict) -> pd.DataFrame:
    """One row per (claim, seed): the within-seed effect (see the module docstring)."""
    cfg = {**CLAIM_DEFAULTS, **(study.get("claims") or {})}
    rows = []
    for problem, g in runs.groupby("problem", sort=False):
        large_from = float(study["problems"][problem]["large_from"])
        big = g[g.coef >= large_from]
        plain = big[big["mode"] == "plain"]
        for s, gs in plain.groupby("seed"):
            rows.append(
                {
                    "claim_id": f"plain_fails:{problem}",
                    "problem": problem,
                    "mode": "plain",
                    "seed": int(s),
                    "n_coefs": len(gs),
                    "effect": float(np.log10(gs.rel_l2.min() / cfg["fail_rel_error"])),
                }
            )
        for mode in [m for m in big["mode"].unique() if m != "plain"]:
            kind = "curriculum_improves" if mode == "curriculum" else "seq2seq_improves"
            pair = plain.merge(big[big["mode"] == mode], on=["coef", "seed"], suffixes=("_plain", "_alt"))
            for s, gs in pair.groupby("seed"):
                cid = f"{kind}:{problem}" + (f":{mode}" if kind == "seq2seq_improves" else "")
                rows.append(
                    {
                        "claim_id": cid,
                        "problem": problem,
                        "mode": mode,
                        "seed": int(s),
                        "n_coefs": len(gs),
                        "effect": float(np.mean(np.log10(gs.rel_l2_plain / gs.rel_l2_alt))),
                    }
                )
    return pd.DataFrame(rows, columns=["claim_id", "problem", "mode", "seed", "n_coefs", "effect"])


def claims(seed_table: pd.DataFrame, study: dict) -> pd.DataFrame:
    """The claims table (:data:`nnrds.verdicts.CLAIM_COLUMNS`)."""
    cfg = {**CLAIM_DEFAULTS, **(study.get("claims") or {})}
    alpha, thr_err, orders = float(cfg["alpha"]), float(cfg["fail_rel_error"]), float(cfg["min_orders"])
    n_seeds = len(study["seeds"])
    what = (
        f"{n_seeds} seeds x coefficients "
        + "; ".join(f"{p} {SWEPT[p]} {s['coefs']} ({', '.join(s['modes'])})" for p, s in study["problems"].items())
        + f"; {study['iterations']} L-BFGS iterations per run in every mode, {study['n_collocation']} collocation "
        "points per stage/window"
    )
    rows = []
    for cid, g in seed_table.groupby("claim_id", sort=False):
        kind, problem = cid.split(":")[:2]
        key, lf = SWEPT[problem], study["problems"][problem]["large_from"]
        x = g["effect"].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        if kind == "plain_fails":
            text = f"{problem}: a plain PINN fails (relative L2 error of order 1, >= {thr_err:g}) at {key} >= {lf:g}"
            ename = f"mean over seeds of min over {key} >= {lf:g} of log10(rel. L2 error / {thr_err:g})"
            shift = 0.0
        else:
            mode = g["mode"].iloc[0]
            text = (
                f"{problem}: {mode} training lowers the relative error of the plain PINN by at least "
                f"{orders:g} order(s) of magnitude at {key} >= {lf:g}"
            )
            ename = f"mean over seeds of mean over {key} >= {lf:g} of log10(error plain / error {mode}) (orders)"
            shift = orders
        rows.append(
            {
                "study": STUDY,
                "claim_id": cid,
                "claim": text,
                "what_was_run": what,
                "unit": "seed (one initialization + collocation draw, shared by the modes; effect within seed)",
                "n_units": int(x.size),
                "effect_name": ename,
                "x": x,
                "shift": shift,
                "margin": shift,
                "p_value": verdicts.one_sample_p(x - shift),
                "figure": FIGURES[kind],
            }
        )
    m = len(rows)
    p_adj, a = verdicts.holm_alphas([r["p_value"] for r in rows], alpha)
    out = []
    for i, r in enumerate(rows):
        x, shift, level = r.pop("x"), r.pop("shift"), float(1.0 - a[i])
        eff, lo, hi = verdicts.t_or_sign_ci(x, level) if x.size else (float("nan"),) * 3
        test = (
            f"one-sample t over seeds against {shift:g} (two-sided; sign test if all seeds agree exactly); Holm over "
            f"{m} claims, interval at the Holm step-down level; supported when the interval lies above {shift:g}, "
            "contradicted when below"
        )
        verdict = verdicts.superiority(lo - shift, hi - shift)
        r.update(effect=eff, ci_low=lo, ci_high=hi, ci_level=level, p_adjusted=float(p_adj[i]), verdict=verdict)
        out.append(verdicts.Claim(**r, test=test))
    return verdicts.claims_frame(out) if out else pd.DataFrame(columns=verdicts.CLAIM_COLUMNS)


def error_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Median and range over seeds of the relative L2 error per problem, mode and coefficient."""
    g = runs.groupby(["problem", "mode", "coef"], sort=False).rel_l2
    return pd.DataFrame(
        {"n_seeds": g.size(), "median_rel_l2": g.median(), "min_rel_l2": g.min(), "max_rel_l2": g.max()}
    ).reset_index()


def landscape_summary(lstats: pd.DataFrame) -> pd.DataFrame:
    """Median over seeds of the slice statistics per mode and beta."""
    if lstats.empty:
        return pd.DataFrame(
            columns=["mode", "coef", "n_seeds", "median_loss_center", "median_sharpness", "median_hess_max"]
        )
    g = lstats.groupby(["mode", "coef"], sort=True)
    return pd.DataFrame(
        {
            "n_seeds": g.size(),
            "median_loss_center": g.loss_center.median(),
            "median_sharpness": g.sharpness.median(),
            "median_hess_max": g.hess_max.median(),
        }
    ).reset_index()


def _num(x: float, fmt: str = ".2g") -> str:
    return f"{x:{fmt}}" if np.isfinite(x) else "n/a"


def caption(
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    lsum: pd.DataFrame,
    claims_table: pd.DataFrame,
    timings: pd.DataFrame,
    scale: str,
    study: dict,
) -> str:
    cfg = {**CLAIM_DEFAULTS, **(study.get("claims") or {})}
    cur = study.get("curriculum") or {}
    ls = study.get("landscape") or {}
    probs = "; ".join(
        f"*{p}* {SWEPT[p]} ∈ {s['coefs']}"
        + (f" (ρ = {s.get('rho', 5)})" if p == "reaction_diffusion" else "")
        + f", modes {', '.join(s['modes'])}"
        for p, s in study["problems"].items()
    )
    lines = [
        f"PINN failure modes, **{scale}** scale (Krishnapriyan et al., NeurIPS 2021): {probs}; seeds "
        f"{study['seeds']}. MLP 2 → 4 × 50 tanh → 1"
        + (" on inputs scaled to [−1, 1]" if study.get("normalize_inputs", True) else "")
        + f"; loss = initial-condition MSE + periodic-boundary MSE (and u_x with diffusion) + residual MSE at "
        f"{study['n_collocation']} collocation points per stage/window drawn from the 256 × 100 grid; "
        f"{study['iterations']} L-BFGS iterations (strong Wolfe, one line search per replica) per run in every "
        f"mode, split evenly over the curriculum stages ({cur.get('stages', 4)} stages, coefficient linear from "
        f"{cur.get('start', 1.0):g} to the target) or the time-marching windows (seq2seq_<Δt>: each window starts "
        "from the previous window's weights and takes its prediction at the window's end as initial condition). "
        "Errors are relative L2 and mean absolute errors on the full 256 × 100 grid against computed references "
        "(exact Fourier solution, closed-form logistic solution, Strang splitting), each tested against a "
        "method-of-lines solver. The paper trains each run to convergence; the budgets here are thinner and "
        "stated above.",
        "",
        "Each dot in the error figure is one seed. The seed is the unit of every claim (runs of one seed share an "
        "initialization and collocation draw); intervals are Student t over seeds at Holm's step-down level over "
        f"the study's claims (α = {cfg['alpha']:g}); failure means relative error ≥ {cfg['fail_rel_error']:g}, "
        f"an improvement claim needs ≥ {cfg['min_orders']:g} order(s) of magnitude.",
        "",
    ]
    for r in claims_table.itertuples():
        lines.append(
            f"* Claim ``{r.claim_id}`` — {r.claim}: effect {r.effect:.3g} [{_num(r.ci_low, '.3g')}, "
            f"{_num(r.ci_high, '.3g')}] ({100 * r.ci_level:.1f}% interval, {r.n_units} seeds, Holm-adjusted "
            f"p = {_num(r.p_adjusted)}): **{r.verdict}**."
        )
    lines.append("")
    for (p, m), g in summary.groupby(["problem", "mode"], sort=False):
        meds = ", ".join(f"{c:g}: {v:.2g}" for c, v in zip(g.coef, g.median_rel_l2))
        lines.append(f"* {p}, {m}: median relative L2 error by {SWEPT[p]} — {meds}.")
    if not lsum.empty:
        lines += [
            "",
            f"Loss landscapes (convection, β ∈ {ls.get('betas', [1, 20, 30, 40])}): slices of the loss "
            f"along two filter-normalized random directions (Li et al., NeurIPS 2018) on a "
            f"{ls.get('points', 11)} × {ls.get('points', 11)} grid of radius {ls.get('radius', 1.0):g}; "
            "sharpness = (max loss on the slice − loss at the centre) / (1 + loss at the centre), curvature = "
            "largest eigenvalue of the Hessian of a quadratic fitted to the slice; medians over seeds: "
            + "; ".join(
                f"{r.mode} β = {r.coef:g}: sharpness {r.median_sharpness:.3g}, curvature {r.median_hess_max:.3g}"
                for r in lsum.itertuples()
            )
            + ".",
        ]
    lines += [
        "",
        f"Training ran as {len(timings)} (problem, mode) jobs; their wall times are in timings.csv (the caption "
        "holds no wall time, so it is byte-reproducible).",
    ]
    return "\n".join(lines) + "\n"


def summarize(
    runs: pd.DataFrame, lstats: pd.DataFrame, study: dict
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per-seed effects, error summary, landscape summary, claims)."""
    seed_table = per_seed(runs, study)
    return seed_table, error_summary(runs), landscape_summary(lstats), claims(seed_table, study)


def heatmap_cases(runs: pd.DataFrame) -> pd.DataFrame:
    """The heat-map cases of every problem, at its largest coefficient and the first seed: the plain run
    (``failing`` when its error is >= the alternatives') and the other mode with the lowest error (``rescue``)."""
    rows = []
    first = runs.seed.min()
    for problem, g in runs.groupby("problem", sort=False):
        g = g[(g.coef == g.coef.max()) & (g.seed == first)]
        plain = g[g["mode"] == "plain"]
        alt = g[g["mode"] != "plain"].sort_values("rel_l2", kind="stable")
        for role, r in (("plain", plain), ("best alternative", alt)):
            if len(r):
                x = r.iloc[0]
                rows.append(
                    {
                        "problem": problem,
                        "coef": x.coef,
                        "seed": int(x.seed),
                        "mode": x["mode"],
                        "role": role,
                        "rel_l2": x.rel_l2,
                    }
                )
    return pd.DataFrame(rows, columns=["problem", "coef", "seed", "mode", "role", "rel_l2"])


BENCH_DEFAULTS = {
    "problem": "convection",
    "coefs": [1, 20, 30, 40],
    "seeds": [0, 1, 2],
    "iterations": 50,
    "n_collocation": 500,
    "mode": "plain",
    "normalize_inputs": True,
    "threads": 1,
    "dtype": "float32",
}


def batching_benchmark(overrides: dict | None = None) -> pd.DataFrame:
    """Wall time of training R = coefficients x seeds PINNs as one batch of replicas vs one at a time (same
    iterations, same per-replica L-BFGS), and the largest difference of their relative errors (replica
    independence). One row per way of running."""
    cfg = {**BENCH_DEFAULTS, **(overrides or {})}
    torch.set_num_threads(int(cfg["threads"]))
    problem = cfg["problem"]
    spec = {"coefs": cfg["coefs"], "rho": 5.0}
    reps = [(co, int(s)) for co in coefficients(problem, spec) for s in cfg["seeds"]]

    def train(sub):
        _, setup = replica_setup(problem, sub, cfg, getattr(torch, cfg["dtype"]))
        net = ReplicaNet(Arch(**ARCH), [1000 * s for _, s in sub], dtype=getattr(torch, cfg["dtype"]))
        tr = pinn.train(net, setup, cfg["mode"])
        exact = np.stack([pde.reference_solution(problem, c, setup.x, setup.t) for c, _ in sub])
        return pinn.errors(tr.u, exact)[0]

    t0, c0 = time.perf_counter(), time.process_time()
    batched = train(reps)
    t_batch, c_batch = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    looped = np.concatenate([train([r]) for r in reps])
    t_loop, c_loop = time.perf_counter() - t0, time.process_time() - c0
    diff = float(np.max(np.abs(batched - looped) / looped))
    base = {
        "problem": problem,
        "mode": cfg["mode"],
        "replicas": len(reps),
        "iterations": cfg["iterations"],
        "n_collocation": cfg["n_collocation"],
        "threads": cfg["threads"],
        "dtype": cfg["dtype"],
    }
    return pd.DataFrame(
        [
            {
                **base,
                "how": "batched",
                "wall_s": t_batch,
                "cpu_s": c_batch,
                "speedup_wall": t_loop / t_batch,
                "speedup_cpu": c_loop / c_batch,
                "max_rel_diff_rel_l2": diff,
            },
            {
                **base,
                "how": "loop",
                "wall_s": t_loop,
                "cpu_s": c_loop,
                "speedup_wall": 1.0,
                "speedup_cpu": 1.0,
                "max_rel_diff_rel_l2": diff,
            },
        ]
    )
