"""Labelled atomic configurations and their tidy tables.

A :class:`Structure` holds positions (A), cell (rows are cell vectors), species and the labels: total energy
(eV), forces (eV/A) and stress (eV/A^3, Voigt xx yy zz yz xz xy, ASE's sign: sigma = (1/V) dE/d(strain)),
with the configuration's family as ``group``. :func:`to_tables` / :func:`from_tables` convert to and from the
tidy tables every set is stored in (``configs.csv``: one row per configuration; ``atoms.csv``: one row per
atom), the generated Al-EMT set (:mod:`nnrds.data.al_emt`) and the acquired FitSNAP sets
(:mod:`nnrds.data.acquire`, read by :mod:`nnrds.data.fitsnap`) alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")
VOIGT_IDX = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


@dataclass
class Structure:
    """One labelled configuration (eV, A, eV/A, eV/A^3)."""

    positions: np.ndarray  # (n, 3)
    cell: np.ndarray  # (3, 3), rows are cell vectors
    species: list[str]
    energy: float = float("nan")
    forces: np.ndarray | None = None  # (n, 3)
    stress: np.ndarray | None = None  # (6,) Voigt, eV/A^3, sigma = (1/V) dE/deps
    group: str = ""
    config_id: int = 0

    @property
    def natoms(self) -> int:
        return len(self.positions)

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.cell)))


def from_atoms(atoms, group: str = "", config_id: int = 0, label: bool = True) -> Structure:
    """ASE Atoms (with a calculator when ``label``) -> :class:`Structure`."""
    s = Structure(
        atoms.get_positions().copy(),
        np.asarray(atoms.get_cell()).copy(),
        list(atoms.get_chemical_symbols()),
        group=group,
        config_id=config_id,
    )
    if label:
        s.energy = float(atoms.get_potential_energy())
        s.forces = atoms.get_forces().copy()
        s.stress = atoms.get_stress(voigt=True).copy()  # ASE: xx yy zz yz xz xy, eV/A^3
    return s


def to_atoms(s: Structure):
    from ase import Atoms

    return Atoms(symbols=s.species, positions=s.positions, cell=s.cell, pbc=True)


def stress_columns(voigt: Sequence[float]) -> dict[str, float]:
    """The stress columns of a ``configs.csv`` row from the Voigt vector (eV/A^3, order :data:`VOIGT`)."""
    return {f"stress_{lab}_eV_A3": float(v) for lab, v in zip(VOIGT, voigt, strict=True)}


def cell_columns(cell: np.ndarray) -> dict[str, float]:
    """The cell columns of a ``configs.csv`` row (A; ``cell_<vector><axis>_A``, rows of ``cell`` are a, b, c)."""
    return {f"cell_{v}{c}_A": float(cell[i, j]) for i, v in enumerate("abc") for j, c in enumerate("xyz")}


def atoms_frame(config_id: int, species: Sequence[str], positions: np.ndarray, forces: np.ndarray) -> pd.DataFrame:
    """The ``atoms.csv`` rows of one configuration: one per atom, position (A) and force (eV/A)."""
    p, f = positions, forces
    return pd.DataFrame(
        {
            "config_id": config_id,
            "atom": np.arange(len(p)),
            "species": species,
            "x_A": p[:, 0],
            "y_A": p[:, 1],
            "z_A": p[:, 2],
            "fx_eV_A": f[:, 0],
            "fy_eV_A": f[:, 1],
            "fz_eV_A": f[:, 2],
        }
    )


def to_tables(structs: Sequence[Structure]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy FitSNAP-style tables (configs.csv, atoms.csv)."""
    confs, atoms = [], []
    for s in structs:
        row = {
            "config_id": s.config_id,
            "group": s.group,
            "natoms": s.natoms,
            "species": " ".join(sorted(set(s.species))),
            "energy_eV": s.energy,
        }
        confs.append(row | stress_columns(s.stress) | cell_columns(s.cell))
        atoms.append(atoms_frame(s.config_id, s.species, s.positions, s.forces))
    return pd.DataFrame(confs), pd.concat(atoms, ignore_index=True)


def from_tables(conf: pd.DataFrame, atoms: pd.DataFrame) -> list[Structure]:
    """Inverse of :func:`to_tables` (also reads the FitSNAP tables of :mod:`nnrds.data.acquire`)."""
    out = []
    by_cfg = {k: g for k, g in atoms.groupby("config_id", sort=False)}
    for r in conf.itertuples(index=False):
        a = by_cfg[r.config_id].sort_values("atom")
        cell = np.array([[getattr(r, f"cell_{v}{c}_A") for c in "xyz"] for v in "abc"], float)
        out.append(
            Structure(
                np.array(a[["x_A", "y_A", "z_A"]], dtype=float),
                cell,
                a["species"].astype(str).tolist(),
                float(r.energy_eV),
                np.array(a[["fx_eV_A", "fy_eV_A", "fz_eV_A"]], dtype=float),
                np.array([getattr(r, f"stress_{lab}_eV_A3") for lab in VOIGT], float),
                str(r.group),
                int(r.config_id),
            )
        )
    return out
