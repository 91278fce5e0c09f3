"""The orthogonal-weight-bases step of the stable_arch study: per-seed effects, claims (supported / contradicted /
inconclusive on synthetic runs with known answers), Gram table, a tiny cell, the summary piece and its caption."""

import numpy as np
import pandas as pd
import pytest
import torch

from nnrds import experiment, wp
from nnrds.studies import stable_arch as sa
from nnrds.verdicts import verdict_table
from tests.helpers.captions import rst_problems

DEGREES, TS, SEEDS = [1, 2, 3], [1.0, 2.0, 4.0], [0, 1, 2, 3, 4]
BASES_CFG = {
    "dataset": "diabetes",
    "problems": ["peaks"],
    "bases": ["monomial", "legendre", "chebyshev"],
    "degrees": DEGREES,
    "Ts": TS,
    "depth": 8,
    "width": 3,
    "epochs": 3,
    "lr": 0.01,
    "curve_points": 3,
    "dtype": "float64",
    "n_train": 16,
    "n_test": 16,
}


def _study(**over) -> dict:
    return {"seeds": SEEDS, "bases": {**BASES_CFG, **over}}


def _runs(loss, problem="p", seeds=SEEDS) -> pd.DataFrame:
    """Synthetic bases_runs: ``loss(basis, degree, T, seed)`` is the final training loss."""
    rows = [
        {"problem": problem, "loss": "mse", "basis": b, "degree": d, "T": T, "seed": s, "train_loss": loss(b, d, T, s)}
        for b in BASES_CFG["bases"]
        for d in DEGREES
        for T in TS
        for s in seeds
    ]
    return pd.DataFrame(rows)


FACTOR = {"monomial": 1.0, "legendre": 0.1, "chebyshev": 10**-0.5}


def test_seed_effects_known_answer():
    """loss = 10^(0.1 d T) x basis factor: every basis is monotone in d x T (rho = 1, ties of d x T tie the loss),
    and log10(monomial / basis) is exactly 1 (Legendre) and 0.5 (Chebyshev) in every cell."""
    e = sa.bases_seed_effects(_runs(lambda b, d, T, s: 10 ** (0.1 * d * T) * FACTOR[b]))
    assert len(e) == 3 * len(SEEDS)
    np.testing.assert_allclose(e["rho_loss_vs_degree_T"], 1.0)
    got = e.groupby("basis")["mean_log10_mono_over_basis"]
    np.testing.assert_allclose(got.min(), got.max())
    np.testing.assert_allclose(got.mean()[["monomial", "legendre", "chebyshev"]], [0.0, 1.0, 0.5], atol=1e-12)


def _verdicts(loss, seeds=SEEDS) -> pd.Series:
    e = sa.bases_seed_effects(_runs(loss, seeds=seeds))
    return verdict_table(sa.bases_claim_specs(e, {**_study(), "seeds": seeds}), 0.05).set_index("claim_id")["verdict"]


def _noise(b, d, T, s, scale):
    """a seeded log-normal factor, independent for every basis, degree, T and seed"""
    return 10 ** (scale * np.random.default_rng([s, d, int(T), BASES_CFG["bases"].index(b)]).normal())


def test_claims_supported():
    v = _verdicts(lambda b, d, T, s: 10 ** (0.1 * d * T) * FACTOR[b] * _noise(b, d, T, s, 0.1))
    assert set(v) == {"supported"} and len(v) == 3
    assert {"monomial_deteriorates:p", "orthogonal_helps:p:legendre", "orthogonal_helps:p:chebyshev"} == set(v.index)


def test_claims_contradicted():
    """the monomial loss falls with d x T and the orthogonal bases train to 10x / 3x higher losses"""
    worse = {"monomial": 1.0, "legendre": 10.0, "chebyshev": 10**0.5}
    v = _verdicts(lambda b, d, T, s: 10 ** (-0.1 * d * T) * worse[b] * _noise(b, d, T, s, 0.1))
    assert set(v) == {"contradicted"}


def test_claims_inconclusive():
    """pure noise, three seeds: no effect is pinned down either way"""
    v = _verdicts(lambda b, d, T, s: _noise(b, d, T, s, 0.3), seeds=[0, 1, 2])
    assert set(v) == {"inconclusive"}


