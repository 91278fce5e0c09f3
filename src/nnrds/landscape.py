"""Loss landscapes: 2-D slices of a loss around a trained point along two filter-normalized random directions
(Li, Xu, Taylor, Studer & Goldstein, "Visualizing the loss landscape of neural nets", NeurIPS 2018).

Works for any replica-batched network (every parameter has a leading replica dimension R, e.g.
:class:`nnrds.models.ReplicaNet` of any parameterization) and any loss closure ``loss_fn(net) -> (R,)``. Every
replica gets its own directions, drawn from a generator seeded with (``seed``, the replica's seed), so its slice
does not depend on the other replicas of the batch.

Filter normalization: a direction d is drawn N(0, 1) entrywise, then every *filter* (the incoming weights of
one neuron: a slice along the parameter's fan-in dimension) is rescaled to the norm of the same filter of the
trained weights, ||d_f|| = ||theta_f||; directions of bias vectors (parameters with one dimension besides the
replica) are zero, as in Li et al. The fan-in dimension of a ReplicaNet parameter is in :data:`FAN_IN_DIM`
(A_in (R, d_in, w): dim -2; C (R, K, w, w) used as W[i, j] x_j: dim -1; A_out (R, w, d_out): dim -2); other
parameters with >= 2 dimensions besides the replica use their last dimension.

Statistics of a slice (:func:`slice_stats`, per replica): the loss at the centre; the Keskar et al. (2017)
style sharpness on the slice, (max L - L(0)) / (1 + L(0)); the mean relative loss increase over the slice,
mean over all (a, b) of (L(a, b) - L(0)) / (1 + L(0)) (:func:`mean_increase`: the average of the slice rather than
its worst corner; for L = L(0) + k (a^2 + b^2) / 2 it is k mean(a^2) / (1 + L(0))); the central second differences
along both directions; and the eigenvalues of the Hessian of a least-squares quadratic fit over the whole slice
(exact for a quadratic loss), whose largest is the curvature statistic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch

FAN_IN_DIM = {"A_in": -2, "C": -1, "A_out": -2}

LossFn = Callable[[torch.nn.Module], torch.Tensor]  # net -> (R,)


def _replica_seeds(net: torch.nn.Module, R: int) -> list[int]:
    return [int(s) for s in getattr(net, "seeds", range(R))]


def filter_normalized_direction(
    net: torch.nn.Module, seed: int, fan_in_dim: Mapping[str, int] = FAN_IN_DIM
) -> dict[str, torch.Tensor]:
    """One random direction per replica (name -> tensor shaped like the parameter), filter-normalized."""
    params = dict(net.named_parameters())
    R = next(iter(params.values())).shape[0]
    out: dict[str, torch.Tensor] = {}
    gens = [
        torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), s]).generate_state(1)[0]))
        for s in _replica_seeds(net, R)
    ]
    for name, p in params.items():
        if p.dim() <= 2:  # (R, n): biases -> no move
            out[name] = torch.zeros_like(p)
            continue
        d = torch.stack([torch.randn(p.shape[1:], generator=g, dtype=torch.float64) for g in gens]).to(p)
        dim = fan_in_dim.get(name, -1)
        pn = p.detach().norm(dim=dim, keepdim=True)
        dn = d.norm(dim=dim, keepdim=True)
        out[name] = d / dn.clamp_min(1e-30) * pn
    return out


def loss_surface(
    net: torch.nn.Module, loss_fn: LossFn, coords: np.ndarray, seed: int = 0, fan_in_dim: Mapping[str, int] = FAN_IN_DIM
) -> tuple[np.ndarray, dict, dict]:
    """Losses L_r(theta_r + a delta_r + b eta_r) for a, b in ``coords``: array (R, len(coords), len(coords))
    indexed [r, i(a), j(b)], and the two directions. The parameters are restored afterwards."""
    delta = filter_normalized_direction(net, seed, fan_in_dim)
    eta = filter_normalized_direction(net, seed + 1_000_003, fan_in_dim)
    params = dict(net.named_parameters())
    R = next(iter(params.values())).shape[0]
    theta = {k: p.detach().clone() for k, p in params.items()}
    out = np.empty((R, len(coords), len(coords)))
    try:
        for i, a in enumerate(coords):
            for j, b in enumerate(coords):
                with torch.no_grad():
                    for k, p in params.items():
                        p.copy_(theta[k] + float(a) * delta[k] + float(b) * eta[k])
                out[:, i, j] = loss_fn(net).detach().cpu().numpy().astype(np.float64)
    finally:
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(theta[k])
    return out, delta, eta


def _centre(coords: np.ndarray) -> int:
    """Index of 0 in slice coordinates that must be symmetric around 0 and contain it."""
    c = int(np.argmin(np.abs(coords)))
    if abs(coords[c]) > 1e-12 or not np.allclose(coords, -coords[::-1]):
        raise ValueError("slice coordinates must be symmetric around 0 and contain 0")
    return c


def mean_increase(surface: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Per replica: mean over the slice's grid of (L(a, b) - L(0, 0)) / (1 + L(0, 0)), shape (R,). Smaller = a
    smoother (flatter) neighbourhood at the slice's radius; 0 for a constant loss."""
    surface = np.asarray(surface, dtype=float)
    c = _centre(np.asarray(coords, dtype=float))
    L0 = surface[:, c, c]
    return (surface.mean(axis=(1, 2)) - L0) / (1.0 + L0)


def slice_stats(surface: np.ndarray, coords: np.ndarray) -> pd.DataFrame:
    """Per replica (rows in replica order): loss_center, sharpness, mean_increase (:func:`mean_increase`), curv_a,
    curv_b (central second differences), hess_max, hess_min (eigenvalues of the fitted quadratic's Hessian).
    ``coords`` must be symmetric around 0 and contain 0."""
    coords = np.asarray(coords, dtype=float)
    c = _centre(coords)
    mean_inc = mean_increase(surface, coords)
    h = coords[c + 1] - coords[c]
    A, B = np.meshgrid(coords, coords, indexing="ij")
    a, b = A.ravel(), B.ravel()
    design = np.stack([np.ones_like(a), a, b, a * a, a * b, b * b], 1)
    rows = []
    for r, S in enumerate(surface):
        L0 = S[c, c]
        coef, *_ = np.linalg.lstsq(design, S.ravel(), rcond=None)
        H = np.array([[2 * coef[3], coef[4]], [coef[4], 2 * coef[5]]])
        ev = np.linalg.eigvalsh(H)
        rows.append(
            {
                "loss_center": L0,
                "sharpness": (S.max() - L0) / (1 + L0),
                "mean_increase": float(mean_inc[r]),
                "curv_a": (S[c + 1, c] - 2 * L0 + S[c - 1, c]) / h**2,
                "curv_b": (S[c, c + 1] - 2 * L0 + S[c, c - 1]) / h**2,
                "hess_max": float(ev[-1]),
                "hess_min": float(ev[0]),
            }
        )
    return pd.DataFrame(rows)
