"""The uq_elm jobs go through the common cell_job: a NaN in one of their tables fails the job, naming study and cell."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from nnrds import guards
from nnrds.commands import uq_elm as cmd
from nnrds.studies import uq_elm


def _args(tmp_path) -> argparse.Namespace:
    cfg = {"job": "mlp", "study": {"seeds": [0]}, "seed": 0, "torch_threads": 1}
    return argparse.Namespace(config_json=cfg, in_dir=[], out_dir=str(tmp_path / "out"))


def _tables(rmse: float, status: str = "ok", rhat: float = np.nan) -> dict[str, pd.DataFrame]:
    metrics = pd.DataFrame([{"job": "mlp", "method": "vi", "status": status, "rmse": rmse, "rhat_invariant_max": rhat}])
    return {"metrics": metrics, "timings": pd.DataFrame([{"job": "mlp", "wall_s": 1.0}])}


def test_nan_in_uq_elm_table_fails_the_job(tmp_path, monkeypatch):
    monkeypatch.setattr(uq_elm, "run_job", lambda cell: _tables(float("nan")))
    with pytest.raises(guards.NonFiniteError, match=r"`rmse` in table `metrics` of study `uq_elm`, cell `mlp`"):
        cmd._fit(_args(tmp_path))
    assert not (tmp_path / "out" / "metrics.csv").exists()


def test_nan_by_design_passes(tmp_path, monkeypatch):
    """Sampler-only diagnostics of another method, and every number of a method not run, are NaN by design."""
    t = _tables(0.5)
    t["metrics"] = pd.concat([t["metrics"], _tables(float("nan"), status="skipped")["metrics"]], ignore_index=True)
    monkeypatch.setattr(uq_elm, "run_job", lambda cell: t)
    assert cmd._fit(_args(tmp_path)) == 0
    assert (tmp_path / "out" / "metrics.csv").is_file() and (tmp_path / "out" / "provenance.json").is_file()
