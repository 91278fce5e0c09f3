"""Stiffness of a ResNet along its trajectories: Jacobian spectra of the residual function, and a penalty.

The ResNet ``x_{n+1} = x_n + h f(x_n, t_n)`` (:class:`~nnrds.models.ReplicaNet`) is the explicit-Euler
discretization of ``dx/dt = f(x, t)`` with the residual function ``f(x, t) = sigma(W(t) x + b(t))``.
Its Jacobian at layer ``n`` and hidden state ``x_n`` is::

    J_n(x_n) = diag(sigma'(W(t_n) x_n + b(t_n))) W(t_n)

Everything here is batched over replicas x layers x samples (no Python loop over samples or layers):
:func:`layer_jacobians` returns a tensor of shape ``(R, L, N, w, w)`` and :func:`eigenvalues` runs one
batched :func:`torch.linalg.eigvals` (in chunks, to bound memory).

Metrics of one Jacobian with eigenvalues ``lambda_i`` (step ``h = T / L``), see :func:`spectrum_metrics`:

``stiffness_ratio``  max |Re lambda| / min |Re lambda| over the eigenvalues with Re lambda < 0
                     (NaN when no eigenvalue has a negative real part; "negative" means
                     Re lambda < -NEG_TOL * max(rho, 1), so that round-off zeros do not count);
``spectral_radius``  rho(J) = max |lambda|;
``euler_index``      h * rho(J), the explicit-Euler stability index;
``euler_amp``        max |1 + h lambda|: the layer sits inside the explicit-Euler stability region
                     (every |1 + h lambda| <= 1) iff ``euler_amp <= 1``; ``euler_stable`` is that flag.

:func:`aggregate` reduces a per-(replica, layer, sample) metric to one number per network: the median
and the 90th percentile over samples (NaN-aware), then the max and the mean over layers.

Penalty (:func:`spectral_penalty`): ``mean over layers and samples of (h * ||J_n(x_n)||_2)^2`` with the
spectral norm estimated by a few batched power iterations on ``J^T J`` run without gradient
(stop-gradient on the vectors), the gradient flowing only through ``||J v||`` for the final unit vector
``v``. Why this and not ``h * rho(J)`` directly: power iteration on a non-normal ``J`` does not converge
when the dominant eigenvalues are a complex pair (the common case for random and trained ``W``), while
on the symmetric ``J^T J`` it always does; and ``rho(J) <= ||J||_2``, so the penalty bounds the
explicit-Euler index from above. Squaring makes it smooth at zero and quadratic like L2, so the two
strengths are swept over comparable log grids. ``frobenius`` (``h^2 ||J||_F^2``, exact and cheaper,
a looser bound) is available as an alternative.
"""
from __future__ import annotations

import math

import torch

from .models import ReplicaNet

#: eigenvalues with Re lambda >= -NEG_TOL * max(rho, 1) are not counted as negative in the stiffness ratio
NEG_TOL = 1e-6
METRICS = ("stiffness_ratio", "spectral_radius", "euler_index", "euler_amp", "euler_stable")
SAMPLE_AGGS = ("median", "p90")
LAYER_AGGS = ("max", "mean")


def activation_derivative(name: str, z: torch.Tensor) -> torch.Tensor:
    """sigma'(z) of the activations in :data:`nnrds.models.ACTIVATIONS`."""
    if name == "tanh":
        return 1.0 - torch.tanh(z).pow(2)
    if name == "relu":
        return (z > 0).to(z.dtype)
    if name == "softplus":
        return torch.sigmoid(z)
    raise ValueError(f"no derivative for activation {name!r}")


def _check(net: ReplicaNet) -> None:
    if net.arch.param == "mlp":
        raise ValueError("stiffness is defined for ResNets (x + h f); an MLP (param 'mlp') has no residual function")


