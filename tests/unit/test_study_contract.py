"""The study contract (nnrds.studies.Study) is code: every study module keeps it, and every figure its claims point
to is an output of its figures rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nnrds import studies

ROOT = Path(__file__).resolve().parents[2]
MODULES = studies.modules()


def test_every_study_module_is_found():
    assert {
        "continuous_depth",
        "materials",
        "noisy_rnn",
        "pinn_failure",
        "stable_arch",
        "stiffness",
        "uq_elm",
        "wp_gap",
    } <= set(MODULES)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_study_keeps_the_contract(name):
    mod = MODULES[name]
    assert studies.contract_errors(mod) == [], f"studies/{name}.py breaks the study contract"
    assert isinstance(mod, studies.Study)


def test_contract_errors_name_what_is_missing():
    import types

    m = types.ModuleType("nnrds.studies.fake")
    assert studies.contract_errors(m)[:2] == ["no STUDY", "no FIGURES"]


def test_every_figure_is_an_output_of_the_figures_rule(tmp_path):
    """A dry run asked for every FIGURES path of every study (the default scale, where every optional part is on):
    it fails when no rule makes one of them."""
    figs = sorted({p for m in MODULES.values() for p in m.FIGURES.values()})
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    r = subprocess.run(
        [
            snakemake,
            *figs,
            "-n",
            "--forceall",
            "--nolock",
            "--cores",
            "1",
            "--configfile",
            "config/config.yaml",
            "-q",
            "rules",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
