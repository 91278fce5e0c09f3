"""Physics-informed networks for 1-D periodic PDEs  u_t + beta u_x - nu u_xx - rho u (1 - u) = 0  (x in [0, 2 pi),
t in [0, 1]); the three training modes of Krishnapriyan et al. (NeurIPS 2021).

Every replica of a :class:`~nnrds.models.ReplicaNet` is one PINN with its own coefficients (beta, nu, rho), its own
collocation points (drawn from the evaluation grid with the replica's seed) and its own initial condition, so a
sweep over seeds and coefficients trains as one batch (:func:`nnrds.train.fit` with ``optimizer="lbfgs"``: one
L-BFGS per replica, evaluated in batches).

Loss of one replica (equal weights, as in the paper):
  IC MSE  mean_i (u(x_i, t_a) - u_a(x_i))^2 on the grid's x at the window start t_a
+ BC MSE  mean_j (u(0, t_j) - u(2 pi, t_j))^2  [+ mean_j (u_x(0, t_j) - u_x(2 pi, t_j))^2 when nu > 0]
+ residual MSE at the collocation points.
Derivatives u_t, u_x, u_xx by autograd with respect to the inputs (each output depends only on its own input
point, so the gradient of the sum is the pointwise derivative).

Training modes (:func:`train`): ``plain`` (one stage at the target coefficients), ``curriculum`` (stages at
coefficients rising from ``start`` to the target, each warm-started from the previous stage's weights) and
``seq2seq_<dt>`` (time marching: windows of width dt, each with the previous window's prediction at its end time
as initial condition, warm-started from the previous window's weights). Every mode spends the same total number
of L-BFGS iterations, split evenly over its stages/windows.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .data import pde
from .guards import current
from .train import fit

log = logging.getLogger(__name__)

COEFS = ("beta", "nu", "rho")
UFn = Callable[[torch.Tensor], torch.Tensor]  # X (R, N, 2) -> u (R, N, 1)


def u_of(net, normalize: bool) -> UFn:
    """The PINN's u(x, t): the net applied to (x, t), or with ``normalize`` to (x / pi - 1, 2 t - 1) in [-1, 1]^2
    (autograd differentiates through the scaling, so derivatives stay with respect to x and t)."""
    if not normalize:
        return net

    def u(X: torch.Tensor) -> torch.Tensor:
        scale = torch.tensor([1.0 / math.pi, 2.0], dtype=X.dtype, device=X.device)
        return net(X * scale - 1.0)

    return u


def derivatives(u_fn: UFn, X: torch.Tensor, second: bool = True, create_graph: bool = True) -> dict[str, torch.Tensor]:
    """u, u_x, u_t (and u_xx when ``second``) at X (R, N, 2) = (x, t); each (R, N)."""
    X = X.detach().requires_grad_(True)
    u = u_fn(X)[..., 0]
    (g,) = torch.autograd.grad(u.sum(), X, create_graph=True)
    out = {"u": u, "u_x": g[..., 0], "u_t": g[..., 1]}
    if second:
        (g2,) = torch.autograd.grad(out["u_x"].sum(), X, create_graph=create_graph)
        out["u_xx"] = g2[..., 0]
    return out


def residual(
    u_fn: UFn, X: torch.Tensor, beta: torch.Tensor, nu: torch.Tensor, rho: torch.Tensor, create_graph: bool = True
) -> torch.Tensor:
    """PDE residual u_t + beta u_x - nu u_xx - rho u (1 - u) at X (R, N, 2); coefficients (R,). Returns (R, N)."""
    second = bool(torch.any(nu != 0))
    d = derivatives(u_fn, X, second=second, create_graph=create_graph)
    r = d["u_t"] + beta[:, None] * d["u_x"] - rho[:, None] * d["u"] * (1 - d["u"])
    if second:
        r = r - nu[:, None] * d["u_xx"]
    return r


@dataclass
class PinnLoss:
    """The loss of R PINNs on one time window [t_a, t_b] (see the module docstring); ``__call__`` has the
    signature of a :func:`nnrds.train.fit` ``loss_fn`` and returns (loss (R,), parts)."""

    X_f: torch.Tensor  # (R, N_f, 2) collocation points
    x_ic: torch.Tensor  # (N_x,)
    u_ic: torch.Tensor  # (R, N_x) initial condition at t_a
    t_a: float
    t_bc: torch.Tensor  # (N_b,) boundary times
    beta: torch.Tensor  # (R,)
    nu: torch.Tensor
    rho: torch.Tensor
    normalize: bool = False

    def __post_init__(self) -> None:
        R, dt = self.u_ic.shape[0], self.u_ic.dtype
        self.X_ic = torch.stack([self.x_ic, torch.full_like(self.x_ic, self.t_a)], -1).expand(R, -1, -1)
        lo = torch.stack([torch.zeros_like(self.t_bc), self.t_bc], -1)
        hi = torch.stack([torch.full_like(self.t_bc, 2 * math.pi), self.t_bc], -1)
        self.X_bc = torch.cat([lo, hi], 0).expand(R, -1, -1).to(dt)
        self.diffusive = (self.nu != 0).to(dt)

    def parts(self, net, create_graph: bool = True) -> dict[str, torch.Tensor]:
        nb = self.t_bc.shape[0]
        net = u_of(net, self.normalize)
        ic = (net(self.X_ic)[..., 0] - self.u_ic).pow(2).mean(1)
        if bool(torch.any(self.nu != 0)):
            d = derivatives(net, self.X_bc, second=False, create_graph=create_graph)
            u, ux = d["u"], d["u_x"]
            bc_x = self.diffusive * (ux[:, :nb] - ux[:, nb:]).pow(2).mean(1)
        else:
            u = net(self.X_bc)[..., 0]
            bc_x = torch.zeros_like(ic)
        bc = (u[:, :nb] - u[:, nb:]).pow(2).mean(1)
        res = residual(net, self.X_f, self.beta, self.nu, self.rho, create_graph=create_graph).pow(2).mean(1)
        return {"loss_ic": ic, "loss_bc": bc + bc_x, "loss_residual": res}

    def __call__(self, net, X=None, Y=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p = self.parts(net)
        return p["loss_ic"] + p["loss_bc"] + p["loss_residual"], p

    def total(self, net) -> torch.Tensor:
        """The loss without a graph for parameter gradients (e.g. for loss landscapes), shape (R,)."""
        with torch.enable_grad():
            p = self.parts(net, create_graph=False)
        return (p["loss_ic"] + p["loss_bc"] + p["loss_residual"]).detach()


@dataclass
class Setup:
    """R replicas: the problem, every replica's coefficients and seed (collocation draw), and the budget."""

    problem: str
    coefs: dict[str, np.ndarray]  # beta, nu, rho, each (R,)
    seeds: Sequence[int]
    n_collocation: int
    iterations: int  # total L-BFGS iterations per replica, whatever the mode
    nx: int = pde.NX
    nt: int = pde.NT
    lbfgs: dict = field(default_factory=dict)
    normalize: bool = False
    dtype: torch.dtype = torch.float32
    device: torch.device = torch.device("cpu")

    def __post_init__(self) -> None:
        pde._check(self.problem)
        self.x, self.t = pde.grid(self.nx, self.nt)
        self.u0 = pde.initial_condition(self.problem, self.x)

    @property
    def R(self) -> int:
        return len(self.seeds)

    def tensor(self, a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=self.dtype, device=self.device)

    def collocation(self, t_a: float, t_b: float, salt: int = 0) -> torch.Tensor:
        """(R, N_f, 2): every replica draws N_f distinct grid points with t_a <= t <= t_b using its own seed
        (all of them when the window holds fewer)."""
        tt = self.t[(self.t >= t_a - 1e-12) & (self.t <= t_b + 1e-12)]
        X, T = np.meshgrid(self.x, tt)
        pts = np.stack([X.ravel(), T.ravel()], -1)
        n = min(self.n_collocation, len(pts))
        out = [pts[np.random.default_rng([int(s), 7, salt]).choice(len(pts), n, replace=False)] for s in self.seeds]
        return self.tensor(np.stack(out))

    def loss(self, coefs: dict[str, np.ndarray], t_a: float, t_b: float, u_ic: torch.Tensor, salt: int = 0) -> PinnLoss:
        tt = self.t[(self.t >= t_a - 1e-12) & (self.t <= t_b + 1e-12)]
        return PinnLoss(
            X_f=self.collocation(t_a, t_b, salt),
            x_ic=self.tensor(self.x),
            u_ic=u_ic,
            t_a=t_a,
            t_bc=self.tensor(tt),
            normalize=self.normalize,
            **{k: self.tensor(coefs[k]) for k in COEFS},
        )

    def predict(self, net, t: np.ndarray | None = None) -> np.ndarray:
        """u on the grid x times t (default: the evaluation grid), shape (R, len(t), nx)."""
        t = self.t if t is None else np.asarray(t)
        X, T = np.meshgrid(self.x, t)
        pts = self.tensor(np.stack([X.ravel(), T.ravel()], -1))
        with torch.no_grad():
            u = u_of(net, self.normalize)(pts)[..., 0]
        return u.cpu().numpy().astype(np.float64).reshape(self.R, len(t), self.nx)


