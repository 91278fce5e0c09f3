"""Machine-learned interatomic potentials with the backbone's WP-ResNet: data, descriptors, energy/forces/stress.

* **Al-EMT** (:func:`generate_al_emt`): aluminium configurations generated with ASE and labelled with ASE's
  EMT potential (a *substitute* for the program's non-public Al DFT set): fcc bulk under volumetric and
  shear strain, random displacements, vacancies, (100)/(111) slabs and short MD snapshots at several
  temperatures; every configuration carries its family as ``group``. Stored in the same tidy tables as the
  FitSNAP sets (:func:`nnrds.data.acquire.parse_fitsnap`): ``configs.csv`` (energy in eV, stress in eV/A^3,
  Voigt xx yy zz yz xz xy, ASE's sign: sigma = (1/V) dE/d(strain)) and ``atoms.csv`` (positions, forces).
* **Descriptors** (:func:`descriptors`): Behler-Parrinello radial G2 and angular G4 symmetry functions with
  the cosine cutoff, computed in torch from the pair vectors d_p = R_j - R_i + S_p C of an ASE periodic
  neighbour list (``ase.neighborlist.neighbor_list('ijS')``; indices and integer shifts are fixed, the
  vectors are differentiable in positions R, cell C and a homogeneous strain eps: R -> R (1 + eps),
  C -> C (1 + eps)). For several elements they are element-resolved (G2 per neighbour element, G4 per
  unordered pair of neighbour elements, :class:`DescriptorSpec`); for one element they are plain G2, G4.
* **Potential** (:class:`Potential`): E = sum_i [e_ref(k_i) + e(G_i)] with one per-atom
  :class:`~nnrds.models.ReplicaNet` per element k (d_in = n_descriptors, d_out = 1, one replica per ensemble
  member or per posterior draw), per-element descriptor standardization and per-element reference energies
  (least squares of the total energies on the composition counts, :func:`fit_reference_energies`), so the
  networks learn the residual; F = -dE/dR and sigma = (1/V) dE/d(eps) by autograd
  (:meth:`Potential.energy_autograd`).
  For training and batch prediction the same derivatives are split by the chain rule
  (:meth:`Potential.predict`): dE/dG from autograd through the networks, times the descriptor Jacobian
  dG_i/dd_p that autograd computed once per dataset (each G_i depends only on the pair vectors centred
  at atom i), so the descriptor graph is not rebuilt every step. The tests check both routes against
  finite differences, for one element and for a binary cell.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")
VOIGT_IDX = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
AL_A0 = 4.05  # fcc Al lattice constant (A), EMT's equilibrium is ~4.05


# ============================================================================ structures and tables
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
    s = Structure(atoms.get_positions().copy(), np.asarray(atoms.get_cell()).copy(),
                  list(atoms.get_chemical_symbols()), group=group, config_id=config_id)
    if label:
        s.energy = float(atoms.get_potential_energy())
        s.forces = atoms.get_forces().copy()
        s.stress = atoms.get_stress(voigt=True).copy()  # ASE: xx yy zz yz xz xy, eV/A^3
    return s


def to_atoms(s: Structure):
    from ase import Atoms

    return Atoms(symbols=s.species, positions=s.positions, cell=s.cell, pbc=True)


def to_tables(structs: Sequence[Structure]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy FitSNAP-style tables (configs.csv, atoms.csv)."""
    confs, atoms = [], []
    for s in structs:
        row = {"config_id": s.config_id, "group": s.group, "natoms": s.natoms,
               "species": " ".join(sorted(set(s.species))), "energy_eV": s.energy}
        for k, lab in enumerate(VOIGT):
            row[f"stress_{lab}_eV_A3"] = float(s.stress[k])
        for i, v in enumerate("abc"):
            for j, c in enumerate("xyz"):
                row[f"cell_{v}{c}_A"] = float(s.cell[i, j])
        confs.append(row)
        p, f = s.positions, s.forces
        atoms.append(pd.DataFrame({"config_id": s.config_id, "atom": np.arange(s.natoms), "species": s.species,
                                   "x_A": p[:, 0], "y_A": p[:, 1], "z_A": p[:, 2],
                                   "fx_eV_A": f[:, 0], "fy_eV_A": f[:, 1], "fz_eV_A": f[:, 2]}))
    return pd.DataFrame(confs), pd.concat(atoms, ignore_index=True)


def from_tables(conf: pd.DataFrame, atoms: pd.DataFrame) -> list[Structure]:
    """Inverse of :func:`to_tables` (also reads the FitSNAP tables of :mod:`nnrds.data.acquire`)."""
    out = []
    by_cfg = {k: g for k, g in atoms.groupby("config_id", sort=False)}
    for r in conf.itertuples(index=False):
        a = by_cfg[r.config_id].sort_values("atom")
        cell = np.array([[getattr(r, f"cell_{v}{c}_A") for c in "xyz"] for v in "abc"], float)
        out.append(Structure(np.array(a[["x_A", "y_A", "z_A"]], dtype=float), cell, a["species"].astype(str).tolist(),
                             float(r.energy_eV), np.array(a[["fx_eV_A", "fy_eV_A", "fz_eV_A"]], dtype=float),
                             np.array([getattr(r, f"stress_{lab}_eV_A3") for lab in VOIGT], float),
                             str(r.group), int(r.config_id)))
    return out


