"""Measurements for the planned study ``layer_parallel`` until its workflow (rules, config sections, schema,
notebook, ledger rows) is built: layer-parallel training of ResNets with MGRIT (Günther, Ruthotto, Schroder, Cyr & Gauger, SIAM J. Math. Data Sci.
2020); engine :mod:`nnrds.mgrit` (PyMGRIT).

Claims and the tables that test them:

1. MGRIT converges in a few iterations, independently of depth, for ResNets whose weights are a smooth function of
   t (const, Legendre), and more slowly for independent layers (nonpar): :func:`residual_table`, residual per
   iteration per parameterization x depth x coarsening factor at initialization.
2. The MGRIT forward states and adjoint gradient agree with serial propagation to the tolerance they run at:
   tests/unit/test_layer_parallel.py (known answers), and :func:`gradient_table` (gradient error vs iterations).
3. A few inexact MGRIT iterations (k = 1, 2, 3) per optimization step train as well as exact serial propagation:
   :func:`training_table`, final training and test error per seed and arm, paired by seed (:func:`paired_errors`).
4. Wall time with 1 and 2 ranks, and the step-counted work model (:func:`nnrds.mgrit.speedup_table`) that predicts
   the speedup at more ranks, checked against the 2-rank measurement: :func:`timing_rows` (run under mpiexec).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from mpi4py import MPI

from nnrds import mgrit, verdicts
from nnrds.data import toy2d
from nnrds.models import Arch, ReplicaNet

PARAMS = {"const": ("const", 0), "legendre3": ("legendre", 3), "nonpar": ("nonpar", 0)}


def _arch(param: str, depth: int, width: int, T: float, d_in: int = 2, d_out: int = 1) -> Arch:
    kind, degree = PARAMS[param]
    return Arch(d_in=d_in, d_out=d_out, width=width, depth=depth, param=kind, degree=degree, T=T)


def _inputs(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def smooth_net(param: str, depth: int, study: dict, seed: int) -> ReplicaNet:
    """A net of ``param`` (seed ``seed``) as initialized (:class:`ReplicaNet`), except that a polynomial basis gets
    random higher coefficients N(0, 1/width) too: its initialization is the constant function, and the claim is
    about smooth but non-constant W(t)."""
    net = ReplicaNet(_arch(param, depth, study["width"], study["T"]), [seed], dtype=torch.float64)
    if PARAMS[param][1] > 0:
        g = torch.Generator().manual_seed(seed + 7919)
        with torch.no_grad():
            C = net.C[:, 1:]
            C.copy_(torch.randn(C.shape, generator=g, dtype=C.dtype) / study["width"] ** 0.5)
    return net


def residual_table(study: dict, seed: int = 0) -> pd.DataFrame:
    """Rows {param, depth, cf, levels, iteration, residual, factor}: MGRIT on the forward pass of a net of
    :func:`smooth_net` on ``study["samples"]`` random inputs, ``study["iterations"]`` V-cycles."""
    u = _inputs(study["samples"], seed)
    rows = []
    for param in study["parameterizations"]:
        for depth in study["depths"]:
            for cf in study["coarsening"]:
                net = smooth_net(param, depth, study, seed)
                out = mgrit.solve(
                    mgrit.ForwardNet(net, u), cf=cf, max_levels=study["max_levels"], iters=study["iterations"]
                )
                r = out["residuals"]
                fac = np.concatenate([[np.nan], mgrit.convergence_factors(r)])
                for k, (res, f) in enumerate(zip(r, fac), start=1):
                    rows.append(
                        {"param": param, "depth": depth, "cf": cf, "levels": out["levels"], "iteration": k}
                        | {"residual": res, "factor": f}
                    )
    return pd.DataFrame(rows)


def mean_factor(res: pd.DataFrame) -> pd.DataFrame:
    """Geometric-mean convergence factor per param x depth x cf (factors before the residual reaches rounding)."""
    ok = res.dropna(subset=["factor"])
    ok = ok[ok.factor > 0]
    g = ok.groupby(["param", "depth", "cf", "levels"]).factor.apply(lambda f: float(np.exp(np.log(f).mean())))
    return g.rename("mean_factor").reset_index()


def toy_data(study: dict, seed: int):
    """The study's toy2d classification split: (u_train, y_train, u_test, y_test), labels int64."""
    name = study["toy2d"]["problem"]
    u, y = toy2d.make(name, study["toy2d"]["n_train"] + study["toy2d"]["n_test"], seed)
    n = study["toy2d"]["n_train"]
    u, y = torch.as_tensor(u), torch.as_tensor(y)
    return u[:n], y[:n], u[n:], y[n:]


