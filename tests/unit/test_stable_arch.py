"""Stable-architecture study: blocks of the model family, Verlet inversion, prolongation, data, stability functions,
claims (src/nnrds/studies/stable_arch.py, models.py, integrators.py, data/toy2d.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from nnrds import integrators, wp
from nnrds.data import toy2d
from nnrds.models import Arch, ReplicaNet
from nnrds.studies import stable_arch as sa
from nnrds.train import cross_entropy_per_replica

F64 = torch.float64


def _u(n: int = 5) -> torch.Tensor:
    return torch.linspace(-1, 1, 2 * n, dtype=F64).reshape(n, 2)


def _randomize_biases(net: ReplicaNet, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.c.copy_(0.3 * torch.randn(net.c.shape, generator=g, dtype=F64))
        net.a_in.copy_(0.3 * torch.randn(net.a_in.shape, generator=g, dtype=F64))


# --------------------------------------------------------------------------------------------- model family
def test_default_resnet_block_unchanged():
    """Stored outputs of the default ResNet (computed with the code before the stable blocks were added), and the
    forward-Euler formula written out."""
    net = ReplicaNet(Arch(2, 3, 4, 3, param="nonpar", T=1.5), [0, 7], dtype=F64)
    y = net(_u())
    assert y.sum().item() == pytest.approx(2.3919635765321923, abs=1e-14)
    assert y[1, 2].tolist() == pytest.approx(
        [0.01872799728599997, -0.09949255671735152, 0.34643717236581095], abs=1e-15
    )
    leg = ReplicaNet(Arch(2, 3, 4, 8, param="legendre", degree=2, T=1.5), [3], dtype=F64)
    assert leg(_u()).sum().item() == pytest.approx(1.3077753747035266, abs=1e-14)
    _randomize_biases(net)
    W, b = net.layer_weights()
    x = torch.einsum("ni,rij->rnj", _u(), net.A_in) + net.a_in[:, None, :]
    for n in range(3):
        x = x + 0.5 * torch.tanh(torch.einsum("rnj,rij->rni", x, W[:, n]) + b[:, n, None, :])
    assert torch.equal(net.readout(x), net(_u()))


def test_block_validation():
    with pytest.raises(ValueError, match="integrates with"):
        Arch(2, 2, 4, 3, block="resnet", scheme="leapfrog")
    with pytest.raises(ValueError, match="unknown block"):
        Arch(2, 2, 4, 3, block="unitary")
    with pytest.raises(ValueError, match="MLP"):
        Arch(2, 2, 4, 3, param="mlp", block="antisymmetric")


def test_antisymmetric_spectrum_is_imaginary():
    """K - K^T has a purely imaginary spectrum, and so has the layer Jacobian diag(sigma') (K - K^T) (torch.func);
    with gamma the real parts are -gamma (matrix) and negative (Jacobian)."""
    net = ReplicaNet(Arch(2, 3, 6, 4, T=2.0, block="antisymmetric"), [0, 1], dtype=F64)
    _randomize_biases(net)
    W, _ = net.layer_weights()
    lam = torch.linalg.eigvals(net.layer_matrix(W))
    assert lam.real.abs().max() < 1e-12 and lam.imag.abs().max() > 0.1
    hl, layers = sa.layer_spectra(net, _u().expand(2, 5, 2), n_layers=4, n_points=3)
    assert hl.shape == (2, 4, 3, 6) and layers == [0, 1, 2, 3]
    assert hl.real.abs().max() < 1e-12 and hl.imag.abs().max() > 0.05
    damped = ReplicaNet(Arch(2, 3, 6, 4, T=2.0, block="antisymmetric", gamma=0.5), [0], dtype=F64)
    lam = torch.linalg.eigvals(damped.layer_matrix(damped.layer_weights()[0]))
    assert torch.allclose(lam.real, torch.full_like(lam.real, -0.5), atol=1e-12)
    plain = ReplicaNet(Arch(2, 3, 6, 4, T=2.0), [0], dtype=F64)  # a ResNet's W has real eigenvalue parts
    assert torch.linalg.eigvals(plain.layer_weights()[0]).real.abs().max() > 0.1


@pytest.mark.parametrize(
    "block,scheme", [("resnet", "euler"), ("antisymmetric", "leapfrog"), ("hamiltonian", "verlet")]
)
def test_layer_jacobians_match_autograd(block, scheme):
    net = ReplicaNet(
        Arch(2, 3, 3, 4, T=2.0, block=block, scheme=scheme, gamma=0.1 * (block == "antisymmetric")), [5], dtype=F64
    )
    _randomize_biases(net)
    J, layers = sa.layer_jacobians(net, _u()[None], n_layers=2, n_points=2)
    assert layers == [0, 3]
    W, b = net.layer_weights()
    x0 = net.embed(_u()[None, :2])
    xs, zs = (
        net._stable_trajectory(x0, W, b, net.arch.h, 4) if block != "resnet" else (net.trajectory(_u()[None, :2]), [])
    )
    for li, n in enumerate(layers):
        for p in range(2):
            if block == "hamiltonian":

                def f(s, n=n):
                    x, z = s[:3][None, None], s[3:][None, None]
                    return torch.cat(
                        [net.vector_field(z, W[:, n], b[:, n])[0, 0], -net.vector_field(x, W[:, n].mT, b[:, n])[0, 0]]
                    )

                state = torch.cat([xs[n][0, p], zs[n][0, p]])
            else:

                def f(s, n=n):
                    return net.vector_field(s[None, None], W[:, n], b[:, n])[0, 0]

                state = xs[n][0, p]
            ref = torch.autograd.functional.jacobian(f, state.detach())
            assert torch.allclose(J[0, li, p], ref, atol=1e-13), (n, p)


def test_leapfrog_block_is_the_two_step_rule():
    net = ReplicaNet(Arch(2, 3, 4, 3, T=1.5, block="antisymmetric", scheme="leapfrog"), [2], dtype=F64)
    _randomize_biases(net)
    W, b = net.layer_weights()
    xs = [net.embed(_u())]
    xs.append(xs[0] + 0.5 * net.vector_field(xs[0], W[:, 0], b[:, 0]))
    for n in (1, 2):
        xs.append(xs[n - 1] + 2 * 0.5 * net.vector_field(xs[n], W[:, n], b[:, n]))
    assert torch.equal(net.trajectory(_u())[-1], xs[-1])


def test_verlet_step_inverted_exactly():
    """float64, small depth: the Verlet network run backwards returns its input (and z_{-1/2} = 0) to 1e-12."""
    net = ReplicaNet(Arch(2, 3, 5, 4, T=2.0, block="hamiltonian", scheme="verlet"), [0, 1, 2], dtype=F64)
    _randomize_biases(net)
    x0, xN, zN = net.verlet_states(_u())
    assert (xN - x0).abs().max() > 0.05  # the network does move its state
    xr, zr = net.verlet_inverse(xN, zN)
    assert (xr - x0).abs().max() < 1e-12 and zr.abs().max() < 1e-12
    assert sa.reconstruction_error(net, _u()).max() < 1e-12
    assert torch.equal(net.trajectory(_u())[-1], xN)


def test_verlet_inverse_detects_a_wrong_step():
    """A network whose forward pass differs from the inverted one (another h) is not reconstructed."""
    net = ReplicaNet(Arch(2, 3, 5, 4, T=2.0, block="hamiltonian", scheme="verlet"), [0], dtype=F64)
    other = ReplicaNet(Arch(2, 3, 5, 4, T=2.4, block="hamiltonian", scheme="verlet"), [0], dtype=F64)
    x0, xN, zN = other.verlet_states(_u())
    xr, _ = net.verlet_inverse(xN, zN)
    assert (xr - x0).abs().max() > 1e-3


# --------------------------------------------------------------------------------------------- prolongation
def test_prolongation_of_wp_network_is_exact():
    """A WP network prolongated to 2L keeps W(t): its layer weights at the old nodes are the old ones, and its
    output equals the trained network evaluated at 2L layers through the resampled basis (to rounding)."""
    net = ReplicaNet(Arch(3, 2, 4, 4, param="legendre", degree=2, T=1.0), [0, 1], dtype=F64)
    _randomize_biases(net)
    with torch.no_grad():
        net.C.add_(0.2)
    fine = sa.prolongate(net, 8, "constant")
    assert fine.arch.depth == 8 and fine.arch.h == 0.125
    W, b = net.layer_weights()
    Wf, bf = fine.layer_weights()
    assert torch.allclose(Wf[:, ::2], W, atol=1e-14, rtol=0) and torch.allclose(bf[:, ::2], b, atol=1e-14, rtol=0)
    u = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    phi = wp.resample("legendre", 4, 8, degree=2, T=1.0)
    assert torch.allclose(fine(u), net(u, phi), atol=1e-14, rtol=0)
    # only h changed: the output differs from the coarse net's by the discretization error, not by 0
    assert (fine(u) - net(u)).abs().max() > 1e-6


def test_prolongation_of_nonpar_interpolates_layers():
    net = ReplicaNet(Arch(3, 2, 4, 4, param="nonpar", T=1.0), [0], dtype=F64)
    W = net.layer_weights()[0]
    Wc = sa.prolongate(net, 8, "constant").layer_weights()[0]
    assert torch.equal(Wc[:, 0::2], W) and torch.equal(Wc[:, 1::2], W)
    Wl = sa.prolongate(net, 8, "linear").layer_weights()[0]
    assert torch.allclose(Wl[:, 1], 0.5 * (W[:, 0] + W[:, 1]), atol=1e-15)


def test_multilevel_depths():
    assert sa.multilevel_depths({"start_depth": 4, "final_depth": 64}) == [4, 8, 16, 32, 64]
    with pytest.raises(ValueError, match="power of two"):
        sa.multilevel_depths({"start_depth": 4, "final_depth": 48})


# ------------------------------------------------------------------------------------------- data and loss
@pytest.mark.parametrize("name", list(toy2d.CLASSES))
def test_toy2d_seeded_with_stated_classes(name):
    u, y = toy2d.make(name, 600, 3)
    u2, y2 = toy2d.make(name, 600, 3)
    u3, _ = toy2d.make(name, 600, 4)
    assert u.shape == (600, 2) and y.shape == (600,) and y.dtype == np.int64
    assert np.array_equal(u, u2) and np.array_equal(y, y2) and not np.array_equal(u, u3)
    counts = np.bincount(y, minlength=toy2d.CLASSES[name])
    assert len(counts) == toy2d.CLASSES[name] and counts.min() > 0.5 * 600 / len(counts)


def test_toy2d_labels_follow_the_construction():
    u, y = toy2d.make("peaks", 400, 0)
    edges = toy2d._peaks_edges()
    assert np.array_equal(y, np.searchsorted(edges, toy2d.peaks(u[:, 0], u[:, 1])))
    u, y = toy2d.make("ellipses", 400, 0)
    r = np.hypot(u[:, 0], 2 * u[:, 1])
    assert np.array_equal(y, np.floor((r - 0.4) / 0.9).astype(int))
    with pytest.raises(ValueError, match="unknown 2-D problem"):
        toy2d.make("moons", 10, 0)


def test_cross_entropy_per_replica():
    net = ReplicaNet(Arch(2, 3, 4, 2), [0, 1], dtype=F64)
    u, y = toy2d.make("ellipses", 20, 0)
    U, Y = torch.as_tensor(u), torch.as_tensor(y)[:, None]
    loss = cross_entropy_per_replica(net, U, Y)
    logits = net(U)
    ref = [torch.nn.functional.cross_entropy(logits[r], Y[:, 0]) for r in range(2)]
    assert loss.shape == (2,) and torch.allclose(loss, torch.stack(ref), atol=1e-14)


# ------------------------------------------------------------------------------------- stability functions
def test_amplification_known_values():
    a = np.array([0.3, 0.9, 1.1])
    assert integrators.amplification("euler", 1j * a) == pytest.approx(np.sqrt(1 + a**2))
    assert integrators.amplification("euler", -1.0) == pytest.approx(0.0)
    lf = integrators.amplification("leapfrog", 1j * a)
    assert lf[:2] == pytest.approx([1.0, 1.0]) and lf[2] == pytest.approx(1.1 + math.sqrt(1.1**2 - 1))
    assert integrators.amplification("leapfrog", -0.1) > 1.0  # unstable off the imaginary axis
    assert integrators.amplification("verlet", [1.9j, 2.1j]) == pytest.approx([1.0, sa.verlet_xi(1.05)])
    assert integrators.amplification("rk4", -1.0) == pytest.approx(1 - 1 + 1 / 2 - 1 / 6 + 1 / 24)
    with pytest.raises(ValueError, match="no stability function"):
        integrators.amplification("bdf2", 1j)


def test_linear_verlet_roundtrip_follows_the_amplification():
    """a^2 < 1: the roundtrip stays at rounding; a^2 > 1: its error grows like |xi|^(2N) (known amplification)."""
    assert sa.verlet_xi(0.9) == 1.0 and sa.verlet_xi(1.2) == pytest.approx((1.2 + math.sqrt(0.44)) ** 2)
    assert max(sa.linear_verlet_roundtrip(0.9, n, "float64") for n in (8, 32, 128)) < 1e-12
    a = 1.02
    n = np.array([8, 12, 16, 20])
    err = np.array([sa.linear_verlet_roundtrip(a, int(k), "float64") for k in n])
    slope = np.polyfit(n, np.log(err), 1)[0]
    assert slope == pytest.approx(2 * math.log(sa.verlet_xi(a)), rel=0.15)
    assert math.isnan(sa.linear_verlet_roundtrip(1.5, 400, "float32"))  # overflow is NaN, not a number


# ------------------------------------------------------------------------------------------------- claims
def _runs(euler_shallow, euler_deep, leap_deep, ham_deep, seeds=6, noise=0.01) -> pd.DataFrame:
    offsets = [1.0, -1.0, 0.5, -0.5, 0.2, -0.2, 0.7, -0.7]  # seed-to-seed spread, symmetric about the value
    rows = []
    for s in range(seeds):
        for problem in ("peaks", "swiss_roll"):
            for arch, d4, d16 in (
                ("antisym_euler", euler_shallow, euler_deep),
                ("antisym_leapfrog", 0.0, leap_deep),
                ("hamiltonian", 0.0, ham_deep),
            ):
                for depth, g in ((4, d4), (16, d16)):
                    rows.append(
                        {
                            "arch": arch,
                            "problem": problem,
                            "h": 0.5,
                            "depth": depth,
                            "seed": s,
                            "log10_growth": g + noise * offsets[s % 8] * (1 if problem == "peaks" else 0.9),
                        }
                    )
    return pd.DataFrame(rows)


def _study(archs=("antisym_euler", "antisym_leapfrog", "hamiltonian")):
    return {
        "seeds": list(range(6)),
        "stability": {
            "archs": list(archs),
            "problems": ["peaks", "swiss_roll"],
            "steps": [0.5],
            "depths": [4, 16],
            "width": 4,
            "epochs": 1,
        },
        "multilevel": {"dataset": "elm", "start_depth": 2, "final_depth": 4, "epochs_per_level": 1},
    }


def _rev(err):
    rows = [
        {"source": "trained", "dtype": "float64", "depth": 16, "seed": s, "rel_error": e} for s, e in enumerate(err)
    ]
    return pd.DataFrame(rows, columns=["source", "dtype", "depth", "seed", "rel_error"])


def _ml(ratio_log10):
    rows = [
        {"parameterization": "nonpar", "seed": s, "scratch_loss": 10.0**r, "multilevel_loss": 1.0}
        for s, r in enumerate(ratio_log10)
    ]
    return pd.DataFrame(rows, columns=["parameterization", "seed", "scratch_loss", "multilevel_loss"])


def test_claims_supported():
    cl = sa.claims(
        _runs(0.1, 1.0, 0.05, 0.0),
        _rev([1e-15, 2e-15, 3e-15, 1.5e-15, 4e-15, 2.5e-15]),
        _ml([0.5, 0.6, 0.55, 0.52, 0.58, 0.61]),
        _study(),
    ).set_index("claim_id")
    assert set(cl.verdict) == {"supported"}, cl[["effect", "ci_low", "ci_high", "verdict"]]
    assert list(cl.index) == [
        "antisym_euler_unstable:h0.5",
        "antisym_leapfrog_stable:h0.5",
        "hamiltonian_stable:h0.5",
        "verlet_reversible",
        "multilevel_cheaper:nonpar",
    ]
    assert cl.loc["antisym_euler_unstable:h0.5", "effect"] == pytest.approx(0.9, abs=0.02)
    assert (cl.p_adjusted >= cl.p_value).all() and (cl.n_units == 6).all()


def test_claims_contradicted():
    cl = sa.claims(
        _runs(1.0, 0.1, 1.0, 0.8),
        _rev([1e-6, 2e-6, 3e-6, 1.5e-6, 4e-6, 2.5e-6]),
        _ml([-0.5, -0.6, -0.55, -0.52, -0.58, -0.61]),
        _study(),
    )
    assert set(cl.verdict) == {"contradicted"}, cl[["claim_id", "effect", "ci_low", "ci_high", "verdict"]]


def test_claims_inconclusive():
    """Effects that straddle 0 (or the margin) with spread across seeds."""
    cl = sa.claims(
        _runs(0.0, 0.0, 0.25, 0.25, noise=0.3),
        _rev([1e-12, 1e-8, 1e-11, 1e-9, 1e-10, 1e-10]),
        _ml([1.0, -1.0, 0.5, -0.5, 0.1, -0.1]),
        _study(),
    )
    assert set(cl.verdict) == {"inconclusive"}, cl[["claim_id", "effect", "ci_low", "ci_high", "verdict"]]


def test_claims_follow_the_configured_architectures():
    cl = sa.claims(_runs(0.1, 1.0, 0.05, 0.0), _rev([]), _ml([]), _study(archs=("hamiltonian",)))
    assert list(cl.claim_id) == ["hamiltonian_stable:h0.5"]


def test_multilevel_summary_and_jumps():
    rows = []
    for s in (0, 1):
        for mode, pts in (
            ("multilevel", [(0, 2, 0, 0, 1.0), (0, 2, 5, 10, 0.5), (1, 4, 0, 10, 0.6), (1, 4, 5, 30, 0.1)]),
            ("scratch", [(0, 4, 0, 0, 1.0), (0, 4, 8, 32, 0.2)]),
        ):
            for level, depth, epoch, cost, loss in pts:
                rows.append(
                    {"parameterization": "p", "kind": "nonpar", "mode": mode, "seed": s, "level": level,
                     "depth": depth, "epoch": epoch, "cost": cost, "train_loss": loss}
                )  # fmt: skip
    sm = sa.multilevel_summary(pd.DataFrame(rows))
    assert len(sm) == 2 and sm.multilevel_loss.tolist() == [0.1, 0.1] and sm.scratch_loss.tolist() == [0.2, 0.2]
    assert sm.cost_to_scratch_loss.tolist() == [30.0, 30.0]
    assert sm.max_log10_jump.iloc[0] == pytest.approx(math.log10(0.6 / 0.5))
