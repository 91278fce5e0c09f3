"""The shared training loop: batched replicas train exactly as they would alone."""

import torch

from nnrds.models import Arch, ReplicaNet
from nnrds.train import fit, mse_per_replica, seed_everything


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(32, 3, generator=g, dtype=torch.float64)
    Y = torch.sin(X.sum(1, keepdim=True))
    return X, Y


def test_batched_training_equals_training_alone():
    seed_everything(0)
    X, Y = _data()
    arch = Arch(3, 1, 6, 4, "legendre", 2)
    batched = ReplicaNet(arch, seeds=[1, 2, 3], dtype=torch.float64)
    fit(batched, X, Y, epochs=30, lr=1e-2, batch_size=8, l2=[0.0, 1e-3, 0.0])
    alone = ReplicaNet(arch, seeds=[2], dtype=torch.float64)
    fit(alone, X, Y, epochs=30, lr=1e-2, batch_size=8, l2=1e-3)
    for name, p in alone.named_parameters():
        torch.testing.assert_close(p[0], getattr(batched, name)[1], rtol=1e-10, atol=1e-12)


def test_training_reduces_loss_and_logs_history():
    X, Y = _data(1)
    net = ReplicaNet(Arch(3, 1, 8, 3, "nonpar"), seeds=[0, 1])
    before = mse_per_replica(net, X.float(), Y.float())
    seen = []
    res = fit(net, X.float(), Y.float(), epochs=200, lr=1e-2, log_every=50, callback=lambda e, n: seen.append(e))
    after = mse_per_replica(net, X.float(), Y.float())
    assert torch.all(after < 0.2 * before)
    assert seen == [0, 50, 100, 150, 200]
    assert {r["epoch"] for r in res.history} == {0, 50, 100, 150, 200}


def test_training_is_deterministic():
    X, Y = _data(2)
    outs = []
    for _ in range(2):
        net = ReplicaNet(Arch(3, 1, 8, 3, "const"), seeds=[4, 5])
        fit(net, X.float(), Y.float(), epochs=50, batch_size=10, seed=7)
        outs.append(net(X.float()))
    assert torch.equal(outs[0], outs[1])


# ---------------------------------------------------------------- loud divergence (issue 11, item 6)
import json  # noqa: E402
import logging  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from nnrds import guards  # noqa: E402
from nnrds.guards import NonFiniteError, Where  # noqa: E402

W = Where(study="wp_gap", cell="diabetes/nonpar depth 2", config_key="wp_gap.lr", labels=("seed 0", "seed 1", "seed 2"))


def _nan_after(calls: int, replica: int):
    """An MSE loss that turns replica ``replica`` NaN from its ``calls``-th call on (training steps only)."""
    n = {"calls": 0}

    def loss_fn(net, X, Y):
        loss = mse_per_replica(net, X, Y)
        if net.training:
            n["calls"] += 1
            if n["calls"] >= calls:
                loss = loss + torch.tensor([float("nan") if r == replica else 0.0 for r in range(len(loss))])
        return loss

    return loss_fn


def test_nonfinite_loss_names_study_cell_replica_epoch_and_key():
    X, Y = _data(3)
    net = ReplicaNet(Arch(3, 1, 6, 2, "nonpar"), seeds=[0, 1, 2])
    with pytest.raises(NonFiniteError) as e:
        fit(net, X.float(), Y.float(), epochs=10, batch_size=8, loss_fn=_nan_after(9, replica=1), where=W)
    msg = str(e.value)
    # 4 steps per epoch: the 9th step is in epoch 3
    for part in ("`wp_gap`", "`diabetes/nonpar depth 2`", "replica(s) [1] (seed 1)", "epoch 3 of 10", "`wp_gap.lr`"):
        assert part in msg, (part, msg)
    assert "\n" not in msg


def test_nonfinite_gradient_is_caught_at_a_log_point():
    X, Y = _data(4)
    net = ReplicaNet(Arch(3, 1, 6, 2, "nonpar"), seeds=[0, 1])

    def penalty(net, xb):  # value 0, gradient 0 * inf = NaN for replica 1 only
        p = next(net.parameters())
        d = (p - p.detach()).reshape(p.shape[0], -1).abs().sum(1)
        return torch.stack([torch.zeros(()), torch.sqrt(d[1])])

    with pytest.raises(NonFiniteError, match=r"non-finite gradient `.*replica\(s\) \[1\].*epoch 1 of 5"):
        fit(net, X.float(), Y.float(), epochs=5, penalty=penalty, penalty_weight=1.0, log_every=1, where=W)


