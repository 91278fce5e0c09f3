"""Interatomic potentials (src/nnrds/potentials/), their data (src/nnrds/data/al_emt.py, fitsnap.py) and the
materials study (src/nnrds/studies/materials.py): derivatives, invariances, units, data, BBB."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from nnrds.data.al_emt import generate_al_emt
from nnrds.data.stress_units import stress_to_ev_a3
from nnrds.experiment import Cell
from nnrds.models import Arch, ReplicaNet
from nnrds.potentials.dataset import build_dataset
from nnrds.potentials.descriptors import DescriptorSpec, descriptor_terms
from nnrds.potentials.neighbours import descriptors, neighbor_topology, pair_vectors
from nnrds.potentials.potential import Potential, fit_reference_energies
from nnrds.potentials.structures import VOIGT_IDX, Structure, from_atoms, from_tables, to_tables

SPEC = DescriptorSpec(cutoff=4.5, n_radial=5, angular_etas=(0.01,), zetas=(1.0, 2.0), lambdas=(1.0, -1.0))


def _cell(seed=0, rattle=0.1, repeat=(2, 1, 1)):
    from ase.build import bulk

    at = bulk("Al", "fcc", a=4.05, cubic=True).repeat(repeat)
    at.set_cell(
        np.asarray(at.get_cell()) @ (np.eye(3) + np.array([[0.01, 0.02, 0], [0.02, -0.01, 0.01], [0, 0.01, 0.005]])),
        scale_atoms=True,
    )
    at.rattle(rattle, seed=seed)
    return from_atoms(at, label=False)


def _potential(seeds=(0, 1)):
    net = ReplicaNet(Arch(SPEC.n_descriptors, 1, 6, 3, param="legendre", degree=2), list(seeds), dtype=torch.float64)
    return Potential(net, SPEC, torch.ones(SPEC.n_descriptors), 2 * torch.ones(SPEC.n_descriptors), -3.0, 0.5)


def _energy(pot, s):
    return pot.energy_autograd(s)["energy"].numpy()


def _assert_stress_is_strain_derivative(pot, make, stress, volume, h=1e-6):
    """``stress`` (S, 6) of ``make()`` equals (1/V) dE/deps by central finite differences of symmetric strains."""
    for v, (a, b) in enumerate(VOIGT_IDX):
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h  # symmetric strain
        e = []
        for sign in (1, -1):
            t = make()
            F = np.eye(3) + sign * eps
            t.positions, t.cell = t.positions @ F, t.cell @ F
            e.append(_energy(pot, t))
        # d E / d eps_ab with the symmetric perturbation counts the off-diagonal pair twice
        fd = (e[0] - e[1]) / (2 * h) / volume / (1 if a == b else 2)
        np.testing.assert_allclose(stress[:, v].numpy(), fd, rtol=1e-5, atol=1e-10)


def _assert_routes_agree(pot, structs, data):
    """The chain-rule route (``pot.predict(data)``, returned) equals autograd per configuration."""
    p = pot.predict(data)
    for b, s in enumerate(structs):
        r = pot.energy_autograd(s)
        np.testing.assert_allclose(p["energy"][:, b].detach(), r["energy"], rtol=1e-12)
        np.testing.assert_allclose(p["forces"][:, data.atom_cfg == b].detach(), r["forces"], atol=1e-12)
        np.testing.assert_allclose(p["stress"][:, b].detach(), r["stress"], atol=1e-12)
    return p


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
    _assert_stress_is_strain_derivative(pot, _cell, r["stress"], s.volume)


def test_chain_rule_route_equals_autograd_route():
    structs = [_cell(seed=k) for k in range(3)]
    for s in structs:
        s.energy, s.forces, s.stress = 0.0, np.zeros((s.natoms, 3)), np.zeros(6)
    data = build_dataset(structs, SPEC)
    pot = _potential()
    p = _assert_routes_agree(pot, structs, data)
    sub = data.subset([2, 0])
    q = pot.predict(sub)
    np.testing.assert_allclose(q["energy"].detach(), p["energy"][:, [2, 0]].detach(), rtol=1e-12)
    np.testing.assert_allclose(
        q["forces"][:, sub.atom_cfg == 0].detach(), p["forces"][:, data.atom_cfg == 2].detach(), atol=1e-12
    )


def _desc(s):
    nb = neighbor_topology(s, SPEC.cutoff)
    return descriptors(torch.as_tensor(s.positions), torch.as_tensor(s.cell), nb, SPEC).numpy()


def _assert_rigid_motion_invariance(make, desc, G):
    """Descriptors ``desc(make())`` equal ``G`` after rotating positions and cell together and after a
    translation (atoms wrapped back into the cell or not: the same periodic system)."""
    from scipy.spatial.transform import Rotation

    Rm = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    r = make()
    r.positions, r.cell = r.positions @ Rm.T, r.cell @ Rm.T
    np.testing.assert_allclose(desc(r), G, atol=1e-10)
    t = make()
    t.positions = t.positions + np.array([0.7, -1.3, 2.9])
    np.testing.assert_allclose(desc(t), G, atol=1e-10)


def test_descriptors_invariant_to_rotation_translation_permutation_and_supercell():
    s = _cell(rattle=0.15)
    G = _desc(s)
    assert G.shape == (s.natoms, SPEC.n_descriptors) and np.all(np.isfinite(G)) and G.std(0).min() > 0
    _assert_rigid_motion_invariance(lambda: _cell(rattle=0.15), _desc, G)
    # permutation of like atoms permutes the rows
    perm = np.random.default_rng(1).permutation(s.natoms)
    p = _cell(rattle=0.15)
    p.positions = p.positions[perm]
    np.testing.assert_allclose(_desc(p), G[perm], atol=1e-10)
    # a 2x1x2 supercell has the same per-atom descriptors, tiled
    sup = Structure(
        np.concatenate([s.positions + i * s.cell[0] + k * s.cell[2] for i in range(2) for k in range(2)]),
        s.cell * np.array([[2], [1], [2]]),
        s.species * 4,
    )
    np.testing.assert_allclose(_desc(sup), np.tile(G, (4, 1)), atol=1e-10)


def test_stress_units_bar_to_ev_per_cubic_angstrom():
    from ase import units

    np.testing.assert_allclose(stress_to_ev_a3(1.0, "bar"), units.bar, rtol=1e-6)  # ASE: eV/A^3 per bar
    np.testing.assert_allclose(stress_to_ev_a3(1.0, "GPa"), units.GPa, rtol=1e-6)
    np.testing.assert_allclose(stress_to_ev_a3(160.21766208, "GPa"), 1.0, rtol=1e-8)
    np.testing.assert_allclose(stress_to_ev_a3([1e4, 2e4], "bar"), [1.0 / 160.21766208, 2.0 / 160.21766208], rtol=1e-8)
    assert stress_to_ev_a3(3.0, "kbar") == pytest.approx(3e3 * stress_to_ev_a3(1.0, "bar"))
    with pytest.raises(ValueError, match="unknown stress unit"):
        stress_to_ev_a3(1.0, "psi")


def test_al_emt_generator_is_seeded_labelled_and_round_trips_tables():
    a = generate_al_emt(14, seed=3, md_temperatures=(300, 900), md_steps=2)
    b = generate_al_emt(14, seed=3, md_temperatures=(300, 900), md_steps=2)
    groups = {s.group for s in a}
    assert {"strain", "shear", "rattle", "vacancy", "surf100", "surf111", "md300K", "md900K"} <= groups
    assert all(np.array_equal(x.positions, y.positions) and x.energy == y.energy for x, y in zip(a, b))
    # EMT labels are consistent with EMT itself: forces sum to ~0, stress is ASE's (1/V) dE/deps
    for s in a:
        assert np.abs(s.forces.sum(0)).max() < 1e-8 and s.stress.shape == (6,) and np.isfinite(s.energy)
    conf, atoms = to_tables(a)
    back = from_tables(conf, atoms)
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


def test_random_split_without_correlated_groups_is_the_plain_permutation():
    """One configuration per unit: the test set is exactly the first n_test of the seeded permutation (the split
    before blocks existed), so sets without correlated groups keep their splits."""
    from nnrds.studies.materials import make_split

    groups = ["a"] * 7 + ["b"] * 13
    tr, te, _ = make_split(groups, "random", [], 0.25, seed=3)
    perm = np.random.default_rng(3).permutation(20)
    assert te.tolist() == sorted(perm[:5].tolist()) and tr.tolist() == sorted(perm[5:].tolist())
    tr, te, ood = make_split(groups, "group", ["a"], 0.25, seed=3)
    ind = np.arange(7, 20)
    want = sorted(ind[np.random.default_rng(3).permutation(13)][:3].tolist())
    assert te[~ood].tolist() == want and sorted(tr.tolist() + want) == ind.tolist()


@pytest.mark.parametrize("seed", range(6))
def test_correlated_groups_never_sit_on_both_sides_of_any_split(seed):
    from nnrds.studies.materials import make_cv_folds, make_split, split_units

    groups = ["strain"] * 12 + ["md300K"] * 6 + ["rattle"] * 9 + ["md600K"] * 5 + ["Liquid"] * 3
    corr = ["md*", "Liquid"]
    u = split_units(groups, corr)
    assert len(set(u[12:18])) == 1 and len(set(u[:12])) == 12 and u[18] != u[0]
    for split in ("random", "group"):
        tr, te, _ = make_split(groups, split, ["rattle"], 0.3, seed, corr)
        assert not set(tr) & set(te) and len(tr) + len(te) == len(groups)
        for g in ("md300K", "md600K", "Liquid"):
            sides = {i in set(te) for i in range(len(groups)) if groups[i] == g}
            assert len(sides) == 1, (split, g)
    folds = make_cv_folds(groups, 4, seed, corr)
    allp = np.concatenate(folds)
    assert sorted(allp.tolist()) == list(range(len(groups)))  # every configuration tested exactly once
    for g in ("md300K", "md600K", "Liquid"):
        assert sum(any(groups[i] == g for i in f) for f in folds) == 1  # a trajectory in one fold
    for g in ("strain", "rattle"):  # >= 4 units: in every fold, sizes within one of each other
        counts = [sum(groups[i] == g for i in f) for f in folds]
        assert min(counts) >= 1 and max(counts) - min(counts) <= 1
    # without the patterns the MD snapshots are dealt one by one (and so land on both sides)
    plain = make_cv_folds(groups, 4, seed)
    assert sum(any(groups[i] == "md300K" for i in f) for f in plain) == 4
    with pytest.raises(ValueError, match="at least 2 folds"):
        make_cv_folds(groups, 1, seed)


def test_cv_split_tests_every_configuration_once_through_run_split():
    """run_split on ``cv``: the pooled test predictions hold every configuration once; the linear baseline is a
    method beside the ensemble; the folds' timings and info are one row each, with their number."""
    from nnrds.studies import materials

    structs = generate_al_emt(16, seed=4, md_temperatures=(300,), md_steps=2)
    data = build_dataset(structs, SPEC)
    study = _tiny_study(epochs=2, batch_size=8, forces_weight=1.0)
    study.update(cv_folds=2, linear={"enabled": True, "n_samples": 4})
    study["bbb"]["enabled"] = False
    out = materials.run_split(
        "al_emt", {"kind": "al_emt", "correlated_groups": ["md*"]}, "cv", study, data, None, SPEC, dtype="float64"
    )
    ce = out["config_errors"]
    for m in ("ensemble", "linear"):
        te = ce[(ce.method == m) & (ce.subset == "test")]
        assert sorted(te.config_id) == sorted(data.config_ids) and set(te.fold) == {0, 1}
    md = ce[(ce.subset == "test") & (ce.group == "md300K")]
    assert md.fold.nunique() == 1
    e = out["metrics"].set_index(["method", "quantity"])
    assert e.loc[("ensemble", "energy"), "n"] == data.n_configs and e.loc[("linear", "forces"), "n"] == 3 * len(
        data.elem
    )
    assert len(out["timings"]) == 1 and out["timings"]["folds"].iloc[0] == 2
    assert out["info"]["n_test"].iloc[0] == data.n_configs


