"""The stress unit of a FitSNAP set, detected from the data rather than taken from the files.

Every (group, composition) of a set gets the unit its stresses are actually stored in from their
thermodynamic consistency with the energies (:func:`stress_unit_table`: pairs of nearly identical cells,
ratio (dE - W_force) / W_stress = 1 in the right unit); :func:`apply_stress_units` converts the tables.
WBe_PRB2019, e.g., declares ``StressStyle: bar`` everywhere but stores kbar in its EOS and elastic groups.
Used when a set is acquired (:func:`nnrds.data.fitsnap.parse_files`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: 1 bar, 1 kbar, 1 GPa in eV / angstrom^3 (1 eV/A^3 = 160.21766208 GPa)
STRESS_TO_EV_A3 = {
    "bar": 1e5 / 1.602176634e11,
    "kB": 1e8 / 1.602176634e11,
    "kbar": 1e8 / 1.602176634e11,
    "GPa": 1e9 / 1.602176634e11,
    "eV/A^3": 1.0,
}
#: the units a stored stress may turn out to be in (unit detection, :func:`stress_unit_table`)
CANDIDATE_STRESS_UNITS = ("bar", "kbar", "GPa", "eV/A^3")
#: a (group, composition) is *checked* in a unit when its work ratio lies in STRESS_RATIO_TOLERANCE; a ratio
#: whose pairs agree (small spread) but that lies outside STRESS_RATIO_LIMITS in the nearest unit is an error
STRESS_RATIO_TOLERANCE, STRESS_RATIO_LIMITS = (0.7, 1.4), (0.5, 2.0)


def stress_to_ev_a3(value, unit: str):
    """Stress in ``unit`` (bar, kbar, kB, GPa, eV/A^3) -> eV/A^3 (the factors of :data:`STRESS_TO_EV_A3`)."""
    if unit not in STRESS_TO_EV_A3:
        raise ValueError(f"unknown stress unit {unit!r}; known {sorted(STRESS_TO_EV_A3)}")
    return np.asarray(value, float) * STRESS_TO_EV_A3[unit]


#: pairs of configurations used by the unit check: homogeneous strain between the cells of at least
#: PAIR_MIN_STRAIN and at most PAIR_MAX_STRAIN (largest |eps_ab|), atoms (same order, same species) displaced
#: beyond that strain by at most PAIR_MAX_DISPLACEMENT A, and an energy change beyond the force work of at least
#: PAIR_MIN_WORK eV (smaller changes are DFT noise); each configuration is paired with its PAIR_NEIGHBOURS
#: nearest cells of the same group and species sequence
PAIR_MIN_STRAIN, PAIR_MAX_STRAIN, PAIR_MAX_DISPLACEMENT, PAIR_MIN_WORK, PAIR_NEIGHBOURS = 1e-4, 0.05, 0.1, 1e-3, 4
#: a (group, composition) is *checked* with at least MIN_PAIRS pairs whose ratios agree: positive interquartile
#: range with q75/q25 <= MAX_SPREAD (candidate units are >= 10x apart); otherwise (no stress, fixed cell, ratios
#: scattered by DFT noise) it is *unchecked*
MIN_PAIRS, MAX_SPREAD = 2, 3.0
_VOIGT = (("xx", 0, 0), ("yy", 1, 1), ("zz", 2, 2), ("yz", 1, 2), ("xz", 0, 2), ("xy", 0, 1))
STRESS_COLUMNS = [f"stress_{lab}_eV_A3" for lab, _, _ in _VOIGT]


class StressUnitError(ValueError):
    """A group's stored stresses agree with its energies under none of the candidate units."""


def composition_label(species) -> str:
    """``['W', 'Be', 'Be']`` -> ``'Be2W1'`` (elements in alphabetical order, every count written)."""
    u, c = np.unique(np.asarray(species, dtype=str), return_counts=True)
    return "".join(f"{e}{n}" for e, n in zip(u, c))


def _stress_tensors(conf: pd.DataFrame) -> np.ndarray:
    s6 = conf[STRESS_COLUMNS].to_numpy(float)
    t = np.zeros((len(conf), 3, 3))
    for k, (_, a, b) in enumerate(_VOIGT):
        t[:, a, b] = t[:, b, a] = s6[:, k]
    return t


