"""Runtime and memory model of the training / fit jobs: a work measure per job from its config slice, fitted per rule
to the snakemake ``benchmark:`` files of smaller scales (``nnrds estimate``, src/nnrds/commands/estimate.py).

A job's work has two parts, both read from the job's own config slice (the JSON its rule passes, so the measure sees
exactly what the job's code reads, schema defaults included):

* ``serial`` -- operations that run one after another whatever the batch: optimizer steps x layers (x time steps of
  a recurrence, x Runge-Kutta stages, x L-BFGS evaluations). Replicas are batched, so they add no serial work; on a
  CPU each such op costs a fixed dispatch overhead.
* ``flops`` -- multiply-adds: serial ops x replicas x samples x width^2 (the network's per-sample cost).

Work = flops + kappa x serial, with kappa (flop-equivalents of one serial op) fitted per rule when the benchmarks
have enough jobs of different shape (:func:`fit_rule`), else :data:`KAPPA_DEFAULT`. Time is fitted as
``s = a + b x work`` by non-negative least squares on relative residuals (every job counts alike, whatever its
size) when the rule's benchmarks come from two or more scales; from one scale only, ``a = 0`` and ``b`` through
the origin (``b = s / work`` for a one-job rule). Time is CPU seconds of the benchmark files by default (``cpu_time``; wall ``s`` on request). Memory
(``max_rss``, MB) is fitted as ``a + c x mem`` (``mem`` = replicas x parameters x data, in floats) when the observed
peaks vary (two or more distinct ``mem`` values, 10 % spread) and the slope comes out positive; otherwise it is the
largest observed peak plus 4 bytes per ``mem`` float (the interpreter and torch dominate small jobs). Nothing here
imports a study: the rules' work functions (:data:`WORK`) re-read the few settings they need from the slice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: flop-equivalents of one serial op (dispatch overhead of a small kernel ~10 us at ~10 GFLOP/s) when not fitted
KAPPA_DEFAULT = 1.0e5
#: kappa grid searched per rule (log-spaced)
KAPPA_GRID = tuple(10.0**e for e in np.arange(2.0, 8.01, 0.25))
#: least jobs of distinct shape (flops / serial) for kappa to be fitted instead of defaulted
MIN_KAPPA_POINTS = 4


@dataclass(frozen=True)
class Work:
    """A job's work: serial ops, multiply-adds, and the floats it holds (replicas x parameters x data)."""

    serial: float
    flops: float
    mem: float

    def total(self, kappa: float) -> float:
        return self.flops + kappa * self.serial

    def __add__(self, other: Work) -> Work:
        return Work(self.serial + other.serial, self.flops + other.flops, max(self.mem, other.mem))


ZERO = Work(0.0, 0.0, 0.0)


def total(parts: Sequence[Work]) -> Work:
    out = ZERO
    for p in parts:
        out = out + p
    return out


# ------------------------------------------------------------------------------------------ network costs
#: (inputs, outputs) of datasets whose size is not in their spec (ensembles: the simulator's parameters and QoIs,
#: read from the default-scale results/data/<name>/ tables; a regression set with n_features has that many inputs)
DATASET_DIMS = {"sklearn_diabetes": (10, 1), "elm": (15, 10), "chem": (6, 9)}


def dataset_dims(spec: Mapping) -> tuple[int, int]:
    """(inputs, outputs) of a regression dataset spec (config ``data.sets.<name>``)."""
    if spec.get("kind") == "ensemble":
        return DATASET_DIMS.get(spec.get("source"), (10, 1))
    if spec.get("kind") in DATASET_DIMS:
        return DATASET_DIMS[spec["kind"]]
    return int(spec.get("n_features", 10)), 1


def n_basis(pspec: Mapping) -> int:
    """Weight blocks a parameterization stores per net: 1 (const), degree + 1 (a polynomial basis), else per layer."""
    kind = pspec.get("kind", "nonpar")
    if kind == "const":
        return 1
    if kind in ("monomial", "legendre", "chebyshev"):
        return int(pspec.get("degree", 0)) + 1
    return 0  # nonpar / mlp: one block per layer


