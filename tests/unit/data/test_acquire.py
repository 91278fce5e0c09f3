"""Acquisition of the real datasets from the mirror: verification, failure modes, parsers."""

import io as _io
import json
import shutil
import tarfile

import numpy as np
import pandas as pd
import pytest

from nnrds import cli
from nnrds.config import dumps
from nnrds.data import acquire, fitsnap, stress_units
from nnrds.potentials.structures import atoms_frame, cell_columns, stress_columns

TA = acquire.DATASETS["fitsnap_Ta"]
ECG = acquire.DATASETS["ecg5000"]
IPD = acquire.DATASETS["italy_power"]


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
    assert stress_units.STRESS_TO_EV_A3["kB"] == pytest.approx(1000 * stress_units.STRESS_TO_EV_A3["bar"])
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
    rc = cli.main(
        [
            "data-acquire",
            "--out-dir",
            str(out),
            "--config-json",
            dumps({"mirror": str(tmp_path / "m"), "timeout_s": 5, "cell": {"dataset": "ecg5000"}}),
        ]
    )
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
            acquire.acquire(
                "fitsnap_Ta", tmp_path / "o2", None, timeout=20, fitsnap_repo=str(tmp_path / "no-such-repo")
            )
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


def test_italy_power_from_mirror_verifies_both_splits(mirror, tmp_path):
    meta = acquire.acquire("italy_power", tmp_path / "ip", mirror)
    tr, te = pd.read_csv(tmp_path / "ip" / "train.csv"), pd.read_csv(tmp_path / "ip" / "test.csv")
    assert tr.shape == (67, 25) and te.shape == (1029, 25) and meta["length"] == 24
    assert meta["test_split"]["verified"] and meta["verification"]["test_sha256"] == IPD["test_sha256"]
    assert set(te.label) == {1, 2}


def test_italy_power_corrupt_test_split_fails_and_writes_nothing(mirror, tmp_path):
    m = tmp_path / "m" / "ucr"
    m.mkdir(parents=True)
    shutil.copyfile(mirror / IPD["file"], m / "ItalyPowerDemand_TRAIN.ts")
    (m / "ItalyPowerDemand_TEST.ts").write_bytes((mirror / IPD["test_file"]).read_bytes()[:-10])
    with pytest.raises(acquire.AcquisitionError, match=r"italy_power: sha256 of its test split .* does not match"):
        acquire.acquire("italy_power", tmp_path / "out", tmp_path / "m")
    assert _no_leftovers(tmp_path / "out") == []


def test_fitsnap_header_line_is_skipped():
    text = '# header, not JSON\n{"Dataset": {"Data": [{"Energy": -1.0}], "StressStyle": "kB"}}'
    d, meta = fitsnap.parse_fitsnap_json(text)
    assert d["Energy"] == -1.0 and meta["StressStyle"] == "kB"


def _config_json(n=2, style="kB", stress=None, natoms=None):
    d = {
        "Energy": -7.5,
        "NumAtoms": n if natoms is None else natoms,
        "AtomTypes": ["W", "Be"][:n],
        "Positions": [[0.0, 0.0, 0.0], [1.0, 1.5, 2.0]][:n],
        "Forces": [[0.1, 0.2, 0.3], [-0.1, -0.2, -0.3]][:n],
        "Lattice": [[3.0, 0.0, 0.0], [0.1, 3.0, 0.0], [0.0, 0.2, 3.0]],
        "Stress": stress or [[1.0, 4.0, 5.0], [4.0, 2.0, 6.0], [5.0, 6.0, 3.0]],
    }
    return ("# header\n" + json.dumps({"Dataset": {"Data": [d], "StressStyle": style}})).encode()


def test_read_config_checks_unit_and_atom_counts():
    d, style = fitsnap.read_config(_config_json(), "grp/a.json", "set", "src.tar")
    assert style == "kB" and d["Energy"] == -7.5
    with pytest.raises(ValueError, match="set/grp/a.json: unknown StressStyle 'psi'"):
        fitsnap.read_config(_config_json(style="psi"), "grp/a.json", "set", "src.tar")
    with pytest.raises(ValueError, match="NumAtoms=3 but positions"):
        fitsnap.read_config(_config_json(natoms=3), "grp/a.json", "set", "src.tar")
    with pytest.raises(ValueError, match="src.tar: set/b.json is not a FitSNAP JSON configuration"):
        fitsnap.read_config(b"# header\nnot json", "b.json", "set", "src.tar")


