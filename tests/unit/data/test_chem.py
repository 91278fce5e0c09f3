"""Robertson stiff kinetics: reference solution, conservation, stiffness, ensemble layout."""

import numpy as np
import pytest

from nnrds.data import chem, ensembles

from .conftest import raw_cfg

# Hairer & Wanner, Solving ODEs II (Robertson problem), 7 significant digits
REFERENCE = {0.4: (0.9851721, 3.386395e-05, 0.01479402), 40.0: (0.7158271, 9.185535e-06, 0.2841637)}


def test_matches_reference_solution():
    times = sorted(REFERENCE)
    y, sol = chem.solve(chem.NOMINAL, times, rtol=1e-10)
    for row, t in zip(y, times):
        np.testing.assert_allclose(row, REFERENCE[t], rtol=2e-6)
    # the ensemble's default tolerance agrees with a much tighter solve at the output times
    times = raw_cfg()["chem"]["times"]
    fine, _ = chem.solve(chem.NOMINAL, times, rtol=1e-12, atol_rel=1e-18)
    default, _ = chem.solve(chem.NOMINAL, times, rtol=raw_cfg()["chem"]["rtol"])
    np.testing.assert_allclose(default, fine, rtol=1e-6)


def test_conserves_mass_and_stays_positive():
    cfg = raw_cfg(chem={"n_train": 6, "n_test": 2, "n_jobs": 1})["chem"]
    r = ensembles.build_chem(cfg)
    assert r["meta"]["max_mass_drift"] < 1e-12
    for row in r["ptrain"].to_dict("records"):
        p = {**chem.NOMINAL, **row}
        y, _ = chem.solve(p, [1e-3, 1.0, 1e3], rtol=1e-8)
        np.testing.assert_allclose(y.sum(1), p["y1_0"] + p["y2_0"] + p["y3_0"], rtol=1e-12)
        assert np.all(y > 0)


def test_system_is_stiff():
    y, _ = chem.solve(chem.NOMINAL, [40.0])
    assert chem.stiffness_ratio(y[0], 0.04, 3e7, 1e4) > 1e4
    # an explicit method needs far more right-hand-side evaluations than Radau on the same interval
    _, explicit = chem.solve(chem.NOMINAL, [1.0], method="RK45", rtol=1e-6)
    _, implicit = chem.solve(chem.NOMINAL, [1.0], method="Radau", rtol=1e-6)
    assert explicit.nfev > 5 * implicit.nfev


def test_ensemble_layout_and_determinism():
    cfg = raw_cfg(chem={"n_train": 5, "n_test": 3, "n_jobs": 1, "times": [1.0, 100.0]})["chem"]
    a, b = ensembles.build_chem(cfg), ensembles.build_chem(cfg)
    assert list(a["ytrain"].columns) == [
        "log10_y1_t1",
        "log10_y2_t1",
        "log10_y3_t1",
        "log10_y1_t100",
        "log10_y2_t100",
        "log10_y3_t100",
    ]
    assert a["ptrain"].shape == (5, 6) and a["ytest"].shape == (3, 6)
    assert a["ytrain"].equals(b["ytrain"]) and np.isfinite(a["ytrain"].to_numpy()).all()


def test_bad_ranges():
    cfg = raw_cfg(chem={"n_train": 2, "n_test": 1, "ranges": {"y1_0": [-1.0, 0.0]}})["chem"]
    with pytest.raises(ValueError, match="initial concentrations"):
        ensembles.build_chem(cfg)
