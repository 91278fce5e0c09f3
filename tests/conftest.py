import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "helpers"))  # dag_helpers, slurm_cluster


def pytest_configure(config):
    os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test`: `-n 2 --dist loadgroup`) every test that reads the shared smoke-scale DAG
    run goes to one worker (group "smoke"), so the DAG runs once per session; the rest spread over the workers."""
    for item in items:
        if "smoke_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("smoke"))


@pytest.fixture
def repo():
    return REPO


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """One local smoke-scale run of the whole DAG, shared by the end-to-end tests."""
    from dag_helpers import copy_workflow, snakemake

    wd = copy_workflow(tmp_path_factory.mktemp("smoke") / "wf")
    snakemake(wd)
    return wd
