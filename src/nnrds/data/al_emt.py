"""The Al-EMT set: aluminium configurations generated with ASE and labelled with ASE's EMT potential.

A *substitute* for the program's non-public Al DFT set: fcc bulk under volumetric and shear strain, random
displacements, vacancies, (100)/(111) slabs and short MD snapshots at several temperatures; every
configuration carries its family as ``group`` (:data:`FAMILIES`; MD snapshots ``md{T}K``). :func:`tables`
writes them in the tidy tables of every materials set (:func:`nnrds.potentials.structures.to_tables`):
``configs.csv`` (energy in eV, stress in eV/A^3, Voigt xx yy zz yz xz xy, ASE's sign: sigma = (1/V)
dE/d(strain)) and ``atoms.csv`` (positions, forces). :func:`fcc_ev_structures` is the set's E-V curve.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..potentials.structures import Structure, from_atoms, to_tables

A0 = 4.05  # fcc Al lattice constant (A), EMT's equilibrium is ~4.05
DESCRIPTION = (
    "Al-EMT, aluminium configurations generated with ASE and labelled with ASE's EMT potential "
    "(substitute for the program's non-public Al DFT set)"
)
#: the options of :func:`generate_al_emt` that the config section ``materials.al_emt`` may set
GENERATOR_KEYS = (
    "repeat",
    "strain_max",
    "shear_max",
    "rattle_std",
    "md_temperatures",
    "md_steps",
    "slab_layers",
    "vacuum",
)

FAMILIES = ("strain", "shear", "rattle", "vacancy", "surf100", "surf111", "md")


def generate_al_emt(
    n_configs: int,
    *,
    seed: int = 0,
    repeat: int = 2,
    strain_max: float = 0.04,
    shear_max: float = 0.04,
    rattle_std: float = 0.08,
    md_temperatures: Sequence[float] = (300, 900),
    md_steps: int = 10,
    slab_layers: int = 4,
    vacuum: float = 6.0,
    weights: dict[str, float] | None = None,
) -> list[Structure]:
    """Seeded Al configurations labelled with ASE's EMT (module docstring).

    ``n_configs`` are shared between the families by ``weights`` (default: equal); MD snapshots are taken
    every ``md_steps`` velocity-Verlet steps (2 fs) from a rattled fcc cell thermalised at each temperature,
    group ``md{T}K``. Every bulk configuration also gets a small random strain (<= ``strain_max``) so that
    stresses vary; slabs are periodic in-plane with ``vacuum`` A of vacuum on each side (periodic along z,
    so stresses stay defined)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    w = np.array([(weights or {}).get(f, 1.0) for f in FAMILIES], float)
    base = bulk("Al", "fcc", a=A0, cubic=True).repeat(repeat)
    out: list[Structure] = []

    def add(at, group):
        at.calc = EMT()
        out.append(from_atoms(at, group=group, config_id=len(out)))

    for fam, n in zip(FAMILIES, shares(n_configs, w)):
        if fam == "md":
            temps = list(md_temperatures)
            for T, m in zip(temps, shares(n, np.ones(len(temps)))):
                for snap in md_snapshots(base, rng, T, int(m), md_steps):
                    add(snap, f"md{int(T)}K")
            continue
        for _ in range(n):
            add(
                family_config(
                    fam,
                    base,
                    rng,
                    strain_max=strain_max,
                    shear_max=shear_max,
                    rattle_std=rattle_std,
                    slab_layers=slab_layers,
                    vacuum=vacuum,
                ),
                fam,
            )
    return out


def shares(n: int, weights: np.ndarray) -> np.ndarray:
    """``n`` split in proportion to ``weights``: the floors, plus one for the first entries until they sum to n."""
    counts = np.floor(n * weights / weights.sum()).astype(int)
    counts[: n - counts.sum()] += 1
    return counts


def random_strain(rng: np.random.Generator, mag: float, shear: bool = False) -> np.ndarray:
    """Symmetric strain with entries uniform in [-mag, mag]: diagonal only, or (``shear``) full."""
    e = rng.uniform(-mag, mag, size=(3, 3)) if shear else np.diag(rng.uniform(-mag, mag, size=3))
    return 0.5 * (e + e.T)


