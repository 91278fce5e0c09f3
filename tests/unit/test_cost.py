"""The runtime / memory model of nnrds.cost and the `nnrds estimate` command (src/nnrds/commands/estimate.py):
known-answer fits on synthetic benchmarks, the one-scale and missing-benchmark cases, the dry-run parser, and one
end-to-end run at smoke scale on synthetic benchmark files."""

import json
import math

import pytest

from nnrds import cost
from nnrds.commands import estimate as est


def bench_file(path, s, rss=500.0, cpu=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
        f"{s:.6f}\t0:00:01\t{rss:.2f}\t900\t400\t420\t0\t1\t90\t{cpu if cpu is not None else s:.6f}\n"
    )
    return path


def point(serial, flops, s, mem=1.0, rss=500.0, scale="default"):
    return cost.Point(cost.Work(serial, flops, mem), cost.Benchmark(s, s, rss), scale=scale)


def test_fit_recovers_known_a_b_at_fixed_kappa():
    a, b, k = 3.0, 2e-9, 1e5
    shapes = [(1e3, 1e9, "smoke"), (2e4, 5e10, "smoke"), (5e5, 1e11, "default"), (1e4, 4e12, "default")]
    pts = [point(sr, fl, a + b * (fl + k * sr), scale=sc) for sr, fl, sc in shapes]
    fa, fb, fk, fitted, model = cost.fit_time(pts, kappa=k)
    assert (fk, fitted) == (k, False) and model.startswith("least squares")
    assert fa == pytest.approx(a, rel=1e-6) and fb == pytest.approx(b, rel=1e-6)


def test_fit_recovers_kappa_from_jobs_of_different_shape():
    a, b, k = 0.5, 1e-9, 1e4  # kappa on the grid (10^4)
    shapes = [(1e3, 1e6), (1e5, 1e8), (1e6, 1e9), (1e4, 1e11), (3e5, 2e10), (2e6, 3e12)]
    pts = [point(sr, fl, a + b * (fl + k * sr), scale=str(i % 2)) for i, (sr, fl) in enumerate(shapes)]
    fa, fb, fk, fitted, _ = cost.fit_time(pts)
    assert fitted and fk == pytest.approx(k)
    assert fa == pytest.approx(a, rel=1e-4) and fb == pytest.approx(b, rel=1e-4)
    # and the fit predicts a job ten times the largest one
    f = cost.fit_rule("r", pts)
    w = cost.Work(2e7, 3e13, 1.0)
    assert f.seconds(w) == pytest.approx(a + b * (w.flops + k * w.serial), rel=1e-4)
    assert f.max_rel_error < 1e-6


def test_fit_with_wrong_model_is_not_exact():
    """A rule whose time does not follow a + b x work: the fit reports its error instead of hiding it."""
    pts = [point(1e3, fl, s, scale=str(fl)) for fl, s in [(1e9, 1.0), (2e9, 10.0), (3e9, 1.5), (4e9, 20.0)]]
    f = cost.fit_rule("r", pts, kappa=0.0)
    assert f.max_rel_error > 0.5


def test_one_work_value_gives_a_zero_and_b_from_it():
    """Repeats of one job: a = 0, b through the origin (relative residuals: b = sum(x/y) / sum((x/y)^2))."""
    pts = [point(10.0, 1e9, 4.0, scale="a"), point(10.0, 1e9, 6.0, scale="b")]
    a, b, k, fitted, model = cost.fit_time(pts)
    x = 1e9 + cost.KAPPA_DEFAULT * 10.0
    u = [x / 4.0, x / 6.0]
    assert a == 0.0 and not fitted and k == cost.KAPPA_DEFAULT
    assert b == pytest.approx(sum(u) / sum(v * v for v in u))
    assert model.startswith("one work value")


def test_one_scale_gives_a_zero_even_with_many_jobs():
    """Jobs of one scale with an offset (s = 5 + 1e-9 work): no intercept is fitted within one scale, b goes
    through the origin -- the fit is then inexact, and says so; with a second scale a and b are recovered."""
    works = [1e9, 2e9, 4e9, 8e9]
    one = [point(0.0, w, 5.0 + 1e-9 * w) for w in works]
    a, b, _, _, model = cost.fit_time(one, kappa=0.0)
    assert a == 0.0 and model.startswith("one scale") and b > 1e-9
    assert cost.fit_rule("r", one, kappa=0.0).max_rel_error > 0.1
    two = one + [point(0.0, 10 * w, 5.0 + 1e-8 * w, scale="paper") for w in works]
    a, b, _, _, model = cost.fit_time(two, kappa=0.0)
    assert a == pytest.approx(5.0) and b == pytest.approx(1e-9) and "2 scales" in model