def curriculum_schedule(target: np.ndarray, start: float, stages: int) -> list[np.ndarray]:
    """Coefficients of every stage: linear from ``start`` (capped at the target) to the target in ``stages``
    steps; the last stage is the target itself."""
    target = np.asarray(target, dtype=float)
    first = np.minimum(start, target)
    if stages == 1:
        return [target]
    return [first + (target - first) * k / (stages - 1) for k in range(stages)]


def windows(dt: float) -> list[tuple[float, float]]:
    n = max(1, int(round(1.0 / dt)))
    edges = np.linspace(0.0, 1.0, n + 1)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _split(total: int, parts: int) -> list[int]:
    base = [total // parts] * parts
    for i in range(total - sum(base)):
        base[i] += 1
    return base


#: hook(stage, net, info) at the start of every stage; info: coefs, t_a, t_b, u_ic (R, nx), iterations
StageHook = Callable[[int, torch.nn.Module, dict], None]


@dataclass
class Trained:
    u: np.ndarray  # (R, nt, nx) prediction on the evaluation grid
    history: list[dict]  # replica, stage, iteration (global), loss parts
    stages: int


def mode_stages(
    setup: Setup, mode: str, curriculum: dict | None = None
) -> list[tuple[dict[str, np.ndarray], float, float]]:
    """(coefficients, t_a, t_b) of every stage of a training mode."""
    if mode == "plain":
        return [(setup.coefs, 0.0, 1.0)]
    if mode == "curriculum":
        cur = curriculum or {}
        key = "beta" if setup.problem == "convection" else ("nu" if setup.problem == "reaction_diffusion" else "rho")
        sched = curriculum_schedule(setup.coefs[key], float(cur.get("start", 1.0)), int(cur.get("stages", 4)))
        return [({**setup.coefs, key: c}, 0.0, 1.0) for c in sched]
    if mode.startswith("seq2seq_"):
        return [(setup.coefs, a, b) for a, b in windows(float(mode.split("_", 1)[1]))]
    raise ValueError(f"unknown PINN training mode {mode!r}; expected plain, curriculum or seq2seq_<dt>")


def train(
    net, setup: Setup, mode: str, curriculum: dict | None = None, hook: StageHook | None = None, where=None
) -> Trained:
    """Train the replicas of ``net`` in one mode with ``setup.iterations`` L-BFGS iterations in all; returns the
    prediction on the evaluation grid and the loss history by component."""
    stages = mode_stages(setup, mode, curriculum)
    iters = _split(setup.iterations, len(stages))
    u_ic = setup.tensor(np.broadcast_to(setup.u0, (setup.R, setup.nx)).copy())
    u_grid = np.zeros((setup.R, setup.nt, setup.nx))
    history: list[dict] = []
    offset = 0
    where = current() if where is None else where
    many = len(stages) > 4  # time marching: one progress line per few windows instead of a few per window
    every = max(1, math.ceil(len(stages) / 10))
    t0 = time.perf_counter()
    for k, ((coefs, t_a, t_b), n_it) in enumerate(zip(stages, iters)):
        if hook is not None:
            hook(k, net, {"coefs": coefs, "t_a": t_a, "t_b": t_b, "u_ic": u_ic.clone(), "iterations": n_it})
        loss = setup.loss(coefs, t_a, t_b, u_ic, salt=k)
        if n_it > 0:
            w = where.at(cell=f"{where.cell} stage {k + 1}/{len(stages)}") if len(stages) > 1 else where
            res = fit(
                net,
                None,
                None,
                epochs=n_it,
                lr=1.0,
                loss_fn=loss,
                optimizer="lbfgs",
                lbfgs=setup.lbfgs,
                where=w,
                progress_lines=0 if many else (10 if len(stages) == 1 else 3),
            )
            history += [{**h, "stage": k, "iteration": offset + h["epoch"]} for h in res.history]
            if many and ((k + 1) % every == 0 or k == len(stages) - 1):
                end = list({h["replica"]: h["train_loss"] for h in res.history}.values())  # each replica's last
                el = time.perf_counter() - t0
                log.info(
                    "%s %s: %s window %d/%d [%.3g, %.3g] done, loss mean %.4g max %.4g over %d replica(s), "
                    "elapsed %.0f s, ETA %.0f s",
                    where.study,
                    where.cell,
                    mode,
                    k + 1,
                    len(stages),
                    t_a,
                    t_b,
                    float(np.mean(end)),
                    float(np.max(end)),
                    setup.R,
                    el,
                    el / (k + 1) * (len(stages) - k - 1),
                )
        offset += n_it
        last = k == len(stages) - 1
        rows = (setup.t >= t_a - 1e-12) & ((setup.t <= t_b + 1e-12) if last else (setup.t < t_b - 1e-12))
        if mode.startswith("seq2seq_"):
            u_grid[:, rows] = setup.predict(net, setup.t[rows])
            u_ic = setup.tensor(setup.predict(net, np.array([t_b]))[:, 0])  # end state -> next window's IC
    if not mode.startswith("seq2seq_"):
        u_grid = setup.predict(net)
    for h in history:
        h.pop("epoch", None)
    return Trained(u=u_grid, history=history, stages=len(stages))


def errors(u_pred: np.ndarray, u_exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relative L2 error and mean absolute error on the grid, per replica: u_pred (R, nt, nx), u_exact
    (R, nt, nx) or (nt, nx)."""
    diff = (u_pred - u_exact).reshape(u_pred.shape[0], -1)
    ue = np.broadcast_to(u_exact, u_pred.shape).reshape(u_pred.shape[0], -1)
    return np.linalg.norm(diff, axis=1) / np.linalg.norm(ue, axis=1), np.abs(diff).mean(axis=1)
