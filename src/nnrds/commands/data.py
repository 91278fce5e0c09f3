"""Commands of the raw-data layer: simulator ensembles, the Al-EMT set and verified acquisition (rules:
workflow/rules/data.smk), each writing its folder ``results/data/<name>/``.

Every command takes ``--config-json`` (its slice of config ``data``, or ``{seed, spec}`` of ``materials.al_emt``;
the dataset or ensemble in ``cell``), ``--in-dir`` (only ``data-figure``: the ensemble's folder) and ``--out-dir``
(fixed file names). Every command but the figure writes ``timings.csv`` (one row: job and wall time; not
byte-reproducible) and ``provenance.json`` beside its tables."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from .. import store
from .common import add_commands


def register(sub) -> None:
    add_commands(
        sub,
        {
            "data-elm": _elm,
            "data-chem": _chem,
            "data-al-emt": _al_emt,
            "data-acquire": _acquire,
            "data-figure": _figure,
        },
    )


def write_timings_and_provenance(out: Path, cfg: dict, job: str, t0: float, timing: dict | None = None, **prov) -> None:
    """``timings.csv`` -- one row: ``job``, ``wall_time_s`` (since ``t0``) and the generator's own ``timing``
    entries -- and ``provenance.json`` (``prov``: its extra entries) of a data job."""
    wall = time.perf_counter() - t0
    store.write_table(out / "timings.csv", pd.DataFrame([{"job": job, "wall_time_s": wall, **(timing or {})}]))
    store.write_json(out / "provenance.json", store.provenance(cfg, wall_time_s=wall, job=job, **prov))


def _write(out: Path, res: dict, cfg: dict, job: str, t0: float) -> None:
    from ..data import write_ensemble

    write_ensemble(out, res["ptrain"], res["ytrain"], res["ptest"], res["ytest"], res["meta"])
    if res.get("traj") is not None:
        store.write_table(out / "trajectories.csv", res["traj"])
    write_timings_and_provenance(
        out, cfg, job, t0, res["timing"], seeds=res["meta"]["seeds"], runs_per_s=res["timing"]["runs_per_s"]
    )
    print(
        f"{job}: {res['timing']['members']} runs in {res['timing']['wall_s']:.2f} s "
        f"({res['timing']['runs_per_s']:.1f} runs/s) -> {out}"
    )


def _elm(args) -> int:
    """land-model (simplified ELM) ensemble -> ptrain/ytrain/ptest/ytest.csv

    Config: validated data.elm slice"""
    from ..data import ensembles

    t0 = time.perf_counter()
    _write(Path(args.out_dir), ensembles.build_elm(args.config_json), args.config_json, "data/elm", t0)
    return 0


def _chem(args) -> int:
    """stiff-chemistry (Robertson) ensemble -> ptrain/ytrain/ptest/ytest.csv

    Config: validated data.chem slice"""
    from ..data import ensembles

    t0 = time.perf_counter()
    _write(Path(args.out_dir), ensembles.build_chem(args.config_json), args.config_json, "data/chem", t0)
    return 0


def _al_emt(args) -> int:
    """generate the Al-EMT configurations (ASE + EMT) -> configs.csv, atoms.csv, metadata.json

    Config: {seed, spec} (spec = materials.al_emt)"""
    from ..data import al_emt

    c, out = args.config_json, Path(args.out_dir)
    t0 = time.perf_counter()
    conf, atoms, meta = al_emt.tables(c["spec"], c["seed"])
    store.write_table(out / "configs.csv", conf)
    store.write_table(out / "atoms.csv", atoms)
    store.write_json(out / "metadata.json", meta)
    write_timings_and_provenance(out, c, "data/al_emt", t0, {"configurations": len(conf)}, seeds=[c["seed"]])
    return 0


def _acquire(args) -> int:
    """copy (mirror) or download a real dataset, verify it, parse it

    Config: {"mirror": folder or null, "timeout_s": seconds, "cell": {"dataset": fitsnap_Ta | fitsnap_WBe |
    ecg5000}}"""
    from ..data import acquire

    c = args.config_json
    name = c["cell"]["dataset"]
    t0 = time.perf_counter()
    meta = acquire.acquire(name, args.out_dir, c.get("mirror"), timeout=c.get("timeout_s", 300))
    write_timings_and_provenance(Path(args.out_dir), c, f"data/{name}", t0, verification=meta["verification"])
    print(
        f"data/{name}: verified ({meta['verification']['check']} {meta['verification']['digest']}) "
        f"from {meta['verification']['source']}"
    )
    return 0


def _figure(args) -> int:
    """figure of an ensemble: trajectories (land model) and output marginals; reads the ensemble folder (--in-dir),
    writes <out-dir>/<ensemble>.png/.pdf

    Config: {"cell": {"ensemble": elm | chem}}"""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = Path(args.in_dir[0])
    y = store.read_table(d / "ytrain.csv")
    traj_path = d / "trajectories.csv"
    traj = store.read_table(traj_path) if traj_path.is_file() else None
    ncol = 5
    nrow = -(-y.shape[1] // ncol) + (1 if traj is not None else 0)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol, 2.4 * nrow), squeeze=False)
    r0 = 0
    if traj is not None:
        for ax in axes[0]:
            ax.set_visible(False)
        gs = axes[0, 0].get_gridspec()
        a1, a2 = fig.add_subplot(gs[0, : ncol // 2 + 1]), fig.add_subplot(gs[0, ncol // 2 + 1 :])
        year = traj[traj["day"] < 365]
        for m, g in year.groupby("member"):
            a1.plot(g["doy"], g["gpp"], lw=0.8, label=f"member {m}")
            a2.plot(g["doy"], g["lai"], lw=0.8)
        a1.set(xlabel="day of year (first recorded year)", ylabel="GPP (gC m-2 d-1)")
        a2.set(xlabel="day of year", ylabel="LAI (m2 m-2)")
        a1.legend(fontsize=6)
        r0 = 1
    for i, col in enumerate(y.columns):
        ax = axes[r0 + i // ncol, i % ncol]
        ax.hist(y[col], bins=30, color="0.4")
        ax.set_title(col, fontsize=8)
    for j in range(len(y.columns), (nrow - r0) * ncol):
        axes[r0 + j // ncol, j % ncol].set_visible(False)
    fig.suptitle(f"{d.name}: {len(y)} training members, output marginals", fontsize=10)
    fig.tight_layout()
    out = Path(args.out_dir) / f"{args.config_json['cell']['ensemble']}.png"
    with store.atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120, metadata={"Software": None})
    with store.atomic_path(out.with_suffix(".pdf")) as tmp:
        fig.savefig(tmp, format="pdf", metadata={"CreationDate": None, "Producer": None, "Creator": None})
    plt.close(fig)
    return 0
