"""FitSNAP DFT sets: parsing their JSON files into tidy tables (:func:`parse_files`, at acquisition) and reading
those tables into structures (:func:`load_structures`, in the study).

Tables: ``configs.csv`` (one row per configuration: energy, stress in eV/A^3 converted from the unit detected
per (group, composition) by :mod:`nnrds.data.stress_units`, cell, group) and ``atoms.csv`` (one row per atom).

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

import json
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ..potentials.potential import fit_reference_energies
from ..potentials.structures import VOIGT_IDX, Structure, atoms_frame, cell_columns, from_tables, stress_columns
from .stress_units import (
    CANDIDATE_STRESS_UNITS,
    MAX_SPREAD,
    MIN_PAIRS,
    PAIR_MAX_DISPLACEMENT,
    PAIR_MAX_STRAIN,
    PAIR_MIN_STRAIN,
    PAIR_MIN_WORK,
    PAIR_NEIGHBOURS,
    STRESS_RATIO_LIMITS,
    STRESS_RATIO_TOLERANCE,
    STRESS_TO_EV_A3,
    apply_stress_units,
    stress_unit_table,
)

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- parsing
def parse_fitsnap_json(text: str) -> tuple[dict, dict]:
    """One FitSNAP configuration file: skip the non-JSON header line; return (config, dataset-level keys)."""
    body = text.split("\n", 1)[1] if not text.lstrip().startswith("{") else text
    ds = json.loads(body)["Dataset"]
    data = ds["Data"]
    if len(data) != 1:
        raise ValueError(f"expected one configuration per file, found {len(data)}")
    return data[0], {k: v for k, v in ds.items() if k != "Data"}


def read_config(content: bytes, rel: str, set_name: str, path: str | os.PathLike) -> tuple[dict, str]:
    """One file of a FitSNAP set (``rel`` relative to the set's folder; ``path`` names the source in errors): its
    configuration and the stress unit it declares (``StressStyle``, default bar), checked: a known unit, and
    ``NumAtoms`` agreeing with the positions, forces and atom types."""
    try:
        d, meta = parse_fitsnap_json(content.decode())
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: {set_name}/{rel} is not a FitSNAP JSON configuration ({e})") from None
    style = meta.get("StressStyle", "bar")
    if style not in STRESS_TO_EV_A3:
        raise ValueError(f"{set_name}/{rel}: unknown StressStyle {style!r}; known {sorted(STRESS_TO_EV_A3)}")
    pos, frc = np.asarray(d["Positions"], float), np.asarray(d["Forces"], float)
    n = int(d.get("NumAtoms", len(pos)))
    if pos.shape != (n, 3) or frc.shape != (n, 3) or len(d["AtomTypes"]) != n:
        raise ValueError(
            f"{set_name}/{rel}: NumAtoms={n} but positions {pos.shape}, forces {frc.shape}, "
            f"{len(d['AtomTypes'])} atom types"
        )
    return d, style


def config_tables(cid: int, rel: str, d: dict, style: str) -> tuple[dict, pd.DataFrame]:
    """The ``configs.csv`` row (group = the file's top folder, stress converted from the declared unit ``style``
    to eV/A^3) and the ``atoms.csv`` rows of configuration ``d`` (file ``rel``, id ``cid``)."""
    pos, frc = np.asarray(d["Positions"], float), np.asarray(d["Forces"], float)
    st = np.asarray(d["Stress"], float) * STRESS_TO_EV_A3[style]
    row = {
        "config_id": cid,
        "group": rel.split("/", 1)[0] if "/" in rel else "",
        "file": rel,
        "natoms": int(d.get("NumAtoms", len(pos))),
        "species": " ".join(sorted(set(d["AtomTypes"]))),
        "energy_eV": float(d["Energy"]),
    }
    row |= stress_columns([st[i, j] for i, j in VOIGT_IDX]) | cell_columns(np.asarray(d["Lattice"], float))
    return row, atoms_frame(cid, d["AtomTypes"], pos, frc)


def log_unit_changes(set_name: str, table: pd.DataFrame) -> None:
    """Log every (group, composition) whose detected stress unit differs from the declared one, and the counts."""
    for r in table[table["unit"] != table["declared_unit"]].itertuples():
        log.info(
            "%s: %s (%s) stores %s though declared %s (%s, ratio %.3g from %d pairs)",
            set_name,
            r.group,
            r.composition,
            r.unit,
            r.declared_unit,
            r.status,
            r.ratio,
            r.n_pairs,
        )
    log.info("%s: stress units %s", set_name, ", ".join(f"{n} {k}" for k, n in table["status"].value_counts().items()))


#: how the stress units were detected (metadata ``stress_units.method``)
STRESS_UNIT_METHOD = (
    "thermodynamic consistency per (group, composition): pairs of nearly identical cells "  # noqa: UP031 -- one template, values below
    "(strain %g..%g, non-affine displacement <= %g A, |dE - W_force| >= %g eV, %d nearest "
    "cells each); ratio = (dE - W_force) / W_stress, 1 in the right unit; checked: >= %d pairs, "
    "q75/q25 <= %g, ratio in [%g, %g]; error: agreeing ratios outside [%g, %g] in every unit; "
    "noisy: scattered ratios (or between tolerance and limits), unit from the 95%% interval of "
    "the median; unchecked: declared unit kept"
    % (
        PAIR_MIN_STRAIN,
        PAIR_MAX_STRAIN,
        PAIR_MAX_DISPLACEMENT,
        PAIR_MIN_WORK,
        PAIR_NEIGHBOURS,
        MIN_PAIRS,
        MAX_SPREAD,
        *STRESS_RATIO_TOLERANCE,
        *STRESS_RATIO_LIMITS,
    )
)


def set_metadata(set_name: str, conf: pd.DataFrame, styles: dict[str, int], table: pd.DataFrame) -> dict:
    """``metadata.json`` of a parsed set: sizes, groups, the declared stress styles (``styles``: unit -> files),
    the stress-unit table with its method (``stress_units``) and the units of every column."""
    return {
        "set": set_name,
        "n_configs": len(conf),
        "n_atoms": int(conf["natoms"].sum()),
        "groups": {g: int(c) for g, c in conf["group"].value_counts().sort_index().items()},
        "stress_style_in_source": styles,
        "stress_units": {
            "method": STRESS_UNIT_METHOD,
            "candidates": list(CANDIDATE_STRESS_UNITS),
            "table": json.loads(table.to_json(orient="records", double_precision=6)),
        },
        "units": {
            "energy": "eV (total)",
            "forces": "eV/A",
            "stress": "eV/A^3, converted from the unit detected per (group, composition) (stress_units)",
            "positions": "A",
            "cell": "A, rows are cell vectors a, b, c",
        },
    }


def parse_files(
    files: dict[str, bytes], set_name: str, path: str | os.PathLike
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Tidy store of the files of a FitSNAP set (path relative to the set's folder -> content; ``path`` names
    their source in errors): one row per configuration (energy, stress in eV/A^3, cell, group) and one per atom
    (:func:`read_config`, :func:`config_tables`).

    The stress is converted from the unit the data are *in*, not the one the files declare: every (group,
    composition) gets its unit from the thermodynamic consistency of its stresses and energies
    (:func:`stress_unit_table`; e.g. WBe_PRB2019 declares ``StressStyle: bar`` everywhere but stores kbar in its
    EOS and elastic groups). The table, with its evidence, goes into the metadata (``stress_units``,
    :func:`set_metadata`); every row of ``configs.csv`` carries its ``stress_unit`` and ``stress_unit_status``
    (checked / noisy / unchecked)."""
    confs, atoms, declared = [], [], []
    for cid, rel in enumerate(sorted(files, key=lambda p: p.encode())):
        d, style = read_config(files[rel], rel, set_name, path)
        declared.append(style)
        row, at = config_tables(cid, rel, d, style)
        confs.append(row)
        atoms.append(at)
    conf = pd.DataFrame(confs)
    atoms = pd.concat(atoms, ignore_index=True)
    log.info(
        "%s: %d configurations parsed; checking the stress units of every (group, composition)", set_name, len(conf)
    )
    table = stress_unit_table(conf, atoms, pd.Series(declared), set_name=set_name)
    conf = apply_stress_units(conf, atoms, table)
    log_unit_changes(set_name, table)
    return conf, atoms, set_metadata(set_name, conf, dict(Counter(declared)), table)


# ------------------------------------------------------------------------------------------- reading


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
        sel = stratified_subsample(
            conf["group"].to_numpy()[kept_pos], spec["max_configs"], spec.get("min_per_group", 1), seed
        )
        pool = np.zeros(len(conf), bool)
        pool[kept_pos[sel]] = True
    ev = np.zeros(len(conf), bool)
    if spec.get("ev_group"):
        ev = keep & (conf["group"].to_numpy() == spec["ev_group"])
        if not ev.any():
            raise ValueError(
                f"materials.{spec['kind']}.ev_group {spec['ev_group']!r} has no configuration in "
                f"{data_dir} (after the filters); groups: {sorted(set(conf['group']))}"
            )
    need = pool | ev
    sub = conf[need]
    structs = from_tables(sub, atoms[atoms["config_id"].isin(sub["config_id"])])
    use = spec.get("stress_label_status")
    unlabelled = (
        (~sub["stress_unit_status"].isin(use)).to_numpy()
        if use is not None and "stress_unit_status" in sub
        else np.zeros(len(sub), bool)
    )
    for s, drop in zip(structs, unlabelled):
        s.stress = np.zeros(6) if drop else -s.stress  # FitSNAP/VASP pressure sign -> ASE sign
    return ([s for s, m in zip(structs, pool[need]) if m], [s for s, m in zip(structs, ev[need]) if m])
