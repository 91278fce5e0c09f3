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
  C -> C (1 + eps)).
* **Potential** (:class:`Potential`): E = sum_i e(G_i), e = per-atom :class:`~nnrds.models.ReplicaNet`
  (d_in = n_descriptors, d_out = 1, one replica per ensemble member or per posterior draw);
  F = -dE/dR and sigma = (1/V) dE/d(eps) by autograd (:meth:`Potential.energy_autograd`).
  For training and batch prediction the same derivatives are split by the chain rule
  (:meth:`Potential.predict`): dE/dG from autograd through the network, times the descriptor Jacobian
  dG_i/dd_p that autograd computed once per dataset (each G_i depends only on the pair vectors centred
  at atom i), so the descriptor graph is not rebuilt every step. The tests check both routes against
  finite differences.
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
        out.append(Structure(a[["x_A", "y_A", "z_A"]].to_numpy(float), cell, a["species"].astype(str).tolist(),
                             float(r.energy_eV), a[["fx_eV_A", "fy_eV_A", "fz_eV_A"]].to_numpy(float),
                             np.array([getattr(r, f"stress_{lab}_eV_A3") for lab in VOIGT], float),
                             str(r.group), int(r.config_id)))
    return out


def stress_to_ev_a3(value, unit: str):
    """Stress in ``unit`` (bar, kbar, kB, GPa, eV/A^3) -> eV/A^3 (the factors of :mod:`nnrds.data.acquire`)."""
    from .data.acquire import STRESS_TO_EV_A3

    table = {**STRESS_TO_EV_A3, "GPa": 1e9 / 1.602176634e11}
    if unit not in table:
        raise ValueError(f"unknown stress unit {unit!r}; known {sorted(table)}")
    return np.asarray(value, float) * table[unit]


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
    fc(r_ij) fc(r_ik) fc(r_jk) for every (eta, zeta, lambda). fc(r) = (cos(pi r / rc) + 1) / 2 for r < rc."""

    cutoff: float = 5.0
    n_radial: int = 8
    r_min: float = 2.0
    angular_etas: tuple[float, ...] = (0.005, 0.05)
    zetas: tuple[float, ...] = (1.0, 4.0)
    lambdas: tuple[float, ...] = (1.0, -1.0)

    @property
    def n_angular(self) -> int:
        return len(self.angular_etas) * len(self.zetas) * len(self.lambdas)

    @property
    def n_descriptors(self) -> int:
        return self.n_radial + self.n_angular

    @classmethod
    def from_dict(cls, d: dict | None) -> "DescriptorSpec":
        d = dict(d or {})
        for k in ("angular_etas", "zetas", "lambdas"):
            if k in d:
                d[k] = tuple(float(x) for x in d[k])
        return cls(**d)


@dataclass
class Neighbors:
    """Fixed neighbour-list topology of one configuration (indices and integer cell shifts)."""

    i: np.ndarray  # (P,) centre atom
    j: np.ndarray  # (P,) neighbour atom
    S: np.ndarray  # (P, 3) integer shifts: d_p = R_j - R_i + S_p @ C
    ta: np.ndarray  # (T,) first pair of each triplet (same centre)
    tb: np.ndarray  # (T,) second pair


def neighbor_topology(s: Structure, cutoff: float) -> Neighbors:
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
    return Neighbors(i.astype(np.int64), j.astype(np.int64), S.astype(np.float64), cat(ta).astype(np.int64),
                     cat(tb).astype(np.int64))


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
    da, db = d[ta], d[tb]
    ra, rb = r[ta], r[tb]
    rab = (db - da).norm(dim=1)
    cos = (da * db).sum(1) / (ra * rb)
    base = fc[ta] * fc[tb] * _fc(rab, rc)
    r2 = ra**2 + rb**2 + rab**2
    cols = []
    for eta in spec.angular_etas:
        radial = torch.exp(-eta * r2) * base
        for zeta in spec.zetas:
            for lam in spec.lambdas:
                cols.append(2.0 ** (1 - zeta) * (1 + lam * cos).clamp_min(0) ** zeta * radial)
    return g2, torch.stack(cols, 1)


def descriptors_from_pairs(d: torch.Tensor, pair_i: torch.Tensor, ta: torch.Tensor, tb: torch.Tensor,
                           n_atoms: int, spec: DescriptorSpec) -> torch.Tensor:
    """Symmetry functions (n_atoms, n_descriptors) from pair vectors d (P, 3) centred at ``pair_i``;
    triplets are pairs of pairs (ta, tb) with the same centre."""
    g2, g4 = descriptor_terms(d, ta, tb, spec)
    G2 = d.new_zeros(n_atoms, spec.n_radial).index_add(0, pair_i, g2)
    G4 = d.new_zeros(n_atoms, spec.n_angular).index_add(0, pair_i[ta], g4)
    return torch.cat([G2, G4], 1)


def descriptor_jacobian(d: torch.Tensor, ta: torch.Tensor, tb: torch.Tensor, spec: DescriptorSpec) -> torch.Tensor:
    """H (P, D, 3) = dG_{i(p)}/dd_p by autograd. G_i depends only on the pair vectors centred at i, so the
    gradient of the *sum over atoms* of one descriptor column with respect to d is that column's H."""
    d = d.detach().requires_grad_(True)
    with torch.enable_grad():
        g2, g4 = descriptor_terms(d, ta, tb, spec)
        cols = [g2[:, k].sum() for k in range(spec.n_radial)] + [g4[:, k].sum() for k in range(spec.n_angular)]
        H = [torch.autograd.grad(c, d, retain_graph=True, allow_unused=True)[0] for c in cols]
    return torch.stack([h if h is not None else torch.zeros_like(d) for h in H], 1)


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
    """Per-atom descriptors (n, D), differentiable in positions, cell and strain."""
    d = pair_vectors(pos, cell, nb, strain)
    return descriptors_from_pairs(d, torch.as_tensor(nb.i), torch.as_tensor(nb.ta), torch.as_tensor(nb.tb),
                                  pos.shape[0], spec)


