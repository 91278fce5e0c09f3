"""MCMC diagnostics through ArviZ: R-hat, bulk/tail ESS, divergences.

Network weights are not identifiable (hidden-unit permutations, sign flips of odd activations), so
chains that found the same function in different weight-space modes have a large weight-level R-hat
although they mix well in what matters. Mixing is therefore judged on symmetry-invariant quantities, the
noise stds and the regression function at held-out inputs (``pred``); weight-level numbers are reported
beside them. A run is *flagged* (not a converged posterior) unless its invariant R-hat is <= ``rhat_threshold``,
every chain's own split R-hat <= ``within_threshold`` and its invariant bulk ESS >= ``min_ess``; a non-finite
R-hat (a chain that never moved) always flags. :func:`classify` says why: chains still drifting, chains in
different modes, or too few draws.

Thresholds. A maximum over many quantities (and, for the per-chain check, over chains too) exceeds a fixed cut
such as 1.05 often even for a perfect sampler when chains are short. :func:`null_rhat_thresholds` therefore
calibrates the thresholds by simulation at the run's own shape -- chains, draws per chain, number of invariant
quantities -- with stationary AR(1) chains at the run's observed per-chain ESS: the threshold is the
(1 - level) quantile of the maximum that such a sampler produces, so a converged run is flagged with probability
about ``level``. The multi-chain threshold is never below the published rule (rank-normalized R-hat <= 1.01,
Vehtari et al. 2021); the ESS target is theirs (bulk ESS >= 100 per chain). A trend shared by every chain lowers the
observed ESS and so reads, at that ESS, as autocorrelation: such a run is flagged by its ESS (undersampled) rather
than as drifting; one chain drifting among stationary ones is flagged as drifting (tested). :func:`rank_rhat` is ArviZ's
rank-normalized split R-hat vectorized over quantities (equal to ``arviz.rhat`` to rounding, tested), which the
simulation needs: ArviZ loops over quantities in Python (~9 s for one simulated run here).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy import stats as _stats

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


def summarize(
    idata,
    rhat_threshold: float = 1.05,
    within_threshold: float | None = 1.05,
    min_ess: float = 0.0,
    calibrate: dict | None = None,
) -> dict:
    """Flat dict: rhat_max / ess_bulk_min / ess_tail_min per variable group, divergences, ``mixing``
    (:func:`classify`) and ``flagged`` (= not converged: invariant R-hat > the R-hat threshold, some chain's own
    split R-hat > the within threshold, or invariant bulk ESS < ``min_ess``; NaN counts as failing).

    ``calibrate`` (a dict with ``level``, ``n_sim``, ``seed``): the thresholds come from
    :func:`null_rhat_thresholds` at this run's chains, draws, number of invariant quantities and median per-chain
    ESS -- the multi-chain one never below ``rhat_threshold``, the within-chain one replacing ``within_threshold``
    unless that is a number. The thresholds used are returned (``rhat_threshold``, ``within_threshold``,
    ``min_ess``) with the simulation's AR(1) coefficient (``null_phi``)."""
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
        ess_pc = per_chain_ess(idata, INVARIANT)
        out["ess_bulk_within_invariant_min"] = within_chain_ess_min(idata, INVARIANT, ess_pc)
    else:
        ess_pc = None
    out["divergences"] = int(idata.sample_stats["diverging"].values.sum()) if "sample_stats" in idata.groups() else 0
    if calibrate is not None and inv:
        post = idata.posterior
        ess_c = per_chain_ess_median(idata, INVARIANT, ess_pc)
        cal = null_rhat_thresholds(
            int(post.sizes["chain"]),
            int(post.sizes["draw"]),
            n_invariant(idata),
            ess_c,
            level=float(calibrate.get("level", 0.05)),
            n_sim=int(calibrate.get("n_sim", 100)),
            seed=int(calibrate.get("seed", 0)),
        )
        rhat_threshold = max(float(rhat_threshold), cal["rhat"]) if np.isfinite(cal["rhat"]) else rhat_threshold
        within_threshold = cal["within_threshold"] if within_threshold is None else within_threshold
        out.update(ess_per_chain_median=ess_c, null_phi=cal["phi"], null_level=cal["level"])
    if within_threshold is None:
        raise ValueError("diagnostics.summarize: within_threshold None needs calibrate (the simulated threshold)")
    out["rhat_threshold"] = float(rhat_threshold)
    out["within_threshold"] = float(within_threshold)
    out["min_ess"] = float(min_ess)
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