def net_flops(d_in: int, d_out: int, width: int, depth: int) -> float:
    """Multiply-adds of one forward pass of one sample: input layer, ``depth`` width x width blocks, readout."""
    return float(d_in * width + depth * width * width + width * d_out)


def net_params(d_in: int, d_out: int, width: int, depth: int, pspec: Mapping | None = None) -> float:
    """Parameters of one replica (as :meth:`nnrds.models.Arch.n_params`; mlp / nonpar: one block per layer)."""
    nb = n_basis(pspec or {}) or depth
    return float((d_in + 1) * width + nb * (width * width + width) + (width + 1) * d_out)


def resnet_fit(
    d_in: int,
    d_out: int,
    width: int,
    depth: int,
    R: int,
    n: int,
    epochs: int,
    pspec: Mapping | None = None,
    batch_size: int | None = None,
) -> Work:
    """Adam on R replicas of a (WP-)ResNet / MLP: ``epochs`` x steps per epoch x (depth + 2) serial layer ops; the
    weight basis is evaluated once per step (degree + 1 blocks per layer)."""
    steps = epochs * (math.ceil(n / batch_size) if batch_size else 1)
    nb = n_basis(pspec or {})
    flops = steps * R * (n * net_flops(d_in, d_out, width, depth) + depth * nb * width * width)
    params = net_params(d_in, d_out, width, depth, pspec)
    return Work(steps * (depth + 2), flops, R * (params * 4 + n * (d_in + d_out + depth * width)))


def forward(d_in: int, d_out: int, width: int, depth: int, R: int, n: int) -> Work:
    """One no-grad forward pass of R replicas on n samples."""
    return Work(depth + 2, R * n * net_flops(d_in, d_out, width, depth), R * n * depth * width)


# ------------------------------------------------------------------------------------------ per rule
def _n(spec: Mapping) -> int:
    return int(spec["n_train"])


def wp_gap_train(c: Mapping) -> Work:
    st, ds, ps = c["study"], c["dataset"], c["parameterization"]
    d_in, d_out = dataset_dims(ds)
    R, depth_of = len(st["seeds"]), (lambda L: L)
    parts = [
        resnet_fit(d_in, d_out, w, depth_of(L), R, _n(ds), st["epochs"], ps, st.get("batch_size"))
        + forward(d_in, d_out, w, L, R, _n(ds) + int(ds["n_test"]))
        for L in st["depths"]
        for w in st["widths"]
    ]
    return total(parts)


def wp_gap_landscape(c: Mapping) -> Work:
    st, ds = c["study"], c["dataset"]
    ls = st["landscape"]
    d_in, d_out = dataset_dims(ds)
    R, n = len(st["seeds"]), _n(ds)
    parts = []
    for name, net in ls["nets"].items():
        L, w, ps = int(net["depth"]), int(net["width"]), c["parameterizations"][name]
        parts.append(resnet_fit(d_in, d_out, w, L, R, n, st["epochs"], ps, st.get("batch_size")))
        grid = int(ls["points"]) ** 2
        f = forward(d_in, d_out, w, L, R, n)
        parts.append(Work(grid * f.serial, grid * f.flops, f.mem))
    return total(parts)


def stiffness_train(c: Mapping) -> Work:
    st, ds, ps = c["study"], c["dataset"], c["parameterization"]
    d_in, d_out = dataset_dims(ds)
    R = len(st["seeds"]) * (1 + len(st["l2_grid"]) + len(st["penalty_grid"]))
    L, w, E, n = int(st["depth"]), int(st["width"]), int(st["epochs"]), _n(ds)
    fit = resnet_fit(d_in, d_out, w, L, R, n, E, ps, st.get("batch_size"))
    iters = int((st.get("penalty") or {}).get("power_iters", 1))
    pen = Work(E * L * iters, E * R * L * iters * w * w, 0.0)  # spectral-norm power iterations of every layer
    snaps = E // max(1, int(st["track_every"])) + 1
    ntr = min(int(st.get("track_samples") or n), n)
    track = Work(snaps * L * 4, snaps * R * (ntr * L * w**3 + L * w**3), R * ntr * L * w * w)  # Jacobians + eig
    return fit + pen + track


