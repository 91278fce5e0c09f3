"""Regression datasets and seeded splits (nnrds.data.regression): known answers on synthetic pools."""

import numpy as np
import pandas as pd
import pytest

from nnrds.data import regression, write_ensemble


def _pool(n=50, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(3.0, 2.0, size=(n, d))
    return X, X @ np.arange(1, d + 1)[:, None] + 1.0


def test_split_standardizes_with_training_statistics_only():
    X, Y = _pool()
    s = regression.split(X, Y, n_train=20, n_test=10, seed=1)
    np.testing.assert_allclose(s.X_train.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(s.X_train.std(0), 1, atol=1e-9)
    np.testing.assert_allclose(s.Y_train.mean(0), 0, atol=1e-12)
    # the test points use the training transform: undo it with the training statistics of the same permutation
    perm = np.random.default_rng(1).permutation(len(X))
    tr, te = perm[:20], perm[20:30]
    np.testing.assert_allclose(s.X_test * (X[tr].std(0) + 1e-12) + X[tr].mean(0), X[te], atol=1e-9)


def test_split_is_seeded_and_disjoint():
    X, Y = _pool()
    X[:, 0] = np.arange(len(X))  # row ids survive as a monotone transform
    a, b = regression.split(X, Y, 20, 30, seed=3), regression.split(X, Y, 20, 30, seed=3)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert a.X_train.shape == (20, 3) and a.X_test.shape == (30, 3)
    # one affine map for train and test: distinct standardized ids = distinct rows
    assert not set(np.round(a.X_train[:, 0], 9)) & set(np.round(a.X_test[:, 0], 9))
    c = regression.split(X, Y, 20, 30, seed=4)
    assert not np.array_equal(a.X_train, c.X_train)


def test_split_needs_a_test_point():
    X, Y = _pool(n=10)
    with pytest.raises(ValueError, match="n_train=10 leaves no test points in a pool of 10"):
        regression.split(X, Y, 10, 1, seed=0)


def test_seeded_splits_share_the_pool_and_differ_by_seed():
    spec = {"kind": "smooth_synthetic", "n_features": 4, "noise": 0.1, "n_train": 15, "n_test": 5}
    s0, s1 = regression.seeded_splits(spec, [0, 1], base_seed=0)
    again = regression.seeded_splits(spec, [1], base_seed=0)[0]
    np.testing.assert_array_equal(s1.X_train, again.X_train)
    assert s0.X_train.shape == (15, 4) and s0.Y_test.shape == (5, 1)
    assert not np.array_equal(s0.X_train, s1.X_train)


def test_unknown_kind_and_ensemble_without_folder():
    with pytest.raises(ValueError, match="unknown dataset kind 'nope'"):
        regression.load_pool({"kind": "nope"})
    with pytest.raises(ValueError, match="needs the folder of its tables"):
        regression.load_pool({"kind": "ensemble", "source": "elm"})


def test_ensemble_pool_reads_only_its_folder(tmp_path):
    f = lambda a, c: pd.DataFrame(a, columns=[f"{c}{i}" for i in range(a.shape[1])])  # noqa: E731
    write_ensemble(
        tmp_path,
        f(np.ones((4, 2)), "p"),
        f(np.zeros((4, 1)), "y"),
        f(2 * np.ones((3, 2)), "p"),
        f(np.ones((3, 1)), "y"),
        {},
    )
    X, Y = regression.load_pool({"kind": "ensemble", "source": "elm", "data_dir": str(tmp_path)})
    assert X.shape == (7, 2) and Y.shape == (7, 1) and X[-1, 0] == 2.0  # train rows then test rows
    files = regression.input_files({"kind": "ensemble", "source": "elm"}, "results/data")
    assert files == [f"results/data/elm/{n}" for n in ("ptrain.csv", "ytrain.csv", "ptest.csv", "ytest.csv")]
    assert regression.data_dir_of(files) == "results/data/elm"
    assert regression.input_files({"kind": "friedman1"}, "results/data") == [] and regression.data_dir_of([]) is None
    with pytest.raises(ValueError, match="several folders"):
        regression.data_dir_of(["a/x.csv", "b/y.csv"])
