"""Schema validation: defaults filled, one clear message for bad keys/types, all scales valid."""

import os
import subprocess
import sys

import pytest
import yaml

from nnrds import config as C

SCALES = ["config/smoke.yaml", "config/config.yaml", "config/paper.yaml"]


def minimal(**extra):
    """Smallest valid config: only wp_gap enabled (other studies' schema fragments disabled)."""
    studies = {
        k: {"enabled": False}
        for k, v in C.load_schema()["$defs"].items()
        if k in C.load_schema()["properties"] and "enabled" in v.get("properties", {})
    }
    return {
        **studies,
        "scale": "smoke",
        "data": {"sets": {"d": {"kind": "friedman1"}}},
        "parameterizations": {"p": {"kind": "const"}},
        "wp_gap": {"datasets": ["d"], "parameterizations": ["p"]},
        **extra,
    }


def test_disabled_study_references_are_not_checked():
    cfg = minimal()
    cfg["wp_gap"] = {"enabled": False, "datasets": ["missing"]}
    C.validate(cfg)


@pytest.mark.parametrize("path", SCALES)
def test_every_scale_validates(repo, path):
    cfg = C.load(repo / path)
    assert cfg["scale"] in ("smoke", "default", "paper")


def test_defaults_are_filled():
    cfg = C.validate(minimal())
    assert cfg["seed"] == 0 and cfg["device"] == "auto" and cfg["resources"]["gpu"] == 0
    assert cfg["data"]["sets"]["d"]["n_train"] == 50 and cfg["data"]["mirror"] == "../shared/data"
    assert cfg["data"]["elm"]["n_train"] == 500 and cfg["data"]["acquire"]["timeout_s"] == 300
    assert cfg["wp_gap"]["epochs"] == 1000


@pytest.mark.parametrize(
    "patch,expected",
    [
        ({"wp_gap": {"depths": [2, "four"]}}, "`wp_gap.depths[1]` must be of type integer, got 'four' (str)"),
        ({"wp_gap": {"epoch": 3}}, "unknown key `wp_gap.epoch`; allowed keys here:"),
        ({"bogus": 1}, "unknown key `bogus`"),
        ({"seed": "zero"}, "`seed` must be of type integer"),
        ({"resources": {"gpu": 1.5}}, "`resources.gpu` must be of type integer, got 1.5 (float)"),
        ({"data": {"sets": {"d": {"kind": "mnist"}}}}, "`data.sets.d.kind` must be one of"),
        ({"data": {"raw": 1}}, "unknown key `data.raw`; allowed keys here: acquire, chem, elm, mirror, sets"),
        ({"datasets": {"d": {"kind": "friedman1"}}}, "unknown key `datasets`"),
        (
            {"wp_gap": {"datasets": ["nope"]}},
            "`wp_gap.datasets[0]` names 'nope', which is not defined under `data.sets`",
        ),
    ],
)
def test_bad_config_gives_one_message_with_key_path(patch, expected):
    with pytest.raises(C.ConfigError) as e:
        C.validate(C.deep_merge(minimal(), patch), source="my.yaml")
    msg = str(e.value)
    assert expected in msg
    assert "my.yaml" in msg and "\n" not in msg


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(C.ConfigError, match="does not exist"):
        C.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("scale: [unclosed\n")
    with pytest.raises(C.ConfigError, match="not valid YAML"):
        C.load(bad)


def test_snakemake_rejects_bad_config_before_writing_anything(tmp_path, repo):
    from tests.helpers.dag_helpers import copy_workflow

    wd = copy_workflow(tmp_path / "wf")
    cfg = yaml.safe_load((repo / "config/smoke.yaml").read_text())
    cfg["wp_gap"]["widths"] = "eight"
    (wd / "bad.yaml").write_text(yaml.safe_dump(cfg))
    before = {p for p in wd.rglob("*")}
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--configfile", "bad.yaml", "--cores", "1"],
        cwd=wd,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "`wp_gap.widths` must be of type array, got 'eight' (str)" in text
    assert text.count("must be of type") == 1
    after = {p for p in wd.rglob("*") if ".snakemake" not in p.parts}
    assert after == {p for p in before if ".snakemake" not in p.parts}
    assert not (wd / "results").exists() or not any((wd / "results").iterdir())


def test_env_pins_match_pyproject(repo):
    import tomllib

    deps = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((repo / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(pip) == sorted(deps), "environment.yml pip section drifted from pyproject.toml"
    assert "python=3.11" in env["dependencies"]
    assert all("==" in d for d in deps), "every runtime dependency must be pinned exactly"


def test_pyproject_lists_every_package(repo):
    """pyproject.toml lists packages explicitly (nnrds.schemas maps to workflow/schemas): none may be missing."""
    import tomllib

    from setuptools import find_packages

    listed = set(tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert set(find_packages(str(repo / "src"))) | {"nnrds.schemas"} == listed


def test_installed_package_validates_config_without_the_checkout(tmp_path, repo):
    """A non-editable install (wheel built from a copy of the sources) validates a config from another cwd:
    the schemas ship as package data, nothing is read from the checkout."""
    import shutil

    src = tmp_path / "src_copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(repo / name, src / name)
    shutil.copytree(repo / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(repo / "workflow" / "schemas", src / "workflow" / "schemas")
    target = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--target",
            str(target),
            str(src),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    shutil.rmtree(src)  # the sources are gone: only the installed package remains
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    cfg = tmp_path / "smoke.yaml"
    shutil.copy2(repo / "config" / "smoke.yaml", cfg)
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = subprocess.run(
        [sys.executable, "-c", "import nnrds.config as c; print(c.__file__); print(c.SCHEMA_PATH)"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    mod, schema = probe.stdout.split()
    assert mod.startswith(str(target)) and schema.startswith(str(target)), probe.stdout
    out = subprocess.run(
        [sys.executable, "-m", "nnrds", "validate-config", str(cfg)], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert '"scale": "smoke"' in out.stdout
