"""Continuous-in-depth study: did the network learn a continuous model, or only a discrete map?

(Queiruga, Erichson, Taylor, Mahoney, "Continuous-in-depth neural networks", 2020, and their "learned dynamics"
convergence test.)

**Oscillators** (:func:`run_oscillator_cell`, one cell per training scheme). A shallow tanh network G (one
hidden layer of ``width`` units; a depth-1 :class:`~nnrds.models.ReplicaNet` MLP, whose linear embedding and
first layer compose to one affine map) is trained so that one step of the scheme with step dt on G maps each
observed state of the pendulum or the harmonic oscillator to the exact state dt later
(:func:`nnrds.data.oscillators.transition_pairs`). Every (system, training dt, seed) is one replica of one
batch. The **convergence test** then freezes G and integrates x' = G(x), with the training scheme, from states
on the orbit to the fixed time ``t_end`` with steps h = dt * r, r from ``max(coarse_factors)`` down to
2^-refine_levels; the error is the RMS over start states and components of the state error at ``t_end``, each
component in units of its amplitude on the orbit. The same sweep with the true vector field is the reference.

A model that only fits the discrete map x -> x(t + dt) reproduces the data at h = dt; refining h below dt then
integrates the vector field G, which equals the true one only up to the scheme's local error divided by dt:
G = f + O(dt^p) for a scheme of order p (the modified equation). For Euler (a ResNet unit) that is O(dt), so the
error at h -> 0 settles at the level of Euler's own error at dt, far above the error at h = dt; for RK4 the
O(dt^4) term is below the fitting error and refinement costs nothing.

**WP-ResNets** (:func:`run_wp_cell`, one cell per parameterization): a ResNet trained at depth L on the
dataset (``wp.dataset``, default the smooth synthetic set, where it has skill) is evaluated at depths L' (h = T/L'): a weight parameterization (const, monomial,
Legendre) has W(t) for every t; the non-parametric ResNet only the per-layer values, interpolated piecewise
constant or linear (:func:`nnrds.wp.resample`).

Claims (:func:`claims`), each with the seed as the unit of replication (the data are exact, so a seed's
initialization is the only random input), all non-superiority, Holm over all claims, intervals at the Holm
step-down level:

* ``<scheme>_order:<system>`` (every scheme) -- the order test (:func:`orders`): the slope p of log e(h -> 0)
  against log(training dt), per seed, lies within ``margin_order`` of the scheme's order (effect: mean over seeds
  of |p - nominal|);
* ``depth_refinement:<dataset>:<variant>`` (variant = a WP parameterization, or ``nonpar/<interpolation>``) --
  evaluated at ``max(depth_factors)`` L, the ResNet's test outputs move by less than ``margin_depth`` times the
  spread of its test predictions at the trained depth (on a set where the ResNet has skill: ``wp.dataset``).

``euler_good_discrete`` (at its training dt the Euler model beats Euler on the true vector field) is a sanity
check (:func:`sanity`), not a claim: with exact data it cannot come out contradicted.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import config, experiment, integrators, verdicts, wp
from ..data.oscillators import Oscillator, transition_pairs
from ..guards import check_finite, current
from ..models import Arch, ReplicaNet
from ..train import fit, pick_device, seed_everything
from ..verdicts import verdict_table

log = logging.getLogger(__name__)

STUDY = "continuous_depth"
FIG_DIR = "figures/continuous_depth"
CELLS = ("run_oscillator_cell", "run_wp_cell")
FIGURES = {
    "oscillator": f"{FIG_DIR}/error_vs_h.png",
    "order": f"{FIG_DIR}/order_test.png",
    "wp": f"{FIG_DIR}/wp_depth_convergence.png",
}
#: defaults of ``continuous_depth.claims``: the schema's, its one source
CLAIM_DEFAULTS = config.schema_defaults("continuous_depth", "claims")
#: errors below this are rounding, not truncation: left out of slope fits
ERROR_FLOOR = 1e-11


def part_config(study: dict, part: str) -> dict:
    """The config of one part (``oscillator`` or ``wp``) with the study's ``seeds``: what the cell functions take."""
    return {**study[part], "seeds": list(study["seeds"])}


# ----------------------------------------------------------------------------------------------- oscillators
class LearnedField(nn.Module):
    """G(x) = s_out * net(x / s_in): R replicas of a shallow tanh net, inputs and outputs in units of the
    orbit's state and velocity amplitudes (s_in, s_out: (R, 1, 2) buffers; the net itself is unchanged)."""

    def __init__(self, net: ReplicaNet, s_in: torch.Tensor, s_out: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("s_in", s_in)
        self.register_buffer("s_out", s_out)

    @property
    def n_replicas(self) -> int:
        return self.net.n_replicas

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x / self.s_in) * self.s_out

    def l2(self) -> torch.Tensor:
        return self.net.l2()


