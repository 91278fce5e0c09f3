"""Atomic output writing and provenance records.

Every file a rule produces goes through :func:`atomic_path`: the content is written to a temporary
file in the destination folder and moved into place with :func:`os.replace`, so an interrupted job
(even ``kill -9``) never leaves a half-written table behind.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

#: packages whose versions go into every provenance record
TRACKED_PACKAGES = (
    "nnrds",
    "torch",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "pyro-ppl",
    "snakemake",
    "snakemake-executor-plugin-slurm",
    "papermill",
    "matplotlib",
    "jsonschema",
)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a job killed mid-write
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_table(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write a tidy table as CSV with a fixed float format, so equal numbers give equal bytes."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g", lineterminator="\n")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(path)


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the checkout the package was imported from (None outside git)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info(device: Any = None) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "device": str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"),
        "cuda_available": torch.cuda.is_available(),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "hostname": platform.node(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    if torch.cuda.is_available():
        info["gpu_name"] = torch.cuda.get_device_name(0)
    return info


def provenance(
    config_slice: Any, seeds: Any = None, wall_time_s: float | None = None, device: Any = None, **extra: Any
) -> dict[str, Any]:
    """The provenance record every result directory carries."""
    return {
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "device": device_info(device),
        "seeds": seeds,
        "config": config_slice,
        "wall_time_s": wall_time_s,
        "argv": sys.argv,
        **extra,
    }


def merge_provenance(jobs: list[dict], config_slice: Any = None, **extra: Any) -> dict[str, Any]:
    """A study-level record for the job that merges: its own provenance plus each input job's
    device, wall time, seeds and git state (so a mixed CPU/GPU run shows where each part ran)."""
    head = provenance(config_slice, **extra)
    head["jobs"] = [
        {k: j.get(k) for k in ("job", "device", "wall_time_s", "seeds", "created_utc", "git")} for j in jobs
    ]
    head["jobs_wall_time_s"] = sum(j.get("wall_time_s") or 0.0 for j in jobs)
    return head