def _labelled(structs):
    """Structures with placeholder labels (zero energy, forces and stress), to be overwritten."""
    for s in structs:
        s.energy, s.forces, s.stress = 0.0, np.zeros((s.natoms, 3)), np.zeros(6)
    return structs


def test_linear_baseline_recovers_an_exactly_linear_potential():
    """Labels made by a linear model of the standardized descriptors (energies, forces, stresses through the
    potential's chain rule): the Bayesian ridge fit reproduces them; the design columns are the model's exact
    derivatives (design @ theta == prediction)."""
    from nnrds.studies import materials

    structs = _labelled([_cell(seed=k, rattle=0.05 + 0.02 * k) for k in range(8)])
    data = build_dataset(structs, SPEC)
    study = _tiny_study(epochs=1, batch_size=8, forces_weight=1.0)
    study["linear"] = {"enabled": True, "n_samples": 5}
    pot, scales = materials.make_potential(study, SPEC, data, [0], torch.float64)
    C = SPEC.n_descriptors + 1
    theta = torch.as_tensor(np.random.default_rng(0).normal(0, 0.05, (1, C)))
    with torch.no_grad():
        pred = {k: v.detach() for k, v in pot.predict(data, atomic=materials.linear_atomic(pot, theta), n=1).items()}
    assert "stress" not in materials.linear_design(pot, data)  # no stress label: no stress rows
    data.energy, data.forces, data.stress = pred["energy"][0], pred["forces"][0], pred["stress"][0]
    data.has_stress = torch.ones(data.n_configs, dtype=torch.bool)
    A, y = materials.linear_design(pot, data), materials.linear_targets(pot, data)
    for q in ("energy", "forces", "stress"):
        np.testing.assert_allclose(A[q] @ theta[0].numpy(), y[q], atol=1e-10)
    # two elements: per-element columns, the same identity with the binary potential's chain rule
    bs = _labelled([_binary(seed=k) for k in range(3)])
    bdata = build_dataset(bs, SPEC2)
    bdata.has_stress = torch.ones(bdata.n_configs, dtype=torch.bool)
    bpot = _potential2()
    bth = torch.as_tensor(np.random.default_rng(1).normal(0, 0.05, (1, 2 * (SPEC2.n_descriptors + 1))))
    with torch.no_grad():
        bp = {k: v.detach() for k, v in bpot.predict(bdata, atomic=materials.linear_atomic(bpot, bth), n=1).items()}
    bdata.energy, bdata.forces, bdata.stress = bp["energy"][0], bp["forces"][0], bp["stress"][0]
    A2, y2 = materials.linear_design(bpot, bdata), materials.linear_targets(bpot, bdata)
    for q in ("energy", "forces", "stress"):
        np.testing.assert_allclose(A2[q] @ bth[0].numpy(), y2[q], atol=1e-10)
    method, secs = materials.fit_linear(pot, data, study, scales, seed=0)
    assert method.n == 5 and secs >= 0
    with torch.no_grad():
        fit = {k: v.detach() for k, v in pot.predict(data, atomic=method.atomic, n=method.n).items()}
    np.testing.assert_allclose(fit["forces"].mean(0), pred["forces"][0], atol=1e-4)
    np.testing.assert_allclose(fit["energy"].mean(0) / 4, pred["energy"][0] / 4, atol=1e-4)
    assert max(method.noise_var.values()) < 1e-8


def test_a_priori_loss_weight_rules_use_the_training_set_only():
    from nnrds.studies.materials import ROBUST_TAU_FACTOR, resolved_loss_weights, resolved_tau

    structs = _labelled([_cell(seed=k) for k in range(5)])
    data = build_dataset(structs, SPEC)
    data.energy = torch.tensor([-3.0, -2.9, -3.1, -3.05, 0.0], dtype=torch.float64) * data.natoms
    study = {"loss_weights": {"energy": "force_components", "forces": 1.0, "stress": 0.1}}
    assert resolved_loss_weights(study, data)["energy"] == pytest.approx(3 * float(data.natoms.mean()))
    study["loss_weights"]["energy"] = 7.0
    assert resolved_loss_weights(study, data)["energy"] == 7.0
    # residuals from the median -3.0: 0, 0.1, -0.1, -0.05, 3.0 -> MAD 0.1
    assert resolved_tau({"energy_weight_tau": "robust"}, data, [0.0]) == pytest.approx(ROBUST_TAU_FACTOR * 0.1)
    assert resolved_tau({"energy_weight_tau": 0.3}, data, [0.0]) == 0.3 and resolved_tau({}, data, [0.0]) is None


