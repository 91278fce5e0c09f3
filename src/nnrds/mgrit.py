"""Layer-parallel propagation of a ResNet with MGRIT (Günther, Ruthotto, Schroder, Cyr & Gauger 2020).

The forward pass x_{n+1} = x_n + h sigma(W(t_n) x_n + b(t_n)) of :class:`nnrds.models.ReplicaNet` is a forward-Euler
time integration over the layer grid t_n = n h, so multigrid reduction in time parallelizes it across layers. The
engine is PyMGRIT (``pymgrit.Mgrit``, MPI over layers through mpi4py): :class:`ForwardNet` is its ``Application``,
a time stepper over layers whose state (:class:`State`) holds the hidden states of every replica and sample,
shape (R, N, width). A coarse step of length H = m h from t_n applies the same layer with step H and the weights
W(t_n), b(t_n) of its first fine layer (injection, as in the paper).

Backward propagation is the discrete adjoint, a time integration backwards over layers:
lambda_L = dLoss/dx_L, lambda_n = lambda_{n+1} + h J_n^T lambda_{n+1} with J_n = d f_n / d x at x_n.
:class:`AdjointNet` integrates it in reversed time s = T - t with the Jacobians at the (MGRIT-approximate) forward
states, again with PyMGRIT. :func:`gradient` assembles the parameter gradient from states and adjoints: exactly the
autograd gradient of serial propagation when both are exact (a test checks this).

Only ``block="resnet"`` ResNets (not MLPs) can be layer-parallel here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pymgrit
import torch
from mpi4py import MPI

from .models import ACTIVATIONS, ReplicaNet

#: sigma'(z) of each activation, from z
DERIVATIVES = {
    "tanh": lambda z: 1.0 - torch.tanh(z) ** 2,
    "relu": lambda z: (z > 0).to(z.dtype),
    "softplus": torch.sigmoid,
}


class State(pymgrit.Vector):
    """PyMGRIT vector: the hidden states of all replicas and samples at one layer, a tensor (R, N, width)."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.x = x

    def __add__(self, other: State) -> State:
        return State(self.x + other.x)

    def __sub__(self, other: State) -> State:
        return State(self.x - other.x)

    def norm(self) -> float:
        return float(torch.linalg.vector_norm(self.x))

    def clone_zero(self) -> State:
        return State(torch.zeros_like(self.x))

    def clone_rand(self) -> State:
        return State(torch.rand_like(self.x))

    def set_values(self, x: torch.Tensor) -> None:
        self.x = x

    def get_values(self) -> torch.Tensor:
        return self.x


def _check(net: ReplicaNet) -> None:
    if net.arch.param == "mlp" or net.arch.block != "resnet":
        raise ValueError(f"layer-parallel propagation needs a ResNet (param != mlp, block resnet), not {net.arch}")


class _LayerApp(pymgrit.Application):
    """The layer grid 0, h, ..., T of ``net`` and its detached layer weights."""

    def __init__(self, net: ReplicaNet, x0: torch.Tensor):
        _check(net)
        super().__init__(t_start=0.0, t_stop=net.arch.T, nt=net.arch.depth + 1)
        self.h = net.arch.h
        with torch.no_grad():
            W, b = net.layer_weights()
        self.Wt = W.detach().transpose(-1, -2)  # (R, L, w, w), applied as x W^T
        self.b = b.detach()
        self.sigma = ACTIVATIONS[net.arch.activation]
        self.vector_template = State(torch.zeros_like(x0))
        self.vector_t_start = State(x0.detach().clone())
        self.n_steps = 0  # layer steps this rank applied (every level), for the work model

    def layer(self, t: float) -> int:
        return int(round(t / self.h))


