"""Physics-informed networks for 1-D periodic PDEs  u_t + beta u_x - nu u_xx - rho u (1 - u) = 0  (x in [0, 2 pi),
t in [0, 1]); the three training modes of Krishnapriyan et al. (NeurIPS 2021) and causal training.

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
as initial condition, warm-started from the previous window's weights) and ``causal`` (below).

Causal training (Wang, Sankaran & Perdikaris 2022, "Respecting causality is all you need for training
physics-informed neural networks", arXiv 2203.07404; :func:`train_causal`): [t_a, t_b] = [0, 1] is cut into N_t
equal time chunks; L_r(t_i) is the mean squared residual over the residual points of chunk i (the plain mode's
own points), the chunk weights are w_i = exp(-eps sum_{k<i} L_r(t_k)) (w_1 = 1), computed from the current net
WITHOUT gradient (the paper's stop-gradient) for every replica on its own, and the residual term becomes
(1/N_t) sum_i w_i L_r(t_i) (chunks without points left out of the sum and of N_t), as per-point weights of
:class:`PinnLoss` (``weight``; None keeps every other mode bit-identical); IC and BC terms are unchanged. The eps
schedule is the paper's: eps in (1e-2, 1e-1, 1, 10, 100), moving to the next eps once min_i w_i > delta = 0.99
(the official code PredictiveIntelligenceLab/CausalPINNs, KS/Causal_PINNs_KS.py: ``tol_list = [1e-2, 1e-1, 1e0,
1e1, 1e2]``, ``n_t = 32`` chunks, ``if W_value.min() > 0.99: break``; jaxpi's configs use 16-32 chunks). One
difference from the official KS script: it adds 1e3 times the IC loss inside every weight's sum; we follow the
paper's formula (no IC term, w_1 = 1). **Adaptation:** the paper trains with Adam and recomputes the weights at
every step; here the optimizer is L-BFGS, whose line search and curvature pairs need one fixed loss, so the
weights cannot change inside one L-BFGS run. Causal training therefore runs in *rounds*: compute every replica's
weights from the current net, run one L-BFGS stage with them fixed (to its tolerances or ``round_max_iter``),
recompute; a replica advances its eps when its min weight > delta (possibly several levels at once, as the
official loop breaks at its first check) and stops training once it has passed the last eps, while its batch
companions go on (``lbfgs.minimize(active=...)``); at most ``max_rounds`` rounds (replicas that have not passed
the last eps by then are reported: stage rows ``causal_eps`` / ``causal_min_weight_end``). Every round restarts
L-BFGS's curvature history.

Budgets (``Setup.budget``): ``converge`` (default) trains every stage / window with L-BFGS until its own stopping
rules (loss change or step below ``tolerance_change``, gradient below ``tolerance_grad``) or the cap
``stage_max_iter`` (the study resolves it per mode: ``mode_max_iter``; causal rounds: ``round_max_iter``), whichever comes first -- the stop reason of every replica
and stage is reported; ``equal`` splits ``iterations`` evenly over the stages / windows (causal: over
``max_rounds`` rounds, so it spends at most the same total).

Residual points (``Setup.sampling``): ``uniform`` draws them uniformly in [0, 2 pi) x [t_a, t_b], so they reach
every window's end t_b; with ``points_per="mode"`` every mode sees the same number of distinct points
(``n_collocation`` over [0, 1]: plain and curriculum reuse one draw in every stage, a seq2seq window of width dt
draws round(n_collocation dt) of them in its own strip); ``points_per="stage"`` draws ``n_collocation`` fresh points
per stage / window. ``grid_interior`` is the official code's choice: grid points with x > 0 and t > 0.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from . import config
from . import lbfgs as lb
from .data import pde
from .guards import check_finite, current

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
    #: (R, N_f) per-point weights of the residual term (causal training: :func:`causal_point_weights`); None:
    #: the plain mean, every other mode
    weight: torch.Tensor | None = None

    def __post_init__(self) -> None:
        R, dt = self.u_ic.shape[0], self.u_ic.dtype
        self.X_ic = torch.stack([self.x_ic, torch.full_like(self.x_ic, self.t_a)], -1).expand(R, -1, -1)
        lo = torch.stack([torch.zeros_like(self.t_bc), self.t_bc], -1)
        hi = torch.stack([torch.full_like(self.t_bc, 2 * math.pi), self.t_bc], -1)
        self.X_bc = torch.cat([lo, hi], 0).expand(R, -1, -1).to(dt)
        self.diffusive = (self.nu != 0).to(dt)

    def parts(self, net, create_graph: bool = True, r2_out: list | None = None) -> dict[str, torch.Tensor]:
        """IC, BC and residual terms (R,) each; ``r2_out``: a list that receives the squared residuals (R, N_f)
        (causal rounds: their chunk losses from the same evaluation)."""
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
        r2 = residual(net, self.X_f, self.beta, self.nu, self.rho, create_graph=create_graph).pow(2)
        res = r2.mean(1) if self.weight is None else (self.weight * r2).mean(1)
        if r2_out is not None:
            r2_out.append(r2.detach())
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
    iterations: int  # budget="equal": total L-BFGS iterations per replica, whatever the mode
    nx: int = pde.NX
    nt: int = pde.NT
    lbfgs: dict = field(default_factory=dict)
    normalize: bool = False
    dtype: torch.dtype = torch.float32
    device: torch.device = torch.device("cpu")
    budget: str = "equal"  # equal | converge (module docstring)
    stage_max_iter: int = 1000  # budget="converge": cap of every stage / window
    sampling: str = "grid"  # residual points: grid (grid points in the window) | uniform | grid_interior
    points_per: str = "stage"  # stage | mode
    checkpoints: Sequence[int] = ()  # plain mode: keep the iterate after these many iterations (budget axis)

    def __post_init__(self) -> None:
        pde._check(self.problem)
        if self.budget not in ("equal", "converge"):
            raise ValueError(f"unknown PINN budget {self.budget!r}; expected equal or converge")
        if self.sampling not in ("grid", "uniform", "grid_interior"):
            raise ValueError(f"unknown residual sampling {self.sampling!r}; expected grid, uniform or grid_interior")
        self.x, self.t = pde.grid(self.nx, self.nt)
        self.u0 = pde.initial_condition(self.problem, self.x)

    @property
    def R(self) -> int:
        return len(self.seeds)

    def tensor(self, a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=self.dtype, device=self.device)

    def collocation(self, t_a: float, t_b: float, salt: int = 0, n: int | None = None) -> torch.Tensor:
        """(R, n, 2) residual points of every replica (its own seed), ``n`` default ``n_collocation``:
        ``uniform`` in [0, 2 pi) x [t_a, t_b]; ``grid`` / ``grid_interior``: distinct grid points with
        t_a <= t <= t_b (interior: x > 0, t > 0), all of them when the window holds fewer."""
        n = self.n_collocation if n is None else int(n)
        if self.sampling == "uniform":
            out = []
            for s in self.seeds:
                rng = np.random.default_rng([int(s), 11, salt])
                out.append(np.stack([rng.uniform(0.0, 2 * math.pi, n), rng.uniform(t_a, t_b, n)], -1))
            return self.tensor(np.stack(out))
        xs = self.x[1:] if self.sampling == "grid_interior" else self.x
        keep = (self.t >= t_a - 1e-12) & (self.t <= t_b + 1e-12)
        if self.sampling == "grid_interior":
            keep &= self.t > 0
        X, T = np.meshgrid(xs, self.t[keep])
        pts = np.stack([X.ravel(), T.ravel()], -1)
        n = min(n, len(pts))
        out = [pts[np.random.default_rng([int(s), 7, salt]).choice(len(pts), n, replace=False)] for s in self.seeds]
        return self.tensor(np.stack(out))

    def loss(
        self,
        coefs: dict[str, np.ndarray],
        t_a: float,
        t_b: float,
        u_ic: torch.Tensor,
        salt: int = 0,
        n: int | None = None,
    ) -> PinnLoss:
        tt = self.t[(self.t >= t_a - 1e-12) & (self.t <= t_b + 1e-12)]
        if self.sampling == "uniform":  # boundary points up to the window's end as well
            tt = np.unique(np.concatenate([[t_a], tt, [t_b]]))
        return PinnLoss(
            X_f=self.collocation(t_a, t_b, salt, n),
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
    #: one row per replica and stage: iterations, evaluations, stop reason, wall_s, the stage's own final loss
    #: parts, rel_l2_stage (error on the stage's rows against the stage's own reference)
    stage_rows: list[dict] = field(default_factory=list)
    #: plain mode: iteration count -> prediction (R, nt, nx) of the iterate kept there (``Setup.checkpoints``)
    kept: dict = field(default_factory=dict)


def _flat(net) -> tuple[list[torch.nn.Parameter], list[int]]:
    params = [p for p in net.parameters() if p.requires_grad]
    return params, [p[0].numel() for p in params]


def _set_flat(params, sizes, theta: torch.Tensor) -> None:
    with torch.no_grad():
        for p, chunk in zip(params, torch.split(theta, sizes, dim=1)):
            p.copy_(chunk.reshape(p.shape))


def lbfgs_stage(
    net,
    loss: PinnLoss,
    options: lb.LBFGSOptions,
    where,
    keep_at: Sequence[int] = (),
    driver: str = "vectorized",
    label: str = "",
    active: np.ndarray | None = None,
) -> tuple[lb.Info, list[dict], dict]:
    """Minimize ``loss`` over the replicas of ``net`` with one L-BFGS per replica (:func:`nnrds.lbfgs.minimize`;
    ``driver="generators"``: the previous per-replica driver, for benchmarks). Returns (info, history rows
    {replica, epoch, train_loss, loss_ic, loss_bc, loss_residual}, kept iterates {count: (R, P)}); the net ends
    at the final points; ``active`` (R,) bool: only these replicas move (:func:`nnrds.lbfgs.minimize`, vectorized
    driver only). Non-finite losses or gradients fail via :func:`nnrds.guards.check_finite`."""
    params, sizes = _flat(net)
    R = params[0].shape[0]
    names = ("loss_ic", "loss_bc", "loss_residual")
    n_eval = [0]
    t0, last_log = time.perf_counter(), [time.perf_counter()]

    def evaluate(theta: torch.Tensor):
        _set_flat(params, sizes, theta)
        for p in params:
            p.grad = None
        with torch.enable_grad():
            parts = loss.parts(net)
            total = parts["loss_ic"] + parts["loss_bc"] + parts["loss_residual"]
            total.sum().backward()
        grads = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(R, -1) for p in params], 1)
        n_eval[0] += 1
        step = f"{label}L-BFGS evaluation {n_eval[0]}"
        check_finite(total.detach(), where=where, step=step, what="loss")
        check_finite(grads, where=where, step=step, what="gradient")
        aux = torch.stack([parts[k].detach() for k in names], 1).cpu().double().numpy()
        return total.detach(), grads.detach(), aux

    history: list[dict] = []

    def record(r: int, it: int, f: float, aux) -> None:
        history.append({"replica": r, "epoch": it, "train_loss": f, **dict(zip(names, map(float, aux)))})

    def on_round(rnd: int, done: list[int]) -> None:
        now = time.perf_counter()
        if now - last_log[0] >= 30.0:
            last_log[0] = now
            log.info(
                "%s %s: %sL-BFGS round %d, iterations done min %d / max %d (cap %d) over %d replica(s), elapsed %.0f s",
                where.study,
                where.cell,
                label,
                rnd,
                min(done),
                max(done),
                options.max_iter,
                R,
                now - t0,
            )

    theta0 = torch.cat([p.detach().reshape(R, -1) for p in params], 1)
    info = lb.Info()
    if driver == "generators":
        if active is not None:
            raise ValueError("lbfgs_stage: active replicas need the vectorized driver")
        theta = lb.minimize_generators(evaluate, theta0, options, record=record, on_round=on_round)
        last = {h["replica"]: h["epoch"] for h in history}
        info = lb.Info(  # the old driver keeps no account: iterations from the history, rounds for evaluations
            iterations=np.array([last.get(r, 0) for r in range(R)]),
            evaluations=np.full(R, n_eval[0]),
            reason=["unknown"] * R,
            wall_s=np.full(R, time.perf_counter() - t0),
            rounds=n_eval[0],
        )
    else:
        theta = lb.minimize(
            evaluate, theta0, options, record=record, on_round=on_round, info=info, keep_at=keep_at, active=active
        )
    _set_flat(params, sizes, theta)
    for p in params:
        p.grad = None
    check_finite(dict(net.named_parameters()), where=where, step=f"after {label}L-BFGS", what="parameter")
    history.sort(key=lambda h: (h["replica"], h["epoch"]))
    return info, history, info.kept


def _stage_reference(setup: Setup, coefs: dict[str, np.ndarray], t: np.ndarray) -> np.ndarray:
    """The reference solution of every replica's own coefficients on x times ``t``: (R, len(t), nx)."""
    return np.stack(
        [
            pde.reference_solution(setup.problem, {k: float(coefs[k][r]) for k in COEFS}, setup.x, setup.t)[
                np.isin(setup.t, t)
            ]
            for r in range(setup.R)
        ]
    )


