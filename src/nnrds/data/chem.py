"""Stiff-chemistry ensemble: Robertson's three-species autocatalytic reaction system.

    A -> B          (k1, nominal 0.04)
    B + B -> C + B  (k2, nominal 3e7)
    B + C -> A + C  (k3, nominal 1e4)

    y1' = -k1 y1 + k3 y2 y3,   y2' = k1 y1 - k3 y2 y3 - k2 y2^2,   y3' = k2 y2^2

(Robertson 1966; Hairer & Wanner, Solving ODEs II, sec. IV.1). Rate constants span nine orders of magnitude,
so the Jacobian's eigenvalues do too: explicit methods need steps ~1/|lambda_max| while the solution evolves
on time scales up to 1e5+. The mechanism conserves total mass ``y1 + y2 + y3`` exactly (a linear invariant,
which implicit Runge-Kutta / BDF methods preserve up to the Newton tolerance).

Inputs (perturbed): the three log10 rate constants and the three initial concentrations. Outputs: log10 of
each concentration at fixed times. Each member is solved with scipy's Radau (order 5) with an analytic
Jacobian and tight tolerances; members are independent (optionally spread over processes).
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

NOMINAL = {
    "log10_k1": math.log10(0.04),
    "log10_k2": math.log10(3e7),
    "log10_k3": 4.0,
    "y1_0": 1.0,
    "y2_0": 0.0,
    "y3_0": 0.0,
}
UNITS = {
    "log10_k1": "log10(1/s)",
    "log10_k2": "log10(1/(conc s))",
    "log10_k3": "log10(1/(conc s))",
    "y1_0": "conc",
    "y2_0": "conc",
    "y3_0": "conc",
}


def default_ranges() -> dict[str, list[float]]:
    """About half a decade around each nominal rate constant; initial conditions around (1, 0, 0)."""
    return {
        "log10_k1": [-1.9, -0.9],
        "log10_k2": [7.0, 8.0],
        "log10_k3": [3.5, 4.5],
        "y1_0": [0.5, 1.5],
        "y2_0": [0.0, 2.0e-5],
        "y3_0": [0.0, 0.5],
    }


def rhs(t, y, k1, k2, k3):
    y1, y2, y3 = y
    return np.array([-k1 * y1 + k3 * y2 * y3, k1 * y1 - k3 * y2 * y3 - k2 * y2 * y2, k2 * y2 * y2])


def jac(t, y, k1, k2, k3):
    _, y2, y3 = y
    return np.array([[-k1, k3 * y3, k3 * y2], [k1, -k3 * y3 - 2 * k2 * y2, -k3 * y2], [0.0, 2 * k2 * y2, 0.0]])


def stiffness_ratio(y, k1, k2, k3) -> float:
    """max |Re lambda| / min |Re lambda| over the Jacobian's non-zero eigenvalues (one is 0: conservation)."""
    lam = np.abs(np.linalg.eigvals(jac(0.0, np.asarray(y, float), k1, k2, k3)).real)
    lam = lam[lam > 1e-12 * lam.max()]
    return float(lam.max() / lam.min())


def solve(p: dict, times, method: str = "Radau", rtol: float = 1e-10, atol_rel: float = 1e-14):
    """Concentrations at ``times`` (rows) for one parameter set; ``atol = atol_rel * y1_0 + ...``."""
    k1, k2, k3 = (10.0 ** p[k] for k in ("log10_k1", "log10_k2", "log10_k3"))
    y0 = np.array([p["y1_0"], p["y2_0"], p["y3_0"]], dtype=float)
    total = y0.sum()
    # y2 lives near 1e-5 of the total: give it a 1e4 smaller absolute tolerance
    atol = np.array([atol_rel, atol_rel * 1e-4, atol_rel]) * max(total, 1e-300)
    times = np.asarray(times, float)
    extra = {} if method in ("RK45", "DOP853", "RK23") else {"jac": jac}
    sol = solve_ivp(
        rhs, (0.0, float(times[-1])), y0, method=method, t_eval=times, args=(k1, k2, k3), rtol=rtol, atol=atol, **extra
    )
    if not sol.success:
        raise RuntimeError(f"Robertson solve failed for {p}: {sol.message}")
    return sol.y.T, sol


def _member(args):
    p, times, rtol = args
    y, sol = solve(p, times, rtol=rtol)
    return np.log10(np.maximum(y, 1e-300)).ravel(), sol.nfev, float(sol.y.sum(0).max() - sol.y.sum(0).min())


def output_names(times) -> list[str]:
    return [f"log10_y{i}_t{t:g}" for t in times for i in (1, 2, 3)]


def run_ensemble(design: pd.DataFrame, times, rtol: float = 1e-10, n_jobs: int = 1):
    """Outputs (members x 3*len(times)) and per-member diagnostics (rhs evaluations, mass drift)."""
    times = sorted(float(t) for t in times)
    tasks = [(row, times, rtol) for row in design.to_dict("records")]
    if n_jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(n_jobs) as ex:
            res = list(ex.map(_member, tasks, chunksize=max(1, len(tasks) // (8 * n_jobs))))
    else:
        res = [_member(t) for t in tasks]
    y = pd.DataFrame(np.array([r[0] for r in res]), columns=output_names(times))
    diag = pd.DataFrame({"nfev": [r[1] for r in res], "mass_drift": [r[2] for r in res]})
    return y, diag
