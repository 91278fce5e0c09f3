"""Acquisition of the real datasets from the mirror: verification, failure modes, parsers."""
import io as _io
import shutil
import tarfile

import numpy as np
import pandas as pd
import pytest

from nnrds import cli
from nnrds.config import dumps
from nnrds.data import acquire

TA = acquire.DATASETS["fitsnap_Ta"]
ECG = acquire.DATASETS["ecg5000"]


def _repack(src, dst, corrupt: str | None = None):
    """Re-pack a FitSNAP tarball (different bytes, same content), optionally changing one member's content."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        members = [m for m in tin if m.isfile()]
        for m in reversed(members):
            data = tin.extractfile(m).read()
            if corrupt and m.name.endswith(corrupt):
                data = data.replace(b"Energy", b"energy", 1)
            info = tarfile.TarInfo(m.name)
            info.size, info.mtime = len(data), 12345
            tout.addfile(info, _io.BytesIO(data))


def _no_leftovers(out):
    return [p for p in out.rglob("*") if p.is_file()] if out.exists() else []


def test_ta_from_mirror_verifies_and_parses(mirror, tmp_path):
    meta = acquire.acquire("fitsnap_Ta", tmp_path / "ta", mirror)
    assert meta["verification"]["digest"] == TA["content_digest"] and meta["verification"]["n_files"] == 363
    assert meta["n_configs"] == 363 and meta["n_atoms"] == 4224 and len(meta["groups"]) == 12
    conf = pd.read_csv(tmp_path / "ta" / "configs.csv")
    atoms = pd.read_csv(tmp_path / "ta" / "atoms.csv")
    assert len(conf) == 363 and len(atoms) == 4224 and set(atoms["species"]) == {"Ta"}
    assert (atoms.groupby("config_id").size().to_numpy() == conf["natoms"].to_numpy()).all()
    assert conf["group"].str.len().min() > 0 and np.isfinite(conf["energy_eV"]).all()
    # stress: bar -> eV/A^3 (1 bar = 6.2415e-7 eV/A^3); the first file of the tarball, checked by hand
    row = conf[conf["file"] == "Displaced_A15/A15_1.json"].iloc[0]
    assert row["stress_xx_eV_A3"] == pytest.approx(26594.42 * 6.241509074e-7, rel=1e-9)
    assert acquire.STRESS_TO_EV_A3["kB"] == pytest.approx(1000 * acquire.STRESS_TO_EV_A3["bar"])
    assert (tmp_path / "ta" / "raw" / TA["file"]).is_file()


def test_repacked_tarball_still_verifies(mirror, tmp_path):
    (tmp_path / "m").mkdir()
    _repack(mirror / TA["file"], tmp_path / "m" / TA["file"])
    assert acquire.sha256_file(tmp_path / "m" / TA["file"]) != acquire.sha256_file(mirror / TA["file"])
    assert acquire.verify("fitsnap_Ta", tmp_path / "m" / TA["file"])["digest"] == TA["content_digest"]


def test_corrupt_fitsnap_fails_naming_file_and_digests(mirror, tmp_path):
    (tmp_path / "m").mkdir()
    _repack(mirror / TA["file"], tmp_path / "m" / TA["file"], corrupt="A15_1.json")
    out = tmp_path / "out"
    with pytest.raises(acquire.AcquisitionError) as e:
        acquire.acquire("fitsnap_Ta", out, tmp_path / "m")
    msg = str(e.value)
    assert "fitsnap_Ta" in msg and TA["file"] in msg and TA["content_digest"] in msg
    assert "got " in msg and "get it from" in msg and "FitSNAP" in msg
    assert _no_leftovers(out) == []


def test_corrupt_ecg_fails_via_cli_with_one_line(mirror, tmp_path, capsys):
    (tmp_path / "m").mkdir()
    data = bytearray((mirror / ECG["file"]).read_bytes())
    data[100] = ord("7") if data[100] != ord("7") else ord("8")
    (tmp_path / "m" / ECG["file"]).write_bytes(bytes(data))
    out = tmp_path / "out"
    rc = cli.main(["data-acquire", "--dataset", "ecg5000", "--out-dir", str(out),
                   "--config-json", dumps({"mirror": str(tmp_path / "m"), "timeout_s": 5})])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "ecg5000" in err and ECG["sha256"] in err and ECG["file"] in err
    assert _no_leftovers(out) == []


def test_missing_mirror_file(tmp_path):
    with pytest.raises(acquire.AcquisitionError, match=r"ecg5000: .*ECG5000_TRAIN.txt does not exist"):
        acquire.acquire("ecg5000", tmp_path / "out", tmp_path)
    assert _no_leftovers(tmp_path / "out") == []


def test_no_network_no_mirror_gives_message(tmp_path):
    with pytest.raises(acquire.AcquisitionError, match="ecg5000: download failed.*data.mirror is null") as e:
        acquire.acquire("ecg5000", tmp_path / "o1", None, timeout=5, ecg_url="http://127.0.0.1:9/ECG5000.zip")
    assert ECG["sha256"] in str(e.value)
    if shutil.which("git"):
        with pytest.raises(acquire.AcquisitionError, match="fitsnap_Ta: download failed") as e:
            acquire.acquire("fitsnap_Ta", tmp_path / "o2", None, timeout=20,
                            fitsnap_repo=str(tmp_path / "no-such-repo"))
        assert TA["content_digest"] in str(e.value)
    assert _no_leftovers(tmp_path / "o1") == [] and _no_leftovers(tmp_path / "o2") == []


def test_ecg_from_mirror(mirror, tmp_path):
    meta = acquire.acquire("ecg5000", tmp_path / "ecg", mirror)
    df = pd.read_csv(tmp_path / "ecg" / "train.csv")
    assert df.shape == (500, 141) and meta["length"] == 140
    assert meta["class_counts_train"] == {1: 292, 2: 177, 3: 10, 4: 19, 5: 2}
    assert meta["test_split"] is None
    first = np.loadtxt(mirror / ECG["file"], max_rows=1)
    np.testing.assert_allclose(df.iloc[0, 1:].to_numpy(float), first[1:], rtol=1e-9)


def test_fitsnap_header_line_is_skipped():
    text = '# header, not JSON\n{"Dataset": {"Data": [{"Energy": -1.0}], "StressStyle": "kB"}}'
    d, meta = acquire.parse_fitsnap_json(text)
    assert d["Energy"] == -1.0 and meta["StressStyle"] == "kB"


def test_unknown_dataset():
    with pytest.raises(acquire.AcquisitionError, match="unknown dataset 'nope'"):
        acquire.spec("nope")