#: ItalyPowerDemand has an official split (67 training curves); ECG5000 (mirror: 500) and digits are cv pools
SEQ_POOLS = {
    "digits": (1797, 64, 1),
    "digits_permuted": (1797, 64, 1),
    "ecg5000": (500, 140, 1),
    "italy_power": (67, 24, 1),
}
SEQ_OFFICIAL = {"italy_power": 1029}


def noisy_rnn_train(c: Mapping) -> Work:
    st, cell = c["study"], c["cell"]
    task, model = cell["dataset"], cell["model"]
    over = (st.get("task_training") or {}).get(task) or {}
    E, bs = int(over.get("epochs", st["epochs"])), int(over.get("batch_size", st["batch_size"]))
    levels = over.get("noise_levels", st["noise_levels"])
    n_pool, T, d_in = SEQ_POOLS[task]
    folds = 1 if task in SEQ_OFFICIAL else int(st["cv_folds"])
    n_fit = n_pool if task in SEQ_OFFICIAL else n_pool * (folds - 1) // folds
    n_fit = int(n_fit * (1 - float(st.get("val_fraction", 0.2))))
    if st.get("max_train"):
        n_fit = min(n_fit, int(st["max_train"]))
    n_test = SEQ_OFFICIAL.get(task, n_pool // folds)
    if st.get("max_test"):
        n_test = min(n_test, int(st["max_test"]))
    R = len(st["seeds"]) * folds * (len(levels) if model == "noisy" else 1)
    H = int(st["hidden"])
    per_seq = T * (H * H + H * d_in)
    steps = E * math.ceil(n_fit / bs)
    evals = sum(len(g) for g in st["perturbations"].values()) + 2
    return Work(
        steps * T + evals * T,
        steps * R * min(bs, n_fit) * per_seq + evals * R * n_test * per_seq,
        R * (4 * (H * H + H * d_in) + min(bs, n_fit) * T * H),
    )


def _bayes_net(d_in: int, d_out: int, width: int, depth: int, pspec: Mapping) -> tuple[float, float]:
    return net_flops(d_in, d_out, width, depth), net_params(d_in, d_out, width, depth, pspec)


#: principal scores kept of the ELM QoIs at pca_variance 0.99 (default-scale data)
ELM_PCA_SCORES = 4


def _nuts_grads(nu: Mapping) -> tuple[float, float]:
    """(serial, per-chain) gradient evaluations of a NUTS run at its cap: (warm-up + draws) x 2^max_tree_depth
    (+ the mode search's iterations); chains are vectorized."""
    per_chain = (int(nu["warmup"]) + int(nu["samples"])) * 2 ** int(nu.get("max_tree_depth", 10))
    mode = int(nu.get("starts", 1)) * int(nu.get("mode_iters", 0)) + int(nu.get("init_steps", 0))
    return per_chain + mode, int(nu["chains"]) * per_chain + mode


def uq_elm_fit(c: Mapping) -> Work:
    st, job = c["study"], c["job"]
    arch = st["architectures"][st["extrapolation"]["architecture"] if job == "extrapolation" else job]
    d_in, d_out = DATASET_DIMS["elm"]
    if arch.get("pca_variance"):
        d_out = ELM_PCA_SCORES
    w, L, n = int(st["width"]), int(st["depth"]), int(st["n_train"])
    f, P = _bayes_net(d_in, d_out, w, L, arch)
    serial = flops = 0.0
    for m in st["methods"]:
        if m == "nuts":
            if P > st["nuts"]["max_params"]:
                continue
            s, g = _nuts_grads(st["nuts"])
        elif m in ("vi", "vi_lowrank"):
            s = int(st[m]["steps"])
            g = s * int(st[m].get("particles", 1))
        elif m == "ensemble":
            s = int(st["ensemble"]["epochs"])
            g = s * int(st["ensemble"]["members"])
        else:  # map
            s = g = int(st.get(m, {}).get("epochs", 1000))
        serial += s * (L + 2)
        flops += g * n * f
    return Work(serial, flops, P * 1000 + n * L * w)


def uq_elm_depth(c: Mapping) -> Work:
    st, n = c["study"], int(c["n_train"])
    sw = st["depth_sweep"]
    d_in, d_out = DATASET_DIMS["elm"][0], ELM_PCA_SCORES
    s, g = _nuts_grads(sw["nuts"])
    parts = []
    for pc in sw["parameterizations"].values():
        for L in sw["depths"]:
            f, P = _bayes_net(d_in, d_out, int(sw["width"]), int(L), pc)
            for _seed in sw["seeds"]:
                parts.append(Work(s * (L + 2), g * n * f, int(sw["nuts"]["chains"]) * P * 1000))
    return total(parts)


#: configurations of the acquired FitSNAP sets and atoms per configuration (results/data/<set>/configs.csv)
MATERIALS_SETS = {"fitsnap": (363, 12), "wbe": (25422, 21), "al_emt": (None, 30)}


def materials_train(c: Mapping) -> Work:
    st, s = c["study"], c["cell"]["set"]
    n_cfg, atoms = MATERIALS_SETS[s]
    spec = st.get(s) or {}
    if s == "al_emt":
        n_cfg = int(spec["n_configs"])
    elif s == "wbe" and spec.get("max_configs"):
        n_cfg = min(n_cfg, int(spec["max_configs"]))
    tr = spec.get("training") or {}
    splits = [x for x in tr.get("splits", ["group"])]
    n_splits = sum(int(tr.get("cv_folds", 5)) if x == "cv" else 1 for x in splits)
    E = int(tr.get("epochs", st["epochs"]))
    bbb = st["bbb"]
    net = st["net"]
    ds = st.get("descriptors") or {}
    d_in = int(ds.get("n_radial", 8)) * (1 + len(ds.get("angular_etas", [0, 0])) * len(ds.get("zetas", [0, 0])))
    f = net_flops(d_in, 1, int(net["width"]), int(net["depth"])) * 3  # energy + forces (backward through the net)
    R = len(st["seeds"])
    bs = int(st["batch_size"])
    steps = math.ceil(0.8 * n_cfg / bs)
    serial = n_splits * steps * (E + int(bbb["epochs"])) * (int(net["depth"]) + 2)
    flops = n_splits * 0.8 * n_cfg * atoms * f * (R * E + int(bbb["epochs"]) * int(bbb["n_samples"]))
    desc = n_cfg * atoms * 50 * d_in  # descriptors: ~50 neighbours per atom
    return Work(serial, flops + desc, n_cfg * atoms * d_in * 3)


RK_STAGES = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4, "leapfrog": 1, "verlet": 1}