def step_loss(scheme: str, dt: torch.Tensor, s_out: torch.Tensor):
    """Loss of a one-step model: per replica, the mean of ((step(G, x, dt) - y) / (dt s_out))^2 -- the error of
    the implied vector field, in units of its amplitude. ``dt``: (R, 1, 1) per-replica steps."""
    st = integrators.get(scheme).step

    def loss(field: nn.Module, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        return ((st(field, X, dt) - Y) / (dt * s_out)).pow(2).mean(dim=(1, 2))

    return loss


def h_ratios(cfg: dict) -> list[float]:
    """h / dt of the convergence sweep, largest first: the coarse factors (> 1), 1, then 2^-1 .. 2^-J."""
    coarse = sorted({float(f) for f in cfg["coarse_factors"] if f > 1}, reverse=True)
    return coarse + [1.0] + [2.0**-j for j in range(1, int(cfg["refine_levels"]) + 1)]


def check_grid(cfg: dict) -> list[float]:
    """Every step h = dt * ratio of the sweep, checked to reach ``t_end`` in whole steps (before any training)."""
    hs = sorted({round(float(dt) * q, 15) for dt in cfg["train_dts"] for q in h_ratios(cfg)}, reverse=True)
    for h in hs:
        try:
            integrators.n_steps_for(float(cfg["t_end"]), h)
        except ValueError as e:
            raise ValueError(
                f"continuous_depth.oscillator: {e}; choose t_end (config key "
                "`continuous_depth.oscillator.t_end`) as a multiple of every dt x coarse factor"
            ) from None
    return hs


def systems(cfg: dict) -> dict[str, Oscillator]:
    return {k: Oscillator(k, g=float(cfg["g"]), q0=float(cfg["q0"])) for k in cfg["systems"]}


def _replicas(cfg: dict) -> list[dict]:
    return [
        {"system": s, "train_dt": float(dt), "seed": int(seed)}
        for s in cfg["systems"]
        for dt in cfg["train_dts"]
        for seed in cfg["seeds"]
    ]


def _eval_states(osc: Oscillator, n: int, t_end: float) -> tuple[np.ndarray, np.ndarray]:
    """Start states x(t_i), t_i = i period / n, and the exact states at t_i + t_end."""
    t = np.arange(n) * (osc.period / n)
    return osc.exact(t), osc.exact(t + t_end)


def build_field(
    reps: list[dict], cfg: dict, base_seed: int, dtype: torch.dtype, dev: torch.device, X: np.ndarray, Y: np.ndarray
) -> LearnedField:
    """R replicas of G for the replica table ``reps`` with training pairs X, Y (R, N, 2): seed s initializes
    every replica of seed s identically (pairing across systems, dt's and schemes)."""
    osc = systems(cfg)
    arch = Arch(d_in=2, d_out=2, width=int(cfg["width"]), depth=1, param="mlp", activation="tanh")
    net = ReplicaNet(arch, [1000 * r["seed"] + base_seed for r in reps], dtype=dtype)
    amp = {name: osc[name].scale() for name in {r["system"] for r in reps}}
    s_in = np.stack([amp[r["system"]] for r in reps])[:, None, :]
    dts = np.array([r["train_dt"] for r in reps])[:, None, None]
    s_out = np.abs((Y - X) / dts).max(axis=1, keepdims=True)
    return LearnedField(net, torch.as_tensor(s_in, dtype=dtype), torch.as_tensor(s_out, dtype=dtype)).to(dev)


def _errors(xT, target, scale) -> np.ndarray:
    """RMS over start states and components of the state error in units of the amplitude: (R,) or scalar."""
    d = (np.asarray(xT) - target) / scale
    return np.sqrt((d**2).mean(axis=(-2, -1)))


def fit_part(net: nn.Module, X: torch.Tensor, Y: torch.Tensor, cfg: dict, base_seed: int, where, **kw):
    """:func:`nnrds.train.fit` with a part's training settings (``epochs``, ``lr``, ``lr_final``); ``where`` labels
    the replicas for a divergence message."""
    return fit(
        net,
        X,
        Y,
        epochs=int(cfg["epochs"]),
        lr=float(cfg["lr"]),
        lr_final=cfg.get("lr_final"),
        seed=base_seed,
        where=where,
        **kw,
    )


def train_oscillators(
    scheme: str,
    cfg: dict,
    *,
    base_seed: int = 0,
    device: str = "auto",
    dtype: str = "float64",
    reps: list[dict] | None = None,
    log_progress: bool = True,
) -> tuple[LearnedField, list[dict], dict]:
    """Train G for every replica of ``reps`` (default: all systems x dt's x seeds) with one step of ``scheme``.
    Returns (field, reps, info) with the final training loss per replica in ``info["loss"]``."""
    dev = pick_device(device)
    tdtype = getattr(torch, dtype)
    reps = _replicas(cfg) if reps is None else reps
    osc = systems(cfg)
    pairs = [transition_pairs(osc[r["system"]], r["train_dt"], int(cfg["n_pairs"])) for r in reps]
    X = np.stack([p[1] for p in pairs])
    Y = np.stack([p[2] for p in pairs])
    field = build_field(reps, cfg, base_seed, tdtype, dev, X, Y)
    Xt, Yt = (torch.as_tensor(a, dtype=tdtype, device=dev) for a in (X, Y))
    dt = torch.as_tensor([r["train_dt"] for r in reps], dtype=tdtype, device=dev)[:, None, None]
    loss_fn = step_loss(scheme, dt, field.s_out)
    where = current()
    where = where.at(labels=[f"{r['system']} dt {r['train_dt']:g} seed {r['seed']}" for r in reps])
    res = fit_part(field, Xt, Yt, cfg, base_seed, where, loss_fn=loss_fn, progress_lines=10 if log_progress else 0)
    with torch.no_grad():
        final = loss_fn(field, Xt, Yt).cpu().numpy()
    return field, reps, {"loss": final, "wall_time_s": res.wall_time_s, "epochs": res.epochs}


def convergence_sweep(field: LearnedField, reps: list[dict], scheme: str, cfg: dict) -> pd.DataFrame:
    """Freeze G and integrate with ``scheme`` to ``t_end`` at every h = dt * r of :func:`h_ratios`; the error of
    every replica at every ratio. All replicas integrate together at each distinct h."""
    osc = systems(cfg)
    t_end = float(cfg["t_end"])
    ratios = h_ratios(cfg)
    ref = next(iter(field.parameters()), None)
    ref = ref if ref is not None else torch.zeros((), dtype=torch.float64)  # a parameter-free field: float64 on CPU
    starts, targets, scales = {}, {}, {}
    for name, o in osc.items():
        starts[name], targets[name] = _eval_states(o, int(cfg["n_eval_states"]), t_end)
        scales[name] = o.scale()
    X0 = torch.as_tensor(np.stack([starts[r["system"]] for r in reps]), dtype=ref.dtype, device=ref.device)
    tgt = np.stack([targets[r["system"]] for r in reps])
    scl = np.stack([scales[r["system"]] for r in reps])[:, None, :]
    wanted: dict[float, list[tuple[int, float]]] = {}
    for i, r in enumerate(reps):
        for q in ratios:
            wanted.setdefault(round(r["train_dt"] * q, 15), []).append((i, q))
    rows = []
    where = current()
    t0 = time.perf_counter()
    hs = sorted(wanted, reverse=True)
    for k, h in enumerate(hs):
        n = integrators.n_steps_for(t_end, h)
        with torch.no_grad():
            xT = integrators.integrate(field, X0, h, n, scheme)
        check_finite(
            xT,
            where=where.at(labels=[f"{r['system']} dt {r['train_dt']:g} seed {r['seed']}" for r in reps]),
            step=f"convergence sweep h = {h:g}",
            what="prediction",
        )
        err = _errors(xT.cpu().numpy(), tgt, scl)
        for i, q in wanted[h]:
            r = reps[i]
            rows.append({**r, "scheme": scheme, "h_over_dt": q, "h": h, "n_steps": n, "error": float(err[i])})
        if k % max(1, len(hs) // 4) == 0 or k == len(hs) - 1:
            log.info(
                "convergence sweep %s: h %d/%d = %.3g (%d steps), elapsed %.1f s",
                scheme,
                k + 1,
                len(hs),
                h,
                n,
                time.perf_counter() - t0,
            )
    cols = ["system", "scheme", "train_dt", "seed", "h_over_dt", "h", "n_steps", "error"]
    return (
        pd.DataFrame(rows)[cols]
        .sort_values(["system", "train_dt", "seed", "h"], ascending=[True, True, True, False], kind="stable")
        .reset_index(drop=True)
    )


def reference_sweep(scheme: str, cfg: dict) -> pd.DataFrame:
    """The same sweep on the true vector field (float64 numpy): error vs h for every system and every h of the
    learned models' sweeps."""
    t_end = float(cfg["t_end"])
    hs = check_grid(cfg)
    rows = []
    for name, o in systems(cfg).items():
        x0, tgt = _eval_states(o, int(cfg["n_eval_states"]), t_end)
        for h in hs:
            n = integrators.n_steps_for(t_end, h)
            xT = integrators.integrate(o.field, x0, h, n, scheme)
            rows.append(
                {
                    "system": name,
                    "scheme": scheme,
                    "h": h,
                    "n_steps": n,
                    "error": float(_errors(xT, tgt, o.scale()[None, :])),
                }
            )
    return pd.DataFrame(rows)


RUN_COLUMNS = ["system", "scheme", "train_dt", "seed", "train_loss", "epochs"]


def run_oscillator_cell(cell: experiment.Cell) -> dict[str, pd.DataFrame]:
    """One training scheme (``cell["scheme"]``; ``cell.study`` is the ``oscillator`` part): train every (system,
    dt, seed) as one replica batch, then the convergence sweep and its reference. Tables: runs, convergence,
    reference, timings."""
    scheme, cfg = cell["scheme"], cell.study
    seed_everything(cell.base_seed)
    integrators.get(scheme)
    check_grid(cfg)
    t0 = time.perf_counter()
    field, reps, info = train_oscillators(scheme, cfg, base_seed=cell.base_seed, device=cell.device, dtype=cell.dtype)
    t_train = time.perf_counter() - t0
    runs = pd.DataFrame(
        [{**r, "scheme": scheme, "train_loss": float(v), "epochs": info["epochs"]} for r, v in zip(reps, info["loss"])]
    )[RUN_COLUMNS]
    t1 = time.perf_counter()
    conv = convergence_sweep(field, reps, scheme, cfg)
    ref = reference_sweep(scheme, cfg)
    t_sweep = time.perf_counter() - t1
    log.info("%s: %d replicas trained in %.1f s, convergence sweep %.1f s", scheme, len(reps), t_train, t_sweep)
    dev = str(next(field.parameters()).device)
    timings = pd.DataFrame(
        [
            {
                "part": "oscillator",
                "cell": scheme,
                "replicas_in_batch": len(reps),
                "train_wall_time_s": t_train,
                "sweep_wall_time_s": t_sweep,
                "device": dev,
            }
        ]
    )
    return {"runs": runs, "convergence": conv, "reference": ref, "timings": timings}


# ------------------------------------------------------------------------------------------------ WP-ResNets
WP_RUN_COLUMNS = [
    "dataset",
    "parameterization",
    "kind",
    "degree",
    "interp",
    "variant",
    "depth_train",
    "depth_eval",
    "depth_ratio",
    "h",
    "seed",
    "train_mse",
    "test_mse",
    "change_vs_trained",
    "change_vs_finest",
    "change_vs_next",
    "pred_spread",
]


def eval_depths(cfg: dict) -> list[int]:
    """L' = L * factor for every depth factor (each must give a whole depth >= 1), ascending."""
    L = int(cfg["depth"])
    out = []
    for f in cfg["depth_factors"]:
        d = L * float(f)
        if d < 1 or abs(d - round(d)) > 1e-9:
            raise ValueError(f"continuous_depth.wp.depth_factors: {f} x depth {L} is not a whole depth >= 1")
        out.append(int(round(d)))
    if L not in out:
        out.append(L)
    return sorted(set(out))


def variants(kind: str, cfg: dict) -> list[str]:
    """How W(t) is read between layers: the basis itself for a weight parameterization, each interpolation of
    ``interpolations`` for the non-parametric ResNet."""
    return list(cfg["interpolations"]) if kind == "nonpar" else ["basis"]


def run_wp_cell(cell: experiment.Cell) -> dict[str, pd.DataFrame]:
    """Train the ResNet of one parameterization (``cell["param"]``; ``cell.study`` is the ``wp`` part) at depth L
    on its dataset (all seeds one replica batch), then evaluate it at every depth L' of :func:`eval_depths`
    (h = T/L'). Tables: wp_runs, timings."""
    cfg, pname, pspec, base_seed = cell.study, cell["param"], cell.parameterization, cell.base_seed
    dataset = cfg["dataset"]
    rt = cell.prepare()
    dev, tdtype = rt.device, rt.dtype
    seeds = [int(s) for s in cfg["seeds"]]
    if pspec["kind"] == "mlp":
        raise ValueError("continuous_depth.wp.parameterizations: an MLP has no W(t) and no depth limit; use ResNets")
    data = experiment.regression_data(cell.dataset, seeds, base_seed, rt)
    Xtr, Ytr, Xte, Yte = data.X_train, data.Y_train, data.X_test, data.Y_test
    L, T = int(cfg["depth"]), float(cfg["T"])
    arch = experiment.resnet_arch(data, pspec, width=int(cfg["width"]), depth=L, T=T)
    net = experiment.replica_net(arch, seeds, base_seed, rt)
    where = current().at(labels=[f"seed {s}" for s in seeds])
    res = fit_part(net, Xtr, Ytr, cfg, base_seed, where, batch_size=cfg.get("batch_size"))
    t1 = time.perf_counter()
    depths = eval_depths(cfg)
    rows = []
    with torch.no_grad():
        for interp in variants(arch.param, cfg):
            preds = {}
            for d in depths:
                phi = wp.resample(arch.param, L, d, arch.degree, T, interp="constant" if interp == "basis" else interp)
                phi = phi.to(dtype=tdtype, device=dev)
                preds[d] = (net(Xtr, phi), net(Xte, phi))
                check_finite(preds[d][1], where=where, step=f"evaluation at depth {d} ({interp})", what="prediction")
            y_L, y_fine = preds[L][1], preds[depths[-1]][1]
            for k, d in enumerate(depths):
                ptr, pte = preds[d]
                tr = (ptr - Ytr).pow(2).mean(dim=(1, 2)).cpu().numpy()
                te = (pte - Yte).pow(2).mean(dim=(1, 2)).cpu().numpy()
                ch_L = (pte - y_L).pow(2).mean(dim=(1, 2)).sqrt().cpu().numpy()
                ch_f = (pte - y_fine).pow(2).mean(dim=(1, 2)).sqrt().cpu().numpy()
                # spread of the test predictions over the test points (std per output, RMS over outputs)
                spread = pte.var(dim=1, unbiased=False).mean(dim=1).sqrt().cpu().numpy()
                ch_n = (
                    (pte - preds[depths[k + 1]][1]).pow(2).mean(dim=(1, 2)).sqrt().cpu().numpy()
                    if k + 1 < len(depths)
                    else np.full(len(seeds), np.nan)
                )
                for r, s in enumerate(seeds):
                    rows.append(
                        {
                            "dataset": dataset,
                            "parameterization": pname,
                            "kind": arch.param,
                            "degree": arch.degree,
                            "interp": interp,
                            "variant": pname if interp == "basis" else f"{pname}/{interp}",
                            "depth_train": L,
                            "depth_eval": d,
                            "depth_ratio": d / L,
                            "h": T / d,
                            "seed": s,
                            "train_mse": float(tr[r]),
                            "test_mse": float(te[r]),
                            "change_vs_trained": float(ch_L[r]),
                            "change_vs_finest": float(ch_f[r]),
                            "change_vs_next": float(ch_n[r]),
                            "pred_spread": float(spread[r]),
                        }
                    )
    t_eval = time.perf_counter() - t1
    log.info(
        "wp %s/%s: %d seeds trained in %.1f s, evaluated at depths %s in %.1f s",
        dataset,
        pname,
        len(seeds),
        res.wall_time_s,
        depths,
        t_eval,
    )
    timings = pd.DataFrame(
        [
            {
                "part": "wp",
                "cell": f"{dataset}/{pname}",
                "replicas_in_batch": len(seeds),
                "train_wall_time_s": res.wall_time_s,
                "sweep_wall_time_s": t_eval,
                "device": str(dev),
            }
        ]
    )
    return {"wp_runs": pd.DataFrame(rows, columns=WP_RUN_COLUMNS), "timings": timings}


# ----------------------------------------------------------------------------------------------- summaries
MODEL_COLUMNS = [
    "system",
    "scheme",
    "order",
    "train_dt",
    "seed",
    "train_loss",
    "error_coarse",
    "error_train_dt",
    "error_fine",
    "ref_error_train_dt",
    "ref_error_fine",
    "refine_penalty_log10",
    "discrete_advantage_log10",
    "slope_coarse",
    "slope_fine",
    "ref_slope_coarse",
    "ref_slope_fine",
]


def _slope(g: pd.DataFrame, coarse: bool) -> float:
    sel = g[g.h_over_dt >= 1.0] if coarse else g[g.h_over_dt <= 1.0]
    sel = sel[sel.error > ERROR_FLOOR]
    return integrators.fitted_order(sel.h, sel.error)


def per_model(runs: pd.DataFrame, conv: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    """One row per trained model (system, scheme, dt, seed): errors at the coarsest h, at h = dt and at the finest
    h; the same scheme on the true field at h = dt; the refinement penalty log10 e(h_min)/e(dt) (> 0: refining
    the step *raises* the error); the discrete advantage log10 e_true(dt)/e_model(dt) (> 0: at its training dt
    the model beats its scheme on the true vector field); fitted log-log slopes of error vs h over h >= dt
    (coarse) and h <= dt (fine), and the reference's slopes over the same h's (errors below 1e-11 left out)."""
    refi = ref.set_index(["system", "scheme", "h"])["error"]
    loss = runs.set_index(["system", "scheme", "train_dt", "seed"])["train_loss"]
    rows = []
    for (sy, sc, dt, seed), g in conv.groupby(["system", "scheme", "train_dt", "seed"], sort=True):
        g = g.sort_values("h", ascending=False)
        e1 = float(g.loc[np.isclose(g.h_over_dt, 1.0), "error"].iloc[0])
        ef, ec = float(g.error.iloc[-1]), float(g.error.iloc[0])
        r = ref[(ref.system == sy) & (ref.scheme == sc)].set_index("h").loc[g.h.to_numpy()].reset_index()
        r["h_over_dt"] = g.h_over_dt.to_numpy()
        r1 = float(refi.loc[(sy, sc, float(g.h[np.isclose(g.h_over_dt, 1.0)].iloc[0]))])
        rows.append(
            {
                "system": sy,
                "scheme": sc,
                "order": integrators.get(sc).order,
                "train_dt": dt,
                "seed": int(seed),
                "train_loss": float(loss.loc[(sy, sc, dt, seed)]),
                "error_coarse": ec,
                "error_train_dt": e1,
                "error_fine": ef,
                "ref_error_train_dt": r1,
                "ref_error_fine": float(r.error.iloc[-1]),
                "refine_penalty_log10": math.log10(ef / e1),
                "discrete_advantage_log10": math.log10(r1 / e1),
                "slope_coarse": _slope(g, True),
                "slope_fine": _slope(g, False),
                "ref_slope_coarse": _slope(r, True),
                "ref_slope_fine": _slope(r, False),
            }
        )
    return pd.DataFrame(rows, columns=MODEL_COLUMNS)


SLOPE_COLUMNS = [
    "system",
    "scheme",
    "order",
    "train_dt",
    "n_seeds",
    "median_error_train_dt",
    "median_error_fine",
    "median_refine_penalty_log10",
    "median_slope_coarse",
    "median_slope_fine",
    "ref_slope_coarse",
    "ref_slope_fine",
]


def slopes(models: pd.DataFrame) -> pd.DataFrame:
    """Median over seeds, per (system, scheme, training dt), of the errors, the penalty and the fitted slopes."""
    rows = []
    for (sy, sc, dt), g in models.groupby(["system", "scheme", "train_dt"], sort=True):
        rows.append(
            {
                "system": sy,
                "scheme": sc,
                "order": int(g.order.iloc[0]),
                "train_dt": dt,
                "n_seeds": len(g),
                "median_error_train_dt": float(g.error_train_dt.median()),
                "median_error_fine": float(g.error_fine.median()),
                "median_refine_penalty_log10": float(g.refine_penalty_log10.median()),
                "median_slope_coarse": float(g.slope_coarse.median()),
                "median_slope_fine": float(g.slope_fine.median()),
                "ref_slope_coarse": float(g.ref_slope_coarse.iloc[0]),
                "ref_slope_fine": float(g.ref_slope_fine.iloc[0]),
            }
        )
    return pd.DataFrame(rows, columns=SLOPE_COLUMNS)


WP_SUMMARY_COLUMNS = [
    "dataset",
    "variant",
    "kind",
    "interp",
    "seed",
    "test_mse_trained",
    "test_mse_finest",
    "log_test_ratio_finest",
    "max_abs_log_test_ratio_refined",
    "change_vs_trained_finest",
    "pred_spread_trained",
    "rel_change_finest",
    "train_mse_trained",
    "log_train_ratio_finest",
    "slope_change_vs_next",
]


def wp_summary(wp_runs: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, variant, seed): test MSE at the trained depth L and at the deepest L'; their log ratio (> 0:
    refining the depth hurts); the largest |log ratio| over L' >= L; the output change between L and the deepest
    L', the spread of the test predictions at L and their ratio (``rel_change_finest``: the change in units of
    what the network predicts -- it sees a change even where the test MSE cannot, e.g. on a set without skill);
    the training MSE at L and its log ratio at the deepest L'; and the fitted slope against h of the change between consecutive evaluated depths over L <= L' < max L'
    (self-convergence; 1 = the forward-Euler rate of a smooth W(t))."""
    rows = []
    for (ds, var, seed), g in wp_runs.groupby(["dataset", "variant", "seed"], sort=True):
        g = g.sort_values("depth_eval")
        L = int(g.depth_train.iloc[0])
        t_L = float(g.loc[g.depth_eval == L, "test_mse"].iloc[0])
        t_f = float(g.test_mse.iloc[-1])
        at_L = g[g.depth_eval == L].iloc[0]
        spread_L = float(at_L.pred_spread)
        fine = g[g.depth_eval >= L]
        sel = fine[np.isfinite(fine.change_vs_next) & (fine.change_vs_next > 0)]
        rows.append(
            {
                "dataset": ds,
                "variant": var,
                "kind": g.kind.iloc[0],
                "interp": g.interp.iloc[0],
                "seed": int(seed),
                "test_mse_trained": t_L,
                "test_mse_finest": t_f,
                "log_test_ratio_finest": math.log(t_f / t_L),
                "max_abs_log_test_ratio_refined": float(np.abs(np.log(fine.test_mse / t_L)).max()),
                "change_vs_trained_finest": float(g.change_vs_trained.iloc[-1]),
                "pred_spread_trained": spread_L,
                "rel_change_finest": float(g.change_vs_trained.iloc[-1]) / spread_L if spread_L > 0 else float("inf"),
                "train_mse_trained": float(at_L.train_mse),
                "log_train_ratio_finest": math.log(float(g.train_mse.iloc[-1]) / float(at_L.train_mse)),
                "slope_change_vs_next": integrators.fitted_order(sel.h, sel.change_vs_next),
            }
        )
    return pd.DataFrame(rows, columns=WP_SUMMARY_COLUMNS)


ORDER_COLUMNS = ["system", "scheme", "order", "seed", "n_dts", "fitted_order", "order_deviation"]


def orders(models: pd.DataFrame) -> pd.DataFrame:
    """The order test, per (system, scheme, seed): the least-squares slope p of log e(h -> 0) against log(training
    dt) over the training dt's (e(h -> 0) = the error at the finest h of the sweep). A model trained with a scheme of
    order p has G = f + O(dt^p) (the modified equation), so its h -> 0 error scales as dt^p -- as long as that bias
    is above the fitting error, which does not shrink with dt (then p -> 0). ``order_deviation`` = |p - nominal|."""
    rows = []
    for (sy, sc, seed), g in models.groupby(["system", "scheme", "seed"], sort=True):
        p = integrators.fitted_order(g.train_dt, g.error_fine)
        nominal = int(g.order.iloc[0])
        rows.append(
            {
                "system": sy,
                "scheme": sc,
                "order": nominal,
                "seed": int(seed),
                "n_dts": int(g.train_dt.nunique()),
                "fitted_order": p,
                "order_deviation": abs(p - nominal),
            }
        )
    return pd.DataFrame(rows, columns=ORDER_COLUMNS)


SANITY_COLUMNS = ["check", "system", "n_seeds", "mean", "ci_low", "ci_high", "passes"]


def sanity(models: pd.DataFrame) -> pd.DataFrame:
    """Sanity checks, not claims (they cannot come out contradicted with exact data): per system, the Euler model at
    its training dt is more accurate than Euler on the true vector field (``euler_good_discrete``: log10 ratio of
    the errors, per seed averaged over dt's; 95% t interval; passes when its lower end is > 0)."""
    rows = []
    g = models[models.scheme == "euler"]
    for sy, gs in g.groupby("system", sort=True):
        x = gs.groupby("seed", sort=True).discrete_advantage_log10.mean().to_numpy()
        m, lo, hi = verdicts.t_or_sign_ci(x, 0.95)
        rows.append(
            {
                "check": "euler_good_discrete",
                "system": sy,
                "n_seeds": len(x),
                "mean": m,
                "ci_low": lo,
                "ci_high": hi,
                "passes": bool(np.isfinite(lo) and lo > 0),
            }
        )
    return pd.DataFrame(rows, columns=SANITY_COLUMNS)


# ------------------------------------------------------------------------------------------------- claims
#: effect of the order claims of the oscillators
ORDER_EFFECT = "abs(p - nominal order), p = slope of log e(h -> 0) against log(training dt)"


def oscillator_specs(orders_t: pd.DataFrame, osc: dict, margin: float) -> list[dict]:
    """Claim specs of the oscillators (:func:`nnrds.verdicts.verdict_table`), per system and scheme: the order test
    (:func:`orders`) -- the model's h -> 0 error scales with the training dt at the scheme's order, i.e. the seeds'
    mean |p - nominal| is below ``margin`` (non-superiority). Unit: seed."""
    what = (
        f"shallow tanh G ({osc.get('width')} hidden units) trained with one {{scheme}} step on exact pairs "
        f"(x(t), x(t + dt)), dt in {osc.get('train_dts')}, {len(osc.get('seeds', []))} seeds, "
        f"{osc.get('epochs')} epochs of Adam; frozen G integrated to t = {osc.get('t_end')} with h = dt x "
        f"{h_ratios(osc) if osc else '?'}; p = slope of log e(h = dt x 2^-{osc.get('refine_levels')}) against "
        "log dt over the training dt's, per seed"
    )
    unit = "seed (initialization of G; the data are exact); p fitted over the training dt's within a seed"
    specs = []
    for (sy, sc), g in orders_t.groupby(["system", "scheme"], sort=True):
        nominal = int(g.order.iloc[0])
        g = g.sort_values("seed")
        specs.append(
            dict(
                study=STUDY,
                claim_id=f"{sc}_order:{sy}",
                kind="non_superiority",
                margin=margin,
                claim=f"{sy}: the {sc}-trained model is an order-{nominal} discretization of a learned vector field: "
                f"its error as h -> 0 scales as dt^p with p within {margin:g} of {nominal} (mean over seeds of "
                f"abs(p - {nominal}); mean p {g.fitted_order.mean():.2f})",
                what_was_run=what.format(scheme=sc),
                unit=unit,
                x=g.order_deviation.to_numpy(),
                effect_name=ORDER_EFFECT,
                figure=FIGURES["order"],
            )
        )
    return specs


def wp_specs(wp_sum: pd.DataFrame, wpc: dict, margin: float) -> list[dict]:
    """Claim specs of the WP-ResNets (:func:`nnrds.verdicts.verdict_table`), per dataset and variant: the network
    trained at depth L is continuous in depth -- evaluated at the deepest L', its test outputs move by less than
    ``margin`` times the spread of its test predictions (non-superiority of ``rel_change_finest``)."""
    specs = []
    for (ds, var), g in wp_sum.groupby(["dataset", "variant"], sort=True):
        kind = g.kind.iloc[0]
        how = (
            "its per-layer weights interpolated " + str(g.interp.iloc[0])
            if kind == "nonpar"
            else "its weight function W(t) evaluated at the new layer times"
        )
        specs.append(
            dict(
                study=STUDY,
                claim_id=f"depth_refinement:{ds}:{var}",
                kind="non_superiority",
                margin=margin,
                claim=f"{ds}: the {var} ResNet trained at depth {wpc.get('depth')} is a continuous-in-depth model: "
                f"evaluated at depth {max(eval_depths(wpc)) if wpc else '?'} ({how}) its test outputs move by less "
                f"than {margin:g} times the spread of its test predictions",
                what_was_run=(
                    f"ResNet width {wpc.get('width')}, depth {wpc.get('depth')}, T = {wpc.get('T')}, "
                    f"{len(wpc.get('seeds', []))} seeds (own data split each), {wpc.get('epochs')} epochs of Adam; "
                    f"evaluated at depths {eval_depths(wpc) if wpc else '?'}; test MSE at L (median over seeds) "
                    f"{g.test_mse_trained.median():.3g} (standardized outputs: 1 = no skill)"
                ),
                unit="seed (data split + initialization)",
                x=g.sort_values("seed").rel_change_finest.to_numpy(),
                effect_name="RMS change of the test outputs from L to the deepest L' / spread of the test predictions at L",
                figure=FIGURES["wp"],
            )
        )
    return specs


def claims(orders_t: pd.DataFrame, wp_sum: pd.DataFrame, study: dict) -> pd.DataFrame:
    """The study's claims (see the module docstring): the order test per system and scheme
    (:func:`oscillator_specs`), the depth-refinement test per WP variant (:func:`wp_specs`); Holm over all."""
    cfg = {**CLAIM_DEFAULTS, **(study.get("claims") or {})}
    osc = part_config(study, "oscillator") if "oscillator" in study else {}
    wpc = part_config(study, "wp") if "wp" in study else {}
    specs = oscillator_specs(orders_t, osc, float(cfg["margin_order"])) + wp_specs(
        wp_sum, wpc, float(cfg["margin_depth"])
    )
    return verdict_table(specs, float(cfg["alpha"]))


def summarize(
    runs: pd.DataFrame, conv: pd.DataFrame, ref: pd.DataFrame, wp_runs: pd.DataFrame, study: dict
) -> dict[str, pd.DataFrame]:
    """Tables of the summary job: models, slopes, orders, sanity, wp_summary, claims."""
    models = per_model(runs, conv, ref)
    wps = wp_summary(wp_runs)
    od = orders(models)
    return {
        "models": models,
        "slopes": slopes(models),
        "orders": od,
        "sanity": sanity(models),
        "wp_summary": wps,
        "claims": claims(od, wps, study),
    }


def _num(x: float, fmt: str = ".2g") -> str:
    return format(x, fmt) if np.isfinite(x) else "n/a"


def caption(tables: dict[str, pd.DataFrame], scale: str, study: dict, dataset_note: str = "") -> str:
    """RST caption with the numbers, for every figure and table of the study."""
    osc, wpc = part_config(study, "oscillator"), part_config(study, "wp")
    cfg = {**CLAIM_DEFAULTS, **(study.get("claims") or {})}
    sl, claims_t, wps = tables["slopes"], tables["claims"], tables["wp_summary"]
    lines = [
        f"Continuous-in-depth convergence test, **{scale}** scale. *Oscillators*: pendulum θ'' = −g sin θ "
        f"(g = {osc['g']:g}, θ(0) = {osc['q0']:.4g}, θ'(0) = 0; exact solution by Jacobi elliptic functions) and the "
        f"harmonic oscillator θ'' = −g θ from the same state. A shallow tanh network G ({osc['width']} hidden units) "
        f"is trained ({osc['epochs']} epochs of Adam, {len(osc['seeds'])} seeds) so that one step of a scheme "
        f"(Euler = a ResNet unit, midpoint, RK4) with step dt ∈ {osc['train_dts']} maps {osc['n_pairs']} exact "
        f"states on the orbit to the exact states dt later. Frozen, G is integrated with its training scheme to "
        f"t = {osc['t_end']:g} from {osc['n_eval_states']} states on the orbit with h = dt × {h_ratios(osc)}; the "
        "error is the RMS state error at that time, each component in units of its amplitude. The reference is "
        "the same sweep on the true vector field.",
        "",
    ]
    for (sy, sc), g in sl.groupby(["system", "scheme"], sort=True):
        parts = "; ".join(
            f"dt {r.train_dt:g}: error at dt {_num(r.median_error_train_dt)}, at the finest h "
            f"{_num(r.median_error_fine)}, slope h ≥ dt {_num(r.median_slope_coarse, '.2f')} "
            f"(true field {_num(r.ref_slope_coarse, '.2f')}), h ≤ dt {_num(r.median_slope_fine, '.2f')} "
            f"(true field {_num(r.ref_slope_fine, '.2f')})"
            for r in g.itertuples()
        )
        lines.append(f"* **{sy}, {sc}** (medians over seeds): {parts}.")
    od = tables.get("orders")
    if od is not None and len(od):
        lines += [
            "",
            "*Order test*: per seed, p = least-squares slope of log e(h → 0) (the error at the finest h, dt × "
            f"2^-{osc['refine_levels']}) against log(training dt) over dt ∈ {osc['train_dts']}. Fitting x(t + dt) "
            "with one step of a scheme of order p makes G = f + O(dt^p), so e(h → 0) ∝ dt^p while that bias "
            "lies above the fitting error, which does not shrink with dt (p → 0 where it dominates).",
        ]
        for (sy, sc), g in od.groupby(["system", "scheme"], sort=True):
            m, lo, hi = verdicts.t_or_sign_ci(g.fitted_order.to_numpy(), 0.95)
            lines.append(
                f"* **{sy}, {sc}** (nominal order {int(g.order.iloc[0])}): p = {_num(m, '.2f')} "
                f"[{_num(lo, '.2f')}, {_num(hi, '.2f')}] (mean over {len(g)} seeds, 95% t interval)."
            )
    sn = tables.get("sanity")
    if sn is not None and len(sn):
        lines += ["", "*Sanity check* (not a claim: with exact data it cannot come out contradicted):"]
        for r in sn.itertuples():
            lines.append(
                f"* ``{r.check}`` ({r.system}): at its training dt the Euler (ResNet) model is more accurate than "
                f"Euler on the true vector field by {_num(r.mean, '.2f')} decades [{_num(r.ci_low, '.2f')}, "
                f"{_num(r.ci_high, '.2f')}] (95%, {r.n_seeds} seeds): {'passes' if r.passes else 'FAILS'}."
            )
    lines += [
        "",
        f"*WP-ResNets* on {wpc['dataset']}{(' (' + dataset_note + ')') if dataset_note else ''}: ResNets of width "
        f"{wpc['width']} trained at depth L = {wpc['depth']} (T = {wpc['T']:g}) and evaluated at depths "
        f"{eval_depths(wpc)} (h = T/L'); a weight parameterization evaluates its W(t) at the new layer times, the "
        "non-parametric ResNet interpolates its per-layer weights (constant: each layer held over its interval; "
        "linear: between the layer times). Output change = RMS difference of the test predictions "
        "(standardized outputs).",
        "",
    ]
    for (_ds, var), g in wps.groupby(["dataset", "variant"], sort=True):
        lines.append(
            f"* **{var}**: test MSE at L {_num(g.test_mse_trained.median(), '.3g')}, at the deepest "
            f"L' {_num(g.test_mse_finest.median(), '.3g')} (medians over seeds); output change L → deepest "
            f"{_num(g.change_vs_trained_finest.median(), '.2g')}, "
            f"{_num(g.rel_change_finest.median(), '.2g')} of the prediction spread; log training-MSE ratio "
            f"{_num(g.log_train_ratio_finest.median(), '.2g')}; slope of the change between consecutive "
            f"depths against h {_num(g.slope_change_vs_next.median(), '.2f')}."
        )
    lines += [
        "",
        "The seed is the unit of replication (the oscillator data are exact; a seed's order is fitted over the "
        "training dt's). All claims are non-superiority claims, Holm-corrected together "
        f"(α = {cfg['alpha']:g}): *supported* when the upper end of their (1 − 2α_j) interval lies below the "
        "margin, *contradicted* when the interval lies above it (nnrds.verdicts.non_superiority), else "
        f"*inconclusive*. Margins: {cfg['margin_order']:g} in the order (mean over seeds of abs(p − nominal)), "
        f"{cfg['margin_depth']:g} of the prediction spread in the depth-refinement output change.",
        "",
    ]
    lines += [verdicts.claim_bullet(r, ".3g") for r in claims_t.itertuples()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ benchmark
def bench_batching(cfg: dict, scheme: str = "rk4", epochs: int = 200, base_seed: int = 0) -> dict:
    """Wall and CPU time of training every (system, dt, seed) replica of ``cfg`` in one batch vs one at a time
    (same epochs), and the largest difference between the two final losses (replicas are independent: ~0)."""
    cfg = {**cfg, "epochs": int(epochs)}
    reps = _replicas(cfg)
    train_oscillators(
        scheme,
        {**cfg, "epochs": 2},
        base_seed=base_seed,
        device="cpu",
        dtype=cfg["dtype"],
        reps=reps[:1],
        log_progress=False,
    )  # warm-up: one-time costs of the first fit count for neither
    t0, c0 = time.perf_counter(), time.process_time()
    _, _, batched = train_oscillators(
        scheme, cfg, base_seed=base_seed, device="cpu", dtype=cfg["dtype"], reps=reps, log_progress=False
    )
    t_b, c_b = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    loop = [
        train_oscillators(
            scheme, cfg, base_seed=base_seed, device="cpu", dtype=cfg["dtype"], reps=[r], log_progress=False
        )[2]["loss"][0]
        for r in reps
    ]
    t_l, c_l = time.perf_counter() - t0, time.process_time() - c0
    return {
        "scheme": scheme,
        "replicas": len(reps),
        "epochs": epochs,
        "batched_wall_s": t_b,
        "batched_cpu_s": c_b,
        "loop_wall_s": t_l,
        "loop_cpu_s": c_l,
        "speedup_wall": t_l / t_b,
        "speedup_cpu": c_l / c_b,
        "max_rel_loss_diff": float(np.max(np.abs(np.asarray(loop) - batched["loss"]) / np.asarray(loop))),
    }
