"""MCMC diagnostics through ArviZ: R-hat, bulk/tail ESS, divergences.

Network weights are not identifiable (hidden-unit permutations, sign flips of odd activations), so
chains that found the same function in different weight-space modes have a large weight-level R-hat
although they mix well in what matters. Mixing is therefore judged on symmetry-invariant quantities, the
noise stds and the regression function at held-out inputs (``pred``); weight-level numbers are reported
beside them. A run whose invariant R-hat exceeds ``rhat_threshold`` is *flagged*.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az  # noqa: E402

INVARIANT = ("sigma", "pred")


def to_inference_data(post, X_check=None) -> "az.InferenceData":
    """ArviZ InferenceData of an MCMC :class:`~nnrds.uq.inference.Posterior`: theta, sigma and
    pred = f(X_check) per draw, with ``diverging`` sample stats."""
    C = post.chains
    D = post.n_draws // C
    theta = post.theta.reshape(C, D, -1).cpu().numpy()
    sigma = post.sigma.reshape(C, D, -1).cpu().numpy()
    posterior = {"theta": theta}
    if post.net.n_noise:
        posterior["sigma"] = sigma
    if X_check is not None:
        with torch.no_grad():
            f = post.net.forward(post.theta, torch.as_tensor(np.asarray(X_check), dtype=post.net.dtype))
        posterior["pred"] = f.reshape(C, D, *f.shape[1:]).cpu().numpy()
    div = post.info.get("divergent")
    stats = {"diverging": np.asarray(div, dtype=bool)} if div is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.from_dict(posterior=posterior, sample_stats=stats)


def _per_var(idata, var: str) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = az.rhat(idata, var_names=[var])[var].values
        eb = az.ess(idata, var_names=[var], method="bulk")[var].values
        et = az.ess(idata, var_names=[var], method="tail")[var].values
    def mx(a):
        a = np.asarray(a, dtype=float)
        return float(np.nanmax(a)) if np.isfinite(a).any() else float("nan")

    def mn(a):
        a = np.asarray(a, dtype=float)
        return float(np.nanmin(a)) if np.isfinite(a).any() else float("nan")

    return {"rhat_max": mx(r), "ess_bulk_min": mn(eb), "ess_tail_min": mn(et)}


def summarize(idata, rhat_threshold: float = 1.05) -> dict:
    """Flat dict: rhat_max / ess_bulk_min / ess_tail_min per variable group, divergences, flagged."""
    out: dict = {}
    for var in ("sigma", "pred", "theta"):
        if var in idata.posterior:
            for k, v in _per_var(idata, var).items():
                out[f"{var}_{k}"] = v
    inv = [out[f"{v}_rhat_max"] for v in INVARIANT if f"{v}_rhat_max" in out]
    out["rhat_invariant_max"] = float(max(inv)) if inv else float("nan")
    out["ess_bulk_invariant_min"] = float(min(out[f"{v}_ess_bulk_min"] for v in INVARIANT if f"{v}_ess_bulk_min" in out)) \
        if inv else float("nan")
    # each chain alone (its split halves): stationary within its mode? (R-hat ~1 here but large across chains =
    # chains sit in different modes, not chains still drifting)
    if inv and idata.posterior.sizes["draw"] >= 8:
        out["rhat_within_invariant_max"] = within_chain_rhat_max(idata, INVARIANT)
        out["ess_bulk_within_invariant_min"] = within_chain_ess_min(idata, INVARIANT)
    out["divergences"] = int(idata.sample_stats["diverging"].values.sum()) if "sample_stats" in idata.groups() else 0
    out["rhat_threshold"] = rhat_threshold
    out["flagged"] = bool(not np.isfinite(out["rhat_invariant_max"]) or out["rhat_invariant_max"] > rhat_threshold)
    return out


def within_chain_rhat_max(idata, var_names) -> float:
    """max over chains and elements of ``var_names`` of the split R-hat of each chain alone (its two halves)."""
    post = idata.posterior
    out = []
    for var in var_names:
        if var not in post:
            continue
        vals = post[var].values
        h = vals.shape[1] // 2
        for c in range(post.sizes["chain"]):
            halves = np.stack([vals[c, :h], vals[c, h:2 * h]])  # the chain's halves as two chains
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = np.asarray(az.rhat(az.convert_to_dataset(halves))["x"].values, dtype=float)
            if np.isfinite(r).any():
                out.append(float(np.nanmax(r)))
    return float(max(out)) if out else float("nan")


def within_chain_ess_min(idata, var_names) -> float:
    """min over the elements of ``var_names`` of sum over chains of each chain's own bulk ESS (ArviZ, one chain
    at a time). Unlike the multi-chain ESS it ignores between-chain differences, so on a multi-modal posterior
    whose chains stay in their modes it measures how fast each chain explores *its* mode: a sampler-efficiency
    number, not a convergence check (read it beside R-hat)."""
    post = idata.posterior
    vals = []
    for var in var_names:
        if var not in post:
            continue
        tot = 0.0
        for c in range(post.sizes["chain"]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                e = az.ess(post[[var]].isel(chain=[c]), method="bulk")[var].values
            tot = tot + np.nan_to_num(np.asarray(e, dtype=float), nan=0.0)
        vals.append(float(np.min(tot)))
    return float(min(vals)) if vals else float("nan")


def rhat_flag(chains: np.ndarray, rhat_threshold: float = 1.05) -> tuple[float, bool]:
    """R-hat (ArviZ, rank-normalized split R-hat) of an array (chains, draws[, ...]) and whether it is flagged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = float(np.nanmax(np.asarray(az.rhat(az.convert_to_dataset(np.asarray(chains)))["x"].values)))
    return r, bool(r > rhat_threshold)


def trace_table(idata, n_weights: int = 3, n_pred: int = 2) -> "pd.DataFrame":
    """Long table (chain, draw, name, value) of sigma, a few predictions and a few weights for trace/rank plots."""
    import pandas as pd

    rows = []
    post = idata.posterior
    picks = []
    if "sigma" in post:
        picks += [(f"sigma[{j}]", post["sigma"].values[..., j]) for j in range(min(2, post["sigma"].shape[-1]))]
    if "pred" in post:
        picks += [(f"f(x_{i})[0]", post["pred"].values[..., i, 0]) for i in range(min(n_pred, post["pred"].shape[2]))]
    picks += [(f"theta[{j}]", post["theta"].values[..., j]) for j in range(min(n_weights, post["theta"].shape[-1]))]
    for name, arr in picks:
        C, D = arr.shape
        rows.append(pd.DataFrame({"chain": np.repeat(np.arange(C), D), "draw": np.tile(np.arange(D), C),
                                  "name": name, "value": arr.reshape(-1)}))
    return pd.concat(rows, ignore_index=True)