def strained(at, eps: np.ndarray):
    """A copy of ASE Atoms ``at`` with cell (and atoms) deformed by 1 + ``eps``."""
    at = at.copy()
    at.set_cell(np.asarray(at.get_cell()) @ (np.eye(3) + eps), scale_atoms=True)
    return at


def family_config(
    fam: str,
    base,
    rng: np.random.Generator,
    *,
    strain_max: float,
    shear_max: float,
    rattle_std: float,
    slab_layers: int,
    vacuum: float,
):
    """One unlabelled configuration (ASE Atoms) of family ``fam`` (not ``md``) from the bulk cell ``base``."""
    if fam == "strain":
        at = strained(base, np.eye(3) * rng.uniform(-strain_max, strain_max) + random_strain(rng, 0.005))
        at.rattle(0.01, seed=int(rng.integers(2**31)))
    elif fam == "shear":
        at = strained(base, random_strain(rng, shear_max, shear=True))
        at.rattle(0.01, seed=int(rng.integers(2**31)))
    elif fam == "rattle":
        at = strained(base, random_strain(rng, 0.01))
        at.rattle(rattle_std, seed=int(rng.integers(2**31)))
    elif fam == "vacancy":
        at = strained(base, random_strain(rng, 0.01))
        del at[int(rng.integers(len(at)))]
        at.rattle(0.04, seed=int(rng.integers(2**31)))
    else:  # slabs
        from ase.build import fcc100, fcc111

        make = fcc100 if fam == "surf100" else fcc111
        at = make("Al", size=(2, 2, slab_layers), a=A0, vacuum=vacuum, periodic=True)
        at = strained(at, np.diag([*rng.uniform(-0.01, 0.01, 2), 0.0]))
        at.rattle(0.04, seed=int(rng.integers(2**31)))
    return at


def md_snapshots(base, rng: np.random.Generator, T: float, m: int, md_steps: int) -> list:
    """``m`` unlabelled snapshots (ASE Atoms), one every ``md_steps`` velocity-Verlet steps (2 fs, EMT) from the
    bulk cell ``base`` rattled and thermalised at 2 ``T`` (equipartition brings it to about ``T``)."""
    if m == 0:
        return []
    from ase import units
    from ase.calculators.emt import EMT
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    at = base.copy()
    at.rattle(0.02, seed=int(rng.integers(2**31)))
    at.calc = EMT()
    thermalize_momenta(at, temperature_K=2 * T, rng=np.random.default_rng(int(rng.integers(2**31))))
    dyn = VelocityVerlet(at, timestep=2 * units.fs)
    out = []
    for _ in range(m):
        dyn.run(md_steps)
        out.append(at.copy())
    return out


def fcc_ev_structures(lattice: Sequence[float]) -> list[Structure]:
    """fcc Al (the 4-atom cubic cell) at every lattice constant in ``lattice``, labelled with EMT: the set's
    E-V curve (group ``ev_fcc``, config ids 0, 1, ...)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    out = []
    for k, a in enumerate(lattice):
        at = bulk("Al", "fcc", a=float(a), cubic=True)
        at.calc = EMT()
        out.append(from_atoms(at, group="ev_fcc", config_id=k))
    return out


def tables(spec: dict, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The set's tables (configs, atoms) and metadata from its config section ``spec`` (``n_configs``, the
    :data:`GENERATOR_KEYS`, ``heldout_groups``: each must be a generated group)."""
    structs = generate_al_emt(spec["n_configs"], seed=seed, **{k: spec[k] for k in GENERATOR_KEYS if k in spec})
    heldout = [g for g in spec.get("heldout_groups", []) if g not in {s.group for s in structs}]
    if heldout:
        raise ValueError(
            f"al_emt.heldout_groups {heldout} are not generated; groups: {sorted({s.group for s in structs})}"
        )
    conf, atoms = to_tables(structs)
    meta = {
        "dataset": "al_emt",
        "description": DESCRIPTION,
        "n_configs": len(conf),
        "n_atoms": int(conf["natoms"].sum()),
        "seed": seed,
        "groups": {g: int(c) for g, c in conf["group"].value_counts().sort_index().items()},
        "units": {
            "energy": "eV (total)",
            "forces": "eV/A",
            "positions": "A",
            "stress": "eV/A^3, sigma = (1/V) dE/deps (ASE sign)",
        },
        "generator": {k: v for k, v in spec.items() if k not in ("kind", "heldout_groups", "correlated_groups")},
    }
    return conf, atoms, meta
