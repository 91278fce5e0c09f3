"""Run the workflow in a scratch copy of the repository (tests never write into the checkout)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "profiles"]


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    shared = REPO.parent / "shared"
    if shared.exists() and not (dest.parent / "shared").exists():
        (dest.parent / "shared").symlink_to(shared)
    return dest


def snakemake(
    wd: Path,
    *args: str,
    check: bool = True,
    timeout: int = 900,
    env=None,
    configfiles: tuple[str, ...] = ("config/smoke.yaml",),
) -> subprocess.CompletedProcess:
    """Run snakemake in ``wd`` with the smoke config (``configfiles``: later files override keys of earlier ones)."""
    cmd = [sys.executable, "-m", "snakemake", "--configfile", *configfiles, *args]
    out = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return out


def table_digests(wd: Path) -> dict[str, str]:
    """sha256 of every deterministic table under results/ (``*timings.csv`` and provenance hold wall times)."""
    out = {}
    for p in sorted((wd / "results").rglob("*")):
        if p.suffix in (".csv", ".rst") and not p.name.endswith("timings.csv") and "logs" not in p.parts:
            out[str(p.relative_to(wd))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