def test_fit_takes_the_job_where_by_default():
    X, Y = _data(5)
    net = ReplicaNet(Arch(3, 1, 6, 2, "const"), seeds=[0, 1])
    with guards.job(Where("stiffness", "chem/legendre3", "stiffness.lr")):
        with pytest.raises(
            NonFiniteError,
            match=r"`stiffness`, cell `chem/legendre3`, replica\(s\) \[0\].*"
            r"epoch 1 of 3.*`stiffness.lr`",
        ):
            fit(net, X.float(), Y.float(), epochs=3, loss_fn=_nan_after(1, replica=0))
    assert guards.current() == Where()


def test_progress_is_logged_about_ten_times_per_fit(caplog):
    X, Y = _data(6)
    net = ReplicaNet(Arch(3, 1, 6, 2, "const"), seeds=[0, 1])
    with caplog.at_level(logging.INFO, logger="nnrds.train"):
        fit(net, X.float(), Y.float(), epochs=95, batch_size=8, where=W)
    lines = [r.getMessage() for r in caplog.records if r.name == "nnrds.train"]
    progress = [m for m in lines if "loss mean" in m]
    assert 10 <= len(progress) <= 20, lines
    assert all("ETA" in m and "elapsed" in m and "wp_gap diabetes/nonpar depth 2" in m for m in progress)
    assert "epoch 95/95" in progress[-1] and "ETA 0:00:00" in progress[-1]


# ---------------------------------------------------------------- explicit data paths (issue 11, item 7)
def _ensemble_folder(root):
    """A tiny ensemble folder in the layout of results/data/<source> (3 inputs, 2 outputs)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for part, n in (("train", 30), ("test", 12)):
        P = rng.uniform(-1, 1, size=(n, 3))
        Yv = np.c_[np.sin(P.sum(1)), P[:, 0] * P[:, 1]]
        pd.DataFrame(P, columns=["a", "b", "c"]).to_csv(root / f"p{part}.csv", index=False)
        pd.DataFrame(Yv, columns=["y0", "y1"]).to_csv(root / f"y{part}.csv", index=False)
    return root


def _cell_config(study, **study_over):
    from nnrds import config as C

    cfg = C.load(C.REPO_ROOT / "config" / "smoke.yaml")
    sc = {**cfg[study], "seeds": [0], **study_over}
    return {
        **{k: cfg[k] for k in ("seed", "device", "dtype", "torch_threads")},
        "study": sc,
        "dataset": {"kind": "ensemble", "source": "toy", "n_train": 20, "n_test": 12},
        "parameterization": {"kind": "legendre", "degree": 1},
    }


def _job_args(command, cfg, data, out, tables):
    """Arguments of a train command on a toy cell with its data folder ``data`` (None: no folder given)."""
    cfg = {**cfg, "cell": {"dataset": "toy", "param": "leg1"}}
    return [
        command,
        "--config-json",
        json.dumps(cfg),
        *(["--in-dir", str(data)] if data else []),
        "--out-dir",
        str(out),
    ]


@pytest.mark.parametrize(
    "command,study,tables,over",
    [
        ("wp-gap-train", "wp_gap", ["runs"], {"depths": [2], "widths": [4], "epochs": 3}),
        (
            "stiffness-train",
            "stiffness",
            ["runs", "metrics", "eigenvalues"],
            {"epochs": 3, "track_every": 3, "l2_grid": [0.01], "penalty_grid": [1.0], "width": 4, "depth": 2},
        ),
    ],
)
def test_train_command_reads_only_the_data_folder_it_is_given(tmp_path, monkeypatch, command, study, tables, over):
    """The ensemble lies in an arbitrary folder (not results/data/<source>), the job runs from another cwd."""
    from nnrds import cli

    data = _ensemble_folder(tmp_path / "somewhere" / "toy_ensemble")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "out"
    cfg = _cell_config(study, **over)
    assert cli.main(_job_args(command, cfg, data, out, tables)) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) > 0 and np.isfinite(runs.test_mse).all()
    assert not (cwd / "results").exists()
    # without the folder the job refuses (it never looks for results/data/<source> on its own)
    (cwd / "results" / "data").mkdir(parents=True)
    _ensemble_folder(cwd / "results" / "data" / "toy")
    assert cli.main(_job_args(command, cfg, None, tmp_path / "out2", tables)) == 2


def test_train_command_exits_nonzero_on_divergence_and_writes_nothing(tmp_path, capsys):
    from nnrds import cli

    data = _ensemble_folder(tmp_path / "toy")
    out = tmp_path / "out"
    cfg = _cell_config("wp_gap", depths=[2], widths=[4], epochs=5, lr=1e12)
    rc = cli.main(_job_args("wp-gap-train", cfg, data, out, ["runs"]))
    err = capsys.readouterr().err
    assert rc == cli.EXIT_NONFINITE
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert (
        len(lines) == 1
        and "(seed 0, depth 2, width 4)" in lines[0]
        and "`wp_gap`" in lines[0]
        and "`toy/leg1`" in lines[0]
        and "`wp_gap.lr`" in lines[0]
    )
    assert not out.exists() or not any(out.iterdir())
