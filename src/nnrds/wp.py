"""Weight parameterizations: W(t) = sum_k phi_k(t) C_k on the layer times t_n = n h, h = T/L.

A parameterization is a basis matrix ``Phi`` of shape (L, K): row n holds the basis functions at
``t_n``. ``nonpar`` is the identity (one weight per layer, indexed by the integer layer number n);
the others have K independent of the depth L, so the parameter count does not grow with depth.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.polynomial import chebyshev as _cheb
from numpy.polynomial import legendre as _leg

KINDS = ("nonpar", "const", "monomial", "legendre", "chebyshev")
#: the polynomial bases of one degree (same span: the same initial network, different optimization geometry)
POLY_KINDS = ("monomial", "legendre", "chebyshev")


def layer_times(depth: int, T: float = 1.0) -> np.ndarray:
    """t_n = n h for n = 0..L-1 with h = T/L (the forward-Euler grid)."""
    return np.arange(depth) * (T / depth)


def n_basis(kind: str, depth: int, degree: int = 0) -> int:
    if kind == "nonpar":
        return depth
    if kind == "const":
        return 1
    if kind in POLY_KINDS:
        return degree + 1
    raise ValueError(f"unknown parameterization {kind!r}; expected one of {KINDS}")


def basis_matrix(
    kind: str, depth: int, degree: int = 0, T: float = 1.0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Phi of shape (depth, K): Phi[n, k] = phi_k(t_n).

    monomial: phi_k(t) = (t/T)^k (scaled to [0, 1] for conditioning; spans the same polynomials).
    legendre: phi_k(t) = P_k(2 t/T - 1), the shifted Legendre polynomials on [0, T].
    chebyshev: phi_k(t) = T_k(2 t/T - 1), the shifted Chebyshev polynomials (first kind) on [0, T].
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
    elif kind == "chebyshev":
        phi = _cheb.chebvander(2.0 * t / T - 1.0, degree)
    else:
        raise ValueError(f"unknown parameterization {kind!r}; expected one of {KINDS}")
    return torch.as_tensor(phi, dtype=dtype)


def shifted_legendre(k: int, t: np.ndarray, T: float = 1.0) -> np.ndarray:
    c = np.zeros(k + 1)
    c[k] = 1.0
    return _leg.legval(2.0 * np.asarray(t) / T - 1.0, c)


def gram(kind: str, depth: int, degree: int = 0, T: float = 1.0) -> np.ndarray:
    """Gram matrix of a basis on the layer grid, (K, K): ``G[j, k] = sum_n h phi_j(t_n) phi_k(t_n)`` with
    t_n = n h, h = T/L -- the left Riemann sum of the continuous inner product ``int_0^T phi_j phi_k dt``
    (:func:`gram_continuous`), i.e. the geometry in which the network sees its coefficients: W(t_n) enters layer n
    with weight h, so a coefficient perturbation dC changes the layers by ``sum_n h |phi(t_n) dC|^2 = dC^T G dC``."""
    phi = basis_matrix(kind, depth, degree, T).numpy()
    return (T / depth) * phi.T @ phi


def gram_continuous(kind: str, degree: int = 0, T: float = 1.0) -> np.ndarray:
    """Gram matrix under the continuous inner product ``int_0^T phi_j(t) phi_k(t) dt`` of a polynomial basis (and
    ``const``), by Gauss-Legendre quadrature with degree + 1 nodes (exact for the degree-2d products)."""
    if kind not in ("const", *POLY_KINDS):
        raise ValueError(f"no continuous Gram matrix for {kind!r}; expected const or one of {POLY_KINDS}")
    x, w = _leg.leggauss(degree + 1)
    t, w = (x + 1.0) * T / 2.0, w * T / 2.0
    if kind == "const":
        phi = np.ones((t.size, 1))
    elif kind == "monomial":
        phi = np.stack([(t / T) ** k for k in range(degree + 1)], axis=1)
    elif kind == "legendre":
        phi = _leg.legvander(x, degree)
    else:
        phi = _cheb.chebvander(x, degree)
    return (phi * w[:, None]).T @ phi


def gram_condition(kind: str, depth: int, degree: int = 0, T: float = 1.0) -> float:
    """2-norm condition number of :func:`gram` on the layer grid (``inf`` when the basis is rank-deficient on it,
    e.g. degree >= depth). Scaling the inner product (h, T) leaves it unchanged: it measures the basis, not T."""
    if kind in POLY_KINDS and degree + 1 > depth:
        return float("inf")
    return float(np.linalg.cond(gram(kind, depth, degree, T)))


def init_map(phi: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How the initial weight function W(t_0..t_{L-1}) is drawn for the basis matrix ``phi`` (L, K).

    Returns ``(F, M)``: with z ~ N(0, I_m) (independently for every matrix entry; the model scales it
    by 1/sqrt(width)), the initial node values are ``V = F z`` (shape (L, m)) and the initial
    coefficients are ``C = M z`` with ``phi @ M == F`` (checked). Every row of F has unit norm, so
    **every layer's W(t_n) has exactly the same variance** (1/width in the model), for every basis:

    * the basis spans every function on the grid (rank L: ``nonpar``, the MLP's identity, a polynomial
      of degree >= L-1): layers independent, ``F = I_L`` (the usual i.i.d. initialization);
    * otherwise (``const``, a polynomial of degree d < L-1): the constant weight function,
      ``F = 1_L`` (m = 1): W(t_n) = Z for every n; the non-constant coefficients start at 0.

    Why the constant: Var W(t) = phi(t)^T Cov(C) phi(t) is a polynomial of degree 2d in t for *any*
    distribution of the coefficients; if it takes one value at L >= 2d+2 distinct nodes it is that
    constant everywhere, its t^{2d} coefficient Cov(C)_dd vanishes, and positive semi-definiteness
    removes row and column d -- by induction only the constant term stays random. So equal per-layer
    variance *forces* a constant initial W(t) for such depths (e.g. a cubic at depth >= 8); we use it
    for every basis with K < L so that one rule covers all depths (for 2d+2 > L > K other, non-constant
    choices would exist). Neither an orthonormalized basis (variance = leverage of node n) nor
    projecting i.i.d. node values onto the span (same) gives equal variances.

    F depends only on the span of ``phi``, and V is drawn from the same z, so bases that span the same
    functions (monomial and Legendre of one degree; every polynomial basis of degree < L-1 and
    ``const``) start from the same network function given the same seed; only training can tell them
    apart. When a basis function is the constant 1 (const, monomial, Legendre) the constant's
    coefficients are exact; otherwise M solves phi M = F (entries below 1e-12 of the largest, rounding
    of the solve, are set to 0).
    """
    P = np.asarray(phi, dtype=np.float64)
    L, K = P.shape
    if L == K and np.array_equal(P, np.eye(L)):  # nonpar / MLP: nothing to solve
        return np.eye(L), np.eye(L)
    if K >= L and np.linalg.matrix_rank(P) == L:
        F = np.eye(L)
    else:
        F = np.ones((L, 1))
    ones = np.flatnonzero(np.all(P == 1.0, axis=0))
    if F.shape[1] == 1 and ones.size:  # a basis function is the constant 1: exact coefficients
        M = np.zeros((K, 1))
        M[ones[0], 0] = 1.0
    elif L == K:
        M = np.linalg.solve(P, F)
    else:
        M = np.linalg.lstsq(P, F, rcond=None)[0]
    M[np.abs(M) < 1e-12 * np.abs(M).max()] = 0.0
    err = float(np.abs(P @ M - F).max())
    if err > 1e-8:
        raise ValueError(
            f"basis of shape {P.shape} cannot represent its initial weight function "
            f"(residual {err:.2g}): a basis must contain the constant functions"
        )
    return F, M