# ============================================================================ precomputed dataset
@dataclass
class AtomsData:
    """A dataset of configurations flattened for batched prediction (float64 on the CPU).

    G (N, D) descriptors; H (P, D, 3) = dG_{i(p)}/dd_p (autograd, once); d (P, 3) pair vectors;
    pair_i / pair_j global atom indices; atom_cfg (N,) and pair_cfg (P,) configuration positions 0..B-1."""

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

    @property
    def n_configs(self) -> int:
        return len(self.natoms)

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
                         [self.config_ids[k] for k in il])


def build_dataset(structs: Sequence[Structure], spec: DescriptorSpec, chunk: int = 64) -> AtomsData:
    """Neighbour lists, descriptors and their pair-vector Jacobians for every configuration."""
    parts = []
    for c0 in range(0, len(structs), chunk):
        block = structs[c0:c0 + chunk]
        ds, pis, pjs, tas, tbs, acfg, pcfg = [], [], [], [], [], [], []
        off = poff = 0
        for b, s in enumerate(block):
            nb = neighbor_topology(s, spec.cutoff)
            d = pair_vectors(torch.as_tensor(s.positions), torch.as_tensor(s.cell), nb)
            ds.append(d)
            pis.append(torch.as_tensor(nb.i) + off)
            pjs.append(torch.as_tensor(nb.j) + off)
            tas.append(torch.as_tensor(nb.ta) + poff)
            tbs.append(torch.as_tensor(nb.tb) + poff)
            acfg.append(torch.full((s.natoms,), c0 + b, dtype=torch.long))
            pcfg.append(torch.full((len(nb.i),), c0 + b, dtype=torch.long))
            off += s.natoms
            poff += len(nb.i)
        d = torch.cat(ds)
        pi, pj, ta, tb = torch.cat(pis), torch.cat(pjs), torch.cat(tas), torch.cat(tbs)
        G = descriptors_from_pairs(d, pi, ta, tb, off, spec)
        H = descriptor_jacobian(d, ta, tb, spec)
        parts.append((G.detach(), H, d.detach(), pi, pj, torch.cat(acfg), torch.cat(pcfg), off))
    G, H, d, pi, pj, acfg, pcfg = ([] for _ in range(7))
    aoff = 0
    for g, h, dd, a, b, ac, pc, n in parts:
        G.append(g), H.append(h), d.append(dd), pi.append(a + aoff), pj.append(b + aoff), acfg.append(ac)
        pcfg.append(pc)
        aoff += n
    f64 = torch.float64
    return AtomsData(torch.cat(G), torch.cat(H), torch.cat(d), torch.cat(pi), torch.cat(pj), torch.cat(acfg),
                     torch.cat(pcfg), torch.tensor([s.natoms for s in structs], dtype=f64),
                     torch.tensor([s.volume for s in structs], dtype=f64),
                     torch.tensor([s.energy for s in structs], dtype=f64),
                     torch.as_tensor(np.concatenate([s.forces for s in structs]), dtype=f64),
                     torch.as_tensor(np.stack([s.stress for s in structs]), dtype=f64),
                     [s.group for s in structs], [s.config_id for s in structs])