@dataclass
class ConfigArrays:
    """The arrays of a set that the pairs need: per atom (rows of configuration ``i`` are ``start[i]:start[i+1]``)
    positions, forces and species; per configuration cells (rows are cell vectors), volumes, stress tensors
    (stored sign, eV/A^3), energies."""

    start: np.ndarray
    pos: np.ndarray
    frc: np.ndarray
    spc: np.ndarray
    cells: np.ndarray
    vol: np.ndarray
    st: np.ndarray
    energy: np.ndarray

    @classmethod
    def of(cls, conf: pd.DataFrame, atoms: pd.DataFrame) -> ConfigArrays:
        """From the tidy tables (``conf`` with a fresh 0..n-1 index; ``atoms`` put in ``conf``'s order if needed)."""
        nat = conf["natoms"].to_numpy(int)
        start = np.r_[0, np.cumsum(nat)]
        if len(atoms) != start[-1] or not np.array_equal(
            atoms["config_id"].to_numpy(), np.repeat(conf["config_id"].to_numpy(), nat)
        ):
            atoms = atoms.set_index("config_id").loc[conf["config_id"]].reset_index()
        cells = conf[[f"cell_{v}{c}_A" for v in "abc" for c in "xyz"]].to_numpy(float).reshape(-1, 3, 3)
        return cls(
            start=start,
            pos=atoms[["x_A", "y_A", "z_A"]].to_numpy(float),
            frc=atoms[["fx_eV_A", "fy_eV_A", "fz_eV_A"]].to_numpy(float),
            spc=atoms["species"].astype(str).to_numpy(),
            cells=cells,
            vol=np.abs(np.linalg.det(cells)),
            st=_stress_tensors(conf),
            energy=conf["energy_eV"].to_numpy(float),
        )

    def atoms_of(self, a: np.ndarray, i: int) -> np.ndarray:
        """The rows of per-atom array ``a`` of configuration ``i``."""
        return a[self.start[i] : self.start[i + 1]]


def pair_buckets(conf: pd.DataFrame, arr: ConfigArrays) -> list[tuple[tuple[str, tuple], list[int]]]:
    """Configurations that can be paired, by (group, species sequence), in a fixed order (group, number of atoms,
    sequence): only those with a stress label (not six zeros)."""
    labelled = np.abs(arr.st).reshape(len(conf), -1).max(1) > 0
    buckets: dict[tuple, list[int]] = {}
    for i in np.flatnonzero(labelled):
        buckets.setdefault((conf.at[i, "group"], tuple(arr.atoms_of(arr.spc, i))), []).append(int(i))
    return sorted(buckets.items(), key=lambda kv: (kv[0][0], len(kv[0][1]), kv[0][1]))