INTERPOLATIONS = ("constant", "linear")


def resample(
    kind: str,
    depth: int,
    new_depth: int,
    degree: int = 0,
    T: float = 1.0,
    interp: str = "constant",
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The basis matrix (new_depth, K) that gives a network trained at ``depth`` its weights at ``new_depth``
    layers, t'_m = m T / new_depth: ``W(t'_m) = sum_k Phi'[m, k] C_k`` with the trained coefficients C.

    A basis with K independent of depth (const, monomial, Legendre) defines W(t) for every t: Phi' is the basis at
    the new times. ``nonpar`` has one weight per layer, i.e. values W_n at the nodes t_n = n T / depth only, and
    needs a rule for W between them: ``interp="constant"`` holds W_n on [t_n, t_{n+1}) (the trained ResNet's
    piecewise-constant weight function; refining by an integer factor repeats each layer), ``"linear"``
    interpolates linearly between the nodes (constant after t_{L-1}). Phi' then maps the L node values to the new
    layers (rows sum to 1). ``new_depth == depth`` gives :func:`basis_matrix` exactly.
    """
    if new_depth < 1:
        raise ValueError(f"new depth must be >= 1, got {new_depth}")
    if kind != "nonpar":
        return basis_matrix(kind, new_depth, degree, T, dtype)
    if interp not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interp!r}; expected one of {INTERPOLATIONS}")
    if new_depth == depth:
        return basis_matrix(kind, depth, degree, T, dtype)
    # node positions in units of the trained step: s_m = t'_m / h = m depth / new_depth (exact rationals)
    num = np.arange(new_depth) * depth
    phi = np.zeros((new_depth, depth))
    left = num // new_depth
    if interp == "constant":
        phi[np.arange(new_depth), left] = 1.0
    else:
        frac = (num - left * new_depth) / new_depth
        right = np.minimum(left + 1, depth - 1)
        phi[np.arange(new_depth), left] += 1.0 - frac
        phi[np.arange(new_depth), right] += frac
    return torch.as_tensor(phi, dtype=dtype)
