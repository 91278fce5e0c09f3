"""Verified acquisition and parsing of the real datasets (FitSNAP DFT sets, UCR ECG5000).

With a mirror folder (config ``data.mirror``) the file is copied from it; without one it is fetched from the
pinned origin (a sparse git checkout of FitSNAP at a fixed commit, the ECG5000 archive over HTTPS). Either
way the content is verified before anything is written: a FitSNAP set by its *content digest* (sha256 of the
``sha256sum`` listing of its files, paths relative to the set's folder, C-locale order; independent of how
the files were packed), ECG5000 by the sha256 of the file. A mismatch, a missing mirror file or a failed
download raises :class:`AcquisitionError` with one message naming the dataset, the expected and actual
digest and where to get the file.
"""
from __future__ import annotations

import contextlib
import hashlib
import io as _io
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from .ucr import parse_ucr

log = logging.getLogger(__name__)

FITSNAP_REPO = "https://github.com/FitSNAP/FitSNAP.git"
FITSNAP_COMMIT = "1a9b0507fa2ba292a6497ec363707944c1cb89cd"
ECG_URL = "https://www.timeseriesclassification.com/aeon-toolkit/ECG5000.zip"

#: 1 bar, 1 kbar, 1 GPa in eV / angstrom^3 (1 eV/A^3 = 160.21766208 GPa)
STRESS_TO_EV_A3 = {"bar": 1e5 / 1.602176634e11, "kB": 1e8 / 1.602176634e11, "kbar": 1e8 / 1.602176634e11,
                   "GPa": 1e9 / 1.602176634e11, "eV/A^3": 1.0}
#: the units a stored stress may turn out to be in (unit detection, :func:`stress_unit_table`)
CANDIDATE_STRESS_UNITS = ("bar", "kbar", "GPa", "eV/A^3")
#: a (group, composition) is *checked* in a unit when its work ratio lies in STRESS_RATIO_TOLERANCE; a ratio
#: whose pairs agree (small spread) but that lies outside STRESS_RATIO_LIMITS in the nearest unit is an error
STRESS_RATIO_TOLERANCE, STRESS_RATIO_LIMITS = (0.7, 1.4), (0.5, 2.0)

DATASETS: dict[str, dict] = {
    "fitsnap_Ta": {
        "kind": "fitsnap", "set": "Ta_Linear_JCP2014", "file": "fitsnap_Ta_Linear_JCP2014_JSON.tar.gz",
        "n_files": 363,
        "content_digest": "7424ac2b5f03668e899645f6fa705235e17a81d5bb2986f973d7e783d068040c",
        "origin": f"{FITSNAP_REPO} at commit {FITSNAP_COMMIT}, folder examples/Ta_Linear_JCP2014/JSON",
        "licence": "GPL-2.0 (FitSNAP)", "cite": "Thompson et al., J. Comp. Phys. 285 (2015) 316",
    },
    "fitsnap_WBe": {
        "kind": "fitsnap", "set": "WBe_PRB2019", "file": "fitsnap_WBe_PRB2019_JSON.tar.gz", "n_files": 25422,
        "content_digest": "cfe40210d01cae515cd3a782c8fa5d8e97dd2c196d978f6b1823a9bace92cff9",
        "origin": f"{FITSNAP_REPO} at commit {FITSNAP_COMMIT}, folder examples/WBe_PRB2019/JSON",
        "licence": "GPL-2.0 (FitSNAP)", "cite": "Wood et al., Phys. Rev. B 99 (2019) 184305",
    },
    "ecg5000": {
        "kind": "ucr", "file": "ECG5000_TRAIN.txt", "test_file": "ECG5000_TEST.txt",
        "sha256": "0d96aff193311a6dc6111bf0dbd2f7d2313987fbf7a1da4a383d92563876057b",
        "origin": f"{ECG_URL} (UCR time-series archive, ECG5000.zip)",
        "licence": "free for research, cite the archive",
        "cite": "Dau et al., The UCR Time Series Archive (2019); Goldberger et al., PhysioNet (2000)",
    },
}


class AcquisitionError(ValueError):
    """A dataset could not be obtained or failed verification."""


