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