def test_ensemble_and_bbb_train_and_improve():
    from nnrds.studies import materials
    from nnrds.train import seed_everything

    seed_everything(0)
    structs = generate_al_emt(14, seed=0, md_temperatures=(300,), md_steps=2)
    data = build_dataset(structs, SPEC)
    study = {
        "net": {"width": 8, "depth": 2, "param": "legendre", "degree": 1},
        "epochs": 15,
        "lr": 0.01,
        "batch_size": 7,
        "l2": 0.0,
        "loss_weights": {"energy": 1.0, "forces": 1.0, "stress": 0.1},
        "bbb": {
            "epochs": 3,
            "lr": 1e-3,
            "particles": 2,
            "init_scale": 1e-3,
            "kl_weight": 1.0,
            "prior_scale": 1.0,
            "n_samples": 4,
        },
    }
    pot, scales = materials.make_potential(study, SPEC, data, [0, 1], torch.float64)
    res = materials.train_ensemble(pot, data, study, scales, seed=0)
    first = [h["train_loss"] for h in res.history if h["epoch"] == 0]
    last = [h["train_loss"] for h in res.history if h["epoch"] == study["epochs"]]
    assert all(b < a for a, b in zip(first, last))
    noise = {q: float(v[0]) for q, v in materials.residual_noise(pot, data).items()}
    post, atomic, n = materials.train_bbb(pot, data, study, noise, seed=0)
    assert post.method == "vi" and post.theta_scale.min() > 0 and n == 4
    pred = pot.predict(data, atomic=atomic, n=n)
    assert pred["forces"].shape == (4, len(data.atom_cfg), 3)
    assert torch.isfinite(pred["stress"]).all() and pred["energy"].std(0).max() > 0


def test_bbb_stack_starts_at_member_zero_and_nll_is_the_gaussian_misfit():
    from nnrds.data.al_emt import generate_al_emt
    from nnrds.studies import materials

    structs = generate_al_emt(8, seed=2, md_temperatures=(300,), md_steps=2)
    data = build_dataset(structs, SPEC)
    study = {"net": {"width": 5, "depth": 2, "param": "legendre", "degree": 1}, "l2": 0.0}
    pot, _ = materials.make_potential(study, SPEC, data, [0, 1], torch.float64)
    stack, init, shells = materials.bbb_stack(pot, {"prior_scale": 0.5})
    assert len(shells) == len(pot.nets) and init.shape == (stack.P,)

    def atomic(X, k):
        return stack.forward_part(k, init[None], X, shells[k])

    member0 = pot.predict(data)["energy"][0]
    torch.testing.assert_close(pot.predict(data, atomic=atomic, n=1)["energy"][0], member0)
    w = {"energy": 1.0, "forces": 0.0, "stress": 0.0}
    nll = materials.bbb_nll(pot, data, stack, shells, w, {"energy": 0.5, "forces": 1.0, "stress": 1.0})
    idx = torch.tensor([0, 3, 5])
    y = data.energy[idx] / data.natoms[idx]
    by_hand = 0.5 * (((member0[idx] / data.natoms[idx]) - y) / 0.5).pow(2).sum()
    torch.testing.assert_close(nll(init[None], idx), by_hand[None])
    assert nll(torch.stack([init, init + 0.05]), idx).shape == (2,)


# ------------------------------------------------------------------------------ several elements (W-Be)
SPEC2 = DescriptorSpec(
    cutoff=4.5, n_radial=5, angular_etas=(0.01,), zetas=(1.0, 2.0), lambdas=(1.0, -1.0), elements=("Au", "Cu")
)
AU = [1, 2, 4]  # atoms of the 8-atom fcc Cu cell that are Au


def _binary(seed=0, rattle=0.1):
    """An 8-atom periodic Cu/Au cell (EMT knows both), strained and rattled."""
    from ase.build import bulk

    at = bulk("Cu", "fcc", a=3.75, cubic=True).repeat((2, 1, 1))
    sym = at.get_chemical_symbols()
    for k in AU:
        sym[k] = "Au"
    at.set_chemical_symbols(sym)
    at.set_cell(
        np.asarray(at.get_cell()) @ (np.eye(3) + np.array([[0.01, 0.02, 0], [0.02, -0.01, 0.01], [0, 0.01, 0.005]])),
        scale_atoms=True,
    )
    at.rattle(rattle, seed=seed)
    return from_atoms(at, label=False)


def _potential2(seeds=(0, 1)):
    D = SPEC2.n_descriptors
    arch = Arch(D, 1, 6, 3, param="legendre", degree=2)
    nets = [ReplicaNet(arch, [s + 100 * k for s in seeds], dtype=torch.float64) for k in range(2)]
    g = torch.linspace(0.5, 1.5, D)
    return Potential(nets, SPEC2, torch.stack([g, 2 * g]), torch.stack([2 * g, g + 1]), [-3.2, -4.1], 0.5)


def _desc2(s, spec=SPEC2):
    nb = neighbor_topology(s, spec.cutoff, spec)
    return descriptors(torch.as_tensor(s.positions), torch.as_tensor(s.cell), nb, spec).numpy()


def test_binary_forces_stress_by_finite_differences_and_chain_rule_route():
    s, pot = _binary(), _potential2()
    r = pot.energy_autograd(s)
    h = 1e-5
    for atom, k in [(0, 0), (1, 2), (4, 1), (7, 0)]:  # Cu and Au atoms
        sp, sm = _binary(), _binary()
        sp.positions[atom, k] += h
        sm.positions[atom, k] -= h
        fd = -(pot.energy_autograd(sp)["energy"].numpy() - pot.energy_autograd(sm)["energy"].numpy()) / (2 * h)
        np.testing.assert_allclose(r["forces"][:, atom, k].numpy(), fd, rtol=1e-6, atol=1e-8)
    assert r["forces"].abs().max() > 1e-3
    np.testing.assert_allclose(r["forces"].sum(1).numpy(), 0.0, atol=1e-10)
    _assert_stress_is_strain_derivative(pot, _binary, r["stress"], s.volume)
    # the training route (precomputed element-resolved descriptor Jacobians, chain rule) equals autograd
    structs = [_binary(seed=k) for k in range(3)] + [_cell(seed=5)]  # the last one: Cu only (no Au atoms)
    structs[-1].species = ["Cu"] * structs[-1].natoms
    for t in structs:
        t.energy, t.forces, t.stress = 0.0, np.zeros((t.natoms, 3)), np.zeros(6)
    data = build_dataset(structs, SPEC2, chunk=2)
    assert data.elem.tolist()[:8] == [1, 0, 0, 1, 0, 1, 1, 1] and not data.has_stress.any()
    p = _assert_routes_agree(pot, structs, data)
    sub = data.subset([3, 1])
    np.testing.assert_allclose(pot.predict(sub)["energy"].detach(), p["energy"][:, [3, 1]].detach(), rtol=1e-12)


def test_dataset_blocks_join_like_one_block():
    from nnrds.potentials.dataset import block_descriptors, block_graph, label_tensors
    from nnrds.potentials.neighbours import neighbor_topology

    structs = [_cell(seed=k, repeat=(1 + k % 2, 1, 1)) for k in range(3)]
    for t in structs:
        t.energy, t.forces, t.stress = -1.0, np.ones((t.natoms, 3)), np.arange(6.0)
    nbs = [neighbor_topology(t, SPEC.cutoff, SPEC) for t in structs]
    g = block_graph(structs[1:], nbs[1:], 1)
    n1 = structs[1].natoms
    assert g.n_atoms == n1 + structs[2].natoms and g.atom_cfg.tolist() == [1] * n1 + [2] * structs[2].natoms
    assert g.pi[len(nbs[1].i) :].min() >= n1  # the second configuration's atoms come after the first's
    assert (g.pair_cfg == 1).sum() == len(nbs[1].i) and len(g.d) == len(g.pi) == len(nbs[1].i) + len(nbs[2].i)
    G, H = block_descriptors(g, SPEC)
    assert G.shape == (g.n_atoms, SPEC.n_descriptors) and H.shape == (len(g.d), SPEC.n_descriptors, 3)
    lab = label_tensors(structs)
    assert lab["natoms"].tolist() == [t.natoms for t in structs] and lab["has_stress"].all()
    # one configuration per block gives the same dataset as one block
    one, many = build_dataset(structs, SPEC), build_dataset(structs, SPEC, chunk=1)
    for f in ("G", "H", "d", "pair_i", "pair_j", "atom_cfg", "pair_cfg", "elem", "forces", "stress"):
        assert torch.equal(getattr(one, f), getattr(many, f)), f
    torch.testing.assert_close(one.G[structs[0].natoms :], G, rtol=1e-12, atol=0)  # the block's rows of the set