def test_single_job_b_is_its_seconds_per_work():
    a, b, k, _, _ = cost.fit_time([point(10.0, 1e9, 4.0)])
    assert a == 0.0 and b == pytest.approx(4.0 / (1e9 + k * 10.0))


def test_no_points_is_an_error():
    with pytest.raises(ValueError, match="no benchmark points"):
        cost.fit_time([])


def test_memory_linear_or_max_observed():
    pts = [point(1, 1, 1.0, mem=m, rss=300.0 + 2e-6 * m) for m in (1e6, 5e6, 2e7)]
    a, c, model = cost.fit_memory(pts)
    assert a == pytest.approx(300.0, rel=1e-6) and c == pytest.approx(2e-6, rel=1e-6) and model.startswith("a + c")
    flat = [point(1, 1, 1.0, mem=m, rss=r) for m, r in ((1e6, 410.0), (5e6, 400.0), (2e7, 390.0))]  # no slope
    assert cost.fit_memory(flat) == (410.0, cost.MB_PER_FLOAT, "max observed + float32 x mem")
    one = [point(1, 1, 1.0, mem=1e6, rss=350.0)]
    assert cost.fit_memory(one) == (350.0, cost.MB_PER_FLOAT, "max observed + float32 x mem")


def test_read_benchmark(tmp_path):
    b = cost.read_benchmark(bench_file(tmp_path / "b.tsv", 12.5, rss=612.0, cpu=11.0))
    assert (b.s, b.max_rss, b.cpu_time) == (12.5, 612.0, 11.0)
    (tmp_path / "bad.tsv").write_text("x\ty\n1\t2\n")
    with pytest.raises(ValueError, match="no column 's'"):
        cost.read_benchmark(tmp_path / "bad.tsv")


def test_resnet_work_known_answer():
    # 2 epochs full batch, depth 3, width 4, 1 in, 1 out, 5 replicas, 10 samples, nonpar
    w = cost.resnet_fit(1, 1, 4, 3, R=5, n=10, epochs=2, pspec={"kind": "nonpar"})
    assert w.serial == 2 * (3 + 2)
    assert w.flops == 2 * 5 * 10 * (1 * 4 + 3 * 16 + 4 * 1)
    # replicas are batched: more replicas add flops, not serial ops
    w2 = cost.resnet_fit(1, 1, 4, 3, R=50, n=10, epochs=2, pspec={"kind": "nonpar"})
    assert w2.serial == w.serial and w2.flops == 10 * w.flops
    # minibatches: steps per epoch
    assert cost.resnet_fit(1, 1, 4, 3, R=5, n=10, epochs=2, batch_size=4).serial == 2 * 3 * 5


def test_every_benchmarked_rule_has_a_work_function(repo):
    import re

    rules = set()
    for p in (repo / "workflow" / "rules").glob("*.smk"):
        text = p.read_text()
        for m in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", text, re.M):
            if "    benchmark:" in m.group(2):
                rules.add(m.group(1))
    assert rules and rules <= set(cost.WORK), sorted(rules - set(cost.WORK))


DRY = """Building DAG of jobs...
Job stats:
job               count
[Mon Dec  7 17:54:29 2026] Group job wp_gap_train (jobs in lexicogr. order):

    [Mon Dec  7 17:54:29 2026]
    rule wp_gap_train:
        input: results/data/elm/ptrain.csv
        output: results/wp_gap/cells/elm/nonpar/runs.csv
        log: results/wp_gap/logs/train_elm_nonpar.log
        jobid: 7
        benchmark: results/wp_gap/benchmarks/train_elm_nonpar.tsv
        reason: Forced execution
        wildcards: dataset=elm, param=nonpar
        resources: tmpdir=/tmp, runtime=30
Shell command: $NNRDS_PYTHON -m nnrds wp-gap-train --config-json '{"cell":{"dataset":"elm","param":"nonpar"},"seed":0}' \
--in-dir results/data/elm --out-dir results/wp_gap/cells/elm/nonpar > results/wp_gap/logs/train_elm_nonpar.log 2>&1

rule wp_gap_summarize:
    output: results/wp_gap/runs.csv
    jobid: 8
Shell command: $NNRDS_PYTHON -m nnrds wp-gap-summarize --config-json '{"scale":"smoke"}' --in-dir a --out-dir b > c 2>&1
"""