def continuous_depth_oscillator(c: Mapping) -> Work:
    st, scheme = c["study"], c["cell"]["scheme"]
    o = st["oscillator"]
    seeds = st["seeds"]  # the study's seeds (continuous_depth.part_config)
    R = len(o["systems"]) * len(o["train_dts"]) * len(seeds)
    w, E, npairs, k = int(o["width"]), int(o["epochs"]), int(o["n_pairs"]), RK_STAGES.get(scheme, 2)
    fit = Work(E * k * 3, E * R * k * npairs * 2 * w * w, R * npairs * w * 4)
    coarse = sorted({float(f) for f in o["coarse_factors"] if f > 1})
    ratios = coarse + [1.0] + [2.0**-j for j in range(1, int(o["refine_levels"]) + 1)]
    hs = {round(float(dt) * q, 15) for dt in o["train_dts"] for q in ratios}
    steps = sum(float(o["t_end"]) / h for h in hs)
    sweep = Work(steps * k * 3, steps * k * R / len(hs) * int(o["n_eval_states"]) * 2 * w * w, 0.0)
    ref = Work(steps * k * len(o["systems"]), 0.0, 0.0)  # the true field (numpy, one step at a time)
    return fit + sweep + ref


def continuous_depth_wp(c: Mapping) -> Work:
    st, ds, ps = c["study"], c["dataset"], c["parameterization"]
    o = st["wp"]
    seeds = st["seeds"]
    d_in, d_out = dataset_dims(ds)
    R, L, w, n = len(seeds), int(o["depth"]), int(o["width"]), _n(ds)
    fit = resnet_fit(d_in, d_out, w, L, R, n, int(o["epochs"]), ps, o.get("batch_size"))
    depths = sorted({int(round(L * float(f))) for f in o["depth_factors"]} | {L})
    variants = len(o["interpolations"]) if ps.get("kind") == "nonpar" else 1
    ev = total([forward(d_in, d_out, w, d, R, n + int(ds["n_test"])) for d in depths for _ in range(variants)])
    return fit + ev


