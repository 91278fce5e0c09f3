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
        check_finite(
            torch.tensor([[0.0, 1.0], [np.nan, 0.0]]),
            where=Where("uq_elm", "j", "uq_elm.x", "chain"),
            step="iteration 3",
            what="draw",
        )
    with pytest.raises(NonFiniteError, match="all replicas"):
        check_finite(float("inf"), where=W, step="epoch 2", batch_dim=None)


def test_check_table_names_table_column_and_rows():
    import pandas as pd

    from nnrds.guards import check_table

    df = pd.DataFrame(
        {"dataset": ["d", "d", "d"], "seed": [0, 1, 2], "train_mse": [0.1, np.nan, 0.3], "test_mse": [0.2, 0.3, np.inf]}
    )
    with pytest.raises(NonFiniteError) as e:
        check_table(df, table="runs", where=W)
    msg = str(e.value)
    for part in ("`train_mse`", "table `runs`", "1 of 3 row(s)", "seed=1", "wp_gap", "diabetes_w8", "`wp_gap.lr`"):
        assert part in msg, (part, msg)
    check_table(df, table="runs", where=W, allow={"train_mse", "test_mse"})
    check_table(df.iloc[[0]], table="runs", where=W)


def test_cell_job_writes_no_table_when_one_holds_nonfinite_values(tmp_path):
    import argparse

    import pandas as pd

    from nnrds.commands.common import cell_job

    args = argparse.Namespace(
        config_json={"torch_threads": 1, "study": {"seeds": [0], "lr": 0.1}},
        runs=str(tmp_path / "runs.csv"),
        timings=str(tmp_path / "timings.csv"),
        provenance=str(tmp_path / "provenance.json"),
    )
    with pytest.raises(
        NonFiniteError,
        match=r"`test_mse` in table `runs` of study `wp_gap`, cell `diabetes/const`.*"
        r"`wp_gap.lr`",
    ):
        with cell_job(args, "wp_gap/diabetes/const") as out:
            from nnrds.guards import current

            assert current().study == "wp_gap" and current().config_key == "wp_gap.lr"
            out["runs"] = pd.DataFrame({"seed": [0, 1], "test_mse": [0.5, float("nan")]})
            out["timings"] = pd.DataFrame({"device": ["cpu"], "wall_time_s": [1.0]})
    assert list(tmp_path.iterdir()) == []


def test_where_labels_are_shown_next_to_indices():
    w = W.at(labels=("seed 0", "seed 1", "seed 2"))
    with pytest.raises(NonFiniteError, match=r"replica\(s\) \[2\] \(seed 2\)"):
        check_finite(torch.tensor([0.0, 1.0, float("nan")]), where=w, step="epoch 4")
