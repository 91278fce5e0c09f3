"""Simplified ELM-style land model: conservation, process checks, spin-up, determinism, table layout."""

import numpy as np
import pandas as pd
import pytest

from nnrds import cli
from nnrds.data import elm, ensembles, load_table_dataset

from .conftest import raw_cfg

SITE = raw_cfg()["elm"]["site"]


@pytest.fixture(scope="module")
def forcing():
    return elm.synthetic_forcing({**SITE, "years": 2}, seed=0)


def _design(n, seed=0, **fix):
    rng = np.random.default_rng(seed)
    r = elm.default_ranges()
    d = pd.DataFrame({k: rng.uniform(a, b, n) for k, (a, b) in r.items()})
    for k, v in fix.items():
        d[k] = v
    return d


def test_carbon_balance_closes_every_step(forcing):
    m = elm.ELM(elm.full_params(_design(6)), forcing)
    m.spin_up(1, 1)
    worst = 0.0
    for t in range(forcing.n_days):
        before = m.total_c()
        fl = m.step(t)
        change = m.total_c() - before
        expect = fl["gpp"] - fl["mr"] - fl["gr"] - fl["hr"]
        worst = max(worst, float(np.max(np.abs(change - expect) / np.maximum(np.abs(before), 1.0))))
    assert worst < 1e-12


def test_no_lai_no_gpp(forcing):
    f = forcing
    g = elm.acm_gpp(np.zeros(f.n_days), 1.3, 5.0, f.tmin, f.tmax, f.rad, f.co2, f.dayl)
    assert np.all(g == 0.0)
    # in the model: whenever the canopy is bare, GPP is exactly zero (and it is positive with leaves)
    m = elm.ELM(elm.full_params(_design(3)), f)
    m.spin_up(1, 1)
    bare, leafy = [], []
    for t in range(f.n_days):
        fl = m.step(t)
        bare.append(fl["gpp"][fl["lai"] == 0])
        leafy.append(fl["gpp"][fl["lai"] > 0.5])
    assert np.concatenate(bare).size > 100 and np.all(np.concatenate(bare) == 0.0)
    assert np.concatenate(leafy).mean() > 1.0


def test_gpp_rises_with_nue(forcing):
    nue = np.linspace(*elm.default_ranges()["nue"], 6)
    d = pd.DataFrame({"nue": nue})
    m = elm.ELM(elm.full_params(d), forcing)
    m.spin_up(3, 2)
    gpp = elm.qois(m.run_cycle())["gpp"].to_numpy()
    assert np.all(np.diff(gpp) > 0), gpp
    # and instantaneously, with the canopy held fixed
    g = elm.acm_gpp(np.full(6, 3.0), 1.3, nue, 10.0, 22.0, 25.0, 380.0, 50000.0)
    assert np.all(np.diff(g) > 0)


def test_spinup_reaches_equilibrium():
    f = elm.synthetic_forcing({**SITE, "years": 3}, seed=1)
    m = elm.ELM(elm.full_params(pd.DataFrame({"nue": [5.0, 3.0, 7.0]})), f)
    m.spin_up(4, 2)
    res = m.run_cycle(daily=True)
    soc = res["daily"]["somc"]
    end_of_year = soc[elm.DAYS - 1 :: elm.DAYS]  # soil C on 31 Dec of each recorded year
    rel = np.abs(np.diff(end_of_year, axis=0)) / end_of_year[:-1]
    assert rel.max() < 2e-3, rel
    start = soc[0]
    assert np.all(np.abs(soc[-1] - start) / start < 2e-3)
    # NEE over the recorded cycle is ~0 relative to GPP at equilibrium
    q = elm.qois(res)
    assert np.all(np.abs(q["nee"]) < 0.01 * q["gpp"])
    # without the spin-up the same model is far from that state and not in balance
    m0 = elm.ELM(elm.full_params(pd.DataFrame({"nue": [5.0]})), f)
    r0 = m0.run_cycle(daily=True)
    assert abs(r0["daily"]["somc"][-1, 0] - soc[-1, 0]) / soc[-1, 0] > 0.2
    assert abs(elm.qois(r0)["nee"][0]) > 0.05 * q["gpp"][0]


SMALL = dict(n_train=8, n_test=4, years=1, spinup_cycles=2, n_traj=2)


def test_determinism_by_seed():
    a = ensembles.build_elm(raw_cfg(elm=SMALL)["elm"])
    b = ensembles.build_elm(raw_cfg(elm=SMALL)["elm"])
    for k in ("ptrain", "ytrain", "ptest", "ytest", "traj"):
        pd.testing.assert_frame_equal(a[k], b[k])
    c = ensembles.build_elm(raw_cfg(elm={**SMALL, "seed": 1})["elm"])
    assert not np.allclose(a["ptrain"].to_numpy(), c["ptrain"].to_numpy())
    assert list(a["ptrain"].columns) == list(elm.PERTURBED) and list(a["ytrain"].columns) == list(elm.QOIS)
    assert len(a["ptrain"]) == 8 and len(a["ytest"]) == 4