def stress_to_ev_a3(value, unit: str):
    """Stress in ``unit`` (bar, kbar, kB, GPa, eV/A^3) -> eV/A^3 (the factors of :mod:`nnrds.data.acquire`)."""
    from .data.acquire import STRESS_TO_EV_A3

    if unit not in STRESS_TO_EV_A3:
        raise ValueError(f"unknown stress unit {unit!r}; known {sorted(STRESS_TO_EV_A3)}")
    return np.asarray(value, float) * STRESS_TO_EV_A3[unit]


# ============================================================================ Al-EMT generator
AL_EMT_FAMILIES = ("strain", "shear", "rattle", "vacancy", "surf100", "surf111", "md")


def generate_al_emt(n_configs: int, *, seed: int = 0, repeat: int = 2, strain_max: float = 0.04,
                    shear_max: float = 0.04, rattle_std: float = 0.08, md_temperatures: Sequence[float] = (300, 900),
                    md_steps: int = 10, slab_layers: int = 4, vacuum: float = 6.0,
                    weights: dict[str, float] | None = None) -> list[Structure]:
    """Seeded Al configurations labelled with ASE's EMT (see module docstring).

    ``n_configs`` are shared between the families by ``weights`` (default: equal); MD snapshots are taken
    every ``md_steps`` velocity-Verlet steps (2 fs) from a rattled fcc cell thermalised at each temperature,
    group ``md{T}K``. Every bulk configuration also gets a small random strain (<= ``strain_max``) so that
    stresses vary; slabs are periodic in-plane with ``vacuum`` A of vacuum on each side (periodic along z,
    so stresses stay defined)."""
    from ase.build import bulk, fcc100, fcc111
    from ase.calculators.emt import EMT
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet
    from ase import units

    rng = np.random.default_rng(seed)
    fams = list(AL_EMT_FAMILIES)
    w = np.array([(weights or {}).get(f, 1.0) for f in fams], float)
    counts = np.floor(n_configs * w / w.sum()).astype(int)
    counts[: n_configs - counts.sum()] += 1
    base = bulk("Al", "fcc", a=AL_A0, cubic=True).repeat(repeat)
    out: list[Structure] = []

    def rand_strain(mag, shear=False):
        e = rng.uniform(-mag, mag, size=(3, 3)) if shear else np.diag(rng.uniform(-mag, mag, size=3))
        return 0.5 * (e + e.T)

    def add(at, group):
        at.calc = EMT()
        out.append(from_atoms(at, group=group, config_id=len(out)))

    def strained(at, eps):
        at = at.copy()
        at.set_cell(np.asarray(at.get_cell()) @ (np.eye(3) + eps), scale_atoms=True)
        return at

    for fam, n in zip(fams, counts):
        if fam == "md":
            temps = list(md_temperatures)
            per_t = np.full(len(temps), n // len(temps))
            per_t[: n - per_t.sum()] += 1
            for T, m in zip(temps, per_t):
                if m == 0:
                    continue
                at = base.copy()
                at.rattle(0.02, seed=int(rng.integers(2**31)))
                at.calc = EMT()
                thermalize_momenta(at, temperature_K=2 * T, rng=np.random.default_rng(int(rng.integers(2**31))))
                dyn = VelocityVerlet(at, timestep=2 * units.fs)
                for _ in range(int(m)):
                    dyn.run(md_steps)
                    snap = at.copy()
                    add(snap, f"md{int(T)}K")
            continue
        for _ in range(n):
            if fam == "strain":
                at = strained(base, np.eye(3) * rng.uniform(-strain_max, strain_max) + rand_strain(0.005))
                at.rattle(0.01, seed=int(rng.integers(2**31)))
            elif fam == "shear":
                at = strained(base, rand_strain(shear_max, shear=True))
                at.rattle(0.01, seed=int(rng.integers(2**31)))
            elif fam == "rattle":
                at = strained(base, rand_strain(0.01))
                at.rattle(rattle_std, seed=int(rng.integers(2**31)))
            elif fam == "vacancy":
                at = strained(base, rand_strain(0.01))
                del at[int(rng.integers(len(at)))]
                at.rattle(0.04, seed=int(rng.integers(2**31)))
            else:  # slabs
                make = fcc100 if fam == "surf100" else fcc111
                at = make("Al", size=(2, 2, slab_layers), a=AL_A0, vacuum=vacuum, periodic=True)
                at = strained(at, np.diag([*rng.uniform(-0.01, 0.01, 2), 0.0]))
                at.rattle(0.04, seed=int(rng.integers(2**31)))
            add(at, fam)
    return out


def emt_fcc_ev(lattice: Sequence[float]) -> pd.DataFrame:
    """EMT reference E-V curve of fcc Al (4-atom cubic cell): lattice a, volume and energy per atom."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rows = []
    for a in lattice:
        at = bulk("Al", "fcc", a=float(a), cubic=True)
        at.calc = EMT()
        rows.append({"a_A": float(a), "volume_A3_per_atom": at.get_volume() / len(at),
                     "energy_eV_per_atom": at.get_potential_energy() / len(at)})
    return pd.DataFrame(rows)


# ============================================================================ descriptors
@dataclass(frozen=True)
class DescriptorSpec:
    """G2: exp(-eta (r - r_s)^2) fc(r) on ``n_radial`` centres r_s in [r_min, cutoff] (eta = 1/(2 spacing^2)).
    G4: 2^(1-zeta) sum_{j<k} (1 + lambda cos theta_ijk)^zeta exp(-eta (r_ij^2 + r_ik^2 + r_jk^2))
    fc(r_ij) fc(r_ik) fc(r_jk) for every (eta, zeta, lambda). fc(r) = (cos(pi r / rc) + 1) / 2 for r < rc.

    Element resolution (Behler-Parrinello's multi-element scheme): with ``elements`` (sorted symbols) the G2
    sum runs separately over the neighbours of each element and the G4 sum over the neighbour pairs of each
    unordered element pair (a, b), a <= b in ``elements`` order. Column order: G2 of element 0 (n_radial
    columns), G2 of element 1, ..., then G4 of pair (0, 0), (0, 1), ..., (1, 1), ... (n_angular columns
    each). With one element (or ``elements`` empty: every atom the same kind) this is exactly [G2, G4]."""

    cutoff: float = 5.0
    n_radial: int = 8
    r_min: float = 2.0
    angular_etas: tuple[float, ...] = (0.005, 0.05)
    zetas: tuple[float, ...] = (1.0, 4.0)
    lambdas: tuple[float, ...] = (1.0, -1.0)
    elements: tuple[str, ...] = ()

    @property
    def n_elements(self) -> int:
        return max(1, len(self.elements))

    @property
    def n_element_pairs(self) -> int:
        return self.n_elements * (self.n_elements + 1) // 2

    @property
    def n_angular(self) -> int:
        """G4 columns per element pair."""
        return len(self.angular_etas) * len(self.zetas) * len(self.lambdas)

    @property
    def n_descriptors(self) -> int:
        return self.n_elements * self.n_radial + self.n_element_pairs * self.n_angular

    def element_index(self, species: Sequence[str]) -> np.ndarray:
        """Position of every symbol in ``elements`` (all 0 when ``elements`` is empty)."""
        if not self.elements:
            return np.zeros(len(species), dtype=np.int64)
        pos = {e: k for k, e in enumerate(self.elements)}
        unknown = sorted(set(species) - set(pos))
        if unknown:
            raise ValueError(f"species {unknown} are not among the descriptor elements {list(self.elements)}")
        return np.array([pos[x] for x in species], dtype=np.int64)

    def pair_block(self) -> np.ndarray:
        """(n_elements, n_elements) symmetric table: element pair -> its G4 block (a <= b, row-major)."""
        n = self.n_elements
        t = np.zeros((n, n), dtype=np.int64)
        for c, (a, b) in enumerate((a, b) for a in range(n) for b in range(a, n)):
            t[a, b] = t[b, a] = c
        return t

    @classmethod
    def from_dict(cls, d: dict | None) -> "DescriptorSpec":
        d = dict(d or {})
        for k in ("angular_etas", "zetas", "lambdas"):
            if k in d:
                d[k] = tuple(float(x) for x in d[k])
        if "elements" in d:
            d["elements"] = tuple(str(x) for x in d["elements"])
        return cls(**d)


@dataclass
class Neighbors:
    """Fixed neighbour-list topology of one configuration (indices and integer cell shifts)."""

    i: np.ndarray  # (P,) centre atom
    j: np.ndarray  # (P,) neighbour atom
    S: np.ndarray  # (P, 3) integer shifts: d_p = R_j - R_i + S_p @ C
    ta: np.ndarray  # (T,) first pair of each triplet (same centre)
    tb: np.ndarray  # (T,) second pair
    elem: np.ndarray | None = None  # (n,) element index of every atom (DescriptorSpec.element_index)
    pair_el: np.ndarray | None = None  # (P,) element index of each pair's neighbour j
    trip_blk: np.ndarray | None = None  # (T,) G4 block of each triplet's neighbour-element pair

    @property
    def n_triplets(self) -> int:
        return len(self.ta)


def neighbor_topology(s: Structure, cutoff: float, spec: "DescriptorSpec | None" = None) -> Neighbors:
    """ASE periodic neighbour list within ``cutoff``, sorted by (i, j), with the triplets (pairs of pairs with
    the same centre) and, given ``spec``, the element indices the element-resolved descriptors need."""
    from ase.neighborlist import neighbor_list

    i, j, S = neighbor_list("ijS", to_atoms(s), float(cutoff))
    order = np.lexsort((j, i))
    i, j, S = i[order], j[order], S[order]
    ta, tb = [], []
    starts = np.searchsorted(i, np.arange(s.natoms))
    ends = np.searchsorted(i, np.arange(s.natoms), side="right")
    for a0, a1 in zip(starts, ends):
        if a1 - a0 > 1:
            u, v = np.triu_indices(a1 - a0, k=1)
            ta.append(u + a0)
            tb.append(v + a0)
    cat = (lambda x: np.concatenate(x) if x else np.zeros(0, int))
    nb = Neighbors(i.astype(np.int64), j.astype(np.int64), S.astype(np.float64), cat(ta).astype(np.int64),
                   cat(tb).astype(np.int64))
    spec = spec or DescriptorSpec(cutoff=cutoff)
    nb.elem = spec.element_index(s.species)
    nb.pair_el = nb.elem[nb.j]
    nb.trip_blk = spec.pair_block()[nb.pair_el[nb.ta], nb.pair_el[nb.tb]]
    return nb


def _fc(r: torch.Tensor, rc: float) -> torch.Tensor:
    return torch.where(r < rc, 0.5 * (torch.cos(math.pi * r.clamp(max=rc) / rc) + 1.0), torch.zeros_like(r))


def descriptor_terms(d: torch.Tensor, ta: torch.Tensor, tb: torch.Tensor, spec: DescriptorSpec):
    """Per-pair radial terms (P, n_radial) and per-triplet angular terms (T, n_angular) (no sums yet)."""
    rc = spec.cutoff
    r = d.norm(dim=1)
    fc = _fc(r, rc)
    centres = torch.linspace(spec.r_min, rc, spec.n_radial, dtype=d.dtype, device=d.device)
    spacing = (rc - spec.r_min) / max(spec.n_radial - 1, 1)
    g2 = torch.exp(-(0.5 / spacing**2) * (r[:, None] - centres) ** 2) * fc[:, None]
    if not (spec.n_angular and len(ta)):
        return g2, d.new_zeros(len(ta), spec.n_angular)
    return g2, angular_terms(d[ta], d[tb], spec)


def angular_terms(da: torch.Tensor, db: torch.Tensor, spec: DescriptorSpec) -> torch.Tensor:
    """The G4 terms (T, n_angular) of triplets with pair vectors da, db (T, 3) (:class:`DescriptorSpec`), as a
    function of the two vectors of each triplet alone (:func:`descriptor_terms` and the per-triplet Jacobians)."""
    rc = spec.cutoff
    ra, rb = da.norm(dim=1), db.norm(dim=1)
    rab = (db - da).norm(dim=1)
    cos = (da * db).sum(1) / (ra * rb)
    base = _fc(ra, rc) * _fc(rb, rc) * _fc(rab, rc)
    r2 = ra**2 + rb**2 + rab**2
    cols = []
    for eta in spec.angular_etas:
        radial = torch.exp(-eta * r2) * base
        for zeta in spec.zetas:
            for lam in spec.lambdas:
                cols.append(2.0 ** (1 - zeta) * (1 + lam * cos).clamp_min(0) ** zeta * radial)
    return torch.stack(cols, 1)


def descriptors_from_pairs(d: torch.Tensor, pair_i: torch.Tensor, ta: torch.Tensor, tb: torch.Tensor,
                           n_atoms: int, spec: DescriptorSpec, pair_el: torch.Tensor | None = None,
                           trip_blk: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetry functions (n_atoms, n_descriptors) from pair vectors d (P, 3) centred at ``pair_i``;
    triplets are pairs of pairs (ta, tb) with the same centre. With several elements, each pair's term goes
    to the block of its neighbour's element ``pair_el`` and each triplet's to its pair block ``trip_blk``
    (row ``atom * n_blocks + block`` of a (n_atoms * n_blocks, columns) sum, reshaped element-major)."""
    g2, g4 = descriptor_terms(d, ta, tb, spec)
    ne, nb = spec.n_elements, spec.n_element_pairs
    rows2 = pair_i if ne == 1 else pair_i * ne + pair_el
    rows4 = pair_i[ta] if nb == 1 else pair_i[ta] * nb + trip_blk
    G2 = d.new_zeros(n_atoms * ne, spec.n_radial).index_add(0, rows2, g2).reshape(n_atoms, ne * spec.n_radial)
    G4 = d.new_zeros(n_atoms * nb, spec.n_angular).index_add(0, rows4, g4).reshape(n_atoms, nb * spec.n_angular)
    return torch.cat([G2, G4], 1)


def descriptor_jacobian(d: torch.Tensor, ta: torch.Tensor, tb: torch.Tensor, spec: DescriptorSpec,
                        pair_el: torch.Tensor | None = None, trip_blk: torch.Tensor | None = None) -> torch.Tensor:
    """H (P, D, 3) = dG_{i(p)}/dd_p by autograd. G_i depends only on the pair vectors centred at i, so the
    gradient of the *sum over atoms* of one descriptor column with respect to d is that column's H.
    Element blocks: a pair enters only the G2 block of its neighbour's element (so its G2 rows are the
    element-agnostic ones, placed there); a triplet enters only its pair block's G4 columns, with the
    Jacobians of :func:`angular_terms` in its two pair vectors (forward-mode autograd)."""
    d = d.detach().requires_grad_(True)
    ne, nb = spec.n_elements, spec.n_element_pairs

    def grads(cols):
        H = [torch.autograd.grad(c, d, retain_graph=True, allow_unused=True)[0] for c in cols]
        return [h if h is not None else torch.zeros_like(d) for h in H]

    with torch.enable_grad():
        if ne == 1:
            g2, g4 = descriptor_terms(d, ta, tb, spec)
            cols = [g2[:, k].sum() for k in range(spec.n_radial)] + [g4[:, k].sum() for k in range(spec.n_angular)]
            return torch.stack(grads(cols), 1)
        g2, _ = descriptor_terms(d, ta[:0], tb[:0], spec)  # radial terms only
        H2 = torch.stack(grads([g2[:, k].sum() for k in range(spec.n_radial)]), 1)  # (P, n_radial, 3)
    H = d.new_zeros(len(d), spec.n_descriptors, 3)
    cols2 = pair_el[:, None] * spec.n_radial + torch.arange(spec.n_radial, device=d.device)
    H.scatter_(1, cols2[..., None].expand(-1, -1, 3), H2.detach())
    if spec.n_angular and len(ta):
        # each triplet's G4 terms depend on its two pair vectors only: their per-triplet Jacobians
        # (T, n_angular, 3) by forward-mode autograd (6 JVPs), added to rows (pair, block) of H
        da, db = d[ta].detach(), d[tb].detach()
        zero = torch.zeros_like(da)
        Ja, Jb = [], []
        for c in range(3):
            e = torch.zeros_like(da)
            e[:, c] = 1.0
            Ja.append(torch.func.jvp(lambda a, b: angular_terms(a, b, spec), (da, db), (e, zero))[1])
            Jb.append(torch.func.jvp(lambda a, b: angular_terms(a, b, spec), (da, db), (zero, e))[1])
        Ja, Jb = torch.stack(Ja, -1), torch.stack(Jb, -1)  # (T, n_angular, 3)
        H4 = d.new_zeros(len(d) * nb, spec.n_angular, 3).index_add(0, ta * nb + trip_blk, Ja)
        H4 = H4.index_add(0, tb * nb + trip_blk, Jb).reshape(len(d), nb * spec.n_angular, 3)
        H[:, ne * spec.n_radial:] = H4
    return H.detach()


def pair_vectors(pos: torch.Tensor, cell: torch.Tensor, nb: Neighbors, strain: torch.Tensor | None = None):
    """d_p = R'_j - R'_i + S_p C' with R' = R (1 + eps), C' = C (1 + eps)."""
    if strain is not None:
        F = torch.eye(3, dtype=pos.dtype) + strain
        pos, cell = pos @ F, cell @ F
    i, j = torch.as_tensor(nb.i), torch.as_tensor(nb.j)
    S = torch.as_tensor(nb.S, dtype=pos.dtype)
    return pos[j] - pos[i] + S @ cell


def descriptors(pos: torch.Tensor, cell: torch.Tensor, nb: Neighbors, spec: DescriptorSpec,
                strain: torch.Tensor | None = None) -> torch.Tensor:
    """Per-atom descriptors (n, D), differentiable in positions, cell and strain (``nb`` from
    :func:`neighbor_topology` with the same ``spec`` when it has several elements)."""
    d = pair_vectors(pos, cell, nb, strain)
    el = (lambda a: None if a is None else torch.as_tensor(a))
    return descriptors_from_pairs(d, torch.as_tensor(nb.i), torch.as_tensor(nb.ta), torch.as_tensor(nb.tb),
                                  pos.shape[0], spec, el(nb.pair_el), el(nb.trip_blk))


# ============================================================================ precomputed dataset
@dataclass
class AtomsData:
    """A dataset of configurations flattened for batched prediction (float64 on the CPU).

    G (N, D) descriptors; H (P, D, 3) = dG_{i(p)}/dd_p (autograd, once); d (P, 3) pair vectors;
    pair_i / pair_j global atom indices; atom_cfg (N,) and pair_cfg (P,) configuration positions 0..B-1;
    elem (N,) element index of every atom (DescriptorSpec.element_index); has_stress (B,) whether the
    configuration carries a stress label (FitSNAP stores six exact zeros where the DFT run computed none)."""

    G: torch.Tensor
    H: torch.Tensor
    d: torch.Tensor
    pair_i: torch.Tensor
    pair_j: torch.Tensor
    atom_cfg: torch.Tensor
    pair_cfg: torch.Tensor
    natoms: torch.Tensor  # (B,)
    volume: torch.Tensor  # (B,)
    energy: torch.Tensor  # (B,) total energy
    forces: torch.Tensor  # (N, 3)
    stress: torch.Tensor  # (B, 6)
    groups: list[str] = field(default_factory=list)
    config_ids: list[int] = field(default_factory=list)
    elem: torch.Tensor | None = None  # (N,) long
    has_stress: torch.Tensor | None = None  # (B,) bool

    @property
    def n_configs(self) -> int:
        return len(self.natoms)

    def composition(self, n_elements: int) -> torch.Tensor:
        """(B, n_elements) atom counts of every element per configuration (float64)."""
        c = torch.zeros(self.n_configs, n_elements, dtype=torch.float64, device=self.atom_cfg.device)
        return c.index_put_((self.atom_cfg, self.elem), torch.ones(len(self.elem), dtype=torch.float64,
                                                                    device=c.device), accumulate=True)

    def to(self, device=None, dtype: torch.dtype | None = None) -> "AtomsData":
        """Moved to ``device``; floating tensors (descriptors, Jacobians, targets) cast to ``dtype``."""
        def mv(v):
            if not isinstance(v, torch.Tensor):
                return v
            return v.to(device=device, dtype=dtype if dtype is not None and v.is_floating_point() else None)

        return AtomsData(**{k: mv(v) for k, v in self.__dict__.items()})

    def subset(self, idx) -> "AtomsData":
        """Configurations ``idx`` (positions 0..B-1) as a new dataset, in that order."""
        dev = self.G.device
        idx = torch.as_tensor(idx, dtype=torch.long).reshape(-1).to(dev)
        B = self.n_configs
        new_pos = torch.full((B,), -1, dtype=torch.long, device=dev)
        new_pos[idx] = torch.arange(len(idx), device=dev)
        am = new_pos[self.atom_cfg] >= 0
        pm = new_pos[self.pair_cfg] >= 0
        atom_new = torch.full((len(self.atom_cfg),), -1, dtype=torch.long, device=dev)
        atoms_sel = am.nonzero().squeeze(1)
        # atoms grouped by their new configuration order
        order = torch.argsort(new_pos[self.atom_cfg[atoms_sel]], stable=True)
        atoms_sel = atoms_sel[order]
        atom_new[atoms_sel] = torch.arange(len(atoms_sel), device=dev)
        pairs_sel = pm.nonzero().squeeze(1)
        il = idx.tolist()
        return AtomsData(self.G[atoms_sel], self.H[pairs_sel], self.d[pairs_sel], atom_new[self.pair_i[pairs_sel]],
                         atom_new[self.pair_j[pairs_sel]], new_pos[self.atom_cfg[atoms_sel]],
                         new_pos[self.pair_cfg[pairs_sel]], self.natoms[idx], self.volume[idx], self.energy[idx],
                         self.forces[atoms_sel], self.stress[idx], [self.groups[k] for k in il],
                         [self.config_ids[k] for k in il], self.elem[atoms_sel], self.has_stress[idx])


def _chunks(nbs: Sequence[Neighbors], chunk: int, max_triplets: int) -> list[tuple[int, int]]:
    """Consecutive configuration ranges of at most ``chunk`` configurations and (unless a single
    configuration exceeds it) ``max_triplets`` triplets: bounds the memory of the descriptor graph."""
    out, c0, tri = [], 0, 0
    for k, nb in enumerate(nbs):
        if k > c0 and (k - c0 >= chunk or tri + nb.n_triplets > max_triplets):
            out.append((c0, k))
            c0, tri = k, 0
        tri += nb.n_triplets
    if c0 < len(nbs):
        out.append((c0, len(nbs)))
    return out


def build_dataset(structs: Sequence[Structure], spec: DescriptorSpec, chunk: int = 64,
                  max_triplets: int = 2_000_000) -> AtomsData:
    """Neighbour lists, descriptors and their pair-vector Jacobians for every configuration."""
    parts = []
    nbs = [neighbor_topology(s, spec.cutoff, spec) for s in structs]
    for c0, c1 in _chunks(nbs, chunk, max_triplets):
        block = structs[c0:c1]
        ds, pis, pjs, tas, tbs, acfg, pcfg, pel, tbl, elem = [], [], [], [], [], [], [], [], [], []
        off = poff = 0
        for b, s in enumerate(block):
            nb = nbs[c0 + b]
            d = pair_vectors(torch.as_tensor(s.positions), torch.as_tensor(s.cell), nb)
            ds.append(d)
            pis.append(torch.as_tensor(nb.i) + off)
            pjs.append(torch.as_tensor(nb.j) + off)
            tas.append(torch.as_tensor(nb.ta) + poff)
            tbs.append(torch.as_tensor(nb.tb) + poff)
            pel.append(torch.as_tensor(nb.pair_el))
            tbl.append(torch.as_tensor(nb.trip_blk))
            elem.append(torch.as_tensor(nb.elem))
            acfg.append(torch.full((s.natoms,), c0 + b, dtype=torch.long))
            pcfg.append(torch.full((len(nb.i),), c0 + b, dtype=torch.long))
            off += s.natoms
            poff += len(nb.i)
        d = torch.cat(ds)
        pi, pj, ta, tb, pe, tk = (torch.cat(x) for x in (pis, pjs, tas, tbs, pel, tbl))
        G = descriptors_from_pairs(d, pi, ta, tb, off, spec, pe, tk)
        H = descriptor_jacobian(d, ta, tb, spec, pe, tk)
        parts.append((G.detach(), H, d.detach(), pi, pj, torch.cat(acfg), torch.cat(pcfg), off, torch.cat(elem)))
    G, H, d, pi, pj, acfg, pcfg, elem = ([] for _ in range(8))
    aoff = 0
    for g, h, dd, a, b, ac, pc, n, el in parts:
        G.append(g), H.append(h), d.append(dd), pi.append(a + aoff), pj.append(b + aoff), acfg.append(ac)
        pcfg.append(pc), elem.append(el)
        aoff += n
    f64 = torch.float64
    return AtomsData(torch.cat(G), torch.cat(H), torch.cat(d), torch.cat(pi), torch.cat(pj), torch.cat(acfg),
                     torch.cat(pcfg), torch.tensor([s.natoms for s in structs], dtype=f64),
                     torch.tensor([s.volume for s in structs], dtype=f64),
                     torch.tensor([s.energy for s in structs], dtype=f64),
                     torch.as_tensor(np.concatenate([s.forces for s in structs]), dtype=f64),
                     torch.as_tensor(np.stack([s.stress for s in structs]), dtype=f64),
                     [s.group for s in structs], [s.config_id for s in structs], torch.cat(elem),
                     torch.tensor([bool(np.any(s.stress != 0)) for s in structs]))


def fit_reference_energies(counts, energy) -> np.ndarray:
    """Per-element reference energies e_ref (n_elements,) by least squares of the total energies on the
    composition counts, E_b ~ sum_e n_be e_ref_e, with weights 1/N_b^2 (i.e. energy *per atom* on the
    composition fractions, the quantity the training loss compares). One element: the mean energy per atom."""
    c = np.asarray(counts, dtype=float)
    n = c.sum(1)
    ref, *_ = np.linalg.lstsq(c / n[:, None], np.asarray(energy, dtype=float) / n, rcond=None)
    return ref


# ============================================================================ the potential
AtomicFn = Callable[[torch.Tensor, int], torch.Tensor]  # (S, n, D) standardized descriptors of element k -> (S, n, 1)


class Potential(torch.nn.Module):
    """E = sum_i [e_ref[k_i] + e_scale * net_{k_i}((G_i - mean_{k_i}) / std_{k_i})]: one ReplicaNet per element
    (``nets[k]`` for ``spec.elements[k]``; all with the same R replicas = ensemble members), per-element
    descriptor standardization (rows of ``g_mean`` / ``g_std``, shape (n_elements, D) or (D,) for one element)
    and per-element reference energies ``e_ref`` (:func:`fit_reference_energies`), so the networks learn the
    residual. ``nets`` may be a single ReplicaNet (one element).

    ``atomic`` (optional in :meth:`predict` / :meth:`energy_autograd`) replaces the nets by any map
    (X (S, n, D), k) -> (S, n, 1) for the atoms of element k, e.g. S posterior draws of the weights of all
    element networks (:meth:`nnrds.uq.bbb.BayesNetStack.forward_part`)."""

    def __init__(self, nets, spec: DescriptorSpec, g_mean, g_std, e_ref, e_scale: float):
        super().__init__()
        nets = [nets] if isinstance(nets, torch.nn.Module) and not isinstance(nets, torch.nn.ModuleList) else nets
        self.nets, self.spec = torch.nn.ModuleList(nets), spec
        ne = len(self.nets)
        if ne != spec.n_elements:
            raise ValueError(f"{ne} element networks for {spec.n_elements} descriptor elements {list(spec.elements)}")
        dt = next(self.nets.parameters()).dtype
        self.register_buffer("g_mean", torch.as_tensor(g_mean, dtype=dt).reshape(ne, -1))
        self.register_buffer("g_std", torch.as_tensor(g_std, dtype=dt).reshape(ne, -1))
        self.e_ref = [float(x) for x in np.atleast_1d(np.asarray(e_ref, dtype=float))]
        if len(self.e_ref) != ne:
            raise ValueError(f"{len(self.e_ref)} reference energies for {ne} elements")
        self.e_scale = float(e_scale)

    @property
    def n_elements(self) -> int:
        return len(self.nets)

    @property
    def n_replicas(self) -> int:
        return self.nets[0].n_replicas

    def l2(self) -> torch.Tensor:
        out = self.nets[0].l2()
        for net in self.nets[1:]:
            out = out + net.l2()
        return out

    @property
    def dtype(self) -> torch.dtype:
        return self.g_mean.dtype

    def atomic_energies(self, G: torch.Tensor, S: int, atomic: AtomicFn | None = None, elem: torch.Tensor | None = None):
        """(S, N) atomic energies and, per element k, (atom indices of k or None for all, the (S, n_k, D)
        standardized-input leaf they were computed from)."""
        def one(Gk, k):
            X = ((Gk.to(self.dtype) - self.g_mean[k]) / self.g_std[k]).unsqueeze(0).expand(S, -1, -1).clone()
            X.requires_grad_(True)
            out = (atomic(X, k) if atomic is not None else self.nets[k](X))[..., 0]
            return self.e_ref[k] + self.e_scale * out, X

        if self.n_elements == 1:
            e, X = one(G, 0)
            return e, [(None, X)]
        e = G.new_zeros(S, G.shape[0], dtype=self.dtype)
        leaves = []
        for k in range(self.n_elements):
            idx = (elem == k).nonzero().squeeze(1)
            ek, X = one(G[idx], k)
            e = e.index_copy(1, idx, ek)
            leaves.append((idx, X))
        return e, leaves

    def _dE_dG(self, E: torch.Tensor, leaves, N: int, create_graph: bool) -> torch.Tensor:
        """dE/dG (S, N, D) in raw descriptor units from the per-element standardized leaves."""
        gs = torch.autograd.grad(E.sum(), [X for _, X in leaves], create_graph=create_graph)
        if self.n_elements == 1:
            return gs[0] / self.g_std[0]
        V = gs[0].new_zeros(gs[0].shape[0], N, self.g_std.shape[1])
        for k, ((idx, _), g) in enumerate(zip(leaves, gs)):
            V = V.index_copy(1, idx, g / self.g_std[k])
        return V

    def predict(self, data: AtomsData, atomic: AtomicFn | None = None, n: int | None = None,
                create_graph: bool = False, forces: bool = True, stress: bool = True) -> dict[str, torch.Tensor]:
        """Energies (S, B), forces (S, N, 3), stresses (S, B, 6) by the chain rule (module docstring)."""
        S = n or self.n_replicas
        dt = self.dtype
        with torch.enable_grad():
            e, leaves = self.atomic_energies(data.G, S, atomic, data.elem)
            B = data.n_configs
            E = e.new_zeros(S, B).index_add(1, data.atom_cfg, e)
            out = {"energy": E}
            if not (forces or stress):
                return out
            V = self._dE_dG(E, leaves, len(data.atom_cfg), create_graph)  # dE/dG (S, N, D)
            g = torch.einsum("spd,pdk->spk", V[:, data.pair_i], data.H.to(dt))  # dE/dd_p (S, P, 3)
        if forces:
            N = len(data.atom_cfg)
            out["forces"] = g.new_zeros(S, N, 3).index_add(1, data.pair_i, g).index_add(1, data.pair_j, -g)
        if stress:
            W = torch.einsum("pb,spa->spab", data.d.to(dt), g)  # dE/deps_ba summed below, then symmetrized
            Wc = W.new_zeros(S, B, 3, 3).index_add(1, data.pair_cfg, W)
            Wc = 0.5 * (Wc + Wc.transpose(-1, -2)) / data.volume.to(dt)[None, :, None, None]
            out["stress"] = torch.stack([Wc[..., a, b] for a, b in VOIGT_IDX], -1)
        return out

    def energy_autograd(self, s: Structure, atomic: AtomicFn | None = None, n: int | None = None,
                        nb: Neighbors | None = None) -> dict[str, torch.Tensor]:
        """The reference route: descriptors built from (R, C, eps) in torch; F = -dE/dR, sigma = (1/V) dE/deps
        by autograd (per replica). Returns energy (S,), forces (S, n, 3), stress (S, 6)."""
        S = n or self.n_replicas
        nb = nb or neighbor_topology(s, self.spec.cutoff, self.spec)
        pos = torch.as_tensor(s.positions, dtype=torch.float64).requires_grad_(True)
        eps = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
        with torch.enable_grad():
            G = descriptors(pos, torch.as_tensor(s.cell, dtype=torch.float64), nb, self.spec, eps)
            e, _ = self.atomic_energies(G, S, atomic, torch.as_tensor(nb.elem))
            E = e.sum(1)
            fs, ss = [], []
            for k in range(S):
                gp, ge = torch.autograd.grad(E[k], (pos, eps), retain_graph=k < S - 1)
                fs.append(-gp)
                ge = 0.5 * (ge + ge.T) / s.volume
                ss.append(torch.stack([ge[a, b] for a, b in VOIGT_IDX]))
        return {"energy": E.detach(), "forces": torch.stack(fs), "stress": torch.stack(ss)}
