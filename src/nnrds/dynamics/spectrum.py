"""Eigenvalue spectra of a batch of Jacobians, the stiffness metrics of a spectrum, and their aggregation.

:func:`eigenvalues` runs one batched :func:`torch.linalg.eigvals` (in chunks, to bound memory).

Metrics of one Jacobian with eigenvalues ``lambda_i`` (step ``h = T / L``), see :func:`spectrum_metrics`:

``stiffness_ratio``  max |Re lambda| / min |Re lambda| over the eigenvalues with Re lambda < 0
                     (NaN when no eigenvalue has a negative real part; "negative" means
                     Re lambda < -NEG_TOL * max(rho, 1), so that round-off zeros do not count);
``spectral_radius``  rho(J) = max |lambda|;
``euler_index``      h * rho(J), the explicit-Euler stability index;
``euler_amp``        max |1 + h lambda|: the layer sits inside the explicit-Euler stability region
                     (every |1 + h lambda| <= 1) iff ``euler_amp <= 1``; ``euler_stable`` is that flag.

:func:`aggregate` reduces a per-(replica, layer, sample) metric to one number per network: the median
and the 90th percentile over samples (NaN-aware), then the max and the mean over layers. :func:`measure`
does all of it for a network on given inputs.
"""

from __future__ import annotations

import math

import torch

from ..models import ReplicaNet
from .jacobian import layer_jacobians

#: eigenvalues with Re lambda >= -NEG_TOL * max(rho, 1) are not counted as negative in the stiffness ratio
NEG_TOL = 1e-6
METRICS = ("stiffness_ratio", "spectral_radius", "euler_index", "euler_amp", "euler_stable")
SAMPLE_AGGS = ("median", "p90")
LAYER_AGGS = ("max", "mean")


def eigenvalues(J: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Complex eigenvalues of a batch of square matrices (..., w, w) -> (..., w), in chunks of matrices."""
    flat = J.detach().reshape(-1, J.shape[-2], J.shape[-1])
    out = [torch.linalg.eigvals(flat[i : i + chunk]) for i in range(0, flat.shape[0], chunk)]
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
    per_layer = {"median": torch.nanquantile(metric, 0.5, dim=-1), "p90": torch.nanquantile(metric, 0.9, dim=-1)}
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