def spec(name: str) -> dict:
    try:
        return DATASETS[name]
    except KeyError:
        raise AcquisitionError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def _where(name: str, s: dict, mirror: str | os.PathLike | None) -> str:
    m = f"put a verified copy at {Path(mirror) / s['file']} (see the mirror's README.md)" if mirror else \
        "or set data.mirror to a folder holding a verified copy (e.g. ../shared/data)"
    return f"get it from {s['origin']}; {m}"


# -------------------------------------------------------------------------------------------- digests
def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_digest(files: dict[str, bytes]) -> str:
    """sha256 of ``sha256sum``'s listing (``HASH  PATH`` lines, C-locale sorted) of ``files``."""
    lines = sorted((p.encode(), hashlib.sha256(b).hexdigest()) for p, b in files.items())
    return hashlib.sha256("".join(f"{h}  {p.decode()}\n" for p, h in lines).encode()).hexdigest()


def read_fitsnap_tar(path: str | os.PathLike, set_name: str) -> dict[str, bytes]:
    """Regular files of a FitSNAP tarball, keyed by path relative to the set's top folder."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(path) as tf:
            for m in tf:
                if not m.isfile():
                    continue
                parts = m.name.lstrip("./").split("/", 1)
                if len(parts) != 2 or parts[0] != set_name:
                    raise AcquisitionError(f"{path}: member {m.name!r} is not under the top folder {set_name}/")
                out[parts[1]] = tf.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise AcquisitionError(f"{path} is not a readable tar archive ({e})") from None
    return out


def verify(name: str, path: str | os.PathLike, mirror=None) -> dict:
    """Check ``path`` against the pinned digest; return a record of what was checked."""
    s = spec(name)
    if s["kind"] == "fitsnap":
        try:
            files = read_fitsnap_tar(path, s["set"])
        except AcquisitionError as e:
            raise AcquisitionError(f"dataset {name}: {e}; expected content digest {s['content_digest']}; "
                                   f"{_where(name, s, mirror)}") from None
        got, want, what = content_digest(files), s["content_digest"], "content digest"
        extra = {"n_files": len(files)}
    else:
        got, want, what = sha256_file(path), s["sha256"], "sha256"
        extra = {}
    if got != want:
        raise AcquisitionError(f"dataset {name}: {what} of {path} does not match: expected {want}, got {got}; "
                               f"the file is corrupt or not the pinned version; {_where(name, s, mirror)}")
    return {"dataset": name, "check": what, "digest": got, **extra}


# ------------------------------------------------------------------------------------------ fetching
def _download_fitsnap(s: dict, dest: Path, repo: str, timeout: float) -> None:
    """Sparse, shallow git checkout of the pinned commit, packed into a deterministic tarball."""
    folder = f"examples/{s['set']}/JSON"
    with tempfile.TemporaryDirectory(prefix="nnrds-fitsnap-") as tmp:
        def git(*args):
            subprocess.run(["git", "-C", tmp, *args], check=True, capture_output=True, text=True, timeout=timeout)
        git("init", "-q")
        git("remote", "add", "origin", repo)
        git("sparse-checkout", "set", "--no-cone", f"/{folder}/")
        git("fetch", "-q", "--depth", "1", "--filter=blob:none", "origin", FITSNAP_COMMIT)
        git("checkout", "-q", "FETCH_HEAD")
        root = Path(tmp) / folder
        with tarfile.open(dest, "w:gz") as tf:
            for f in sorted(p for p in root.rglob("*") if p.is_file()):
                info = tarfile.TarInfo(f"{s['set']}/{f.relative_to(root).as_posix()}")
                data = f.read_bytes()
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tf.addfile(info, _io.BytesIO(data))


def _download_ucr(s: dict, dest: Path, url: str, timeout: float) -> bytes | None:
    """Download the archive; write the training split to ``dest``; return the test split (or None)."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        blob = r.read()
    with zipfile.ZipFile(_io.BytesIO(blob)) as z:
        names = {Path(n).name: n for n in z.namelist()}
        if s["file"] not in names:
            raise AcquisitionError(f"{url} holds no {s['file']}")
        dest.write_bytes(z.read(names[s["file"]]))
        return z.read(names[s["test_file"]]) if s["test_file"] in names else None


