"""NUTS speed benchmark on the ELM WP-ResNet posterior: ESS per second after warm-up.

(a) ``vanilla``: Pyro NUTS on :meth:`BayesNet.pyro_model`, Pyro defaults (init_to_uniform, tree depth 10).
(b) ``nnrds``: :func:`nnrds.uq.run_nuts` (chain-vectorized NUTS, eager potential, mode warm starts).
(c) ``numpyro``: NumPyro NUTS (JAX, ``chain_method="vectorized"``) on the same potential written in JAX,
    from the same initial points, same tree depth (needs the optional ``bench`` extra: numpyro, jax).

ESS/s = min bulk-ESS (ArviZ) over all parameters (and, separately, over the symmetry-invariant
quantities) / wall time of the sampling phase. (b) vs (c): z-scores of posterior means and variances of the
invariant quantities, with Monte-Carlo standard errors from the ESS.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from . import diagnostics
from .inference import Posterior, find_mode, initial_q, run_nuts, run_nuts_vanilla
from .model import BayesNet, NetSpec

DEFAULTS = {
    "n_train": 500,
    "kind": "legendre",
    "degree": 1,
    "width": 6,
    "depth": 4,
    "chains": 16,
    "warmup": 150,
    "samples": 150,
    "max_tree_depth": 7,
    "vanilla_chains": 1,
    "vanilla_warmup": 50,
    "vanilla_samples": 50,
    "init_steps": 500,
    "seed": 0,
    "n_check": 10,
    "dtype": "float32",
    "init": "laplace",
    "metric": "laplace",
    "starts": 2,
    "mode_iters": 2000,
    "pca_variance": None,
}


def _data(ensemble_dir: str, n_train: int, n_check: int, pca_variance: float | None = None):
    """Standardized training inputs / outputs and the check inputs; with ``pca_variance`` the outputs are the
    leading PCA scores keeping that fraction of the variance (as the study's ``pca_variance``)."""
    from ..data import load_table_dataset
    from .reduction import OutputPCA

    Ptr, Ytr, Pte, _, _, _ = load_table_dataset(ensemble_dir)
    Ptr, Ytr = Ptr[:n_train], Ytr[:n_train]
    mx, sx, my, sy = Ptr.mean(0), Ptr.std(0) + 1e-12, Ytr.mean(0), Ytr.std(0) + 1e-12
    Y = (Ytr - my) / sy
    if pca_variance:
        Y = OutputPCA.fit(Y, pca_variance).transform(Y)
    return (Ptr - mx) / sx, Y, (Pte[:n_check] - mx) / sx


def _numpyro(net: BayesNet, X, Y, q0: torch.Tensor, c: dict):
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    f64 = c["dtype"] == "float64"
    jax.config.update("jax_enable_x64", f64)  # same precision as (b)
    dt = jnp.float64 if f64 else jnp.float32
    Xj, Yj = jnp.asarray(X, dtype=dt), jnp.asarray(Y, dtype=dt)
    phi = jnp.asarray(net.phi.numpy(), dtype=dt)
    prior_std = jnp.asarray(net.prior_std.numpy(), dtype=dt)
    sl, sh, s = net.slices, net.shapes, net.spec
    h = s.T / s.depth
    act = {"tanh": jnp.tanh, "relu": jax.nn.relu, "softplus": jax.nn.softplus}[s.activation]

    def potential(q):
        th = q[: net.P]
        p = {k: th[v].reshape(sh[k]) for k, v in sl.items()}
        W = jnp.einsum("lk,kij->lij", phi, p["C"])
        b = phi @ p["c"]
        x = Xj @ p["A_in"] + p["a_in"]
        for n in range(s.depth):
            z = x @ W[n].T + b[n]
            x = act(z) if s.kind == "mlp" else x + h * act(z)
        f = x @ p["A_out"] + p["a_out"]
        ls = q[net.P :]
        sig = jnp.exp(ls)
        N = X.shape[0]
        ll = -0.5 * jnp.sum(((Yj - f) / sig) ** 2) - N * jnp.sum(ls)
        lp = -0.5 * jnp.sum((th / prior_std) ** 2)
        tau = s.noise_scale
        lp = lp + jnp.sum(-0.5 * (sig / tau) ** 2 + ls)
        return -(ll + lp)

    kernel = NUTS(potential_fn=potential, max_tree_depth=c["max_tree_depth"], target_accept_prob=0.8)
    mcmc = MCMC(
        kernel,
        num_warmup=c["warmup"],
        num_samples=c["samples"],
        num_chains=c["chains"],
        chain_method="vectorized",
        progress_bar=False,
    )
    key = jax.random.PRNGKey(c["seed"])
    init = jnp.asarray(q0.numpy(), dtype=dt)
    t0 = time.perf_counter()
    mcmc.warmup(key, init_params=init, collect_warmup=False)
    t1 = time.perf_counter()
    mcmc.run(mcmc.post_warmup_state.rng_key, init_params=init)
    jax.block_until_ready(mcmc.get_samples())
    t2 = time.perf_counter()
    q = torch.as_tensor(np.asarray(mcmc.get_samples(group_by_chain=True), dtype=np.float64), dtype=net.dtype)
    div = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    return q, {"warmup_s": t1 - t0, "sampling_s": t2 - t1, "divergent": div}


def _row(engine: str, post: Posterior, Xc, wall_warm: float, wall_samp: float) -> tuple[dict, object]:
    idata = diagnostics.to_inference_data(post, Xc)
    d = diagnostics.summarize(idata)
    all_min = min(d["theta_ess_bulk_min"], d.get("sigma_ess_bulk_min", np.inf))
    w_all = diagnostics.within_chain_ess_min(idata, ("theta", "sigma"))
    w_inv = d.get("ess_bulk_within_invariant_min", float("nan"))  # summarize computed it
    return (
        {
            "engine": engine,
            "chains": post.chains,
            "draws_per_chain": post.n_draws // post.chains,
            "warmup_s": wall_warm,
            "sampling_s": wall_samp,
            "min_ess_bulk_all": all_min,
            "min_ess_bulk_invariant": d["ess_bulk_invariant_min"],
            "ess_per_s_all": all_min / wall_samp,
            "ess_per_s_invariant": d["ess_bulk_invariant_min"] / wall_samp,
            "within_ess_all": w_all,
            "within_ess_invariant": w_inv,
            "within_ess_per_s_all": w_all / wall_samp,
            "within_ess_per_s_invariant": w_inv / wall_samp,
            "rhat_invariant_max": d["rhat_invariant_max"],
            "rhat_theta_max": d["theta_rhat_max"],
            "divergences": d["divergences"],
        },
        idata,
    )


#: settings of the vanilla Pyro run (``vanilla_<name>`` in :data:`DEFAULTS`) and of the nnrds sampler
VANILLA_SETTINGS = ("chains", "warmup", "samples")
NNRDS_SETTINGS = (
    "chains",
    "warmup",
    "samples",
    "max_tree_depth",
    "init_steps",
    "dtype",
    "init",
    "metric",
    "starts",
    "mode_iters",
)


def run(ensemble_dir: str, overrides: dict | None = None, engines=("vanilla", "nnrds", "numpyro")) -> dict:
    c = {**DEFAULTS, **(overrides or {})}
    torch.set_num_threads(1)
    X, Y, Xc = _data(ensemble_dir, c["n_train"], c["n_check"], c["pca_variance"])
    net = BayesNet(
        NetSpec(
            d_in=X.shape[1], d_out=Y.shape[1], kind=c["kind"], degree=c["degree"], width=c["width"], depth=c["depth"]
        )
    )
    net_p = BayesNet(net.spec, dtype=getattr(torch, c["dtype"]))  # (a) and (c) in the precision (b) samples in
    rows, idatas = [], {}
    if "vanilla" in engines:
        post = run_nuts_vanilla(net_p, X, Y, seed=c["seed"], **{k: c[f"vanilla_{k}"] for k in VANILLA_SETTINGS})
        r, idatas["vanilla"] = _row("a_pyro_vanilla", post, Xc, post.info["warmup_s"], post.info["sampling_s"])
        rows.append(r)
    if "nnrds" in engines:
        post = run_nuts(net, X, Y, seed=c["seed"], **{k: c[k] for k in NNRDS_SETTINGS})
        r, idatas["nnrds"] = _row("b_nnrds", post, Xc, post.info["warmup_s"], post.info["sampling_s"])
        r["mean_tree_depth"] = post.info["mean_tree_depth"]
        r["n_grad_sampling"] = post.info["n_grad_sampling"]
        r["ess_per_grad_invariant"] = r["min_ess_bulk_invariant"] / max(post.info["n_grad_sampling"], 1)
        rows.append(r)
    if "numpyro" in engines:
        seeds = [c["seed"] * 1000 + 17 * k + 1 for k in range(c["chains"])]
        q0 = find_mode(net_p, X, Y, initial_q(net_p, seeds, Y), steps=c["init_steps"])  # same starts as (b)
        q, info = _numpyro(net, X, Y, q0, c)
        theta, sigma = net.split_q(q.reshape(-1, net.dim))
        post = Posterior("nuts", net, theta, sigma, chains=c["chains"], info={"divergent": info["divergent"]})
        r, idatas["numpyro"] = _row("c_numpyro", post, Xc, info["warmup_s"], info["sampling_s"])
        rows.append(r)
    table = pd.DataFrame(rows)
    agree = []
    if "nnrds" in idatas and "numpyro" in idatas:
        import arviz as az

        for var in ("sigma", "pred"):
            a, b = idatas["nnrds"].posterior[var], idatas["numpyro"].posterior[var]
            ea, eb = az.ess(idatas["nnrds"], var_names=[var])[var], az.ess(idatas["numpyro"], var_names=[var])[var]
            ma, mb = a.mean(("chain", "draw")), b.mean(("chain", "draw"))
            va, vb = a.var(("chain", "draw")), b.var(("chain", "draw"))
            se_m = np.sqrt(va / ea + vb / eb)
            se_v = np.sqrt(2 * va**2 / ea + 2 * vb**2 / eb)  # Gaussian approximation of Var's MC error
            for zm, zv, x1, x2, v1, v2 in zip(
                np.ravel((ma - mb) / se_m),
                np.ravel((va - vb) / se_v),
                np.ravel(ma),
                np.ravel(mb),
                np.ravel(va),
                np.ravel(vb),
            ):
                agree.append(
                    {
                        "quantity": var,
                        "mean_b": float(x1),
                        "mean_c": float(x2),
                        "z_mean": float(zm),
                        "var_b": float(v1),
                        "var_c": float(v2),
                        "z_var": float(zv),
                    }
                )
    meta = {"config": c, "n_params": net.P, "dim": net.dim, "torch_threads": torch.get_num_threads()}
    return {"table": table, "agreement": pd.DataFrame(agree), "meta": meta}