def _stage_rows(
    setup: Setup,
    net,
    loss: PinnLoss,
    coefs: dict[str, np.ndarray],
    k: int,
    t_a: float,
    t_b: float,
    n_it: int,
    info: lb.Info,
    rel_stage: np.ndarray,
    replicas: Sequence[int] | None = None,
    extra: dict[str, np.ndarray] | None = None,
    parts: dict[str, torch.Tensor] | None = None,
) -> list[dict]:
    """One :attr:`Trained.stage_rows` row per replica (``replicas``, default all) of stage k: its L-BFGS account,
    the stage's own final loss parts (``parts``: already evaluated, else ``loss.parts`` at the net) and
    ``rel_stage``; ``extra``: more columns, arrays over the replicas."""
    if parts is None:
        with torch.enable_grad():
            parts = loss.parts(net, create_graph=False)
    own = {n: v.detach().cpu().double().numpy() for n, v in parts.items()}
    rows = []
    for r in range(setup.R) if replicas is None else replicas:
        rows.append(
            {
                "replica": r,
                "stage": k,
                "t_a": t_a,
                "t_b": t_b,
                "stage_coef": float(coefs[_swept(setup.problem)][r]),
                "n_residual_points": int(loss.X_f.shape[1]),
                "cap": int(n_it),
                "iterations": int(info.iterations[r]),
                "evaluations": int(info.evaluations[r]),
                "stop_reason": info.reason[r],
                "wall_s": float(info.wall_s[r]),
                **{n: float(own[n][r]) for n in own},
                "loss_total": float(sum(own[n][r] for n in own)),
                "rel_l2_stage": float(rel_stage[r]),
                **{c: float(v[r]) for c, v in (extra or {}).items()},
            }
        )
    return rows


