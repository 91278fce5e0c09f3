"""Seeded 2-D classification problems of the stable-architecture papers (Haber & Ruthotto 2017; Chang et al. 2018).

:func:`make` draws ``n`` points of a named problem from ``numpy.random.default_rng(seed)``; returns inputs (n, 2)
and integer labels (n,) in ``0 .. CLASSES[name] - 1``:

* ``peaks``: u uniform on [-3, 3]^2, labelled by which of five level bands of MATLAB's ``peaks`` surface it lies
  in (band edges: the 20/40/60/80 % quantiles of ``peaks`` on a fixed 201 x 201 grid, so the classes have about
  equal area);
* ``ellipses``: three concentric elliptical rings (semi-axes ratio 2:1), class = ring, radial jitter within it;
* ``swiss_roll``: two interleaved spiral arms (class = arm), with Gaussian noise of 0.05 of the roll's radius.
"""

from __future__ import annotations

import numpy as np

CLASSES = {"peaks": 5, "ellipses": 3, "swiss_roll": 2}


def peaks(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """MATLAB's ``peaks`` surface."""
    return (
        3.0 * (1 - x) ** 2 * np.exp(-(x**2) - (y + 1) ** 2)
        - 10.0 * (x / 5 - x**3 - y**5) * np.exp(-(x**2) - y**2)
        - np.exp(-((x + 1) ** 2) - y**2) / 3.0
    )


def _peaks_edges() -> np.ndarray:
    g = np.linspace(-3.0, 3.0, 201)
    xx, yy = np.meshgrid(g, g)
    return np.quantile(peaks(xx, yy).ravel(), [0.2, 0.4, 0.6, 0.8])


def make(name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` seeded points (inputs (n, 2) float64, labels (n,) int64) of the problem ``name``."""
    if name not in CLASSES:
        raise ValueError(f"unknown 2-D problem {name!r}; expected one of {list(CLASSES)}")
    rng = np.random.default_rng(seed)
    if name == "peaks":
        u = rng.uniform(-3.0, 3.0, size=(n, 2))
        y = np.searchsorted(_peaks_edges(), peaks(u[:, 0], u[:, 1]))
    elif name == "ellipses":
        y = rng.integers(0, 3, size=n)
        r = 0.4 + 0.9 * y + rng.uniform(0.0, 0.6, size=n)
        a = rng.uniform(0.0, 2 * np.pi, size=n)
        u = np.stack([r * np.cos(a), 0.5 * r * np.sin(a)], axis=1)
    else:
        y = rng.integers(0, 2, size=n)
        s = rng.uniform(0.0, 1.0, size=n)
        angle = 3.0 * np.pi * np.sqrt(s) + np.pi * y
        radius = 0.3 + 2.7 * np.sqrt(s)
        u = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        u = u + rng.normal(0.0, 0.05 * 3.0, size=u.shape)
    return u.astype(np.float64), y.astype(np.int64)