# ============================================================================ the potential
AtomicFn = Callable[[torch.Tensor], torch.Tensor]  # (S, N, D) standardized descriptors -> (S, N, 1)


class Potential(torch.nn.Module):
    """E = sum_i [e_shift + e_scale * net(standardized G_i)] for the R replicas of a ReplicaNet ``net``.

    ``atomic`` (optional in :meth:`predict` / :meth:`energy_autograd`) replaces the net by any map
    (S, N, D) -> (S, N, 1), e.g. S posterior draws of its weights (:func:`nnrds.uq.bbb.replica_forward`)."""

    def __init__(self, net, spec: DescriptorSpec, g_mean, g_std, e_shift: float, e_scale: float):
        super().__init__()
        self.net, self.spec = net, spec
        dt = next(net.parameters()).dtype
        self.register_buffer("g_mean", torch.as_tensor(g_mean, dtype=dt))
        self.register_buffer("g_std", torch.as_tensor(g_std, dtype=dt))
        self.e_shift, self.e_scale = float(e_shift), float(e_scale)

    @property
    def n_replicas(self) -> int:
        return self.net.n_replicas

    def l2(self) -> torch.Tensor:
        return self.net.l2()

    @property
    def dtype(self) -> torch.dtype:
        return self.g_mean.dtype

    def atomic_energies(self, G: torch.Tensor, S: int, atomic: AtomicFn | None = None):
        """(S, N) atomic energies and the (S, N, D) standardized-input leaf they were computed from."""
        X = ((G.to(self.dtype) - self.g_mean) / self.g_std).unsqueeze(0).expand(S, -1, -1).clone()
        X.requires_grad_(True)
        out = (atomic or self.net)(X)[..., 0]
        return self.e_shift + self.e_scale * out, X

    def predict(self, data: AtomsData, atomic: AtomicFn | None = None, n: int | None = None,
                create_graph: bool = False, forces: bool = True, stress: bool = True) -> dict[str, torch.Tensor]:
        """Energies (S, B), forces (S, N, 3), stresses (S, B, 6) by the chain rule (module docstring)."""
        S = n or self.n_replicas
        dt = self.dtype
        with torch.enable_grad():
            e, X = self.atomic_energies(data.G, S, atomic)
            B = data.n_configs
            E = e.new_zeros(S, B).index_add(1, data.atom_cfg, e)
            out = {"energy": E}
            if not (forces or stress):
                return out
            V = torch.autograd.grad(E.sum(), X, create_graph=create_graph)[0] / self.g_std  # dE/dG (S, N, D)
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
        nb = nb or neighbor_topology(s, self.spec.cutoff)
        pos = torch.as_tensor(s.positions, dtype=torch.float64).requires_grad_(True)
        eps = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
        with torch.enable_grad():
            G = descriptors(pos, torch.as_tensor(s.cell, dtype=torch.float64), nb, self.spec, eps)
            e, _ = self.atomic_energies(G, S, atomic)
            E = e.sum(1)
            fs, ss = [], []
            for k in range(S):
                gp, ge = torch.autograd.grad(E[k], (pos, eps), retain_graph=k < S - 1)
                fs.append(-gp)
                ge = 0.5 * (ge + ge.T) / s.volume
                ss.append(torch.stack([ge[a, b] for a, b in VOIGT_IDX]))
        return {"energy": E.detach(), "forces": torch.stack(fs), "stress": torch.stack(ss)}
