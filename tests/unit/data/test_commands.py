"""Commands of the raw-data layer (nnrds.commands.data): fixed file names, timings.csv beside the tables."""

import json

import pandas as pd

from nnrds import cli
from nnrds.commands.data import write_timings_and_provenance
from nnrds.config import dumps


def test_timings_and_provenance_of_a_data_job(tmp_path):
    import time

    t0 = time.perf_counter() - 2.0  # the job started two seconds ago
    write_timings_and_provenance(tmp_path, {"seed": 4}, "data/x", t0, {"members": 3}, seeds=[4])
    t = pd.read_csv(tmp_path / "timings.csv")
    assert list(t.columns) == ["job", "wall_time_s", "members"] and len(t) == 1
    assert t.job[0] == "data/x" and t.members[0] == 3 and 2.0 <= t.wall_time_s[0] < 60
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["job"] == "data/x" and prov["seeds"] == [4] and prov["config"] == {"seed": 4}


def test_data_al_emt_writes_the_set_into_its_data_folder(tmp_path):
    spec = {"n_configs": 14, "md_temperatures": [300], "md_steps": 2, "heldout_groups": ["surf111"]}
    cfg = dumps({"seed": 0, "spec": spec})
    for d in ("a", "b"):
        assert cli.main(["data-al-emt", "--config-json", cfg, "--out-dir", str(tmp_path / d)]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["atoms.csv", "configs.csv", "metadata.json", "provenance.json", "timings.csv"]
    for f in ("atoms.csv", "configs.csv", "metadata.json"):  # seeded: byte-identical (timings are wall clock)
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert len(pd.read_csv(tmp_path / "a" / "configs.csv")) == 14
    t = pd.read_csv(tmp_path / "a" / "timings.csv")
    assert t.job.tolist() == ["data/al_emt"] and t.configurations.tolist() == [14]
