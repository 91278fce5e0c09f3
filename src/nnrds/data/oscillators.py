"""Oscillator trajectories, generated from exact solutions: the nonlinear pendulum and the harmonic oscillator.

State x = (q, p) = (angle, angular velocity).

* Pendulum ``q'' = -g sin q`` released from rest at ``q0`` (|q0| < pi): with k = sin(q0/2), m = k^2,
  w0 = sqrt(g) and u = K(m) - w0 t (K the complete elliptic integral of the first kind),
  ``sin(q/2) = k sn(u | m)`` and ``q' = -2 k w0 cn(u | m)`` (Jacobi elliptic functions, scipy.special.ellipj);
  period 4 K(m) / w0.
* Harmonic oscillator ``q'' = -w^2 q`` (the pendulum linearized about rest when w^2 = g):
  ``q = q0 cos(w t) + (p0 / w) sin(w t)``, ``p = -q0 w sin(w t) + p0 cos(w t)``.

Vector fields (:meth:`Oscillator.field`) use only arithmetic and ``sin``, so they take numpy arrays or torch
tensors with the state in the last dimension. Training pairs (:func:`transition_pairs`) are the exact state at
n times spread over one period and the exact state a step dt later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

KINDS = ("pendulum", "harmonic")


@dataclass(frozen=True)
class Oscillator:
    """``kind`` pendulum or harmonic; ``g`` the pendulum's g (harmonic: w^2 = g); ``q0``, ``p0`` the initial
    state (the pendulum's exact solution needs p0 = 0, released from rest)."""

    kind: str = "pendulum"
    g: float = 9.81
    q0: float = 3 * math.pi / 4
    p0: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown oscillator {self.kind!r}; expected one of {KINDS}")
        if self.g <= 0:
            raise ValueError(f"g must be > 0, got {self.g}")
        if self.kind == "pendulum" and (self.p0 != 0.0 or not 0 < abs(self.q0) < math.pi):
            raise ValueError(
                "the pendulum's exact solution is implemented for release from rest (p0 = 0) at "
                f"0 < |q0| < pi; got q0={self.q0}, p0={self.p0}"
            )

    @property
    def omega0(self) -> float:
        """Small-amplitude angular frequency sqrt(g)."""
        return math.sqrt(self.g)

    @property
    def period(self) -> float:
        if self.kind == "harmonic":
            return 2 * math.pi / self.omega0
        return 4 * float(special.ellipk(math.sin(self.q0 / 2) ** 2)) / self.omega0

    @property
    def x0(self) -> np.ndarray:
        return np.array([self.q0, self.p0])

    def field(self, x):
        """dx/dt at states x (..., 2): numpy array or torch tensor."""
        q, p = x[..., 0:1], x[..., 1:2]
        if self.kind == "harmonic":
            dp = -self.g * q
        else:
            dp = -self.g * (np.sin(q) if isinstance(q, np.ndarray) else q.sin())
        return _cat(p, dp)

    def exact(self, t) -> np.ndarray:
        """Exact states at times t, shape (*t.shape, 2)."""
        t = np.asarray(t, dtype=float)
        w0 = self.omega0
        if self.kind == "harmonic":
            c, s = np.cos(w0 * t), np.sin(w0 * t)
            return np.stack([self.q0 * c + self.p0 / w0 * s, -self.q0 * w0 * s + self.p0 * c], axis=-1)
        k = math.sin(self.q0 / 2)
        m = k * k
        sn, cn, _, _ = special.ellipj(float(special.ellipk(m)) - w0 * t, m)
        q = 2.0 * np.arcsin(np.clip(k * sn, -1.0, 1.0))
        return np.stack([q, -2.0 * k * w0 * cn], axis=-1)

    def energy(self, x) -> np.ndarray:
        """Conserved energy p^2/2 + V(q) (V = g(1 - cos q) or g q^2 / 2)."""
        x = np.asarray(x)
        q, p = x[..., 0], x[..., 1]
        V = self.g * (1 - np.cos(q)) if self.kind == "pendulum" else 0.5 * self.g * q * q
        return 0.5 * p * p + V

    def scale(self) -> np.ndarray:
        """Amplitude of each state component over the orbit (max |q|, max |p|): the unit of errors."""
        return np.abs(self.exact(np.linspace(0.0, self.period, 2001))).max(axis=0)


def _cat(a, b):
    if isinstance(a, np.ndarray):
        return np.concatenate([a, b], axis=-1)
    import torch

    return torch.cat([a, b], dim=-1)


def transition_pairs(osc: Oscillator, dt: float, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed states and their successors: (t, X, Y) with t_i = i * period / n (i = 0..n-1) spread over one
    period of the orbit, X = x(t_i) and Y = x(t_i + dt), all exact."""
    t = np.arange(n) * (osc.period / n)
    return t, osc.exact(t), osc.exact(t + dt)
