"""NUTS warm-up building blocks, one concept per function (the layout of NumPyro's ``infer/hmc_util.py``).

* :func:`adaptation_windows` -- Stan's windowed adaptation schedule (fast initial buffer, doubling slow windows,
  fast terminal buffer).
* :class:`DualAveraging` -- Nesterov dual averaging of the log step size (Hoffman & Gelman 2014, Alg. 5).
* :class:`WelfordVariance` / :class:`WelfordCovariance` -- streaming (co)variance (Welford 1962), per chain or
  pooled over chains, with Stan's regularization toward a small multiple of the identity.
* :func:`find_reasonable_step_size` -- Stan's heuristic: double or halve the step until the one-step acceptance
  probability crosses 0.5.

All of them work on a leading chain dimension C so that every chain of :class:`nnrds.uq.nuts.VectorizedNUTS`
adapts its own step size (and, with a diagonal metric, its own mass matrix) in one batched operation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

#: fewer warm-up iterations adapt only the step size (as Stan: too few draws for a mass-matrix estimate)
MIN_WARMUP_FOR_MASS = 20
#: dual-averaging iterations at least left after the last mass-matrix window (short warm-ups only)
MIN_DA_ITERS = 10


def adaptation_windows(
    num_warmup: int, init_buffer: int = 75, term_buffer: int = 50, base_window: int = 25
) -> list[tuple[int, int]]:
    """Stan's slow adaptation windows ``[(start, end), ...]`` (end exclusive) of a warm-up of ``num_warmup``
    iterations: after an initial buffer of ``init_buffer`` iterations (step size only), windows of
    ``base_window``, 2 x, 4 x, ... iterations, the last one stretched to end ``term_buffer`` iterations before
    sampling. For 1000 / 75 / 50 / 25 the windows end at 100, 150, 250, 450, 950 (Stan reference manual).

    Warm-ups shorter than init + term + base use 15% / 10% / 75% (Stan); below :data:`MIN_WARMUP_FOR_MASS`
    there is no window. Unlike Stan, the terminal buffer of such short warm-ups is at least :data:`MIN_DA_ITERS`:
    dual averaging restarts after every window, and Stan's 10% (2-5 iterations at 20-50) left a step 2-100x too
    large."""
    if num_warmup < MIN_WARMUP_FOR_MASS:
        return []
    if init_buffer + term_buffer + base_window > num_warmup:
        init_buffer, term_buffer = int(0.15 * num_warmup), int(0.1 * num_warmup)
        term_buffer = max(term_buffer, MIN_DA_ITERS)
        base_window = num_warmup - init_buffer - term_buffer
    out, start, size = [], init_buffer, base_window
    last = num_warmup - term_buffer
    while base_window > 0 and start < last:
        end = start + size
        if end + 2 * size > last:
            end = last
        out.append((start, end))
        start, size = end, 2 * size
    return out


class DualAveraging:
    """Dual averaging of x = log step size toward a target acceptance (Hoffman & Gelman 2014, Alg. 5), per chain.

    After t updates with acceptance statistics a_1..a_t:
    H_t = (1 - 1/(t + t0)) H_{t-1} + (target - a_t)/(t + t0);  x_t = mu - sqrt(t)/gamma H_t;
    xbar_t = t^-kappa x_t + (1 - t^-kappa) xbar_{t-1}.   :meth:`update` returns exp(x_t) (the step to use next),
    :attr:`final_step` exp(xbar_t) (the step to keep after warm-up). ``mu = log(10 eps0)``.
    """

    def __init__(
        self, eps0: torch.Tensor, target: float = 0.8, gamma: float = 0.05, t0: float = 10.0, kappa: float = 0.75
    ):
        self.target, self.gamma, self.t0, self.kappa = target, gamma, t0, kappa
        self.reset(eps0)

    def reset(self, eps0: torch.Tensor) -> None:
        self.mu = torch.log(10 * eps0)
        self.hbar = torch.zeros_like(eps0)
        self.x_bar = torch.zeros_like(eps0)
        self.t = 0

    def update(self, accept: torch.Tensor) -> torch.Tensor:
        self.t += 1
        t = self.t
        self.hbar = (1 - 1 / (t + self.t0)) * self.hbar + (self.target - accept) / (t + self.t0)
        x = self.mu - math.sqrt(t) / self.gamma * self.hbar
        w = t ** (-self.kappa)
        self.x_bar = w * x + (1 - w) * self.x_bar
        return x.exp()

    @property
    def final_step(self) -> torch.Tensor:
        return self.x_bar.exp()


class WelfordVariance:
    """Streaming mean and variance of (C, D) draws, one estimate per chain (diagonal metric)."""

    def __init__(self, C: int, D: int, dtype=torch.float64, device=None):
        self.n = 0
        self.mean = torch.zeros(C, D, dtype=dtype, device=device)
        self.m2 = torch.zeros(C, D, dtype=dtype, device=device)

    def update(self, x: torch.Tensor) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean = self.mean + delta / self.n
        self.m2 = self.m2 + delta * (x - self.mean)

    def variance(self, regularize: bool = True) -> torch.Tensor:
        """Sample variance (n - 1 denominator); ``regularize``: Stan's (n/(n+5)) var + 1e-3 (5/(n+5))."""
        n = self.n
        var = self.m2 / max(n - 1, 1)
        if regularize:
            var = (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))
        return var


