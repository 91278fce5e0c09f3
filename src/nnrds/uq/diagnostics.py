"""MCMC diagnostics through ArviZ: R-hat, bulk/tail ESS, divergences.

Network weights are not identifiable (hidden-unit permutations, sign flips of odd activations), so
chains that found the same function in different weight-space modes have a large weight-level R-hat
although they mix well in what matters. Mixing is therefore judged on symmetry-invariant quantities, the
noise stds and the regression function at held-out inputs (``pred``); weight-level numbers are reported
beside them. A run is *flagged* (not a converged posterior) unless its invariant R-hat is <= ``rhat_threshold``,
every chain's own split R-hat <= ``within_threshold`` and its invariant bulk ESS >= ``min_ess``; a non-finite
R-hat (a chain that never moved) always flags. :func:`classify` says why: chains still drifting, chains in
different modes, or too few draws.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az  # noqa: E402

INVARIANT = ("sigma", "pred")


def to_inference_data(post, X_check=None) -> az.InferenceData:
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


def _rhat_worst(r) -> float:
    """max of R-hat values, a non-finite one counting as +inf: ArviZ returns NaN for a quantity whose draws are
    all equal (a chain that never moved), which is the opposite of converged -- never skip it."""
    a = np.asarray(r, dtype=float)
    if a.size == 0:
        return float("nan")
    return float(np.max(np.where(np.isfinite(a), a, np.inf)))


def _ess_worst(e) -> float:
    """min of ESS values, a non-finite one counting as 0 (no information)."""
    a = np.asarray(e, dtype=float)
    if a.size == 0:
        return float("nan")
    return float(np.min(np.where(np.isfinite(a), a, 0.0)))


def _per_var(idata, var: str) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = az.rhat(idata, var_names=[var])[var].values
        eb = az.ess(idata, var_names=[var], method="bulk")[var].values
        et = az.ess(idata, var_names=[var], method="tail")[var].values
    return {"rhat_max": _rhat_worst(r), "ess_bulk_min": _ess_worst(eb), "ess_tail_min": _ess_worst(et)}


#: verdicts of :func:`classify`
CONVERGED, DRIFTING, MODES, UNDERSAMPLED = "converged", "drifting", "modes", "undersampled"


def classify(
    rhat_invariant: float,
    rhat_within: float,
    ess_bulk: float,
    *,
    rhat_threshold: float = 1.01,
    within_threshold: float = 1.05,
    min_ess: float = 400.0,
) -> str:
    """Why a run is (not) a converged posterior, from its invariant diagnostics.

    * ``drifting``: some chain is not stationary even alone (its split R-hat > ``within_threshold``, or not
      finite: a chain stuck at one value) -- the chains have not finished their transient; more warm-up or a
      better metric is the remedy.
    * ``modes``: every chain is stationary alone, but the chains disagree (between-chain R-hat >
      ``rhat_threshold``): they sit in different posterior modes that the sampler does not cross -- a remedy
      for multimodality (stacking, tempering) is needed, not a longer run.
    * ``undersampled``: chains agree and are stationary, but bulk ESS < ``min_ess``: run longer.
    * ``converged``: all three targets met.
    """
    if not np.isfinite(rhat_within) or rhat_within > within_threshold:
        return DRIFTING
    if not np.isfinite(rhat_invariant) or rhat_invariant > rhat_threshold:
        return MODES
    if not np.isfinite(ess_bulk) or ess_bulk < min_ess:
        return UNDERSAMPLED
    return CONVERGED


def summarize(idata, rhat_threshold: float = 1.05, within_threshold: float = 1.05, min_ess: float = 0.0) -> dict:
    """Flat dict: rhat_max / ess_bulk_min / ess_tail_min per variable group, divergences, ``mixing``
    (:func:`classify`) and ``flagged`` (= not converged: invariant R-hat > ``rhat_threshold``, some chain's own
    split R-hat > ``within_threshold``, or invariant bulk ESS < ``min_ess``; NaN counts as failing)."""
    out: dict = {}
    for var in ("sigma", "pred", "theta"):
        if var in idata.posterior:
            for k, v in _per_var(idata, var).items():
                out[f"{var}_{k}"] = v
    inv = [out[f"{v}_rhat_max"] for v in INVARIANT if f"{v}_rhat_max" in out]
    out["rhat_invariant_max"] = float(max(inv)) if inv else float("nan")
    out["ess_bulk_invariant_min"] = (
        float(min(out[f"{v}_ess_bulk_min"] for v in INVARIANT if f"{v}_ess_bulk_min" in out)) if inv else float("nan")
    )
    # each chain alone (its split halves): stationary within its mode? (R-hat ~1 here but large across chains =
    # chains sit in different modes, not chains still drifting)
    if inv and idata.posterior.sizes["draw"] >= 8:
        out["rhat_within_invariant_max"] = within_chain_rhat_max(idata, INVARIANT)
        out["ess_bulk_within_invariant_min"] = within_chain_ess_min(idata, INVARIANT)
    out["divergences"] = int(idata.sample_stats["diverging"].values.sum()) if "sample_stats" in idata.groups() else 0
    out["rhat_threshold"] = rhat_threshold
    out["mixing"] = classify(
        out["rhat_invariant_max"],
        out.get("rhat_within_invariant_max", float("nan")),
        out["ess_bulk_invariant_min"],
        rhat_threshold=rhat_threshold,
        within_threshold=within_threshold,
        min_ess=min_ess,
    )
    out["flagged"] = out["mixing"] != CONVERGED
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
            halves = np.stack([vals[c, :h], vals[c, h : 2 * h]])  # the chain's halves as two chains
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = np.asarray(az.rhat(az.convert_to_dataset(halves))["x"].values, dtype=float)
            out.append(_rhat_worst(r))  # a chain stuck at one value gives NaN -> inf (not "fine")
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
            e = np.asarray(e, dtype=float)
            tot = tot + np.where(np.isfinite(e), e, 0.0)
        vals.append(float(np.min(tot)))
    return float(min(vals)) if vals else float("nan")


def rhat_flag(chains: np.ndarray, rhat_threshold: float = 1.05) -> tuple[float, bool]:
    """R-hat (ArviZ, rank-normalized split R-hat) of an array (chains, draws[, ...]) and whether it is flagged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = _rhat_worst(az.rhat(az.convert_to_dataset(np.asarray(chains)))["x"].values)
    return r, bool(not np.isfinite(r) or r > rhat_threshold)


def trace_table(idata, n_weights: int = 3, n_pred: int = 2) -> pd.DataFrame:  # noqa: F821 -- pandas is imported lazily in the body
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
        rows.append(
            pd.DataFrame(
                {
                    "chain": np.repeat(np.arange(C), D),
                    "draw": np.tile(np.arange(D), C),
                    "name": name,
                    "value": arr.reshape(-1),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)