class ForwardNet(_LayerApp):
    """PyMGRIT application of the forward pass: x(t_stop) = x + (t_stop - t_start) sigma(W(t_start) x + b(t_start))."""

    def __init__(self, net: ReplicaNet, u: torch.Tensor):
        with torch.no_grad():
            x0 = net.embed(u)
        super().__init__(net, x0)

    def step(self, u_start: State, t_start: float, t_stop: float) -> State:
        self.n_steps += 1
        n = self.layer(t_start)
        x = u_start.x
        return State(x + (t_stop - t_start) * self.sigma(torch.bmm(x, self.Wt[:, n]) + self.b[:, n, None, :]))


class AdjointNet(_LayerApp):
    """PyMGRIT application of the adjoint in reversed time s = T - t: from s_start to s_stop it reaches layer
    n = (T - s_stop) / h and applies lambda + H J_n^T lambda, J_n the layer's Jacobian at the forward state x_n."""

    def __init__(self, net: ReplicaNet, states: list[torch.Tensor], lam_L: torch.Tensor):
        super().__init__(net, lam_L)
        self.T = net.arch.T
        d = DERIVATIVES[net.arch.activation]
        with torch.no_grad():
            self.dsig = [d(torch.bmm(states[n], self.Wt[:, n]) + self.b[:, n, None, :]) for n in range(len(states) - 1)]

    def step(self, u_start: State, t_start: float, t_stop: float) -> State:
        self.n_steps += 1
        n = self.layer(self.T - t_stop)
        lam = u_start.x
        # J^T lambda in the row convention z = x W^T + b: (sigma'(z) * lambda) W
        return State(lam + (t_stop - t_start) * torch.bmm(self.dsig[n] * lam, self.Wt[:, n].transpose(-1, -2)))


def n_levels(depth: int, cf: int, max_levels: int) -> int:
    """Most levels (<= max_levels) whose coarsest grid still has >= 2 intervals and nests in the finer ones."""
    levels = 1
    while levels < max_levels and depth % cf**levels == 0 and depth // cf**levels >= 2:
        levels += 1
    return levels


def solve(app: _LayerApp, *, cf: int, max_levels: int, iters: int, tol=0.0, cf_iter=1, comm=MPI.COMM_WORLD) -> dict:
    """Run PyMGRIT on ``app`` (V-cycles, FCF relaxation when cf_iter=1, F when 0; zero initial guess; at most
    ``iters`` iterations, fewer once the space-time residual is below ``tol``). Returns {states: every layer's state
    (all ranks, gathered), residuals: [r_1, r_2, ...] (space-time residual at the C-points after each iteration;
    the zero guess of a bias-free network has residual 0 at every C-point but the first, so no r_0), levels,
    time_solve, steps: layer steps per level, all iterations and ranks}."""
    levels = n_levels(app.nt - 1, cf, max_levels)
    problem = pymgrit.simple_setup_problem(app, level=levels, coarsening=cf)
    mg = pymgrit.Mgrit(
        problem,
        max_iter=iters,
        tol=tol,
        nested_iteration=False,
        cf_iter=cf_iter,
        cycle_type="V",
        comm_time=comm,
        logging_lvl=30,
    )
    for p in problem:
        p.n_steps = 0
    t0 = time.perf_counter()
    out = mg.solve()
    elapsed = time.perf_counter() - t0
    local = [mg.u[0][i].x for i in mg.index_local[0]]
    states = [x for part in comm.allgather(local) for x in part] if comm.Get_size() > 1 else local
    steps = [comm.allreduce(p.n_steps) for p in problem]  # per level, summed over ranks
    return {
        "states": states,
        "residuals": [float(r) for r in out["conv"]],
        "levels": levels,
        "time_solve": elapsed,
        "steps": steps,
    }


def readout_adjoint(net: ReplicaNet, x_L: torch.Tensor, loss: Callable) -> torch.Tensor:
    """lambda_L = dLoss/dx_L of a loss of the network output (``loss(out) -> scalar``)."""
    x = x_L.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(net.readout(x)), x)
    return g


