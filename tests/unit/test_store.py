"""Provenance contents and atomic writes."""

import json

import pandas as pd
import pytest

from nnrds import store


def test_provenance_has_required_fields():
    p = store.provenance({"a": 1}, seeds=[0, 1], wall_time_s=1.5, job="x")
    for key in ("git", "packages", "python", "device", "seeds", "config", "wall_time_s", "created_utc"):
        assert key in p
    assert set(p["git"]) == {"commit", "dirty"}
    assert p["packages"]["torch"].startswith("2.13.0")
    assert p["device"]["device"] in ("cpu", "cuda")
    assert p["config"] == {"a": 1} and p["seeds"] == [0, 1] and p["job"] == "x"
    json.dumps(p, default=str)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "t.csv"
    with pytest.raises(RuntimeError):
        with store.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_write_table_is_byte_stable(tmp_path):
    df = pd.DataFrame({"a": [0.1 + 0.2, 1e-20, 3.0], "b": ["x", "y", "z"]})
    store.write_table(tmp_path / "1.csv", df)
    store.write_table(tmp_path / "2.csv", df.copy())
    assert (tmp_path / "1.csv").read_bytes() == (tmp_path / "2.csv").read_bytes()
    assert (tmp_path / "1.csv").read_text().splitlines()[1] == "0.3,x"


def test_merge_provenance_lists_jobs():
    jobs = [store.provenance({}, wall_time_s=1.0, job="a"), store.provenance({}, wall_time_s=2.0, job="b")]
    m = store.merge_provenance(jobs, {"k": 1})
    assert [j["job"] for j in m["jobs"]] == ["a", "b"] and m["jobs_wall_time_s"] == 3.0
