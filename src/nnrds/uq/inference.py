"""Inference methods behind one interface: every method returns a :class:`Posterior`, and
:func:`predictive_samples` turns any :class:`Posterior` into posterior-predictive samples.

* ``nuts``: NUTS (engine ``vectorized``: :mod:`nnrds.uq.nuts`, all chains in one batched evaluation; or
  ``pyro``: Pyro's NUTS) on the unconstrained potential of :class:`~nnrds.uq.model.BayesNet` (hand-written,
  eager by default -- ``jit=True`` wraps it in ``torch.compile``; the deprecated ``torch.jit.trace`` is gone:
  it saved 7% per potential+gradient evaluation, ``torch.compile`` saves 35% but costs 15-40 s of compilation;
  equal to the Pyro model's potential, see the tests), several chains, step size and a diagonal mass matrix
  adapted in warm-up. Starts: ``init="mode"`` (each chain after a short Adam run from the backbone's init with
  the chain's seed) or ``init="laplace"`` (Laplace draws around the best of several Adam + L-BFGS mode searches,
  optionally with that mode's dense Laplace metric). Still exact HMC on the same posterior: the start and the
  metric only change the initial point and the kinetic energy, and adaptation stops before sampling.
* ``nuts_vanilla``: Pyro NUTS on :meth:`BayesNet.pyro_model` with Pyro's defaults (the benchmark's
  reference (a)).
* ``vi``: Bayes-by-backprop, Pyro SVI with a mean-field Normal guide on theta and a log-normal guide on
  each noise std. Guide scales are ``softplus(rho)`` (Blundell et al. 2015): positive, and linear rather than
  exponential for large rho, so a large gradient step cannot blow a scale up; rho starts at
  softplus^-1(``init_scale``).
* ``vi_lowrank``: the same with a low-rank-plus-diagonal Normal guide on theta
  (``pyro.distributions.LowRankMultivariateNormal``: covariance W W^T + diag(softplus(rho)^2), W of shape
  (P, ``rank``)), which can represent the strong correlations between weights that mean-field drops.
* ``ensemble``: deep ensemble of ``members`` networks trained by :func:`nnrds.train.fit` as replicas
  (independent inits), each on the MAP objective below; predictive = equal-weight mixture of the members,
  each with Gaussian noise of its own training-residual std per output.
* ``map``: the same with one member (point estimate + residual noise; no epistemic uncertainty).
  MAP objective per replica: mse + noise_guess^2 / (N d_out) * sum_j (theta_j / s_j)^2, i.e. the negative
  log posterior divided by N d_out / noise_guess^2 with the noise std held at ``noise_guess``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import guards
from ..guards import check_finite
from .model import BayesNet

log = logging.getLogger(__name__)


def _where(method: str, key: str, unit: str) -> guards.Where:
    """The job's :class:`~nnrds.guards.Where` (set by the study command when it sets one) with this method's
    config key (``uq_elm.<method>.<key>`` inside the UQ study or outside any job) and unit (chain / replica)."""
    base = guards.current() if hasattr(guards, "current") else guards.Where()
    if base.study in ("?", "uq_elm"):
        base = dataclasses.replace(base, study="uq_elm", config_key=f"uq_elm.{method}.{key}")
    return dataclasses.replace(base, unit=unit)


METHODS = ("nuts", "vi", "vi_lowrank", "ensemble", "map")


@dataclass
class Posterior:
    """Draws (or members, or a variational family) of one method; use :func:`predictive_samples`."""

    method: str
    net: BayesNet
    theta: torch.Tensor  # (S, P): MCMC draws (chain-major), members, the MAP, or the VI mean
    sigma: torch.Tensor  # (S, d_out) noise std per draw/member (VI: log-normal loc of log sigma)
    chains: int = 1  # MCMC: theta is (chains * draws, P), chain-major
    theta_scale: torch.Tensor | None = None  # VI: std of theta (P,)
    theta_factor: torch.Tensor | None = None  # low-rank VI: covariance factor W (P, rank)
    log_sigma_scale: torch.Tensor | None = None  # VI: std of log sigma (d_out,)
    info: dict = field(default_factory=dict)  # timings, diagnostics, settings
    #: MCMC: weight of each chain in the predictive (stacking of non-mixing chains, :mod:`nnrds.uq.stacking`);
    #: None = equal weights (the usual pooled draws)
    chain_weights: np.ndarray | None = None

    @property
    def n_draws(self) -> int:
        return self.theta.shape[0]

    def draw(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n parameter vectors and noise stds from this posterior: (n, P), (n, d_out)."""
        if self.method == "vi":
            eps = torch.randn(n, self.theta.shape[-1], generator=gen, dtype=self.theta.dtype)
            theta = self.theta[0] + self.theta_scale * eps
            if self.theta_factor is not None:
                e1 = torch.randn(n, self.theta_factor.shape[1], generator=gen, dtype=self.theta.dtype)
                theta = theta + e1 @ self.theta_factor.T
            if self.log_sigma_scale is not None:
                e2 = torch.randn(n, self.sigma.shape[-1], generator=gen, dtype=self.theta.dtype)
                sigma = (self.sigma[0] + self.log_sigma_scale * e2).exp()
            else:
                sigma = self.sigma[0].exp().expand(n, -1)
            return theta, sigma
        S = self.n_draws
        if self.chain_weights is not None:
            return self._draw_weighted(n)
        if self.method in ("nuts", "nuts_vanilla") and n <= S:
            idx = torch.linspace(0, S - 1, n).round().long()  # evenly thinned over all chains
        else:
            idx = torch.arange(n) % S  # members round-robin (every member equally often)
        return self.theta[idx], self.sigma[idx]

    def _draw_weighted(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n draws, chain c contributing round(n w_c) of them (largest remainders), evenly thinned within it."""
        C = self.chains
        D = self.n_draws // C
        w = np.asarray(self.chain_weights, dtype=float)
        w = w / w.sum()
        raw = n * w
        counts = np.floor(raw).astype(int)
        for c in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
            counts[c] += 1
        idx = []
        for c, m in enumerate(counts):
            if m:
                within = torch.linspace(0, D - 1, int(m)).round().long() if m <= D else torch.arange(int(m)) % D
                idx.append(c * D + within)
        idx = torch.cat(idx)
        return self.theta[idx], self.sigma[idx]


def predictive_samples(
    post: Posterior, X, n_samples: int = 200, seed: int = 0, noise: bool = True, return_f: bool = False
):
    """Posterior-predictive samples at inputs X (N, d_in): numpy array (n_samples, N, d_out).

    ``noise=False`` gives samples of the regression function only; ``return_f=True`` returns (y, f)."""
    net = post.net
    gen = torch.Generator().manual_seed(int(seed))
    Xt = torch.as_tensor(np.asarray(X), dtype=net.dtype)
    theta, sigma = post.draw(n_samples, gen)
    with torch.no_grad():
        f = net.forward(theta, Xt)
        y = f + sigma[:, None, :] * torch.randn(f.shape, generator=gen, dtype=f.dtype) if noise else f
    y = y.cpu().numpy()
    return (y, f.cpu().numpy()) if return_f else y


# ----------------------------------------------------------------------------------------------- helpers
def _t(a, net: BayesNet) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=net.dtype)


def find_mode(net: BayesNet, X, Y, q0: torch.Tensor, steps: int = 500, lr: float = 0.02) -> torch.Tensor:
    """Adam on the potential from q0 (C, dim) for every row at once (rows are independent)."""
    Xt, Yt = _t(X, net), _t(Y, net)
    q = q0.clone().requires_grad_(True)
    opt = torch.optim.Adam([q], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        net.potential(q, Xt, Yt).sum().backward()
        opt.step()
    return q.detach()


def initial_q(net: BayesNet, seeds, Y=None) -> torch.Tensor:
    """Backbone init of theta for each seed, log sigma at log(0.5 std(Y)) (or 0)."""
    theta = net.init_theta(seeds)
    if not net.n_noise:
        return theta
    s0 = 0.5 * float(np.std(np.asarray(Y))) if Y is not None else 1.0
    ls = torch.full((len(seeds), net.n_noise), math.log(max(s0, 1e-3)), dtype=net.dtype)
    return torch.cat([theta, ls], 1)


# ----------------------------------------------------------------------------------------------- NUTS
def lbfgs_mode(
    net: BayesNet,
    Xt: torch.Tensor,
    Yt: torch.Tensor,
    q0: torch.Tensor,
    max_iter: int = 2000,
) -> tuple[torch.Tensor, float, float]:
    """L-BFGS (strong Wolfe line search) on the potential from q0 (dim,): (mode, potential, gradient norm).
    Unlike a few hundred Adam steps this reaches a true local mode (gradient norm ~1e-3 on the ELM posterior)."""
    q = q0.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [q],
        lr=1,
        max_iter=max_iter,
        max_eval=int(1.25 * max_iter),
        tolerance_grad=1e-7,
        tolerance_change=1e-12,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        u = net.potential(q, Xt, Yt)
        u.backward()
        return u

    opt.step(closure)
    q = q.detach()
    qg = q.clone().requires_grad_(True)
    u = net.potential(qg, Xt, Yt)
    (g,) = torch.autograd.grad(u, qg)
    return q, float(u.detach()), float(g.norm())


def laplace_factor(net: BayesNet, Xt: torch.Tensor, Yt: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """A square root L (L L^T = H^-1) of the Laplace covariance at q (H = Hessian of the potential). Eigenvalues
    are floored at the weakest prior precision 1 / max_j s_j^2: a saddle or flat direction (q not quite a mode)
    gets the prior's scale, never a negative or unbounded one."""
    H = torch.autograd.functional.hessian(lambda z: net.potential(z, Xt, Yt), q.detach())
    H = 0.5 * (H + H.T)
    ev, V = torch.linalg.eigh(H)
    ev = ev.clamp_min(1.0 / float(net.prior_std.max()) ** 2)
    return V * ev.rsqrt()[None, :]  # L L^T = V diag(1/ev) V^T (a square root; not triangular)


def laplace_start(
    net: BayesNet,
    X,
    Y,
    *,
    starts: int,
    seed: int,
    init_steps: int,
    mode_iters: int,
    chains: int,
    start_modes: str = "best",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """Mode search that reaches a mode: ``starts`` backbone inits, ``init_steps`` batched Adam steps, then
    L-BFGS on each; the best (lowest potential) mode m and its Laplace factor L. Returns (m, L, z, info): chain c
    starts at m + L z_c. ``start_modes="best"``: z_c ~ N(0, I), every chain around the best mode (jitter at the
    scale of the posterior); ``"all"``: chain c around mode c mod ``starts`` (over-dispersed starts from independent
    mode searches, the same Laplace jitter L z at each), z_c = L^-1 (m_k - m) + N(0, I). ``info["chain_modes"]``
    names each chain's mode search. Float64 throughout."""
    if start_modes not in ("best", "all"):
        raise ValueError(f"NUTS start_modes must be 'best' or 'all', got {start_modes!r}")
    net64 = net if net.dtype == torch.float64 else BayesNet(net.spec, dtype=torch.float64)
    Xt, Yt = _t(X, net64), _t(Y, net64)
    q0 = initial_q(net64, [seed * 1000 + 31 * k + 5 for k in range(starts)], Y)
    if init_steps:
        q0 = find_mode(net64, X, Y, q0, steps=init_steps)
    found = [lbfgs_mode(net64, Xt, Yt, q0[k], mode_iters) for k in range(starts)]
    us = np.array([f[1] for f in found])
    best = int(np.argmin(us))
    m = found[best][0]
    L = laplace_factor(net64, Xt, Yt, m)
    z = torch.randn(chains, net64.dim, generator=torch.Generator().manual_seed(seed * 1000 + 3), dtype=torch.float64)
    cm = [best] * chains if start_modes == "best" else [c % starts for c in range(chains)]
    if start_modes == "all":
        offs = torch.linalg.solve(L, torch.stack([f[0] - m for f in found]).T).T  # L^-1 (m_k - m), (starts, dim)
        z = z + offs[cm]
    info = {"mode_potentials": us.tolist(), "mode_grad_norms": [f[2] for f in found], "best_start": best}
    info["chain_modes"] = cm
    return m, L, z, info


#: NUTS engines: this package's chain-vectorized sampler, Pyro's NUTS (chains in turn), NumPyro's NUTS (JAX,
#: chains vectorized; optional ``bench`` extra)
NUTS_ENGINES = ("vectorized", "pyro", "numpyro")

#: NUTS metrics: ``diag`` (per-chain diagonal adaptation), ``dense`` (dense adaptation pooled over chains),
#: ``laplace`` (dense Laplace metric at the best mode, then diagonal adaptation), ``laplace_dense`` (the Laplace
#: metric, then dense adaptation on top of it)
NUTS_METRICS = ("diag", "dense", "laplace", "laplace_dense")


def run_nuts(
    net: BayesNet,
    X,
    Y,
    *,
    chains: int = 4,
    warmup: int = 200,
    samples: int = 200,
    seed: int = 0,
    max_tree_depth: int = 8,
    target_accept: float = 0.8,
    init: str = "mode",
    init_steps: int = 500,
    engine: str = "vectorized",
    jit: bool = False,
    full_mass: bool = False,
    dtype: str = "float64",
    starts: int = 4,
    mode_iters: int = 2000,
    metric: str = "diag",
    start_modes: str = "best",
) -> Posterior:
    """Fast NUTS (see module docstring).

    ``init="laplace"``: the chains start at Laplace draws around the best of ``starts`` true modes
    (:func:`laplace_start`: Adam then L-BFGS); with ``metric="laplace"`` the sampler also runs in the
    coordinates z of q = m + L z (L L^T the Laplace covariance at that mode), i.e. with the *dense* mass matrix
    H(m) (the diagonal adaptation then continues in z). ``start_modes="all"``: chain c starts around mode
    c mod ``starts`` instead (over-dispersed starts; the metric stays the best mode's). ``metric="diag"``: the windowed diagonal adaptation only.

    ``engine="vectorized"``: :class:`nnrds.uq.nuts.VectorizedNUTS`, all chains in one batched potential
    evaluation per leapfrog step. ``engine="pyro"``: Pyro's NUTS on the same potential, chains one
    after another. ``engine="numpyro"``: NumPyro's NUTS (:func:`numpyro_nuts`, optional ``bench`` extra) on the
    same potential in JAX from the same starts, with NumPyro's own warm-up: ``diag`` / ``laplace`` a diagonal
    metric per chain (in q / in the Laplace coordinates z), ``dense`` / ``laplace_dense`` a dense one per chain
    (the vectorized engine pools its dense estimate over chains); ``dtype`` sets JAX's precision.

    ``dtype="float32"`` (vectorized engine) runs the sampler in single precision: the same posterior, half the
    memory traffic per leapfrog step; draws are returned in the net's dtype."""
    if dtype not in ("float64", "float32"):
        raise ValueError(f"NUTS dtype must be 'float64' or 'float32', got {dtype!r}")
    out_net = net
    if engine not in NUTS_ENGINES:
        raise ValueError(f"NUTS engine must be one of {NUTS_ENGINES}, got {engine!r}")
    if engine == "vectorized" and getattr(torch, dtype) != net.dtype:
        net = BayesNet(net.spec, dtype=getattr(torch, dtype))
    Xt, Yt = _t(X, net), _t(Y, net)
    seeds = [seed * 1000 + 17 * c + 1 for c in range(chains)]
    if metric not in NUTS_METRICS:
        raise ValueError(f"NUTS metric must be one of {NUTS_METRICS}, got {metric!r}")
    laplace_metric = metric.startswith("laplace")
    if laplace_metric and (init != "laplace" or engine == "pyro"):
        raise ValueError(f"NUTS metric {metric!r} needs init 'laplace' and the vectorized or numpyro engine")
    if metric != "diag" and engine == "pyro":
        raise ValueError(f"NUTS metric {metric!r} needs the vectorized or numpyro engine")
    q0 = initial_q(net, seeds, Y)
    t_init = time.perf_counter()
    extra_info, m64, L64 = {}, None, None
    if init == "mode":
        q0 = find_mode(net, X, Y, q0, steps=init_steps)
    elif init == "laplace":
        m64, L64, z, extra_info = laplace_start(
            net,
            X,
            Y,
            starts=starts,
            seed=seed,
            init_steps=init_steps,
            mode_iters=mode_iters,
            chains=chains,
            start_modes=start_modes,
        )
        q0 = (z if laplace_metric else m64 + z @ L64.T).to(net.dtype)
    elif init != "prior":
        raise ValueError(f"NUTS init must be 'mode', 'laplace' or 'prior', got {init!r}")
    t_init = time.perf_counter() - t_init
    info = {
        "chains": chains,
        "warmup": warmup,
        "samples": samples,
        "init": init,
        "init_s": t_init,
        "max_tree_depth": max_tree_depth,
        "engine": engine,
        "metric": metric,
        **extra_info,
    }
    log.info(
        "NUTS init %r: %.1f s%s",
        init,
        t_init,
        f"; mode potentials {np.round(extra_info['mode_potentials'], 1)}" if extra_info else "",
    )
    if engine == "vectorized":
        from .nuts import VectorizedNUTS

        q0 = q0.to(net.dtype)
        if laplace_metric:
            mf, Lf = m64.to(net.dtype), L64.to(net.dtype)

            def U(z):
                return net.potential(mf + z @ Lf.T, Xt, Yt)
        else:

            def U(q):
                return net.potential(q, Xt, Yt)

        Uj = torch.compile(U, dynamic=False) if jit else U
        res = VectorizedNUTS(
            Uj,
            max_tree_depth=max_tree_depth,
            target_accept=target_accept,
            seed=seed,
            metric="dense" if metric.endswith("dense") else "diag",
        ).run(q0, warmup, samples, where=_where("nuts", "target_accept", "chain"))
        q = res["draws"].to(out_net.dtype)  # (C, D, dim)
        if laplace_metric:
            q = m64.to(out_net.dtype) + q @ L64.T.to(out_net.dtype)
        info.update(
            warmup_s=res["warmup_s"],
            sampling_s=res["sampling_s"],
            divergent=res["divergent"],
            accept_rate=res["accept"].mean(1).tolist(),
            step_size=res["step_size"].tolist(),
            mean_tree_depth=float(res["tree_depth"].mean()),
            jit=jit,
            n_grad_warmup=res["n_grad_warmup"],
            n_grad_sampling=res["n_grad_sampling"],
            chain_log_density=(-res["potential"].astype(np.float64)).mean(1).tolist(),
        )
    elif engine == "numpyro":
        q, extra = numpyro_nuts(
            net,
            X,
            Y,
            q0,
            seed=seed,
            warmup=warmup,
            samples=samples,
            max_tree_depth=max_tree_depth,
            target_accept=target_accept,
            dtype=dtype,
            dense=metric.endswith("dense"),
            shift=m64 if laplace_metric else None,
            factor=L64 if laplace_metric else None,
        )
        q = q.to(out_net.dtype)
        if laplace_metric:
            q = m64.to(out_net.dtype) + q @ L64.T.to(out_net.dtype)
        info.update(extra)
    elif engine == "pyro":
        q, extra = _pyro_nuts_potential(
            net, Xt, Yt, q0, seeds, warmup, samples, max_tree_depth, target_accept, jit, full_mass
        )
        info.update(extra)
    check_finite(
        q, where=_where("nuts", "target_accept", "chain"), step=f"the {samples} kept draws", what="posterior draw"
    )
    theta, sigma = out_net.split_q(q.reshape(-1, out_net.dim))
    return Posterior("nuts", out_net, theta, sigma, chains=chains, info=info)


def numpyro_nuts(
    net: BayesNet,
    X,
    Y,
    q0: torch.Tensor,
    *,
    seed: int | list[int] = 0,
    warmup: int = 200,
    samples: int = 200,
    max_tree_depth: int = 8,
    target_accept: float = 0.8,
    dtype: str = "float64",
    dense: bool = False,
    shift: torch.Tensor | None = None,
    factor: torch.Tensor | None = None,
    step_size: float | None = None,
    inverse_mass_matrix: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict] | list[tuple[torch.Tensor, dict]]:
    """NumPyro's NUTS (``chain_method="vectorized"``: all chains in one JAX program) on :meth:`BayesNet.potential`
    written in JAX (:mod:`nnrds.uq.jax_potential`; with ``shift``/``factor`` in the coordinates z of q = m + L z),
    from the rows of ``q0`` (C, dim). NumPyro's own warm-up (Stan's windows, dual averaging; a diagonal or, with
    ``dense``, a dense metric per chain) unless ``step_size`` and ``inverse_mass_matrix`` fix the kernel (then
    nothing is adapted and the ``warmup`` iterations are burn-in). Returns draws (C, samples, dim) on the CPU and
    the info keys of the vectorized engine; ``warmup_s`` and ``sampling_s`` include JAX's compilation (reported
    apart only by the benchmark). A list of seeds runs the same compiled sampler once per seed from ``q0`` (the
    first run compiles, the others reuse it) and returns one (draws, info) per seed. Needs the optional ``bench``
    extra (numpyro, jax)."""
    try:
        import jax
        from numpyro.infer import MCMC, NUTS
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "NUTS engine 'numpyro' needs the optional extra: pip install -e '.[bench]' (numpyro, jax)"
        ) from err
    from . import jax_potential

    jax_potential.enable_x64(dtype)
    U = jax_potential.potential_fn(net, X, Y, dtype, shift=shift, factor=factor)
    fixed = step_size is not None
    kw = (
        {
            "step_size": float(step_size),
            "inverse_mass_matrix": jax.numpy.asarray(inverse_mass_matrix.cpu().numpy()),
            "adapt_step_size": False,
            "adapt_mass_matrix": False,
        }
        if fixed
        else {}
    )
    kernel = NUTS(
        potential_fn=U,
        max_tree_depth=max_tree_depth,
        target_accept_prob=target_accept,
        dense_mass=dense or (fixed and inverse_mass_matrix.dim() == 2),
        **kw,
    )
    C = q0.shape[0]
    mcmc = MCMC(
        kernel, num_warmup=warmup, num_samples=samples, num_chains=C, chain_method="vectorized", progress_bar=False
    )
    init0 = jax.numpy.asarray(q0.detach().cpu().numpy().astype("float64" if dtype == "float64" else "float32"))
    fields = ("diverging", "accept_prob", "num_steps", "potential_energy")
    out = []
    for sd in seed if isinstance(seed, list | tuple) else [seed]:
        key, init = jax.random.PRNGKey(int(sd)), init0
        t0 = time.perf_counter()
        if warmup:
            mcmc.warmup(key, init_params=init, collect_warmup=False)
            key, init = mcmc.post_warmup_state.rng_key, None
        t1 = time.perf_counter()
        mcmc.run(key, init_params=init, extra_fields=fields)
        q = np.array(jax.block_until_ready(mcmc.get_samples(group_by_chain=True)), dtype=np.float64)
        t2 = time.perf_counter()
        mcmc.post_warmup_state = None  # the next seed starts again from q0
        ex = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
        steps = ex["num_steps"].astype(np.int64)
        depth = np.floor(np.log2(np.maximum(steps, 1))).astype(int) + 1  # NumPyro's documented tree depth
        info = {
            "warmup_s": t1 - t0,
            "sampling_s": t2 - t1,
            "divergent": ex["diverging"].astype(bool),
            "accept_rate": ex["accept_prob"].mean(1).tolist(),
            "step_size": np.broadcast_to(np.asarray(mcmc.last_state.adapt_state.step_size), (C,)).tolist(),
            "mean_tree_depth": float(depth.mean()),
            "tree_depth": depth,
            "n_leapfrog": steps,
            "n_grad_sampling": int(steps.sum()),
            "chain_log_density": (-ex["potential_energy"].astype(np.float64)).mean(1).tolist(),
            "jit": True,
        }
        out.append((torch.as_tensor(q, dtype=torch.float64), info))
    return out if isinstance(seed, list | tuple) else out[0]


def _pyro_nuts_potential(net, Xt, Yt, q0, seeds, warmup, samples, max_tree_depth, target_accept, jit, full_mass):
    import pyro
    from pyro.infer import MCMC, NUTS

    def U(q):
        return net.potential(q, Xt, Yt)

    Uj = torch.compile(U, dynamic=False) if jit else U

    def potential_fn(z):
        return Uj(z["q"])

    draws, divs, acc, warm_s, samp_s, steps = [], [], [], 0.0, 0.0, []
    for c in range(len(seeds)):
        pyro.set_rng_seed(seeds[c])
        kernel = NUTS(
            potential_fn=potential_fn,
            adapt_step_size=True,
            adapt_mass_matrix=True,
            full_mass=full_mass,
            max_tree_depth=max_tree_depth,
            target_accept_prob=target_accept,
        )
        clock = {}

        def hook(kernel, params, stage, i, clock=clock):
            if stage == "Sample" and "t_sample" not in clock:
                clock["t_sample"] = time.perf_counter()

        mcmc = MCMC(
            kernel,
            num_samples=samples,
            warmup_steps=warmup,
            initial_params={"q": q0[c].clone()},
            disable_progbar=True,
            hook_fn=hook,
        )
        t0 = time.perf_counter()
        mcmc.run()
        t1 = time.perf_counter()
        ts = clock.get("t_sample", t1)
        warm_s += ts - t0
        samp_s += t1 - ts
        draws.append(mcmc.get_samples()["q"].detach())
        d = mcmc.diagnostics()
        dv = np.zeros(samples, dtype=bool)
        for v in d.get("divergences", {}).values():
            dv[np.asarray(v, dtype=int)] = True
        divs.append(dv)
        acc.append(float(next(iter(d.get("acceptance rate", {"x": float("nan")}).values()))))
        steps.append(float(kernel.step_size))
    return torch.stack(draws), {
        "warmup_s": warm_s,
        "sampling_s": samp_s,
        "divergent": np.stack(divs),
        "accept_rate": acc,
        "step_size": steps,
        "jit": jit,
    }


def run_nuts_vanilla(
    net: BayesNet,
    X,
    Y,
    *,
    chains: int = 2,
    warmup: int = 200,
    samples: int = 200,
    seed: int = 0,
    jit: bool = False,
    max_tree_depth: int = 10,
) -> Posterior:
    """Pyro NUTS on the Pyro model with Pyro's defaults (init_to_uniform, diagonal mass, tree depth 10)."""
    import pyro
    from pyro.infer import MCMC, NUTS

    Xt, Yt = _t(X, net), _t(Y, net)
    draws_t, draws_s, warm_s, samp_s, divs = [], [], 0.0, 0.0, []
    for c in range(chains):
        pyro.set_rng_seed(seed * 1000 + 17 * c + 1)
        kernel = NUTS(net.pyro_model, jit_compile=jit, max_tree_depth=max_tree_depth, ignore_jit_warnings=True)
        clock = {}

        def hook(kernel, params, stage, i, clock=clock):
            if stage == "Sample" and "t_sample" not in clock:
                clock["t_sample"] = time.perf_counter()

        mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup, disable_progbar=True, hook_fn=hook)
        t0 = time.perf_counter()
        mcmc.run(Xt, Yt)
        t1 = time.perf_counter()
        ts = clock.get("t_sample", t1)
        warm_s += ts - t0
        samp_s += t1 - ts
        s = mcmc.get_samples()
        draws_t.append(s["theta"].detach())
        draws_s.append(
            s["sigma"].detach()
            if "sigma" in s
            else torch.full((samples, net.spec.d_out), float(net.spec.noise_fixed), dtype=net.dtype)
        )
        dv = np.zeros(samples, dtype=bool)
        for v in mcmc.diagnostics().get("divergences", {}).values():
            dv[np.asarray(v, dtype=int)] = True
        divs.append(dv)
    info = {
        "chains": chains,
        "warmup": warmup,
        "samples": samples,
        "warmup_s": warm_s,
        "sampling_s": samp_s,
        "divergent": np.stack(divs),
        "jit": jit,
    }
    return Posterior("nuts_vanilla", net, torch.cat(draws_t), torch.cat(draws_s), chains=chains, info=info)