def test_binary_descriptors_invariances_and_element_blocks():
    s = _binary(rattle=0.15)
    G = _desc2(s)
    assert G.shape == (8, 2 * 5 + 3 * 4) and np.all(np.isfinite(G))
    _assert_rigid_motion_invariance(lambda: _binary(rattle=0.15), _desc2, G)
    # permuting like atoms (the Cu atoms among themselves), or all atoms with their species, permutes rows
    cu = [k for k in range(8) if k not in AU]
    perm = np.arange(8)
    perm[cu] = np.array(cu)[[2, 0, 4, 1, 3]]
    p = _binary(rattle=0.15)
    p.positions = p.positions[perm]
    np.testing.assert_allclose(_desc2(p), G[perm], atol=1e-10)
    perm = np.random.default_rng(1).permutation(8)
    p = _binary(rattle=0.15)
    p.positions, p.species = p.positions[perm], [p.species[k] for k in perm]
    np.testing.assert_allclose(_desc2(p), G[perm], atol=1e-10)
    # exchanging a Cu and an Au atom changes the environments (the descriptors see elements) ...
    x = _binary(rattle=0.15)
    x.species[0], x.species[1] = x.species[1], x.species[0]
    assert np.abs(_desc2(x) - G).max() > 1e-3
    # ... and the element blocks add up to the element-agnostic descriptors
    one = _desc2(s, DescriptorSpec(**{**SPEC2.__dict__, "elements": ()}))
    np.testing.assert_allclose(G[:, :5] + G[:, 5:10], one[:, :5], rtol=1e-12)
    np.testing.assert_allclose(G[:, 10:14] + G[:, 14:18] + G[:, 18:22], one[:, 5:], rtol=1e-12)
    # Au neighbours of atom 0 (Cu): its Au-Au block vanishes only if it has < 2 Au neighbours (it has more)
    assert G[0, 10:14].min() > 0


def test_single_element_descriptors_are_the_original_ones():
    s = _cell()
    G = _desc(s)  # SPEC without elements
    Gal = _desc2(s, DescriptorSpec(**{**SPEC.__dict__, "elements": ("Al",)}))
    np.testing.assert_array_equal(Gal, G)
    # the original definition: [sum_j G2 terms, sum_{j<k} G4 terms] over all neighbours, and its values
    nb = neighbor_topology(s, SPEC.cutoff)
    d = pair_vectors(torch.as_tensor(s.positions), torch.as_tensor(s.cell), nb)
    i, ta, tb = (torch.as_tensor(x) for x in (nb.i, nb.ta, nb.tb))
    g2, g4 = descriptor_terms(d, ta, tb, SPEC)
    old = torch.cat([d.new_zeros(s.natoms, 5).index_add(0, i, g2), d.new_zeros(s.natoms, 4).index_add(0, i[ta], g4)], 1)
    np.testing.assert_array_equal(G, old.numpy())
    frozen = [
        [
            1.4094069648369028,
            3.175416331934604,
            2.832288137826144,
            1.087682543518645,
            0.23857125698095707,
            0.7852675572289107,
            0.26213670460926136,
            0.5924777591880117,
            0.06934690656836238,
        ],
        [
            1.398103051707601,
            3.227885575184889,
            2.900247580684955,
            1.0949330662818926,
            0.23117048079715344,
            0.7923513219234749,
            0.26572775747800753,
            0.5971667373518441,
            0.07054317290637685,
        ],
    ]  # before W-Be
    np.testing.assert_allclose(G[[0, 5]], frozen, rtol=1e-12)


def test_reference_energy_fit_recovers_per_element_energies():
    from nnrds.studies.materials import make_potential

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 20, size=(40, 2))
    counts[counts.sum(1) == 0] = 1
    true = np.array([-3.2, -8.6])
    E = counts @ true + 0.01 * counts.sum(1) * rng.standard_normal(40)
    np.testing.assert_allclose(fit_reference_energies(counts, E), true, atol=0.01)
    np.testing.assert_allclose(fit_reference_energies(counts, counts @ true), true, rtol=1e-12)
    one = np.array([[4], [8], [2]])
    assert fit_reference_energies(one, [-12.0, -25.0, -5.0])[0] == pytest.approx(np.mean([-3.0, -3.125, -2.5]))
    # in the potential: per-element reference energies, standardization and one network per element
    structs = [_binary(seed=k, rattle=0.05) for k in range(4)]
    for t in structs:
        n_au = sum(x == "Au" for x in t.species)
        t.energy, t.forces, t.stress = -3.8 * n_au - 3.5 * (t.natoms - n_au), np.zeros((t.natoms, 3)), np.zeros(6)
    t = _cell(seed=1)
    t.species = ["Cu"] * t.natoms
    t.energy, t.forces, t.stress = -3.5 * t.natoms, np.zeros((t.natoms, 3)), np.ones(6)
    data = build_dataset(structs + [t], SPEC2)
    study = {"net": {"width": 4, "depth": 2, "param": "legendre", "degree": 1}}
    pot, scales = make_potential(study, SPEC2, data, [0, 1], torch.float64)
    np.testing.assert_allclose(pot.e_ref, [-3.8, -3.5], atol=1e-9)
    assert pot.n_elements == 2 and pot.g_mean.shape == (2, SPEC2.n_descriptors)
    np.testing.assert_allclose(pot.g_mean[1].numpy(), data.G[data.elem == 1].mean(0).numpy())
    assert not torch.equal(pot.nets[0].A_in, pot.nets[1].A_in)
    assert data.has_stress.tolist() == [False] * 4 + [True]


def _wbe_tables(tmp_path, per_group=3):
    """Tidy tables of a few W-Be configurations from the mirror, through the FitSNAP parser."""
    import io as _io
    import os
    import tarfile

    from nnrds import config as cfgmod
    from nnrds.data.acquire import parse_fitsnap, read_fitsnap_tar

    tar = cfgmod.REPO_ROOT / ".." / "shared" / "data" / "fitsnap_WBe_PRB2019_JSON.tar.gz"
    if not tar.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the W-Be mirror file {tar} is missing")
        pytest.skip(f"W-Be mirror file {tar} not present")
    files = read_fitsnap_tar(tar, "WBe_PRB2019")
    want = {
        "ElasticDeform_Vol": per_group,
        "ElasticDeform_Shear": per_group,
        "Elast_BCC_Vol": per_group,
        "surface": per_group,
        "slice_sample": per_group,
    }
    # six neighbouring points of the hcp Be EOS: nearly identical cells, so their stress unit can be checked
    pick = [f"EOS_HCP/EOS_HCP_{k}.json" for k in range(12, 18)]
    for rel in sorted(files):
        g = rel.split("/", 1)[0]
        if want.get(g, 0) > 0:
            want[g] -= 1
            pick.append(rel)
    small = tmp_path / "wbe.tar.gz"
    with tarfile.open(small, "w:gz") as tf:
        for rel in pick:
            info = tarfile.TarInfo(f"WBe_PRB2019/{rel}")
            info.size = len(files[rel])
            tf.addfile(info, _io.BytesIO(files[rel]))
    conf, atoms, meta = parse_fitsnap(small, "WBe_PRB2019")
    out = tmp_path / "wbe"
    out.mkdir()
    conf.to_csv(out / "configs.csv", index=False)
    atoms.to_csv(out / "atoms.csv", index=False)
    return out, conf


def test_wbe_parse_and_train_smoke(tmp_path):
    import yaml

    from nnrds import config as cfgmod
    from nnrds.studies import materials

    data_dir, conf = _wbe_tables(tmp_path)
    assert set(conf["species"]) == {"Be", "W", "Be W"} and len(conf) == 21
    # stress units per group from the data: the hcp Be EOS stores kbar (declared bar), slice_sample bar; in
    # eV/A^3 the EOS pressures are GPa-scale (kbar read as bar would give MPa, i.e. ~1e-5 eV/A^3)
    units = conf.groupby("group")["stress_unit"].first()
    assert units["EOS_HCP"] == "kbar" and units["slice_sample"] == "bar"
    hcp = conf[conf["group"] == "EOS_HCP"]
    p_gpa = -hcp[["stress_xx_eV_A3", "stress_yy_eV_A3", "stress_zz_eV_A3"]].mean(axis=1) * 160.21766208
    assert hcp["stress_unit_status"].isin(["checked", "noisy"]).all() and p_gpa.abs().max() > 1.0
    frag = yaml.safe_load((cfgmod.SCHEMA_PATH.parent / "studies" / "materials.schema.yaml").read_text())
    study = cfgmod.validate({}, schema={"type": "object", **frag})["materials"]  # this study's defaults
    assert "wbe" in study["sets"]
    study = cfgmod.deep_merge(
        study,
        {
            "splits": ["group"],
            "seeds": [0, 1],
            "epochs": 3,
            "batch_size": 6,
            "net": {"width": 6, "depth": 2, "degree": 1},
            "descriptors": {"n_radial": 4, "angular_etas": [0.01], "zetas": [1.0]},
            "bbb": {"epochs": 2, "n_samples": 3},
        },
    )
    dspec = {**study["wbe"], "kind": "wbe", "max_configs": 15, "min_per_group": 2, "heldout_groups": ["surface"]}
    tables = materials.run_cell(Cell({"set": "wbe"}, study, dtype="float64", dataset=dspec, in_dirs=(str(data_dir),)))
    info = tables["info"].iloc[0]
    assert info["elements"] == "Be W" and info["n_heldout"] == 2 and info["n_configs"] <= 15
    assert info["n_descriptors"] == 2 * 4 + 3 * 2
    m = tables["metrics"]
    assert set(m.method) == {"ensemble", "bbb", "linear"} and set(m.subset) == {"all", "in_distribution", "heldout"}
    assert np.isfinite(m.rmse).all() and (m[m.quantity == "energy"].rmse < 5).all()
    # the W surface group stores no stress (six zeros): no stress metric for the held-out groups
    assert m[(m.subset == "heldout") & (m.quantity == "stress")].empty
    ev = tables["ev"]
    assert len(ev) == 3 * 6 and set(ev.method) == {"ensemble", "bbb", "linear"}  # every EOS_HCP configuration


