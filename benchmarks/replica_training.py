"""Replica-batched Adam training vs a Python loop of solo fits, old code vs new, interleaved in one run.

Shape of issue 23: WP-ResNets of width 16 and depth 8 (nonpar and Legendre-3), 10 inputs, 1 output, N = 200
training points per replica (each replica its own data, as in a wp_gap cell), full batch, 200 epochs, torch on one
thread, float32. Every measurement runs in a fresh worker process (``--worker``) that imports ``nnrds`` from the
source folder it is given, so the old code (e.g. a worktree of main) and the new one run on the same machine in the
same run, alternating, ``--repeats`` times; the report gives medians.

A worker, for one code and one parameterization: a float32 matmul peak (512 x 512 x 512 ``torch.mm``, best of 5,
CPU time), the batched fit of R replicas for every R of ``--replicas``, and the loop: ``--loop-replicas`` solo fits (one
replica each, same seeds and data). The loop's cost is linear in R by construction (independent fits), so the loop
time at R is R x the measured mean per-replica solo time. Times are process CPU time (user + sys; the machine is
shared, wall time is reported too). It also digests the batched final parameters (old and new must agree bit for
bit) and the largest difference between a replica batched and the same replica alone.

    PYTHONPATH=src python benchmarks/replica_training.py --old /work/wt/compute-base/src --new src \\
        --repeats 2 --loop-replicas 8 --out /tmp/replica_training.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time

WIDTH, DEPTH, D_IN, D_OUT, N = 16, 8, 10, 1, 200
PARAMS = {"nonpar": ("nonpar", 0), "legendre3": ("legendre", 3)}


def useful_flops_per_step(kind: str, degree: int, R: int) -> float:
    """Matmul FLOPs of one full-batch Adam step of R replicas: forward 2 N (d_in w + L w^2 + w d_out) (+ the basis
    product W = Phi C for a non-identity basis), backward twice the forward (input and weight gradients)."""
    fwd = 2 * N * (D_IN * WIDTH + DEPTH * WIDTH * WIDTH + WIDTH * D_OUT)
    if kind != "nonpar":
        fwd += 2 * DEPTH * (degree + 1) * (WIDTH * WIDTH + WIDTH)
    return 3.0 * fwd * R


def worker(kind: str, degree: int, replicas: list[int], loop_replicas: int, epochs: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from nnrds.models import Arch, ReplicaNet
    from nnrds.train import fit

    def clock():
        return time.process_time(), time.perf_counter()

    a = torch.randn(512, 512)
    b = torch.randn(512, 512)
    a @ b
    peak = 0.0
    for _ in range(5):  # CPU time, like the fits (the machine is shared: wall time counts other jobs' turns)
        t = time.process_time()
        for _ in range(10):
            a @ b
        peak = max(peak, 10 * 2 * 512**3 / (time.process_time() - t) / 1e9)

    arch = Arch(D_IN, D_OUT, WIDTH, DEPTH, kind, degree)
    Rmax = max(max(replicas), loop_replicas)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(Rmax, N, D_IN, generator=g)
    Y = torch.sin(X.sum(-1, keepdim=True))
    seeds = [1000 * r for r in range(Rmax)]

    def train(rs):
        net = ReplicaNet(arch, [seeds[r] for r in rs])
        c0, w0 = clock()
        fit(net, X[rs], Y[rs], epochs=epochs, lr=1e-2, progress_lines=0)
        c1, w1 = clock()
        return net, c1 - c0, w1 - w0

    train([0, 1])  # warm-up (allocator, kernels)
    out = {"peak_gflops": peak, "batched": {}}
    for R in replicas:
        net, cpu, wall = train(list(range(R)))
        params = [p.detach() for p in net.parameters()]
        digest = hashlib.sha256(b"".join(p.numpy().tobytes() for p in params)).hexdigest()[:16]
        out["batched"][R] = {"cpu_s": cpu, "wall_s": wall, "digest": digest}
        if R == max(replicas):
            full = params
    cpu_loop = wall_loop = 0.0
    diff = 0.0
    for r in range(loop_replicas):
        net, cpu, wall = train([r])
        cpu_loop += cpu
        wall_loop += wall
        if r < max(replicas):
            diff = max(diff, max(float((p.detach()[0] - q[r]).abs().max()) for p, q in zip(net.parameters(), full)))
    out["loop_per_replica"] = {"cpu_s": cpu_loop / loop_replicas, "wall_s": wall_loop / loop_replicas}
    out["max_abs_diff_batched_vs_alone"] = diff
    # the share of the step that is tanh (8 layers of an (R, N, w) tensor) at the first R
    z = torch.randn(replicas[0], N, WIDTH)
    t = time.process_time()
    for _ in range(200):
        for _ in range(DEPTH):
            torch.tanh(z)
    out["tanh_cpu_s_per_step"] = (time.process_time() - t) / 200
    # the cost of the per-epoch finiteness check (float64 copy of the (R,) loss, isfinite, all, host read)
    loss = torch.rand(replicas[0])
    t = time.process_time()
    for _ in range(2000):
        acc = loss.detach().to(torch.float64).reshape(-1)
        bool(torch.isfinite(acc).all())
    out["check_cpu_s_per_epoch"] = (time.process_time() - t) / 2000
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=False, help="source folder of the old nnrds (e.g. a main worktree's src)")
    ap.add_argument("--new", default="src")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=SRC", help="more codes to measure")
    ap.add_argument("--replicas", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--loop-replicas", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--params", nargs="+", default=list(PARAMS))
    ap.add_argument("--out", default=None)
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "DEGREE"))
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker[0], int(a.worker[1]), a.replicas, a.loop_replicas, a.epochs)))
        return 0
    codes = {"old": a.old, "new": a.new} if a.old else {"new": a.new}
    codes.update(v.split("=", 1) for v in a.variant)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NNRDS_LOG_LEVEL": "WARNING"}
    runs = []
    for rep in range(a.repeats):
        for p in a.params:
            for code, src in codes.items():
                cmd = [sys.executable, __file__, "--worker", *map(str, PARAMS[p]), "--epochs", str(a.epochs)]
                cmd += ["--loop-replicas", str(a.loop_replicas), "--replicas", *map(str, a.replicas)]
                res = subprocess.run(
                    cmd, env={**env, "PYTHONPATH": os.path.abspath(src)}, capture_output=True, text=True, check=True
                )
                r = json.loads(res.stdout.strip().splitlines()[-1])
                runs.append({"repeat": rep, "param": p, "code": code, **r})
                print(f"repeat {rep} {p} {code}: " + json.dumps(r), file=sys.stderr, flush=True)
    rows = []
    for p in a.params:
        for R in a.replicas:
            for code in codes:
                rs = [r for r in runs if r["param"] == p and r["code"] == code]
                b = [r["batched"][str(R)] for r in rs]
                loop_cpu = [R * r["loop_per_replica"]["cpu_s"] for r in rs]
                loop_wall = [R * r["loop_per_replica"]["wall_s"] for r in rs]
                kind, deg = PARAMS[p]
                flops = useful_flops_per_step(kind, deg, R) * a.epochs
                med = statistics.median
                rows.append(
                    {
                        "param": p,
                        "replicas": R,
                        "code": code,
                        "batched_cpu_s": med(x["cpu_s"] for x in b),
                        "batched_wall_s": med(x["wall_s"] for x in b),
                        "loop_cpu_s": med(loop_cpu),
                        "loop_wall_s": med(loop_wall),
                        "speedup_cpu": med(lc / x["cpu_s"] for lc, x in zip(loop_cpu, b)),
                        "speedup_wall": med(lw / x["wall_s"] for lw, x in zip(loop_wall, b)),
                        "gflops": med(flops / x["cpu_s"] / 1e9 for x in b),
                        "peak_gflops": med(r["peak_gflops"] for r in rs),
                        "tanh_share": med(
                            r["tanh_cpu_s_per_step"] * R / a.replicas[0] * a.epochs / x["cpu_s"] for r, x in zip(rs, b)
                        ),
                        "check_share": med(r["check_cpu_s_per_epoch"] * a.epochs / x["cpu_s"] for r, x in zip(rs, b)),
                        "digests": sorted({x["digest"] for x in b}),
                        "max_abs_diff_batched_vs_alone": max(r["max_abs_diff_batched_vs_alone"] for r in rs),
                    }
                )
    text = json.dumps({"repeats": a.repeats, "epochs": a.epochs, "rows": rows, "runs": runs}, indent=1)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            f.write(text)
    for r in rows:
        print(
            f"{r['param']:9s} R={r['replicas']:4d} {r['code']}: batched {r['batched_cpu_s']:.2f} s "
            f"loop {r['loop_cpu_s']:.2f} s  x{r['speedup_cpu']:.1f} (wall x{r['speedup_wall']:.1f})  "
            f"{r['gflops']:.1f} / {r['peak_gflops']:.0f} GFLOP/s  tanh {100 * r['tanh_share']:.0f}%  "
            f"check {100 * r['check_share']:.2f}%  digests {r['digests']}  "
            f"batched-vs-alone {r['max_abs_diff_batched_vs_alone']:.1e}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