def test_config_tables_convert_stress_and_name_the_group():
    d, style = fitsnap.read_config(_config_json(), "grp/a.json", "set", "src.tar")
    row, atoms = fitsnap.config_tables(4, "grp/a.json", d, style)
    kb = stress_units.STRESS_TO_EV_A3["kB"]
    assert (row["config_id"], row["group"], row["file"], row["natoms"], row["species"]) == (
        4,
        "grp",
        "grp/a.json",
        2,
        "Be W",
    )
    # Voigt xx yy zz yz xz xy of the 3 x 3 stress, times the declared unit's factor
    assert [row[f"stress_{k}_eV_A3"] for k in ("xx", "yy", "zz", "yz", "xz", "xy")] == pytest.approx(
        [kb * v for v in (1, 2, 3, 6, 5, 4)]
    )
    assert row["cell_by_A"] == 3.0 and row["cell_bx_A"] == 0.1 and row["cell_cy_A"] == 0.2
    assert list(atoms.species) == ["W", "Be"] and atoms.fz_eV_A.tolist() == [0.3, -0.3] and (atoms.config_id == 4).all()
    row, _ = fitsnap.config_tables(0, "top.json", d, "bar")
    assert row["group"] == "" and row["stress_xx_eV_A3"] == pytest.approx(stress_units.STRESS_TO_EV_A3["bar"])


def test_set_metadata_counts_groups_and_styles():
    conf = pd.DataFrame({"natoms": [2, 3, 4], "group": ["b", "a", "b"]})
    table = pd.DataFrame([{"group": "a", "unit": "kB", "ratio": 1.0000001}])
    meta = fitsnap.set_metadata("S", conf, {"bar": 2, "kB": 1}, table)
    assert (meta["set"], meta["n_configs"], meta["n_atoms"]) == ("S", 3, 9)
    assert list(meta["groups"].items()) == [("a", 1), ("b", 2)] and meta["stress_style_in_source"] == {
        "bar": 2,
        "kB": 1,
    }
    assert meta["stress_units"]["table"] == [{"group": "a", "unit": "kB", "ratio": 1.0}]
    assert "thermodynamic consistency" in meta["stress_units"]["method"] and "%g" not in meta["stress_units"]["method"]


def test_unknown_dataset():
    with pytest.raises(acquire.AcquisitionError, match="unknown dataset 'nope'"):
        acquire.spec("nope")