def _ce(y: torch.Tensor):
    return lambda out: torch.nn.functional.cross_entropy(out[0], y)


def _error(net: ReplicaNet, u: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(u)[0].argmax(1) != y).double().mean())


def train(study: dict, seed: int, arm: str, data) -> list[dict]:
    """Train one net (seed ``seed``) with Adam on the toy2d set; ``arm`` = "serial" (autograd through serial
    propagation) or "k<iters>" (forward and adjoint each by k MGRIT iterations from a zero guess). Rows {seed, arm,
    epoch, train_error, test_error, loss}."""
    u, y, ut, yt = data
    tc = study["training"]
    arch = _arch(tc["param"], tc["depth"], study["width"], study["T"], d_out=int(y.max()) + 1)
    net = ReplicaNet(arch, [seed], dtype=torch.float64)
    opt = torch.optim.Adam(net.parameters(), lr=tc["lr"])
    loss = _ce(y)
    rows = []
    for epoch in range(1, tc["epochs"] + 1):
        opt.zero_grad()
        if arm == "serial":
            value = loss(net(u))
            value.backward()
        else:
            value = mgrit.propagate(net, u, loss, cf=tc["cf"], max_levels=study["max_levels"], iters=int(arm[1:]))[
                "loss"
            ]
        opt.step()
        if epoch % tc["record_every"] == 0 or epoch == tc["epochs"]:
            rows.append(
                {"seed": seed, "arm": arm, "epoch": epoch, "loss": float(value.detach())}
                | {"train_error": _error(net, u, y), "test_error": _error(net, ut, yt)}
            )
    return rows


def training_table(study: dict) -> pd.DataFrame:
    rows = []
    for seed in study["training"]["seeds"]:
        data = toy_data(study, seed)
        for arm in ["serial"] + [f"k{k}" for k in study["training"]["iterations"]]:
            rows += train(study, seed, arm, data)
    return pd.DataFrame(rows)


def paired_errors(train_tab: pd.DataFrame) -> pd.DataFrame:
    """Final-epoch test and training error of each MGRIT arm minus the serial arm's, per seed."""
    last = train_tab[train_tab.epoch == train_tab.epoch.max()].set_index(["seed", "arm"])
    rows = []
    for (seed, arm), r in last.iterrows():
        if arm == "serial":
            continue
        s = last.loc[(seed, "serial")]
        rows.append(
            {"seed": seed, "arm": arm, "d_test_error": r.test_error - s.test_error}
            | {"d_train_error": r.train_error - s.train_error}
        )
    return pd.DataFrame(rows)


def timing_rows(study: dict, comm: MPI.Comm = MPI.COMM_WORLD) -> list[dict]:
    """Wall time of forward + adjoint propagation on ``comm``'s ranks (call under mpiexec -n 1 / -n 2): serial
    (autograd, rank 0 alone), and MGRIT at ``timing.iterations`` iterations per solve; per-level step counts for the
    work model. Rows (rank 0 only) {ranks, depth, cf, levels, kind, seconds, steps_level<l>...}."""
    tc = study["timing"]
    u = _inputs(tc["samples"], 0)
    y = torch.zeros(tc["samples"], 1, dtype=torch.float64)
    loss = lambda out: ((out - y) ** 2).mean()
    rows = []
    for depth in tc["depths"]:
        net = ReplicaNet(_arch(tc["param"], depth, study["width"], study["T"]), [0], dtype=torch.float64)
        reps = tc["repeats"] + 1  # the first of each is a warm-up, not counted
        serial = []
        for _ in range(reps):
            t0 = time.perf_counter()
            net.zero_grad()
            loss(net(u)).backward()
            serial.append(time.perf_counter() - t0)
        mg, out = [], None
        for _ in range(reps):
            comm.barrier()
            t0 = time.perf_counter()
            net.zero_grad()
            out = mgrit.propagate(net, u, loss, cf=tc["cf"], max_levels=study["max_levels"], iters=tc["iterations"])
            comm.barrier()
            mg.append(time.perf_counter() - t0)
        steps = [a + b for a, b in zip(out["forward"]["steps"], out["adjoint"]["steps"])]
        head = {"ranks": comm.Get_size(), "depth": depth, "cf": tc["cf"], "levels": out["forward"]["levels"]}
        head |= {"iterations": tc["iterations"], "steps": " ".join(str(s) for s in steps)}
        head |= {"t_comm": message_latency(out["forward"]["states"][0], comm)}
        rows.append(head | {"kind": "serial", "seconds": float(np.median(serial[1:]))})
        rows.append(head | {"kind": "mgrit", "seconds": float(np.median(mg[1:]))})
    return rows if comm.Get_rank() == 0 else []


