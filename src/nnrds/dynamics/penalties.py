"""Differentiable penalties on the Jacobian of a ResNet's residual function (``fit(penalty=...)``).

:func:`spectral_penalty`: ``mean over layers and samples of (h * ||J_n(x_n)||_2)^2`` with the spectral norm
estimated by a few batched power iterations on ``J^T J`` run without gradient (stop-gradient on the
vectors), the gradient flowing only through ``||J v||`` for the final unit vector ``v``. Why this and not
``h * rho(J)`` directly: power iteration on a non-normal ``J`` does not converge when the dominant
eigenvalues are a complex pair (the common case for random and trained ``W``), while on the symmetric
``J^T J`` it always does; and ``rho(J) <= ||J||_2``, so the penalty bounds the explicit-Euler index from
above. Squaring makes it smooth at zero and quadratic like L2, so the two strengths are swept over
comparable log grids. :func:`frobenius_penalty` (``h^2 ||J||_F^2``, exact and cheaper, a looser bound) is
the alternative.
"""

from __future__ import annotations

import torch

from ..models import ReplicaNet
from .jacobian import preactivation_slopes


def spectral_norm_estimate(net: ReplicaNet, u: torch.Tensor, iters: int = 5, seed: int = 0) -> torch.Tensor:
    """||J_n(x_n)||_2 for every replica, layer and sample, (R, L, N), by power iteration on J^T J.

    The iteration vectors carry no gradient (stop-gradient); the returned estimate ``||J v||`` is
    differentiable w.r.t. the network's parameters and is a lower bound of the true spectral norm that
    tightens with ``iters``. Matrix-free: J v = s * (W v), J^T y = W^T (s * y).
    """
    s, W = preactivation_slopes(net, u)
    with torch.no_grad():
        sd, Wd = s.detach(), W.detach()
        g = torch.Generator(device="cpu").manual_seed(seed)
        v = torch.randn(sd.shape, generator=g, dtype=sd.dtype).to(sd.device)
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        for _ in range(iters):
            y = sd * torch.einsum("rlij,rlnj->rlni", Wd, v)
            v = torch.einsum("rlji,rlnj->rlni", Wd, sd * y)
            v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    Jv = s * torch.einsum("rlij,rlnj->rlni", W, v)
    return Jv.norm(dim=-1)


def spectral_penalty(net: ReplicaNet, u: torch.Tensor, iters: int = 5) -> torch.Tensor:
    """Per-replica penalty (R,): mean over layers and samples of (h * ||J||_2)^2 (power-iteration estimate)."""
    return (net.arch.h * spectral_norm_estimate(net, u, iters=iters)).pow(2).mean(dim=(1, 2))


def frobenius_penalty(net: ReplicaNet, u: torch.Tensor) -> torch.Tensor:
    """Per-replica penalty (R,): mean over layers and samples of h^2 ||J||_F^2 = h^2 sum_i s_i^2 ||W_i,:||^2."""
    s, W = preactivation_slopes(net, u)
    row = W.pow(2).sum(-1)  # (R, L, w)
    return (net.arch.h**2) * (s.pow(2) * row[:, :, None, :]).sum(-1).mean(dim=(1, 2))


def make_penalty(kind: str = "spectral_norm", power_iters: int = 5):
    """A ``fit(penalty=...)`` callable ``(net, X_batch) -> (R,)``."""
    if kind == "spectral_norm":
        return lambda net, xb: spectral_penalty(net, xb, iters=power_iters)
    if kind == "frobenius":
        return frobenius_penalty
    raise ValueError(f"unknown stiffness penalty {kind!r}; expected spectral_norm or frobenius")
