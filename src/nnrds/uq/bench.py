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

    from . import jax_potential

    f64 = c["dtype"] == "float64"
    jax_potential.enable_x64(c["dtype"])  # same precision as (b)
    dt = jnp.float64 if f64 else jnp.float32
    potential = jax_potential.potential_fn(net, X, Y, c["dtype"])

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


# ----------------------------------------------------------------------------------------------- equal settings
#: the equal-settings comparison: the converging 56-dimensional posterior of the 2026-12-01 re-run
EQUAL_DEFAULTS = {
    "n_train": 200,
    "kind": "legendre",
    "degree": 1,
    "width": 2,
    "depth": 2,
    "pca_variance": 0.8,
    "dtype": "float64",
    "chains": 4,
    "tune_warmup": 300,
    "samples": 300,
    "max_tree_depth": 6,
    "starts": 2,
    "init_steps": 300,
    "mode_iters": 1000,
    "seed": 0,
    "n_check": 10,
    "repeats": 2,
    "grad_reps": 2000,
}


def _time_min(fn, reps: int, rounds: int = 3) -> float:
    """Seconds per call of ``fn``: the minimum over ``rounds`` of the mean over ``reps`` calls."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def _grad_costs(net, Xt, Yt, X, Y, q: torch.Tensor, dtype: str, reps: int) -> dict:
    """Seconds per batched potential + gradient evaluation at the C rows of q: torch eager autograd (the
    vectorized sampler's ``_value_and_grad``) and JAX ``jit(vmap(value_and_grad))`` (what NumPyro's vectorized
    leapfrog evaluates)."""
    import jax

    from . import jax_potential
    from .nuts import VectorizedNUTS

    s = VectorizedNUTS(lambda z: net.potential(z, Xt, Yt))
    torch_s = _time_min(lambda: s._value_and_grad(q), reps)
    hand = VectorizedNUTS(None, value_and_grad=lambda z: net.potential_and_grad(z, Xt, Yt))
    hand_s = _time_min(lambda: hand._value_and_grad(q), reps)
    pot_only_s = _time_min(lambda: net.potential(q, Xt, Yt), reps)
    jax_potential.enable_x64(dtype)
    vg = jax.jit(jax.vmap(jax.value_and_grad(jax_potential.potential_fn(net, X, Y, dtype))))
    qj = jax.numpy.asarray(q.numpy())
    jax.block_until_ready(vg(qj))
    jax_s = _time_min(lambda: jax.block_until_ready(vg(qj)), reps)
    u_t, g_t = s._value_and_grad(q)
    u_j, g_j = vg(qj)
    return {
        "torch_eager_s": torch_s,
        "torch_hand_grad_s": hand_s,
        "torch_potential_only_s": pot_only_s,
        "hand_vs_autograd_max_abs_diff_grad": float((hand._value_and_grad(q)[1] - s._value_and_grad(q)[1]).abs().max()),
        "jax_jit_s": jax_s,
        "max_abs_diff_U": float(np.abs(u_t.numpy() - np.asarray(u_j)).max()),
        "max_abs_diff_grad": float(np.abs(g_t.numpy() - np.asarray(g_j)).max()),
    }


def equal_settings(ensemble_dir: str, overrides: dict | None = None) -> dict:
    """The vectorized sampler and NumPyro's NUTS with identical settings on one posterior.

    1. Start: the study's Laplace start -- the best of ``starts`` Adam + L-BFGS mode searches m, its Laplace factor
       L, chain c at q_c = m + L z_c (z_c ~ N(0, I)): the same C points for both engines (NumPyro: ``init_params``).
    2. Kernel: one tuning run of the vectorized sampler in the Laplace coordinates z with dense adaptation pooled
       over chains (metric ``laplace_dense``, ``tune_warmup`` iterations) gives a dense metric M_z and per-chain
       step sizes; both engines then sample q with the same fixed dense inverse mass matrix L M_z L^T (HMC is
       affine-invariant: the same kernel as in z) and one fixed step size (geometric mean of the chains' adapted
       ones), nothing adapted (NumPyro ``adapt_step_size=adapt_mass_matrix=False``, ``num_warmup=0``), no burn-in.
    3. Same max tree depth, float dtype, chains and draws; one thread (the caller sets OMP / XLA flags).
    NumPyro's first run compiles; it runs ``repeats`` times (different keys) so that compile time is apart, and
    so does the vectorized sampler (different seeds), alternating. The raw cost of one batched potential+gradient
    evaluation is timed apart for both (:func:`_grad_costs`)."""
    from .inference import laplace_start, numpyro_nuts
    from .nuts import VectorizedNUTS

    c = {**EQUAL_DEFAULTS, **(overrides or {})}
    torch.set_num_threads(1)
    X, Y, Xc = _data(ensemble_dir, c["n_train"], c["n_check"], c["pca_variance"])
    dt = getattr(torch, c["dtype"])
    spec = NetSpec(
        d_in=X.shape[1], d_out=Y.shape[1], kind=c["kind"], degree=c["degree"], width=c["width"], depth=c["depth"]
    )
    net = BayesNet(spec, dtype=dt)
    Xt, Yt = torch.as_tensor(X, dtype=dt), torch.as_tensor(Y, dtype=dt)
    t0 = time.perf_counter()
    m, L, z, linfo = laplace_start(
        net,
        X,
        Y,
        starts=c["starts"],
        seed=c["seed"],
        init_steps=c["init_steps"],
        mode_iters=c["mode_iters"],
        chains=c["chains"],
        start_modes="best",
    )
    init_s = time.perf_counter() - t0
    m, L, z = m.to(dt), L.to(dt), z.to(dt)
    q0 = m + z @ L.T
    # tuning run (vectorized sampler, dense adaptation in z)
    tuner = VectorizedNUTS(
        lambda zz: net.potential(m + zz @ L.T, Xt, Yt),
        max_tree_depth=c["max_tree_depth"],
        seed=c["seed"],
        metric="dense",
    )
    tune = tuner.run(z, c["tune_warmup"], 10)
    minv = L @ tune["inv_mass"] @ L.T
    minv = 0.5 * (minv + minv.T)
    eps = float(np.exp(np.log(tune["step_size"]).mean()))
    import os

    S, runs = c["samples"], []
    for r, hand in [(r, hand) for r in range(c["repeats"]) for hand in (False, True)]:
        s = VectorizedNUTS(
            lambda q: net.potential(q, Xt, Yt),
            max_tree_depth=c["max_tree_depth"],
            seed=c["seed"] + 100 + r,
            metric="dense",
            value_and_grad=(lambda q: net.potential_and_grad(q, Xt, Yt)) if hand else None,
        )
        grad_s, vg = [0.0], s._value_and_grad

        def timed(q, vg=vg, grad_s=grad_s):
            t = time.perf_counter()
            out = vg(q)
            grad_s[0] += time.perf_counter() - t
            return out

        s._value_and_grad = timed  # time inside potential + autograd vs the rest (tree building)
        load = os.getloadavg()[0]
        res = s.run(q0, 0, S, inv_mass=minv, step_size=eps)
        runs.append(
            (
                "vectorized_hand_grad" if hand else "vectorized",
                r,
                load,
                res["draws"],
                res["sampling_s"],
                res["n_leapfrog"],
                res["divergent"],
                s.n_grad - 1,
                res["potential"],
                grad_s[0],
            )
        )
    load = os.getloadavg()[0]
    outs = numpyro_nuts(
        net,
        X,
        Y,
        q0,
        seed=[c["seed"] + 100 + r for r in range(c["repeats"] + 1)],
        warmup=0,
        samples=S,
        max_tree_depth=c["max_tree_depth"],
        dtype=c["dtype"],
        step_size=eps,
        inverse_mass_matrix=minv,
    )
    # run 0 of NumPyro compiles; runs 1.. reuse the compiled sampler (its seeds: those of the vectorized runs)
    compile_s = outs[0][1]["sampling_s"] - float(np.mean([o[1]["sampling_s"] for o in outs[1:]]))
    for r, (draws, info) in enumerate(outs):
        runs.append(
            (
                "numpyro" if r else "numpyro_compile_run",
                r - 1 if r else -1,
                load,
                draws,
                info["sampling_s"],
                info["n_leapfrog"],
                info["divergent"],
                float("nan"),
                -np.asarray(info["chain_log_density"]),
                float("nan"),
            )
        )
    rows = []
    for engine, r, load, draws, wall, steps, div, batched, pot, grad_time in runs:
        theta, sigma = net.split_q(draws.to(dt).reshape(-1, net.dim))
        post = Posterior("nuts", net, theta, sigma, chains=c["chains"], info={"divergent": div})
        row, _ = _row(engine, post, Xc, 0.0, wall)
        row.update(
            repeat=r,
            load_avg_1min=load,
            wall_per_draw_s=wall / S,
            leapfrog_per_chain_draw=float(np.mean(steps)),
            wall_per_leapfrog_s=wall / float(np.sum(steps)),
            batched_evals_per_draw=batched / S,
            wall_per_batched_eval_s=wall / batched,
            mean_tree_depth=float(np.mean(np.floor(np.log2(np.maximum(steps, 1))) + 1)),
            mean_potential=float(np.mean(pot)),
            grad_share_of_wall=grad_time / wall,
            tree_overhead_per_batched_eval_s=(wall - grad_time) / batched,
        )
        rows.append(row)
    table = pd.DataFrame(rows)
    grads = _grad_costs(net, Xt, Yt, X, Y, q0.clone(), c["dtype"], c["grad_reps"])
    meta = {
        "config": c,
        "dim": net.dim,
        "n_params": net.P,
        "init_s": init_s,
        "mode_potentials": linfo["mode_potentials"],
        "tune_warmup_s": tune["warmup_s"],
        "step_size": eps,
        "tune_step_sizes": tune["step_size"].tolist(),
        "inv_mass_trace": float(torch.diagonal(minv).sum()),
        "grad_costs": grads,
        "numpyro_compile_s": compile_s,
        "torch_threads": torch.get_num_threads(),
    }
    return {"table": table, "meta": meta}
