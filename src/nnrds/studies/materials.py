"""Materials UQ study: interatomic potentials with uncertainty (energies, forces, stresses).

One *cell* = one (dataset, split). It trains a per-atom WP-ResNet potential (:mod:`nnrds.materials`; one
network per element, per-element descriptor standardization and least-squares reference energies) as a
deep ensemble (one replica per entry of ``seeds`` of one :class:`~nnrds.models.ReplicaNet`, different seeds, trained at once
by :func:`nnrds.train.fit`), then Bayes-by-backprop (:func:`nnrds.uq.bbb.run_bbb`, mean-field Normal over
the weights of all element networks, warm-started at ensemble member 0, Gaussian likelihood of energy/atom, force components and
stress components with noise stds = that member's training RMSEs), and evaluates both on the test
configurations and along an E-V curve.

Datasets (all in the tidy tables of :mod:`nnrds.data.acquire`):
* ``al_emt``: Al configurations labelled with ASE's EMT (a *substitute* for the program's non-public Al DFT set).
* ``fitsnap``: a FitSNAP DFT set (Ta_Linear_JCP2014). FitSNAP stores stress with the pressure sign
  (positive under compression, VASP's convention); it is flipped to sigma = (1/V) dE/deps on loading.
* ``wbe``: the FitSNAP W-Be DFT set (WBe_PRB2019, Wood et al. 2019; binary, 25 422 configurations), read
  like ``fitsnap``, optionally filtered (``max_energy_deviation`` from the composition reference,
  ``max_force``, ``max_natoms``) and subsampled (``max_configs``, per group in proportion to its size,
  at least ``min_per_group``; seeded by the config seed). Its E-V curve is every configuration of
  ``ev_group`` that passed the filters, subsampled or not.
FitSNAP writes six exact zeros as the stress of configurations whose DFT run computed none (most MD,
surface and defect groups of W-Be): those configurations carry no stress label (``AtomsData.has_stress``)
and enter neither the stress loss nor the stress metrics.

Splits: ``random`` (a random ``test_fraction`` of all configurations) and ``group`` (the configuration
families ``heldout_groups`` held out entirely = *held-out*, plus a random ``test_fraction`` of the other
families = *in-distribution*). Training loss per replica (units normalised by the training set's std of each
target): w_E mse(E/atom) + w_F mse(F components) + w_S mse(stress components).
Predictive distribution of both methods: Gaussian, mean = mean over members / posterior draws, variance =
their variance (epistemic) + the training residual variance of the quantity (aleatoric / model error).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import materials as M
from ..models import Arch, ReplicaNet
from ..train import fit, pick_device, seed_everything
from ..uq.metrics import CURVE_LEVELS

QUANTITIES = ("energy", "forces", "stress")
UNITS = {"energy": "eV/atom", "forces": "eV/A", "stress": "eV/A^3"}
LEVELS = (0.5, 0.9, 0.95)
METRIC_COLUMNS = ["dataset", "split", "method", "subset", "quantity", "n", "mae", "rmse", "nll", "mean_std",
                  "cov50", "cov90", "cov95", "spearman_std_abs_err"]
DESCRIPTIONS = {
    "al_emt": "Al-EMT, aluminium configurations generated with ASE and labelled with ASE's EMT potential "
              "(substitute for the program's non-public Al DFT set)",
    "fitsnap": "FitSNAP Ta_Linear_JCP2014 DFT set (Thompson et al. 2015), E-V curve from its Volume_BCC group",
    "wbe": "FitSNAP WBe_PRB2019 DFT set (real DFT, Wood et al. PRB 2019; tungsten-beryllium, one network per "
           "element), subsampled; E-V curve from its EOS_HCP group (hcp Be)",
}
FITSNAP_KINDS = ("fitsnap", "wbe")


# ============================================================================ data
def generate_tables(spec: dict, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Al-EMT tables (configs, atoms, metadata) from the dataset spec."""
    keys = ("repeat", "strain_max", "shear_max", "rattle_std", "md_temperatures", "md_steps", "slab_layers", "vacuum")
    structs = M.generate_al_emt(spec["n_configs"], seed=seed, **{k: spec[k] for k in keys if k in spec})
    heldout = [g for g in spec.get("heldout_groups", []) if g not in {s.group for s in structs}]
    if heldout:
        raise ValueError(f"al_emt.heldout_groups {heldout} are not generated; groups: "
                         f"{sorted({s.group for s in structs})}")
    conf, atoms = M.to_tables(structs)
    meta = {"dataset": "al_emt", "description": DESCRIPTIONS["al_emt"], "n_configs": len(conf),
            "n_atoms": int(conf["natoms"].sum()), "seed": seed,
            "groups": {g: int(c) for g, c in conf["group"].value_counts().sort_index().items()},
            "units": {"energy": "eV (total)", "forces": "eV/A", "positions": "A",
                      "stress": "eV/A^3, sigma = (1/V) dE/deps (ASE sign)"},
            "generator": {k: v for k, v in spec.items() if k not in ("kind", "heldout_groups")}}
    return conf, atoms, meta


