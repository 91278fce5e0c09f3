"""A chain-vectorized NUTS in torch (multinomial NUTS with the generalized U-turn criterion).

All C chains advance together: every leapfrog step is ONE batched potential/gradient evaluation of shape
(C, dim), so C chains cost about what one costs when the network is small (the per-step cost is Python and
kernel-launch overhead, not flops). Each chain has its own direction choices, tree, U-turn / divergence
stops (masked: a stopped chain's further leapfrog results are discarded), step size and diagonal mass
matrix, so each chain is exactly the sampler of Hoffman & Gelman (2014) / Betancourt (2017) as in Stan,
Pyro and NumPyro: multinomial sampling within subtrees, biased progressive sampling at the top level,
generalized U-turn criterion on the summed momentum (Pyro's ``_is_turning``), divergence when the energy
error exceeds ``max_delta_energy``.

Warm-up (building blocks in :mod:`nnrds.uq.adaptation`): dual-averaging step-size adaptation (target acceptance
``target_accept``) per chain, and a windowed mass-matrix adaptation on Stan's schedule -- ``metric="diag"``: a
diagonal metric per chain (Stan's default); ``metric="dense"``: one dense metric, the covariance of the window's
draws pooled over all chains (shrunk toward its diagonal and regularized). Both are frozen before the first kept
draw, so the kept draws are a correct HMC chain with a fixed kernel. Device-agnostic: the sampler runs where
``q0`` lives (CPU or CUDA), its random numbers come from a generator on that device.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..guards import Where, check_finite
from .adaptation import (  # noqa: F401
    MIN_DA_ITERS,
    MIN_WARMUP_FOR_MASS,
    DualAveraging,
    WelfordCovariance,
    WelfordVariance,
    adaptation_windows,
    find_reasonable_step_size,
)

log = logging.getLogger(__name__)

METRICS = ("diag", "dense")


@dataclass
class _Tree:
    q_l: torch.Tensor
    p_l: torch.Tensor
    g_l: torch.Tensor
    q_r: torch.Tensor
    p_r: torch.Tensor
    g_r: torch.Tensor
    q_prop: torch.Tensor
    U_prop: torch.Tensor
    g_prop: torch.Tensor
    log_w: torch.Tensor  # log sum of exp(-H) relative to the initial H (C,)
    r_sum: torch.Tensor
    turning: torch.Tensor  # (C,) bool
    diverging: torch.Tensor  # (C,) bool
    sum_accept: torch.Tensor
    n_prop: torch.Tensor


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, *([1] * (a.dim() - 1))), a, b)


def _edge(fwd: torch.Tensor, t: _Tree):
    """(q, p, g) at the end of tree t in each chain's direction (right end where fwd, else left)."""
    return _where(fwd, t.q_r, t.q_l), _where(fwd, t.p_r, t.p_l), _where(fwd, t.g_r, t.g_l)


def _select(mask: torch.Tensor, a: _Tree, b: _Tree) -> _Tree:
    """Per chain: every field of ``a`` where ``mask``, of ``b`` elsewhere."""
    return _Tree(
        *[
            (_where(mask, x, y) if x.dim() > 1 else torch.where(mask, x, y))
            for x, y in zip(a.__dict__.values(), b.__dict__.values())
        ]
    )


def _join_ends(fwd: torch.Tensor, old: _Tree, new: _Tree):
    """Ends (q_l, p_l, g_l, q_r, p_r, g_r) of ``old`` extended by ``new`` (built beyond old's end in each
    chain's direction) and the summed momentum."""
    return (
        _where(fwd, old.q_l, new.q_l),
        _where(fwd, old.p_l, new.p_l),
        _where(fwd, old.g_l, new.g_l),
        _where(fwd, new.q_r, old.q_r),
        _where(fwd, new.p_r, old.p_r),
        _where(fwd, new.g_r, old.g_r),
        old.r_sum + new.r_sum,
    )


