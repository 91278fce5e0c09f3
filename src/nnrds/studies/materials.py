"""Materials UQ study: interatomic potentials with uncertainty (energies, forces, stresses).

One *cell* = one (dataset, split). It trains a per-atom WP-ResNet potential (:mod:`nnrds.potentials`; one
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
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import experiment, guards
from ..config import deep_merge
from ..data import al_emt, fitsnap
from ..models import Arch, ReplicaNet
from ..potentials.dataset import AtomsData, build_dataset
from ..potentials.descriptors import DescriptorSpec
from ..potentials.potential import Potential, fit_reference_energies
from ..potentials.structures import Structure, from_tables
from ..train import fit, pick_device, seed_everything
from ..uq.metrics import CURVE_LEVELS

log = logging.getLogger(__name__)

QUANTITIES = ("energy", "forces", "stress")
UNITS = {"energy": "eV/atom", "forces": "eV/A", "stress": "eV/A^3"}
LEVELS = (0.5, 0.9, 0.95)
METRIC_COLUMNS = [
    "dataset",
    "split",
    "method",
    "subset",
    "quantity",
    "n",
    "mae",
    "rmse",
    "nll",
    "mean_std",
    "cov50",
    "cov90",
    "cov95",
    "spearman_std_abs_err",
]
DESCRIPTIONS = {
    "al_emt": al_emt.DESCRIPTION,
    "fitsnap": "FitSNAP Ta_Linear_JCP2014 DFT set (Thompson et al. 2015), E-V curve from its Volume_BCC group",
    "wbe": "FitSNAP WBe_PRB2019 DFT set (real DFT, Wood et al. PRB 2019; tungsten-beryllium, one network per "
    "element), subsampled; E-V curve from its EOS_HCP group (hcp Be)",
}
FITSNAP_KINDS = ("fitsnap", "wbe")


# ============================================================================ data
def load_structures(spec: dict, data_dir: str, seed: int = 0) -> tuple[list[Structure], list[Structure] | None]:
    """(training pool, E-V configurations of a FitSNAP set or None) of one dataset: the Al-EMT tables as they
    are, a FitSNAP set filtered, subsampled and with its stress sign flipped (:mod:`nnrds.data.fitsnap`)."""
    if spec["kind"] in FITSNAP_KINDS:
        return fitsnap.load_structures(spec, data_dir, seed)
    d = Path(data_dir)
    return from_tables(pd.read_csv(d / "configs.csv"), pd.read_csv(d / "atoms.csv")), None


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
def per_quantity(pred: dict, data: AtomsData) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
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


def make_potential(study: dict, spec: DescriptorSpec, train: AtomsData, seeds, dtype) -> tuple[Potential, dict]:
    """One ReplicaNet per element (replica r of element k seeded seeds[r] + 100003 k), descriptors standardized
    per element, reference energies by least squares on composition (one element: the mean energy per atom),
    loss scales: std of the residual energy per atom, RMS force, std of the labelled stress components."""
    a = study["net"]
    arch = Arch(
        d_in=spec.n_descriptors,
        d_out=1,
        width=a["width"],
        depth=a["depth"],
        param=a["param"],
        degree=a.get("degree", 0),
        T=a.get("T", 1.0),
        activation=a.get("activation", "tanh"),
    )
    ne = spec.n_elements
    nets = [ReplicaNet(arch, [s + 100003 * k for s in seeds], dtype=dtype) for k in range(ne)]
    epa = train.energy / train.natoms
    if ne == 1:
        e_ref, resid = [float(epa.mean())], epa
        g_mean, g_std = train.G.mean(0), train.G.std(0).clamp_min(1e-6)
    else:
        counts = train.composition(ne)
        e_ref = fit_reference_energies(counts.cpu().numpy(), train.energy.double().cpu().numpy())
        resid = epa - (counts @ torch.as_tensor(e_ref, dtype=torch.float64)).to(epa) / train.natoms
        few = [spec.elements[k] for k in range(ne) if int((train.elem == k).sum()) < 2]
        if few:
            raise ValueError(f"elements {few} have fewer than 2 atoms in the training set")
        g_mean = torch.stack([train.G[train.elem == k].mean(0) for k in range(ne)])
        g_std = torch.stack([train.G[train.elem == k].std(0).clamp_min(1e-6) for k in range(ne)])
    st = train.stress if bool(train.has_stress.all()) else train.stress[train.has_stress]
    scales = {
        "energy": float(resid.std().clamp_min(1e-3)),
        "forces": float(train.forces.pow(2).mean().sqrt().clamp_min(1e-3)),
        "stress": float(st.std().clamp_min(1e-5)) if st.numel() > 1 else 1.0,
    }
    pot = Potential(nets, spec, g_mean, g_std, e_ref, scales["energy"])
    return pot, scales


def energy_config_weights(data: AtomsData, e_ref, tau: float | None) -> torch.Tensor | None:
    """Per-configuration weights of the energy loss, 1 / (1 + (d_b / tau)^2) with d_b the distance of the
    configuration's residual energy per atom (energy per atom minus its composition reference, the per-element
    reference energies) from the median residual of ``data``: near-equilibrium configurations (most of a set)
    count fully, strongly compressed ones (d_b >> tau, e.g. Ta's Volume_* groups, eV/atom away) are
    down-weighted so that they do not dominate the energy loss. None when ``tau`` is None (all weights 1)."""
    if tau is None:
        return None
    n_el = len(e_ref)
    ref = (
        data.composition(n_el)
        @ torch.as_tensor(np.asarray(e_ref, float), dtype=torch.float64, device=data.natoms.device)
    ) / data.natoms.double()
    d = data.energy.double() / data.natoms.double() - ref
    d = d - d.median()
    return (1.0 / (1.0 + (d / float(tau)) ** 2)).to(data.energy.dtype)


def weighted_loss(
    pred: dict, data: AtomsData, scales: dict, weights: dict, energy_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """sum_q w_q mean((pred_q - y_q)^2) / scale_q^2, per replica (R,); the energy term's mean weighted by
    ``energy_weights`` (per configuration, :func:`energy_config_weights`) when given."""
    loss = 0.0
    for q, (p, y) in per_quantity(pred, data).items():
        if y.numel():
            r = ((p - y) / scales[q]).pow(2)
            if q == "energy" and energy_weights is not None:
                cw = energy_weights.to(r)
                loss = loss + weights[q] * (r * cw).sum(1) / cw.sum()
            else:
                loss = loss + weights[q] * r.mean(1)
    return loss


def _needs(weights):
    return {"forces": weights["forces"] > 0, "stress": weights["stress"] > 0}


def lr_schedule(study: dict) -> list[tuple[int, float]]:
    """(epochs, learning rate) of every stage: ``lr_stages`` equal stages (the first takes the remainder), the
    learning rate multiplied by ``lr_decay`` from one stage to the next (Adam restarts at each stage)."""
    n, decay, epochs = int(study.get("lr_stages", 1)), float(study.get("lr_decay", 0.2)), int(study["epochs"])
    n = max(1, min(n, epochs))
    per = [epochs // n] * n
    per[0] += epochs - sum(per)
    return [(e, study["lr"] * decay**k) for k, e in enumerate(per)]


def train_ensemble(pot: Potential, train: AtomsData, study: dict, scales: dict, seed: int):
    """Every member at once through :func:`nnrds.train.fit`, in the stages of :func:`lr_schedule`; returns the
    last stage's FitResult with the history of all stages (epochs counted across stages)."""
    w = study["loss_weights"]
    idx = torch.arange(train.n_configs).reshape(-1, 1)
    cw = energy_config_weights(train, pot.e_ref, study.get("energy_weight_tau"))

    def loss_fn(net, xb, yb):
        full = len(xb) == train.n_configs
        sub = train if full else train.subset(xb[:, 0])
        pred = net.predict(sub, create_graph=torch.is_grad_enabled(), **_needs(w))
        return weighted_loss(pred, sub, scales, w, None if cw is None else (cw if full else cw[xb[:, 0]]))

    history, done, res = [], 0, None
    for k, (epochs, lr) in enumerate(lr_schedule(study)):
        res = fit(
            pot,
            idx,
            idx,
            epochs=epochs,
            lr=lr,
            batch_size=study["batch_size"],
            l2=study["l2"],
            seed=seed + k,
            loss_fn=loss_fn,
            log_every=max(1, epochs // 10),
        )
        history += [dict(h, epoch=h["epoch"] + done, stage=k, lr=lr) for h in res.history if k == 0 or h["epoch"] > 0]
        done += epochs
    res.history, res.epochs = history, done
    return res


def residual_noise(pot: Potential, data: AtomsData, atomic=None, n=None) -> dict[str, np.ndarray]:
    """Training RMSE per quantity for every replica / draw, shape (S,)."""
    with torch.no_grad():
        pred = pot.predict(data, atomic=atomic, n=n)
    return {
        q: (p - y).pow(2).mean(1).sqrt().detach().cpu().numpy()
        for q, (p, y) in per_quantity(pred, data).items()
        if y.numel()
    }


def bbb_weights(study: dict) -> dict[str, float]:
    """Weights of the quantities in Bayes-by-backprop's likelihood: ``bbb.loss_weights`` when given (a tempered
    likelihood), else 1 for every quantity the ensemble trains on (weight > 0) and 0 for the others: the
    untempered Gaussian likelihood with the training residual as noise. The ensemble's loss weights balance an
    optimisation; as likelihood temperatures they would shrink the noise to s/sqrt(w) (w = 100: 10x too narrow)."""
    given = study["bbb"].get("loss_weights")
    return {
        q: float(given[q]) if given and q in given else (1.0 if study["loss_weights"][q] > 0 else 0.0)
        for q in QUANTITIES
    }


def likelihood_std(residual_std: dict[str, float], weights: dict[str, float]) -> dict[str, float]:
    """The Gaussian noise std of every quantity in Bayes-by-backprop's likelihood *and* its predictive.

    The loss weight w_q tempers quantity q's log-likelihood, w_q * log N(y | f, s_q^2) = log N(y | f, s_q^2 / w_q)
    + const, so the fitted noise model is s_q / sqrt(w_q) (s_q = the warm start's training RMSE); the predictive
    adds the same variance s_q^2 / w_q. Quantities with weight 0 are not in the likelihood; their predictive
    noise is the training residual s_q (as for the ensemble)."""
    return {
        q: float(s) / float(np.sqrt(weights[q])) if weights.get(q, 0) > 0 else float(s) for q, s in residual_std.items()
    }


def bbb_stack(pot: Potential, bbb: dict):
    """The mean-field family over the weights of all element networks jointly (:class:`nnrds.uq.bbb.BayesNetStack`,
    prior scale ``bbb["prior_scale"]``), its warm start (the flat weights of ensemble member 0) and one
    single-replica shell network per element (the forward pass of a weight vector)."""
    from ..uq.bbb import BayesNetStack
    from ..uq.model import BayesNet, NetSpec

    scale = bbb["prior_scale"]
    stack = BayesNetStack(
        [
            BayesNet(NetSpec.from_arch(net.arch, prior_scale=scale, bias_scale=scale), dtype=pot.dtype)
            for net in pot.nets
        ]
    )
    init = stack.flat_from_nets(pot.nets)[0]
    shells = [ReplicaNet(net.arch, [0], dtype=pot.dtype).to(init.device) for net in pot.nets]
    return stack, init, shells


def bbb_nll(pot: Potential, train: AtomsData, stack, shells, w_lik: dict, noise_std: dict) -> Callable:
    """``nll(theta, idx)``: the Gaussian negative log-likelihood (up to a constant) of training configurations
    ``idx`` under each weight vector of ``theta`` (S, P), summed over the quantities with weight > 0 (noise std
    ``noise_std[q]``); shape (S,)."""

    def nll(theta, idx):
        sub = AtomsData.subset(train, idx)
        pred = pot.predict(
            sub,
            atomic=lambda X, k: stack.forward_part(k, theta, X, shells[k]),
            n=theta.shape[0],
            create_graph=True,
            **_needs(w_lik),
        )
        out = 0.0
        for q, (p, y) in per_quantity(pred, sub).items():
            if w_lik[q] > 0 and y.numel():
                out = out + 0.5 * ((p - y) / noise_std[q]).pow(2).sum(1)
        return out

    return nll


def train_bbb(pot: Potential, train: AtomsData, study: dict, noise_std: dict, seed: int):
    """Bayes-by-backprop over the weights of all element networks jointly (one mean-field posterior over
    their concatenated weights, :func:`bbb_stack`), warm-started at ensemble member 0, likelihood :func:`bbb_nll`.

    ``noise_std``: the likelihood's noise std per quantity (:func:`likelihood_std`); the predictive must add
    ``noise_std[q]**2`` (the same noise model). Returns (posterior, atomic map of the draws, number of draws)."""
    from ..uq.bbb import run_bbb

    b = study["bbb"]
    stack, init, shells = bbb_stack(pot, b)
    nll = bbb_nll(pot, train, stack, shells, bbb_weights(study), noise_std)
    where = guards.current()
    with guards.job(where.at(cell=f"{where.cell} bayes-by-backprop", config_key="materials.bbb.lr", unit="draw")):
        settings = {k: b[k] for k in ("epochs", "lr", "particles", "init_scale", "kl_weight")}
        post = run_bbb(
            stack,
            nll,
            train.n_configs,
            init_theta=init,
            batch_size=study["batch_size"],
            seed=seed,
            log_every=max(1, b["epochs"] // 10),
            **settings,
        )
        gen = torch.Generator().manual_seed(seed + 11)
        theta, _ = post.draw(b["n_samples"], gen)
        guards.check_finite(
            theta, where=guards.current(), step=f"posterior draws after {b['epochs']} epochs", what="posterior draw"
        )
    theta = theta.to(init.device)

    def atomic(X, k):
        return stack.forward_part(k, theta, X, shells[k])

    return post, atomic, theta.shape[0]


# ============================================================================ evaluation
def gaussian_metrics(mu, sd, y) -> dict:
    err = mu - y
    z = np.abs(err) / sd
    out = {
        "n": len(y),
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "nll": float(np.mean(0.5 * np.log(2 * np.pi * sd**2) + 0.5 * z**2)),
        "mean_std": float(np.mean(sd)),
    }
    for l in LEVELS:
        out[f"cov{int(round(100 * l))}"] = float(np.mean(z <= stats.norm.ppf(0.5 + l / 2)))
    out["spearman_std_abs_err"] = (
        float(stats.spearmanr(sd, np.abs(err))[0]) if len(y) > 2 and np.ptp(sd) > 0 else float("nan")
    )
    return out


def predictive(
    pot, data, atomic, n, noise_var: dict
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(mean, total std, epistemic std, target) per quantity."""
    pred = pot.predict(data, atomic=atomic, n=n)
    out = {}
    for q, (p, y) in per_quantity(pred, data).items():
        guards.check_finite(
            p.detach(), where=guards.current(), step="prediction on the test configurations", what=f"{q} prediction"
        )
        p = p.detach().cpu().numpy().astype(float)
        epi = p.std(0)
        if len(y):
            out[q] = (p.mean(0), np.sqrt(epi**2 + noise_var.get(q, 0.0)), epi, y.detach().cpu().numpy().astype(float))
    return out


CONFIG_ERROR_COLUMNS = [
    "dataset",
    "split",
    "method",
    "subset",
    "config_id",
    "group",
    "natoms",
    "energy_err_eV_per_atom",
    "force_abs_sum_eV_A",
    "force_sq_sum_eV2_A2",
    "n_force_components",
]


def config_errors(pot, data: AtomsData, atomic, n, labels: dict) -> pd.DataFrame:
    """Per configuration: error of the predictive mean energy per atom, and the sum of |error| and of error^2
    over its force components (with their count), so that group MAE/RMSE aggregate exactly (``labels``: the
    constant columns, e.g. dataset, split, method, subset)."""
    pred = pot.predict(data, atomic=atomic, n=n, stress=False)
    nat = data.natoms.to(pred["energy"])
    e_err = (pred["energy"].mean(0) - data.energy.to(nat)) / nat
    f_err = pred["forces"].mean(0) - data.forces.to(nat)
    B = data.n_configs
    acfg = data.atom_cfg
    fa = torch.zeros(B, dtype=f_err.dtype, device=f_err.device).index_add(0, acfg, f_err.abs().sum(1))
    fs = torch.zeros(B, dtype=f_err.dtype, device=f_err.device).index_add(0, acfg, f_err.pow(2).sum(1))
    out = pd.DataFrame(
        {
            **labels,
            "config_id": data.config_ids,
            "group": data.groups,
            "natoms": data.natoms.cpu().numpy().astype(int),
            "energy_err_eV_per_atom": e_err.detach().cpu().numpy().astype(float),
            "force_abs_sum_eV_A": fa.detach().cpu().numpy().astype(float),
            "force_sq_sum_eV2_A2": fs.detach().cpu().numpy().astype(float),
            "n_force_components": 3 * data.natoms.cpu().numpy().astype(int),
        }
    )
    return out[CONFIG_ERROR_COLUMNS]


def item_labels(data: AtomsData, ood_cfg: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per quantity: config id, group and held-out flag of every item (force components and stress comps)."""
    cid, grp = np.asarray(data.config_ids), np.asarray(data.groups)
    acfg = data.atom_cfg.cpu().numpy()
    hs = np.ones(len(cid), bool) if data.has_stress is None else data.has_stress.cpu().numpy()
    return {
        "energy": {"config_id": cid, "group": grp, "heldout": ood_cfg},
        "forces": {k: np.repeat(v[acfg], 3) for k, v in (("config_id", cid), ("group", grp), ("heldout", ood_cfg))},
        "stress": {k: np.repeat(v[hs], 6) for k, v in (("config_id", cid), ("group", grp), ("heldout", ood_cfg))},
    }


def ev_structures(dspec: dict, ev_pool: list[Structure] | None, study: dict) -> list[Structure]:
    """The E-V curve of a set: Al-EMT's fcc curve on ``study["ev"]``'s lattice grid, else the set's own."""
    if dspec["kind"] == "al_emt":
        e = study["ev"]
        return al_emt.fcc_ev_structures(np.linspace(e["a_min"], e["a_max"], e["n_points"]))
    return ev_pool or []


# ============================================================================ one cell: every split of a set
@dataclass
class CellData:
    """A set's configurations and E-V curve with descriptors and Jacobians built once (:func:`build_cell_data`)."""

    data: AtomsData
    ev: AtomsData | None
    spec: DescriptorSpec
    descriptor_s: float


@dataclass
class Split:
    """One split of a built dataset: training and test configurations, the held-out flag of every test one."""

    name: str
    train: AtomsData
    test: AtomsData
    heldout: np.ndarray


@dataclass
class Method:
    """A trained predictive: ``atomic`` map of the replicas (None = the potential's own networks, the ensemble),
    their number ``n`` and the noise variance per quantity its predictive adds (aleatoric / model error)."""

    atomic: Callable | None
    n: int
    noise_var: dict[str, float]


def build_cell_data(
    dataset: str, dspec: dict, study: dict, data_dir: str, *, base_seed: int, device, dtype: torch.dtype
) -> CellData:
    """Load a set (:func:`load_structures`), build descriptors (element-resolved over the set's elements) and
    their Jacobians for its configurations and its E-V curve, moved to ``device`` / ``dtype``."""
    t0 = time.perf_counter()
    structs, ev_pool = load_structures(dspec, data_dir, base_seed)
    elements = tuple(sorted({x for s in structs for x in s.species}))
    spec = DescriptorSpec.from_dict({**study["descriptors"], **dspec.get("descriptors", {}), "elements": elements})
    log.info(
        "materials %s: %d configurations (%d atoms) loaded from %s in %.1f s; building descriptors (%d per atom)",
        dataset,
        len(structs),
        sum(s.natoms for s in structs),
        data_dir,
        time.perf_counter() - t0,
        spec.n_descriptors,
    )
    t0 = time.perf_counter()
    data = build_dataset(structs, spec).to(device, dtype)
    ev_s = ev_structures(dspec, ev_pool, study)
    ev_data = build_dataset(ev_s, spec).to(device, dtype) if ev_s else None
    t_desc = time.perf_counter() - t0
    log.info("materials %s: descriptors and their Jacobians built in %.1f s", dataset, t_desc)
    return CellData(data, ev_data, spec, t_desc)


def run_cell(cell: experiment.Cell) -> dict[str, pd.DataFrame]:
    """Every split of one dataset (``cell["set"]``, spec ``cell.dataset``, tables in ``cell.in_dirs[0]``;
    descriptors built once): tables metrics, predictions, calibration, ev, history, info, timings, config_errors.

    ``cell.dataset["training"]`` (optional) overrides the study's training settings for this set (e.g. epochs, lr,
    lr_stages, loss_weights, net, bbb)."""
    dataset, dspec, data_dir, base_seed, dtype = cell["set"], cell.dataset, cell.in_dirs[0], cell.base_seed, cell.dtype
    study = deep_merge(cell.study, dspec.get("training") or {})
    dev = pick_device(cell.device)
    cell = build_cell_data(
        dataset, dspec, study, data_dir, base_seed=base_seed, device=dev, dtype=getattr(torch, dtype)
    )
    tables: dict[str, list[pd.DataFrame]] = {}
    for split in study["splits"]:
        out = run_split(dataset, dspec, split, study, cell.data, cell.ev, cell.spec, base_seed=base_seed, dtype=dtype)
        out["timings"]["descriptor_s"] = cell.descriptor_s
        out["timings"]["device"] = str(dev)
        for k, v in out.items():
            tables.setdefault(k, []).append(v)
    return {k: pd.concat(v, ignore_index=True) for k, v in tables.items()}


def run_split(
    dataset: str,
    dspec: dict,
    split: str,
    study: dict,
    data: AtomsData,
    ev_data,
    spec,
    *,
    base_seed: int = 0,
    dtype: str = "float32",
) -> dict[str, pd.DataFrame]:
    """Train the ensemble and BBB on one split of a built dataset and evaluate them: prepare
    (:func:`prepare_split`, :func:`make_potential`), train (:func:`fit_ensemble`, :func:`fit_bbb`), evaluate
    (:func:`evaluate_method`), tabulate (:func:`info_table`, :func:`timings_table`)."""
    seed_everything(base_seed)
    sp = prepare_split(dataset, dspec, split, study, data, base_seed)
    seeds = [1000 * base_seed + 7 + s for s in study["seeds"]]  # one ensemble member per seed
    pot, scales = make_potential(study, spec, sp.train, seeds, getattr(torch, dtype))
    pot = pot.to(data.G.device)
    log.info(
        "materials %s / %s split: %d training, %d test configurations; ensemble of %d, %s",
        dataset,
        split,
        sp.train.n_configs,
        sp.test.n_configs,
        len(seeds),
        ", ".join(f"{e} epochs at lr {lr:g}" for e, lr in lr_schedule(study)),
    )
    methods, history, secs = {}, [], {"ensemble_s": 0.0, "bbb_s": 0.0}
    methods["ensemble"], hist, secs["ensemble_s"], residual = fit_ensemble(
        dataset, dspec, sp, study, pot, scales, base_seed
    )
    history += hist
    lik = {}
    if study["bbb"]["enabled"]:
        methods["bbb"], hist, secs["bbb_s"], lik = fit_bbb(dataset, sp, study, pot, residual, base_seed)
        history += hist
    log.info(
        "materials %s / %s split: trained (ensemble %.1f s, BBB %.1f s); evaluating",
        dataset,
        split,
        secs["ensemble_s"],
        secs["bbb_s"],
    )
    rows: dict[str, list] = {k: [] for k in ("metrics", "predictions", "calibration", "ev", "config_errors")}
    rng = np.random.default_rng(base_seed)  # subsamples the prediction rows, method after method
    for name, method in methods.items():
        for k, v in evaluate_method(dataset, sp, name, method, pot, ev_data, study, rng).items():
            rows[k] += v
    return {
        "metrics": pd.DataFrame(rows["metrics"], columns=METRIC_COLUMNS),
        "predictions": pd.concat(rows["predictions"], ignore_index=True),
        "calibration": pd.DataFrame(rows["calibration"]),
        "ev": pd.DataFrame(rows["ev"]),
        "history": pd.DataFrame(history),
        "info": info_table(dataset, sp, data, ev_data, spec, pot, scales, study, lik),
        "timings": timings_table(dataset, sp, study, len(seeds), secs),
        "config_errors": pd.concat(rows["config_errors"], ignore_index=True),
    }


# ---------------------------------------------------------------------------- prepare
def prepare_split(dataset: str, dspec: dict, split: str, study: dict, data: AtomsData, base_seed: int) -> Split:
    """The split's training and test sets (:func:`make_split`); an unknown held-out group names its config key."""
    try:
        tr_idx, te_idx, ood = make_split(
            data.groups, split, list(dspec.get("heldout_groups", [])), study["test_fraction"], base_seed
        )
    except ValueError as e:
        raise ValueError(f"materials.{dataset}.heldout_groups: {e}") from None
    return Split(split, data.subset(tr_idx), data.subset(te_idx), ood)


# ---------------------------------------------------------------------------- train
def fit_ensemble(
    dataset: str, dspec: dict, sp: Split, study: dict, pot: Potential, scales: dict, base_seed: int
) -> tuple[Method, list[dict], float, dict[str, np.ndarray]]:
    """Train every member (:func:`train_ensemble`) under the cell's guard (a divergence names the member seeds
    and the learning rate's config key). Returns the method (noise variance = mean over members of the squared
    training RMSE), its history rows, the wall time and the training RMSE per quantity and member."""
    where = guards.current()
    lr_key = f"materials.{dataset}.training.lr" if "lr" in (dspec.get("training") or {}) else "materials.lr"
    t0 = time.perf_counter()
    with guards.job(
        where.at(
            cell=f"{dataset} / {sp.name} split, ensemble",
            config_key=lr_key,
            labels=[f"member seed {s}" for s in study["seeds"]],
        )
    ):
        res = train_ensemble(pot, sp.train, study, scales, base_seed)
        secs = time.perf_counter() - t0
        pot.eval()
        residual = residual_noise(pot, sp.train)  # (M,) per quantity
        guards.check_finite(
            residual,
            where=guards.current(),
            step=f"after {study['epochs']} epochs",
            what="training residual",
            batch_dim=0,
        )
    method = Method(None, pot.n_replicas, {q: float(np.mean(v**2)) for q, v in residual.items()})
    return method, [dict(h, method="ensemble") for h in res.history], secs, residual


def fit_bbb(
    dataset: str, sp: Split, study: dict, pot: Potential, residual: dict[str, np.ndarray], base_seed: int
) -> tuple[Method, list[dict], float, dict[str, float]]:
    """Bayes-by-backprop (:func:`train_bbb`) with the likelihood noise of :func:`likelihood_std` from ensemble
    member 0's training RMSE; the predictive adds the same noise. Returns the method, its history rows, the
    wall time and the likelihood's noise std per quantity."""
    lik = likelihood_std({q: max(float(v[0]), 1e-6) for q, v in residual.items()}, bbb_weights(study))
    log.info(
        "materials %s / %s split: Bayes-by-backprop, %d epochs, likelihood noise std %s",
        dataset,
        sp.name,
        study["bbb"]["epochs"],
        ", ".join(f"{q} {v:.3g} {UNITS[q]}" for q, v in lik.items()),
    )
    t0 = time.perf_counter()
    with guards.job(guards.current().at(cell=f"{dataset} / {sp.name} split")):
        post, atomic, S = train_bbb(pot, sp.train, study, lik, base_seed)
    secs = time.perf_counter() - t0
    history = [dict(h, method="bbb", stage=0, lr=study["bbb"]["lr"]) for h in post.info["history"]]
    return Method(atomic, S, {q: v**2 for q, v in lik.items()}), history, secs, lik


# ---------------------------------------------------------------------------- evaluate
def evaluate_method(
    dataset: str,
    sp: Split,
    name: str,
    method: Method,
    pot: Potential,
    ev_data: AtomsData | None,
    study: dict,
    rng: np.random.Generator,
) -> dict[str, list]:
    """Rows of the tables metrics, calibration, ev (dicts) and predictions, config_errors (frames) of one
    trained method on one split; ``rng`` subsamples the prediction rows (``max_prediction_rows``)."""
    lab0 = {"dataset": dataset, "split": sp.name, "method": name}
    out: dict[str, list] = {"metrics": [], "calibration": [], "predictions": [], "ev": [], "config_errors": []}
    out["config_errors"].append(config_errors(pot, sp.train, method.atomic, method.n, {**lab0, "subset": "train"}))
    te = config_errors(pot, sp.test, method.atomic, method.n, {**lab0, "subset": "test"})
    te.loc[sp.heldout, "subset"] = "heldout"
    out["config_errors"].append(te)
    labels = item_labels(sp.test, sp.heldout)
    for q, (mu, sd, epi, y) in predictive(pot, sp.test, method.atomic, method.n, method.noise_var).items():
        metrics, calib = quantity_rows(lab0, q, mu, sd, y, labels[q]["heldout"] if sp.name == "group" else None)
        out["metrics"] += metrics
        out["calibration"] += calib
        out["predictions"].append(
            prediction_table({**lab0, "quantity": q}, labels[q], mu, sd, epi, y, study["max_prediction_rows"], rng)
        )
    if ev_data is not None:
        out["ev"] = ev_rows(lab0, pot, ev_data, method)
    return out


def quantity_rows(lab: dict, quantity: str, mu, sd, y, heldout: np.ndarray | None) -> tuple[list[dict], list[dict]]:
    """Metric rows (:func:`gaussian_metrics`) and calibration-curve rows of one quantity, for subset ``all``
    and, given the held-out flag of every item, ``in_distribution`` and ``heldout`` (empty subsets skipped)."""
    subsets = {"all": np.ones(len(y), bool)}
    if heldout is not None:
        subsets.update({"in_distribution": ~heldout, "heldout": heldout})
    metrics, calib = [], []
    for sname, m in subsets.items():
        if m.sum() == 0:
            continue
        row = {**lab, "subset": sname, "quantity": quantity}
        metrics.append({**row, **gaussian_metrics(mu[m], sd[m], y[m])})
        z = np.abs(mu[m] - y[m]) / sd[m]
        calib += [
            {**row, "level": float(l), "observed": float(np.mean(z <= stats.norm.ppf(0.5 + l / 2)))}
            for l in CURVE_LEVELS
        ]
    return metrics, calib


def prediction_table(
    lab: dict, items: dict[str, np.ndarray], mu, sd, epi, y, cap: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Per item of one quantity (``items``: its config id, group, held-out flag): target, predictive mean,
    total and epistemic std; at most ``cap`` rows, a sorted random subset drawn from ``rng`` beyond that."""
    keep = np.arange(len(y))
    if len(keep) > cap:
        keep = np.sort(rng.choice(len(y), cap, replace=False))
    return pd.DataFrame(
        {
            **lab,
            "config_id": items["config_id"][keep],
            "group": items["group"][keep],
            "heldout": items["heldout"][keep],
            "target": y[keep],
            "mean": mu[keep],
            "std": sd[keep],
            "std_epistemic": epi[keep],
        }
    )


def ev_rows(lab: dict, pot: Potential, ev_data: AtomsData, method: Method) -> list[dict]:
    """The E-V curve by volume per atom: reference and predicted energy per atom, epistemic and total std."""
    pe = pot.predict(ev_data, atomic=method.atomic, n=method.n, forces=False, stress=False)["energy"]
    e = (pe / ev_data.natoms.to(pe)).detach().cpu().numpy().astype(float)
    vol = (ev_data.volume / ev_data.natoms).cpu().numpy()
    ref = (ev_data.energy / ev_data.natoms).cpu().numpy()
    return [
        {
            **lab,
            "volume_A3_per_atom": vol[k],
            "energy_ref_eV_per_atom": ref[k],
            "energy_mean_eV_per_atom": e[:, k].mean(),
            "energy_std_epistemic": e[:, k].std(),
            "energy_std_total": float(np.sqrt(e[:, k].var() + method.noise_var["energy"])),
        }
        for k in np.argsort(vol, kind="stable")
    ]


# ---------------------------------------------------------------------------- tabulate
def train_bulk_volume_range(train: AtomsData, spec: DescriptorSpec, ev_data: AtomsData | None) -> tuple[float, float]:
    """(min, max) volume per atom of the training set's bulk configurations (no vacuum: not a surface or GSF
    group; with several elements, only those with the E-V curve's elements); NaN when there are none."""
    vol = (train.volume / train.natoms).cpu().numpy()
    bulk = np.array([not ("surf" in g.lower() or g.startswith("GSF")) for g in train.groups])
    ne = spec.n_elements
    if ne > 1 and ev_data is not None:  # the E-V curve's elements only (e.g. pure Be for hcp Be)
        ev_el = (ev_data.composition(ne) > 0).any(0).cpu()
        bulk &= ((train.composition(ne) > 0).cpu() == ev_el).all(1).numpy()
    return (float(vol[bulk].min()), float(vol[bulk].max())) if bulk.any() else (np.nan, np.nan)


def info_table(
    dataset: str,
    sp: Split,
    data: AtomsData,
    ev_data: AtomsData | None,
    spec: DescriptorSpec,
    pot: Potential,
    scales: dict,
    study: dict,
    lik: dict[str, float],
) -> pd.DataFrame:
    """One row: sizes, training bulk volume range, descriptors, parameters, loss scales, schedule, BBB noise;
    with several elements their symbols and least-squares reference energies."""
    lo, hi = train_bulk_volume_range(sp.train, spec, ev_data)
    info = pd.DataFrame(
        [
            {
                "dataset": dataset,
                "split": sp.name,
                "n_configs": data.n_configs,
                "n_train": sp.train.n_configs,
                "n_test": sp.test.n_configs,
                "n_heldout": int(sp.heldout.sum()),
                "train_bulk_volume_min": lo,
                "train_bulk_volume_max": hi,
                "n_descriptors": spec.n_descriptors,
                "n_params_per_net": pot.nets[0].arch.n_params(),
                "scales": json.dumps(scales),
                "epochs": study["epochs"],
                "lr_schedule": json.dumps(lr_schedule(study)),
                "bbb_likelihood_std": json.dumps(lik, sort_keys=True),
            }
        ]
    )
    if spec.n_elements > 1:  # per-element networks: which elements, their least-squares reference energies
        info["elements"] = " ".join(spec.elements)
        info["reference_energies_eV"] = json.dumps(dict(zip(spec.elements, pot.e_ref)))
    return info


def timings_table(dataset: str, sp: Split, study: dict, members: int, secs: dict[str, float]) -> pd.DataFrame:
    """One row of wall times (``secs``: ensemble_s, bbb_s; descriptor_s and device are set by :func:`run_cell`)."""
    return pd.DataFrame(
        [
            {
                "dataset": dataset,
                "split": sp.name,
                "n_train": sp.train.n_configs,
                "n_test": sp.test.n_configs,
                "n_train_atoms": int(sp.train.natoms.sum()),
                "descriptor_s": 0.0,
                "ensemble_s": secs["ensemble_s"],
                "bbb_s": secs["bbb_s"],
                "members": members,
                "epochs": study["epochs"],
                "bbb_epochs": study["bbb"]["epochs"] if study["bbb"]["enabled"] else 0,
            }
        ]
    )


# ============================================================================ summary
#: near-equilibrium groups of FitSNAP Ta (all but the strongly compressed Volume_* groups): the groups where the
#: study's goal (held-out error <= linear SNAP's training error) is stated
TA_NEAR_EQUILIBRIUM = (
    "Displaced_A15",
    "Displaced_BCC",
    "Displaced_FCC",
    "Elastic_BCC",
    "Elastic_FCC",
    "GSF_110",
    "GSF_112",
    "Liquid",
    "Surface",
)
#: "matches" = the held-out MAE exceeds the reference MAE by at most this fraction of it
MATCH_MARGIN = 0.10
GROUP_METRIC_COLUMNS = [
    "dataset",
    "split",
    "method",
    "subset",
    "group",
    "quantity",
    "unit",
    "n_configs",
    "n_items",
    "mae",
    "rmse",
    "snap_mae",
    "snap_rmse",
    "snap_n",
    "mae_over_snap",
]


def read_reference(path: str) -> pd.DataFrame:
    """The linear-SNAP reference table (workflow/reference/snap_linear_fitsnap.csv; '#' lines are comments)."""
    return pd.read_csv(path, comment="#")


def group_metrics(cerr: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Energy (per atom) and force (per component) MAE/RMSE per (dataset, split, method, subset, group) from the
    per-configuration errors (:func:`config_errors`), beside the reference's (linear SNAP, training set) where it
    has the group; group ``*ALL`` = every configuration of the subset."""
    rows = []
    keys = ["dataset", "split", "method", "subset"]
    for k, g in cerr.groupby(keys, sort=True):
        for grp, x in [*g.groupby("group", sort=True), ("*ALL", g)]:
            e = x["energy_err_eV_per_atom"].to_numpy(float)
            n_f = float(x["n_force_components"].sum())
            base = dict(zip(keys, k), group=grp, n_configs=len(x))
            rows.append(
                {
                    **base,
                    "quantity": "energy",
                    "unit": "eV/atom",
                    "n_items": len(x),
                    "mae": float(np.mean(np.abs(e))),
                    "rmse": float(np.sqrt(np.mean(e**2))),
                }
            )
            rows.append(
                {
                    **base,
                    "quantity": "forces",
                    "unit": "eV/A",
                    "n_items": int(n_f),
                    "mae": float(x["force_abs_sum_eV_A"].sum() / n_f) if n_f else float("nan"),
                    "rmse": float(np.sqrt(x["force_sq_sum_eV2_A2"].sum() / n_f)) if n_f else float("nan"),
                }
            )
    out = pd.DataFrame(rows)
    if reference is not None and len(out):
        ref = reference.rename(columns={"mae": "snap_mae", "rmse": "snap_rmse", "n": "snap_n"})
        out = out.merge(
            ref[["dataset", "group", "quantity", "snap_mae", "snap_rmse", "snap_n"]],
            on=["dataset", "group", "quantity"],
            how="left",
        )
    for c in ("snap_mae", "snap_rmse", "snap_n"):
        if c not in out:
            out[c] = np.nan
    out["mae_over_snap"] = out["mae"] / out["snap_mae"]
    return out.reindex(columns=GROUP_METRIC_COLUMNS)


def per_config_abs_error(cerr: pd.DataFrame, quantity: str) -> np.ndarray:
    """|error| per configuration of :func:`config_errors` rows: energy per atom, or the mean over force components."""
    if quantity == "energy":
        return np.abs(cerr["energy_err_eV_per_atom"].to_numpy(float))
    return (cerr["force_abs_sum_eV_A"] / cerr["n_force_components"]).to_numpy(float)


def margin_t_test(effects: np.ndarray, margin: float, level: float) -> tuple[float, float, float]:
    """(low, high) Student-t interval at ``level`` of the mean effect and the one-sided p-value of H0: mean
    effect <= -``margin``; NaN for fewer than two effects or effects that do not vary."""
    if len(effects) >= 2 and np.ptp(effects) > 0:
        t = stats.ttest_1samp(effects + margin, 0.0, alternative="greater")
        ci = stats.ttest_1samp(effects, 0.0).confidence_interval(confidence_level=level)
        return float(ci.low), float(ci.high), float(t.pvalue)
    return float("nan"), float("nan"), float("nan")


def snap_claims(
    cerr: pd.DataFrame,
    reference: pd.DataFrame,
    level: float = 0.95,
    margin: float = MATCH_MARGIN,
    groups=TA_NEAR_EQUILIBRIUM,
    dataset: str = "fitsnap",
    method: str = "ensemble",
    figure: str = "figures/materials/group_errors.png",
) -> pd.DataFrame:
    """Claims "on Ta group G our potential's held-out error matches or beats linear SNAP's training error",
    one per near-equilibrium group and quantity (energy per atom, force components), on the random split.

    Unit of replication: a held-out (test) configuration of the group. Effect per configuration = SNAP's
    training MAE - our absolute error (energy: |error per atom|; forces: mean |error| over its components),
    positive = ours better; its mean is SNAP MAE - our MAE. "Matches" allows ``margin`` x SNAP's MAE: the claim
    is *supported* when the Student-t interval of the mean effect lies above -margin x SNAP MAE, *contradicted*
    when it lies below it, *inconclusive* otherwise (and with fewer than 2 held-out configurations). The
    intervals are Bonferroni-corrected over the claims (level 1 - (1 - level)/k) and the one-sided p-values
    Holm-adjusted."""
    from ..verdicts import Claim, claims_frame, holm, superiority

    x = cerr[
        (cerr["dataset"] == dataset)
        & (cerr["split"] == "random")
        & (cerr["method"] == method)
        & (cerr["subset"] == "test")
    ]
    ref = reference[reference["dataset"] == dataset].set_index(["group", "quantity"])
    todo = [(g, q) for g in groups for q in ("energy", "forces") if (g, q) in ref.index]
    k = max(1, len(todo))
    lev = 1 - (1 - level) / k
    rows, pvals = [], []
    for g, q in todo:
        snap = float(ref.loc[(g, q), "mae"])
        eff = snap - per_config_abs_error(x[x["group"] == g], q)
        m = margin * snap
        n = len(eff)
        lo, hi, p = margin_t_test(eff, m, lev)
        verdict = superiority(lo + m, hi + m)
        unit = "eV/atom" if q == "energy" else "eV/A"
        what = "energy MAE per atom" if q == "energy" else "force MAE per component"
        rows.append(
            Claim(
                study="materials",
                claim_id=f"ta_snap_{g}_{q}",
                claim=(
                    f"On FitSNAP Ta group {g}, our WP-ResNet potential (deep-ensemble mean) has a held-out {what} that "
                    f"matches (within {margin:.0%}) or beats linear SNAP's training {what} ({snap:.3g} {unit})."
                ),
                what_was_run=(
                    "random split (test = 20% of configurations, never trained on); linear SNAP = FitSNAP's "
                    "example fit of the whole set (training errors, workflow/reference/snap_linear_fitsnap.csv)"
                ),
                unit="held-out configuration",
                n_units=n,
                effect_name=f"SNAP training {what} - our held-out {what} ({unit})",
                effect=float(np.mean(eff)) if n else float("nan"),
                ci_low=lo,
                ci_high=hi,
                ci_level=lev,
                verdict=verdict,
                test=(
                    f"one-sample t on per-configuration effects, Bonferroni interval over {k} claims, Holm-adjusted "
                    "one-sided p (H0: worse than SNAP by more than the margin)"
                ),
                figure=figure,
                margin=m,
                p_value=p,
            )
        )
        pvals.append(p)
    adj = holm(pvals) if pvals else []
    for r, a in zip(rows, adj):
        r.p_adjusted = float(a)
    if not rows:
        from ..verdicts import CLAIM_COLUMNS

        return pd.DataFrame(columns=CLAIM_COLUMNS)
    return claims_frame(rows)


def ev_summary(ev: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, split, method): maximum and mean |predicted - reference| energy per atom of the E-V curve
    inside the training set's bulk volume range (same elements), and over the whole curve."""
    rows = []
    for (ds, sp, me), g in ev.groupby(["dataset", "split", "method"], sort=True):
        inf = info[(info["dataset"] == ds) & (info["split"] == sp)]
        lo, hi = (
            (float(inf["train_bulk_volume_min"].iloc[0]), float(inf["train_bulk_volume_max"].iloc[0]))
            if len(inf)
            else (np.nan, np.nan)
        )
        d = (g["energy_mean_eV_per_atom"] - g["energy_ref_eV_per_atom"]).abs().to_numpy(float)
        vin = g["volume_A3_per_atom"].between(lo, hi).to_numpy() if np.isfinite(lo) else np.zeros(len(g), bool)
        rows.append(
            {
                "dataset": ds,
                "split": sp,
                "method": me,
                "volume_min": lo,
                "volume_max": hi,
                "n_points_in_range": int(vin.sum()),
                "max_abs_dev_in_range_eV_per_atom": float(d[vin].max()) if vin.any() else np.nan,
                "mean_abs_dev_in_range_eV_per_atom": float(d[vin].mean()) if vin.any() else np.nan,
                "n_points": len(g),
                "max_abs_dev_eV_per_atom": float(d.max()),
                "ref_energy_span_in_range_eV_per_atom": float(np.ptp(g["energy_ref_eV_per_atom"].to_numpy()[vin]))
                if vin.any()
                else np.nan,
                "pred_energy_span_in_range_eV_per_atom": float(np.ptp(g["energy_mean_eV_per_atom"].to_numpy()[vin]))
                if vin.any()
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


def caption(
    metrics: pd.DataFrame,
    info: pd.DataFrame,
    timings: pd.DataFrame,
    scale: str,
    study: dict,
    notes: dict[str, str],
    groups: pd.DataFrame | None = None,
    claims: pd.DataFrame | None = None,
    evs: pd.DataFrame | None = None,
    units: dict[str, dict] | None = None,
) -> str:
    """The figures' and tables' caption (reStructuredText): method, datasets, splits, accuracy and calibration,
    stress units, Ta groups vs linear SNAP with their verdicts, E-V curves, training-set sizes."""
    lines = [_caption_method(scale, study), "", *_caption_datasets(notes, info), ""]
    lines += _caption_splits(info) + _caption_metrics(metrics) + _caption_units(units or {})
    lines += _caption_groups(groups, claims) + _caption_ev(evs) + _caption_training_sets(timings)
    return "\n".join(lines) + "\n"


def _caption_method(scale: str, study: dict) -> str:
    """The model, the two UQ methods and their noise models (one paragraph)."""
    a, w = study["net"], study["loss_weights"]
    return (
        f"Materials UQ (interatomic potentials), **{scale}** scale. Per-atom WP-ResNet ({a['param']}, width "
        f"{a['width']}, depth {a['depth']}) on Behler–Parrinello G2/G4 descriptors (cutoff "
        f"{study['descriptors']['cutoff']} Å); E = Σ atomic energies, forces = −∂E/∂R and stress = (1/V) ∂E/∂ε by "
        f"autograd. Deep ensemble of {len(study['seeds'])} members ({study['epochs']} epochs of Adam, lr {study['lr']}, "
        f"loss weights E/F/S {w['energy']}/{w['forces']}/{w['stress']}) and Bayes-by-backprop (mean-field, "
        f"{study['bbb']['epochs']} epochs, "
        f"{study['bbb']['n_samples']} posterior draws; Gaussian likelihood with noise std s per quantity, s = the "
        "warm start's training RMSE (s/√w with materials.bbb.loss_weights w), and the same variance added to the "
        "predictive); the ensemble adds its training residual variance. Error bars and bands: ±2 predictive std."
    )


def _caption_datasets(notes: dict[str, str], info: pd.DataFrame) -> list[str]:
    """The datasets' descriptions; with a multi-element set, how elements are handled and its reference energies."""
    out = ["Datasets: " + "; ".join(f"*{k}*: {v}" for k, v in notes.items()) + "."]
    if "elements" in info and info["elements"].notna().any():
        multi = info[info["elements"].notna()].drop_duplicates("dataset")
        per = "; ".join(
            f"{r.dataset}: " + ", ".join(f"{e} {v:.3f} eV" for e, v in json.loads(r.reference_energies_eV).items())
            for r in multi.itertuples()
        )
        out += [
            "Multi-element sets: element-resolved descriptors (G2 per neighbour element, G4 per unordered neighbour-"
            "element pair), one network per element with its own descriptor standardization, the networks learn "
            "the residual to per-element reference energies fitted by least squares on composition (first split: "
            f"{per}); Bayes-by-backprop covers all element networks' weights jointly. Configurations whose stored "
            "stress is six exact zeros (no DFT stress) are left out of the stress loss and metrics.",
            "",
        ]
    return out


def _caption_splits(info: pd.DataFrame) -> list[str]:
    return [
        f"* **{r.dataset} / {r.split} split**: {r.n_train} training, {r.n_test} test configurations "
        f"({r.n_heldout} in held-out groups)."
        for r in info.itertuples()
    ]


def _caption_metrics(metrics: pd.DataFrame) -> list[str]:
    """Per (dataset, split, method, subset): RMSE, 95% coverage and rank correlation of std and |error| per
    quantity (the group split's subsets in-distribution and held-out, not all)."""
    out = []
    m = metrics[metrics.subset.isin(["all", "heldout", "in_distribution"])]
    for (ds, sp, meth, sub), g in m.groupby(["dataset", "split", "method", "subset"], sort=True):
        if sp == "group" and sub == "all":
            continue
        parts = []
        for q in QUANTITIES:
            x = g[g.quantity == q]
            if len(x):
                x = x.iloc[0]
                parts.append(
                    f"{q} RMSE {x.rmse:.3g} {UNITS[q]}, 95% cov {x.cov95:.2f}, ρ(std,|err|) "
                    f"{x.spearman_std_abs_err:.2f}"
                )
        out.append(f"* {ds} / {sp} / {meth} / {sub}: " + "; ".join(parts) + ".")
    return out


def _caption_ev(evs: pd.DataFrame | None) -> list[str]:
    """Per E-V curve with points inside the training volume range: the largest deviation there."""
    if evs is None or not len(evs):
        return []
    return [
        f"* E–V curve {r.dataset} / {r.split} / {r.method}: largest deviation of the prediction from the reference "
        f"{1e3 * r.max_abs_dev_in_range_eV_per_atom:.0f} meV/atom inside the training volume range "
        f"({r.volume_min:.1f}–{r.volume_max:.1f} Å³/atom, {r.n_points_in_range} points; reference "
        f"span {1e3 * r.ref_energy_span_in_range_eV_per_atom:.0f} meV/atom, predicted span "
        f"{1e3 * r.pred_energy_span_in_range_eV_per_atom:.0f})."
        for r in evs[evs["n_points_in_range"] > 0].itertuples()
    ]


def _caption_training_sets(timings: pd.DataFrame) -> list[str]:
    """Training-set sizes per dataset and split, and where the wall times are (not in the caption)."""
    out = []
    for ds, g in timings.groupby("dataset", sort=True):
        per = ", ".join(f"{r.split}: {r.n_train} configurations, {r.n_train_atoms} atoms" for r in g.itertuples())
        out.append(
            f"* training sets ({ds}, {g.device.iloc[0]}): {per}; wall times per step in "
            "the study's timings.csv (kept out of this caption so it is reproducible)."
        )
    return out


def _caption_units(units: dict[str, dict]) -> list[str]:
    """One line per FitSNAP set: the stress units detected per (group, composition) at acquisition."""
    out = []
    for name, meta in sorted(units.items()):
        t = pd.DataFrame((meta.get("stress_units") or {}).get("table", []))
        if t.empty:
            continue
        conv = t[t["unit"] != t["declared_unit"]]
        lab = t[(t["n_labelled"] > 0) & (t["status"] == "unchecked")]
        part = (
            (
                f"{len(conv)} of {len(t)} (group, composition) stored in "
                + ", ".join(sorted(set(conv["unit"])))
                + f" though declared {t['declared_unit'].iloc[0]} ("
                + ", ".join(sorted(set(conv["group"])))
                + ")"
            )
            if len(conv)
            else "every checkable group in the declared unit"
        )

        def rng(st):
            x = t[t["status"] == st]
            if not len(x):
                return f"0 {st}"
            lo, hi = x["ratio"].min(), x["ratio"].max()
            return f"{len(x)} {st} (ratio {lo:.2f}" + (f"–{hi:.2f})" if f"{hi:.2f}" != f"{lo:.2f}" else ")")

        out.append(
            f"* stress units of {name} (detected at acquisition from the thermodynamic consistency of stress and "
            f"energy; work ratio (ΔE − W_F)/W_σ, 1 in the right unit; metadata.json `stress_units`): {part}; "
            f"after conversion {rng('checked')}, {rng('noisy')} (energies too noisy for the ratio, the order of "
            f"magnitude still decided); {len(lab)} with stress labels could not be checked "
            f"({', '.join(sorted(set(lab['group']))) or 'none'}: declared unit kept)."
        )
    return out


def _caption_groups(groups: pd.DataFrame | None, claims: pd.DataFrame | None) -> list[str]:
    """Ta near-equilibrium groups, ours (held-out, random split) vs linear SNAP (training), and the verdicts."""
    if groups is None or not len(groups):
        return []
    g = groups[
        (groups["dataset"] == "fitsnap")
        & (groups["split"] == "random")
        & (groups["method"] == "ensemble")
        & (groups["subset"] == "test")
        & groups["group"].isin(TA_NEAR_EQUILIBRIUM)
    ]
    if not len(g):
        return []
    parts = []
    for grp, x in g.groupby("group", sort=True):
        e, f = x[x["quantity"] == "energy"].iloc[0], x[x["quantity"] == "forces"].iloc[0]
        parts.append(
            f"{grp} (n={e.n_configs}) E {1e3 * e.mae:.1f} vs {1e3 * e.snap_mae:.1f} meV/atom, "
            f"F {f.mae:.3f} vs {f.snap_mae:.3f} eV/Å"
        )
    out = [
        "* FitSNAP Ta near-equilibrium groups, held-out MAE of the deep-ensemble mean (random split) vs linear "
        "SNAP's training MAE (FitSNAP example fit; results/materials/group_metrics.csv, figure group_errors): "
        + "; ".join(parts)
        + "."
    ]
    if claims is not None and len(claims):
        c = claims["verdict"].value_counts()
        out.append(
            f'* Claim per group and quantity "matches (within {MATCH_MARGIN:.0%}) or beats linear SNAP" '
            f"(unit: held-out configurations; Bonferroni intervals, Holm p): "
            + ", ".join(f"{c.get(v, 0)} {v}" for v in ("supported", "contradicted", "inconclusive"))
            + " of "
            + str(len(claims))
            + " (results/materials/claims.csv)."
        )
    return out
