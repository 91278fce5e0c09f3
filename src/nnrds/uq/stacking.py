"""Stacking of non-mixing chains (Yao, Vehtari & Gelman, "Stacking for non-mixing Bayesian computations: the
curse and blessing of multimodal posteriors", JMLR 23(79), 2022).

When MCMC chains stay in different posterior modes, the equal-weight mixture of the chains is not the
posterior (its mode weights are set by where the chains started, not by the posterior mass). Stacking
re-weights the chains (or clusters of chains) by their leave-one-out predictive performance:

    w = argmax_{w in simplex} sum_i log sum_k w_k p_k(y_i | y_{-i}),

with p_k(y_i | y_{-i}) the PSIS-LOO predictive density of observation i under chain k's draws
(:func:`loo_lpd`). The stacked predictive is the mixture of the chains' predictives with weights w -- a
predictive distribution, *not* the exact posterior, which is what a caption must say.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import optimize
from scipy.special import logsumexp, softmax


def loo_lpd(loglik: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSIS-LOO log predictive density of each observation under one chain's draws.

    ``loglik`` (S, N): log p(y_i | theta_s). Returns (lpd_loo (N,), pareto_k (N,)) (ArviZ's ``psislw``)."""
    import arviz as az

    ll = np.asarray(loglik, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lw, k = az.psislw(-ll.T)  # (N, S): the sample dimension last
    return logsumexp(lw + ll.T, axis=1), np.asarray(k, dtype=float)


def stacking_weights(lpd: np.ndarray) -> np.ndarray:
    """Weights on the simplex maximizing sum_i log sum_k w_k exp(lpd[k, i]) (``lpd`` (K, N): log predictive
    densities of N observations under K candidates, e.g. :func:`loo_lpd` per chain). Softmax parameterization
    (first logit fixed at 0), BFGS with the analytic gradient."""
    lpd = np.asarray(lpd, dtype=float)
    K = lpd.shape[0]
    if K == 1:
        return np.ones(1)
    lpd = lpd - lpd.max(0, keepdims=True)  # per-observation shift: same argmax, no underflow

    def f(a):
        z = np.concatenate([[0.0], a])
        w = softmax(z)
        lw = np.log(np.clip(w, 1e-300, None))[:, None] + lpd
        m = logsumexp(lw, axis=0)  # (N,)
        r = np.exp(lw - m)  # responsibilities (K, N)
        grad_z = r.sum(1) - lpd.shape[1] * w
        return -float(m.sum()), -grad_z[1:]

    res = optimize.minimize(f, np.zeros(K - 1), jac=True, method="BFGS")
    return softmax(np.concatenate([[0.0], res.x]))


def chain_loglik(net, theta, sigma, X, Y) -> np.ndarray:
    """Pointwise log-likelihood (S, N) of the draws (theta (S, P), sigma (S, d)) of a
    :class:`~nnrds.uq.model.BayesNet`: observation i = one training input with all its outputs."""
    import torch

    Xt = torch.as_tensor(np.asarray(X), dtype=net.dtype)
    Yt = torch.as_tensor(np.asarray(Y), dtype=net.dtype)
    with torch.no_grad():
        f = net.forward(theta, Xt)  # (S, N, d)
        s = sigma[:, None, :]
        ll = (-0.5 * ((Yt - f) / s) ** 2 - s.log() - 0.5 * np.log(2 * np.pi)).sum(-1)
    return ll.cpu().numpy()


def stack_chains(net, post, X, Y) -> dict:
    """Stacking weights of the chains of an MCMC :class:`~nnrds.uq.inference.Posterior` on its training data
    (PSIS-LOO per chain). Returns {weights (C,), pareto_k_max, lpd_loo_stacked, lpd_loo_equal}: the LOO log
    score of the stacked and of the equal-weight mixture (per observation summed)."""
    C = post.chains
    S = post.n_draws // C
    th = post.theta.reshape(C, S, -1)
    sg = post.sigma.reshape(C, S, -1)
    lpd, kmax = [], 0.0
    for c in range(C):
        l, k = loo_lpd(chain_loglik(net, th[c], sg[c], X, Y))
        lpd.append(l)
        kmax = max(kmax, float(np.nanmax(k)))
    lpd = np.stack(lpd)
    w = stacking_weights(lpd)
    score = lambda ww: float(logsumexp(np.log(np.clip(ww, 1e-300, None))[:, None] + lpd, axis=0).sum())
    return {
        "weights": w,
        "pareto_k_max": kmax,
        "lpd_loo_stacked": score(w),
        "lpd_loo_equal": score(np.full(C, 1.0 / C)),
    }
