"""Build the simulator ensembles from a validated config slice (``data.elm`` / ``data.chem``)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from . import chem, design, elm


def _order(canonical):
    pos = {k: i for i, k in enumerate(canonical)}
    return lambda k: (pos.get(k, len(pos)), k)


def _counts(cfg: dict, where: str) -> None:
    for k in ("n_train", "n_test"):
        if int(cfg[k]) < 1:
            raise ValueError(f"`{where}.{k}` must be >= 1, got {cfg[k]}")


def elm_forcing(cfg: dict) -> elm.Forcing:
    tau = float(cfg.get("fixed", {}).get("tsoil_tau", elm.FIXED["tsoil_tau"]))
    site = {**cfg["site"], "years": cfg["years"]}
    if cfg.get("forcing_file"):
        return elm.forcing_from_file(cfg["forcing_file"], site["latitude"], site["co2"], tau)
    return elm.synthetic_forcing(site, cfg["forcing_seed"], tau)


def _split(ptrain: pd.DataFrame, ptest: pd.DataFrame, y: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """ptrain, ytrain, ptest, ytest of an ensemble run on the training then the test design (outputs ``y``, one row
    per member in that order)."""
    n = len(ptrain)
    return {
        "ptrain": ptrain,
        "ytrain": y.iloc[:n].reset_index(drop=True),
        "ptest": ptest,
        "ytest": y.iloc[n:].reset_index(drop=True),
    }


def elm_input_rows(names: list[str], lo, hi) -> list[dict]:
    """Metadata of the land model's design inputs: name, unit, range, default and description (a fixed constant
    of the model has no unit of its own: "-")."""
    return [
        {
            "name": k,
            "unit": elm.PERTURBED[k][1] if k in elm.PERTURBED else "-",
            "low": float(a),
            "high": float(b),
            "default": elm.PERTURBED.get(k, (elm.FIXED.get(k),))[0],
            "description": elm.PERTURBED.get(k, (None, None, "fixed constant"))[2],
        }
        for k, a, b in zip(names, lo, hi)
    ]


def elm_metadata(cfg: dict, names: list[str], lo, hi, forcing: elm.Forcing, y: pd.DataFrame) -> dict:
    """``metadata.json`` of a land-model ensemble: inputs (:func:`elm_input_rows`), outputs, design, seeds,
    forcing, spin-up, and the members whose vegetation collapsed (GPP < 1% of the median)."""
    collapsed = int((y["gpp"] < 0.01 * max(float(y["gpp"].median()), 1e-12)).sum())
    return {
        "model": "simplified ELM-style daily carbon-cycle model (nnrds.data.elm)",
        "inputs": elm_input_rows(names, lo, hi),
        "outputs": [{"name": k, "unit": u, "description": d} for k, (u, d) in elm.QOIS.items()],
        "n_train": cfg["n_train"],
        "n_test": cfg["n_test"],
        "design": cfg["design"],
        "seeds": {"design_train": cfg["seed"], "design_test": cfg["seed"] + 1, "forcing": cfg["forcing_seed"]},
        "forcing": cfg["forcing_file"] or "synthetic seeded climatology",
        "recorded_years": forcing.n_days // elm.DAYS,
        "spinup": {
            "cycles": cfg["spinup_cycles"],
            "analytic_jumps": cfg["analytic_jumps"],
            "years": cfg["spinup_cycles"] * forcing.n_days // elm.DAYS,
        },
        "collapsed_members": collapsed,
        "collapsed_note": "members whose vegetation dies out (GPP < 1% of the median): a genuine model outcome",
        "fixed_overrides": cfg["fixed"],
    }


def build_elm(cfg: dict) -> dict:
    """ptrain, ytrain, ptest, ytest, trajectories, metadata and timing for ``data.elm``."""
    _counts(cfg, "data.elm")
    # canonical column order (the CLI's JSON has sorted keys); a fixed value removes a parameter from the design
    names = [k for k in sorted(cfg["ranges"], key=_order(elm.PERTURBED)) if k not in cfg["fixed"]]
    lo, hi = design.parameter_box(cfg["ranges"], names, "data.elm.ranges")
    ptrain, ptest = design.train_test_design(names, lo, hi, cfg["n_train"], cfg["n_test"], cfg["design"], cfg["seed"])
    forcing = elm_forcing(cfg)
    t0 = time.perf_counter()
    both = pd.concat([ptrain, ptest], ignore_index=True)
    y, traj = elm.run_ensemble(
        both,
        forcing,
        cfg["spinup_cycles"],
        cfg["analytic_jumps"],
        cfg["fixed"],
        chunk=cfg["chunk"],
        n_traj=min(cfg["n_traj"], cfg["n_train"]),
    )
    wall = time.perf_counter() - t0
    n = len(both)
    meta = elm_metadata(cfg, names, lo, hi, forcing, y)
    timing = {
        "members": n,
        "wall_s": wall,
        "runs_per_s": n / wall if wall > 0 else None,
        "simulated_days_per_member": forcing.n_days * (cfg["spinup_cycles"] + 1),
    }
    return {**_split(ptrain, ptest, y), "traj": traj, "meta": meta, "timing": timing}


def build_chem(cfg: dict) -> dict:
    _counts(cfg, "data.chem")
    names = sorted(cfg["ranges"], key=_order(chem.NOMINAL))
    bad = sorted(set(names) - set(chem.NOMINAL))
    if bad:
        raise ValueError(f"`data.chem.ranges` names unknown input(s) {bad}; known: {', '.join(chem.NOMINAL)}")
    lo, hi = design.parameter_box(cfg["ranges"], names, "data.chem.ranges")
    ptrain, ptest = design.train_test_design(names, lo, hi, cfg["n_train"], cfg["n_test"], cfg["design"], cfg["seed"])
    both = pd.concat([ptrain, ptest], ignore_index=True)
    full = pd.DataFrame({k: np.full(len(both), v) for k, v in chem.NOMINAL.items()})
    full[names] = both[names]
    if (full[["y1_0", "y2_0", "y3_0"]] < 0).any().any() or (full[["y1_0", "y2_0", "y3_0"]].sum(axis=1) <= 0).any():
        raise ValueError("`data.chem.ranges`: initial concentrations must be >= 0 with a positive total")
    times = sorted(float(t) for t in cfg["times"])
    t0 = time.perf_counter()
    y, diag = chem.run_ensemble(full, times, rtol=cfg["rtol"], n_jobs=cfg["n_jobs"])
    wall = time.perf_counter() - t0
    n = len(both)
    meta = {
        "model": "Robertson stiff kinetics, Radau with analytic Jacobian (nnrds.data.chem)",
        "inputs": [
            {"name": k, "unit": chem.UNITS[k], "low": float(a), "high": float(b), "default": chem.NOMINAL[k]}
            for k, a, b in zip(names, lo, hi)
        ],
        "outputs": [{"name": c, "unit": "log10(conc)"} for c in y.columns],
        "times": times,
        "rtol": cfg["rtol"],
        "n_train": cfg["n_train"],
        "n_test": cfg["n_test"],
        "design": cfg["design"],
        "seeds": {"design_train": cfg["seed"], "design_test": cfg["seed"] + 1},
        "max_mass_drift": float(diag["mass_drift"].max()),
        "mean_rhs_evaluations": float(diag["nfev"].mean()),
    }
    timing = {"members": n, "wall_s": wall, "runs_per_s": n / wall if wall > 0 else None, "n_jobs": cfg["n_jobs"]}
    return {**_split(ptrain, ptest, y), "meta": meta, "timing": timing}
