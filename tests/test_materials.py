"""Interatomic-potential machinery (src/nnrds/materials.py): derivatives, invariances, units, data, BBB."""
import numpy as np
import pytest
import torch

from nnrds import materials as M
from nnrds.models import Arch, ReplicaNet

SPEC = M.DescriptorSpec(cutoff=4.5, n_radial=5, angular_etas=(0.01,), zetas=(1.0, 2.0), lambdas=(1.0, -1.0))


def _cell(seed=0, rattle=0.1, repeat=(2, 1, 1)):
    from ase.build import bulk

    at = bulk("Al", "fcc", a=4.05, cubic=True).repeat(repeat)
    at.set_cell(np.asarray(at.get_cell()) @ (np.eye(3) + np.array([[0.01, 0.02, 0], [0.02, -0.01, 0.01], [0, 0.01, 0.005]])),
                scale_atoms=True)
    at.rattle(rattle, seed=seed)
    return M.from_atoms(at, label=False)


def _potential(seeds=(0, 1)):
    net = ReplicaNet(Arch(SPEC.n_descriptors, 1, 6, 3, param="legendre", degree=2), list(seeds), dtype=torch.float64)
    return M.Potential(net, SPEC, torch.ones(SPEC.n_descriptors), 2 * torch.ones(SPEC.n_descriptors), -3.0, 0.5)


def _energy(pot, s):
    return pot.energy_autograd(s)["energy"].numpy()


def test_forces_are_minus_energy_gradient_by_finite_differences():
    s, pot = _cell(), _potential()
    r = pot.energy_autograd(s)
    h = 1e-5
    rng = np.random.default_rng(0)
    for atom, k in [(0, 0), (3, 1), (5, 2), (int(rng.integers(s.natoms)), int(rng.integers(3)))]:
        sp, sm = _cell(), _cell()
        sp.positions[atom, k] += h
        sm.positions[atom, k] -= h
        fd = -(_energy(pot, sp) - _energy(pot, sm)) / (2 * h)
        np.testing.assert_allclose(r["forces"][:, atom, k].numpy(), fd, rtol=1e-6, atol=1e-8)
    assert r["forces"].abs().max() > 1e-3  # not trivially zero
    # Newton's third law: total force on a periodic cell vanishes
    np.testing.assert_allclose(r["forces"].sum(1).numpy(), 0.0, atol=1e-10)


def test_stress_is_strain_derivative_by_finite_differences():
    s, pot = _cell(), _potential()
    r = pot.energy_autograd(s)
    h = 1e-6
    for v, (a, b) in enumerate(M.VOIGT_IDX):
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h if a != b else h  # symmetric strain
        e = []
        for sign in (1, -1):
            t = _cell()
            F = np.eye(3) + sign * eps
            t.positions, t.cell = t.positions @ F, t.cell @ F
            e.append(_energy(pot, t))
        # d E / d eps_ab with the symmetric perturbation counts the off-diagonal pair twice
        fd = (e[0] - e[1]) / (2 * h) / s.volume / (1 if a == b else 2)
        np.testing.assert_allclose(r["stress"][:, v].numpy(), fd, rtol=1e-5, atol=1e-10)


def test_chain_rule_route_equals_autograd_route():
    structs = [_cell(seed=k) for k in range(3)]
    for s in structs:
        s.energy, s.forces, s.stress = 0.0, np.zeros((s.natoms, 3)), np.zeros(6)
    data = M.build_dataset(structs, SPEC)
    pot = _potential()
    p = pot.predict(data)
    for b, s in enumerate(structs):
        r = pot.energy_autograd(s)
        np.testing.assert_allclose(p["energy"][:, b].detach(), r["energy"], rtol=1e-12)
        np.testing.assert_allclose(p["forces"][:, data.atom_cfg == b].detach(), r["forces"], atol=1e-12)
        np.testing.assert_allclose(p["stress"][:, b].detach(), r["stress"], atol=1e-12)
    sub = data.subset([2, 0])
    q = pot.predict(sub)
    np.testing.assert_allclose(q["energy"].detach(), p["energy"][:, [2, 0]].detach(), rtol=1e-12)
    np.testing.assert_allclose(q["forces"][:, sub.atom_cfg == 0].detach(), p["forces"][:, data.atom_cfg == 2].detach(),
                               atol=1e-12)


def _desc(s):
    nb = M.neighbor_topology(s, SPEC.cutoff)
    return M.descriptors(torch.as_tensor(s.positions), torch.as_tensor(s.cell), nb, SPEC).numpy()


