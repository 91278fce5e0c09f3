"""Known-answer tests of layer-parallel propagation with MGRIT (src/nnrds/mgrit.py, PyMGRIT engine)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nnrds import mgrit
from nnrds.models import Arch, ReplicaNet


def _net(depth: int, param: str = "const", degree: int = 0, seeds=(0,), T: float = 5.0) -> ReplicaNet:
    arch = Arch(d_in=2, d_out=1, width=6, depth=depth, param=param, degree=degree, T=T)
    return ReplicaNet(arch, list(seeds), dtype=torch.float64)


def _data(n: int = 20):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 2, generator=g, dtype=torch.float64), torch.randn(n, 1, generator=g, dtype=torch.float64)


def _mse(y):
    return lambda out: ((out - y) ** 2).mean(dim=(1, 2)).sum()


def _state_error(states, ref) -> list[float]:
    return [float((a - b).abs().max()) for a, b in zip(states, ref)]


@pytest.mark.parametrize("param,degree", [("const", 0), ("legendre", 3), ("nonpar", 0)])
def test_converged_mgrit_is_serial_propagation(param, degree):
    """claim (2), forward: MGRIT iterated to a 1e-12 residual reproduces net.trajectory at every layer."""
    net = _net(32, param, degree, seeds=(0, 1))
    u, _ = _data()
    out = mgrit.solve(mgrit.ForwardNet(net, u), cf=4, max_levels=3, iters=50, tol=1e-12)
    with torch.no_grad():
        ref = net.trajectory(u)
    assert out["levels"] == 3 and out["residuals"][-1] < 1e-12
    assert max(_state_error(out["states"], ref)) < 1e-10


def test_two_level_f_relaxation_is_exact_after_k_iterations():
    """claim (1), known answer (Parareal property of two-level MGRIT with F-relaxation): after k iterations the
    layers up to the k-th C-point are exact, and the whole trajectory is exact after L / cf iterations."""
    depth, cf = 16, 4
    net = _net(depth, "nonpar")
    u, _ = _data()
    with torch.no_grad():
        ref = net.trajectory(u)
    for k in range(1, depth // cf + 1):
        out = mgrit.solve(mgrit.ForwardNet(net, u), cf=cf, max_levels=2, iters=k, cf_iter=0)
        err = _state_error(out["states"], ref)
        assert max(err[: k * cf + 1]) < 1e-13, (k, err)
        if k < depth // cf:
            assert err[-1] > 1e-8, (k, err)
    assert out["residuals"][-1] < 1e-13


def test_smooth_weights_converge_fast_and_depth_independently():
    """claim (1): constant weights converge with factor < 0.2 per V-cycle at depth 32 and 128 alike; a
    non-parameterized net (independent random layers) converges more slowly."""
    u, _ = _data()
    rho = {}
    for param, depth in [("const", 32), ("const", 128), ("nonpar", 128)]:
        out = mgrit.solve(mgrit.ForwardNet(_net(depth, param), u), cf=4, max_levels=3, iters=4)
        rho[param, depth] = float(np.nanmean(mgrit.convergence_factors(out["residuals"])))
    assert rho["const", 32] < 0.2 and rho["const", 128] < 0.2, rho
    assert rho["nonpar", 128] > rho["const", 128], rho


def _grads(net):
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def test_adjoint_gradient_matches_autograd():
    """claim (2), backward: the MGRIT adjoint gradient at a 1e-13 residual equals autograd of serial propagation;
    inexact MGRIT (1, then 3 iterations) gives a gradient whose error falls with the iterations."""
    net = _net(32, "legendre", 3, seeds=(0, 1))
    u, y = _data()
    loss = _mse(y)
    net.zero_grad()
    loss(net(u)).backward()
    ref = _grads(net).clone()
    net.zero_grad()
    mgrit.propagate(net, u, loss, cf=4, max_levels=3, iters=50, tol=1e-13)
    assert torch.allclose(_grads(net), ref, rtol=1e-9, atol=1e-11)
    errors = []
    for k in (1, 3):
        net.zero_grad()
        mgrit.propagate(net, u, loss, cf=4, max_levels=3, iters=k)
        errors.append(float((_grads(net) - ref).norm() / ref.norm()))
    assert errors[1] < errors[0] and errors[0] > 1e-8, errors


def test_work_model_counts():
    """The work model: serial coarsest level, the other levels split over ranks; 1 rank costs every step."""
    steps = [100.0, 40.0, 10.0]
    assert mgrit.work_model(steps, 1, 1.0, 5.0, 2) == 150.0
    assert mgrit.work_model(steps, 4, 1.0, 0.0, 2) == 25 + 10 + 10
    assert mgrit.n_levels(64, 4, 5) == 3 and mgrit.n_levels(16, 8, 3) == 2 and mgrit.n_levels(16, 4, 1) == 1


def test_mlp_is_refused():
    net = ReplicaNet(Arch(d_in=2, d_out=1, width=4, depth=4, param="mlp"), [0], dtype=torch.float64)
    with pytest.raises(ValueError, match="ResNet"):
        mgrit.ForwardNet(net, _data()[0])


MPI_SCRIPT = textwrap.dedent(
    """
    import torch
    from mpi4py import MPI
    from nnrds import mgrit
    from nnrds.models import Arch, ReplicaNet
    comm = MPI.COMM_WORLD
    net = ReplicaNet(Arch(d_in=2, d_out=1, width=6, depth=32, param="legendre", degree=2, T=5.0), [0],
                     dtype=torch.float64)
    u = torch.randn(20, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.zeros(20, 1, dtype=torch.float64)
    loss = lambda out: ((out - y) ** 2).mean()
    out = mgrit.propagate(net, u, loss, cf=4, max_levels=3, iters=30, tol=1e-13, comm=comm)
    got = torch.cat([p.grad.flatten() for p in net.parameters()]).clone()
    net.zero_grad()
    loss(net(u)).backward()
    ref = torch.cat([p.grad.flatten() for p in net.parameters()])
    with torch.no_grad():
        xs = net.trajectory(u)
    err = max(float((a - b).abs().max()) for a, b in zip(out["forward"]["states"], xs))
    ok = err < 1e-10 and torch.allclose(got, ref, rtol=1e-9, atol=1e-11)
    print(f"rank {comm.Get_rank()} of {comm.Get_size()} ok={ok} err={err:.1e}", flush=True)
    """
)


def test_two_rank_mpi_smoke(tmp_path: Path):
    """2 MPI ranks (mpiexec of the pinned MPICH wheel): the layer-parallel forward states and gradient equal serial
    propagation."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        pytest.fail(f"no {mpiexec}: `make venv` installs the pinned mpich wheel that provides it")
    script = tmp_path / "two_ranks.py"
    script.write_text(MPI_SCRIPT)
    proc = subprocess.run(
        [str(mpiexec), "-n", "2", sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = sorted(re.findall(r"rank (\d) of (\d) ok=(\w+)", proc.stdout))  # the ranks' lines may interleave
    assert reports == [("0", "2", "True"), ("1", "2", "True")], proc.stdout + proc.stderr[-2000:]


def _tiny() -> dict:
    """The study's DEFAULT scale, shrunk."""
    from benchmarks import layer_parallel as S

    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in S.DEFAULT.items()}
    d |= {"samples": 10, "parameterizations": ["legendre3", "nonpar"], "depths": [16, 32], "coarsening": [2, 4]}
    d |= {"width": 4, "iterations": 3}
    d["toy2d"] |= {"n_train": 40, "n_test": 40}
    d["training"] |= {"depth": 16, "epochs": 4, "record_every": 2, "seeds": [0, 1], "iterations": [1, 3]}
    d["timing"] |= {"depths": [16], "samples": 10, "repeats": 1}
    return d


def test_study_tables_and_claims():
    """The study's tables at a tiny scale, and a claims table with the ledger's columns."""
    from benchmarks import layer_parallel as S
    from nnrds import verdicts

    TINY = _tiny()

    res = S.residual_table(TINY)
    assert len(res) == 2 * 2 * 2 * 3 and (res.residual >= 0).all()
    train = S.training_table(TINY)
    assert set(train.arm) == {"serial", "k1", "k3"} and len(train) == 2 * 3 * 2
    timing = pd.DataFrame(S.timing_rows(TINY))
    assert set(timing.kind) == {"serial", "mgrit"} and (timing.seconds > 0).all()
    speed = S.predicted_speedup(timing, [1, 2, 8])
    assert np.allclose(speed[speed.ranks == 1].speedup_vs_mgrit1, 1.0)
    assert speed.set_index("ranks").t_pred.is_monotonic_decreasing
    c = S.claims(res, train, speed, TINY)
    assert list(c.columns) == verdicts.CLAIM_COLUMNS and set(c.claim_id) >= {"1_smooth", "3_k1", "3_k3"}