def _energy_deviation(conf: pd.DataFrame, atoms: pd.DataFrame) -> np.ndarray:
    """|E/N - composition reference| per configuration (eV/atom), reference fitted on all rows."""
    counts = atoms.groupby(["config_id", "species"]).size().unstack(fill_value=0).reindex(conf["config_id"])
    c = counts.to_numpy(float)
    ref = M.fit_reference_energies(c, conf["energy_eV"].to_numpy(float))
    return np.abs((conf["energy_eV"].to_numpy(float) - c @ ref) / c.sum(1))


def stratified_subsample(groups: np.ndarray, max_configs: int, min_per_group: int, seed: int) -> np.ndarray:
    """Sorted positions of about ``max_configs`` rows: every group its proportional share (floor), at least
    ``min_per_group`` (or all of a smaller group); seeded."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups)
    n = len(groups)
    pick = []
    for g in sorted(set(groups.tolist())):
        idx = np.flatnonzero(groups == g)
        k = min(len(idx), max(min_per_group, int(max_configs * len(idx) / n)))
        pick.append(rng.choice(idx, k, replace=False))
    return np.sort(np.concatenate(pick)) if pick else np.zeros(0, int)


def load_structures(spec: dict, data_dir: str, seed: int = 0) -> tuple[list[M.Structure], list[M.Structure] | None]:
    """(training pool, E-V configurations of a FitSNAP set or None) of one dataset (module docstring)."""
    d = Path(data_dir)
    conf, atoms = pd.read_csv(d / "configs.csv"), pd.read_csv(d / "atoms.csv")
    if spec["kind"] not in FITSNAP_KINDS:
        return M.from_tables(conf, atoms), None
    keep = np.ones(len(conf), bool)
    if spec.get("max_natoms"):
        keep &= conf["natoms"].to_numpy() <= spec["max_natoms"]
    if spec.get("max_energy_deviation") is not None:
        keep &= _energy_deviation(conf, atoms) <= spec["max_energy_deviation"]
    if spec.get("max_force") is not None:
        fmax = atoms[["fx_eV_A", "fy_eV_A", "fz_eV_A"]].abs().max(axis=1).groupby(atoms["config_id"]).max()
        keep &= fmax.reindex(conf["config_id"]).to_numpy() <= spec["max_force"]
    pool = keep.copy()
    if spec.get("max_configs") and spec["max_configs"] < keep.sum():
        kept = np.flatnonzero(keep)
        sel = stratified_subsample(conf["group"].to_numpy()[kept], spec["max_configs"],
                                   spec.get("min_per_group", 1), seed)
        pool = np.zeros(len(conf), bool)
        pool[kept[sel]] = True
    ev = np.zeros(len(conf), bool)
    if spec.get("ev_group"):
        ev = keep & (conf["group"].to_numpy() == spec["ev_group"])
        if not ev.any():
            raise ValueError(f"materials.{spec['kind']}.ev_group {spec['ev_group']!r} has no configuration in "
                             f"{data_dir} (after the filters); groups: {sorted(set(conf['group']))}")
    need = pool | ev
    sub = conf[need]
    structs = M.from_tables(sub, atoms[atoms["config_id"].isin(sub["config_id"])])
    for s in structs:
        s.stress = -s.stress  # FitSNAP/VASP pressure sign -> ASE sign
    return ([s for s, m in zip(structs, pool[need]) if m], [s for s, m in zip(structs, ev[need]) if m])


def make_split(groups: list[str], split: str, heldout: list[str], test_fraction: float, seed: int):
    """(train positions, test positions, held-out flag of each test position)."""
    rng = np.random.default_rng(seed)
    g = np.asarray(groups)
    n = len(g)
    if split == "random":
        perm = rng.permutation(n)
        nt = max(1, int(round(test_fraction * n)))
        return np.sort(perm[nt:]), np.sort(perm[:nt]), np.zeros(nt, bool)
    if split != "group":
        raise ValueError(f"unknown split {split!r}; expected random or group")
    missing = [h for h in heldout if h not in set(groups)]
    if missing:
        raise ValueError(f"held-out groups {missing} not in the dataset's groups {sorted(set(groups))}")
    ood = np.isin(g, heldout)
    ind = np.flatnonzero(~ood)
    perm = rng.permutation(ind)
    nt = max(1, int(round(test_fraction * len(ind))))
    test = np.concatenate([np.sort(perm[:nt]), np.flatnonzero(ood)])
    return np.sort(perm[nt:]), test, ood[test]


# ============================================================================ model and training
def per_quantity(pred: dict, data: M.AtomsData) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(prediction (S, n), target (n,)) per quantity: energy per atom, force components, stress components
    (of the configurations with a stress label only; n may then be 0)."""
    nat = data.natoms.to(pred["energy"])
    out = {"energy": (pred["energy"] / nat, (data.energy / data.natoms).to(pred["energy"]))}
    if "forces" in pred:
        out["forces"] = (pred["forces"].flatten(1), data.forces.to(pred["forces"]).flatten())
    if "stress" in pred:
        p, y = pred["stress"], data.stress.to(pred["stress"])
        if data.has_stress is not None and not bool(data.has_stress.all()):
            p, y = p[:, data.has_stress], y[data.has_stress]
        out["stress"] = (p.flatten(1), y.flatten())
    return out


