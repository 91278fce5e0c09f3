"""Verified acquisition and parsing of the real datasets (FitSNAP DFT sets, UCR ECG5000, UCR ItalyPowerDemand).

FitSNAP parsing and stress-unit detection: :mod:`nnrds.data.fitsnap`, :mod:`nnrds.data.stress_units`.

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

import pandas as pd

from .. import store
from . import fitsnap
from .ucr import parse_ts, parse_ucr

log = logging.getLogger(__name__)

FITSNAP_REPO = "https://github.com/FitSNAP/FitSNAP.git"
FITSNAP_COMMIT = "1a9b0507fa2ba292a6497ec363707944c1cb89cd"
ECG_URL = "https://www.timeseriesclassification.com/aeon-toolkit/ECG5000.zip"
UCR_URL = "https://www.timeseriesclassification.com/aeon-toolkit/{name}.zip"

DATASETS: dict[str, dict] = {
    "fitsnap_Ta": {
        "kind": "fitsnap",
        "set": "Ta_Linear_JCP2014",
        "file": "fitsnap_Ta_Linear_JCP2014_JSON.tar.gz",
        "n_files": 363,
        "content_digest": "7424ac2b5f03668e899645f6fa705235e17a81d5bb2986f973d7e783d068040c",
        "origin": f"{FITSNAP_REPO} at commit {FITSNAP_COMMIT}, folder examples/Ta_Linear_JCP2014/JSON",
        "licence": "GPL-2.0 (FitSNAP)",
        "cite": "Thompson et al., J. Comp. Phys. 285 (2015) 316",
    },
    "fitsnap_WBe": {
        "kind": "fitsnap",
        "set": "WBe_PRB2019",
        "file": "fitsnap_WBe_PRB2019_JSON.tar.gz",
        "n_files": 25422,
        "content_digest": "cfe40210d01cae515cd3a782c8fa5d8e97dd2c196d978f6b1823a9bace92cff9",
        "origin": f"{FITSNAP_REPO} at commit {FITSNAP_COMMIT}, folder examples/WBe_PRB2019/JSON",
        "licence": "GPL-2.0 (FitSNAP)",
        "cite": "Wood et al., Phys. Rev. B 99 (2019) 184305",
    },
    "ecg5000": {
        "kind": "ucr",
        "file": "ECG5000_TRAIN.txt",
        "test_file": "ECG5000_TEST.txt",
        "sha256": "0d96aff193311a6dc6111bf0dbd2f7d2313987fbf7a1da4a383d92563876057b",
        "origin": f"{ECG_URL} (UCR time-series archive, ECG5000.zip)",
        "licence": "free for research, cite the archive",
        "cite": "Dau et al., The UCR Time Series Archive (2019); Goldberger et al., PhysioNet (2000)",
    },
    # official train/test split, both files pinned (the .ts copies bundled in the aeon 1.6.0 wheel)
    "italy_power": {
        "kind": "ucr_ts",
        "archive": "ItalyPowerDemand",
        "file": "ucr/ItalyPowerDemand_TRAIN.ts",
        "test_file": "ucr/ItalyPowerDemand_TEST.ts",
        "sha256": "341269cb7e6cef96846b30e774580beec79addb93848ba360145219115a74b7c",
        "test_sha256": "26122451f87dd0387ef90b18bc8a86c041371b8a1c068004922b939971247144",
        "origin": f"{UCR_URL.format(name='ItalyPowerDemand')} (UCR time-series archive, aeon-toolkit download); "
        "the same files as aeon 1.6.0's aeon/datasets/data/ItalyPowerDemand/",
        "licence": "free for research, cite the archive",
        "cite": "Dau et al., The UCR Time Series Archive (2019); Keogh et al., Intelligent Icons (ICDM 2006)",
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
    m = (
        f"put a verified copy at {Path(mirror) / s['file']} (see the mirror's README.md)"
        if mirror
        else "or set data.mirror to a folder holding a verified copy (e.g. ../shared/data)"
    )
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
            raise AcquisitionError(
                f"dataset {name}: {e}; expected content digest {s['content_digest']}; {_where(name, s, mirror)}"
            ) from None
        got, want, what = content_digest(files), s["content_digest"], "content digest"
        extra = {"n_files": len(files)}
    else:
        got, want, what = sha256_file(path), s["sha256"], "sha256"
        extra = {}
    if got != want:
        raise AcquisitionError(
            f"dataset {name}: {what} of {path} does not match: expected {want}, got {got}; "
            f"the file is corrupt or not the pinned version; {_where(name, s, mirror)}"
        )
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
        train, test = Path(s["file"]).name, Path(s["test_file"]).name
        if train not in names:
            raise AcquisitionError(f"{url} holds no {train}")
        dest.write_bytes(z.read(names[train]))
        return z.read(names[test]) if test in names else None


def fetch(
    name: str,
    dest: str | os.PathLike,
    mirror: str | os.PathLike | None,
    timeout: float = 120.0,
    fitsnap_repo: str = FITSNAP_REPO,
    ecg_url: str = ECG_URL,
) -> dict:
    """Copy (mirror) or download (origin) dataset ``name`` to ``dest``, verified; atomic: on any failure
    nothing is left at ``dest``. Returns the verification record (plus the ECG test split's bytes)."""
    s, dest = spec(name), Path(dest)
    record: dict = {"source": None}
    with store.atomic_path(dest) as tmp:
        if mirror is not None:
            src = Path(mirror) / s["file"]
            if not src.is_file():
                raise AcquisitionError(
                    f"dataset {name}: {src} does not exist (data.mirror = {mirror}); expected "
                    f"{'content digest ' + s['content_digest'] if 'content_digest' in s else 'sha256 ' + s['sha256']}; "
                    f"{_where(name, s, mirror)}, or set data.mirror: null to download it"
                )
            shutil.copyfile(src, tmp)
            record["source"] = str(src)
            test_src = src.with_name(Path(s["test_file"]).name) if "test_file" in s else None
            if test_src is not None and test_src.is_file():
                record["test_bytes"] = test_src.read_bytes()
        else:
            try:
                if s["kind"] == "fitsnap":
                    _download_fitsnap(s, tmp, fitsnap_repo, timeout)
                    record["source"] = f"{fitsnap_repo}@{FITSNAP_COMMIT}"
                else:
                    url = ecg_url if s["kind"] == "ucr" else UCR_URL.format(name=s["archive"])
                    record["test_bytes"] = _download_ucr(s, tmp, url, timeout)
                    record["source"] = url
            except (OSError, subprocess.SubprocessError, zipfile.BadZipFile, tarfile.TarError) as e:
                want = s.get("content_digest") or s.get("sha256")
                detail = getattr(e, "stderr", None) or str(e)
                raise AcquisitionError(
                    f"dataset {name}: download failed ({str(detail).strip().splitlines()[-1] if str(detail).strip() else type(e).__name__}); "
                    f"no network or origin unavailable, and data.mirror is null; expected digest {want}; "
                    f"{_where(name, s, None)}"
                ) from None
        record.update(verify(name, tmp, mirror))
        if "test_sha256" in s:  # a pinned official test split: verified like the training split
            got = hashlib.sha256(record.get("test_bytes") or b"").hexdigest()
            if record.get("test_bytes") is None or got != s["test_sha256"]:
                raise AcquisitionError(
                    f"dataset {name}: sha256 of its test split {s['test_file']} does not match: expected "
                    f"{s['test_sha256']}, got {got if record.get('test_bytes') is not None else 'no file'}; "
                    f"{_where(name, {**s, 'file': s['test_file']}, mirror)}"
                )
            record["test_sha256"] = got
    return record


# ------------------------------------------------------------------------------------------- parsing
def parse_fitsnap(path: str | os.PathLike, set_name: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Tidy tables (configs, atoms) and metadata of a FitSNAP tarball (:func:`nnrds.data.fitsnap.parse_files`;
    stress in the unit detected per (group, composition), :mod:`nnrds.data.stress_units`)."""
    return fitsnap.parse_files(read_fitsnap_tar(path, set_name), set_name, path)


# ---------------------------------------------------------------------------------------- top level
def acquire(
    name: str, out_dir: str | os.PathLike, mirror: str | os.PathLike | None, timeout: float = 120.0, **origins
) -> dict:
    """Fetch + verify + parse dataset ``name`` into ``out_dir``. Output files appear together or not at all."""
    s, out = spec(name), Path(out_dir)
    raw = out / "raw" / Path(s["file"]).name
    rec = fetch(name, raw, mirror, timeout, **origins)
    test_bytes = rec.pop("test_bytes", None)
    try:
        with contextlib.ExitStack() as stack:

            def target(fname):
                return stack.enter_context(store.atomic_path(out / fname))

            if s["kind"] == "fitsnap":
                conf, atoms, meta = parse_fitsnap(raw, s["set"])
                conf.to_csv(target("configs.csv"), index=False, float_format="%.10g", lineterminator="\n")
                atoms.to_csv(target("atoms.csv"), index=False, float_format="%.10g", lineterminator="\n")
            else:
                parse = parse_ts if s["kind"] == "ucr_ts" else parse_ucr
                train = parse(raw.read_text(), str(raw))
                train.to_csv(target("train.csv"), index=False, float_format="%.10g", lineterminator="\n")
                meta = {
                    "n_train": len(train),
                    "length": train.shape[1] - 1,
                    "class_counts_train": {
                        int(k): int(v) for k, v in train["label"].value_counts().sort_index().items()
                    },
                    "test_split": None,
                    "note": "the mirror holds only the 500-sequence training split; split it for testing",
                }
                if test_bytes is not None:
                    test = parse(test_bytes.decode(), s["test_file"])
                    test.to_csv(target("test.csv"), index=False, float_format="%.10g", lineterminator="\n")
                    pinned = "test_sha256" in s
                    meta["test_split"] = {
                        "n": len(test),
                        "sha256": hashlib.sha256(test_bytes).hexdigest(),
                        "verified": pinned,
                        "note": "official test split, sha256 pinned"
                        if pinned
                        else "no pinned digest for the test split",
                    }
                    if pinned:
                        meta["note"] = "official train/test split of the archive"
            meta.update(
                {
                    "dataset": name,
                    "verification": rec,
                    "origin": s["origin"],
                    "licence": s["licence"],
                    "cite": s["cite"],
                }
            )
            target("metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    except BaseException:
        raw.unlink(missing_ok=True)
        raise
    return meta
