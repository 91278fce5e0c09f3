"""Output reduction for multi-output surrogates: PCA (a discrete Karhunen-Loeve expansion) of the outputs.

With strongly correlated outputs (the land model's carbon pools and fluxes), a surrogate can fit the
leading k principal-component scores z = (y - mean) V_k instead of all d outputs, with k the smallest
number whose components retain the fraction ``variance`` of the training variance (scikit-learn's PCA).
Predictions are lifted back with y = mean + z V_k^T; with ``noise=True`` the d - k dropped components are
added as independent Gaussian noise with their training variances, so predictive intervals in output space
keep the variance the reduction discarded instead of silently losing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class OutputPCA:
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (d, d) rows = principal axes, by decreasing variance
    variances: np.ndarray  # (d,) training variance of each component's score
    k: int  # retained components

    @classmethod
    def fit(cls, Y: np.ndarray, variance: float) -> OutputPCA:
        """Keep the fewest components whose cumulative explained-variance ratio reaches ``variance``."""
        from sklearn.decomposition import PCA

        if not 0.0 < variance <= 1.0:
            raise ValueError(f"PCA retained variance must be in (0, 1], got {variance}")
        Y = np.asarray(Y, dtype=float)
        pca = PCA(svd_solver="full").fit(Y)
        ratio = np.cumsum(pca.explained_variance_ratio_)
        k = int(min(np.searchsorted(ratio, variance - 1e-12) + 1, Y.shape[1]))
        comps = np.zeros((Y.shape[1], Y.shape[1]))
        var = np.zeros(Y.shape[1])
        n = len(pca.components_)  # min(N, d)
        comps[:n], var[:n] = pca.components_, pca.explained_variance_
        return cls(pca.mean_, comps, var, k)

    @property
    def retained_variance(self) -> float:
        return float(self.variances[: self.k].sum() / self.variances.sum())

    def transform(self, Y: np.ndarray) -> np.ndarray:
        """(..., d) outputs -> (..., k) scores."""
        return (np.asarray(Y) - self.mean) @ self.components[: self.k].T

    def lift(self, Z: np.ndarray, noise: bool = False, rng: np.random.Generator | None = None) -> np.ndarray:
        """(..., k) scores -> (..., d) outputs; ``noise`` adds the dropped components' variance."""
        Y = self.mean + np.asarray(Z) @ self.components[: self.k]
        if noise and self.k < len(self.variances):
            rng = rng if rng is not None else np.random.default_rng(0)
            e = rng.standard_normal((*Y.shape[:-1], len(self.variances) - self.k)) * np.sqrt(self.variances[self.k :])
            Y = Y + e @ self.components[self.k :]
        return Y
