"""The potential of :class:`nnrds.uq.model.BayesNet` written in JAX, for NumPyro's NUTS (optional ``bench`` extra:
``pip install -e '.[bench]'`` installs numpyro and jax).

:func:`potential_fn` returns U(q) = -log p(q | data) for one unconstrained q (dim,) -- the same function, constants
included, as :meth:`BayesNet.potential` (tested): forward pass of the WP-ResNet / MLP / linear model in the
backbone's parameter layout, Gaussian likelihood, Normal prior on the weights, HalfNormal prior on each noise std
with the log-Jacobian of sigma = exp(log sigma). NumPyro vectorizes it over chains itself.
"""

from __future__ import annotations

import math

import numpy as np

from .model import LOG_2PI, BayesNet


def enable_x64(dtype: str) -> None:
    """JAX precision for ``dtype`` ("float64" / "float32"): JAX's x64 switch is process-wide."""
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")


def potential_fn(net: BayesNet, X, Y, dtype: str = "float64", shift=None, factor=None):
    """U(q) in JAX for one q (dim,). With ``shift`` m (dim,) and ``factor`` L (dim, dim): U(m + L z) as a function
    of z (the whitened coordinates of the Laplace metric)."""
    import jax
    import jax.numpy as jnp

    dt = jnp.float64 if dtype == "float64" else jnp.float32
    Xj, Yj = jnp.asarray(np.asarray(X), dtype=dt), jnp.asarray(np.asarray(Y), dtype=dt)
    phi = jnp.asarray(net.phi.cpu().numpy(), dtype=dt)
    prior_std = jnp.asarray(net.prior_std.cpu().numpy(), dtype=dt)
    log_prior_const = float(net.prior_std.log().sum()) + 0.5 * net.P * LOG_2PI
    sl, sh, s = net.slices, net.shapes, net.spec
    N, d = Yj.shape
    act = {"tanh": jnp.tanh, "relu": jax.nn.relu, "softplus": jax.nn.softplus}.get(s.activation)
    if act is None:
        raise ValueError(f"NumPyro engine: activation {s.activation!r} is not written in JAX")
    mj = None if shift is None else jnp.asarray(np.asarray(shift), dtype=dt)
    Lj = None if factor is None else jnp.asarray(np.asarray(factor), dtype=dt)

    def forward(th):
        p = {k: th[v].reshape(sh[k]) for k, v in sl.items()}
        if s.kind == "linear":
            return Xj @ p["A_out"] + p["a_out"]
        W = jnp.einsum("lk,kij->lij", phi, p["C"])
        b = phi @ p["c"]
        x = Xj @ p["A_in"] + p["a_in"]
        h = s.T / s.depth
        for n in range(s.depth):
            z = x @ W[n].T + b[n]
            x = act(z) if s.kind == "mlp" else x + h * act(z)
        return x @ p["A_out"] + p["a_out"]

    def U_q(q):
        th = q[: net.P]
        f = forward(th)
        if net.n_noise:
            ls = q[net.P :]
            sig = jnp.exp(ls)
        else:
            sig = jnp.full((d,), float(s.noise_fixed), dtype=dt)
            ls = jnp.log(sig)
        ll = -0.5 * jnp.sum(((Yj - f) / sig) ** 2) - N * jnp.sum(ls) - 0.5 * N * d * LOG_2PI
        lp = -0.5 * jnp.sum((th / prior_std) ** 2) - log_prior_const
        if net.n_noise:
            tau = s.noise_scale
            lp = lp + jnp.sum(0.5 * math.log(2.0 / math.pi) - math.log(tau) - 0.5 * (sig / tau) ** 2 + ls)
        return -(ll + lp)

    if mj is None:
        return U_q

    def U_z(z):
        return U_q(mj + Lj @ z)

    return U_z