def fetch(name: str, dest: str | os.PathLike, mirror: str | os.PathLike | None, timeout: float = 120.0,
          fitsnap_repo: str = FITSNAP_REPO, ecg_url: str = ECG_URL) -> dict:
    """Copy (mirror) or download (origin) dataset ``name`` to ``dest``, verified; atomic: on any failure
    nothing is left at ``dest``. Returns the verification record (plus the ECG test split's bytes)."""
    s, dest = spec(name), Path(dest)
    record: dict = {"source": None}
    with io.atomic_path(dest) as tmp:
        if mirror is not None:
            src = Path(mirror) / s["file"]
            if not src.is_file():
                raise AcquisitionError(f"dataset {name}: {src} does not exist (data.mirror = {mirror}); expected "
                                       f"{'content digest ' + s['content_digest'] if 'content_digest' in s else 'sha256 ' + s['sha256']}; "
                                       f"{_where(name, s, mirror)}, or set data.mirror: null to download it")
            shutil.copyfile(src, tmp)
            record["source"] = str(src)
            test_src = src.with_name(s["test_file"]) if "test_file" in s else None
            if test_src is not None and test_src.is_file():
                record["test_bytes"] = test_src.read_bytes()
        else:
            try:
                if s["kind"] == "fitsnap":
                    _download_fitsnap(s, tmp, fitsnap_repo, timeout)
                    record["source"] = f"{fitsnap_repo}@{FITSNAP_COMMIT}"
                else:
                    record["test_bytes"] = _download_ucr(s, tmp, ecg_url, timeout)
                    record["source"] = ecg_url
            except (OSError, subprocess.SubprocessError, zipfile.BadZipFile, tarfile.TarError) as e:
                want = s.get("content_digest") or s.get("sha256")
                detail = getattr(e, "stderr", None) or str(e)
                raise AcquisitionError(
                    f"dataset {name}: download failed ({str(detail).strip().splitlines()[-1] if str(detail).strip() else type(e).__name__}); "
                    f"no network or origin unavailable, and data.mirror is null; expected digest {want}; "
                    f"{_where(name, s, None)}") from None
        record.update(verify(name, tmp, mirror))
    return record


# ------------------------------------------------------------------------------------------- parsing
def parse_fitsnap_json(text: str) -> tuple[dict, dict]:
    """One FitSNAP configuration file: skip the non-JSON header line; return (config, dataset-level keys)."""
    body = text.split("\n", 1)[1] if not text.lstrip().startswith("{") else text
    ds = json.loads(body)["Dataset"]
    data = ds["Data"]
    if len(data) != 1:
        raise ValueError(f"expected one configuration per file, found {len(data)}")
    return data[0], {k: v for k, v in ds.items() if k != "Data"}