def test_cli_tables_byte_identical_and_loadable(tmp_path):
    from nnrds.config import dumps

    cfg = dumps(raw_cfg(elm={**SMALL, "design": "sobol"})["elm"])
    for d in ("a", "b"):
        assert cli.main(["data-elm", "--config-json", cfg, "--out-dir", str(tmp_path / d)]) == 0
    for f in ("ptrain.csv", "ytrain.csv", "ptest.csv", "ytest.csv", "metadata.json", "trajectories.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    timings = pd.read_csv(tmp_path / "a" / "timings.csv")  # wall clock in timings.csv, like every command's
    assert timings.job.tolist() == ["data/elm"] and timings.members.tolist() == [12]
    assert not (tmp_path / "a" / "timing.json").exists()
    Xtr, Ytr, Xte, Yte, xn, yn = load_table_dataset(tmp_path / "a")
    assert Xtr.shape == (8, 15) and Ytr.shape == (8, 10) and Xte.shape == (4, 15) and Yte.shape == (4, 10)
    assert xn == list(elm.PERTURBED) and yn == list(elm.QOIS) and Xtr.dtype == np.float64
    lo, hi = np.array(list(elm.default_ranges().values())).T
    assert np.all((Xtr >= lo) & (Xtr <= hi))
    assert not list(tmp_path.glob("**/.*.tmp"))
    # the figure command reads the folder it is given and writes fixed names into its out-dir
    assert (
        cli.main(
            [
                "data-figure",
                "--config-json",
                dumps({"cell": {"ensemble": "elm"}}),
                "--in-dir",
                str(tmp_path / "a"),
                "--out-dir",
                str(tmp_path / "fig"),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == ["elm.pdf", "elm.png"]


def test_load_table_dataset_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="ptrain.csv"):
        load_table_dataset(tmp_path)


def test_bad_config_clear_errors(tmp_path, capsys):
    from nnrds.config import dumps

    cfg = raw_cfg(elm={**SMALL, "ranges": {"nue": [5.0, 1.0]}})["elm"]
    with pytest.raises(ValueError, match=r"data\.elm\.ranges\.nue"):
        ensembles.build_elm(cfg)
    cfg = raw_cfg(elm={**SMALL, "fixed": {"nuee": 1.0}})["elm"]
    assert cli.main(["data-elm", "--config-json", dumps(cfg), "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nuee" in err and "Traceback" not in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())
    cfg = raw_cfg(elm={**SMALL, "forcing_file": str(tmp_path / "nope.csv")})["elm"]
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        ensembles.build_elm(cfg)


def test_pinned_parameter_leaves_design():
    r = ensembles.build_elm(raw_cfg(elm={**SMALL, "n_traj": 0, "fixed": {"nue": 6.0}})["elm"])
    assert "nue" not in r["ptrain"].columns and r["ptrain"].shape[1] == 14 and r["traj"] is None


def test_forcing_file_roundtrip(tmp_path):
    f = elm.synthetic_forcing({**SITE, "years": 1}, seed=3)
    p = tmp_path / "forcing.csv"
    pd.DataFrame({"tmin": f.tmin, "tmax": f.tmax, "rad": f.rad}).to_csv(p, index=False)
    g = elm.forcing_from_file(p, SITE["latitude"], SITE["co2"])
    np.testing.assert_allclose(g.tsoil, f.tsoil)
    pd.DataFrame({"tmin": f.tmin[:100], "tmax": f.tmax[:100], "rad": f.rad[:100]}).to_csv(p, index=False)
    with pytest.raises(ValueError, match="365-day years"):
        elm.forcing_from_file(p, SITE["latitude"], SITE["co2"])


def test_split_puts_the_first_rows_with_the_training_design():
    ptr, pte = pd.DataFrame({"a": [1.0, 2.0]}), pd.DataFrame({"a": [3.0]})
    y = pd.DataFrame({"q": [10.0, 20.0, 30.0]}, index=[5, 6, 7])
    out = ensembles._split(ptr, pte, y)
    assert out["ytrain"].q.tolist() == [10.0, 20.0] and out["ytest"].q.tolist() == [30.0]
    assert list(out["ytest"].index) == [0] and out["ptrain"] is ptr and out["ptest"] is pte


def test_elm_metadata_pieces():
    rows = ensembles.elm_input_rows([next(iter(elm.PERTURBED)), "tsoil_tau"], [0.1, 2.0], [0.3, 4.0])
    k = next(iter(elm.PERTURBED))
    assert (
        rows[0]["name"] == k
        and rows[0]["unit"] == elm.PERTURBED[k][1]
        and (rows[0]["low"], rows[0]["high"]) == (0.1, 0.3)
    )
    assert rows[1]["unit"] == "-" and rows[1]["description"] == "fixed constant"
    assert rows[1]["default"] == elm.FIXED["tsoil_tau"]
    cfg = raw_cfg(elm=SMALL)["elm"]
    forcing = ensembles.elm_forcing(cfg)
    y = pd.DataFrame({"gpp": [1.0, 1.0, 0.001, 2.0]})  # one collapsed member (< 1% of the median)
    meta = ensembles.elm_metadata(cfg, [k], [0.1], [0.3], forcing, y)
    assert meta["collapsed_members"] == 1 and meta["recorded_years"] == forcing.n_days // elm.DAYS
    assert meta["seeds"]["design_test"] == cfg["seed"] + 1 and [q["name"] for q in meta["outputs"]] == list(elm.QOIS)