def message_latency(x: torch.Tensor, comm: MPI.Comm, repeats: int = 20) -> float:
    """Seconds of one point-to-point message of a state ``x`` between ranks 0 and 1 (half a ping-pong; 0 on one
    rank), the t_comm of the work model."""
    if comm.Get_size() < 2:
        return 0.0
    comm.barrier()
    t0 = time.perf_counter()
    for _ in range(repeats):
        if comm.Get_rank() == 0:
            comm.send(x, dest=1)
            comm.recv(source=1)
        elif comm.Get_rank() == 1:
            comm.recv(source=0)
            comm.send(x, dest=0)
    return comm.bcast((time.perf_counter() - t0) / (2 * repeats), root=0)


def predicted_speedup(timing: pd.DataFrame, ranks: list[int]) -> pd.DataFrame:
    """Work-model speedup at each rank count, calibrated on the 1-rank MGRIT time (seconds per layer step: its
    time / its counted steps) and the 2-rank message latency; rows {depth, ranks, t_pred, speedup_vs_mgrit1,
    speedup_vs_serial, t_measured (NaN where not run)}."""
    two = timing[timing.ranks == 2]
    t_comm = float(two.t_comm.max()) if len(two) else 0.0
    one = timing[(timing.ranks == 1) & (timing.kind == "mgrit")]
    rows = []
    for _, r in one.iterrows():
        steps = [float(s) for s in r.steps.split()]
        t_step = r.seconds / sum(steps)
        serial = timing[(timing.ranks == 1) & (timing.kind == "serial") & (timing.depth == r.depth)].seconds.iloc[0]
        for p in ranks:
            t = mgrit.work_model(steps, p, t_step, t_comm, int(r.iterations))
            meas = timing[(timing.ranks == p) & (timing.kind == "mgrit") & (timing.depth == r.depth)].seconds
            rows.append(
                {"depth": r.depth, "ranks": p, "t_pred": t, "speedup_vs_mgrit1": r.seconds / t}
                | {"speedup_vs_serial": serial / t, "t_measured": float(meas.iloc[0]) if len(meas) else np.nan}
            )
    return pd.DataFrame(rows)


def _claim(
    cid: str,
    text: str,
    run: str,
    unit: str,
    n: int,
    name: str,
    est: float,
    ci: tuple,
    verdict: str,
    test: str,
    figure: str,
    **extra,
) -> verdicts.Claim:
    """One claims row of this study; ``ci`` = (low, high, level)."""
    lo, hi, level = ci
    return verdicts.Claim(
        "layer_parallel", cid, text, run, unit, n, name, est, lo, hi, level, verdict, test, figure, **extra
    )


NO_RULE = {"decision_rule": "none", "n_units_to_decide": float("nan")}