class WelfordCovariance:
    """Streaming mean and covariance of draws pooled over chains: each update adds the C rows of a (C, D) batch.

    Pooling the chains (all started around one mode) gives C times more draws per window than Stan's per-chain
    estimate, which a dense D x D matrix of a few hundred dimensions needs."""

    def __init__(self, D: int, dtype=torch.float64, device=None):
        self.n = 0
        self.mean = torch.zeros(D, dtype=dtype, device=device)
        self.m2 = torch.zeros(D, D, dtype=dtype, device=device)

    def update(self, x: torch.Tensor) -> None:
        for row in x.reshape(-1, x.shape[-1]):
            self.n += 1
            delta = row - self.mean
            self.mean = self.mean + delta / self.n
            self.m2 = self.m2 + torch.outer(delta, row - self.mean)

    def covariance(self, regularize: bool = True, shrink_to_diag: bool = True) -> torch.Tensor:
        """Sample covariance. ``shrink_to_diag``: with n draws in D dimensions the off-diagonal part is weighted
        n / (n + D) (a rank-deficient estimate leans on its diagonal); ``regularize``: Stan's
        (n/(n+5)) cov + 1e-3 (5/(n+5)) I."""
        n, D = self.n, self.mean.shape[0]
        cov = self.m2 / max(n - 1, 1)
        if shrink_to_diag:
            lam = n / (n + float(D))
            cov = lam * cov + (1 - lam) * torch.diag(torch.diagonal(cov))
        if regularize:
            cov = (n / (n + 5.0)) * cov + 1e-3 * (5.0 / (n + 5.0)) * torch.eye(D, dtype=cov.dtype, device=cov.device)
        return 0.5 * (cov + cov.T)


def find_reasonable_step_size(
    one_step_delta_h: Callable[[torch.Tensor], torch.Tensor], eps: torch.Tensor, max_iter: int = 100
) -> torch.Tensor:
    """Hoffman & Gelman's (2014, Alg. 4) step-size heuristic, per chain: from ``eps`` (C,), double the step while
    the one-step acceptance probability exp(-dH) exceeds 0.5 (halve it while it is below) and return the first
    step at which it crosses 0.5. ``one_step_delta_h(eps)`` -> dH (C,) of one leapfrog step with fresh momenta
    (NaN counts as +inf)."""
    log_half = math.log(0.5)

    def above(e):
        dh = one_step_delta_h(e)
        dh = torch.where(torch.isnan(dh), torch.full_like(dh, math.inf), dh)
        return -dh > log_half

    up = above(eps)
    done = torch.zeros_like(eps, dtype=torch.bool)
    for _ in range(max_iter):
        eps = torch.where(done, eps, torch.where(up, 2 * eps, 0.5 * eps))
        done = done | (above(eps) != up)
        if bool(done.all()):
            break
    return eps
