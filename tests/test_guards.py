import numpy as np
import pytest
import torch

from nnrds.guards import NonFiniteError, Where, check_finite

W = Where(study="wp_gap", cell="diabetes_w8", config_key="wp_gap.lr")


def test_finite_passes():
    check_finite(torch.ones(3, 4), where=W, step="epoch 1")
    check_finite({"a": np.zeros(2), "b": torch.arange(3)}, where=W, step="epoch 1")


def test_message_names_everything():
    t = torch.ones(4, 5)
    t[2, 1] = float("nan")
    t[3, 0] = float("inf")
    with pytest.raises(NonFiniteError) as e:
        check_finite({"layer.W": t}, where=W, step="epoch 7", what="parameter")
    msg = str(e.value)
    for part in ("wp_gap", "diabetes_w8", "replica(s) [2, 3]", "epoch 7", "wp_gap.lr", "layer.W"):
        assert part in msg


def test_chain_dim_and_scalar():
    with pytest.raises(NonFiniteError, match=r"chain\(s\) \[1\]"):
        check_finite(torch.tensor([[0.0, 1.0], [np.nan, 0.0]]), where=Where("uq_elm", "j", "uq_elm.x", "chain"),
                     step="iteration 3", what="draw")
    with pytest.raises(NonFiniteError, match="all replicas"):
        check_finite(float("inf"), where=W, step="epoch 2", batch_dim=None)