def claims(res: pd.DataFrame, train_tab: pd.DataFrame, speed: pd.DataFrame, study: dict) -> pd.DataFrame:
    """Claims (1), (3) and (4) as rows of :data:`nnrds.verdicts.CLAIM_COLUMNS` (claim (2) is held by the known-answer
    tests). (1): the worst geometric-mean convergence factor of the smooth parameterizations over depths and
    coarsening factors, supported below ``claims.factor_max``, contradicted above 1 (no convergence); the same for
    nonpar is reported beside it. (3): per k, the paired (MGRIT - serial) final test error over seeds, Hodges-Lehmann
    interval (>= 4 seeds), non-superiority of serial by more than ``claims.error_margin``. (4): 2-rank speedup measured
    / predicted, supported within ``claims.model_tolerance`` of 1 (a point: no interval over repeats is kept)."""
    cl = study["claims"]
    rows = []
    mf = mean_factor(res)
    for group, params in (("smooth", [p for p in study["parameterizations"] if p != "nonpar"]), ("nonpar", ["nonpar"])):
        f = mf[mf.param.isin(params)]
        if f.empty:
            continue
        worst = float(f.mean_factor.max())
        if group == "smooth":
            verdict = "supported" if worst < cl["factor_max"] else ("contradicted" if worst >= 1 else "inconclusive")
            test = f"range over configurations; supported when the worst factor < {cl['factor_max']}"
        else:
            verdict, test = "inconclusive", "reported beside the smooth case, not tested"
        run = f"{'/'.join(params)}, depths {study['depths']}, cf {study['coarsening']}, {study['iterations']} V-cycles"
        text = f"MGRIT reduces the forward residual by a depth-independent factor per V-cycle ({group} W(t))"
        ci = (float(f.mean_factor.min()), worst, 1.0)
        name = "worst geometric-mean convergence factor"
        rows.append(
            _claim(
                f"1_{group}", text, run, "depth x cf", len(f), name, worst, ci, verdict, test, "residuals", **NO_RULE
            )
        )
    m = cl["error_margin"]
    run = f"toy2d {study['toy2d']['problem']}, depth {study['training']['depth']}, {study['training']['epochs']} steps"
    for arm, g in paired_errors(train_tab).groupby("arm"):
        d = g.d_test_error.to_numpy()
        est, lo, hi = verdicts.hodges_lehmann_ci(d, 0.9) if len(d) >= 4 else (float(np.median(d)), np.nan, np.nan)
        text = f"training with {arm[1:]} inexact MGRIT iteration(s) per step is no worse than serial"
        test = f"paired Hodges-Lehmann interval; supported when it lies below {m}"
        rows.append(
            _claim(
                f"3_{arm}",
                text,
                run,
                "seed",
                len(d),
                "test error, MGRIT - serial",
                float(est),
                (float(lo), float(hi), 0.9),
                verdicts.non_superiority(lo, hi, m),
                test,
                "training",
                margin=m,
            )
        )
    two = speed[(speed.ranks == 2) & speed.t_measured.notna()]
    if len(two):
        r = two[two.depth == two.depth.max()].iloc[0]
        ratio, tol = float(r.t_pred / r.t_measured), cl["model_tolerance"]
        verdict = "supported" if abs(ratio - 1) <= tol else "contradicted"
        run = f"depth {int(r.depth)}, forward + adjoint MGRIT, 1 and 2 MPI ranks"
        rows.append(
            _claim(
                "4_model",
                "the work model predicts the measured 2-rank MGRIT time",
                run,
                "measurement",
                1,
                "measured / predicted 2-rank speedup",
                ratio,
                (np.nan, np.nan, np.nan),
                verdict,
                f"point estimate; supported when within {tol} of 1",
                "speedup",
                **NO_RULE,
            )
        )
    return verdicts.claims_frame(rows)


#: the scale the measurements in docs/studies/layer_parallel.md ran at (until the study has config sections)
DEFAULT = {
    "samples": 50,
    "parameterizations": ["const", "legendre3", "nonpar"],
    "depths": [16, 64, 256, 1024],
    "coarsening": [2, 4, 8],
    "width": 8,
    "T": 5.0,
    "max_levels": 3,
    "iterations": 5,
    "toy2d": {"problem": "swiss_roll", "n_train": 200, "n_test": 200},
    "training": {"param": "legendre3", "depth": 32, "cf": 4, "lr": 0.02, "epochs": 150, "record_every": 25}
    | {"seeds": [0, 1, 2], "iterations": [1, 2, 3]},
    "timing": {"param": "legendre3", "depths": [256, 1024], "cf": 4, "iterations": 2, "samples": 200, "repeats": 3},
    "claims": {"factor_max": 0.2, "error_margin": 0.02, "model_tolerance": 0.25},
}


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/layer_parallel.py {residuals,training,timing,claims} OUT_DIR`` at :data:`DEFAULT`
    scale; ``timing`` under ``mpiexec -n 1`` and ``mpiexec -n 2`` writes timing_<ranks>.csv; ``claims`` reads the
    others and writes speedup.csv and claims.csv."""
    import argparse
    from pathlib import Path

    p = argparse.ArgumentParser(prog="python benchmarks/layer_parallel.py", description=main.__doc__)
    p.add_argument("what", choices=["residuals", "training", "timing", "claims"])
    p.add_argument("out_dir", type=Path)
    a = p.parse_args(argv)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    if a.what == "residuals":
        residual_table(DEFAULT).to_csv(a.out_dir / "residuals.csv", index=False)
    elif a.what == "training":
        training_table(DEFAULT).to_csv(a.out_dir / "training.csv", index=False)
    elif a.what == "timing":
        rows = timing_rows(DEFAULT)
        if rows:
            pd.DataFrame(rows).to_csv(a.out_dir / f"timing_{MPI.COMM_WORLD.Get_size()}.csv", index=False)
    else:
        timing = pd.concat([pd.read_csv(f) for f in sorted(a.out_dir.glob("timing_*.csv"))])
        speed = predicted_speedup(timing, [1, 2, 8, 16, 32, 64])
        speed.to_csv(a.out_dir / "speedup.csv", index=False)
        res, train_tab = pd.read_csv(a.out_dir / "residuals.csv"), pd.read_csv(a.out_dir / "training.csv")
        claims(res, train_tab, speed, DEFAULT).to_csv(a.out_dir / "claims.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