class VectorizedNUTS:
    """NUTS over C chains at once for a batched potential ``U(q: (C, dim)) -> (C,)``."""

    def __init__(
        self,
        potential: Callable[[torch.Tensor], torch.Tensor],
        *,
        max_tree_depth: int = 8,
        target_accept: float = 0.8,
        max_delta_energy: float = 1000.0,
        seed: int = 0,
        metric: str = "diag",
        value_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    ):
        """``value_and_grad``: (U(q), dU/dq) of the same potential (e.g. a hand-written gradient); default:
        autograd of ``potential``."""
        if metric not in METRICS:
            raise ValueError(f"VectorizedNUTS metric must be one of {METRICS}, got {metric!r}")
        self.U = potential
        self.max_tree_depth = max_tree_depth
        self.target = target_accept
        self.max_dE = max_delta_energy
        self.seed = int(seed)
        self.metric = metric
        self.gen = torch.Generator().manual_seed(self.seed)
        self.n_grad = 0  # batched potential+gradient evaluations (x chains = gradient evaluations)
        self.minv = None
        self._vg = value_and_grad

    # ---------------------------------------------------------------------------------- metric
    def set_metric(self, minv: torch.Tensor) -> None:
        """Inverse mass matrix: (C, D) per-chain diagonal or (D, D) dense (shared by all chains)."""
        self.minv = minv
        if minv.dim() == 2 and self.metric == "dense":
            # momenta p ~ N(0, M), M = minv^-1: p = L^-T z with L L^T = minv
            self._minv_chol = torch.linalg.cholesky(minv)

    def _velocity(self, p):
        return p @ self.minv if self.metric == "dense" else self.minv * p

    def _momentum(self, shape, dtype):
        z = torch.randn(shape, generator=self.gen, dtype=dtype, device=self.gen.device)
        if self.metric == "dense":
            return torch.linalg.solve_triangular(self._minv_chol.T, z.T, upper=True).T
        return z / self.minv.sqrt()

    # ---------------------------------------------------------------------------------- dynamics
    def _value_and_grad(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.n_grad += 1
        if self._vg is not None:
            with torch.no_grad():
                return self._vg(q)
        q = q.detach().requires_grad_(True)
        with torch.enable_grad():
            u = self.U(q)
            (g,) = torch.autograd.grad(u.sum(), q)
        return u.detach(), g.detach()

    def _leapfrog(self, q, p, g, eps):  # eps (C,) signed step size
        e = eps[:, None]
        p = p - 0.5 * e * g
        q = q + e * self._velocity(p)
        U, g = self._value_and_grad(q)
        p = p - 0.5 * e * g
        return q, p, g, U

    def _kinetic(self, p):
        return 0.5 * (self._velocity(p) * p).sum(-1)

    def _turning(self, p_l, p_r, r_sum):
        rho = r_sum - 0.5 * (p_l + p_r)
        return ((self._velocity(p_l) * rho).sum(-1) <= 0) | ((self._velocity(p_r) * rho).sum(-1) <= 0)

    def _uniform(self, C, dtype):
        return torch.rand(C, generator=self.gen, dtype=dtype, device=self.gen.device)

    def _merge(self, fwd, a: _Tree, b: _Tree, take, b_turning=None) -> _Tree:
        """The trajectory of ``a`` extended by ``b`` (built in direction ``fwd``): the outer ends, ``b``'s proposal
        for the chains of ``take`` (``a``'s for the others), summed weights and accept statistics, ``b``'s divergence;
        turning where the merged ends make a U-turn (or ``b_turning``)."""
        q_l, p_l, g_l, q_r, p_r, g_r, r_sum = _join_ends(fwd, a, b)
        turning = self._turning(p_l, p_r, r_sum)
        if b_turning is not None:
            turning = b_turning | turning
        return _Tree(
            q_l,
            p_l,
            g_l,
            q_r,
            p_r,
            g_r,
            _where(take, b.q_prop, a.q_prop),
            torch.where(take, b.U_prop, a.U_prop),
            _where(take, b.g_prop, a.g_prop),
            torch.logaddexp(a.log_w, b.log_w),
            r_sum,
            turning,
            b.diverging,
            a.sum_accept + b.sum_accept,
            a.n_prop + b.n_prop,
        )

    def _build(self, q, p, g, direction, depth, H0, eps) -> _Tree:
        if depth == 0:
            q1, p1, g1, U1 = self._leapfrog(q, p, g, direction * eps)
            H1 = U1 + self._kinetic(p1)
            dH = H1 - H0
            dH = torch.where(torch.isnan(dH), torch.full_like(dH, math.inf), dH)
            div = dH > self.max_dE
            acc = torch.clamp(torch.exp(-dH), max=1.0)
            one = torch.ones_like(H0)
            return _Tree(q1, p1, g1, q1, p1, g1, q1, U1, g1, -dH, p1.clone(), torch.zeros_like(div), div, acc, one)
        a = self._build(q, p, g, direction, depth - 1, H0, eps)
        fwd = direction > 0
        b = self._build(*_edge(fwd, a), direction, depth - 1, H0, eps)
        ok = ~(a.turning | a.diverging)  # chains for which the second half counts
        log_w = torch.logaddexp(a.log_w, b.log_w)
        take_b = self._uniform(len(log_w), log_w.dtype) < torch.exp(b.log_w - log_w)
        take_b = take_b & ok
        out = self._merge(fwd, a, b, take_b, b.turning)
        return _select(ok, out, a)  # chains whose first half already stopped keep the first half unchanged

    def step(self, q, U, g, eps):
        """One NUTS transition for every chain. Returns q, U, g, mean accept prob, diverging, tree depth."""
        C, dtype, dev = q.shape[0], q.dtype, q.device
        p = self._momentum(q.shape, dtype)
        H0 = U + self._kinetic(p)
        tree = _Tree(
            q,
            p,
            g,
            q,
            p,
            g,
            q,
            U,
            g,
            torch.zeros_like(U),
            p.clone(),
            torch.zeros(C, dtype=torch.bool, device=dev),
            torch.zeros(C, dtype=torch.bool, device=dev),
            torch.zeros_like(U),
            torch.zeros_like(U),
        )
        active = torch.ones(C, dtype=torch.bool, device=dev)
        depth_used = torch.zeros(C, dtype=torch.long, device=dev)
        diverged = torch.zeros(C, dtype=torch.bool, device=dev)
        for depth in range(self.max_tree_depth):
            direction = torch.where(self._uniform(C, dtype) < 0.5, -1.0, 1.0).to(dtype)
            fwd = direction > 0
            new = self._build(*_edge(fwd, tree), direction, depth, H0, eps)
            good = active & ~(new.turning | new.diverging)
            # biased progressive sampling at the top level
            take = good & (self._uniform(C, dtype) < torch.exp(new.log_w - tree.log_w).clamp(max=1.0))
            merged = self._merge(fwd, tree, new, take)
            # accept statistics count every leapfrog step of an active chain (as Stan / Pyro)
            upd_stats = active
            tree = _select(good, merged, tree)
            tree.sum_accept = torch.where(upd_stats & ~good, tree.sum_accept + new.sum_accept, tree.sum_accept)
            tree.n_prop = torch.where(upd_stats & ~good, tree.n_prop + new.n_prop, tree.n_prop)
            diverged = diverged | (active & new.diverging)
            depth_used = torch.where(active, torch.full_like(depth_used, depth + 1), depth_used)
            active = good & ~tree.turning
            if not bool(active.any()):
                break
        accept = tree.sum_accept / tree.n_prop.clamp_min(1.0)
        self.n_leapfrog = tree.n_prop  # (C,) leapfrog steps each chain used (NumPyro's num_steps)
        return tree.q_prop, tree.U_prop, tree.g_prop, accept, diverged, depth_used

    # ---------------------------------------------------------------------------------- sampling
    def _one_step_delta_h(self, q, U, g):
        """dH(eps) of one leapfrog step from (q, U, g) with fresh momenta (for the step-size heuristic)."""

        def dh(eps):
            p = self._momentum(q.shape, q.dtype)
            H0 = U + self._kinetic(p)
            _, p1, _, U1 = self._leapfrog(q, p, g, eps)
            return (U1 + self._kinetic(p1)) - H0

        return dh

    def _end_window(self, est, q, U, g, eps):
        """A slow window ended: the metric becomes the window's (regularized) estimate, the step size is searched
        again for it."""
        self.set_metric(est.covariance() if self.metric == "dense" else est.variance())
        return find_reasonable_step_size(self._one_step_delta_h(q, U, g), eps)

    def _new_estimator(self, C, D, dtype, device):
        return WelfordCovariance(D, dtype, device) if self.metric == "dense" else WelfordVariance(C, D, dtype, device)

    def run(
        self,
        q0: torch.Tensor,
        warmup: int,
        samples: int,
        callback=None,
        where: Where | None = None,
        inv_mass: torch.Tensor | None = None,
        step_size: torch.Tensor | float | None = None,
    ) -> dict:
        """Warm-up then ``samples`` kept draws for every chain. Every iteration's state (position and potential)
        must be finite: otherwise :class:`nnrds.guards.NonFiniteError` names the chain(s) and the iteration
        (``where`` names the study, job and config key). Progress goes to :mod:`logging` ~10 times per run.

        ``inv_mass`` and ``step_size`` (both or neither) fix the kernel: that metric ((D, D) dense or (C, D)
        diagonal, as ``metric``) and step size (a number or (C,)) throughout, nothing adapted, no step-size
        heuristic; the ``warmup`` iterations are then burn-in."""
        C, D = q0.shape
        dtype, dev = q0.dtype, q0.device
        where = (
            where
            if where is not None
            else Where(study="nuts", cell="-", config_key="max_tree_depth / init", unit="chain")
        )
        fixed = step_size is not None
        if fixed != (inv_mass is not None):
            raise ValueError("VectorizedNUTS.run: a fixed kernel needs both inv_mass and step_size")
        self.gen = torch.Generator(device=dev).manual_seed(self.seed)
        self.n_grad = 0
        if fixed:
            self.set_metric(inv_mass.to(dtype=dtype, device=dev))
        else:
            self.set_metric(
                torch.eye(D, dtype=dtype, device=dev)
                if self.metric == "dense"
                else torch.ones(C, D, dtype=dtype, device=dev)
            )
        q = q0.clone()
        U, g = self._value_and_grad(q)
        check_finite(
            {"potential": U, "position": q, "gradient": g}, where=where, step="the initial point", what="NUTS state"
        )
        if fixed:
            eps = torch.as_tensor(step_size, dtype=dtype, device=dev).expand(C).clone()
        else:
            eps = find_reasonable_step_size(
                self._one_step_delta_h(q, U, g), torch.full((C,), 0.1, dtype=dtype, device=dev)
            )
        da = DualAveraging(eps, target=self.target)
        windows = adaptation_windows(warmup)
        ends = {e for _, e in windows}
        first, last = (windows[0][0], windows[-1][1]) if windows else (0, 0)
        est = self._new_estimator(C, D, dtype, dev)
        draws = torch.empty(samples, C, D, dtype=dtype, device=dev)
        div = torch.zeros(samples, C, dtype=torch.bool, device=dev)
        depths = torch.zeros(samples, C, dtype=torch.long, device=dev)
        acc_keep = torch.zeros(samples, C, dtype=dtype, device=dev)
        pot = torch.zeros(samples, C, dtype=dtype, device=dev)
        leap = torch.zeros(samples, C, dtype=dtype, device=dev)
        t_start = time.perf_counter()
        t_sample = None
        n_grad_warm = 0
        total = warmup + samples
        every = max(1, total // 10)
        acc_run, dep_run, n_run = torch.zeros(C, dtype=dtype, device=dev), 0.0, 0
        for it in range(total):
            if it == warmup:
                t_sample = time.perf_counter()
                n_grad_warm = self.n_grad
            q, U, g, acc, dv, dep = self.step(q, U, g, eps)
            phase = "warm-up" if it < warmup else "sampling"
            check_finite(
                {"potential": U, "position": q},
                where=where,
                step=f"iteration {it + 1} of {total} ({phase})",
                what="NUTS draw",
            )
            acc_run, dep_run, n_run = acc_run + acc, dep_run + float(dep.float().mean()), n_run + 1
            if (it + 1) % every == 0 or it + 1 == total:
                el = time.perf_counter() - t_start
                log.info(
                    "NUTS %d/%d (%s): accept %.2f, tree depth %.1f, step %.2g-%.2g, %d chains, %.0f s elapsed, "
                    "~%.0f s left",
                    it + 1,
                    total,
                    phase,
                    float(acc_run.mean()) / n_run,
                    dep_run / n_run,
                    float(eps.min()),
                    float(eps.max()),
                    C,
                    el,
                    el / (it + 1) * (total - it - 1),
                )
                acc_run, dep_run, n_run = torch.zeros(C, dtype=dtype, device=dev), 0.0, 0
            if it < warmup and fixed:
                pass  # burn-in with the fixed kernel
            elif it < warmup:
                eps = da.update(acc)
                if first <= it < last:
                    est.update(q)
                if it + 1 in ends:
                    eps = self._end_window(est, q, U, g, eps)
                    est = self._new_estimator(C, D, dtype, dev)
                    da.reset(eps)
                if it == warmup - 1:
                    eps = da.final_step
            else:
                k = it - warmup
                draws[k], div[k], depths[k], acc_keep[k], pot[k] = q, dv, dep, acc, U
                leap[k] = self.n_leapfrog
            if callback is not None:
                callback(it, q)
        t_end = time.perf_counter()
        if t_sample is None:
            t_sample, n_grad_warm = t_end, self.n_grad
        return {
            "draws": draws.transpose(0, 1).contiguous(),
            "divergent": div.T.cpu().numpy(),
            "tree_depth": depths.T.cpu().numpy(),
            "accept": acc_keep.T.cpu().numpy(),
            "potential": pot.T.cpu().numpy(),
            "n_leapfrog": leap.T.cpu().numpy().astype("int64"),
            "step_size": eps.cpu().numpy(),
            "inv_mass": self.minv.clone(),
            "warmup_s": t_sample - t_start,
            "sampling_s": t_end - t_sample,
            "n_grad_warmup": n_grad_warm * C,
            "n_grad_sampling": (self.n_grad - n_grad_warm) * C,
        }
