import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the xdist_group markers
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test`: `-n 2 --dist loadgroup`) every test that works inside the shared smoke-scale
    DAG run (snakemake --report there, reading its files) goes to one worker (group "smoke"); tests that only compare
    with its table digests (`smoke_digests`: kill-and-rerun, SLURM) run their own DAGs on any worker."""
    for item in items:
        if {"smoke_run", "smoke_report"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("smoke"))


@pytest.fixture
def repo():
    return REPO


_SMOKE: dict[str, Path] = {}  # the smoke run of this process (no xdist)


def _shared_smoke_dag(tmp_path_factory) -> Path:
    """The smoke-scale DAG, run once per test session: under pytest-xdist the first worker that needs it runs it
    (under a file lock in the session's shared temporary folder), the others reuse that folder."""
    from filelock import FileLock

    from tests.helpers.dag_helpers import copy_workflow, snakemake

    if not os.environ.get("PYTEST_XDIST_WORKER"):  # one process: once per session
        if "wd" not in _SMOKE:
            wd = copy_workflow(tmp_path_factory.mktemp("smoke") / "wf")
            snakemake(wd)
            _SMOKE["wd"] = wd
        return _SMOKE["wd"]
    root = tmp_path_factory.getbasetemp().parent  # shared by every worker of this session
    wd, done, failed = root / "smoke" / "wf", root / "smoke.done", root / "smoke.failed"
    with FileLock(str(root / "smoke.lock")):
        if failed.exists():
            pytest.fail(f"the shared smoke DAG failed in another worker:\n{failed.read_text()}")
        if not done.exists():
            try:
                copy_workflow(wd)
                snakemake(wd)
            except BaseException as e:
                failed.write_text(str(e)[-6000:])
                raise
            done.touch()
    return wd


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The folder of one local smoke-scale run of the whole DAG, shared by the end-to-end tests."""
    return _shared_smoke_dag(tmp_path_factory)


@pytest.fixture(scope="session")
def smoke_report(smoke_run):
    """results/report.html of the shared smoke run (``snakemake --report``, built once per session)."""
    from tests.helpers.dag_helpers import snakemake

    report = smoke_run / "results/report.html"
    if not report.exists():
        snakemake(smoke_run, "--report", str(report.relative_to(smoke_run)))
    return report


@pytest.fixture(scope="session")
def smoke_digests(tmp_path_factory):
    """sha256 of every deterministic table of the shared smoke run (tests that compare their own DAG run with it)."""
    from tests.helpers.dag_helpers import table_digests

    return table_digests(_shared_smoke_dag(tmp_path_factory))
