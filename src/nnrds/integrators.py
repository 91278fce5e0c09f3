"""Explicit one-step integrators of x' = f(x): a table of schemes with their order of accuracy.

A scheme is a :class:`Scheme` in :data:`SCHEMES`: a name, its order p (global error O(h^p) on a smooth vector
field), and ``step(f, x, h) -> x_next``. Steps use only arithmetic on ``x`` and ``f(x)``, so they work on numpy
arrays and on torch tensors alike (autograd flows through them), and ``h`` may be a float or anything that
broadcasts against ``x`` -- e.g. a per-replica step of shape (R, 1, 1) when x is (R, N, d).

The explicit Runge-Kutta schemes are built from their Butcher tableaux (:func:`runge_kutta`); a scheme that is
not Runge-Kutta (a partitioned or symplectic method such as Verlet / leapfrog) registers its own step
function with :func:`register`. A ResNet unit ``x + h sigma(W x + b)`` is one forward-Euler step of the vector
field ``sigma(W x + b)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

VectorField = Callable  # f(x) -> dx/dt, same shape as x
Step = Callable  # step(f, x, h) -> x after one step of size h


@dataclass(frozen=True)
class Scheme:
    """One explicit one-step method: ``step(f, x, h)``; ``order`` p is its global order of accuracy and
    ``stages`` the number of evaluations of f per step (its cost)."""

    name: str
    order: int
    stages: int
    step: Step
    description: str = ""


def runge_kutta(a: Sequence[Sequence[float]], b: Sequence[float]) -> Step:
    """The step of the explicit Runge-Kutta method with strictly lower-triangular matrix ``a`` and weights ``b``
    (autonomous f: the nodes c are not needed). k_i = f(x + h sum_{j<i} a_ij k_j), x_next = x + h sum_i b_i k_i."""
    s = len(b)
    if len(a) != s or any(len(row) != s for row in a):
        raise ValueError(f"Butcher matrix must be {s} x {s}")
    if any(a[i][j] != 0 for i in range(s) for j in range(i, s)):
        raise ValueError("explicit Runge-Kutta needs a strictly lower-triangular Butcher matrix")
    a = [[float(v) for v in row] for row in a]
    b = [float(v) for v in b]

    def step(f: VectorField, x, h):
        ks = []
        for i in range(s):
            xi = x
            for j in range(i):
                if a[i][j] != 0.0:
                    xi = xi + (h * a[i][j]) * ks[j]
            ks.append(f(xi))
        inc = None
        for bi, k in zip(b, ks):
            if bi != 0.0:
                inc = bi * k if inc is None else inc + bi * k
        return x + h * inc

    return step


#: the schemes, by name (extend with :func:`register`)
SCHEMES: dict[str, Scheme] = {}


def register(scheme: Scheme) -> Scheme:
    if scheme.name in SCHEMES:
        raise ValueError(f"scheme {scheme.name!r} is already registered")
    SCHEMES[scheme.name] = scheme
    return scheme


register(Scheme("euler", 1, 1, runge_kutta([[0.0]], [1.0]), "forward Euler, x + h f(x): one ResNet unit"))
register(
    Scheme(
        "midpoint",
        2,
        2,
        runge_kutta([[0.0, 0.0], [0.5, 0.0]], [0.0, 1.0]),
        "explicit midpoint (RK2): x + h f(x + h/2 f(x))",
    )
)
register(
    Scheme(
        "rk4",
        4,
        4,
        runge_kutta([[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1, 0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        "classical fourth-order Runge-Kutta",
    )
)


def get(name: str) -> Scheme:
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown integration scheme {name!r}; known: {sorted(SCHEMES)}") from None


def step(f: VectorField, x, h, scheme: str):
    """One step of the named scheme."""
    return get(scheme).step(f, x, h)


def integrate(f: VectorField, x0, h, n_steps: int, scheme: str, *, keep: bool = False):
    """``n_steps`` steps of size ``h`` from ``x0``; the final state, or (``keep``) the list x_0..x_n."""
    st = get(scheme).step
    x = x0
    xs = [x] if keep else None
    for _ in range(int(n_steps)):
        x = st(f, x, h)
        if keep:
            xs.append(x)
    return xs if keep else x


def n_steps_for(t_end: float, h: float, tol: float = 1e-9) -> int:
    """Number of steps of size h that reach t_end exactly (raises unless t_end / h is an integer)."""
    n = t_end / h
    k = int(round(n))
    if k < 1 or abs(n - k) > tol * max(1.0, n):
        raise ValueError(f"end time {t_end} is not a whole number of steps of size {h} ({n:.6g} steps)")
    return k


def fitted_order(h: Sequence[float], err: Sequence[float]) -> float:
    """Least-squares slope of log(err) against log(h): the observed order of convergence (NaN if fewer than two
    finite positive errors)."""
    h = np.asarray(h, dtype=float)
    e = np.asarray(err, dtype=float)
    ok = np.isfinite(e) & (e > 0) & np.isfinite(h) & (h > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(h[ok]), np.log(e[ok]), 1)[0])


# ------------------------------------------------------------------------------------- linear stability
#: stability functions xi(z), z = h lambda, of the schemes a network block can use: the largest modulus of the
#: roots of the scheme's characteristic polynomial on y' = lambda y (|xi| <= 1: stable). The two-step leapfrog
#: (explicit midpoint) rule y_{n+1} = y_{n-1} + 2 z y_n has xi^2 - 2 z xi - 1 = 0 (stable exactly on the imaginary
#: segment |z| <= 1, z = i a: xi = i a +- sqrt(1 - a^2), |xi| > 1 once a^2 > 1). Verlet / leapfrog on a separable
#: linear system (x' = w z, z' = -w x; eigenvalues z = +-i h w) has xi^2 - (2 + z^2) xi + 1 = 0 (stable on
#: |z| <= 2 of the imaginary axis). Neither is a one-step method of this module's ``step(f, x, h)`` form (one is
#: two-step, the other partitioned), so their steps live in the network blocks of :mod:`nnrds.models`.
_CHAR_POLY = {
    "leapfrog": lambda z: (np.ones_like(z), -2.0 * z, -np.ones_like(z)),
    "verlet": lambda z: (np.ones_like(z), -(2.0 + z * z), np.ones_like(z)),
}
_RK_POLY = {"euler": 1, "midpoint": 2, "rk4": 4}  # explicit RK with s = p stages: truncated exponential


def amplification(scheme: str, z) -> np.ndarray:
    """max |xi(z)| of ``scheme`` at z = h lambda (complex array): the growth per step of the mode lambda."""
    z = np.asarray(z, dtype=complex)
    if scheme in _RK_POLY:
        term, total = np.ones_like(z), np.ones_like(z)
        for k in range(1, _RK_POLY[scheme] + 1):
            term = term * z / k
            total = total + term
        return np.abs(total)
    if scheme in _CHAR_POLY:
        a, b, c = _CHAR_POLY[scheme](z)
        disc = np.sqrt(b * b - 4 * a * c)
        return np.maximum(np.abs((-b + disc) / (2 * a)), np.abs((-b - disc) / (2 * a)))
    raise ValueError(f"no stability function for scheme {scheme!r}; known: {sorted(_RK_POLY) + sorted(_CHAR_POLY)}")
