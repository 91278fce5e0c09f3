"""Polynomial weight bases (monomial, shifted Legendre, shifted Chebyshev): values, Gram matrices against closed
forms (continuous inner product on [0, T] and the layer-grid one), condition numbers, shared initial network."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy.linalg import hilbert

from nnrds import wp
from nnrds.models import Arch, ReplicaNet

# 2-norm condition numbers of the Hilbert matrices H_2..H_6 (published values, e.g. Todd 1954; Higham, Accuracy
# and Stability of Numerical Algorithms, table 28.1 gives the same to the digits shown)
HILBERT_COND = {2: 19.2815, 3: 524.0568, 4: 15513.74, 5: 476607.3, 6: 1.495106e7}


def _cheb_gram_closed(K: int, T: float) -> np.ndarray:
    """int_0^T T_m(2t/T-1) T_n(2t/T-1) dt = T/2 [1/(1-(m+n)^2) + 1/(1-(m-n)^2)] for m+n even, 0 otherwise."""
    G = np.zeros((K, K))
    for m in range(K):
        for n in range(K):
            if (m + n) % 2 == 0:
                G[m, n] = T / 2 * (1 / (1 - (m + n) ** 2) + 1 / (1 - (m - n) ** 2))
    return G


def test_chebyshev_basis_values():
    phi = wp.basis_matrix("chebyshev", 5, 3, T=2.5).numpy()
    s = 2 * (np.arange(5) * 0.5) / 2.5 - 1
    np.testing.assert_allclose(phi, np.stack([np.ones(5), s, 2 * s**2 - 1, 4 * s**3 - 3 * s], 1), atol=1e-15)
    assert wp.n_basis("chebyshev", 40, 3) == 4
    assert Arch(3, 1, 4, 40, "chebyshev", 3).n_params() == Arch(3, 1, 4, 7, "legendre", 3).n_params()


def test_chebyshev_orthogonal_under_its_weight():
    """Gauss-Chebyshev quadrature (exact to degree 2N-1): sum_i T_m(x_i) T_n(x_i) pi/N = pi (m=n=0), pi/2, 0."""
    N, T = 12, 3.0
    x = np.cos((2 * np.arange(N) + 1) * np.pi / (2 * N))
    d = 6
    V = np.polynomial.chebyshev.chebvander(x, d)
    G = V.T @ V * np.pi / N
    np.testing.assert_allclose(G, np.diag([np.pi] + [np.pi / 2] * d), atol=1e-12)
    # and the basis matrix is that Vandermonde at the shifted layer times
    L = 16
    s = 2 * wp.layer_times(L, T) / T - 1
    np.testing.assert_allclose(wp.basis_matrix("chebyshev", L, d, T).numpy(), np.polynomial.chebyshev.chebvander(s, d))


@pytest.mark.parametrize("T", [1.0, 5.0])
def test_continuous_gram_closed_forms(T):
    d = 6
    np.testing.assert_allclose(
        wp.gram_continuous("legendre", d, T), np.diag(T / (2 * np.arange(d + 1) + 1)), atol=1e-13
    )
    np.testing.assert_allclose(wp.gram_continuous("chebyshev", d, T), _cheb_gram_closed(d + 1, T), atol=1e-13)
    np.testing.assert_allclose(wp.gram_continuous("monomial", d, T), T * hilbert(d + 1), rtol=1e-12)
    np.testing.assert_allclose(wp.gram_continuous("const", 0, T), [[T]])


def test_chebyshev_closed_form_itself():
    """the closed form used above against direct integration of the product polynomials (degree 0..3)"""
    K, T = 4, 2.0
    ref = np.zeros((K, K))
    for m in range(K):
        for n in range(K):
            p = np.polynomial.Chebyshev.basis(m) * np.polynomial.Chebyshev.basis(n)
            q = p.integ()
            ref[m, n] = (q(1) - q(-1)) * T / 2
    np.testing.assert_allclose(_cheb_gram_closed(K, T), ref, atol=1e-14)


@pytest.mark.parametrize("degree", [2, 3, 4, 5])
def test_monomial_continuous_condition_is_hilbert(degree):
    G = wp.gram_continuous("monomial", degree, T=7.0)
    assert np.linalg.cond(G) == pytest.approx(HILBERT_COND[degree + 1], rel=1e-5)


@pytest.mark.parametrize("L", [3, 7, 20])
def test_discrete_legendre_gram_degree_one(L):
    """sum_n h P_j(s_n) P_k(s_n), s_n = 2n/L - 1: T [[1, -1/L], [-1/L, 1/3 + 2/(3 L^2)]] (by hand)."""
    T = 2.5
    ref = T * np.array([[1, -1 / L], [-1 / L, 1 / 3 + 2 / (3 * L**2)]])
    np.testing.assert_allclose(wp.gram("legendre", L, 1, T), ref, rtol=1e-13)


@pytest.mark.parametrize("L,degree", [(5, 2), (12, 4), (30, 6)])
def test_discrete_monomial_gram_exact_sums(L, degree):
    """h sum_n (n/L)^(j+k) in exact rational arithmetic."""
    T = 3.0
    ref = np.array(
        [
            [float(Fraction(1, L) * sum(Fraction(n, L) ** (j + k) for n in range(L))) for k in range(degree + 1)]
            for j in range(degree + 1)
        ]
    )
    np.testing.assert_allclose(wp.gram("monomial", L, degree, T), T * ref, rtol=1e-12)


@pytest.mark.parametrize("kind", ["legendre", "chebyshev"])
def test_discrete_gram_euler_maclaurin(kind):
    """left Riemann sum = integral - h/2 [f(T) - f(0)] + O(h^2) with f = phi_j phi_k, phi_k(T)=1, phi_k(0)=(-1)^k"""
    T, d = 2.0, 4
    G = wp.gram_continuous(kind, d, T)
    j, k = np.meshgrid(range(d + 1), range(d + 1), indexing="ij")
    jump = 1.0 - (-1.0) ** (j + k)
    for L in (400, 1600):
        np.testing.assert_allclose(L * (wp.gram(kind, L, d, T) - G), -T / 2 * jump, atol=40.0 / L)


def test_gram_condition_known_values_and_limits():
    # a fine grid approaches the continuous values: Legendre diag(1/(2k+1)) has cond 2d+1, monomial Hilbert
    assert wp.gram_condition("legendre", 4000, 3) == pytest.approx(7.0, rel=1e-2)
    assert wp.gram_condition("monomial", 4000, 3) == pytest.approx(HILBERT_COND[4], rel=1e-2)
    assert wp.gram_condition("chebyshev", 4000, 3) == pytest.approx(np.linalg.cond(_cheb_gram_closed(4, 1.0)), rel=1e-2)
    # invariant under T (the bases live on t/T and the inner product scales by T)
    for kind in wp.POLY_KINDS:
        c = [wp.gram_condition(kind, 24, 5, T) for T in (1.0, 5.0, 10.0)]
        # float64 round-off of a condition number ~1e7 is ~cond * eps ~ 3e-9 relative (1e-10 failed at 1.3e-10)
        np.testing.assert_allclose(c, c[0], rtol=1e-8)
    # rank-deficient on the grid; an orthonormal-on-the-grid basis (nonpar: identity) has cond 1
    assert wp.gram_condition("legendre", 4, 5) == float("inf")
    assert wp.gram_condition("nonpar", 9) == pytest.approx(1.0)
    # monomial conditioning explodes with the degree, the orthogonal bases' stays modest
    mono = [wp.gram_condition("monomial", 32, d) for d in (2, 5, 10)]
    leg = [wp.gram_condition("legendre", 32, d) for d in (2, 5, 10)]
    assert mono[0] < mono[1] < mono[2] and mono[2] > 1e14 and max(leg) < 1e3


@pytest.mark.parametrize("depth", [4, 16])
def test_polynomial_bases_start_from_the_same_network(depth):
    u = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    nets = [ReplicaNet(Arch(3, 2, 5, depth, k, 3), seeds=[2, 9], dtype=torch.float64) for k in wp.POLY_KINDS]
    for net in nets[1:]:
        torch.testing.assert_close(net.layer_weights()[0], nets[0].layer_weights()[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(net(u), nets[0](u), rtol=0, atol=1e-12)