def _empty_info(R: int) -> lb.Info:
    return lb.Info(
        iterations=np.zeros(R, dtype=int),
        evaluations=np.zeros(R, dtype=int),
        reason=["none"] * R,
        wall_s=np.zeros(R),
    )


# ---------------------------------------------------------------------------------------------------- causal
def causal_defaults() -> dict:
    """The settings of causal training (:func:`train_causal`) that a study leaves unset: the defaults of the
    config schema (workflow/schemas/studies/pinn_failure.schema.yaml, ``pinn_failure.causal``), the single source
    (a validated config carries them already)."""
    return config.schema_defaults("pinn_failure", "causal")


def chunk_index(t: torch.Tensor, t_a: float, t_b: float, chunks: int) -> torch.Tensor:
    """The time chunk of every residual point: [t_a, t_b] cut into ``chunks`` equal parts, t (R, N) -> (R, N)
    int64 in [0, chunks) (t_b itself belongs to the last chunk)."""
    k = torch.floor((t - t_a) / (t_b - t_a) * chunks).long()
    return k.clamp(0, chunks - 1)


def chunk_losses(r2: torch.Tensor, idx: torch.Tensor, chunks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-chunk residual losses L_r(t_i) = mean of the squared residuals ``r2`` (R, N) over the chunk's points
    (0 for a chunk without points) and the points per chunk, both (R, chunks); one-hot sums, deterministic."""
    oh = torch.nn.functional.one_hot(idx, chunks).to(r2.dtype)
    counts = oh.sum(1)
    sums = (r2[..., None] * oh).sum(1)
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.zeros_like(sums)), counts


def causal_weights(L: np.ndarray, eps) -> np.ndarray:
    """w_i = exp(-eps sum_{k<i} L_k) per replica: L (R, N_t) per-chunk losses, eps scalar or (R,); w_1 = 1."""
    L = np.asarray(L, dtype=float)
    before = np.concatenate([np.zeros((L.shape[0], 1)), np.cumsum(L, 1)[:, :-1]], 1)
    return np.exp(-np.broadcast_to(np.asarray(eps, dtype=float), (L.shape[0],))[:, None] * before)


def causal_advance(
    L: np.ndarray, level: np.ndarray, epsilons: Sequence[float], delta: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The eps schedule of Wang, Sankaran & Perdikaris (2022) per replica: a replica at ``level`` (index into
    ``epsilons``) moves to the next eps while its min_i w_i > ``delta`` at its current eps (checked again at
    the new eps, so several levels can pass at once). Returns (new level, weights (R, N_t) at each replica's
    eps -- the last eps for replicas past it --, done = passed the last eps)."""
    eps = np.asarray(epsilons, dtype=float)
    level = np.asarray(level, dtype=int).copy()
    while True:
        w = causal_weights(L, eps[np.minimum(level, len(eps) - 1)])
        go = (level < len(eps)) & (w.min(1) > delta)
        if not go.any():
            return level, w, level >= len(eps)
        level[go] += 1


def causal_point_weights(w: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per-point weights (R, N) of :attr:`PinnLoss.weight` so that the weighted residual mean is
    (1 / N_t) sum_i w_i L_r(t_i) over the N_t chunks that hold points: point p of chunk i gets
    w_i N / (N_t n_i) (n_i points in chunk i)."""
    N = idx.shape[1]
    n_t = (counts > 0).sum(1, keepdim=True).to(w.dtype)
    per_chunk = torch.where(counts > 0, w * N / (n_t * counts.clamp(min=1)), torch.zeros_like(w))
    return torch.gather(per_chunk, 1, idx)


def train_causal(
    net, setup: Setup, causal: dict | None = None, hook: StageHook | None = None, where=None, driver="vectorized"
) -> Trained:
    """Causal training (module docstring) in rounds: compute every replica's chunk weights from the current net,
    run one L-BFGS stage with them fixed (to its tolerances or the round's cap), recompute; a replica moves to
    the next eps when its min weight > delta and stops training once it has passed the last eps (it stays as it
    is while the others go on); at most ``max_rounds`` rounds. Stage rows: one per replica and round it trained
    (round 0 for every replica), with ``causal_eps`` (the eps of the round), ``causal_min_weight`` (min_i w_i it
    trained with) and ``causal_min_weight_end`` (min_i w_i at the same eps after the round: > delta means it
    passed that eps); their loss columns are the unweighted loss (comparable with plain)."""
    cfg = {**causal_defaults(), **(causal or {})}
    eps = [float(e) for e in cfg["epsilons"]]
    chunks, delta, n_rounds = int(cfg["chunks"]), float(cfg["delta"]), int(cfg["max_rounds"])
    caps = _split(setup.iterations, n_rounds) if setup.budget == "equal" else [int(cfg["round_max_iter"])] * n_rounds
    R, coefs = setup.R, setup.coefs
    where = current() if where is None else where
    u_ic = setup.tensor(np.broadcast_to(setup.u0, (R, setup.nx)).copy())
    base = setup.loss(coefs, 0.0, 1.0, u_ic, salt=0)  # the plain mode's residual points
    idx = chunk_index(base.X_f[..., 1], 0.0, 1.0, chunks)
    ref = _stage_reference(setup, coefs, setup.t)

    def chunk_L() -> tuple[np.ndarray, torch.Tensor, dict[str, torch.Tensor]]:
        """Per-chunk losses, points per chunk and the unweighted loss parts, from one evaluation at the net."""
        r2: list[torch.Tensor] = []
        with torch.enable_grad():
            parts = base.parts(net, create_graph=False, r2_out=r2)
        L, counts = chunk_losses(r2[0], idx, chunks)
        return L.cpu().double().numpy(), counts, {n: v.detach() for n, v in parts.items()}

    level = np.zeros(R, dtype=int)
    history: list[dict] = []
    stage_rows: list[dict] = []
    offset = np.zeros(R, dtype=int)
    L, counts, _ = chunk_L()
    t0, rounds = time.perf_counter(), 0
    for k in range(n_rounds):
        level, w, done = causal_advance(L, level, eps, delta)
        if done.all() and k > 0:
            break
        rounds = k + 1
        eps_r = np.asarray(eps)[np.minimum(level, len(eps) - 1)]
        loss = dataclasses.replace(base, weight=causal_point_weights(setup.tensor(w), idx, counts))
        if hook is not None:
            info_h = {"coefs": coefs, "t_a": 0.0, "t_b": 1.0, "u_ic": u_ic.clone(), "iterations": caps[k]}
            hook(k, net, {**info_h, "epsilon": eps_r.copy(), "weights": w.copy(), "active": ~done})
        info = _empty_info(R)
        if caps[k] > 0 and not done.all():
            opts = lb.LBFGSOptions(**{**setup.lbfgs, "max_iter": caps[k]})
            w_at = where.at(cell=f"{where.cell} causal round {k + 1}")
            info, hist, _ = lbfgs_stage(
                net, loss, opts, w_at, driver=driver, label=f"causal round {k + 1} ", active=~done
            )
            history += [
                {**h, "stage": k, "iteration": offset[h["replica"]] + h["epoch"]}
                for h in hist
                if not done[h["replica"]]
            ]
        offset += np.asarray(info.iterations, dtype=int)
        L, counts, parts = chunk_L()
        keep = list(range(R)) if k == 0 else [int(r) for r in np.flatnonzero(~done)]
        extra = {
            "causal_eps": eps_r,
            "causal_min_weight": w.min(1),
            "causal_min_weight_end": causal_weights(L, eps_r).min(1),
        }
        rel = errors(setup.predict(net), ref)[0]
        stage_rows += _stage_rows(setup, net, base, coefs, k, 0.0, 1.0, caps[k], info, rel, keep, extra, parts)
        log.info(
            "%s %s: causal round %d/%d done, eps levels %s, replicas past the last eps %d/%d, min weight "
            "median %.3g, iterations mean %.0f, elapsed %.0f s",
            where.study,
            where.cell,
            k + 1,
            n_rounds,
            np.bincount(np.minimum(level, len(eps) - 1), minlength=len(eps)).tolist(),
            int(done.sum()),
            R,
            float(np.median(w.min(1))),
            float(np.mean(info.iterations)),
            time.perf_counter() - t0,
        )
    for h in history:
        h.pop("epoch", None)
    return Trained(u=setup.predict(net), history=history, stages=rounds, stage_rows=stage_rows)


def mode_stages(
    setup: Setup, mode: str, curriculum: dict | None = None
) -> list[tuple[dict[str, np.ndarray], float, float]]:
    """(coefficients, t_a, t_b) of every stage of a training mode."""
    if mode == "plain":
        return [(setup.coefs, 0.0, 1.0)]
    if mode == "curriculum":
        cur = curriculum or {}
        key = _swept(setup.problem)
        sched = curriculum_schedule(setup.coefs[key], float(cur.get("start", 1.0)), int(cur.get("stages", 4)))
        return [({**setup.coefs, key: c}, 0.0, 1.0) for c in sched]
    if mode.startswith("seq2seq_"):
        return [(setup.coefs, a, b) for a, b in windows(float(mode.split("_", 1)[1]))]
    raise ValueError(f"unknown PINN training mode {mode!r}; expected plain, curriculum, causal or seq2seq_<dt>")


def train(
    net,
    setup: Setup,
    mode: str,
    curriculum: dict | None = None,
    hook: StageHook | None = None,
    where=None,
    driver: str = "vectorized",
    causal: dict | None = None,
) -> Trained:
    """Train the replicas of ``net`` in one mode (budget, residual points: ``setup``, module docstring); returns
    the prediction on the evaluation grid, the loss history by component, per-replica per-stage accounts and
    (plain mode) the predictions at ``setup.checkpoints``. ``causal``: settings of mode ``causal``
    (:func:`causal_defaults`, :func:`train_causal`)."""
    if mode == "causal":
        return train_causal(net, setup, causal, hook=hook, where=where, driver=driver)
    stages = mode_stages(setup, mode, curriculum)
    if setup.budget == "equal":
        iters = _split(setup.iterations, len(stages))
    else:
        iters = [int(setup.stage_max_iter)] * len(stages)
    seq = mode.startswith("seq2seq_")
    u_ic = setup.tensor(np.broadcast_to(setup.u0, (setup.R, setup.nx)).copy())
    u_grid = np.zeros((setup.R, setup.nt, setup.nx))
    history: list[dict] = []
    stage_rows: list[dict] = []
    kept_u: dict = {}
    offset = np.zeros(setup.R, dtype=int)
    where = current() if where is None else where
    t0 = time.perf_counter()
    for k, ((coefs, t_a, t_b), n_it) in enumerate(zip(stages, iters)):
        if hook is not None:
            hook(k, net, {"coefs": coefs, "t_a": t_a, "t_b": t_b, "u_ic": u_ic.clone(), "iterations": n_it})
        if setup.points_per == "mode":  # one set of distinct points per mode (module docstring)
            n_pts = max(1, int(round(setup.n_collocation * (t_b - t_a)))) if seq else None
            loss = setup.loss(coefs, t_a, t_b, u_ic, salt=k if seq else 0, n=n_pts)
        else:
            loss = setup.loss(coefs, t_a, t_b, u_ic, salt=k)
        info = _empty_info(setup.R)
        keep = [c for c in setup.checkpoints] if mode == "plain" else []
        if n_it > 0:
            w = where.at(cell=f"{where.cell} stage {k + 1}/{len(stages)}") if len(stages) > 1 else where
            opts = lb.LBFGSOptions(**{**setup.lbfgs, "max_iter": n_it})
            info, hist, kept = lbfgs_stage(
                net, loss, opts, w, keep_at=keep, driver=driver, label=f"stage {k + 1}/{len(stages)} "
            )
            history += [{**h, "stage": k, "iteration": offset[h["replica"]] + h["epoch"]} for h in hist]
            if kept:
                params, sizes = _flat(net)
                final = torch.cat([p.detach().reshape(setup.R, -1) for p in params], 1)
                for c, th in kept.items():
                    _set_flat(params, sizes, th)
                    kept_u[c] = setup.predict(net)
                _set_flat(params, sizes, final)
        offset += np.asarray(info.iterations, dtype=int)
        last = k == len(stages) - 1
        rows = (setup.t >= t_a - 1e-12) & ((setup.t <= t_b + 1e-12) if last else (setup.t < t_b - 1e-12))
        u_stage = setup.predict(net, setup.t[rows] if seq else None)
        if seq:
            u_grid[:, rows] = u_stage
            ref = _stage_reference(setup, coefs, setup.t[rows])
        else:
            ref = _stage_reference(setup, coefs, setup.t)
        stage_rows += _stage_rows(setup, net, loss, coefs, k, t_a, t_b, n_it, info, errors(u_stage, ref)[0])
        if seq:
            u_ic = setup.tensor(setup.predict(net, np.array([t_b]))[:, 0])  # end state -> next window's IC
        if len(stages) > 4 and ((k + 1) % max(1, math.ceil(len(stages) / 10)) == 0 or last):
            el = time.perf_counter() - t0
            log.info(
                "%s %s: %s stage %d/%d [%.3g, %.3g] done, iterations mean %.0f, loss mean %.4g max %.4g over %d "
                "replica(s), elapsed %.0f s, ETA %.0f s",
                where.study,
                where.cell,
                mode,
                k + 1,
                len(stages),
                t_a,
                t_b,
                float(np.mean(info.iterations)),
                float(np.mean([r["loss_total"] for r in stage_rows[-setup.R :]])),
                float(np.max([r["loss_total"] for r in stage_rows[-setup.R :]])),
                setup.R,
                el,
                el / (k + 1) * (len(stages) - k - 1),
            )
    if not seq:
        u_grid = setup.predict(net)
    for h in history:
        h.pop("epoch", None)
    return Trained(u=u_grid, history=history, stages=len(stages), stage_rows=stage_rows, kept=kept_u)


def _swept(problem: str) -> str:
    return {"convection": "beta", "reaction": "rho", "reaction_diffusion": "nu"}[problem]


def errors(u_pred: np.ndarray, u_exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relative L2 error and mean absolute error on the grid, per replica: u_pred (R, nt, nx), u_exact
    (R, nt, nx) or (nt, nx)."""
    diff = (u_pred - u_exact).reshape(u_pred.shape[0], -1)
    ue = np.broadcast_to(u_exact, u_pred.shape).reshape(u_pred.shape[0], -1)
    return np.linalg.norm(diff, axis=1) / np.linalg.norm(ue, axis=1), np.abs(diff).mean(axis=1)