#: the PINN net (nnrds.studies.pinn_failure.ARCH and the official MLP): 2 -> 50 -> 3 x 50 -> 1, tanh
PINN_NET = (2, 1, 50, 4)
PINN_ARM_KEYS = (
    "budget",
    "stage_max_iter",
    "mode_max_iter",
    "iterations",
    "normalize_inputs",
    "net",
    "sampling",
    "n_collocation",
    "lbfgs",
    "points_per",
)


def pinn_failure_train(c: Mapping) -> Work:
    st, cell = c["study"], c["cell"]
    problem, (mode, _, arm) = cell["problem"], cell["mode"].partition("@")
    spec = ((st.get("arms") or {}).get(arm) or {}) if arm else {}
    cfg = {**st, **{k: spec[k] for k in PINN_ARM_KEYS if k in spec}}
    coefs = (spec.get("coefs") or {}).get(problem, st["problems"][problem]["coefs"])
    R = len(coefs) * len(st["seeds"])
    if mode == "curriculum":
        n_stages = int((st.get("curriculum") or {}).get("stages", 4))
    elif mode.startswith("seq2seq_"):
        n_stages = max(1, round(1.0 / float(mode.split("_", 1)[1])))
    else:
        n_stages = 1
    seq = mode.startswith("seq2seq_")
    cap = int((cfg.get("mode_max_iter") or {}).get(mode, cfg["stage_max_iter"]))  # per-mode stage cap
    it = cap * n_stages if cfg.get("budget", "equal") == "converge" else int(cfg["iterations"])
    n_pts = int(cfg["n_collocation"]) / (n_stages if seq and cfg.get("points_per") == "mode" else 1)
    d_in, d_out, w, L = PINN_NET
    f = net_flops(d_in, d_out, w, L) * 6  # residual: u and its first / second derivatives (nested autograd)
    evals = 1.25 * it  # L-BFGS function evaluations per iteration (line search)
    ls = st.get("landscape") or {}
    grid = int(ls.get("points", 0)) ** 2 if mode == "plain" and not arm else 0
    return Work(evals * (L + 2) * 3 + grid * (L + 2), evals * R * n_pts * f + grid * R * n_pts * f, R * n_pts * w * L)


def _stable_part(c: Mapping, part: str) -> dict:
    st = c["study"]
    p = dict(st[part])
    p.setdefault("seeds", st["seeds"])
    if not p.get("seeds"):
        p["seeds"] = st["seeds"]
    return p