def gradient(
    net: ReplicaNet, u: torch.Tensor, states: list[torch.Tensor], lams: list[torch.Tensor], loss: Callable
) -> torch.Tensor:
    """Accumulate into the parameters' .grad the adjoint gradient from forward states x_0..x_L and adjoints
    lambda_0..lambda_L (d/dtheta of <lambda_0, embed(u)> + sum_n <lambda_{n+1}, h sigma(W_n x_n + b_n)> +
    loss(readout(x_L)), states and adjoints held fixed). Returns the loss at x_L."""
    h, sigma = net.arch.h, ACTIVATIONS[net.arch.activation]
    W, b = net.layer_weights()
    X = torch.stack([x.detach() for x in states[:-1]], 1)  # (R, L, N, w)
    Lam = torch.stack([lam.detach() for lam in lams[1:]], 1)
    F = sigma(torch.einsum("rlni,rlji->rlnj", X, W) + b[:, :, None, :])
    value = loss(net.readout(states[-1].detach()))
    surrogate = (lams[0].detach() * net.embed(u)).sum() + h * (Lam * F).sum() + value
    surrogate.backward()
    return value.detach()


def propagate(
    net: ReplicaNet,
    u: torch.Tensor,
    loss: Callable,
    *,
    cf: int,
    max_levels: int,
    iters: int,
    tol: float = 0.0,
    comm: MPI.Comm = MPI.COMM_WORLD,
) -> dict:
    """Layer-parallel forward and backward propagation (each ``iters`` MGRIT iterations at most) and the gradient
    into .grad. Returns {loss, forward: solve(...) of the states, adjoint: solve(...) of the adjoints}."""
    kw: dict[str, Any] = dict(cf=cf, max_levels=max_levels, iters=iters, tol=tol, comm=comm)
    fwd = solve(ForwardNet(net, u), **kw)
    adj = solve(AdjointNet(net, fwd["states"], readout_adjoint(net, fwd["states"][-1], loss)), **kw)
    lams = adj["states"][::-1]
    value = gradient(net, u, fwd["states"], lams, loss)
    return {"loss": value, "forward": fwd, "adjoint": adj}


def work_model(steps: list[float], ranks: int, t_step: float, t_comm: float, iters: int) -> float:
    """Predicted wall time of MGRIT over ``ranks`` ranks from its counted layer steps per level (``steps``, the
    total of all iterations, finest level first; :func:`solve` counts them): every level but the coarsest spreads
    its steps evenly over the ranks, the coarsest level runs serially on one rank, and every level costs two message
    latencies ``t_comm`` per iteration (F- and C-relaxation exchanges) once there are >= 2 ranks.
    ``t_step``: seconds of one layer step on one rank."""
    parallel = sum(math.ceil(s / ranks) for s in steps[:-1]) * t_step
    serial = steps[-1] * t_step
    comm = 2 * len(steps) * iters * t_comm * (ranks > 1)
    return parallel + serial + comm


def speedup_table(depth: int, steps: list[float], ranks: list[int], t_step: float, t_comm: float, iters: int):
    """Predicted speedup of MGRIT (forward and adjoint solves, ``steps`` per level) over serial propagation
    (2 ``depth`` steps) per rank count: rows {ranks, t_pred, speedup}."""
    rows = []
    for p in ranks:
        t = work_model(steps, p, t_step, t_comm, iters)
        rows.append({"ranks": p, "t_pred": t, "speedup": 2 * depth * t_step / t})
    return rows


def convergence_factors(residuals: list[float], floor: float = 1e-12) -> np.ndarray:
    """r_{k+1} / r_k of a residual history, NaN once r_k or r_{k+1} is below ``floor`` (converged to rounding: MGRIT
    is exact after L / cf^(levels-1) iterations at most)."""
    r = np.asarray(residuals, dtype=float)
    ok = (r[:-1] > floor) & (r[1:] > floor)
    return np.where(ok, r[1:] / np.where(ok, r[:-1], 1.0), np.nan)