def test_gram_table_known_values():
    g = sa.bases_gram(BASES_CFG).set_index(["basis", "grid", "degree"])["cond"]
    assert len(g) == 3 * 2 * (max(DEGREES) + 1)
    for b in BASES_CFG["bases"]:
        for d in range(max(DEGREES) + 1):
            assert g[(b, "layers", d)] == wp.gram_condition(b, 8, d)
    # continuous: Legendre diag(1/(2k+1)) -> 2d + 1; monomial: the Hilbert matrix H_4 (cond 15513.74)
    legendre = [g[("legendre", "continuous", d)] for d in range(4)]
    np.testing.assert_allclose(legendre, [1, 3, 5, 7], rtol=1e-12)
    assert g[("monomial", "continuous", 3)] == pytest.approx(15513.74, rel=1e-6)


@pytest.mark.parametrize("problem", ["peaks", "diabetes"])
def test_run_bases_cell_tiny(problem):
    torch.set_num_threads(1)
    cfg = {**BASES_CFG, "degrees": [1, 2], "Ts": [1.0, 3.0], "seeds": [0, 1]}
    dspec = {"kind": "sklearn_diabetes", "n_train": 16, "n_test": 16} if problem == "diabetes" else None
    cell = experiment.Cell(
        id={"problem": problem}, study=cfg, base_seed=0, device="cpu", dtype=cfg["dtype"], dataset=dspec
    )
    out = sa.run_bases_cell(cell)
    runs, curves = out["bases_runs"], out["bases_curves"]
    assert list(runs.columns) == sa.BASES_RUN_COLUMNS and len(runs) == 3 * 2 * 2 * 2
    assert set(runs["loss"]) == {"cross_entropy" if problem == "peaks" else "mse"}
    if problem == "peaks":
        assert runs["test_error"].between(0, 1).all()
    else:  # regression: the error is the MSE
        np.testing.assert_array_equal(runs["test_error"], runs["test_loss"])
    # the condition number depends on basis and degree only, and grows fastest for the monomial basis
    cond = runs.groupby(["basis", "degree"])["gram_cond"]
    np.testing.assert_allclose(cond.min(), cond.max(), rtol=1e-10)
    cond = cond.first()
    assert cond[("monomial", 2)] > 10 * cond[("legendre", 2)]
    # same span, same initialization: at epoch 0 every basis has the same loss (per seed, degree, T)
    start = curves[curves["epoch"] == 0].pivot_table(
        index=["seed", "degree", "T"], columns="basis", values="train_loss"
    )
    np.testing.assert_allclose(start["legendre"], start["monomial"], rtol=1e-10)
    np.testing.assert_allclose(start["chebyshev"], start["monomial"], rtol=1e-10)
    assert set(curves["epoch"]) == {0, 1, 2, 3}
    # ...and training changes it differently (the optimization geometry differs)
    end = runs.pivot_table(index=["seed", "degree", "T"], columns="basis", values="train_loss")
    assert not np.allclose(end["legendre"], end["monomial"], rtol=1e-6)


def test_part_summary_and_caption():
    runs = _runs(lambda b, d, T, s: 10 ** (0.1 * d * T) * FACTOR[b] * _noise(b, d, T, s, 0.1), problem="peaks")
    runs = runs.assign(test_loss=1.0, train_error=0.1, test_error=0.2, gram_cond=1.0)
    curves = runs[["problem", "basis", "degree", "T", "seed"]].assign(epoch=0, train_loss=1.0)
    tables, specs = sa.bases_part({"bases_runs": runs, "bases_curves": curves}.get, _study())
    assert {"bases_runs", "bases_curves", "bases_summary", "bases_effects", "bases_gram"} == set(tables)
    assert len(specs) == 3 and (tables["bases_summary"]["n_seeds"] == len(SEEDS)).all()
    text = "\n".join(sa.bases_caption(tables, _study()))
    assert "same network" in text and "h = T/L" in text
    assert rst_problems(text) == []
    # the step did not run (or is disabled): no tables, no claims, no caption
    assert sa.bases_part(lambda name: None, _study()) == ({}, [])
    assert sa.bases_part({"bases_runs": runs}.get, _study(enabled=False)) == ({}, [])
    assert sa.bases_caption({}, _study()) == []