def stable_arch_stability(c: Mapping) -> Work:
    p = _stable_part(c, "stability")
    R, w, E = len(p["seeds"]), int(p["width"]), int(p["epochs"])
    n, ngrow = int(p["n_train"]), int(p.get("growth_points", 64))
    parts = []
    for _problem in p["problems"]:
        for _h in p["steps"]:
            for L in p["depths"]:
                k = 2  # the second-order and midpoint blocks evaluate two maps; antisymmetric blocks build W - W^T
                parts.append(Work(E * L * k, E * R * n * L * w * w * k, R * n * L * w))
                probe = 5 * 2 * int(p.get("exact_substeps", 4))  # schemes x (initial, trained) x substeps
                parts.append(Work(probe * L, probe * R * ngrow * L * w * w * 2, 0.0))
    return total(parts)


def stable_arch_reversibility(c: Mapping) -> Work:
    p = _stable_part(c, "reversibility")
    w, n = int(p["width"]), int(p["n_points"])
    serial = sum(int(L) for L in p["depths"]) * 2 * 2  # forward + backward, float32 + float64
    lin = len(p.get("linear_a", [])) * sum(int(s) for s in p.get("linear_steps", []))
    return Work(serial + lin, serial * n * w * w, n * max(int(L) for L in p["depths"]) * w)


def stable_arch_multilevel(c: Mapping) -> Work:
    p, ds, ps = _stable_part(c, "multilevel"), c["dataset"], c["parameterization"]
    d_in, d_out = dataset_dims(ds)
    R, w, E, n = len(p["seeds"]), int(p["width"]), int(p["epochs_per_level"]), _n(ds)
    depths = [int(p["start_depth"])]
    while depths[-1] < int(p["final_depth"]):
        depths.append(depths[-1] * 2)
    parts = [resnet_fit(d_in, d_out, w, L, R, n, E, ps) for L in depths]  # multilevel
    parts.append(resnet_fit(d_in, d_out, w, depths[-1], R, n, E * len(depths), ps))  # from scratch
    parts.append(resnet_fit(d_in, d_out, w, depths[0], R, n, E * len(depths), ps))  # coarse only
    return total(parts)


def stable_arch_bases(c: Mapping) -> Work:
    p = _stable_part(c, "bases")
    problem = c["cell"]["problem"]
    if "dataset" in c:
        d_in, d_out = dataset_dims(c["dataset"])
        n = _n(c["dataset"])
    else:
        d_in, d_out, n = 2, 2, int(p["n_train"])
    R, w, L, E = len(p["seeds"]), int(p["width"]), int(p["depth"]), int(p["epochs"])
    del problem
    parts = [
        resnet_fit(d_in, d_out, w, L, R, n, E, {"kind": b, "degree": d})
        for d in p["degrees"]
        for _T in p["Ts"]
        for b in p["bases"]
    ]
    return total(parts)


def data_elm(c: Mapping) -> Work:
    n = int(c["n_train"]) + int(c["n_test"])
    return Work(n * (int(c["years"]) + int(c["spinup_cycles"])), 0.0, n * 100.0)


def data_chem(c: Mapping) -> Work:
    n = int(c["n_train"]) + int(c["n_test"])
    return Work(n, 0.0, n * 100.0)


def data_al_emt(c: Mapping) -> Work:
    n = int(c["spec"]["n_configs"])
    return Work(n, 0.0, n * 100.0)


#: rule -> work of one of its jobs from the job's config slice (the rules with a ``benchmark:`` file)
WORK: dict[str, Callable[[Mapping], Work]] = {
    "wp_gap_train": wp_gap_train,
    "wp_gap_landscape": wp_gap_landscape,
    "stiffness_train": stiffness_train,
    "noisy_rnn_train": noisy_rnn_train,
    "uq_elm_fit": uq_elm_fit,
    "uq_elm_depth": uq_elm_depth,
    "materials_train": materials_train,
    "continuous_depth_oscillator": continuous_depth_oscillator,
    "continuous_depth_wp": continuous_depth_wp,
    "pinn_failure_train": pinn_failure_train,
    "stable_arch_stability": stable_arch_stability,
    "stable_arch_reversibility": stable_arch_reversibility,
    "stable_arch_multilevel": stable_arch_multilevel,
    "stable_arch_bases": stable_arch_bases,
    "data_elm": data_elm,
    "data_chem": data_chem,
    "data_al_emt": data_al_emt,
}