# ------------------------------------------------------------------------------ Bayes-by-backprop noise model
def test_bbb_likelihood_std_is_tempered_noise():
    from nnrds.studies.materials import likelihood_std

    got = likelihood_std({"energy": 0.02, "forces": 0.3, "stress": 0.01}, {"energy": 1.0, "forces": 4.0, "stress": 0.0})
    assert got["energy"] == pytest.approx(0.02) and got["forces"] == pytest.approx(0.15)
    assert got["stress"] == pytest.approx(0.01)  # not in the likelihood (weight 0): the training residual


def _tiny_study(epochs, batch_size, forces_weight):
    """A study config small enough for a unit test: two members, two BBB epochs, three posterior draws."""
    return {
        "net": {"width": 6, "depth": 2, "param": "legendre", "degree": 1},
        "epochs": epochs,
        "lr": 0.01,
        "batch_size": batch_size,
        "l2": 0.0,
        "loss_weights": {"energy": 1.0, "forces": forces_weight, "stress": 0.1},
        "seeds": [0, 1],
        "test_fraction": 0.25,
        "max_prediction_rows": 100,
        "bbb": {
            "enabled": True,
            "epochs": 2,
            "lr": 1e-3,
            "particles": 1,
            "init_scale": 1e-3,
            "kl_weight": 1.0,
            "prior_scale": 1.0,
            "n_samples": 3,
        },
    }


@pytest.mark.parametrize("tempered", [False, True])
def test_bbb_fitted_and_predictive_noise_models_are_the_same(monkeypatch, tempered):
    """The Gaussian likelihood Bayes-by-backprop fits (nll at the warm start = ensemble member 0) and the
    aleatoric variance its predictive adds must be one noise model: nll == sum_q 0.5 sum (p - y)^2 / var_q with
    var_q the predictive's noise variance. Today's code (until this fix) fitted noise sigma/sqrt(w) but
    predicted with sigma^2, which fails here because the loss weights are not 1."""
    from nnrds.studies import materials
    from nnrds.uq import bbb

    seen = {}
    run_bbb, predictive, train_bbb = bbb.run_bbb, materials.predictive, materials.train_bbb

    def spy_run(stack, nll, n_data, **kw):
        seen["nll"], seen["init"] = nll, kw["init_theta"]
        return run_bbb(stack, nll, n_data, **kw)

    def spy_train(pot, train, study, noise, seed):
        seen["pot"], seen["train"] = pot, train
        return train_bbb(pot, train, study, noise, seed)

    def spy_pred(pot, data, atomic, n, noise_var):
        if atomic is not None:
            seen["var"] = dict(noise_var)
        return predictive(pot, data, atomic, n, noise_var)

    monkeypatch.setattr(bbb, "run_bbb", spy_run)
    monkeypatch.setattr(materials, "train_bbb", spy_train)
    monkeypatch.setattr(materials, "predictive", spy_pred)
    structs = generate_al_emt(16, seed=2, md_temperatures=(300,), md_steps=2)
    data = build_dataset(structs, SPEC)
    study = _tiny_study(epochs=4, batch_size=8, forces_weight=0.25)
    if tempered:  # likelihood temperatures of their own: noise s/sqrt(w) in the fit and the predictive
        study["bbb"]["loss_weights"] = {"energy": 4.0, "forces": 0.25, "stress": 0.1}
    out = materials.run_split("al_emt", {"kind": "al_emt"}, "random", study, data, None, SPEC, dtype="float64")
    pot, train = seen["pot"], seen["train"]
    with torch.no_grad():
        nll = float(seen["nll"](seen["init"][None], torch.arange(train.n_configs))[0])
    with torch.enable_grad():
        pred = pot.predict(train)
    want = sum(
        0.5 * float(((p[0] - y) ** 2).sum()) / seen["var"][q]
        for q, (p, y) in materials.per_quantity({k: v.detach() for k, v in pred.items()}, train).items()
    )
    assert nll == pytest.approx(want, rel=1e-6)
    lik = json.loads(out["info"]["bbb_likelihood_std"].iloc[0])
    assert {q: v**2 for q, v in lik.items()} == pytest.approx(seen["var"])
    resid = {q: float(v[0]) for q, v in materials.residual_noise(pot, train).items()}
    w = study["bbb"].get("loss_weights") or {"energy": 1.0, "forces": 1.0, "stress": 1.0}
    assert lik == pytest.approx({q: resid[q] / np.sqrt(w[q]) for q in lik}, rel=1e-6)
    # the BBB predictive std of every test item is at least the likelihood's noise std
    pr = out["predictions"][out["predictions"].method == "bbb"]
    for q, g in pr.groupby("quantity"):
        np.testing.assert_allclose(g["std"] ** 2 - g["std_epistemic"] ** 2, lik[q] ** 2, rtol=1e-6)


def test_lr_schedule_splits_epochs_and_decays():
    from nnrds.studies.materials import lr_schedule

    assert lr_schedule({"epochs": 10, "lr": 0.01}) == [(10, 0.01)]
    got = lr_schedule({"epochs": 100, "lr": 0.01, "lr_stages": 3, "lr_decay": 0.1})
    assert [e for e, _ in got] == [34, 33, 33] and [lr for _, lr in got] == pytest.approx([0.01, 0.001, 0.0001])


# ------------------------------------------------------------------------------ per-group errors and SNAP claims
def _cerr(errs: dict[str, list[float]], method="ensemble", subset="test", split="random", f_err=0.05):
    rows = []
    for g, es in errs.items():
        for e in es:
            rows.append(
                {
                    "dataset": "fitsnap",
                    "split": split,
                    "method": method,
                    "subset": subset,
                    "config_id": len(rows),
                    "group": g,
                    "natoms": 2,
                    "energy_err_eV_per_atom": e,
                    "force_abs_sum_eV_A": f_err * 6,
                    "force_sq_sum_eV2_A2": f_err**2 * 6,
                    "n_force_components": 6,
                }
            )
    return pd.DataFrame(rows)


def test_group_metrics_aggregate_exactly_and_join_the_reference():
    from nnrds.studies.materials import group_metrics

    c = _cerr({"A": [0.01, -0.03], "B": [0.002]})
    c.loc[1, ["force_abs_sum_eV_A", "force_sq_sum_eV2_A2", "n_force_components"]] = [3.0, 9.0, 3]
    ref = pd.DataFrame(
        {
            "dataset": ["fitsnap"] * 2,
            "group": ["A", "A"],
            "quantity": ["energy", "forces"],
            "mae": [0.02, 0.1],
            "rmse": [0.03, 0.2],
            "n": [5, 30],
        }
    )
    g = group_metrics(c, ref).set_index(["group", "quantity"])
    assert g.loc[("A", "energy"), "mae"] == pytest.approx(0.02) and g.loc[("A", "energy"), "rmse"] == pytest.approx(
        np.sqrt(0.0005)
    )
    assert g.loc[("A", "forces"), "mae"] == pytest.approx((0.3 + 3.0) / 9) and g.loc[("A", "forces"), "n_items"] == 9
    assert g.loc[("A", "forces"), "rmse"] == pytest.approx(np.sqrt((0.015 + 9.0) / 9))
    assert g.loc[("A", "energy"), "mae_over_snap"] == pytest.approx(1.0) and np.isnan(
        g.loc[("B", "energy"), "snap_mae"]
    )
    assert g.loc[("*ALL", "energy"), "n_configs"] == 3


def _paired_cerr(groups: dict[str, tuple[list[float], list[float]]], f_errs=(0.05, 0.05)):
    """config_errors rows of the cv split: per group (ensemble errors, linear errors) of the same configurations."""
    parts = []
    for m, k, f in (("ensemble", 0, f_errs[0]), ("linear", 1, f_errs[1])):
        parts.append(_cerr({g: v[k] for g, v in groups.items()}, method=m, split="cv", f_err=f))
    return pd.concat(parts, ignore_index=True)