# ----------------------------------------------------------------------------------------------- VI
def softplus_inv(x: float) -> float:
    """The inverse of softplus, log(exp(x) - 1) for x > 0 (the raw parameter of a positive scale)."""
    return x + math.log(-math.expm1(-x))


def run_vi(
    net: BayesNet,
    X,
    Y,
    *,
    steps: int = 2000,
    lr: float = 0.01,
    particles: int = 4,
    seed: int = 0,
    init_scale: float = 1e-2,
    init_steps: int = 0,
    final_lr_frac: float = 0.01,
    guide: str = "meanfield",
    rank: int = 10,
) -> Posterior:
    """Bayes-by-backprop with Pyro SVI and Trace_ELBO: ``guide="meanfield"`` (Normal, softplus scales) or
    ``"lowrank"`` (LowRankMultivariateNormal, ``rank`` columns in the covariance factor, started at
    ``init_scale`` / sqrt(rank) times seeded standard normals; softplus diagonal)."""
    if guide not in ("meanfield", "lowrank"):
        raise ValueError(f"VI guide must be 'meanfield' or 'lowrank', got {guide!r}")
    import pyro
    import pyro.distributions as dist
    from pyro.infer import SVI, Trace_ELBO
    from pyro.optim import ClippedAdam

    Xt, Yt = _t(X, net), _t(Y, net)
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    q0 = initial_q(net, [seed * 1000 + 7], Y)
    if init_steps:
        q0 = find_mode(net, X, Y, q0, steps=init_steps)
    theta0 = q0[0, : net.P]
    rho0 = softplus_inv(init_scale)
    r = max(1, min(int(rank), net.P))
    W0 = torch.randn(net.P, r, generator=torch.Generator().manual_seed(seed * 1000 + 11), dtype=net.dtype) * (
        init_scale / math.sqrt(r)
    )

    def guide_fn(X, Y=None):
        loc = pyro.param("theta_loc", theta0.clone())
        rho = pyro.param("theta_rho", torch.full_like(theta0, rho0))
        if guide == "lowrank":
            W = pyro.param("theta_factor", W0.clone())
            pyro.sample("theta", dist.LowRankMultivariateNormal(loc, W, torch.nn.functional.softplus(rho).pow(2)))
        else:
            pyro.sample("theta", dist.Normal(loc, torch.nn.functional.softplus(rho)).to_event(1))
        if net.n_noise:
            sl = pyro.param("log_sigma_loc", q0[0, net.P :].clone())
            sr = pyro.param("log_sigma_rho", torch.full_like(sl, rho0))
            pyro.sample("sigma", dist.LogNormal(sl, torch.nn.functional.softplus(sr)).to_event(1))

    # learning rate decays geometrically to lr * final_lr_frac over the run (reduces the SGD noise at the end)
    svi = SVI(
        net.pyro_model,
        guide_fn,
        ClippedAdam({"lr": lr, "clip_norm": 10.0, "lrd": final_lr_frac ** (1.0 / max(steps, 1))}),
        loss=Trace_ELBO(num_particles=particles, vectorize_particles=True, max_plate_nesting=0),
    )
    t0 = time.perf_counter()
    losses = []
    where = _where("vi_lowrank" if guide == "lowrank" else "vi", "lr", "run")
    every = max(1, steps // 10)
    for i in range(steps):
        try:
            losses.append(svi.step(Xt, Yt))
        except ValueError as err:  # Pyro's argument validation: a NaN location/scale reached a distribution
            if "invalid values" not in str(err):
                raise
            losses.append(float("nan"))
        if not math.isfinite(losses[-1]):
            check_finite(
                torch.tensor([losses[-1]]),
                where=where,
                step=f"step {i + 1} of {steps}",
                what="VI loss (negative ELBO)",
                batch_dim=None,
            )
        if (i + 1) % every == 0 or i + 1 == steps:
            el = time.perf_counter() - t0
            log.info(
                "VI (%s) %d/%d: loss %.4g, %.0f s elapsed, ~%.0f s left",
                guide,
                i + 1,
                steps,
                float(np.mean(losses[-every:])),
                el,
                el / (i + 1) * (steps - i - 1),
            )
    wall = time.perf_counter() - t0
    ps = pyro.get_param_store()
    check_finite(
        {k: ps[k].detach() for k in ps.keys()},
        where=where,
        step=f"the end ({steps} steps)",
        what="VI parameter",
        batch_dim=None,
    )
    loc = ps["theta_loc"].detach().clone()
    scale = torch.nn.functional.softplus(ps["theta_rho"].detach())
    if net.n_noise:
        sloc = ps["log_sigma_loc"].detach().clone()[None]
        sscale = torch.nn.functional.softplus(ps["log_sigma_rho"].detach())
    else:
        sloc = torch.full((1, net.spec.d_out), math.log(net.spec.noise_fixed), dtype=net.dtype)
        sscale = None
    info = {
        "steps": steps,
        "lr": lr,
        "particles": particles,
        "wall_s": wall,
        "final_elbo_loss": float(np.mean(losses[-max(1, steps // 20) :])),
        "guide_scale": "softplus",
        "guide": guide,
    }
    factor = ps["theta_factor"].detach().clone() if guide == "lowrank" else None
    if factor is not None:
        info["rank"] = r
    return Posterior(
        "vi", net, loc[None], sloc, theta_scale=scale, theta_factor=factor, log_sigma_scale=sscale, info=info
    )


def run_vi_lowrank(net: BayesNet, X, Y, **kw) -> Posterior:
    """:func:`run_vi` with the low-rank-plus-diagonal guide."""
    return run_vi(net, X, Y, guide="lowrank", **kw)


# ----------------------------------------------------------------------------------------------- ensembles
def run_ensemble(
    net: BayesNet,
    X,
    Y,
    *,
    members: int = 5,
    epochs: int = 2000,
    lr: float = 0.01,
    seed: int = 0,
    noise_guess: float = 0.1,
    method: str = "ensemble",
) -> Posterior:
    """Deep ensemble: ``members`` replicas of :class:`~nnrds.models.ReplicaNet` trained at once by
    :func:`nnrds.train.fit` on the MAP objective (independent inits); ``members=1`` is the MAP."""
    from ..models import ReplicaNet
    from ..train import fit

    if net.spec.kind == "linear":
        raise ValueError("ensemble/MAP need a network kind (mlp or a WP kind), not 'linear'")
    Xt, Yt = _t(X, net), _t(Y, net)
    N, d = Yt.shape
    seeds = [seed * 1000 + 7 + m for m in range(members)]
    rnet = ReplicaNet(net.spec.arch(), seeds, dtype=net.dtype)
    where = _where(method, "lr", "member")
    ctx = guards.job(where) if hasattr(guards, "job") else contextlib.nullcontext()
    with ctx:  # fit's own finite checks name this study, job, method and its learning-rate key
        res = fit(
            rnet,
            Xt,
            Yt,
            epochs=epochs,
            lr=lr,
            penalty=net.prior_penalty,
            penalty_weight=noise_guess**2 / (N * d),
            seed=seed,
        )
    theta = net.flat_from_net(rnet)
    with torch.no_grad():
        resid = net.forward(theta, Xt) - Yt
    # (the training loop itself is guarded by nnrds.train.fit) every member's weights and fit must be finite
    check_finite(
        {"weights": theta, "training residual": resid},
        where=where,
        step=f"the end of training ({epochs} epochs)",
        what="ensemble",
    )
    sigma = resid.pow(2).mean(1).sqrt().clamp_min(1e-6)  # (M, d) training-residual noise std
    info = {"members": members, "epochs": epochs, "lr": lr, "wall_s": res.wall_time_s, "noise_guess": noise_guess}
    return Posterior(method, net, theta, sigma, info=info)


def run_map(net: BayesNet, X, Y, **kw) -> Posterior:
    kw.pop("members", None)
    return run_ensemble(net, X, Y, members=1, method="map", **kw)


def run_method(method: str, net: BayesNet, X, Y, settings: dict, seed: int = 0) -> Posterior:
    """Dispatch by name with a settings dict (the config's per-method slice)."""
    fn = {
        "nuts": run_nuts,
        "vi": run_vi,
        "vi_lowrank": run_vi_lowrank,
        "ensemble": run_ensemble,
        "map": run_map,
        "nuts_vanilla": run_nuts_vanilla,
    }.get(method)
    if fn is None:
        raise ValueError(f"unknown UQ method {method!r}; expected one of {METHODS}")
    return fn(net, X, Y, seed=seed, **settings)
