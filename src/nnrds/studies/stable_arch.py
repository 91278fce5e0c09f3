"""Stable architectures, reversibility and multilevel training: the ODE view of deep networks (issue 15).

(Haber & Ruthotto, "Stable architectures for deep neural networks", 2017; Chang et al., "Reversible architectures
for arbitrarily deep residual networks", 2018.)

**Stability** (:func:`run_stability_cell`, one cell per architecture of :data:`ARCHS`): the plain ResNet (forward
Euler), the antisymmetric ResNet x' = sigma((W - W^T - gamma I) x + b) with forward Euler and with the two-step
leapfrog (explicit midpoint) rule, and the Hamiltonian network on (x, z) with Verlet (:mod:`nnrds.models`) are
trained with cross-entropy on the seeded 2-D problems of :mod:`nnrds.data.toy2d` at every depth N and step h
(T = N h), all seeds one replica batch. Measured on the test points: accuracy; the **perturbation growth**
||x_N(x_0 + eps v) - x_N(x_0)|| / eps of the hidden state (float64 copy of the net, eps = 1e-6, v a seeded random
unit vector per point; median over points); the eigenvalues of every layer's vector-field Jacobian
times h, against the scheme's stability function (:func:`nnrds.integrators.amplification`). Why leapfrog: with
gamma = 0 the Jacobian diag(sigma') (W - W^T) is similar to an antisymmetric matrix, so h lambda lies on the
imaginary axis, where forward Euler amplifies by sqrt(1 + |h lambda|^2) > 1 at every layer and the leapfrog rule
(stable on the segment |h lambda| <= 1 of the imaginary axis) neither grows nor decays.

**Reversibility** (:func:`run_reversibility`): the Hamiltonian (Verlet) network run backwards from its output
(:meth:`nnrds.models.ReplicaNet.verlet_inverse`) reconstructs its input; error in float32 and float64 vs depth
(random networks at fixed h). The linear test (:func:`linear_verlet_roundtrip`): Verlet on x' = w z, z' = -w x with
a = h w / 2 is algebraically invertible for every a, but its amplification |xi| = (a + sqrt(a^2 - 1))^2 exceeds 1
once a^2 > 1, and rounding errors then grow like |xi|^N: algebraic reversibility stops being numerical.

**Multilevel** (:func:`run_multilevel_cell`, one cell per parameterization): on the land-model surrogate a ResNet
is trained at depth L0, prolongated to 2 L (h -> h/2, :func:`nnrds.wp.resample`: a weight parameterization keeps its
W(t), only h changes; the non-parametric ResNet's per-layer weights are interpolated), trained again, up to the
final depth; against training the final depth from scratch (same seeds) for the same cost (cost = epochs x depth,
layer evaluations per sample).

Claims (:func:`claims`; the seed is the unit of replication; Holm over the study's family; intervals at Holm's
step-down level, :func:`nnrds.verdicts.verdict_table`):

* ``antisym_euler_unstable:h<h>`` -- forward-Euler antisymmetric nets amplify perturbations more as depth grows at
  fixed h (log10 growth at the deepest N minus at the shallowest > 0; superiority);
* ``antisym_leapfrog_stable:h<h>`` -- the leapfrog antisymmetric nets keep the growth at the deepest N below a
  factor 10^``margin_growth`` (default 2; non-superiority);
* ``hamiltonian_stable:h<h>`` -- so do the Verlet nets (same test);

(one claim of each per step h; a seed's effect is its mean over the 2-D problems, each seed drawing its own data)
* ``verlet_reversible`` -- the float64 reconstruction error of the deepest trained Verlet nets is below
  ``reversible_tol`` (log10 tol/error > 0; superiority);
* ``multilevel_cheaper:<param>`` -- at equal cost, multilevel training reaches a lower final training loss than
  training from scratch (log ratio scratch/multilevel > 0; superiority).
"""

from __future__ import annotations

import copy
import logging
import math
import time

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import experiment, integrators, wp
from ..data import regression, toy2d
from ..guards import check_finite, current
from ..models import Arch, ReplicaNet
from ..train import cross_entropy_per_replica, fit, mse_per_replica
from ..verdicts import verdict_table

log = logging.getLogger(__name__)

STUDY = "stable_arch"
FIG_DIR = "figures/stable_arch"
FIGURES = {
    "accuracy": f"{FIG_DIR}/accuracy_vs_depth.png",
    "growth": f"{FIG_DIR}/perturbation_growth.png",
    "spectra": f"{FIG_DIR}/eigenvalues_stability.png",
    "reversibility": f"{FIG_DIR}/reversibility.png",
    "multilevel": f"{FIG_DIR}/multilevel.png",
    "bases_curves": f"{FIG_DIR}/bases_loss_curves.png",
    "bases_heatmap": f"{FIG_DIR}/bases_final_error.png",
    "bases_gram": f"{FIG_DIR}/bases_gram_condition.png",
}
#: architecture name -> (block, scheme) of :class:`nnrds.models.Arch`
ARCHS = {
    "resnet": ("resnet", "euler"),
    "antisym_euler": ("antisymmetric", "euler"),
    "antisym_leapfrog": ("antisymmetric", "leapfrog"),
    "hamiltonian": ("hamiltonian", "verlet"),
}
#: defaults of ``stable_arch.claims`` (the schema holds the same)
CLAIM_DEFAULTS = {"alpha": 0.05, "margin_growth": math.log10(2.0), "reversible_tol": 1e-10}
EPS_PROBE = 1e-6
#: further parts of the study, summarized with it: functions ``part(read, study) -> (tables, claim_specs)`` where
#: ``read(name)`` is the concatenated ``<name>.csv`` of the parts' folders (None when none holds it); ``tables`` are
#: written by the summary, ``claim_specs`` (:func:`nnrds.verdicts.verdict_table` specs) join the
#: study's Holm family. A part appends its function here in its own section of this module.
EXTRA_PARTS: list = []
#: their caption paragraphs: functions ``caption(tables, study) -> list of lines`` (empty when the part did not run)
EXTRA_CAPTIONS: list = []


def _timings(part: str, cell: str, fits: int, replicas: int, wall: float, dev) -> pd.DataFrame:
    """The one-row ``timings`` table of a job (wall times live only here)."""
    row = {"part": part, "cell": cell, "fits": fits, "replicas_in_batch": replicas, "wall_time_s": wall}
    return pd.DataFrame([{**row, "device": str(dev)}])


def part_config(study: dict, part: str) -> dict:
    """The config of one part with the study's ``seeds``: what the cell functions take."""
    return {**study[part], "seeds": list(study["seeds"])}