def make_potential(study: dict, spec: M.DescriptorSpec, train: M.AtomsData, seeds, dtype) -> tuple[M.Potential, dict]:
    """One ReplicaNet per element (replica r of element k seeded seeds[r] + 100003 k), descriptors standardized
    per element, reference energies by least squares on composition (one element: the mean energy per atom),
    loss scales: std of the residual energy per atom, RMS force, std of the labelled stress components."""
    a = study["net"]
    arch = Arch(d_in=spec.n_descriptors, d_out=1, width=a["width"], depth=a["depth"], param=a["param"],
                degree=a.get("degree", 0), T=a.get("T", 1.0), activation=a.get("activation", "tanh"))
    ne = spec.n_elements
    nets = [ReplicaNet(arch, [s + 100003 * k for s in seeds], dtype=dtype) for k in range(ne)]
    epa = train.energy / train.natoms
    if ne == 1:
        e_ref, resid = [float(epa.mean())], epa
        g_mean, g_std = train.G.mean(0), train.G.std(0).clamp_min(1e-6)
    else:
        counts = train.composition(ne)
        e_ref = M.fit_reference_energies(counts.cpu().numpy(), train.energy.double().cpu().numpy())
        resid = epa - (counts @ torch.as_tensor(e_ref, dtype=torch.float64)).to(epa) / train.natoms
        few = [spec.elements[k] for k in range(ne) if int((train.elem == k).sum()) < 2]
        if few:
            raise ValueError(f"elements {few} have fewer than 2 atoms in the training set")
        g_mean = torch.stack([train.G[train.elem == k].mean(0) for k in range(ne)])
        g_std = torch.stack([train.G[train.elem == k].std(0).clamp_min(1e-6) for k in range(ne)])
    st = train.stress if bool(train.has_stress.all()) else train.stress[train.has_stress]
    scales = {"energy": float(resid.std().clamp_min(1e-3)), "forces": float(train.forces.pow(2).mean().sqrt().clamp_min(1e-3)),
              "stress": float(st.std().clamp_min(1e-5)) if st.numel() > 1 else 1.0}
    pot = M.Potential(nets, spec, g_mean, g_std, e_ref, scales["energy"])
    return pot, scales


def weighted_loss(pred: dict, data: M.AtomsData, scales: dict, weights: dict) -> torch.Tensor:
    """sum_q w_q mean((pred_q - y_q)^2) / scale_q^2, per replica (R,)."""
    loss = 0.0
    for q, (p, y) in per_quantity(pred, data).items():
        if y.numel():
            loss = loss + weights[q] * ((p - y) / scales[q]).pow(2).mean(1)
    return loss