def preactivation_slopes(net: ReplicaNet, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``sigma'(W(t_n) x_n + b(t_n))`` at every layer and sample, shape (R, L, N, w), and W (R, L, w, w).

    ``u`` is (N, d_in) shared by all replicas or (R, N, d_in). Differentiable w.r.t. the parameters.
    """
    _check(net)
    W, b = net.layer_weights()
    xs = torch.stack(net.trajectory(u)[:-1], dim=1)  # (R, L, N, w): the states the layers act on
    z = torch.einsum("rlnj,rlij->rlni", xs, W) + b[:, :, None, :]
    return activation_derivative(net.arch.activation, z), W


def layer_jacobians(net: ReplicaNet, u: torch.Tensor) -> torch.Tensor:
    """J_n(x_n) = diag(sigma'(z)) W(t_n) for every replica, layer and sample: (R, L, N, w, w)."""
    s, W = preactivation_slopes(net, u)
    return s[..., :, None] * W[:, :, None, :, :]


def eigenvalues(J: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Complex eigenvalues of a batch of square matrices (..., w, w) -> (..., w), in chunks of matrices."""
    flat = J.detach().reshape(-1, J.shape[-2], J.shape[-1])
    out = [torch.linalg.eigvals(flat[i:i + chunk]) for i in range(0, flat.shape[0], chunk)]
    return torch.cat(out).reshape(*J.shape[:-1])


def spectrum_metrics(lam: torch.Tensor, h: float) -> dict[str, torch.Tensor]:
    """Per-matrix metrics from eigenvalues ``lam`` (..., w) (complex); each output has shape ``lam.shape[:-1]``."""
    re = lam.real
    rho = lam.abs().amax(-1)
    neg = re < -NEG_TOL * rho.clamp_min(1.0)[..., None]
    absre = re.abs()
    big = torch.where(neg, absre, torch.zeros_like(absre)).amax(-1)
    small = torch.where(neg, absre, torch.full_like(absre, math.inf)).amin(-1)
    ratio = torch.where(neg.any(-1), big / small, torch.full_like(big, math.nan))
    amp = (1.0 + h * lam).abs().amax(-1)
    return {
        "stiffness_ratio": ratio,
        "spectral_radius": rho,
        "euler_index": h * rho,
        "euler_amp": amp,
        "euler_stable": (amp <= 1.0 + 1e-6).to(rho.dtype),
    }


def aggregate(metric: torch.Tensor) -> dict[tuple[str, str], torch.Tensor]:
    """(R, L, N) -> {(sample_agg, layer_agg): (R,)}: median / 90th percentile over samples (ignoring NaN),
    then max / mean over layers (ignoring layers that are NaN for every sample)."""
    per_layer = {"median": torch.nanquantile(metric, 0.5, dim=-1),
                 "p90": torch.nanquantile(metric, 0.9, dim=-1)}
    out = {}
    for sa, v in per_layer.items():
        finite = ~torch.isnan(v)
        vmax = torch.where(finite, v, torch.full_like(v, -math.inf)).amax(-1)
        out[(sa, "max")] = torch.where(finite.any(-1), vmax, torch.full_like(vmax, math.nan))
        out[(sa, "mean")] = torch.nanmean(v, dim=-1)
    return out


@torch.no_grad()
def measure(net: ReplicaNet, u: torch.Tensor, chunk: int = 65536) -> tuple[dict, torch.Tensor]:
    """All metrics aggregated per network, and the raw eigenvalues (R, L, N, w).

    Returns ``({(metric, sample_agg, layer_agg): (R,) tensor}, eigenvalues)``.
    """
    lam = eigenvalues(layer_jacobians(net, u), chunk=chunk)
    per = spectrum_metrics(lam, net.arch.h)
    out = {}
    for m, v in per.items():
        for (sa, la), a in aggregate(v.float() if v.dtype == torch.float16 else v).items():
            out[(m, sa, la)] = a
    return out, lam


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
    return (net.arch.h ** 2) * (s.pow(2) * row[:, :, None, :]).sum(-1).mean(dim=(1, 2))


def make_penalty(kind: str = "spectral_norm", power_iters: int = 5):
    """A ``fit(penalty=...)`` callable ``(net, X_batch) -> (R,)``."""
    if kind == "spectral_norm":
        return lambda net, xb: spectral_penalty(net, xb, iters=power_iters)
    if kind == "frobenius":
        return frobenius_penalty
    raise ValueError(f"unknown stiffness penalty {kind!r}; expected spectral_norm or frobenius")