def study_of(rule: str) -> str:
    """The study (config key) of a rule: the longest study key its name starts with (``data`` for the raw layer)."""
    keys = ["wp_gap", "stiffness", "noisy_rnn", "uq_elm", "materials", "continuous_depth", "pinn_failure"]
    keys += ["stable_arch", "data"]
    return max((k for k in keys if rule.startswith(k + "_")), key=len, default=rule)


# ------------------------------------------------------------------------------------------ benchmarks
@dataclass(frozen=True)
class Benchmark:
    """One snakemake benchmark file: wall seconds, CPU seconds, peak RSS (MB); the median of its repeats."""

    s: float
    cpu_time: float
    max_rss: float


def read_benchmark(path: str | Path) -> Benchmark:
    """A snakemake ``benchmark:`` TSV (columns s, h:m:s, max_rss, ..., cpu_time); ``NA`` memory reads as NaN."""
    import pandas as pd

    df = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
    for col in ("s", "max_rss"):
        if col not in df.columns:
            raise ValueError(f"benchmark file {path} has no column {col!r} (columns: {', '.join(df.columns)})")
    cpu = df["cpu_time"] if "cpu_time" in df.columns else df["s"]
    return Benchmark(float(df["s"].median()), float(cpu.median()), float(df["max_rss"].median()))


# ------------------------------------------------------------------------------------------ fits
#: what the fits predict: CPU seconds (``cpu_time``: one-thread jobs on one core, little affected by other load on
#: the machine) or wall seconds (``s``)
MEASURES = ("cpu_time", "s")


@dataclass(frozen=True)
class Point:
    """One measured job of a rule: its work and its benchmark; ``t`` the measure fitted (:data:`MEASURES`)."""

    work: Work
    bench: Benchmark
    label: str = ""
    measure: str = "cpu_time"
    scale: str = ""  # the benchmark config it was measured at

    @property
    def t(self) -> float:
        return getattr(self.bench, self.measure)


@dataclass
class Fit:
    """Time = a + b x (flops + kappa x serial); memory = ma + mc x mem (or the largest observed)."""

    rule: str
    a: float
    b: float
    kappa: float
    kappa_fitted: bool
    time_model: str  # "least squares" | "one scale: a = 0"
    mem_a: float
    mem_c: float
    mem_model: str  # "a + c x mem" | "max observed"
    n_points: int
    max_rel_error: float  # of the time fit on its own points
    points: list[Point] = field(default_factory=list, repr=False)

    def seconds(self, w: Work) -> float:
        return self.a + self.b * w.total(self.kappa)

    def memory_mb(self, w: Work) -> float:
        return self.mem_a + self.mem_c * w.mem


def _nnls_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(a, b, sum of squared relative residuals) of y ~ a + b x, a, b >= 0, each point weighted by 1 / y."""
    from scipy.optimize import nnls

    wt = 1.0 / np.maximum(y, 1e-9)
    A = np.stack([np.ones_like(x), x], axis=1) * wt[:, None]
    (a, b), _ = nnls(A, y * wt)
    r = (a + b * x - y) * wt
    return float(a), float(b), float(r @ r)


def _distinct(values: Sequence[float], rtol: float = 1e-9) -> int:
    out: list[float] = []
    for v in sorted(values):
        if not out or abs(v - out[-1]) > rtol * max(abs(v), 1.0):
            out.append(v)
    return len(out)


def _origin_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(b, sum of squared relative residuals) of y ~ b x through the origin, each point weighted by 1 / y."""
    u = x / np.maximum(y, 1e-9)
    b = float(u.sum() / (u @ u)) if (u @ u) > 0 else 0.0
    r = b * u - 1.0
    return b, float(r @ r)


