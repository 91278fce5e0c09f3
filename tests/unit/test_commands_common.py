"""What every command shares (nnrds.commands.common): the cell of a job, the train-command body, registration."""

import argparse
import json

import pandas as pd
import pytest

from nnrds import cli
from nnrds.commands.common import add_commands, cell_of, command_help, run_cell_job


def test_cell_of_builds_the_cell_from_the_job_config(tmp_path):
    cfg = {
        "seed": 3,
        "device": "cpu",
        "dtype": "float64",
        "torch_threads": 1,
        "study": {"seeds": [0, 1]},
        "dataset": {"kind": "chem"},
        "parameterization": {"kind": "legendre", "degree": 2},
        "cell": {"dataset": "chem", "param": "leg2"},
    }
    args = argparse.Namespace(config_json=cfg, in_dir=[str(tmp_path)], out_dir=str(tmp_path / "out"))
    cell = cell_of(args)
    assert cell.id == {"dataset": "chem", "param": "leg2"} and cell.study == {"seeds": [0, 1]}
    assert (cell.base_seed, cell.device, cell.dtype) == (3, "cpu", "float64")
    assert cell.dataset == {"kind": "chem", "data_dir": str(tmp_path)}  # the rule's folder, not a config path
    assert cell.parameterization == {"kind": "legendre", "degree": 2} and cell.in_dirs == (str(tmp_path),)
    assert cell.data is None
    # a slice without dataset / parameterization / cell (e.g. uq_elm's): identity given by the command
    bare = argparse.Namespace(config_json={"seed": 0, "study": {}}, in_dir=[], out_dir="x")
    c2 = cell_of(bare, id={"job": "linear"}, dtype="float32")
    assert c2.id == {"job": "linear"} and c2.dataset is None and c2.device == "auto" and c2.in_dirs == ()


def test_run_cell_job_names_the_job_and_writes_what_run_cell_returns(tmp_path):
    from nnrds.guards import current

    seen = {}

    def run(cell):
        seen["cell"], seen["where"] = cell, current()
        return {"runs": pd.DataFrame({"seed": [0], "x": [1.0]}), "timings": pd.DataFrame({"device": ["cpu"]})}

    cfg = {"seed": 0, "torch_threads": 1, "study": {"seeds": [0], "lr": 0.1}, "cell": {"dataset": "d", "param": "p"}}
    args = argparse.Namespace(config_json=cfg, in_dir=[], out_dir=str(tmp_path))
    assert run_cell_job(args, "wp_gap", run, dtype="float64") == 0
    assert seen["cell"].dtype == "float64" and seen["cell"]["param"] == "p"
    assert (seen["where"].study, seen["where"].cell, seen["where"].config_key) == ("wp_gap", "d/p", "wp_gap.lr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["provenance.json", "runs.csv", "timings.csv"]
    assert json.loads((tmp_path / "provenance.json").read_text())["job"] == "wp_gap/d/p"


def test_command_help_comes_from_the_docstring():
    def _cmd(args):
        """do one
        thing

        Config: {seed,
        study}"""

    def _no_config(args):
        """only what it does"""

    def _bare(args):
        return 0

    assert command_help(_cmd) == ("do one thing", "{seed, study}")
    assert command_help(_no_config) == ("only what it does", "validated config slice of the job")
    with pytest.raises(ValueError, match="_bare needs a docstring"):
        command_help(_bare)


def test_add_commands_registers_the_one_convention():
    def _cmd(args):
        """say hello

        Config: {x}"""
        return 7

    p = argparse.ArgumentParser()
    add_commands(p.add_subparsers(dest="command"), {"hello": _cmd})
    args = p.parse_args(["hello", "--config-json", '{"x": 1}', "--out-dir", "o", "--in-dir", "a", "b"])
    assert args.config_json == {"x": 1} and args.in_dir == ["a", "b"] and args.func(args) == 7


def test_every_command_has_help_and_config_help():
    p = cli.build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    for name, sp in sub.choices.items():
        assert helps[name], name
        if name in ("validate-config", "estimate"):  # they read a config file, not a job's config slice
            assert any(a.dest in ("config", "configfile") and a.help for a in sp._actions), name
        else:
            conf = next(a.help for a in sp._actions if a.dest == "config_json")
            assert conf and not conf.startswith("Config:"), name