def _needs(weights):
    return {"forces": weights["forces"] > 0, "stress": weights["stress"] > 0}


def train_ensemble(pot: M.Potential, train: M.AtomsData, study: dict, scales: dict, seed: int):
    w = study["loss_weights"]
    idx = torch.arange(train.n_configs).reshape(-1, 1)

    def loss_fn(net, xb, yb):
        sub = train if len(xb) == train.n_configs else train.subset(xb[:, 0])
        pred = net.predict(sub, create_graph=torch.is_grad_enabled(), **_needs(w))
        return weighted_loss(pred, sub, scales, w)

    return fit(pot, idx, idx, epochs=study["epochs"], lr=study["lr"], batch_size=study["batch_size"],
               l2=study["l2"], seed=seed, loss_fn=loss_fn, log_every=max(1, study["epochs"] // 10))


def residual_noise(pot: M.Potential, data: M.AtomsData, atomic=None, n=None) -> dict[str, np.ndarray]:
    """Training RMSE per quantity for every replica / draw, shape (S,)."""
    with torch.no_grad():
        pred = pot.predict(data, atomic=atomic, n=n)
    return {q: (p - y).pow(2).mean(1).sqrt().detach().cpu().numpy() for q, (p, y) in per_quantity(pred, data).items()
            if y.numel()}


def train_bbb(pot: M.Potential, train: M.AtomsData, study: dict, noise: dict, seed: int):
    """Bayes-by-backprop over the weights of all element networks jointly (one mean-field posterior over
    their concatenated weights, :class:`nnrds.uq.bbb.BayesNetStack`), warm-started at ensemble member 0."""
    from ..uq.bbb import BayesNetStack, run_bbb
    from ..uq.model import BayesNet, NetSpec

    b = study["bbb"]
    stack = BayesNetStack([BayesNet(NetSpec.from_arch(net.arch, prior_scale=b["prior_scale"], bias_scale=b["prior_scale"]),
                                    dtype=pot.dtype) for net in pot.nets])
    init = stack.flat_from_nets(pot.nets)[0]
    w = study["loss_weights"]
    shells = [ReplicaNet(net.arch, [0], dtype=pot.dtype).to(init.device) for net in pot.nets]

    def nll(theta, idx):
        sub = M.AtomsData.subset(train, idx)
        pred = pot.predict(sub, atomic=lambda X, k: stack.forward_part(k, theta, X, shells[k]), n=theta.shape[0],
                           create_graph=True, **_needs(w))
        out = 0.0
        for q, (p, y) in per_quantity(pred, sub).items():
            if w[q] > 0 and y.numel():
                out = out + w[q] * 0.5 * ((p - y) / noise[q]).pow(2).sum(1)
        return out

    post = run_bbb(stack, nll, train.n_configs, init_theta=init, epochs=b["epochs"], lr=b["lr"],
                   batch_size=study["batch_size"], particles=b["particles"], init_scale=b["init_scale"],
                   kl_weight=b["kl_weight"], seed=seed, log_every=max(1, b["epochs"] // 10))
    gen = torch.Generator().manual_seed(seed + 11)
    theta, _ = post.draw(b["n_samples"], gen)
    theta = theta.to(init.device)

    def atomic(X, k):
        return stack.forward_part(k, theta, X, shells[k])

    return post, atomic, theta.shape[0]


# ============================================================================ evaluation
def gaussian_metrics(mu, sd, y) -> dict:
    err = mu - y
    z = np.abs(err) / sd
    out = {"n": len(y), "mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2))),
           "nll": float(np.mean(0.5 * np.log(2 * np.pi * sd**2) + 0.5 * z**2)), "mean_std": float(np.mean(sd))}
    for l in LEVELS:
        out[f"cov{int(round(100 * l))}"] = float(np.mean(z <= stats.norm.ppf(0.5 + l / 2)))
    out["spearman_std_abs_err"] = float(stats.spearmanr(sd, np.abs(err))[0]) if len(y) > 2 and np.ptp(sd) > 0 else float("nan")
    return out


def predictive(pot, data, atomic, n, noise_var: dict) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(mean, total std, epistemic std, target) per quantity."""
    pred = pot.predict(data, atomic=atomic, n=n)
    out = {}
    for q, (p, y) in per_quantity(pred, data).items():
        p = p.detach().cpu().numpy().astype(float)
        epi = p.std(0)
        if len(y):
            out[q] = (p.mean(0), np.sqrt(epi**2 + noise_var.get(q, 0.0)), epi, y.detach().cpu().numpy().astype(float))
    return out


def item_labels(data: M.AtomsData, ood_cfg: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per quantity: config id, group and held-out flag of every item (force components and stress comps)."""
    cid, grp = np.asarray(data.config_ids), np.asarray(data.groups)
    acfg = data.atom_cfg.cpu().numpy()
    hs = np.ones(len(cid), bool) if data.has_stress is None else data.has_stress.cpu().numpy()
    return {"energy": {"config_id": cid, "group": grp, "heldout": ood_cfg},
            "forces": {k: np.repeat(v[acfg], 3) for k, v in (("config_id", cid), ("group", grp), ("heldout", ood_cfg))},
            "stress": {k: np.repeat(v[hs], 6) for k, v in (("config_id", cid), ("group", grp), ("heldout", ood_cfg))}}


def ev_structures(dspec: dict, ev_pool: list[M.Structure] | None, study: dict) -> list[M.Structure]:
    if dspec["kind"] == "al_emt":
        from ase.build import bulk
        from ase.calculators.emt import EMT

        e = study["ev"]
        out = []
        for k, a in enumerate(np.linspace(e["a_min"], e["a_max"], e["n_points"])):
            at = bulk("Al", "fcc", a=float(a), cubic=True)
            at.calc = EMT()
            out.append(M.from_atoms(at, group="ev_fcc", config_id=k))
        return out
    return ev_pool or []


def run_cell(dataset: str, dspec: dict, study: dict, data_dir: str, *, base_seed: int = 0, device: str = "auto",
             dtype: str = "float32") -> dict[str, pd.DataFrame]:
    """Every split of one dataset (descriptors built once): tables metrics, predictions, calibration, ev,
    history, info, timings."""
    dev = pick_device(device)
    structs, ev_pool = load_structures(dspec, data_dir, base_seed)
    elements = tuple(sorted({x for s in structs for x in s.species}))
    spec = M.DescriptorSpec.from_dict({**study["descriptors"], **dspec.get("descriptors", {}), "elements": elements})
    t0 = time.perf_counter()
    tdt = getattr(torch, dtype)
    data = M.build_dataset(structs, spec).to(dev, tdt)
    ev_s = ev_structures(dspec, ev_pool, study)
    ev_data = M.build_dataset(ev_s, spec).to(dev, tdt) if ev_s else None
    t_desc = time.perf_counter() - t0
    tables: dict[str, list[pd.DataFrame]] = {}
    for split in study["splits"]:
        out = run_split(dataset, dspec, split, study, data, ev_data, spec, base_seed=base_seed, dtype=dtype)
        out["timings"]["descriptor_s"] = t_desc
        out["timings"]["device"] = str(dev)
        for k, v in out.items():
            tables.setdefault(k, []).append(v)
    return {k: pd.concat(v, ignore_index=True) for k, v in tables.items()}


def run_split(dataset: str, dspec: dict, split: str, study: dict, data: M.AtomsData, ev_data, spec, *,
              base_seed: int = 0, dtype: str = "float32") -> dict[str, pd.DataFrame]:
    """Train the ensemble and BBB on one split of a built dataset and evaluate them."""
    seed_everything(base_seed)
    tdt = getattr(torch, dtype)
    t_desc = 0.0
    try:
        tr_idx, te_idx, ood = make_split(data.groups, split, list(dspec.get("heldout_groups", [])),
                                         study["test_fraction"], base_seed)
    except ValueError as e:
        raise ValueError(f"materials.{dataset}.heldout_groups: {e}") from None
    train, test = data.subset(tr_idx), data.subset(te_idx)
    seeds = [1000 * base_seed + 7 + s for s in study["seeds"]]  # one ensemble member per seed
    pot, scales = make_potential(study, spec, train, seeds, tdt)
    pot = pot.to(data.G.device)
    t0 = time.perf_counter()
    res = train_ensemble(pot, train, study, scales, base_seed)
    t_ens = time.perf_counter() - t0
    pot.eval()
    noise_m = residual_noise(pot, train)  # (M,) per quantity
    history = [dict(h, method="ensemble") for h in res.history]
    methods = {"ensemble": (None, len(seeds), {q: float(np.mean(v**2)) for q, v in noise_m.items()})}
    t_bbb = 0.0
    if study["bbb"]["enabled"]:
        noise0 = {q: max(float(v[0]), 1e-6) for q, v in noise_m.items()}
        t0 = time.perf_counter()
        post, atomic, S = train_bbb(pot, train, study, noise0, base_seed)
        t_bbb = time.perf_counter() - t0
        history += [dict(h, method="bbb") for h in post.info["history"]]
        methods["bbb"] = (atomic, S, {q: v**2 for q, v in noise0.items()})

    labels = item_labels(test, ood)
    metrics, preds, calib, ev_rows = [], [], [], []
    rng = np.random.default_rng(base_seed)
    for name, (atomic, S, nv) in methods.items():
        pr = predictive(pot, test, atomic, S, nv)
        for q, (mu, sd, epi, y) in pr.items():
            lab = labels[q]
            subsets = {"all": np.ones(len(y), bool)}
            if split == "group":
                subsets.update({"in_distribution": ~lab["heldout"], "heldout": lab["heldout"]})
            for sname, m in subsets.items():
                if m.sum() == 0:
                    continue
                metrics.append({"dataset": dataset, "split": split, "method": name, "subset": sname, "quantity": q,
                                **gaussian_metrics(mu[m], sd[m], y[m])})
                z = np.abs(mu[m] - y[m]) / sd[m]
                calib += [{"dataset": dataset, "split": split, "method": name, "subset": sname, "quantity": q,
                           "level": float(l), "observed": float(np.mean(z <= stats.norm.ppf(0.5 + l / 2)))}
                          for l in CURVE_LEVELS]
            keep = np.arange(len(y))
            cap = study["max_prediction_rows"]
            if len(keep) > cap:
                keep = np.sort(rng.choice(len(y), cap, replace=False))
            preds.append(pd.DataFrame({"dataset": dataset, "split": split, "method": name, "quantity": q,
                                       "config_id": lab["config_id"][keep], "group": lab["group"][keep],
                                       "heldout": lab["heldout"][keep], "target": y[keep], "mean": mu[keep],
                                       "std": sd[keep], "std_epistemic": epi[keep]}))
        if ev_data is not None:
            pe = pot.predict(ev_data, atomic=atomic, n=S, forces=False, stress=False)["energy"]
            e = (pe / ev_data.natoms.to(pe)).detach().cpu().numpy().astype(float)
            vol = (ev_data.volume / ev_data.natoms).cpu().numpy()
            ref = (ev_data.energy / ev_data.natoms).cpu().numpy()
            for k in np.argsort(vol, kind="stable"):
                ev_rows.append({"dataset": dataset, "split": split, "method": name, "volume_A3_per_atom": vol[k],
                                "energy_ref_eV_per_atom": ref[k], "energy_mean_eV_per_atom": e[:, k].mean(),
                                "energy_std_epistemic": e[:, k].std(),
                                "energy_std_total": float(np.sqrt(e[:, k].var() + nv["energy"]))})
    train_range = (train.volume / train.natoms).cpu().numpy()
    bulk_mask = np.array([not ("surf" in g.lower() or g.startswith("GSF")) for g in train.groups])  # no vacuum
    ne = spec.n_elements
    if ne > 1 and ev_data is not None:  # the E-V curve's elements only (e.g. pure Be for hcp Be)
        ev_el = (ev_data.composition(ne) > 0).any(0).cpu()
        bulk_mask &= ((train.composition(ne) > 0).cpu() == ev_el).all(1).numpy()
    timings = pd.DataFrame([{"dataset": dataset, "split": split, "n_train": train.n_configs,
                             "n_test": test.n_configs, "n_train_atoms": int(train.natoms.sum()),
                             "descriptor_s": t_desc, "ensemble_s": t_ens, "bbb_s": t_bbb, "members": len(seeds),
                             "epochs": study["epochs"], "bbb_epochs": study["bbb"]["epochs"] if study["bbb"]["enabled"] else 0}])
    info = pd.DataFrame([{"dataset": dataset, "split": split, "n_configs": data.n_configs, "n_train": train.n_configs,
                          "n_test": test.n_configs, "n_heldout": int(ood.sum()),
                          "train_bulk_volume_min": float(train_range[bulk_mask].min()) if bulk_mask.any() else np.nan,
                          "train_bulk_volume_max": float(train_range[bulk_mask].max()) if bulk_mask.any() else np.nan,
                          "n_descriptors": spec.n_descriptors, "n_params_per_net": pot.nets[0].arch.n_params(),
                          "scales": json.dumps(scales)}])
    if ne > 1:  # per-element networks: which elements, their least-squares reference energies
        info["elements"] = " ".join(spec.elements)
        info["reference_energies_eV"] = json.dumps(dict(zip(spec.elements, pot.e_ref)))
    return {"metrics": pd.DataFrame(metrics, columns=METRIC_COLUMNS), "predictions": pd.concat(preds, ignore_index=True),
            "calibration": pd.DataFrame(calib), "ev": pd.DataFrame(ev_rows), "history": pd.DataFrame(history),
            "info": info, "timings": timings}


# ============================================================================ summary
def caption(metrics: pd.DataFrame, info: pd.DataFrame, timings: pd.DataFrame, scale: str, study: dict,
            notes: dict[str, str]) -> str:
    a = study["net"]
    lines = [
        f"Materials UQ (interatomic potentials), **{scale}** scale. Per-atom WP-ResNet ({a['param']}, width "
        f"{a['width']}, depth {a['depth']}) on Behler–Parrinello G2/G4 descriptors (cutoff "
        f"{study['descriptors']['cutoff']} Å); E = Σ atomic energies, forces = −∂E/∂R and stress = (1/V) ∂E/∂ε by "
        f"autograd. Deep ensemble of {len(study['seeds'])} members ({study['epochs']} epochs of Adam, lr {study['lr']}, "
        f"loss weights E/F/S {study['loss_weights']['energy']}/{study['loss_weights']['forces']}/"
        f"{study['loss_weights']['stress']}) and Bayes-by-backprop (mean-field, {study['bbb']['epochs']} epochs, "
        f"{study['bbb']['n_samples']} posterior draws), both with the training residual variance added. "
        "Error bars and bands: ±2 predictive std.",
        "",
        "Datasets: " + "; ".join(f"*{k}*: {v}" for k, v in notes.items()) + ".",
        "",
    ]
    if "elements" in info and info["elements"].notna().any():
        multi = info[info["elements"].notna()].drop_duplicates("dataset")
        per = "; ".join(f"{r.dataset}: " + ", ".join(f"{e} {v:.3f} eV" for e, v in json.loads(r.reference_energies_eV).items())
                        for r in multi.itertuples())
        lines[-1:-1] = [
            "Multi-element sets: element-resolved descriptors (G2 per neighbour element, G4 per unordered neighbour-"
            "element pair), one network per element with its own descriptor standardization, the networks learn "
            "the residual to per-element reference energies fitted by least squares on composition (first split: "
            f"{per}); Bayes-by-backprop covers all element networks' weights jointly. Configurations whose stored "
            "stress is six exact zeros (no DFT stress) are left out of the stress loss and metrics.", ""]
    for r in info.itertuples():
        lines.append(f"* **{r.dataset} / {r.split} split**: {r.n_train} training, {r.n_test} test configurations "
                     f"({r.n_heldout} in held-out groups).")
    m = metrics[metrics.subset.isin(["all", "heldout", "in_distribution"])]
    for (ds, sp, meth, sub), g in m.groupby(["dataset", "split", "method", "subset"], sort=True):
        if sp == "group" and sub == "all":
            continue
        parts = []
        for q in QUANTITIES:
            x = g[g.quantity == q]
            if len(x):
                x = x.iloc[0]
                parts.append(f"{q} RMSE {x.rmse:.3g} {UNITS[q]}, 95% cov {x.cov95:.2f}, ρ(std,|err|) "
                             f"{x.spearman_std_abs_err:.2f}")
        lines.append(f"* {ds} / {sp} / {meth} / {sub}: " + "; ".join(parts) + ".")
    for ds, g in timings.groupby("dataset", sort=True):
        per = ", ".join(f"{r.split}: {r.n_train} configurations, {r.n_train_atoms} atoms" for r in g.itertuples())
        lines.append(f"* training sets ({ds}, {g.device.iloc[0]}): {per}; wall times per step in "
                     "results/materials/timings.csv (kept out of this caption so it is reproducible).")
    return "\n".join(lines) + "\n"
