"""Reference solutions of the 1-D periodic PDEs of the PINN failure-mode study (generated data, not learned).

Domain: x in [0, 2 pi) periodic, t in [0, 1]; evaluation grid :func:`grid` of 256 x 100 points (x without the
right end point 2 pi, t with both ends), as in Krishnapriyan et al. (NeurIPS 2021).

* convection  u_t + beta u_x = 0,              u(x, 0) = sin x          -> :func:`fourier_solution` (exact)
* reaction    u_t - rho u (1 - u) = 0,         Gaussian u(x, 0)         -> :func:`logistic_solution` (closed form)
* reaction-diffusion  u_t - nu u_xx - rho u (1 - u) = 0, Gaussian u(x, 0) -> :func:`reaction_diffusion_solution`
  (Strang operator splitting: exact logistic half steps around an exact Fourier diffusion step, ``substeps``
  splitting steps between consecutive evaluation times, so the splitting grid contains the evaluation grid)

:func:`method_of_lines` is an independent solver (finite differences on a fine grid + scipy ``solve_ivp``) that
the tests compare every reference against.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

#: evaluation grid of the paper: 256 points in x, 100 in t
NX, NT = 256, 100
PROBLEMS = ("convection", "reaction", "reaction_diffusion")


def grid(nx: int = NX, nt: int = NT, t_max: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """x in [0, 2 pi) (``nx`` points, periodic: 2 pi excluded) and t in [0, t_max] (``nt`` points, both ends)."""
    return np.linspace(0.0, 2 * np.pi, nx, endpoint=False), np.linspace(0.0, t_max, nt)


def sine_ic(x: np.ndarray) -> np.ndarray:
    return np.sin(x)


def gaussian_ic(x: np.ndarray) -> np.ndarray:
    """exp(-(x - pi)^2 / (2 (pi/4)^2))."""
    return np.exp(-((x - np.pi) ** 2) / (2 * (np.pi / 4) ** 2))


def initial_condition(problem: str, x: np.ndarray) -> np.ndarray:
    _check(problem)
    return sine_ic(x) if problem == "convection" else gaussian_ic(x)


def _check(problem: str) -> None:
    if problem not in PROBLEMS:
        raise ValueError(f"unknown PDE problem {problem!r}; expected one of {PROBLEMS}")


def fourier_solution(u0: np.ndarray, t: np.ndarray, beta: float = 0.0, nu: float = 0.0) -> np.ndarray:
    """Exact solution of u_t + beta u_x - nu u_xx = 0 on a uniform periodic grid of [0, 2 pi) from the samples
    ``u0`` (exact for a trigonometric polynomial resolved by the grid): u_hat_k(t) = u_hat_k(0) exp(-(i k beta
    + nu k^2) t). Returns (len(t), len(u0))."""
    n = u0.size
    k = np.fft.fftfreq(n, d=1.0 / n)  # integer wave numbers on [0, 2 pi)
    uh = np.fft.fft(u0)
    fac = np.exp(-(1j * k * beta + nu * k**2)[None, :] * np.asarray(t)[:, None])
    return np.real(np.fft.ifft(uh[None, :] * fac, axis=1))


def logistic_solution(u0: np.ndarray, t: np.ndarray, rho: float) -> np.ndarray:
    """Closed form of u_t = rho u (1 - u):  u = u0 e^{rho t} / (u0 e^{rho t} + 1 - u0). Returns (len(t), len(u0))."""
    e = np.exp(rho * np.asarray(t))[:, None]
    return u0[None, :] * e / (u0[None, :] * e + 1.0 - u0[None, :])


def reaction_diffusion_solution(u0: np.ndarray, t: np.ndarray, rho: float, nu: float, substeps: int = 8) -> np.ndarray:
    """u_t = nu u_xx + rho u (1 - u) by Strang splitting (second order in the step): between consecutive times of
    ``t`` (uniform), ``substeps`` steps of [half reaction step (exact logistic), diffusion step (exact in Fourier
    space), half reaction step]. Returns (len(t), len(u0))."""
    t = np.asarray(t, dtype=float)
    out = np.empty((t.size, u0.size))
    out[0] = u0
    n = u0.size
    k = np.fft.fftfreq(n, d=1.0 / n)
    u = u0.astype(float).copy()
    for i in range(1, t.size):
        h = (t[i] - t[i - 1]) / substeps
        diff = np.exp(-nu * k**2 * h)
        for _ in range(substeps):
            u = logistic_solution(u, np.array([h / 2]), rho)[0]
            u = np.real(np.fft.ifft(np.fft.fft(u) * diff))
            u = logistic_solution(u, np.array([h / 2]), rho)[0]
        out[i] = u
    return out


def reference_solution(problem: str, coef: dict, x: np.ndarray, t: np.ndarray, substeps: int = 8) -> np.ndarray:
    """u(t_j, x_i) on the grid, shape (len(t), len(x)); ``coef`` holds beta / rho / nu as the problem needs."""
    _check(problem)
    u0 = initial_condition(problem, x)
    if problem == "convection":
        return fourier_solution(u0, t, beta=float(coef["beta"]))
    if problem == "reaction":
        return logistic_solution(u0, t, float(coef["rho"]))
    return reaction_diffusion_solution(u0, t, float(coef["rho"]), float(coef["nu"]), substeps=substeps)


def method_of_lines(
    problem: str, coef: dict, nx: int, t: np.ndarray, rtol: float = 1e-10, atol: float = 1e-12
) -> tuple[np.ndarray, np.ndarray]:
    """Independent solver: 4th-order central finite differences on ``nx`` periodic points and scipy ``solve_ivp``
    (DOP853 without diffusion; the implicit Radau method with the exact sparse Jacobian when nu > 0, where the
    semi-discrete system is stiff), tight tolerances. Returns (x, u) with u of shape (len(t), nx)."""
    _check(problem)
    x = np.linspace(0.0, 2 * np.pi, nx, endpoint=False)
    dx = x[1] - x[0]
    beta = float(coef.get("beta", 0.0)) if problem == "convection" else 0.0
    rho = float(coef.get("rho", 0.0)) if problem != "convection" else 0.0
    nu = float(coef.get("nu", 0.0)) if problem == "reaction_diffusion" else 0.0

    def rhs(_t, u):
        up1, um1, up2, um2 = np.roll(u, -1), np.roll(u, 1), np.roll(u, -2), np.roll(u, 2)
        ux = (-up2 + 8 * up1 - 8 * um1 + um2) / (12 * dx)
        uxx = (-up2 + 16 * up1 - 30 * u + 16 * um1 - um2) / (12 * dx**2)
        return -beta * ux + nu * uxx + rho * u * (1 - u)

    kw: dict = {"method": "DOP853"}
    if nu > 0:
        from scipy import sparse

        offs = [-2, -1, 0, 1, 2]
        d1 = np.array([1, -8, 0, 8, -1]) / (12 * dx)
        d2 = np.array([-1, 16, -30, 16, -1]) / (12 * dx**2)
        lin = sparse.csr_matrix((nx, nx))
        for o, a, b in zip(offs, d1, d2):
            # periodic band: entry (i, i + o mod nx)
            lin = lin + sparse.csr_matrix(
                (np.full(nx, -beta * a + nu * b), (np.arange(nx), (np.arange(nx) + o) % nx)), shape=(nx, nx)
            )
        kw = {"method": "Radau", "jac": lambda _t, u: lin + sparse.diags(rho * (1 - 2 * u))}
    sol = solve_ivp(
        rhs, (float(t[0]), float(t[-1])), initial_condition(problem, x), t_eval=t, rtol=rtol, atol=atol, **kw
    )
    if not sol.success:
        raise RuntimeError(f"method of lines failed: {sol.message}")
    return x, sol.y.T