def parse_fitsnap(path: str | os.PathLike, set_name: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Tidy store: one row per configuration (energy, stress in eV/A^3, cell, group) and one per atom.

    The stress is converted from the unit the data are *in*, not the one the files declare: every (group,
    composition) gets its unit from the thermodynamic consistency of its stresses and energies
    (:func:`stress_unit_table`; e.g. WBe_PRB2019 declares ``StressStyle: bar`` everywhere but stores kbar in its
    EOS and elastic groups). The table, with its evidence, goes into the metadata (``stress_units``); every row
    of ``configs.csv`` carries its ``stress_unit`` and ``stress_unit_status`` (checked / noisy / unchecked)."""
    files = read_fitsnap_tar(path, set_name)
    confs, atoms = [], []
    styles: dict[str, int] = {}
    declared: list[str] = []
    for cid, rel in enumerate(sorted(files, key=lambda p: p.encode())):
        try:
            d, meta = parse_fitsnap_json(files[rel].decode())
        except (ValueError, KeyError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: {set_name}/{rel} is not a FitSNAP JSON configuration ({e})") from None
        style = meta.get("StressStyle", "bar")
        if style not in STRESS_TO_EV_A3:
            raise ValueError(f"{set_name}/{rel}: unknown StressStyle {style!r}; known {sorted(STRESS_TO_EV_A3)}")
        styles[style] = styles.get(style, 0) + 1
        declared.append(style)
        pos, frc = np.asarray(d["Positions"], float), np.asarray(d["Forces"], float)
        n = int(d.get("NumAtoms", len(pos)))
        if pos.shape != (n, 3) or frc.shape != (n, 3) or len(d["AtomTypes"]) != n:
            raise ValueError(f"{set_name}/{rel}: NumAtoms={n} but positions {pos.shape}, forces {frc.shape}, "
                             f"{len(d['AtomTypes'])} atom types")
        st = np.asarray(d["Stress"], float) * STRESS_TO_EV_A3[style]
        cell = np.asarray(d["Lattice"], float)
        group = rel.split("/", 1)[0] if "/" in rel else ""
        row = {"config_id": cid, "group": group, "file": rel, "natoms": n,
               "species": " ".join(sorted(set(d["AtomTypes"]))), "energy_eV": float(d["Energy"])}
        for (i, j), lab in zip(((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)), ("xx", "yy", "zz", "yz", "xz", "xy")):
            row[f"stress_{lab}_eV_A3"] = st[i, j]
        for i, v in enumerate("abc"):
            for j, c in enumerate("xyz"):
                row[f"cell_{v}{c}_A"] = cell[i, j]
        confs.append(row)
        atoms.append(pd.DataFrame({"config_id": cid, "atom": np.arange(n), "species": d["AtomTypes"],
                                   "x_A": pos[:, 0], "y_A": pos[:, 1], "z_A": pos[:, 2],
                                   "fx_eV_A": frc[:, 0], "fy_eV_A": frc[:, 1], "fz_eV_A": frc[:, 2]}))
    conf = pd.DataFrame(confs)
    atoms = pd.concat(atoms, ignore_index=True)
    log.info("%s: %d configurations parsed; checking the stress units of every (group, composition)", set_name, len(conf))
    table = stress_unit_table(conf, atoms, pd.Series(declared), set_name=set_name)
    conf = apply_stress_units(conf, atoms, table)
    for r in table[table["unit"] != table["declared_unit"]].itertuples():
        log.info("%s: %s (%s) stores %s though declared %s (%s, ratio %.3g from %d pairs)", set_name, r.group,
                 r.composition, r.unit, r.declared_unit, r.status, r.ratio, r.n_pairs)
    log.info("%s: stress units %s", set_name, ", ".join(f"{n} {k}" for k, n in table["status"].value_counts().items()))
    meta = {"set": set_name, "n_configs": len(conf), "n_atoms": int(conf["natoms"].sum()),
            "groups": {g: int(c) for g, c in conf["group"].value_counts().sort_index().items()},
            "stress_style_in_source": styles,
            "stress_units": {
                "method": "thermodynamic consistency per (group, composition): pairs of nearly identical cells "
                          "(strain %g..%g, non-affine displacement <= %g A, |dE - W_force| >= %g eV, %d nearest "
                          "cells each); ratio = (dE - W_force) / W_stress, 1 in the right unit; checked: >= %d pairs, "
                          "q75/q25 <= %g, ratio in [%g, %g]; error: agreeing ratios outside [%g, %g] in every unit; "
                          "noisy: scattered ratios (or between tolerance and limits), unit from the 95%% interval of "
                          "the median; unchecked: declared unit kept" % (
                              PAIR_MIN_STRAIN, PAIR_MAX_STRAIN, PAIR_MAX_DISPLACEMENT, PAIR_MIN_WORK, PAIR_NEIGHBOURS,
                              MIN_PAIRS, MAX_SPREAD, *STRESS_RATIO_TOLERANCE, *STRESS_RATIO_LIMITS),
                "candidates": list(CANDIDATE_STRESS_UNITS),
                "table": json.loads(table.to_json(orient="records", double_precision=6))},
            "units": {"energy": "eV (total)", "forces": "eV/A",
                      "stress": "eV/A^3, converted from the unit detected per (group, composition) (stress_units)",
                      "positions": "A", "cell": "A, rows are cell vectors a, b, c"}}
    return conf, atoms, meta


# ------------------------------------------------------------------------------------ stress units
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


def stress_work_pairs(conf: pd.DataFrame, atoms: pd.DataFrame) -> pd.DataFrame:
    """Thermodynamic-consistency pairs (one row per pair of nearly identical cells, see the PAIR_* constants).

    Between configurations i and j of one group with the same species sequence, the cell C_j = C_i M (rows are
    cell vectors) is a homogeneous deformation with strain eps = (M + M^T)/2 - 1 and the atoms move by the affine
    part R_i M plus a non-affine rest u (minimum image). To second order (trapezoid rule, exact for a quadratic
    energy) E_j - E_i = W_stress + W_force with W_force = -(F_i + F_j)/2 . u and
    W_stress = -(V_i s_i + V_j s_j)/2 : eps, where s is the *stored* stress (FitSNAP/VASP pressure sign, positive
    under compression) as read from the tables (eV/A^3 converted from the declared unit). The column ``ratio``
    = (dE - W_force) / W_stress is then 1 when the declared unit is right and f_true / f_declared otherwise
    (e.g. ~1000 for kbar stored as bar). Configurations with no stress (six zeros) are not paired."""
    from scipy.spatial import cKDTree

    conf = conf.reset_index(drop=True)
    nat = conf["natoms"].to_numpy(int)
    start = np.r_[0, np.cumsum(nat)]
    if len(atoms) != start[-1] or not np.array_equal(atoms["config_id"].to_numpy(), np.repeat(conf["config_id"].to_numpy(), nat)):
        atoms = atoms.set_index("config_id").loc[conf["config_id"]].reset_index()
    pos = atoms[["x_A", "y_A", "z_A"]].to_numpy(float)
    frc = atoms[["fx_eV_A", "fy_eV_A", "fz_eV_A"]].to_numpy(float)
    spc = atoms["species"].astype(str).to_numpy()
    cells = conf[[f"cell_{v}{c}_A" for v in "abc" for c in "xyz"]].to_numpy(float).reshape(-1, 3, 3)
    vol = np.abs(np.linalg.det(cells))
    st = _stress_tensors(conf)
    energy = conf["energy_eV"].to_numpy(float)
    labelled = np.abs(st).reshape(len(conf), -1).max(1) > 0
    buckets: dict[tuple, list[int]] = {}
    for i in np.flatnonzero(labelled):
        buckets.setdefault((conf.at[i, "group"], tuple(spc[start[i]:start[i + 1]])), []).append(int(i))
    rows = []
    for (group, seq), idx in sorted(buckets.items(), key=lambda kv: (kv[0][0], len(kv[0][1]), kv[0][1])):
        if len(idx) < 2:
            continue
        comp = composition_label(seq)
        scale = np.cbrt(vol[idx]).mean()
        feats = cells[idx].reshape(len(idx), 9) / scale
        k = min(PAIR_NEIGHBOURS + 1, len(idx))
        _, nn = cKDTree(feats).query(feats, k=k)
        pairs = sorted({(min(a, b), max(a, b)) for a in range(len(idx)) for b in np.atleast_1d(nn[a])[1:] if b != a})
        for a, b in pairs:
            i, j = idx[a], idx[b]
            M = np.linalg.solve(cells[i], cells[j])
            eps = 0.5 * (M + M.T) - np.eye(3)
            emax = float(np.abs(eps).max())
            if not PAIR_MIN_STRAIN <= emax <= PAIR_MAX_STRAIN:
                continue
            si = np.linalg.solve(cells[i].T, pos[start[i]:start[i + 1]].T).T
            sj = np.linalg.solve(cells[j].T, pos[start[j]:start[j + 1]].T).T
            ds = sj - si
            u = (ds - np.round(ds)) @ cells[j]
            umax = float(np.abs(u).max())
            if umax > PAIR_MAX_DISPLACEMENT:
                continue
            w_force = float(-0.5 * np.sum((frc[start[i]:start[i + 1]] + frc[start[j]:start[j + 1]]) * u))
            w_stress = float(-0.5 * (vol[i] * np.sum(st[i] * eps) + vol[j] * np.sum(st[j] * eps)))
            d_e = float(energy[j] - energy[i])
            if abs(d_e - w_force) < PAIR_MIN_WORK or w_stress == 0:
                continue
            rows.append({"group": group, "composition": comp, "config_i": int(conf.at[i, "config_id"]),
                         "config_j": int(conf.at[j, "config_id"]), "max_strain": emax, "max_displacement_A": umax,
                         "dE_eV": d_e, "w_force_eV": w_force, "w_stress_eV": w_stress,
                         "ratio": (d_e - w_force) / w_stress})
    cols = ["group", "composition", "config_i", "config_j", "max_strain", "max_displacement_A", "dE_eV",
            "w_force_eV", "w_stress_eV", "ratio"]
    return pd.DataFrame(rows, columns=cols)


def _nearest_unit(ratio: float, d_unit: str) -> tuple[str, float]:
    """The candidate unit whose factor is nearest (in log) to ``ratio`` x f(d_unit), and the ratio in it."""
    if not ratio > 0:
        return d_unit, ratio
    f = ratio * STRESS_TO_EV_A3[d_unit]
    u = min(CANDIDATE_STRESS_UNITS, key=lambda x: abs(np.log(f / STRESS_TO_EV_A3[x])))
    return u, f / STRESS_TO_EV_A3[u]


def stress_unit_table(conf: pd.DataFrame, atoms: pd.DataFrame, declared: str | pd.Series = "bar",
                      tolerance: tuple[float, float] = STRESS_RATIO_TOLERANCE, set_name: str = "") -> pd.DataFrame:
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
    from ..verdicts import median_ci

    conf = conf.reset_index(drop=True)
    dec = pd.Series(declared, index=conf.index) if isinstance(declared, str) else pd.Series(np.asarray(declared), index=conf.index)
    comp = pd.Series(compositions(conf, atoms), index=conf.index)
    pairs = stress_work_pairs(conf, atoms)
    labelled = np.abs(conf[STRESS_COLUMNS].to_numpy(float)).max(1) > 0
    rows = []
    lo, hi = tolerance
    for (group, c), g in conf.groupby([conf["group"], comp], sort=True):
        d_units = dec[g.index].unique()
        if len(d_units) != 1:
            raise StressUnitError(f"{set_name} group {group!r} ({c}): files declare several stress units {sorted(d_units)}")
        d_unit = str(d_units[0])
        p = pairs[(pairs["group"] == group) & (pairs["composition"] == c)]
        r = p["ratio"].to_numpy(float)
        nan = float("nan")
        row = {"group": group, "composition": c, "n_configs": len(g), "n_labelled": int(labelled[g.index].sum()),
               "declared_unit": d_unit, "unit": d_unit, "status": "unchecked", "n_pairs": len(r),
               "ratio_declared": nan, "ratio": nan, "ratio_low": nan, "ratio_high": nan, "ratio_q25": nan,
               "ratio_q75": nan, "spread": nan, "note": ""}
        if row["n_labelled"] == 0:
            row["note"] = "no stress labels (all six components zero)"
            rows.append(row)
            continue
        if len(r) < MIN_PAIRS:
            row["note"] = (f"{len(r)} usable pairs (< {MIN_PAIRS}): no nearly identical cells with a strain between "
                           "them (e.g. fixed-cell MD) -- declared unit kept")
            rows.append(row)
            continue
        med, c_lo, c_hi = median_ci(r)
        q25, q75 = (float(x) for x in np.quantile(r, [0.25, 0.75]))
        spread = q75 / q25 if q25 > 0 else float("inf")
        u, ratio = _nearest_unit(med, d_unit)
        conv = STRESS_TO_EV_A3[d_unit] / STRESS_TO_EV_A3[u]
        row.update(ratio_declared=med, spread=spread, unit=u, ratio=ratio, ratio_low=c_lo * conv,
                   ratio_high=c_hi * conv, ratio_q25=q25 * conv, ratio_q75=q75 * conv)
        tried = ", ".join(f"{x}: {med * STRESS_TO_EV_A3[d_unit] / STRESS_TO_EV_A3[x]:.3g}" for x in CANDIDATE_STRESS_UNITS)
        what = (f"{set_name} group {group!r} ({c}): work ratio (dE - W_force)/W_stress = {med:.4g} with the stress "
                f"read as {d_unit} (median of {len(r)} pairs of nearly identical cells, 95% interval {c_lo:.3g}.."
                f"{c_hi:.3g}, interquartile {q25:.3g}..{q75:.3g}); as {tried}")
        tight = spread <= MAX_SPREAD
        if tight and not STRESS_RATIO_LIMITS[0] <= ratio <= STRESS_RATIO_LIMITS[1]:
            raise StressUnitError(f"{what}: the stored stresses are inconsistent with the energies under every "
                                  f"candidate unit (expected a ratio within [{lo}, {hi}], at worst "
                                  f"[{STRESS_RATIO_LIMITS[0]}, {STRESS_RATIO_LIMITS[1]}]). Check the stress sign "
                                  "convention and the StressStyle of these files.")
        if tight and lo <= ratio <= hi:
            row.update(status="checked",
                       note="declared unit confirmed" if u == d_unit else f"stored in {u}, declared {d_unit}")
        elif c_lo > 0 and _nearest_unit(c_lo, d_unit)[0] == u == _nearest_unit(c_hi, d_unit)[0]:
            row.update(status="noisy", note=(f"pair ratios scatter or miss [{lo}, {hi}] (median {med:.3g}, "
                                             f"interquartile {q25:.3g}..{q75:.3g} read as {d_unit}) but the "
                                             "median's 95% interval fixes the unit: "
                                             + ("declared unit confirmed" if u == d_unit else f"stored in {u}, declared {d_unit}")))
        elif c_hi <= 0:
            raise StressUnitError(f"{what}: the stored stresses are inconsistent with the energies under every "
                                  "candidate unit (the work ratio is negative). Check the stress sign convention and "
                                  "the StressStyle of these files.")
        else:
            row.update(unit=d_unit, ratio=nan, ratio_low=nan, ratio_high=nan, ratio_q25=nan, ratio_q75=nan,
                       note=f"pair ratios too scattered to tell the unit (median interval {c_lo:.3g}..{c_hi:.3g} "
                            f"read as {d_unit}) -- declared unit kept")
        rows.append(row)
    return pd.DataFrame(rows)


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


# ---------------------------------------------------------------------------------------- top level
def acquire(name: str, out_dir: str | os.PathLike, mirror: str | os.PathLike | None, timeout: float = 120.0,
            **origins) -> dict:
    """Fetch + verify + parse dataset ``name`` into ``out_dir``. Output files appear together or not at all."""
    s, out = spec(name), Path(out_dir)
    raw = out / "raw" / s["file"]
    rec = fetch(name, raw, mirror, timeout, **origins)
    test_bytes = rec.pop("test_bytes", None)
    try:
        with contextlib.ExitStack() as stack:
            def target(fname):
                return stack.enter_context(io.atomic_path(out / fname))
            if s["kind"] == "fitsnap":
                conf, atoms, meta = parse_fitsnap(raw, s["set"])
                conf.to_csv(target("configs.csv"), index=False, float_format="%.10g", lineterminator="\n")
                atoms.to_csv(target("atoms.csv"), index=False, float_format="%.10g", lineterminator="\n")
            else:
                train = parse_ucr(raw.read_text(), str(raw))
                train.to_csv(target("train.csv"), index=False, float_format="%.10g", lineterminator="\n")
                meta = {"n_train": len(train), "length": train.shape[1] - 1,
                        "class_counts_train": {int(k): int(v) for k, v in train["label"].value_counts().sort_index().items()},
                        "test_split": None,
                        "note": "the mirror holds only the 500-sequence training split; split it for testing"}
                if test_bytes is not None:
                    test = parse_ucr(test_bytes.decode(), s["test_file"])
                    test.to_csv(target("test.csv"), index=False, float_format="%.10g", lineterminator="\n")
                    meta["test_split"] = {"n": len(test), "sha256": hashlib.sha256(test_bytes).hexdigest(),
                                          "verified": False, "note": "no pinned digest for the test split"}
            meta.update({"dataset": name, "verification": rec, "origin": s["origin"], "licence": s["licence"],
                         "cite": s["cite"]})
            target("metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    except BaseException:
        raw.unlink(missing_ok=True)
        raise
    return meta
