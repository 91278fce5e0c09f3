"""Building blocks of a training cell (nnrds.experiment): known answers on small synthetic data."""

import numpy as np
import pytest
import torch

from nnrds import experiment
from nnrds.data import regression
from nnrds.models import ReplicaNet

torch.set_num_threads(1)
SPEC = {"kind": "smooth_synthetic", "n_features": 3, "noise": 0.1, "n_train": 8, "n_test": 5}


def test_prepare_seeds_and_picks_device_and_dtype():
    rt = experiment.prepare(7, "cpu", "float64")
    a = torch.rand(3)
    rt2 = experiment.prepare(7, "cpu", "float64")
    assert torch.equal(a, torch.rand(3)) and rt == rt2
    assert rt.device == torch.device("cpu") and rt.dtype == torch.float64
    assert rt.tensor(np.ones(2, dtype=np.float32)).dtype == torch.float64
    assert rt.index(np.arange(3)).dtype == torch.int64


def test_replica_seed_depends_only_on_run_seed_and_base_seed():
    assert experiment.replica_seed(3, 0) == 3000 and experiment.replica_seed(3, 2) == 3002
    assert experiment.replica_seed(0, 1) != experiment.replica_seed(1, 0)


def test_regression_data_per_seed_and_per_replica():
    rt = experiment.prepare(0, "cpu", "float64")
    d = experiment.regression_data(SPEC, [0, 1], 0, rt)
    splits = regression.seeded_splits(SPEC, [0, 1], 0)
    assert d.X_train.shape == (2, 8, 3) and d.Y_test.shape == (2, 5, 1) and (d.d_in, d.d_out) == (3, 1)
    np.testing.assert_array_equal(d.X_train[1].numpy(), splits[1].X_train)
    r = experiment.regression_data(SPEC, [0, 1], 0, rt, replica_seed_index=[1, 1, 0])
    assert r.X_train.shape == (3, 8, 3)
    assert torch.equal(r.X_train[0], d.X_train[1]) and torch.equal(r.X_train[1], d.X_train[1])
    assert torch.equal(r.Y_test[2], d.Y_test[0])


def test_heldout_halves():
    rt = experiment.prepare(0, "cpu", "float64")
    d = experiment.regression_data(SPEC, [0], 0, rt)
    (Xv, Yv), (Xt, Yt) = d.heldout_halves(2)
    assert Xv.shape == (1, 2, 3) and Xt.shape == (1, 3, 3) and Yt.shape == (1, 3, 1)
    assert Xv.is_contiguous() and Xt.is_contiguous()
    assert torch.equal(torch.cat([Xv, Xt], 1), d.X_test) and torch.equal(torch.cat([Yv, Yt], 1), d.Y_test)
    for bad in (0, 5):
        with pytest.raises(ValueError, match=f"n_val={bad}"):
            d.heldout_halves(bad)


def test_arch_and_replica_net_are_paired_by_run_seed():
    rt = experiment.prepare(0, "cpu", "float64")
    d = experiment.regression_data(SPEC, [0, 1], 0, rt)
    arch = experiment.resnet_arch(d, {"kind": "legendre", "degree": 2}, width=4, depth=3, T=2.0, activation="relu")
    assert (arch.d_in, arch.d_out, arch.width, arch.depth, arch.param, arch.degree, arch.T, arch.activation) == (
        3,
        1,
        4,
        3,
        "legendre",
        2,
        2.0,
        "relu",
    )
    assert experiment.resnet_arch(d, {"kind": "nonpar"}, width=4, depth=3, T=1.0).degree == 0
    pair = experiment.replica_net(arch, [0, 1], 5, rt)
    alone = ReplicaNet(arch, [experiment.replica_seed(1, 5)], dtype=torch.float64)
    for p, q in zip(pair.parameters(), alone.parameters()):
        assert torch.equal(p[1], q[0])  # replica 1 of the batch is the network of its seed alone
    assert experiment.replica_net(arch, [1, 1], 5, rt).n_replicas == 2


class _Const(torch.nn.Module):
    """Predicts ``c[r]`` for every sample of replica r."""

    def __init__(self, c):
        super().__init__()
        self.c = torch.tensor(c, dtype=torch.float64)

    def forward(self, X):
        R = len(self.c)
        return self.c[:, None, None].expand(R, X.shape[-2], 1)


def test_train_replicas_is_fit_with_the_study_settings():
    from nnrds.train import fit

    rt = experiment.prepare(0, "cpu", "float64")
    d = experiment.regression_data(SPEC, [0, 1], 0, rt)
    arch = experiment.resnet_arch(d, {"kind": "const"}, width=3, depth=2, T=1.0)
    study = {"epochs": 3, "lr": 0.05, "batch_size": 4}
    a, b = (experiment.replica_net(arch, [0, 1], 0, rt) for _ in range(2))
    ra = experiment.train_replicas(a, d, study, 5, l2=[0.0, 0.1])
    rb = fit(b, d.X_train, d.Y_train, epochs=3, lr=0.05, batch_size=4, seed=5, l2=[0.0, 0.1])
    assert ra.epochs == rb.epochs == 3
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    c = experiment.replica_net(arch, [0, 1], 0, rt)
    experiment.train_replicas(c, d, {**study, "lr": 0.2}, 5, l2=[0.0, 0.1])  # the study's lr is used
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_errors_are_per_replica_mses():
    X = torch.zeros(2, 4, 3, dtype=torch.float64)
    Y = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 0.0, 2.0]], dtype=torch.float64)[..., None]
    e = experiment.errors(_Const([2.0, 0.0]), {"train_mse": (X, Y), "shared": (X[0], Y[0])})
    assert e["train_mse"].dtype == np.float64
    np.testing.assert_allclose(e["train_mse"], [1.0, 1.0])  # (1+1+1+1)/4 and (0+0+0+4)/4
    np.testing.assert_allclose(e["shared"], [1.0, 5.0])  # Y of replica 0 for both: mean((Y-0)^2) = 20/4


def test_tabulate_rows_and_gap():
    rows = experiment.tabulate(
        {"dataset": "d"},
        [{"seed": 0}, {"seed": 1}],
        {"train_mse": np.array([0.5, 1.0]), "test_mse": np.array([2.0, 1.5])},
    )
    assert rows == [
        {"dataset": "d", "seed": 0, "train_mse": 0.5, "test_mse": 2.0, "gap": 1.5},
        {"dataset": "d", "seed": 1, "train_mse": 1.0, "test_mse": 1.5, "gap": 0.5},
    ]
    assert "gap" not in experiment.tabulate({}, [{}], {"accuracy": np.array([0.9])})[0]


def test_cell_reads_its_identity_and_prepares_like_prepare():
    cell = experiment.Cell(
        {"dataset": "chem", "param": "wp"}, {"seeds": [0]}, base_seed=7, device="cpu", dtype="float64"
    )
    assert cell["dataset"] == "chem" and cell["param"] == "wp"
    with pytest.raises(KeyError):
        cell["model"]
    rt = cell.prepare()
    a = torch.rand(3)
    assert rt == experiment.prepare(7, "cpu", "float64") and torch.equal(a, torch.rand(3))
    other = cell.but(dtype="float32", study={"seeds": [1]})
    assert other.dtype == "float32" and other.study == {"seeds": [1]} and cell.dtype == "float64"
    assert other.id == cell.id and other.base_seed == 7