def test_ta_claims_verdicts_on_known_answers():
    """Both families on synthetic per-configuration errors: the like-for-like family (paired vs the linear
    baseline; superiority) and the reference family (vs SNAP's training MAE; non-superiority within 10%), with
    cases that must come out supported, contradicted and inconclusive; no force claim on zero-force groups."""
    from nnrds.studies.materials import claims as ta_claims
    from nnrds.verdicts import CLAIM_COLUMNS

    rng = np.random.default_rng(0)
    n = 30
    good = list(0.002 * rng.standard_normal(n))
    c = _paired_cerr(
        {
            # ours ~1.6 meV, linear 50 meV on the same configurations: ours better; SNAP 10 meV: ours beats it
            "Good": (good, list(0.05 + 0.002 * rng.standard_normal(n))),
            # ours 50 meV, linear 2 meV: linear better (contradicted); 5x SNAP's 10 meV: contradicted
            "Bad": (list(0.05 + 0.002 * rng.standard_normal(n)), list(0.002 * rng.standard_normal(n))),
            "Few": ([0.001], [0.05]),  # one configuration: no interval
            "Wide": ([0.0, 0.001, 0.2], [0.01, 0.0, 0.05]),  # three configurations that disagree
            "Elastic_BCC": (good, good),  # zero-force group: energy claims only
        }
    )
    ref = pd.DataFrame(
        [
            {"dataset": "fitsnap", "group": g, "quantity": q, "mae": m, "rmse": 2 * m, "n": 9}
            for g in ("Good", "Bad", "Few", "Wide", "Elastic_BCC")
            for q, m in (("energy", 0.01), ("forces", 0.1))
        ]
    )
    raw = ta_claims(c, ref, groups=("Good", "Bad", "Few", "Wide", "Elastic_BCC"))
    assert list(raw.columns) == CLAIM_COLUMNS
    cl = raw.set_index("claim_id")
    v = cl["verdict"].to_dict()
    assert "ta_linear_Elastic_BCC_forces" not in v and "ta_snap_Elastic_BCC_forces" not in v
    assert "ta_linear_Elastic_BCC_energy" in v
    assert v["ta_linear_Good_energy"] == "supported" and v["ta_linear_Bad_energy"] == "contradicted"
    assert v["ta_linear_Few_energy"] == "inconclusive" and v["ta_linear_Wide_energy"] == "inconclusive"
    assert v["ta_snap_Good_energy"] == "supported" and v["ta_snap_Bad_energy"] == "contradicted"
    assert v["ta_snap_Few_energy"] == "inconclusive" and v["ta_snap_Wide_energy"] == "inconclusive"
    # every configuration of a group is already tested: an inconclusive row needing more says so (design note)
    assert "cannot decide at this design" in cl.loc["ta_linear_Wide_energy", "design_note"]
    assert (
        not isinstance(cl.loc["ta_linear_Good_energy", "design_note"], str)
        or not cl.loc["ta_linear_Good_energy", "design_note"]
    )
    # paired effect: mean of |linear| - |ours| over the same configurations
    e = c[c.group == "Good"]
    want = np.mean(np.abs(e[e.method == "linear"].energy_err_eV_per_atom.to_numpy())) - np.mean(np.abs(good))
    assert cl.loc["ta_linear_Good_energy", "effect"] == pytest.approx(want)
    assert cl.loc["ta_linear_Good_energy", "n_units"] == n and cl.loc["ta_snap_Good_energy", "margin"] == pytest.approx(
        0.001
    )
    # forces: the same error (0.05) on every configuration for both methods: zero effect, no spread: inconclusive
    assert v["ta_linear_Good_forces"] == "inconclusive"
    # two Holm families: each interval level is at least the Bonferroni level of its own family
    lin = cl[cl.index.str.startswith("ta_linear")]
    assert len(lin) == 9 and lin["ci_level"].between(1 - 0.05 - 1e-12, 1 - 0.05 / 9 + 1e-12).all()
    assert (cl["p_adjusted"].dropna() >= cl["p_value"].dropna()).all()
    assert ta_claims(c[c.method == "ensemble"], None).empty  # neither a baseline nor a reference: no claim


def test_symmetry_checks_pass_and_fail_on_known_forces():
    from nnrds.studies.materials import ZERO_FORCE_TOL, symmetry_checks

    c = pd.concat(
        [
            _cerr({"Elastic_BCC": [0.0, 0.0]}, split="cv", f_err=1e-7),
            _cerr({"Elastic_FCC": [0.0]}, split="cv", f_err=10 * ZERO_FORCE_TOL),
            _cerr({"Surface": [0.0]}, split="cv", f_err=0.3),  # not a zero-force group: not checked
        ],
        ignore_index=True,
    )
    s = symmetry_checks(c).set_index("group")
    assert list(s.index) == ["Elastic_BCC", "Elastic_FCC"]
    assert bool(s.loc["Elastic_BCC", "passed"]) and not bool(s.loc["Elastic_FCC", "passed"])
    assert s.loc["Elastic_FCC", "max_force_rmse_eV_A"] == pytest.approx(10 * ZERO_FORCE_TOL)
    assert s.loc["Elastic_BCC", "n_configs"] == 2


@pytest.mark.parametrize("key", ["materials.lr", "materials.bbb.lr"])
def test_divergence_fails_naming_the_cell_and_config_key(key):
    from nnrds import guards
    from nnrds.studies import materials

    structs = generate_al_emt(14, seed=1, md_temperatures=(300,), md_steps=2)
    data = build_dataset(structs, SPEC)
    study = _tiny_study(epochs=3, batch_size=7, forces_weight=1.0)
    if key == "materials.lr":
        study["lr"] = 1e30
    else:
        study["bbb"]["lr"], study["bbb"]["init_scale"] = 1e30, 1e30
    with guards.job(guards.Where(study="materials", cell="al_emt", config_key="materials.lr")):
        with pytest.raises(guards.NonFiniteError) as e:
            materials.run_split("al_emt", {"kind": "al_emt"}, "random", study, data, None, SPEC, dtype="float32")
    msg = str(e.value)
    assert f"`{key}`" in msg and "materials" in msg and "al_emt / random split" in msg
    if key == "materials.bbb.lr":
        assert "bayes-by-backprop" in msg


def test_caption_with_every_branch_renders_without_docutils_messages():
    """The caption with unit table, per-group lines, claims and E-V lines (the ``|x|`` of an absolute value
    would be an undefined RST substitution) renders cleanly, as the report renders it."""

    from nnrds.studies import materials
    from tests.helpers.captions import rst_problems

    rng = np.random.default_rng(1)
    c = _cerr({g: list(0.003 * rng.standard_normal(4)) for g in materials.TA_NEAR_EQUILIBRIUM})
    ref = pd.DataFrame(
        [
            {"dataset": "fitsnap", "group": g, "quantity": q, "mae": 0.01, "rmse": 0.02, "n": 9}
            for g in materials.TA_NEAR_EQUILIBRIUM
            for q in ("energy", "forces")
        ]
    )
    c = pd.concat([c, c.assign(method="linear")], ignore_index=True)
    c["split"] = "cv"
    groups, claims = materials.group_metrics(c, ref), materials.claims(c, ref)
    sanity = materials.symmetry_checks(pd.concat([c, _cerr({"Elastic_BCC": [0.0]}, split="cv", f_err=1.0)]))
    metrics = pd.DataFrame(
        [
            {
                "dataset": "fitsnap",
                "split": "random",
                "method": m,
                "subset": "all",
                "quantity": q,
                "n": 5,
                "mae": 0.1,
                "rmse": 0.2,
                "nll": 0.0,
                "mean_std": 0.1,
                "cov50": 0.5,
                "cov90": 0.9,
                "cov95": 0.95,
                "spearman_std_abs_err": 0.5,
            }
            for m in ("ensemble", "bbb")
            for q in materials.QUANTITIES
        ]
    )
    info = pd.DataFrame([{"dataset": "fitsnap", "split": "random", "n_train": 10, "n_test": 5, "n_heldout": 0}])
    timings = pd.DataFrame(
        [{"dataset": "fitsnap", "split": "random", "n_train": 10, "n_train_atoms": 40, "device": "cpu"}]
    )
    evs = pd.DataFrame(
        [
            {
                "dataset": "fitsnap",
                "split": "random",
                "method": "ensemble",
                "volume_min": 10.0,
                "volume_max": 20.0,
                "n_points_in_range": 5,
                "max_abs_dev_in_range_eV_per_atom": 0.1,
                "mean_abs_dev_in_range_eV_per_atom": 0.05,
                "n_points": 7,
                "max_abs_dev_eV_per_atom": 0.2,
                "ref_energy_span_in_range_eV_per_atom": 1.0,
                "pred_energy_span_in_range_eV_per_atom": 0.9,
            }
        ]
    )
    table = [
        {
            "group": "EOS",
            "composition": "Be2",
            "declared_unit": "bar",
            "unit": "kbar",
            "status": "checked",
            "ratio": 1.02,
            "n_labelled": 3,
        },
        {
            "group": "Elast",
            "composition": "Be2",
            "declared_unit": "bar",
            "unit": "kbar",
            "status": "noisy",
            "ratio": 0.5,
            "n_labelled": 3,
        },
        {
            "group": "MD",
            "composition": "Be2",
            "declared_unit": "bar",
            "unit": "bar",
            "status": "unchecked",
            "ratio": float("nan"),
            "n_labelled": 3,
        },
    ]
    study = {
        "net": {"param": "legendre", "width": 4, "depth": 2},
        "descriptors": {"cutoff": 4.5},
        "seeds": [0],
        "epochs": 3,
        "lr": 0.01,
        "loss_weights": {"energy": 1.0, "forces": 1.0, "stress": 0.1},
        "bbb": {"epochs": 2, "n_samples": 3},
    }
    text = materials.caption(
        metrics,
        info,
        timings,
        "smoke",
        study,
        {"fitsnap": "Ta"},
        groups,
        claims,
        evs,
        {"WBe": {"stress_units": {"table": table}}},
        sanity,
    )
    assert "stored in kbar" in text and "largest deviation" in text and "beats the linear baseline" in text
    assert "Sanity checks, not claims" in text and "failed: Elastic_BCC / ensemble" in text
    assert rst_problems(text) == []