def per_chain_ess(idata, var_names) -> list[np.ndarray]:
    """Bulk ESS of each chain alone (ArviZ, one chain at a time), per variable of ``var_names``: arrays
    (chains, quantities), a non-finite ESS counting as 0."""
    post = idata.posterior
    out = []
    for var in var_names:
        if var not in post:
            continue
        per = []
        for c in range(post.sizes["chain"]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                e = np.asarray(az.ess(post[[var]].isel(chain=[c]), method="bulk")[var].values, dtype=float)
            per.append(np.where(np.isfinite(e), e, 0.0).ravel())
        out.append(np.stack(per))
    return out


def within_chain_ess_min(idata, var_names, ess: list[np.ndarray] | None = None) -> float:
    """min over the elements of ``var_names`` of sum over chains of each chain's own bulk ESS (:func:`per_chain_ess`,
    or ``ess`` when given). Unlike the multi-chain ESS it ignores between-chain differences, so on a multi-modal
    posterior whose chains stay in their modes it measures how fast each chain explores *its* mode: a
    sampler-efficiency number, not a convergence check (read it beside R-hat)."""
    ess = per_chain_ess(idata, var_names) if ess is None else ess
    vals = [float(np.min(e.sum(0))) for e in ess]
    return float(min(vals)) if vals else float("nan")


def rhat_flag(chains: np.ndarray, rhat_threshold: float = 1.05) -> tuple[float, bool]:
    """R-hat (ArviZ, rank-normalized split R-hat) of an array (chains, draws[, ...]) and whether it is flagged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = _rhat_worst(az.rhat(az.convert_to_dataset(np.asarray(chains)))["x"].values)
    return r, bool(not np.isfinite(r) or r > rhat_threshold)


#: the published rule (Vehtari, Gelman, Simpson, Carpenter & Buerkner 2021): rank-normalized R-hat <= 1.01 and bulk
#: ESS >= 100 per chain
PUBLISHED_RHAT, PUBLISHED_ESS_PER_CHAIN = 1.01, 100.0


def _rhat_classic(z: np.ndarray) -> np.ndarray:
    """Gelman-Rubin R-hat of (..., chains, draws), vectorized over the leading axes (ArviZ's ``_rhat``)."""
    n = z.shape[-1]
    between = n * np.var(z.mean(-1), axis=-1, ddof=1)
    within = np.var(z, axis=-1, ddof=1).mean(-1)
    return np.sqrt((between / within + n - 1) / n)


def _z_scale(a: np.ndarray) -> np.ndarray:
    """Rank-normalization over the last two axes (chains x draws) jointly: normal scores of the average ranks (ties
    share their mean rank) with Blom's offset 3/8 (ArviZ's ``_z_scale``), vectorized over the leading axes."""
    shp = a.shape
    n = shp[-2] * shp[-1]
    flat = a.reshape(-1, n)
    idx = np.argsort(flat, axis=-1, kind="stable")
    v = np.take_along_axis(flat, idx, axis=-1)
    pos = np.broadcast_to(np.arange(n), v.shape)
    new = np.ones(v.shape, dtype=bool)
    new[:, 1:] = v[:, 1:] != v[:, :-1]
    last = np.ones(v.shape, dtype=bool)
    last[:, :-1] = new[:, 1:]
    start = np.maximum.accumulate(np.where(new, pos, 0), axis=-1)
    end = np.flip(np.minimum.accumulate(np.flip(np.where(last, pos, n - 1), -1), axis=-1), -1)
    half = start + end  # 2 (average rank - 1): an integer
    table = _stats.norm.ppf((np.arange(2 * n - 1) / 2.0 + 1.0 - 0.375) / (n + 0.25))
    z = np.empty(v.shape)
    np.put_along_axis(z, idx, table[half], axis=-1)
    return z.reshape(shp)


def rank_rhat(x: np.ndarray) -> np.ndarray:
    """Rank-normalized split R-hat (Vehtari et al. 2021; ArviZ ``rhat(method="rank")``) of ``x`` (..., chains, draws),
    one value per leading index: each chain split in halves, max of the bulk R-hat of the rank-normalized draws and
    the tail R-hat of the folded ones."""
    x = np.asarray(x, dtype=float)
    h = x.shape[-1] // 2
    s = np.concatenate([x[..., :h], x[..., x.shape[-1] - h :]], axis=-2)
    folded = np.abs(s - np.median(s.reshape(*s.shape[:-2], -1), axis=-1)[..., None, None])
    return np.maximum(_rhat_classic(_z_scale(s)), _rhat_classic(_z_scale(folded)))


def ar1_chains(n_sim: int, chains: int, draws: int, n_quantities: int, phi: float, seed: int) -> np.ndarray:
    """Stationary AR(1) chains x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t (unit variance, independent quantities):
    array (n_sim, n_quantities, chains, draws)."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n_sim, n_quantities, chains, draws))
    x = np.empty_like(e)
    x[..., 0] = e[..., 0]
    c = math.sqrt(max(1.0 - phi * phi, 0.0))
    for t in range(1, draws):
        x[..., t] = phi * x[..., t - 1] + c * e[..., t]
    return x


def ar1_phi(draws: int, ess_per_chain: float) -> float:
    """AR(1) coefficient whose chains of ``draws`` have the given ESS: ESS = draws (1 - phi) / (1 + phi); an ESS at or
    above the draws (antithetic chains) gives phi = 0 (independent draws), a tiny one phi <= 0.99."""
    e = float(np.clip(ess_per_chain, 1e-9, draws)) if np.isfinite(ess_per_chain) else 1.0
    return float(np.clip((draws - e) / (draws + e), 0.0, 0.99))


def null_rhat_thresholds(
    chains: int,
    draws: int,
    n_quantities: int,
    ess_per_chain: float,
    *,
    level: float = 0.05,
    n_sim: int = 100,
    seed: int = 0,
) -> dict:
    """Thresholds of the two R-hat checks calibrated by simulation (see the module docstring): ``n_sim`` runs of
    ``chains`` stationary AR(1) chains of ``draws`` draws, ``n_quantities`` independent quantities, at the
    per-chain ESS ``ess_per_chain``. Returns the (1 - ``level``) quantiles of the max over quantities of the
    multi-chain rank R-hat (``rhat``) and of the max over quantities and chains of each chain's own split R-hat
    (``within``), the multi-chain threshold floored at :data:`PUBLISHED_RHAT` (``rhat_threshold``), the AR(1)
    coefficient used and the simulation's settings. Independent quantities make the max largest, so the false-flag
    rate of a converged run with correlated quantities is at most about ``level``."""
    phi = ar1_phi(draws, ess_per_chain)
    multi, within = [], []
    h = draws // 2
    for k in range(0, n_sim, 10):  # blocks of 10 simulated runs: bounded memory
        x = ar1_chains(min(10, n_sim - k), chains, draws, n_quantities, phi, seed + k)
        multi.append(rank_rhat(x).max(axis=-1) if chains >= 2 else np.full(len(x), np.nan))
        halves = np.stack([x[..., :h], x[..., h : 2 * h]], axis=-2)  # (sims, K, chains, 2, h)
        within.append(rank_rhat(halves).max(axis=(-1, -2)))
    multi, within = np.concatenate(multi), np.concatenate(within)
    q = 1.0 - level
    r = float(np.quantile(multi, q)) if chains >= 2 else float("nan")
    return {
        "rhat": r,
        "rhat_threshold": max(PUBLISHED_RHAT, r) if np.isfinite(r) else PUBLISHED_RHAT,
        "within_threshold": float(np.quantile(within, q)),
        "phi": phi,
        "level": level,
        "n_sim": n_sim,
        "chains": chains,
        "draws": draws,
        "n_quantities": n_quantities,
    }


def per_chain_ess_median(idata, var_names=INVARIANT, ess: list[np.ndarray] | None = None) -> float:
    """Median over the invariant quantities of their bulk ESS per chain (each chain alone, :func:`per_chain_ess` or
    ``ess``, averaged over chains): the ESS at which :func:`null_rhat_thresholds` simulates."""
    ess = per_chain_ess(idata, var_names) if ess is None else ess
    return float(np.median(np.concatenate([e.mean(0) for e in ess]))) if ess else float("nan")


def n_invariant(idata, var_names=INVARIANT) -> int:
    """Number of scalar invariant quantities (noise stds and predictions) of a run."""
    post = idata.posterior
    return int(sum(np.prod(post[v].shape[2:], dtype=int) for v in var_names if v in post))


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