def neighbour_pairs(cells: np.ndarray, vol: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (a < b) of configurations whose cells are among each other's :data:`PAIR_NEIGHBOURS` nearest (cell
    matrices scaled by the mean cube root of the volume), positions into ``cells``."""
    from scipy.spatial import cKDTree

    feats = cells.reshape(len(cells), 9) / np.cbrt(vol).mean()
    _, nn = cKDTree(feats).query(feats, k=min(PAIR_NEIGHBOURS + 1, len(cells)))
    return sorted({(min(a, b), max(a, b)) for a in range(len(cells)) for b in np.atleast_1d(nn[a])[1:] if b != a})


def pair_work(arr: ConfigArrays, i: int, j: int) -> dict | None:
    """Strain, non-affine displacement and works of configurations ``i`` -> ``j`` (see :func:`stress_work_pairs`);
    None when the pair is outside the PAIR_* limits (strain, displacement, work) or does no stress work."""
    M = np.linalg.solve(arr.cells[i], arr.cells[j])
    eps = 0.5 * (M + M.T) - np.eye(3)
    emax = float(np.abs(eps).max())
    if not PAIR_MIN_STRAIN <= emax <= PAIR_MAX_STRAIN:
        return None
    si = np.linalg.solve(arr.cells[i].T, arr.atoms_of(arr.pos, i).T).T
    sj = np.linalg.solve(arr.cells[j].T, arr.atoms_of(arr.pos, j).T).T
    ds = sj - si
    u = (ds - np.round(ds)) @ arr.cells[j]
    umax = float(np.abs(u).max())
    if umax > PAIR_MAX_DISPLACEMENT:
        return None
    w_force = float(-0.5 * np.sum((arr.atoms_of(arr.frc, i) + arr.atoms_of(arr.frc, j)) * u))
    w_stress = float(-0.5 * (arr.vol[i] * np.sum(arr.st[i] * eps) + arr.vol[j] * np.sum(arr.st[j] * eps)))
    d_e = float(arr.energy[j] - arr.energy[i])
    if abs(d_e - w_force) < PAIR_MIN_WORK or w_stress == 0:
        return None
    return {
        "max_strain": emax,
        "max_displacement_A": umax,
        "dE_eV": d_e,
        "w_force_eV": w_force,
        "w_stress_eV": w_stress,
        "ratio": (d_e - w_force) / w_stress,
    }


PAIR_COLUMNS = [
    "group",
    "composition",
    "config_i",
    "config_j",
    "max_strain",
    "max_displacement_A",
    "dE_eV",
    "w_force_eV",
    "w_stress_eV",
    "ratio",
]


def stress_work_pairs(conf: pd.DataFrame, atoms: pd.DataFrame) -> pd.DataFrame:
    """Thermodynamic-consistency pairs (one row per pair of nearly identical cells, see the PAIR_* constants).

    Between configurations i and j of one group with the same species sequence, the cell C_j = C_i M (rows are
    cell vectors) is a homogeneous deformation with strain eps = (M + M^T)/2 - 1 and the atoms move by the affine
    part R_i M plus a non-affine rest u (minimum image). To second order (trapezoid rule, exact for a quadratic
    energy) E_j - E_i = W_stress + W_force with W_force = -(F_i + F_j)/2 . u and
    W_stress = -(V_i s_i + V_j s_j)/2 : eps, where s is the *stored* stress (FitSNAP/VASP pressure sign, positive
    under compression) as read from the tables (eV/A^3 converted from the declared unit). The column ``ratio``
    = (dE - W_force) / W_stress is then 1 when the declared unit is right and f_true / f_declared otherwise
    (e.g. ~1000 for kbar stored as bar). Configurations with no stress (six zeros) are not paired.

    Pieces: :class:`ConfigArrays`, :func:`pair_buckets`, :func:`neighbour_pairs`, :func:`pair_work`."""
    conf = conf.reset_index(drop=True)
    arr = ConfigArrays.of(conf, atoms)
    rows = []
    for (group, seq), idx in pair_buckets(conf, arr):
        if len(idx) < 2:
            continue
        comp = composition_label(seq)
        for a, b in neighbour_pairs(arr.cells[idx], arr.vol[idx]):
            i, j = idx[a], idx[b]
            w = pair_work(arr, i, j)
            if w is not None:
                ids = {"config_i": int(conf.at[i, "config_id"]), "config_j": int(conf.at[j, "config_id"])}
                rows.append({"group": group, "composition": comp, **ids, **w})
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def _nearest_unit(ratio: float, d_unit: str) -> tuple[str, float]:
    """The candidate unit whose factor is nearest (in log) to ``ratio`` x f(d_unit), and the ratio in it."""
    if not ratio > 0:
        return d_unit, ratio
    f = ratio * STRESS_TO_EV_A3[d_unit]
    u = min(CANDIDATE_STRESS_UNITS, key=lambda x: abs(np.log(f / STRESS_TO_EV_A3[x])))
    return u, f / STRESS_TO_EV_A3[u]


def stress_unit_table(
    conf: pd.DataFrame,
    atoms: pd.DataFrame,
    declared: str | pd.Series = "bar",
    tolerance: tuple[float, float] = STRESS_RATIO_TOLERANCE,
    set_name: str = "",
) -> pd.DataFrame:
    """The stress unit of every (group, composition), detected from the data (:func:`stress_work_pairs`).

    ``conf`` holds the stress converted from the ``declared`` unit (one unit, or one per configuration row).
    Per (group, composition), from the pair ratios r (1 = declared unit right): ``ratio_declared`` = median(r)
    with its distribution-free 95% interval (:func:`nnrds.verdicts.median_ci`); ``unit`` = the candidate unit
    (:data:`CANDIDATE_STRESS_UNITS`) nearest to it; ``ratio`` (and ``ratio_low``/``ratio_high``) = the same in
    that unit. ``status``:

    * *checked*: at least MIN_PAIRS pairs whose ratios agree (q75/q25 <= MAX_SPREAD) and a ratio in
      ``tolerance``; agreeing ratios outside STRESS_RATIO_LIMITS in every unit raise :class:`StressUnitError`.
    * *noisy*: the ratios scatter (energy differences near the DFT noise), or agree on a ratio between the
      tolerance and the limits, and the median's interval decides the order of magnitude: both its ends are
      nearest (in log) to the same candidate unit. Converted; a median interval that is not positive raises
      :class:`StressUnitError` (no unit makes stress and energy agree).
    * *unchecked*: no stress labels, fewer than MIN_PAIRS pairs (fixed cell, no nearly identical cells), or an
      interval whose ends point to different units: the declared unit is kept.

    The error names the set, group, composition, ratio, pair count and what every candidate unit would give."""
    conf = conf.reset_index(drop=True)
    dec = (
        pd.Series(declared, index=conf.index)
        if isinstance(declared, str)
        else pd.Series(np.asarray(declared), index=conf.index)
    )
    comp = pd.Series(compositions(conf, atoms), index=conf.index)
    pairs = stress_work_pairs(conf, atoms)
    labelled = np.abs(conf[STRESS_COLUMNS].to_numpy(float)).max(1) > 0
    rows = []
    for (group, c), g in conf.groupby([conf["group"], comp], sort=True):
        d_units = dec[g.index].unique()
        if len(d_units) != 1:
            raise StressUnitError(
                f"{set_name} group {group!r} ({c}): files declare several stress units {sorted(d_units)}"
            )
        p = pairs[(pairs["group"] == group) & (pairs["composition"] == c)]
        rows.append(
            group_unit_row(
                group,
                c,
                str(d_units[0]),
                len(g),
                int(labelled[g.index].sum()),
                p["ratio"].to_numpy(float),
                tolerance,
                set_name,
            )
        )
    return pd.DataFrame(rows)


def group_unit_row(
    group: str,
    composition: str,
    d_unit: str,
    n_configs: int,
    n_labelled: int,
    r: np.ndarray,
    tolerance: tuple[float, float] = STRESS_RATIO_TOLERANCE,
    set_name: str = "",
) -> dict:
    """The row of :func:`stress_unit_table` of one (group, composition): its declared unit ``d_unit``, its
    configuration counts and the work ratios ``r`` of its pairs (:func:`stress_work_pairs`)."""
    from ..verdicts import median_ci

    lo, hi = tolerance
    nan = float("nan")
    row = {
        "group": group,
        "composition": composition,
        "n_configs": n_configs,
        "n_labelled": n_labelled,
        "declared_unit": d_unit,
        "unit": d_unit,
        "status": "unchecked",
        "n_pairs": len(r),
        "ratio_declared": nan,
        "ratio": nan,
        "ratio_low": nan,
        "ratio_high": nan,
        "ratio_q25": nan,
        "ratio_q75": nan,
        "spread": nan,
        "note": "",
    }
    if n_labelled == 0:
        row["note"] = "no stress labels (all six components zero)"
        return row
    if len(r) < MIN_PAIRS:
        row["note"] = (
            f"{len(r)} usable pairs (< {MIN_PAIRS}): no nearly identical cells with a strain between "
            "them (e.g. fixed-cell MD) -- declared unit kept"
        )
        return row
    med, c_lo, c_hi = median_ci(r)
    q25, q75 = (float(x) for x in np.quantile(r, [0.25, 0.75]))
    spread = q75 / q25 if q25 > 0 else float("inf")
    u, ratio = _nearest_unit(med, d_unit)
    conv = STRESS_TO_EV_A3[d_unit] / STRESS_TO_EV_A3[u]
    row.update(
        ratio_declared=med,
        spread=spread,
        unit=u,
        ratio=ratio,
        ratio_low=c_lo * conv,
        ratio_high=c_hi * conv,
        ratio_q25=q25 * conv,
        ratio_q75=q75 * conv,
    )
    tried = ", ".join(f"{x}: {med * STRESS_TO_EV_A3[d_unit] / STRESS_TO_EV_A3[x]:.3g}" for x in CANDIDATE_STRESS_UNITS)
    what = (
        f"{set_name} group {group!r} ({composition}): work ratio (dE - W_force)/W_stress = {med:.4g} with the stress "
        f"read as {d_unit} (median of {len(r)} pairs of nearly identical cells, 95% interval {c_lo:.3g}.."
        f"{c_hi:.3g}, interquartile {q25:.3g}..{q75:.3g}); as {tried}"
    )
    tight = spread <= MAX_SPREAD
    if tight and not STRESS_RATIO_LIMITS[0] <= ratio <= STRESS_RATIO_LIMITS[1]:
        raise StressUnitError(
            f"{what}: the stored stresses are inconsistent with the energies under every "
            f"candidate unit (expected a ratio within [{lo}, {hi}], at worst "
            f"[{STRESS_RATIO_LIMITS[0]}, {STRESS_RATIO_LIMITS[1]}]). Check the stress sign "
            "convention and the StressStyle of these files."
        )
    if tight and lo <= ratio <= hi:
        row.update(
            status="checked", note="declared unit confirmed" if u == d_unit else f"stored in {u}, declared {d_unit}"
        )
    elif c_lo > 0 and _nearest_unit(c_lo, d_unit)[0] == u == _nearest_unit(c_hi, d_unit)[0]:
        row.update(
            status="noisy",
            note=(
                f"pair ratios scatter or miss [{lo}, {hi}] (median {med:.3g}, "
                f"interquartile {q25:.3g}..{q75:.3g} read as {d_unit}) but the "
                "median's 95% interval fixes the unit: "
                + ("declared unit confirmed" if u == d_unit else f"stored in {u}, declared {d_unit}")
            ),
        )
    elif c_hi <= 0:
        raise StressUnitError(
            f"{what}: the stored stresses are inconsistent with the energies under every "
            "candidate unit (the work ratio is negative). Check the stress sign convention and "
            "the StressStyle of these files."
        )
    else:
        row.update(
            unit=d_unit,
            ratio=nan,
            ratio_low=nan,
            ratio_high=nan,
            ratio_q25=nan,
            ratio_q75=nan,
            note=f"pair ratios too scattered to tell the unit (median interval {c_lo:.3g}..{c_hi:.3g} "
            f"read as {d_unit}) -- declared unit kept",
        )
    return row


def apply_stress_units(conf: pd.DataFrame, atoms: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """``conf`` with its stress columns rescaled from the declared to the detected unit of its (group,
    composition) and a ``stress_unit`` column (the unit the source stored it in)."""
    conf = conf.copy()
    key = pd.MultiIndex.from_arrays([conf["group"], compositions(conf, atoms)])
    t = table.set_index(["group", "composition"])
    f = np.array([STRESS_TO_EV_A3[u] / STRESS_TO_EV_A3[d] for u, d in zip(t["unit"], t["declared_unit"])])
    factor = pd.Series(f, index=t.index).reindex(key).to_numpy()
    conf[STRESS_COLUMNS] = conf[STRESS_COLUMNS].to_numpy(float) * factor[:, None]
    conf["stress_unit"] = t["unit"].reindex(key).to_numpy()
    conf["stress_unit_status"] = t["status"].reindex(key).to_numpy()
    return conf


def compositions(conf: pd.DataFrame, atoms: pd.DataFrame) -> np.ndarray:
    """Composition label (:func:`composition_label`) of every row of ``conf``."""
    by = atoms.groupby("config_id", sort=False)["species"].apply(lambda x: composition_label(x.astype(str)))
    return by.reindex(conf["config_id"]).to_numpy()