def test_parse_dry_run_known_answer():
    jobs = est.parse_dry_run(DRY.replace("\\\n", ""))
    assert len(jobs) == 1  # the summary has no benchmark
    j = jobs[0]
    assert j.rule == "wp_gap_train" and j.benchmark == "results/wp_gap/benchmarks/train_elm_nonpar.tsv"
    assert j.wildcards == {"dataset": "elm", "param": "nonpar"} and j.config["cell"]["param"] == "nonpar"
    assert j.key == "wp_gap_train:dataset=elm,param=nonpar"


def test_missing_benchmark_folder_and_config_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        est.benchmark_sources([str(tmp_path / "nope")])
    with pytest.raises(FileNotFoundError, match="has no config.yaml"):
        est.benchmark_sources([str(tmp_path)])


def test_missing_benchmark_files_are_listed_not_fitted(tmp_path):
    job = est.parse_dry_run(DRY.replace("\\\n", ""))[0]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scale: smoke\n")
    points, missing = est.collect_points([(cfg, tmp_path)], {str(cfg): [job]})
    assert points == {} and missing == [str(tmp_path / job.benchmark)]


@pytest.fixture(scope="module")
def smoke_plan():
    from pathlib import Path

    return est.plan(Path(__file__).resolve().parents[2] / "config" / "smoke.yaml")


def test_estimate_smoke_end_to_end(tmp_path, repo, smoke_plan, monkeypatch):
    """`nnrds estimate` at smoke scale on synthetic benchmark files s = 1 + 1e-9 x (flops + 1000 x serial) (kappa
    fixed at 1000), from files of one scale and the same plan as a second "scale" (another config path): predicting
    the config returns the files' seconds through a + b x work (a = 1, b = 1e-9); a rule without files is reported
    and not predicted; the JSON names every predicted job."""
    from nnrds import cli

    assert {j.rule for j in smoke_plan} >= {"wp_gap_train", "pinn_failure_train", "stiffness_train"}
    bdir = tmp_path / "bench"
    truth = {}
    for j in smoke_plan:
        if j.rule == "stable_arch_bases":  # left out: reported as not predicted
            continue
        truth[j.key] = 1.0 + 1e-9 * cost.WORK[j.rule](j.config).total(1000.0)
        bench_file(bdir / j.benchmark, truth[j.key], rss=400.0)
    monkeypatch.setattr(cost, "KAPPA_GRID", (1000.0,))
    monkeypatch.setattr(cost, "KAPPA_DEFAULT", 1000.0)
    monkeypatch.setattr(est, "plan", lambda c, s=None: smoke_plan)  # one dry run for the module
    out, csv, js = tmp_path / "e.md", tmp_path / "e.csv", tmp_path / "e.json"
    argv = ["estimate", "--configfile", str(repo / "config/smoke.yaml"), "--benchmarks"]
    (tmp_path / "copy.yaml").write_text((repo / "config/smoke.yaml").read_text())
    argv += [f"{repo / 'config/smoke.yaml'}={bdir}", f"{tmp_path / 'copy.yaml'}={bdir}"]
    argv += ["--out", str(out), "--csv", str(csv), "--json", str(js)]
    assert cli.main(argv) == 0
    import pandas as pd

    df = pd.read_csv(csv)
    got = df.dropna(subset=["predicted_s"]).set_index("job")["predicted_s"]
    assert set(got.index) == set(truth)
    for key, s in got.items():
        assert s == pytest.approx(truth[key], rel=1e-6), key
    # equal peaks: the peak + the float32 size of the job's arrays
    mb = df.dropna(subset=["predicted_s"])
    assert list(mb.predicted_mb) == pytest.approx(list(400.0 + cost.MB_PER_FLOAT * mb.mem_floats))
    assert df.loc[df.rule == "stable_arch_bases", "predicted_s"].isna().all()
    text = out.read_text()
    assert "## Per study" in text and "No benchmark for rule(s) stable_arch_bases" in text
    jobs = json.loads(js.read_text())["jobs"]
    assert set(jobs) == set(got.index) and all(math.isfinite(v["seconds"]) for v in jobs.values())


def test_estimate_without_any_benchmark_file_says_so(tmp_path, repo, smoke_plan, monkeypatch):
    from nnrds import cli

    monkeypatch.setattr(est, "plan", lambda c, s=None: smoke_plan)
    (tmp_path / "config.yaml").write_text((repo / "config/smoke.yaml").read_text())
    rc = cli.main(["estimate", "--configfile", str(repo / "config/smoke.yaml"), "--benchmarks", str(tmp_path)])
    assert rc == 2  # ValueError: one message naming the folder and an expected file