def fit_time(points: Sequence[Point], kappa: float | None = None) -> tuple[float, float, float, bool, str]:
    """(a, b, kappa, kappa fitted?, model) of time = a + b x work over the points (seconds: ``Point.t``).

    Points of two or more scales (benchmark configs): a, b >= 0 by least squares on relative residuals. One scale
    only: a = 0 and b through the origin (b = s / work for one job) -- an intercept fitted within one scale would
    absorb the scaling itself. kappa: given, else fitted on :data:`KAPPA_GRID` when the points have
    >= :data:`MIN_KAPPA_POINTS` distinct shapes (flops / serial), else :data:`KAPPA_DEFAULT`."""
    if not points:
        raise ValueError("no benchmark points to fit")
    y = np.array([p.t for p in points], dtype=float)
    shapes = [p.work.flops / max(p.work.serial, 1e-300) for p in points]
    fitted = kappa is None and _distinct(shapes, 1e-6) >= MIN_KAPPA_POINTS
    grid = KAPPA_GRID if fitted else (KAPPA_DEFAULT if kappa is None else kappa,)
    scales = len({p.scale for p in points})
    best = None
    for k in grid:
        x = np.array([p.work.total(k) for p in points], dtype=float)
        if scales < 2 or _distinct(list(x)) < 2:
            b, err = _origin_line(x, y)
            cand = (0.0, b, k, err, f"{'one scale' if scales < 2 else 'one work value'}: a = 0, b through the origin")
        else:
            a, b, err = _nnls_line(x, y)
            cand = (a, b, k, err, f"least squares over {scales} scales (relative)")
        if best is None or cand[3] < best[3] - 1e-12:
            best = cand
    a, b, k, _, model = best
    return a, b, k, fitted, model


#: MB of one float32 (the ``mem`` floats added to the largest observed peak when the peaks do not vary)
MB_PER_FLOAT = 4 / 2**20
#: least relative spread of the observed peaks for a memory slope to be fitted
MIN_MEM_SPREAD = 0.1


def fit_memory(points: Sequence[Point]) -> tuple[float, float, str]:
    """(a, c, model) of max_rss (MB) = a + c x mem. Least squares when the peaks vary (>= 2 distinct mem values,
    spread of max_rss >= :data:`MIN_MEM_SPREAD`) and the slope is positive; else the largest observed peak plus
    the float32 size of ``mem`` (the interpreter and torch dominate small jobs, the arrays large ones)."""
    pts = [p for p in points if np.isfinite(p.bench.max_rss)]
    if not pts:
        return float("nan"), 0.0, "no memory measured"
    y = np.array([p.bench.max_rss for p in pts], dtype=float)
    x = np.array([p.work.mem for p in pts], dtype=float)
    if _distinct(list(x)) >= 2 and (y.max() - y.min()) >= MIN_MEM_SPREAD * y.max():
        a, c, _ = _nnls_line(x, y)
        if c > 0:
            return a, c, "a + c x mem (least squares)"
    return float(y.max()), MB_PER_FLOAT, "max observed + float32 x mem"


def fit_rule(rule: str, points: Sequence[Point], kappa: float | None = None) -> Fit:
    """The time and memory fits of one rule (:func:`fit_time`, :func:`fit_memory`)."""
    a, b, k, fitted, model = fit_time(points, kappa)
    ma, mc, mmodel = fit_memory(points)
    f = Fit(rule, a, b, k, fitted, model, ma, mc, mmodel, len(points), 0.0, list(points))
    rel = [abs(f.seconds(p.work) / p.t - 1) for p in points if p.t > 0]
    f.max_rel_error = max(rel) if rel else float("nan")
    return f
