"""A job reruns only when its own inputs change (issue 23, item 5): its params hold only the keys it reads.

Snakemake reruns a finished job when its params changed, so a job would rerun after a config edit exactly when its
shell command (which carries its config slice, ``--config-json``) changes. The test dry-runs the whole smoke DAG
(``--forceall``: every job with its command) with the smoke config and with an edited copy and compares the
commands job by job: a summary-only key (claims margins) changes no training job's command, a training key changes
exactly the cells that read it.
"""

import re
import subprocess
import sys

import pytest
import yaml

from tests.helpers.dag_helpers import copy_workflow

pytestmark = pytest.mark.slow


#: the DAG part the test dry-runs (two studies, their data; the whole DAG's dry run takes about a minute)
TARGETS = ["results/wp_gap/claims.csv", "results/pinn_failure/claims.csv"]


def _job_commands(wd, configfile) -> dict[tuple[str, str], str]:
    """(rule, first output) -> shell command of every job of a forced dry run of :data:`TARGETS`."""
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "-F", "--nolock", "--configfile", configfile, "--", *TARGETS],
        cwd=wd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    jobs, rule, output = {}, None, None
    for line in out.stdout.splitlines():
        line = line.strip()
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule, output = m.group(1), None
        elif line.startswith("output:") and rule:
            output = line.split(":", 1)[1].strip().split(",")[0]
        elif "-m nnrds " in line and rule:
            jobs[(rule, output)] = line
    assert jobs, out.stdout[-2000:]
    return jobs


def _changed(wd, tmp_path, edit) -> set[tuple[str, str]]:
    cfg = yaml.safe_load((wd / "config/smoke.yaml").read_text())
    edit(cfg)
    (tmp_path / "edited.yaml").write_text(yaml.safe_dump(cfg))
    base = _base_commands(wd)
    new = _job_commands(wd, str(tmp_path / "edited.yaml"))
    assert base.keys() == new.keys()
    return {k for k in base if base[k] != new[k]}


@pytest.fixture(scope="module")
def wd(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("wf") / "wf")


_BASE: dict = {}


def _base_commands(wd):
    if wd not in _BASE:
        _BASE[wd] = _job_commands(wd, "config/smoke.yaml")
    return _BASE[wd]


def test_summary_only_keys_rerun_no_training_job(wd, tmp_path):
    def edit(cfg):
        cfg.setdefault("pinn_failure", {}).setdefault("claims", {})["min_orders"] = 0.5
        cfg.setdefault("wp_gap", {}).setdefault("claims", {})["margin_rho"] = 0.2

    changed = _changed(wd, tmp_path, edit)
    assert {rule for rule, _ in changed} == {"pinn_failure_summarize", "wp_gap_summarize"}, changed


def test_a_training_key_reruns_exactly_the_cells_that_read_it(wd, tmp_path):
    cfg = yaml.safe_load((wd / "config/smoke.yaml").read_text())
    elm, widths = cfg["wp_gap"]["per_dataset"]["elm"], cfg["wp_gap"]["widths"]
    problem = next(iter(cfg["pinn_failure"]["problems"]))

    def edit(c):
        # the elm sweep's widths: only elm's training cells (and the summary) read them, not the landscape
        c["wp_gap"]["per_dataset"]["elm"] = {**elm, "widths": [w + 1 for w in widths]}
        # one PINN problem's coefficients: only that problem's cells (and the summary)
        spec = c["pinn_failure"]["problems"][problem]
        spec["coefs"] = [*spec["coefs"], max(spec["coefs"]) + 1]

    changed = _changed(wd, tmp_path, edit)
    base = _base_commands(wd)
    for rule, part in (("wp_gap_train", "/cells/elm/"), ("pinn_failure_train", f"/cells/{problem}/")):
        train = {out for r, out in changed if r == rule}
        assert train and train == {out for r, out in base if r == rule and part in out}, changed
    assert {rule for rule, _ in changed} == {
        "wp_gap_train",
        "wp_gap_summarize",
        "pinn_failure_train",
        "pinn_failure_summarize",
    }, changed