def test_descriptors_invariant_to_rotation_translation_permutation_and_supercell():
    from scipy.spatial.transform import Rotation

    s = _cell(rattle=0.15)
    G = _desc(s)
    assert G.shape == (s.natoms, SPEC.n_descriptors) and np.all(np.isfinite(G)) and G.std(0).min() > 0
    # rotation of positions and cell together
    Rm = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    r = _cell(rattle=0.15)
    r.positions, r.cell = r.positions @ Rm.T, r.cell @ Rm.T
    np.testing.assert_allclose(_desc(r), G, atol=1e-10)
    # translation (atoms wrapped back into the cell or not: same periodic system)
    t = _cell(rattle=0.15)
    t.positions = t.positions + np.array([0.7, -1.3, 2.9])
    np.testing.assert_allclose(_desc(t), G, atol=1e-10)
    # permutation of like atoms permutes the rows
    perm = np.random.default_rng(1).permutation(s.natoms)
    p = _cell(rattle=0.15)
    p.positions = p.positions[perm]
    np.testing.assert_allclose(_desc(p), G[perm], atol=1e-10)
    # a 2x1x2 supercell has the same per-atom descriptors, tiled
    sup = M.Structure(np.concatenate([s.positions + i * s.cell[0] + k * s.cell[2] for i in range(2) for k in range(2)]),
                      s.cell * np.array([[2], [1], [2]]), s.species * 4)
    np.testing.assert_allclose(_desc(sup), np.tile(G, (4, 1)), atol=1e-10)


def test_stress_units_bar_to_ev_per_cubic_angstrom():
    from ase import units

    np.testing.assert_allclose(M.stress_to_ev_a3(1.0, "bar"), units.bar, rtol=1e-6)  # ASE: eV/A^3 per bar
    np.testing.assert_allclose(M.stress_to_ev_a3(1.0, "GPa"), units.GPa, rtol=1e-6)
    np.testing.assert_allclose(M.stress_to_ev_a3(160.21766208, "GPa"), 1.0, rtol=1e-8)
    np.testing.assert_allclose(M.stress_to_ev_a3([1e4, 2e4], "bar"), [1.0 / 160.21766208, 2.0 / 160.21766208], rtol=1e-8)
    assert M.stress_to_ev_a3(3.0, "kbar") == pytest.approx(3e3 * M.stress_to_ev_a3(1.0, "bar"))
    with pytest.raises(ValueError, match="unknown stress unit"):
        M.stress_to_ev_a3(1.0, "psi")


def test_al_emt_generator_is_seeded_labelled_and_round_trips_tables():
    a = M.generate_al_emt(14, seed=3, md_temperatures=(300, 900), md_steps=2)
    b = M.generate_al_emt(14, seed=3, md_temperatures=(300, 900), md_steps=2)
    groups = {s.group for s in a}
    assert {"strain", "shear", "rattle", "vacancy", "surf100", "surf111", "md300K", "md900K"} <= groups
    assert all(np.array_equal(x.positions, y.positions) and x.energy == y.energy for x, y in zip(a, b))
    # EMT labels are consistent with EMT itself: forces sum to ~0, stress is ASE's (1/V) dE/deps
    for s in a:
        assert np.abs(s.forces.sum(0)).max() < 1e-8 and s.stress.shape == (6,) and np.isfinite(s.energy)
    conf, atoms = M.to_tables(a)
    back = M.from_tables(conf, atoms)
    for x, y in zip(a, back):
        np.testing.assert_allclose(y.positions, x.positions)
        np.testing.assert_allclose(y.stress, x.stress)
        assert y.group == x.group


def test_group_split_holds_out_whole_groups():
    from nnrds.studies.materials import make_split

    groups = ["a"] * 10 + ["b"] * 5 + ["c"] * 5
    tr, te, ood = make_split(groups, "group", ["c"], 0.2, seed=0)
    assert not set(tr) & set(te) and len(tr) + len(te) == 20
    assert all(groups[i] != "c" for i in tr) and ood.sum() == 5
    assert all(groups[i] == "c" for i in te[ood])
    with pytest.raises(ValueError, match="not in the dataset"):
        make_split(groups, "group", ["zz"], 0.2, seed=0)


def test_ensemble_and_bbb_train_and_improve():
    from nnrds.studies import materials as S
    from nnrds.train import seed_everything

    seed_everything(0)
    structs = M.generate_al_emt(14, seed=0, md_temperatures=(300,), md_steps=2)
    data = M.build_dataset(structs, SPEC)
    study = {"net": {"width": 8, "depth": 2, "param": "legendre", "degree": 1}, "epochs": 15, "lr": 0.01,
             "batch_size": 7, "l2": 0.0, "loss_weights": {"energy": 1.0, "forces": 1.0, "stress": 0.1},
             "bbb": {"epochs": 3, "lr": 1e-3, "particles": 2, "init_scale": 1e-3, "kl_weight": 1.0, "prior_scale": 1.0,
                     "n_samples": 4}}
    pot, scales = S.make_potential(study, SPEC, data, [0, 1], torch.float64)
    res = S.train_ensemble(pot, data, study, scales, seed=0)
    first = [h["train_loss"] for h in res.history if h["epoch"] == 0]
    last = [h["train_loss"] for h in res.history if h["epoch"] == study["epochs"]]
    assert all(b < a for a, b in zip(first, last))
    noise = {q: float(v[0]) for q, v in S.residual_noise(pot, data).items()}
    post, atomic, n = S.train_bbb(pot, data, study, noise, seed=0)
    assert post.method == "vi" and post.theta_scale.min() > 0 and n == 4
    pred = pot.predict(data, atomic=atomic, n=n)
    assert pred["forces"].shape == (4, len(data.atom_cfg), 3)
    assert torch.isfinite(pred["stress"]).all() and pred["energy"].std(0).max() > 0