# ----------------------------------------------------------------------------------------------- stability
RUN_COLUMNS = (
    "arch block scheme problem depth h T seed train_loss train_accuracy test_accuracy log10_growth max_abs_hlambda "
    "max_amplification"
).split()
SPECTRUM_COLUMNS = ["arch", "scheme", "problem", "depth", "h", "seed", "layer", "point", "re", "im"]
REVERSIBILITY_COLUMNS = ["source", "arch", "problem", "depth", "h", "a", "dtype", "seed", "rel_error", "predicted_xi"]


def _problem_tensors(problem: str, cfg: dict, seeds: list[int], base_seed: int, dtype, dev):
    """Train and test inputs (R, n, 2) and labels (R, n, 1) of every seed (each seed its own draw)."""
    n_tr, n_te = int(cfg["n_train"]), int(cfg["n_test"])
    draws = [toy2d.make(problem, n_tr + n_te, 7919 * s + base_seed) for s in seeds]
    U = torch.as_tensor(np.stack([d[0] for d in draws]), dtype=dtype, device=dev)
    Y = torch.as_tensor(np.stack([d[1] for d in draws]), device=dev)[..., None]
    return U[:, :n_tr], Y[:, :n_tr], U[:, n_tr:], Y[:, n_tr:]


def _accuracy(net: ReplicaNet, U: torch.Tensor, Y: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return (net(U).argmax(-1) == Y[..., 0]).to(torch.float64).mean(1).cpu().numpy()


def hidden_flow(net: ReplicaNet, x0: torch.Tensor) -> torch.Tensor:
    """x_N of the network's hidden dynamics started at the state x0 (R, n, w) (the embedding skipped)."""
    W, b = net.layer_weights()
    a = net.arch
    if a.block == "resnet":
        x = x0
        for n in range(a.depth):
            x = x + a.h * net.vector_field(x, W[:, n], b[:, n])
        return x
    return net._stable_trajectory(x0, W, b, a.h, a.depth)[0][-1]


def perturbation_growth(net: ReplicaNet, U: torch.Tensor, seed: int) -> np.ndarray:
    """Median over points of ||x_N(x_0 + eps v) - x_N(x_0)|| / eps (float64 copy, eps = :data:`EPS_PROBE`, v a
    seeded random unit vector per point): (R,)."""
    net64 = copy.deepcopy(net).to(torch.float64)
    with torch.no_grad():
        x0 = net64.embed(U.to(torch.float64))
        g = torch.Generator().manual_seed(seed)
        v = torch.randn(x0.shape, generator=g, dtype=torch.float64).to(x0.device)
        v = v / v.norm(dim=-1, keepdim=True)
        d = (hidden_flow(net64, x0 + EPS_PROBE * v) - hidden_flow(net64, x0)).norm(dim=-1) / EPS_PROBE
    return d.median(dim=1).values.cpu().numpy()


def layer_jacobians(net: ReplicaNet, U: torch.Tensor, n_layers: int, n_points: int) -> tuple[torch.Tensor, list[int]]:
    """Jacobians of each sampled layer's vector field at the hidden states of the first ``n_points`` inputs:
    (R, layers, points, m, m), layers evenly spaced. Resnet / antisymmetric: f(x) = sigma(A x + b), J = diag(sigma')
    A (m = w). Hamiltonian: the field (x, z) -> (sigma(W z + b), -sigma(W^T x + b)) at (x_n, z_{n+1/2}),
    J = [[0, diag(sigma'_1) W], [-diag(sigma'_2) W^T, 0]] (m = 2 w). Closed forms with
    :func:`nnrds.dynamics.jacobian.activation_derivative` (tests check them against autograd)."""
    from ..dynamics.jacobian import activation_derivative

    a = net.arch
    W, b = net.layer_weights()
    with torch.no_grad():
        x0 = net.embed(U[:, :n_points])
        xs, zs = (
            net._stable_trajectory(x0, W, b, a.h, a.depth)
            if a.block != "resnet"
            else (net.trajectory(U[:, :n_points]), [])
        )
        layers = sorted({int(round(v)) for v in np.linspace(0, a.depth - 1, min(n_layers, a.depth))})
        out = []
        for n in layers:
            Wn, bn = W[:, n], b[:, n, None, :]
            if a.block == "hamiltonian":
                s1 = activation_derivative(a.activation, torch.einsum("rnj,rij->rni", zs[n], Wn) + bn)
                s2 = activation_derivative(a.activation, torch.einsum("rnj,rji->rni", xs[n], Wn) + bn)
                top = torch.cat(
                    [torch.zeros_like(Wn)[:, None].expand(-1, s1.shape[1], -1, -1), s1[..., None] * Wn[:, None]], -1
                )
                bot = torch.cat(
                    [
                        -s2[..., None] * Wn.transpose(-1, -2)[:, None],
                        torch.zeros_like(Wn)[:, None].expand(-1, s1.shape[1], -1, -1),
                    ],
                    -1,
                )
                out.append(torch.cat([top, bot], -2))
            else:
                A = net.layer_matrix(Wn)
                s = activation_derivative(a.activation, torch.einsum("rnj,rij->rni", xs[n], A) + bn)
                out.append(s[..., None] * A[:, None])
    return torch.stack(out, dim=1), layers


def layer_spectra(net: ReplicaNet, U: torch.Tensor, n_layers: int, n_points: int) -> tuple[torch.Tensor, list[int]]:
    """Eigenvalues of h x :func:`layer_jacobians`: (R, layers, points, m) complex, and the sampled layers."""
    from ..dynamics.spectrum import eigenvalues

    J, layers = layer_jacobians(net, U, n_layers, n_points)
    return eigenvalues(J.to(torch.float64)) * net.arch.h, layers


def run_stability_cell(cell: experiment.Cell) -> dict[str, pd.DataFrame]:
    """Train one architecture (``cell["arch"]``; ``cell.study`` is the ``stability`` part with the study's seeds) on
    every problem x depth x step (seeds one replica batch each); tables runs, spectra (deepest net at the largest
    h), reversibility (Hamiltonian nets only), timings."""
    arch_name, cfg, base_seed = cell["arch"], cell.study, cell.base_seed
    rt = cell.prepare()
    dev, dtype = rt.device, rt.dtype
    block, scheme = ARCHS[arch_name]
    seeds = [int(s) for s in cfg["seeds"]]
    labels = [f"seed {s}" for s in seeds]
    rows, spec_rows, rev_rows = [], [], []
    t0 = time.perf_counter()
    n_fits = 0
    h_max, d_max = max(cfg["steps"]), max(cfg["depths"])
    train_kw = {"epochs": int(cfg["epochs"]), "lr": float(cfg["lr"]), "seed": base_seed, "progress_lines": 1}
    train_kw["loss_fn"] = cross_entropy_per_replica
    for problem in cfg["problems"]:
        Utr, Ytr, Ute, Yte = _problem_tensors(problem, cfg, seeds, base_seed, dtype, dev)
        for h in cfg["steps"]:
            for depth in cfg["depths"]:
                arch = Arch(
                    d_in=2,
                    d_out=toy2d.CLASSES[problem],
                    width=int(cfg["width"]),
                    depth=int(depth),
                    T=float(h) * int(depth),
                    block=block,
                    scheme=scheme,
                    gamma=float(cfg["gamma"]) if block == "antisymmetric" else 0.0,
                )
                net = ReplicaNet(arch, [1000 * s + base_seed for s in seeds], dtype=dtype).to(dev)
                where = current().at(cell=f"{arch_name}/{problem}/h{h}/N{depth}", labels=labels)
                res = fit(net, Utr, Ytr, where=where, **train_kw)
                n_fits += 1
                with torch.no_grad():
                    tr_loss = cross_entropy_per_replica(net, Utr, Ytr).cpu().numpy()
                acc_tr, acc_te = _accuracy(net, Utr, Ytr), _accuracy(net, Ute, Yte)
                growth = perturbation_growth(net, Ute, seed=base_seed)
                check_finite(torch.as_tensor(growth), where=where, step="perturbation growth", what="growth")
                hl, layers = layer_spectra(net, Ute, int(cfg["spectrum_layers"]), int(cfg["spectrum_points"]))
                amp = integrators.amplification(scheme, hl.numpy())
                for r, s in enumerate(seeds):
                    rows.append(
                        {
                            "arch": arch_name,
                            "block": block,
                            "scheme": scheme,
                            "problem": problem,
                            "depth": int(depth),
                            "h": float(h),
                            "T": arch.T,
                            "seed": s,
                            "train_loss": float(tr_loss[r]),
                            "train_accuracy": float(acc_tr[r]),
                            "test_accuracy": float(acc_te[r]),
                            "log10_growth": float(np.log10(growth[r])),
                            "max_abs_hlambda": float(hl[r].abs().max()),
                            "max_amplification": float(amp[r].max()),
                        }
                    )
                if h == h_max and depth == d_max:
                    lam = hl.numpy()
                    for r, s in enumerate(seeds):
                        for li, layer in enumerate(layers):
                            for p in range(lam.shape[2]):
                                for v in lam[r, li, p]:
                                    spec_rows.append(
                                        {
                                            "arch": arch_name,
                                            "scheme": scheme,
                                            "problem": problem,
                                            "depth": int(depth),
                                            "h": float(h),
                                            "seed": s,
                                            "layer": layer,
                                            "point": p,
                                            "re": float(v.real),
                                            "im": float(v.imag),
                                        }
                                    )
                if block == "hamiltonian":
                    rev_rows += _trained_reversibility(net, Ute, arch_name, problem, seeds)
                log.info(
                    "%s %s h=%g N=%d: test accuracy %.3f, log10 growth %.2f (%.1f s)",
                    arch_name,
                    problem,
                    h,
                    depth,
                    float(acc_te.mean()),
                    float(np.log10(growth).mean()),
                    res.wall_time_s,
                )
    wall = time.perf_counter() - t0
    timings = _timings("stability", arch_name, n_fits, len(seeds), wall, dev)
    return {
        "runs": pd.DataFrame(rows, columns=RUN_COLUMNS),
        "spectra": pd.DataFrame(spec_rows, columns=SPECTRUM_COLUMNS),
        "reversibility": pd.DataFrame(rev_rows, columns=REVERSIBILITY_COLUMNS),
        "timings": timings,
    }


def reconstruction_error(net: ReplicaNet, U: torch.Tensor) -> np.ndarray:
    """Relative error max_points ||x_0 - x_0_reconstructed|| / ||x_0|| of a Verlet net run backwards from its
    final (x_N, z_{N-1/2}), in the net's dtype: (R,)."""
    with torch.no_grad():
        x0, xN, zN = net.verlet_states(U)
        xr, _ = net.verlet_inverse(xN, zN)
        err = (xr - x0).norm(dim=-1) / x0.norm(dim=-1).clamp_min(torch.finfo(x0.dtype).tiny)
    return err.max(dim=1).values.to(torch.float64).cpu().numpy()


def _trained_reversibility(net, U, arch_name, problem, seeds) -> list[dict]:
    rows = []
    for dt in ("float32", "float64"):
        n = copy.deepcopy(net).to(getattr(torch, dt))
        err = reconstruction_error(n, U.to(getattr(torch, dt)))
        for r, s in enumerate(seeds):
            rows.append(
                {
                    "source": "trained",
                    "arch": arch_name,
                    "problem": problem,
                    "depth": net.arch.depth,
                    "h": net.arch.h,
                    "a": float("nan"),
                    "dtype": dt,
                    "seed": s,
                    "rel_error": float(err[r]),
                    "predicted_xi": float("nan"),
                }
            )
    return rows


# ------------------------------------------------------------------------------------------- reversibility
def verlet_xi(a: float) -> float:
    """Largest |xi| of Verlet on the linear system x' = w z, z' = -w x with a = h w / 2: 1 for a^2 <= 1, else
    (|a| + sqrt(a^2 - 1))^2."""
    a = abs(a)
    return 1.0 if a <= 1.0 else (a + math.sqrt(a * a - 1.0)) ** 2


def linear_verlet_roundtrip(a: float, steps: int, dtype: str) -> float:
    """Relative error of (x_0, z_{-1/2}) = (1, 0) reconstructed after ``steps`` Verlet steps forward and the same
    steps backward (the linear Verlet network z -= 2 a x, x += 2 a z with h w = 2 a), in ``dtype`` (numpy); NaN
    when the numbers overflowed."""
    t = np.dtype(dtype).type
    k = t(2.0 * a)
    x, z = t(1.0), t(0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            z = t(z - k * x)
            x = t(x + k * z)
        for _ in range(steps):
            x = t(x - k * z)
            z = t(z + k * x)
    err = math.hypot(float(x) - 1.0, float(z))
    return err if math.isfinite(err) else float("nan")  # NaN: the roundtrip overflowed


def run_reversibility(cell: experiment.Cell) -> dict[str, pd.DataFrame]:
    """Random Hamiltonian (Verlet) networks at every depth of ``depths`` (``cell.study`` is the ``reversibility``
    part with the study's seeds; step h, seeds one batch): input reconstruction error in float32 and float64; the
    linear test at every ``a`` and depth. Tables reversibility, timings."""
    cfg, base_seed = cell.study, cell.base_seed
    dev = cell.prepare().device  # both float32 and float64 run, whatever the cell's dtype
    t0 = time.perf_counter()
    seeds = [int(s) for s in cfg["seeds"]]
    rows = []
    g = torch.Generator().manual_seed(base_seed)
    U = torch.randn(int(cfg["n_points"]), 2, generator=g, dtype=torch.float64).to(dev)
    for depth in cfg["depths"]:
        arch = Arch(
            d_in=2,
            d_out=1,
            width=int(cfg["width"]),
            depth=int(depth),
            T=float(cfg["h"]) * int(depth),
            block="hamiltonian",
            scheme="verlet",
        )
        for dt in ("float32", "float64"):
            tdt = getattr(torch, dt)
            net = ReplicaNet(arch, [1000 * s + base_seed for s in seeds], dtype=tdt).to(dev)
            err = reconstruction_error(net, U.to(tdt))
            rows += [
                {
                    "source": "random",
                    "arch": "hamiltonian",
                    "problem": "",
                    "depth": int(depth),
                    "h": float(cfg["h"]),
                    "a": float("nan"),
                    "dtype": dt,
                    "seed": s,
                    "rel_error": float(err[r]),
                    "predicted_xi": float("nan"),
                }
                for r, s in enumerate(seeds)
            ]
    for a in cfg["linear_a"]:
        for depth in cfg["linear_steps"]:
            for dt in ("float32", "float64"):
                rows.append(
                    {
                        "source": "linear",
                        "arch": "hamiltonian",
                        "problem": "",
                        "depth": int(depth),
                        "h": float("nan"),
                        "a": float(a),
                        "dtype": dt,
                        "seed": -1,
                        "rel_error": linear_verlet_roundtrip(float(a), int(depth), dt),
                        "predicted_xi": verlet_xi(float(a)),
                    }
                )
    wall = time.perf_counter() - t0
    log.info("reversibility: depths %s, %d linear cases, %.1f s", list(cfg["depths"]), len(cfg["linear_a"]), wall)
    timings = _timings("reversibility", "verlet", 0, len(seeds), wall, dev)
    return {"reversibility": pd.DataFrame(rows, columns=REVERSIBILITY_COLUMNS), "timings": timings}


# ----------------------------------------------------------------------------------------------- multilevel
MULTILEVEL_COLUMNS = ["parameterization", "kind", "mode", "seed", "level", "depth", "epoch", "cost", "train_loss"]


def multilevel_depths(cfg: dict) -> list[int]:
    """L0, 2 L0, ..., final depth (must be L0 times a power of two)."""
    d, out = int(cfg["start_depth"]), []
    while d < int(cfg["final_depth"]):
        out.append(d)
        d *= 2
    if d != int(cfg["final_depth"]):
        raise ValueError(
            f"stable_arch.multilevel.final_depth ({cfg['final_depth']}) must be start_depth "
            f"({cfg['start_depth']}) times a power of two"
        )
    return out + [d]


def prolongate(net: ReplicaNet, new_depth: int, interp: str) -> ReplicaNet:
    """The network at ``new_depth`` layers (h = T / new_depth) with the trained weight function: a basis keeps its
    coefficients (W(t) unchanged); the non-parametric ResNet gets its per-layer weights interpolated
    (:func:`nnrds.wp.resample`). Same seeds, dtype and device."""
    a = net.arch
    new = ReplicaNet(Arch(**{**a.to_dict(), "depth": int(new_depth)}), net.seeds, dtype=net.C.dtype).to(net.C.device)
    with torch.no_grad():
        for k in ("A_in", "a_in", "A_out", "a_out"):
            getattr(new, k).copy_(getattr(net, k))
        if a.param == "nonpar":
            P = wp.resample("nonpar", a.depth, new_depth, interp=interp).to(net.C.dtype).to(net.C.device)
            new.C.copy_(torch.einsum("lk,rkij->rlij", P, net.C))
            new.c.copy_(torch.einsum("lk,rki->rli", P, net.c))
        else:
            new.C.copy_(net.C)
            new.c.copy_(net.c)
    return new


def run_multilevel_cell(cell: experiment.Cell) -> dict[str, pd.DataFrame]:
    """Multilevel (L0 -> 2 L0 -> ... -> final) and from-scratch training of one parameterization (``cell["param"]``,
    spec ``cell.parameterization``; ``cell.study`` is the ``multilevel`` part) on the dataset of spec
    ``cell.dataset`` (``multilevel.dataset``); the training loss after every epoch block with its cumulative cost
    (epochs x depth). Tables multilevel, timings."""
    pname, pspec, dspec, cfg, base_seed = cell["param"], cell.parameterization, cell.dataset, cell.study, cell.base_seed
    rt = cell.prepare()
    dev, dtype = rt.device, rt.dtype
    seeds = [int(s) for s in cfg["seeds"]]
    splits = regression.seeded_splits(dspec, seeds, base_seed)
    X = torch.as_tensor(np.stack([s.X_train for s in splits]), dtype=dtype, device=dev)
    Y = torch.as_tensor(np.stack([s.Y_train for s in splits]), dtype=dtype, device=dev)
    depths = multilevel_depths(cfg)
    E, interp = int(cfg["epochs_per_level"]), cfg["interp"]
    arch = Arch(
        d_in=X.shape[-1],
        d_out=Y.shape[-1],
        width=int(cfg["width"]),
        depth=depths[0],
        param=pspec["kind"],
        degree=int(pspec.get("degree", 0)),
        T=float(cfg["T"]),
    )
    rows: list[dict] = []
    where = current().at(labels=[f"seed {s}" for s in seeds])
    t0 = time.perf_counter()

    def record(net, mode, level, epoch, cost):
        with torch.no_grad():
            loss = (net(X) - Y).pow(2).mean(dim=(1, 2)).cpu().numpy()
        rows.extend(
            {
                "parameterization": pname,
                "kind": arch.param,
                "mode": mode,
                "seed": s,
                "level": level,
                "depth": net.arch.depth,
                "epoch": epoch,
                "cost": cost,
                "train_loss": float(loss[r]),
            }
            for r, s in enumerate(seeds)
        )

    def train(net, mode, level, epochs, cost0):
        log_every = max(1, epochs // int(cfg["records_per_level"]))
        d = net.arch.depth

        def cb(epoch, n):
            if epoch > 0:
                record(n, mode, level, epoch, cost0 + epoch * d)

        fit(
            net,
            X,
            Y,
            epochs=epochs,
            lr=float(cfg["lr"]),
            seed=base_seed,
            where=where,
            log_every=log_every,
            callback=cb,
            progress_lines=1,
        )
        return cost0 + epochs * d

    net = ReplicaNet(arch, [1000 * s + base_seed for s in seeds], dtype=dtype).to(dev)
    record(net, "multilevel", 0, 0, 0)
    cost = 0
    for level, d in enumerate(depths):
        if level > 0:
            net = prolongate(net, d, interp)
            record(net, "multilevel", level, 0, cost)  # the loss just after the prolongation
        cost = train(net, "multilevel", level, E, cost)
    ml_cost = cost
    scratch_epochs = int(math.ceil(ml_cost / depths[-1]))
    net = ReplicaNet(Arch(**{**arch.to_dict(), "depth": depths[-1]}), net.seeds, dtype=dtype).to(dev)
    record(net, "scratch", 0, 0, 0)
    train(net, "scratch", 0, scratch_epochs, 0)
    wall = time.perf_counter() - t0
    log.info(
        "multilevel %s: depths %s, cost %d; scratch %d epochs; %.1f s", pname, depths, ml_cost, scratch_epochs, wall
    )
    timings = _timings("multilevel", pname, len(depths) + 1, len(seeds), wall, dev)
    return {"multilevel": pd.DataFrame(rows, columns=MULTILEVEL_COLUMNS), "timings": timings}


# ------------------------------------------------------------------------------------------------ summaries
SUMMARY_COLUMNS = "arch problem depth h T n_seeds test_accuracy log10_growth max_abs_hlambda max_amplification".split()


def run_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of every architecture x problem x step x depth."""
    keys = ["arch", "problem", "depth", "h", "T"]
    g = runs.groupby(keys, sort=True)
    df = g[["test_accuracy", "log10_growth", "max_abs_hlambda", "max_amplification"]].mean().reset_index()
    df.insert(5, "n_seeds", g.size().to_numpy())
    return df[SUMMARY_COLUMNS]


def multilevel_summary(ml: pd.DataFrame) -> pd.DataFrame:
    """Per parameterization and seed: final losses of both modes at their (equal) costs, the loss just before
    and after each prolongation, and the cost at which multilevel first reaches the scratch final loss."""
    out = []
    for (p, s), g in ml.groupby(["parameterization", "seed"], sort=True):
        m, sc = g[g["mode"] == "multilevel"], g[g["mode"] == "scratch"]
        m_end, s_end = m.iloc[-1], sc.iloc[-1]
        reach = m[(m["epoch"] > 0) & (m["train_loss"] <= s_end["train_loss"])]
        jumps = []
        for lev in sorted(m["level"].unique())[1:]:
            before = m[m["level"] == lev - 1].iloc[-1]["train_loss"]
            after = m[(m["level"] == lev) & (m["epoch"] == 0)].iloc[0]["train_loss"]
            jumps.append(math.log10(after / before))
        out.append(
            {
                "parameterization": p,
                "kind": m_end["kind"],
                "seed": s,
                "final_depth": int(m_end["depth"]),
                "multilevel_cost": int(m_end["cost"]),
                "scratch_cost": int(s_end["cost"]),
                "multilevel_loss": float(m_end["train_loss"]),
                "scratch_loss": float(s_end["train_loss"]),
                "cost_to_scratch_loss": float(reach["cost"].iloc[0]) if len(reach) else float("nan"),
                "max_log10_jump": float(max(jumps)) if jumps else float("nan"),
                "mean_log10_jump": float(np.mean(jumps)) if jumps else float("nan"),
            }
        )
    return pd.DataFrame(out)


def seed_growth(runs: pd.DataFrame, arch: str, h: float, depth: int) -> np.ndarray:
    """log10 perturbation growth of ``arch`` at step h and depth, per seed (mean over problems), in seed order."""
    d = runs[(runs["arch"] == arch) & (runs["h"] == h) & (runs["depth"] == depth)]
    return d.groupby("seed")["log10_growth"].mean().sort_index().to_numpy()


def claims(runs: pd.DataFrame, rev: pd.DataFrame, ml_sum: pd.DataFrame, study: dict, extra_specs=()) -> pd.DataFrame:
    """The study's claims (module docstring); ``extra_specs``: claim specs of other parts of the study (same
    family: Holm over all of them)."""
    cfg = {**CLAIM_DEFAULTS, **(study.get("claims") or {})}
    mg = float(cfg["margin_growth"])
    st = part_config(study, "stability")
    N, N0 = max(st["depths"]), min(st["depths"])
    run_desc = (
        f"{len(st['seeds'])} seeds x problems {', '.join(st['problems'])}; width {st['width']}, {st['epochs']} Adam "
        f"epochs, cross-entropy; depths {list(st['depths'])}"
    )
    specs = []
    for h in sorted(st["steps"]):
        at = f"N = {N}, h = {h:g} (T = {N * h:g})"
        base = {"study": STUDY, "unit": "seed", "figure": FIGURES["growth"]}
        if "antisym_euler" in st["archs"]:
            x = seed_growth(runs, "antisym_euler", h, N) - seed_growth(runs, "antisym_euler", h, N0)
            specs.append(
                {
                    **base,
                    "claim_id": f"antisym_euler_unstable:h{h:g}",
                    "claim": f"forward-Euler antisymmetric nets amplify perturbations more as depth grows ({N0} -> {N} "
                    f"layers, h = {h:g})",
                    "what_was_run": f"antisym_euler at h = {h:g}; {run_desc}",
                    "effect_name": f"mean log10 growth at N = {N} minus at N = {N0} (per seed: mean over problems)",
                    "x": x,
                    "kind": "superiority",
                    "margin": 0.0,
                }
            )
        for arch, cid in (("antisym_leapfrog", "antisym_leapfrog_stable"), ("hamiltonian", "hamiltonian_stable")):
            if arch in st["archs"]:
                specs.append(
                    {
                        **base,
                        "claim_id": f"{cid}:h{h:g}",
                        "claim": f"{arch} nets keep the perturbation growth below a factor {10**mg:.3g} at {at}",
                        "what_was_run": f"{arch} at h = {h:g}; {run_desc}",
                        "effect_name": f"mean log10 growth at N = {N} (per seed: mean over problems)",
                        "x": seed_growth(runs, arch, h, N),
                        "kind": "non_superiority",
                        "margin": mg,
                    }
                )
    tr = rev[(rev["source"] == "trained") & (rev["dtype"] == "float64")]
    if len(tr):
        d = tr[tr["depth"] == tr["depth"].max()]
        per_seed = d.groupby("seed")["rel_error"].max().sort_index()
        tol = float(cfg["reversible_tol"])
        specs.append(
            {
                "study": STUDY,
                "unit": "seed",
                "figure": FIGURES["reversibility"],
                "claim_id": "verlet_reversible",
                "claim": f"trained Verlet nets reconstruct their input to below {tol:.0e} (float64) at depth "
                f"{int(d['depth'].max())}",
                "what_was_run": f"Hamiltonian nets of the stability sweep, every problem and step; {run_desc}",
                "effect_name": "mean log10(tolerance / max relative reconstruction error)",
                "x": np.log10(tol / per_seed.to_numpy()),
                "kind": "superiority",
                "margin": 0.0,
            }
        )
    if len(ml_sum):
        mlc = part_config(study, "multilevel")
        for p, g in ml_sum.groupby("parameterization", sort=True):
            g = g.sort_values("seed")
            specs.append(
                {
                    "study": STUDY,
                    "unit": "seed",
                    "figure": FIGURES["multilevel"],
                    "claim_id": f"multilevel_cheaper:{p}",
                    "claim": f"multilevel training ({p}) ends at a lower training loss than training the final "
                    "depth from scratch at equal cost",
                    "what_was_run": f"{mlc['dataset']}: depths {multilevel_depths(mlc)}, "
                    f"{mlc['epochs_per_level']} epochs per level vs from scratch, "
                    f"{len(g)} seeds",
                    "effect_name": "mean log10(scratch loss / multilevel loss)",
                    "x": np.log10(g["scratch_loss"].to_numpy() / g["multilevel_loss"].to_numpy()),
                    "kind": "superiority",
                    "margin": 0.0,
                }
            )
    return verdict_table(specs + list(extra_specs), float(cfg["alpha"]))


def summarize(runs, rev, ml, study: dict, extra_specs=()) -> dict[str, pd.DataFrame]:
    ml_sum = multilevel_summary(ml)
    return {
        "summary": run_summary(runs),
        "multilevel_summary": ml_sum,
        "claims": claims(runs, rev, ml_sum, study, extra_specs),
    }


def _num(x: float, fmt: str = ".2g") -> str:
    return "n/a" if not np.isfinite(x) else format(x, fmt)


def caption(tables: dict[str, pd.DataFrame], scale: str, study: dict) -> str:
    st = part_config(study, "stability")
    cl = tables["claims"]
    lines = [
        f"Stable architectures ({scale} scale): plain ResNet, antisymmetric ResNet with forward Euler and with "
        "the two-step leapfrog rule, and the Hamiltonian network with Verlet, trained on "
        f"{', '.join(st['problems'])} (seeded 2-D problems) at depths {list(st['depths'])} and steps "
        f"{list(st['steps'])} (T = depth x h), {len(st['seeds'])} seeds. Perturbation growth is "
        "||x_N(x_0 + eps v) - x_N(x_0)|| / eps of the hidden state (median over test points); eigenvalues are "
        "those of each layer's vector-field Jacobian times h.",
        "",
    ]
    for part_caption in EXTRA_CAPTIONS:
        lines += part_caption(tables, study)
    lines += ["Claims (seed = unit; Holm over the study's claims):", ""]
    for _, r in cl.iterrows():
        lines.append(
            f"* ``{r['claim_id']}``: **{r['verdict']}** -- {r['effect_name']} {_num(r['effect'])} "
            f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]"
        )
    rev = tables["reversibility"]
    rnd = rev[rev["source"] == "random"]
    if len(rnd):
        worst = rnd.groupby(["dtype", "depth"])["rel_error"].max()
        deep = int(rnd["depth"].max())
        lines += [
            "",
            f"Reversibility: random Verlet nets (h = {rnd['h'].iloc[0]:g}) run backwards reconstruct their input to a "
            f"relative error of {_num(worst.get(('float64', deep), np.nan))} (float64) and "
            f"{_num(worst.get(('float32', deep), np.nan))} (float32) at depth {deep}. The linear test (a = h w / 2) "
            "is algebraically invertible for every a, but for a > 1 its amplification max abs(xi) = (a + sqrt(a^2 - 1))^2 "
            "exceeds 1 and the roundtrip error grows like eps abs(xi)^(2N).",
        ]
    ms = tables.get("multilevel_summary")
    if ms is not None and len(ms):
        mlc = part_config(study, "multilevel")
        g = ms.groupby("parameterization")
        jumps = ", ".join(
            f"{p} {_num(v['mean_log10_jump'].mean())} (max {_num(v['max_log10_jump'].max())})" for p, v in g
        )
        reach = ", ".join(f"{p} {_num(v['cost_to_scratch_loss'].median(), '.0f')}" for p, v in g)
        lines += [
            "",
            f"Multilevel on {mlc['dataset']} (depths {multilevel_depths(mlc)}, {mlc['epochs_per_level']} epochs per "
            f"level; cost = epochs x depth, about {int(ms['multilevel_cost'].iloc[0])} for both modes): log10 rise of "
            f"the training loss just after a prolongation, mean over prolongations and seeds: {jumps} (nonpar weights "
            f"interpolated {mlc['interp']}; a weight parameterization keeps W(t) exactly but h changes, so the output "
            "changes by the discretization error). Median cost at which multilevel first reaches the from-scratch "
            f"final loss: {reach}.",
        ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------- orthogonal bases
# Weight bases (issue 15, "Orthogonal weight bases"): the same WP-ResNet with W(t), b(t) in the monomial, shifted
# Legendre or shifted Chebyshev basis of one degree (nnrds.wp), swept over degree x T, on the study's regression
# dataset (MSE) and its 2-D classification problems (cross-entropy). One job per problem; every basis x degree x T
# is one fit of all seeds as a replica batch (the cells differ in basis matrix and step h, so they cannot share one).
BASES_RUN_COLUMNS = [
    "problem",
    "loss",
    "basis",
    "degree",
    "T",
    "depth",
    "width",
    "n_params",
    "seed",
    "gram_cond",
    "train_loss",
    "test_loss",
    "train_error",
    "test_error",
]
BASES_CURVE_COLUMNS = ["problem", "basis", "degree", "T", "seed", "epoch", "train_loss"]
BASES_GRAM_COLUMNS = ["basis", "degree", "depth", "grid", "cond"]
#: defaults of ``stable_arch.bases.claims`` (the schema holds the same): smallest effects of interest
BASES_CLAIM_DEFAULTS = {"margin_rho": 0.1, "margin_log10": 0.0414}  # log10(1.1): a 10 % lower training loss


def _bases_data(problem: str, dspec: dict | None, cfg: dict, seeds: list[int], base_seed: int, rt):
    """(train X, train Y, test X, test Y, d_in, d_out, loss function, loss name, error function): the regression
    dataset (``dspec``: standardized, MSE; error = test MSE) or a 2-D problem (cross-entropy; error = 1 -
    accuracy)."""
    if dspec is not None:
        d = experiment.regression_data(dspec, seeds, base_seed, rt)
        return d.X_train, d.Y_train, d.X_test, d.Y_test, d.d_in, d.d_out, mse_per_replica, "mse", _mse
    Utr, Ytr, Ute, Yte = _problem_tensors(problem, cfg, seeds, base_seed, rt.dtype, rt.device)
    return Utr, Ytr, Ute, Yte, 2, toy2d.CLASSES[problem], cross_entropy_per_replica, "cross_entropy", _error_rate


def _mse(net: ReplicaNet, X: torch.Tensor, Y: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return mse_per_replica(net, X, Y).cpu().double().numpy()


def _error_rate(net: ReplicaNet, U: torch.Tensor, Y: torch.Tensor) -> np.ndarray:
    return 1.0 - _accuracy(net, U, Y)


def run_bases_cell(cell: experiment.Cell) -> dict[str, pd.DataFrame]:
    """Train every basis x degree x T of ``cell.study`` (``stable_arch.bases`` with the study's seeds) on one
    problem ``cell["problem"]`` (the regression dataset ``bases.dataset``, spec ``cell.dataset``, or a 2-D problem
    of :mod:`nnrds.data.toy2d`). Tables: bases_runs (final train/test loss and error, Gram condition number on the
    layer grid), bases_curves (training loss every epochs/curve_points epochs), timings."""
    problem, cfg, base_seed = cell["problem"], cell.study, cell.base_seed
    dspec = cell.dataset if problem == cfg["dataset"] else None  # else a 2-D problem (nnrds.data.toy2d)
    rt = cell.prepare()
    seeds = [int(s) for s in cfg["seeds"]]
    Xtr, Ytr, Xte, Yte, d_in, d_out, loss_fn, loss_name, err_fn = _bases_data(problem, dspec, cfg, seeds, base_seed, rt)
    depth, width, epochs = int(cfg["depth"]), int(cfg["width"]), int(cfg["epochs"])
    opts = {
        "epochs": epochs,
        "lr": float(cfg["lr"]),
        "seed": base_seed,
        "log_every": max(1, epochs // int(cfg["curve_points"])),
    }
    rows, curves = [], []
    t0 = time.perf_counter()
    grid = [(int(d), float(T), b) for d in cfg["degrees"] for T in cfg["Ts"] for b in cfg["bases"]]
    log.info(
        "%s bases %s: %d fits (basis x degree x T) of %d seeds, depth %d", STUDY, problem, len(grid), len(seeds), depth
    )
    for i, (degree, T, basis) in enumerate(grid):
        arch = Arch(d_in, d_out, width, depth, basis, degree, T)
        net = experiment.replica_net(arch, seeds, base_seed, rt)
        where = current().at(labels=[f"{basis} degree {degree} T {T:g} seed {s}" for s in seeds])
        res = fit(net, Xtr, Ytr, loss_fn=loss_fn, where=where, progress_lines=0, **opts)
        head = {"problem": problem, "basis": basis, "degree": degree, "T": T}
        curves += [
            {**head, "seed": seeds[h["replica"]], "epoch": h["epoch"], "train_loss": h["train_loss"]}
            for h in res.history
        ]
        with torch.no_grad():
            losses = [loss_fn(net, X, Y).cpu().double().numpy() for X, Y in ((Xtr, Ytr), (Xte, Yte))]
        errs = [err_fn(net, X, Y) for X, Y in ((Xtr, Ytr), (Xte, Yte))]
        check_finite(
            torch.as_tensor(np.stack(losses + errs)), where=where, step="final evaluation", what="loss", batch_dim=1
        )
        cond = wp.gram_condition(basis, depth, degree, T)
        for r, s in enumerate(seeds):
            rows.append(
                {
                    **head,
                    "loss": loss_name,
                    "depth": depth,
                    "width": width,
                    "n_params": arch.n_params(),
                    "seed": s,
                    "gram_cond": cond,
                    "train_loss": float(losses[0][r]),
                    "test_loss": float(losses[1][r]),
                    "train_error": float(errs[0][r]),
                    "test_error": float(errs[1][r]),
                }
            )
        if (i + 1) % max(1, len(grid) // 9) == 0 or i + 1 == len(grid):
            log.info("%s bases %s: %d/%d fits, %.1f s", STUDY, problem, i + 1, len(grid), time.perf_counter() - t0)
    timings = pd.DataFrame(
        [
            {
                "part": "bases",
                "cell": problem,
                "fits": len(grid),
                "replicas_in_batch": len(seeds),
                "wall_time_s": time.perf_counter() - t0,
                "device": str(rt.device),
            }
        ]
    )
    return {
        "bases_runs": pd.DataFrame(rows, columns=BASES_RUN_COLUMNS),
        "bases_curves": pd.DataFrame(curves, columns=BASES_CURVE_COLUMNS),
        "timings": timings,
    }


def bases_gram(cfg: dict) -> pd.DataFrame:
    """Condition number of every basis's Gram matrix for degrees 0..max(degrees): on the study's layer grid
    (depth L; :func:`nnrds.wp.gram_condition`, independent of T) and under the continuous inner product on [0, T]
    (the limit L -> infinity, :func:`nnrds.wp.gram_continuous`)."""
    depth = int(cfg["depth"])
    rows = []
    for basis in cfg["bases"]:
        for d in range(max(cfg["degrees"]) + 1):
            rows.append(
                {
                    "basis": basis,
                    "degree": d,
                    "depth": depth,
                    "grid": "layers",
                    "cond": wp.gram_condition(basis, depth, d),
                }
            )
            rows.append(
                {
                    "basis": basis,
                    "degree": d,
                    "depth": depth,
                    "grid": "continuous",
                    "cond": float(np.linalg.cond(wp.gram_continuous(basis, d))),
                }
            )
    return pd.DataFrame(rows, columns=BASES_GRAM_COLUMNS)


def bases_seed_effects(runs: pd.DataFrame) -> pd.DataFrame:
    """Per problem, orthogonal basis and seed: the mean over degree x T of log10(train loss monomial / train loss
    basis) (paired: same seed, degree and T, hence the same initial network), and the Spearman rho of every basis's
    log final training loss with degree x T across its cells."""
    rows = []
    for (problem, seed), g in runs.groupby(["problem", "seed"], sort=True):
        key = ["degree", "T"]
        mono = g[g["basis"] == "monomial"].set_index(key)["train_loss"]
        for basis, gb in g.groupby("basis", sort=True):
            gb = gb.sort_values(key)
            rho = stats.spearmanr(gb["degree"] * gb["T"], np.log10(gb["train_loss"])).statistic
            ratio = np.log10(mono.loc[list(zip(gb["degree"], gb["T"]))].to_numpy() / gb["train_loss"].to_numpy())
            rows.append(
                {
                    "problem": problem,
                    "basis": basis,
                    "seed": seed,
                    "rho_loss_vs_degree_T": float(rho),
                    "mean_log10_mono_over_basis": float(ratio.mean()) if len(mono) else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def bases_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of every problem x basis x degree x T (losses, errors, the Gram condition number)."""
    keys = ["problem", "loss", "basis", "degree", "T"]
    cols = ["gram_cond", "train_loss", "test_loss", "train_error", "test_error"]
    g = runs.groupby(keys, sort=True)
    df = g[cols].mean().reset_index()
    df.insert(len(keys), "n_seeds", g.size().to_numpy())
    return df


def bases_claim_specs(effects: pd.DataFrame, study: dict) -> list[dict]:
    """Claim specs (:func:`nnrds.verdicts.verdict_table`), per problem: ``monomial_deteriorates``
    -- the monomial ResNet's final training loss grows with degree x T (mean over seeds of the within-seed Spearman
    rho; superiority with margin ``margin_rho``); ``orthogonal_helps:<basis>`` -- the orthogonal basis trains to a
    lower loss than the monomial one (mean over seeds of the mean log10 loss ratio over degree x T; superiority with
    margin ``margin_log10``)."""
    cfg = part_config(study, "bases")
    margins = {**BASES_CLAIM_DEFAULTS, **(cfg.get("claims") or {})}
    run = (
        f"{len(cfg['seeds'])} seeds x bases {list(cfg['bases'])} x degrees {list(cfg['degrees'])} x T "
        f"{list(cfg['Ts'])}; WP-ResNet depth {cfg['depth']}, width {cfg['width']}, {cfg['epochs']} Adam epochs "
        f"(lr {cfg['lr']:g})"
    )
    base = {
        "study": STUDY,
        "unit": "seed (data draw + initialization, shared by every basis)",
        "figure": FIGURES["bases_heatmap"],
        "kind": "superiority",
    }
    specs = []
    for problem, g in effects.groupby("problem", sort=True):
        mono = g[g["basis"] == "monomial"].sort_values("seed")
        if len(mono):
            specs.append(
                {
                    **base,
                    "claim_id": f"monomial_deteriorates:{problem}",
                    "claim": f"with a monomial weight basis, training deteriorates as T and the degree grow "
                    f"({problem}: final training loss rises with degree x T)",
                    "what_was_run": f"{problem}: {run}",
                    "effect_name": "mean over seeds of Spearman rho(log final training loss, degree x T), monomial",
                    "x": mono["rho_loss_vs_degree_T"].to_numpy(),
                    "margin": float(margins["margin_rho"]),
                }
            )
        for basis in [b for b in cfg["bases"] if b != "monomial"]:
            gb = g[g["basis"] == basis].sort_values("seed")
            if len(gb) and len(mono):
                specs.append(
                    {
                        **base,
                        "claim_id": f"orthogonal_helps:{problem}:{basis}",
                        "claim": f"an orthogonal weight basis ({basis}) trains to a lower loss than the "
                        f"monomial basis of the same degree and T ({problem})",
                        "what_was_run": f"{problem}: {run}; paired per seed, degree and T",
                        "effect_name": f"mean over seeds of the mean over degree x T of log10(final training "
                        f"loss monomial / {basis})",
                        "x": gb["mean_log10_mono_over_basis"].to_numpy(),
                        "margin": float(margins["margin_log10"]),
                    }
                )
    return specs


def bases_part(read, study: dict) -> tuple[dict[str, pd.DataFrame], list[dict]]:
    """The summary piece of the bases step (:data:`EXTRA_PARTS`): its tables and claim specs (none when the step
    did not run)."""
    runs = read("bases_runs")
    if runs is None or "bases" not in study or not study["bases"].get("enabled", True):
        return {}, []
    runs = runs.sort_values(["problem", "basis", "degree", "T", "seed"], kind="stable").reset_index(drop=True)
    curves = read("bases_curves").sort_values(["problem", "basis", "degree", "T", "seed", "epoch"], kind="stable")
    effects = bases_seed_effects(runs)
    tables = {
        "bases_runs": runs,
        "bases_curves": curves.reset_index(drop=True),
        "bases_summary": bases_summary(runs),
        "bases_effects": effects,
        "bases_gram": bases_gram(part_config(study, "bases")),
    }
    return tables, bases_claim_specs(effects, study)


def bases_caption(tables: dict[str, pd.DataFrame], study: dict) -> list[str]:
    """The caption paragraph of the bases step (:data:`EXTRA_CAPTIONS`); empty when it did not run."""
    if "bases_runs" not in tables:
        return []
    cfg = part_config(study, "bases")
    gram, eff = tables["bases_gram"], tables["bases_effects"]
    dmax = max(cfg["degrees"])
    top = gram[(gram["grid"] == "layers") & (gram["degree"] == dmax)].set_index("basis")["cond"]
    conds = ", ".join(f"{b} {_num(top[b])}" for b in cfg["bases"])
    trend = eff.groupby(["problem", "basis"], sort=True)["rho_loss_vs_degree_T"].mean()
    trends = "; ".join(
        f"{p}: " + ", ".join(f"{b} {_num(trend[(p, b)])}" for b in cfg["bases"] if (p, b) in trend)
        for p in trend.index.get_level_values(0).unique()
    )
    problems = [cfg["dataset"], *cfg["problems"]]
    return [
        f"Weight bases: WP-ResNets (depth {cfg['depth']}, width {cfg['width']}) whose W(t), b(t) are polynomials "
        f"of degree {list(cfg['degrees'])} in the monomial basis (t/T)^k, the shifted Legendre or the shifted "
        f"Chebyshev basis on [0, T], for T in {list(cfg['Ts'])}, trained with Adam ({cfg['epochs']} epochs, lr "
        f"{cfg['lr']:g}) on {', '.join(problems)} (MSE on the regression set, cross-entropy on the 2-D problems; "
        f"error = test MSE or test error rate), {len(cfg['seeds'])} seeds. The three bases of one degree span the "
        "same functions and the project's initialization depends only on the span, so for a given seed they start "
        "from the same network: every difference is the optimization geometry (Adam on differently conditioned "
        "coefficients), not the model class. Because the monomial basis is scaled to t/T, its Gram matrix on the "
        "layer grid does not depend on T: T enters every basis alike, through the step h = T/L. Condition number "
        f"of the layer-grid Gram matrix at degree {dmax}: {conds}. Mean over seeds of the rank correlation of the "
        f"final training loss with degree x T, per basis ({trends}): a positive value for the orthogonal bases "
        "too means the deterioration is not the monomial basis's alone.",
        "",
    ]


EXTRA_PARTS.append(bases_part)
EXTRA_CAPTIONS.append(bases_caption)