# ------------------------------------------------------------------------------ FitSNAP stress units
def _emt_tables(
    stored: dict[str, str], declared: str = "bar", noise_eV: float = 0.0, seed: int = 0, pressure_sign: bool = True
):
    """Tidy tables (as parse_fitsnap builds them before the unit check: stress read as ``declared``) of EMT
    configurations in three groups: ``eos`` (fcc Cu, lattice scaled), ``elastic`` (random small strains of
    a Cu3Au cell: 4 atoms, another composition), ``md`` (rattled atoms, one fixed cell: no strain). The stress
    is stored in ``stored[group]`` with FitSNAP's pressure sign (or ASE's with ``pressure_sign=False``)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    confs, atoms = [], []
    f = stress_units.STRESS_TO_EV_A3

    def add(at, group):
        at.calc = EMT()
        cid = len(confs)
        s = at.get_stress(voigt=True)  # ASE: sigma = (1/V) dE/deps, eV/A^3
        stored_val = (-s if pressure_sign else s) / f[stored[group]]  # what the file holds
        as_read = stored_val * f[declared]  # what the parser makes of it
        row = {
            "config_id": cid,
            "group": group,
            "natoms": len(at),
            "species": " ".join(sorted(set(at.get_chemical_symbols()))),
            "energy_eV": at.get_potential_energy() + noise_eV * rng.standard_normal(),
        }
        confs.append(row | stress_columns(as_read) | cell_columns(np.asarray(at.get_cell())))
        atoms.append(atoms_frame(cid, at.get_chemical_symbols(), at.get_positions(), at.get_forces()))

    for a in np.linspace(3.5, 3.75, 11):
        add(bulk("Cu", "fcc", a=a, cubic=True), "eos")
    base = bulk("Cu", "fcc", a=3.7, cubic=True)
    base.set_chemical_symbols(["Au", "Cu", "Cu", "Cu"])
    for _ in range(12):
        e = rng.uniform(-0.02, 0.02, (3, 3))
        at = base.copy()
        at.set_cell(np.asarray(at.get_cell()) @ (np.eye(3) + 0.5 * (e + e.T)), scale_atoms=True)
        add(at, "elastic")
    for k in range(6):
        at = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
        at.rattle(0.05, seed=k)
        add(at, "md")
    return pd.DataFrame(confs), pd.concat(atoms, ignore_index=True)


def _units(table):
    return {r.group: (r.unit, r.status, r.ratio) for r in table.itertuples()}


def test_stress_units_detected_per_group_from_thermodynamic_consistency():
    conf, atoms = _emt_tables({"eos": "kbar", "elastic": "GPa", "md": "kbar"})
    t = stress_units.stress_unit_table(conf, atoms, "bar")
    u = _units(t)
    assert u["eos"][:2] == ("kbar", "checked") and u["elastic"][:2] == ("GPa", "checked")
    for g in ("eos", "elastic"):
        assert 0.9 < u[g][2] < 1.1  # EMT is exactly consistent: only the trapezoid rule's error
        assert t.set_index("group").loc[g, "ratio_declared"] == pytest.approx(
            u[g][2] * stress_units.STRESS_TO_EV_A3[u[g][0]] / stress_units.STRESS_TO_EV_A3["bar"]
        )
    # the fixed-cell group has no strained pairs: declared unit kept, recorded as unchecked
    assert u["md"][:2] == ("bar", "unchecked") and np.isnan(u["md"][2])
    assert t.set_index("group").loc["elastic", "composition"] == "Au1Cu3" and t["n_pairs"].min() == 0
    # applying the table converts each group by its own factor (and records the unit per row)
    conv = stress_units.apply_stress_units(conf, atoms, t)
    ratio = (
        conv[stress_units.STRESS_COLUMNS].to_numpy() / conf[stress_units.STRESS_COLUMNS].replace(0, np.nan).to_numpy()
    )
    for g, fac in (("eos", 1e3), ("elastic", 1e4), ("md", 1.0)):
        r = ratio[conf["group"] == g]
        assert np.nanmax(np.abs(r - fac)) < 1e-9 * fac
    assert conv.loc[conf["group"] == "eos", "stress_unit"].eq("kbar").all()
    assert conv.loc[conf["group"] == "md", "stress_unit_status"].eq("unchecked").all()
    # after conversion every checkable group is consistent in the unit it is now in (eV/A^3 read as such)
    again = stress_units.stress_unit_table(conv, atoms, "eV/A^3")
    assert again.set_index("group").loc[["eos", "elastic"], "ratio"].between(0.9, 1.1).all()


def test_stress_work_pair_pieces():
    conf, atoms = _emt_tables({"eos": "bar", "elastic": "bar", "md": "bar"})
    conf.loc[0, stress_units.STRESS_COLUMNS] = 0.0  # an unlabelled configuration is never paired
    # atoms stored configuration by configuration in another order are put in the configurations' order
    shuffled = pd.concat([g for _, g in atoms.groupby("config_id")][::-1], ignore_index=True)
    arr = stress_units.ConfigArrays.of(conf, shuffled)
    assert np.array_equal(arr.spc, atoms["species"].to_numpy()) and arr.start[-1] == len(atoms)
    np.testing.assert_array_equal(arr.frc, atoms[["fx_eV_A", "fy_eV_A", "fz_eV_A"]].to_numpy())
    np.testing.assert_allclose(arr.vol[1], 3.525**3)  # eos: cubic fcc Cu, a = 3.5 + 0.025
    buckets = dict(stress_units.pair_buckets(conf, arr))
    assert sorted(g for g, _ in buckets) == ["elastic", "eos", "md"] and 0 not in buckets[("eos", ("Cu",) * 4)]
    assert len(buckets[("elastic", ("Au", "Cu", "Cu", "Cu"))]) == 12
    # nearest cells: the eos cells are a chain, each paired with its PAIR_NEIGHBOURS nearest
    eos = buckets[("eos", ("Cu",) * 4)]
    pairs = stress_units.neighbour_pairs(arr.cells[eos], arr.vol[eos])
    assert (0, 1) in pairs and (0, 9) not in pairs and all(b - a <= stress_units.PAIR_NEIGHBOURS for a, b in pairs)
    # a strained EMT pair in the right unit: ratio ~ 1 (trapezoid error only); equal cells do no stress work
    w = stress_units.pair_work(arr, eos[0], eos[1])
    assert w is not None and 0.9 < w["ratio"] < 1.1 and w["max_strain"] == pytest.approx(0.025 / 3.525, rel=1e-6)
    assert stress_units.pair_work(arr, eos[0], eos[0]) is None
    md = buckets[("md", ("Cu",) * 32)]
    assert stress_units.pair_work(arr, md[0], md[1]) is None  # fixed cell: no strain


def test_stress_units_declared_right_is_confirmed_and_mixed_compositions_are_separate():
    conf, atoms = _emt_tables({"eos": "bar", "elastic": "bar", "md": "bar"})
    u = _units(stress_units.stress_unit_table(conf, atoms, "bar"))
    assert u["eos"][:2] == ("bar", "checked") and u["elastic"][:2] == ("bar", "checked")
    # one folder holding two compositions stored in different units: checked per composition
    conf2, atoms2 = _emt_tables({"eos": "kbar", "elastic": "bar", "md": "bar"})
    conf2["group"] = conf2["group"].replace({"eos": "mixed", "elastic": "mixed"})
    t = stress_units.stress_unit_table(conf2, atoms2, "bar").set_index(["group", "composition"])
    assert t.loc[("mixed", "Cu4"), "unit"] == "kbar" and t.loc[("mixed", "Au1Cu3"), "unit"] == "bar"


def test_stress_units_inconsistent_under_every_unit_fails_with_a_clear_message():
    conf, atoms = _emt_tables({"eos": "kbar", "elastic": "bar", "md": "bar"})
    conf.loc[conf["group"] == "eos", stress_units.STRESS_COLUMNS] *= 37.0  # no candidate unit is 37x off
    with pytest.raises(
        stress_units.StressUnitError, match=r"group 'eos' \(Cu4\).*inconsistent.*every candidate unit"
    ) as e:
        stress_units.stress_unit_table(conf, atoms, "bar", set_name="synthetic")
    msg = str(e.value)
    assert "synthetic" in msg and "pairs" in msg and "kbar: 0.02" in msg and "StressStyle" in msg
    # the wrong sign convention (ASE's instead of the pressure sign) is inconsistent too
    conf, atoms = _emt_tables({"eos": "bar", "elastic": "bar", "md": "bar"}, pressure_sign=False)
    with pytest.raises(stress_units.StressUnitError, match="inconsistent"):
        stress_units.stress_unit_table(conf, atoms, "bar")


def test_stress_units_noisy_energies_still_fix_the_order_of_magnitude():
    # 30 meV of energy noise scatters the elastic pairs' ratios (q75/q25 > 3) but the median's interval still
    # points to kbar (units are >= 10x apart): noisy, converted; the EOS pairs (larger work) stay checked
    conf, atoms = _emt_tables({"eos": "kbar", "elastic": "kbar", "md": "kbar"}, noise_eV=3e-2, seed=1)
    t = stress_units.stress_unit_table(conf, atoms, "bar").set_index("group")
    assert tuple(t.loc["elastic", ["unit", "status"]]) == ("kbar", "noisy") and t.loc["elastic", "spread"] > 3
    assert t.loc["elastic", "ratio_low"] > 10**-1.5 and t.loc["elastic", "ratio_high"] < 10**0.5
    assert tuple(t.loc["eos", ["unit", "status"]]) == ("kbar", "checked")
    # with 50 meV the interval no longer decides: the declared unit is kept and the group recorded unchecked
    conf, atoms = _emt_tables({"eos": "kbar", "elastic": "kbar", "md": "kbar"}, noise_eV=5e-2, seed=1)
    t = stress_units.stress_unit_table(conf, atoms, "bar").set_index("group")
    assert (
        tuple(t.loc["elastic", ["unit", "status"]]) == ("bar", "unchecked")
        and "too scattered" in t.loc["elastic", "note"]
    )


def test_fitsnap_stress_units_on_the_mirror(mirror):
    """Ta: every checkable group confirms the declared bar. W-Be: the EOS and elastic groups store kbar though
    every file declares bar, slice_sample stores bar; after conversion every checked group's ratio lies in
    [0.7, 1.4], and the stored stresses come out in the right magnitude (hcp Be EOS: GPa, not MPa)."""
    conf, atoms, meta = acquire.parse_fitsnap(mirror / TA["file"], TA["set"])
    t = pd.DataFrame(meta["stress_units"]["table"])
    chk = t[t["status"] == "checked"]
    assert set(chk["group"]) >= {"Volume_A15", "Volume_BCC", "Volume_FCC", "Elastic_FCC"}
    assert (t["unit"] == "bar").all() and chk["ratio"].between(0.7, 1.4).all()
    wbe = acquire.DATASETS["fitsnap_WBe"]
    conf, atoms, meta = acquire.parse_fitsnap(mirror / wbe["file"], wbe["set"])
    t = pd.DataFrame(meta["stress_units"]["table"])
    chk = t[t["status"] == "checked"]
    assert len(chk) >= 25 and chk["ratio"].between(0.7, 1.4).all()
    by = t.groupby("group")["unit"].agg(lambda u: set(u))
    for g in ("EOS", "EOS_HCP", "EOS_FCC", "EOS_Data", "ElasticDeform_Vol", "ElasticDeform_Shear", "Elast_HCP_Shear"):
        assert by[g] == {"kbar"}, g
    assert by["slice_sample"] == {"bar"}
    assert (t.loc[t["group"] == "EOS_HCP", "status"] == "checked").all()
    hcp = conf[conf["group"] == "EOS_HCP"]
    p_gpa = -hcp[stress_units.STRESS_COLUMNS[:3]].mean(axis=1) * 160.21766208
    assert hcp["stress_unit"].eq("kbar").all() and 20 < p_gpa.abs().max() < 2000 and p_gpa.abs().median() > 1
    assert meta["units"]["stress"].startswith("eV/A^3") and meta["stress_style_in_source"] == {"bar": 25422}
