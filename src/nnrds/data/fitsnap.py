"""Reading an acquired FitSNAP DFT set (the tidy tables of :func:`nnrds.data.acquire.acquire`) into structures.

FitSNAP stores stress with the pressure sign (positive under compression, VASP's convention); it is flipped to
sigma = (1/V) dE/deps on loading. FitSNAP writes six exact zeros as the stress of configurations whose DFT run
computed none; those stay zeros (no stress label). A set may be filtered (``max_natoms``,
``max_energy_deviation`` from the composition reference, ``max_force``) and subsampled (``max_configs``, per
group in proportion to its size, at least ``min_per_group``; seeded); its E-V curve is every configuration of
``ev_group`` that passed the filters, subsampled or not. Stress labels whose unit check
(``stress_unit_status``, :func:`nnrds.data.acquire.stress_unit_table`) is not in ``stress_label_status`` are
dropped (six zeros).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..potentials.potential import fit_reference_energies
from ..potentials.structures import Structure, from_tables
from .acquire import STRESS_TO_EV_A3


def stress_to_ev_a3(value, unit: str):
    """Stress in ``unit`` (bar, kbar, kB, GPa, eV/A^3) -> eV/A^3 (the factors of :mod:`nnrds.data.acquire`)."""
    if unit not in STRESS_TO_EV_A3:
        raise ValueError(f"unknown stress unit {unit!r}; known {sorted(STRESS_TO_EV_A3)}")
    return np.asarray(value, float) * STRESS_TO_EV_A3[unit]


def energy_deviation(conf: pd.DataFrame, atoms: pd.DataFrame) -> np.ndarray:
    """|E/N - composition reference| per configuration (eV/atom), reference fitted on all rows."""
    counts = atoms.groupby(["config_id", "species"]).size().unstack(fill_value=0).reindex(conf["config_id"])
    c = counts.to_numpy(float)
    ref = fit_reference_energies(c, conf["energy_eV"].to_numpy(float))
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


def kept(conf: pd.DataFrame, atoms: pd.DataFrame, spec: dict) -> np.ndarray:
    """Which configurations pass the filters ``max_natoms``, ``max_energy_deviation``, ``max_force``."""
    keep = np.ones(len(conf), bool)
    if spec.get("max_natoms"):
        keep &= conf["natoms"].to_numpy() <= spec["max_natoms"]
    if spec.get("max_energy_deviation") is not None:
        keep &= energy_deviation(conf, atoms) <= spec["max_energy_deviation"]
    if spec.get("max_force") is not None:
        fmax = atoms[["fx_eV_A", "fy_eV_A", "fz_eV_A"]].abs().max(axis=1).groupby(atoms["config_id"]).max()
        keep &= fmax.reindex(conf["config_id"]).to_numpy() <= spec["max_force"]
    return keep


def load_structures(spec: dict, data_dir: str, seed: int = 0) -> tuple[list[Structure], list[Structure]]:
    """(training pool, E-V configurations) of the FitSNAP set in ``data_dir`` (``configs.csv``, ``atoms.csv``)
    under its config section ``spec`` (module docstring; ``spec["kind"]`` names it in errors)."""
    d = Path(data_dir)
    conf, atoms = pd.read_csv(d / "configs.csv"), pd.read_csv(d / "atoms.csv")
    keep = kept(conf, atoms, spec)
    pool = keep.copy()
    if spec.get("max_configs") and spec["max_configs"] < keep.sum():
        kept_pos = np.flatnonzero(keep)
        sel = stratified_subsample(conf["group"].to_numpy()[kept_pos], spec["max_configs"],
                                   spec.get("min_per_group", 1), seed)
        pool = np.zeros(len(conf), bool)
        pool[kept_pos[sel]] = True
    ev = np.zeros(len(conf), bool)
    if spec.get("ev_group"):
        ev = keep & (conf["group"].to_numpy() == spec["ev_group"])
        if not ev.any():
            raise ValueError(f"materials.{spec['kind']}.ev_group {spec['ev_group']!r} has no configuration in "
                             f"{data_dir} (after the filters); groups: {sorted(set(conf['group']))}")
    need = pool | ev
    sub = conf[need]
    structs = from_tables(sub, atoms[atoms["config_id"].isin(sub["config_id"])])
    use = spec.get("stress_label_status")
    unlabelled = (~sub["stress_unit_status"].isin(use)).to_numpy() if use is not None and "stress_unit_status" in sub \
        else np.zeros(len(sub), bool)
    for s, drop in zip(structs, unlabelled):
        s.stress = np.zeros(6) if drop else -s.stress  # FitSNAP/VASP pressure sign -> ASE sign
    return ([s for s, m in zip(structs, pool[need]) if m], [s for s, m in zip(structs, ev[need]) if m])
