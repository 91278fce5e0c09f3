"""Weight parameterizations: W(t) = sum_k phi_k(t) C_k on the layer times t_n = n h, h = T/L.

A parameterization is a basis matrix ``Phi`` of shape (L, K): row n holds the basis functions at
``t_n``. ``nonpar`` is the identity (one weight per layer, indexed by the integer layer number n);
the others have K independent of the depth L, so the parameter count does not grow with depth.
"""
from __future__ import annotations

import numpy as np
import torch
from numpy.polynomial import legendre as _leg

KINDS = ("nonpar", "const", "monomial", "legendre")


def layer_times(depth: int, T: float = 1.0) -> np.ndarray:
    """t_n = n h for n = 0..L-1 with h = T/L (the forward-Euler grid)."""
    return np.arange(depth) * (T / depth)


def n_basis(kind: str, depth: int, degree: int = 0) -> int:
    if kind == "nonpar":
        return depth
    if kind == "const":
        return 1
    if kind in ("monomial", "legendre"):
        return degree + 1
    raise ValueError(f"unknown parameterization {kind!r}; expected one of {KINDS}")


def basis_matrix(kind: str, depth: int, degree: int = 0, T: float = 1.0,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Phi of shape (depth, K): Phi[n, k] = phi_k(t_n).

    monomial: phi_k(t) = (t/T)^k (scaled to [0, 1] for conditioning; spans the same polynomials).
    legendre: phi_k(t) = P_k(2 t/T - 1), the shifted Legendre polynomials on [0, T].
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    t = layer_times(depth, T)
    if kind == "nonpar":
        phi = np.eye(depth)
    elif kind == "const":
        phi = np.ones((depth, 1))
    elif kind == "monomial":
        phi = np.stack([(t / T) ** k for k in range(degree + 1)], axis=1)
    elif kind == "legendre":
        phi = _leg.legvander(2.0 * t / T - 1.0, degree)
    else:
        raise ValueError(f"unknown parameterization {kind!r}; expected one of {KINDS}")
    return torch.as_tensor(phi, dtype=dtype)


def shifted_legendre(k: int, t: np.ndarray, T: float = 1.0) -> np.ndarray:
    c = np.zeros(k + 1)
    c[k] = 1.0
    return _leg.legval(2.0 * np.asarray(t) / T - 1.0, c)