# ------------------------------------------------------------------------------ the study's pieces, one at a time
def test_quantity_rows_subsets_metrics_and_calibration_on_known_values():
    from nnrds.studies.materials import quantity_rows
    from nnrds.uq.metrics import CURVE_LEVELS

    y = np.zeros(6)
    mu = np.array([1.0, -1.0, 3.0, -3.0, 0.5, -0.5])  # |error| / std = 1, 1, 3, 3, 0.5, 0.5
    sd = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    heldout = np.array([False, False, True, True, False, False])
    lab = {"dataset": "d", "split": "group", "method": "ensemble"}
    metrics, calib = quantity_rows(lab, "energy", mu, sd, y, heldout)
    m = {r["subset"]: r for r in metrics}
    assert list(m) == ["all", "in_distribution", "heldout"] and all(r["quantity"] == "energy" for r in metrics)
    assert m["heldout"]["mae"] == pytest.approx(3.0) and m["in_distribution"]["mae"] == pytest.approx(0.75)
    assert m["heldout"]["cov95"] == 0.0 and m["in_distribution"]["cov95"] == 1.0  # 1.96 std: 3 out, 1 and 0.5 in
    assert m["all"]["rmse"] == pytest.approx(np.sqrt(np.mean(mu**2)))
    assert len(calib) == 3 * len(CURVE_LEVELS) and list(calib[0])[:5] == [
        "dataset",
        "split",
        "method",
        "subset",
        "quantity",
    ]
    # no held-out flags (random split): subset all only; an empty subset is skipped
    metrics, _ = quantity_rows(lab, "forces", mu, sd, y, None)
    assert [r["subset"] for r in metrics] == ["all"]
    metrics, _ = quantity_rows(lab, "forces", mu, sd, y, np.zeros(6, bool))
    assert [r["subset"] for r in metrics] == ["all", "in_distribution"]


def test_prediction_table_caps_rows_with_a_sorted_seeded_subset():
    from nnrds.studies.materials import prediction_table

    n = 50
    items = {"config_id": np.arange(n) // 3, "group": np.array(["g"] * n), "heldout": np.zeros(n, bool)}
    y = np.arange(n, dtype=float)
    t = prediction_table({"quantity": "forces"}, items, y + 1, np.ones(n), np.ones(n), y, 7, np.random.default_rng(0))
    assert len(t) == 7 and t["target"].is_monotonic_increasing and set(t["target"]) <= set(y)
    assert (t["mean"] - t["target"] == 1).all() and (t["config_id"] == (t["target"] // 3).astype(int)).all()
    again = prediction_table(
        {"quantity": "forces"}, items, y + 1, np.ones(n), np.ones(n), y, 7, np.random.default_rng(0)
    )
    pd.testing.assert_frame_equal(t, again)
    full = prediction_table({"quantity": "forces"}, items, y, np.ones(n), np.ones(n), y, n, np.random.default_rng(0))
    assert len(full) == n


def test_train_bulk_volume_range_leaves_out_surfaces_and_gsf():
    from types import SimpleNamespace

    from nnrds.studies.materials import train_bulk_volume_range

    spec = DescriptorSpec()  # one element: only the groups decide
    train = SimpleNamespace(
        volume=torch.tensor([40.0, 80.0, 100.0, 36.0]),
        natoms=torch.tensor([4.0, 4.0, 4.0, 4.0]),
        groups=["strain", "surf111", "GSF_110", "md300K"],
    )
    assert train_bulk_volume_range(train, spec, None) == (9.0, 10.0)
    train.groups = ["Surface", "surf100", "GSF_112", "surf111"]
    lo, hi = train_bulk_volume_range(train, spec, None)
    assert np.isnan(lo) and np.isnan(hi)


def test_prepare_split_names_the_config_key_of_an_unknown_heldout_group():
    from types import SimpleNamespace

    from nnrds.studies.materials import prepare_split

    data = SimpleNamespace(groups=["a", "b"] * 5, subset=lambda idx: list(idx))
    sp = prepare_split("al_emt", {"heldout_groups": ["b"]}, "group", {"test_fraction": 0.2}, data, 0)
    assert sp.name == "group" and sp.heldout.sum() == 5 and len(sp.train) + len(sp.test) == 10
    with pytest.raises(ValueError, match=r"materials\.al_emt\.heldout_groups: held-out groups \['zz'\]"):
        prepare_split("al_emt", {"heldout_groups": ["zz"]}, "group", {"test_fraction": 0.2}, data, 0)


def test_caption_pieces_on_known_tables():
    from nnrds.studies import materials

    assert materials._caption_ev(None) == [] and materials._caption_ev(pd.DataFrame()) == []
    info = pd.DataFrame([{"dataset": "al_emt", "split": "group", "n_train": 8, "n_test": 4, "n_heldout": 2}])
    assert materials._caption_splits(info) == [
        "* **al_emt / group split**: 8 training, 4 test configurations (2 in held-out groups; time-correlated MD "
        "groups on one side only)."
    ]
    cv = pd.DataFrame([{"dataset": "fitsnap", "split": "cv", "n_train": 8, "n_test": 10, "n_heldout": 0, "folds": 5}])
    assert (
        "5-fold cross-validation" in materials._caption_splits(cv)[0]
        and "of the 10 configurations" in (materials._caption_splits(cv)[0])
    )
    assert materials._caption_datasets({"al_emt": "Al"}, info) == ["Datasets: *al_emt*: Al."]
    info["elements"], info["reference_energies_eV"] = "Be W", json.dumps({"Be": -3.75, "W": -12.9})
    lines = materials._caption_datasets({"wbe": "W-Be"}, info)
    assert len(lines) == 3 and "al_emt: Be -3.750 eV, W -12.900 eV" in lines[1] and lines[2] == ""
    metrics = pd.DataFrame(
        [
            {
                "dataset": "d",
                "split": sp,
                "method": "ensemble",
                "subset": sub,
                "quantity": "energy",
                "rmse": 0.01234,
                "cov95": 0.9,
                "spearman_std_abs_err": float("nan"),
            }
            for sp, sub in (("random", "all"), ("group", "all"), ("group", "heldout"))
        ]
    )
    lines = materials._caption_metrics(metrics)
    assert len(lines) == 2 and "group / ensemble / heldout: energy RMSE 0.0123 eV/atom" in lines[0]
    assert "ρ(std,|err|) nan" in lines[1]


def test_fcc_ev_structures_are_emt_labelled_with_a_minimum_near_a0():
    from nnrds.data.al_emt import A0, fcc_ev_structures

    grid = np.linspace(3.85, 4.25, 9)
    ev = fcc_ev_structures(grid)
    assert [s.config_id for s in ev] == list(range(9)) and {s.group for s in ev} == {"ev_fcc"}
    np.testing.assert_allclose([s.volume / s.natoms for s in ev], grid**3 / 4)
    e = np.array([s.energy / s.natoms for s in ev])
    assert abs(grid[np.argmin(e)] - A0) <= 0.05 and e[0] > e.min() and e[-1] > e.min()


def test_table_columns_of_one_configuration():
    from nnrds.potentials.structures import atoms_frame, cell_columns, stress_columns

    st = stress_columns(np.arange(6.0))
    assert (
        list(st) == [f"stress_{k}_eV_A3" for k in ("xx", "yy", "zz", "yz", "xz", "xy")] and st["stress_xy_eV_A3"] == 5.0
    )
    with pytest.raises(ValueError):
        stress_columns(np.arange(5.0))
    cell = np.arange(9.0).reshape(3, 3)
    cc = cell_columns(cell)
    assert len(cc) == 9 and cc["cell_ax_A"] == 0.0 and cc["cell_bz_A"] == 5.0 and cc["cell_cy_A"] == 7.0
    pos, frc = np.arange(6.0).reshape(2, 3), -np.arange(6.0).reshape(2, 3)
    a = atoms_frame(7, ["Al", "Cu"], pos, frc)
    assert a.atom.tolist() == [0, 1] and (a.config_id == 7).all() and a.species.tolist() == ["Al", "Cu"]
    np.testing.assert_array_equal(a[["x_A", "y_A", "z_A"]].to_numpy(), pos)
    np.testing.assert_array_equal(a[["fx_eV_A", "fy_eV_A", "fz_eV_A"]].to_numpy(), frc)


def test_al_emt_tables_reject_heldout_groups_that_are_not_generated():
    from nnrds.data import al_emt

    conf, atoms, meta = al_emt.tables(
        {"n_configs": 14, "md_temperatures": [300], "md_steps": 2, "heldout_groups": ["surf111"]}, seed=0
    )
    assert meta["n_configs"] == len(conf) == 14 and meta["generator"] == {
        "n_configs": 14,
        "md_temperatures": [300],
        "md_steps": 2,
    }
    with pytest.raises(ValueError, match=r"heldout_groups \['md900K'\] are not generated"):
        al_emt.tables({"n_configs": 14, "md_temperatures": [300], "md_steps": 2, "heldout_groups": ["md900K"]}, seed=0)


def test_fitsnap_reading_flips_the_stress_sign_filters_and_drops_unchecked_stress(tmp_path):
    from nnrds.data import fitsnap

    structs = []
    for k, (g, n) in enumerate([("A", 2), ("A", 2), ("B", 2), ("B", 5), ("EOS", 2), ("EOS", 2)]):
        structs.append(
            Structure(
                4 * np.random.default_rng(k).random((n, 3)),
                np.eye(3) * 5.0,
                ["Ta"] * n,
                energy=-10.0 * n + (2.0 if k == 1 else 0.0),
                forces=np.full((n, 3), 0.1 * k),
                stress=np.full(6, 0.01 * (k + 1)),
                group=g,
                config_id=k,
            )
        )
    conf, atoms = to_tables(structs)
    conf["stress_unit_status"] = ["checked", "noisy", "unchecked", "checked", "checked", "checked"]
    conf.to_csv(tmp_path / "configs.csv", index=False)
    atoms.to_csv(tmp_path / "atoms.csv", index=False)
    spec = {"kind": "fitsnap", "max_natoms": 4, "ev_group": "EOS", "stress_label_status": ["checked", "noisy"]}
    pool, ev = fitsnap.load_structures(spec, str(tmp_path))
    assert [s.config_id for s in pool] == [0, 1, 2, 4, 5] and [s.config_id for s in ev] == [4, 5]  # 3: 5 atoms
    np.testing.assert_allclose(pool[0].stress, -0.01)  # pressure sign -> ASE sign
    np.testing.assert_allclose(pool[2].stress, 0.0)  # unit unchecked: no stress label
    pool, _ = fitsnap.load_structures({**spec, "max_force": 0.15, "ev_group": None}, str(tmp_path))
    assert [s.config_id for s in pool] == [0, 1]
    # config 1 is 1 eV/atom above the others: 0.83 eV/atom from the fitted reference, the others 0.17
    np.testing.assert_allclose(fitsnap.energy_deviation(conf, atoms), [1 / 6] + [5 / 6] + [1 / 6] * 4)
    pool, _ = fitsnap.load_structures({**spec, "max_energy_deviation": 0.5}, str(tmp_path))
    assert [s.config_id for s in pool] == [0, 2, 4, 5]
    with pytest.raises(ValueError, match=r"materials\.fitsnap\.ev_group 'Liquid' has no configuration"):
        fitsnap.load_structures({**spec, "ev_group": "Liquid"}, str(tmp_path))


# ------------------------------------------------------------------------------ commands (one convention)
def test_summary_input_folders_are_told_apart_by_their_files(tmp_path):
    from nnrds.commands.materials import REFERENCE_TABLE, input_folders

    dirs = {}
    for name, files in {
        "cell_a": ["metrics.csv", "provenance.json"],
        "ref": [REFERENCE_TABLE, "other.csv"],
        "cell_b": ["metrics.csv"],
        "ta": ["metadata.json", "provenance.json"],
    }.items():
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
        for f in files:
            (dirs[name] / f).write_text("x")
    cells, ref, data = input_folders([str(dirs[k]) for k in ("cell_a", "cell_b", "ref", "ta")])
    assert cells == [dirs["cell_a"], dirs["cell_b"]] and ref == dirs["ref"] and data == [dirs["ta"]]
    assert input_folders([str(dirs["cell_b"])]) == ([dirs["cell_b"]], None, [])


@pytest.mark.parametrize("column,ok", [("spearman_std_abs_err", True), ("rmse", False)])
def test_train_command_allows_only_its_nan_by_design_columns(tmp_path, column, ok):
    import argparse

    from nnrds import guards
    from nnrds.commands.common import cell_job
    from nnrds.commands.materials import NAN_BY_DESIGN

    args = argparse.Namespace(config_json={"torch_threads": 1, "study": {"seeds": [0]}}, out_dir=str(tmp_path))
    metrics = pd.DataFrame({"rmse": [0.1, 0.2], "spearman_std_abs_err": [0.5, 0.4]})
    metrics.loc[1, column] = float("nan")

    def run():
        with cell_job(args, "materials/al_emt", allow_nonfinite=NAN_BY_DESIGN) as out:
            out["metrics"], out["timings"] = metrics, pd.DataFrame({"device": ["cpu"]})

    if ok:
        run()
        assert (tmp_path / "metrics.csv").exists()
    else:
        with pytest.raises(guards.NonFiniteError, match="rmse"):
            run()
        assert not (tmp_path / "metrics.csv").exists()


def test_per_config_abs_error_on_known_values():
    from nnrds.studies.materials import per_config_abs_error

    c = pd.DataFrame(
        {"energy_err_eV_per_atom": [-0.2, 0.1], "force_abs_sum_eV_A": [3.0, 6.0], "n_force_components": [6, 12]}
    )
    np.testing.assert_allclose(per_config_abs_error(c, "energy"), [0.2, 0.1])
    np.testing.assert_allclose(per_config_abs_error(c, "forces"), [0.5, 0.5])


def test_shares_split_counts_in_proportion_with_the_remainder_first():
    from nnrds.data.al_emt import FAMILIES, shares

    assert shares(10, np.ones(3)).tolist() == [4, 3, 3]
    assert shares(7, np.array([2.0, 1.0, 1.0])).tolist() == [4, 2, 1]
    assert shares(14, np.ones(len(FAMILIES))).sum() == 14 and shares(0, np.ones(2)).tolist() == [0, 0]


def test_group_unit_row_decides_the_stored_unit_on_known_ratios():
    from nnrds.data.stress_units import MIN_PAIRS, group_unit_row

    rng = np.random.default_rng(0)
    kbar = group_unit_row("eos", "Be2", "bar", 8, 8, 1000 * (1 + 0.02 * rng.standard_normal(12)))
    assert kbar["unit"] == "kbar" and kbar["status"] == "checked" and kbar["ratio"] == pytest.approx(1.0, abs=0.05)
    same = group_unit_row("eos", "Be2", "bar", 8, 8, 1 + 0.02 * rng.standard_normal(12))
    assert same["unit"] == "bar" and same["status"] == "checked" and same["note"] == "declared unit confirmed"
    none = group_unit_row("md", "Be2", "bar", 8, 0, np.zeros(0))
    assert none["status"] == "unchecked" and "no stress labels" in none["note"]
    few = group_unit_row("md", "Be2", "bar", 8, 8, np.ones(MIN_PAIRS - 1))
    assert few["status"] == "unchecked" and few["unit"] == "bar"
