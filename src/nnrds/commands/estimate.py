"""``nnrds estimate``: predict every training / fit job's runtime and peak memory at a config from the snakemake
``benchmark:`` files of runs at other (smaller) configs (cost model: :mod:`nnrds.cost`).

The jobs of a config -- rule, wildcards, benchmark file and the config slice the rule passes -- come from a dry run
of the workflow (``snakemake -n -F -p --configfile CONFIG``), so the estimate sees exactly the jobs and slices a run
would. A benchmark folder holds the ``config.yaml`` of its run and the run's benchmark files at their rule paths
(``results/<study>/benchmarks/<job>.tsv``); ``CONFIG=DIR`` names the config instead. Every job of the benchmark
configs whose file is present is one point of its rule's fit.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import config as cfgmod
from .. import cost


@dataclass(frozen=True)
class Job:
    """A job of the workflow with a benchmark file: its rule, wildcards, benchmark path and config slice."""

    rule: str
    wildcards: dict
    benchmark: str
    config: dict

    @property
    def key(self) -> str:
        return job_key(self.rule, self.wildcards)


def job_key(rule: str, wildcards: dict) -> str:
    """``rule:name=value,...`` (wildcards sorted): how the estimate file names a job (common.smk reads it)."""
    return rule + ":" + ",".join(f"{k}={wildcards[k]}" for k in sorted(wildcards))


def parse_dry_run(text: str) -> list[Job]:
    """The jobs with a ``benchmark:`` line and an ``nnrds ... --config-json`` shell command in the output of
    ``snakemake -n -p`` (one block per job: ``rule NAME:`` -- indented inside a group job --, indented ``key: value``
    lines, then ``Shell command: ...``)."""
    jobs, cur = [], None

    def close():
        if cur and cur.get("benchmark") and cur.get("config") is not None:
            jobs.append(Job(cur["rule"], cur.get("wildcards", {}), cur["benchmark"], cur["config"]))

    for line in text.splitlines():
        s = line.strip()
        head = s.split(" ", 1)
        if len(head) == 2 and head[0] in ("rule", "localrule") and s.endswith(":") and " " not in head[1]:
            close()
            cur = {"rule": head[1][:-1]}
            continue
        if cur is None:
            continue
        if s.startswith("benchmark: "):
            cur["benchmark"] = s.split(": ", 1)[1].strip()
        elif s.startswith("wildcards: "):
            pairs = [p.split("=", 1) for p in s.split(": ", 1)[1].split(", ") if "=" in p]
            cur["wildcards"] = {k: v for k, v in pairs}
        elif "-m nnrds " in s and "--config-json" in s:
            argv = shlex.split(s.split(">", 1)[0] if " > " in s else s)
            cur["config"] = json.loads(argv[argv.index("--config-json") + 1])
    close()
    return jobs


def snakefile_default() -> Path:
    return cfgmod.REPO_ROOT / "Snakefile"


def plan(configfile: str | Path, snakefile: str | Path | None = None) -> list[Job]:
    """The benchmarked jobs of ``configfile``: a dry run of the whole workflow (``-F``: every job, done or not) in
    the Snakefile's folder."""
    snakefile = Path(snakefile or snakefile_default()).resolve()
    if not snakefile.is_file():
        raise FileNotFoundError(
            f"no Snakefile at {snakefile} (nnrds estimate plans jobs with the workflow: --snakefile)"
        )
    cmd = [sys.executable, "-m", "snakemake", "-n", "-F", "-p", "--nolock", "--snakefile", str(snakefile)]
    cmd += ["--configfile", str(Path(configfile).resolve())]
    r = subprocess.run(cmd, cwd=snakefile.parent, capture_output=True, text=True)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise ValueError(f"dry run of {configfile} failed ({' '.join(cmd[2:6])} ...):\n{tail}")
    return parse_dry_run(r.stdout + "\n" + r.stderr)


def benchmark_sources(items: list[str]) -> list[tuple[Path, Path]]:
    """(config, folder) of every ``--benchmarks`` item: ``DIR`` (its ``config.yaml``) or ``CONFIG=DIR``."""
    out = []
    for it in items:
        conf, _, d = it.rpartition("=") if "=" in it else ("", "", it)
        folder = Path(d)
        cpath = Path(conf) if conf else folder / "config.yaml"
        if not folder.is_dir():
            raise FileNotFoundError(f"benchmark folder {folder} does not exist")
        if not cpath.is_file():
            raise FileNotFoundError(
                f"benchmark folder {folder} has no config.yaml: copy the run's config there or pass CONFIG={folder}"
            )
        out.append((cpath, folder))
    return out


def collect_points(sources, plans=None, measure: str = "cpu_time") -> tuple[dict[str, list[cost.Point]], list[str]]:
    """Points per rule from every (config, folder); and the benchmark files the configs' jobs name but the folders
    lack (reported, not fatal: a partial run still fits the rules it has)."""
    points: dict[str, list[cost.Point]] = defaultdict(list)
    missing = []
    for cpath, folder in sources:
        jobs = plans[str(cpath)] if plans is not None else plan(cpath)
        for j in jobs:
            if j.rule not in cost.WORK:
                continue
            f = folder / j.benchmark
            if not f.is_file():
                missing.append(str(f))
                continue
            w, b = cost.WORK[j.rule](j.config), cost.read_benchmark(f)
            points[j.rule].append(cost.Point(w, b, f"{cpath}:{j.key}", measure, str(cpath)))
    return dict(points), missing


def estimate(target_jobs: list[Job], fits: dict[str, cost.Fit]) -> pd.DataFrame:
    """One row per job of the target config: predicted seconds and MB (NaN where its rule has no fit)."""
    rows = []
    for j in target_jobs:
        if j.rule not in cost.WORK:
            continue
        w = cost.WORK[j.rule](j.config)
        f = fits.get(j.rule)
        rows.append(
            {
                "study": cost.study_of(j.rule),
                "rule": j.rule,
                "job": j.key,
                "benchmark": j.benchmark,
                "serial": w.serial,
                "flops": w.flops,
                "mem_floats": w.mem,
                "work": w.total(f.kappa) if f else float("nan"),
                "predicted_s": f.seconds(w) if f else float("nan"),
                "predicted_mb": f.memory_mb(w) if f else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def fit_table(fits: dict[str, cost.Fit]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "rule": f.rule,
                "points": f.n_points,
                "a_s": f.a,
                "b_s_per_work": f.b,
                "kappa": f.kappa,
                "kappa_fitted": f.kappa_fitted,
                "time_model": f.time_model,
                "max_rel_error_on_points": f.max_rel_error,
                "mem_a_mb": f.mem_a,
                "mem_c_mb_per_float": f.mem_c,
                "mem_model": f.mem_model,
            }
            for f in fits.values()
        ]
    )


def _md(df: pd.DataFrame, floatfmt: str = ".3g") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in r.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_rule(jobs: pd.DataFrame) -> pd.DataFrame:
    g = jobs.groupby(["study", "rule"], sort=True)
    return g.agg(jobs=("job", "size"), total_s=("predicted_s", "sum"), max_job_s=("predicted_s", "max"),
                 max_mb=("predicted_mb", "max")).reset_index()  # fmt: skip


def per_study(jobs: pd.DataFrame) -> pd.DataFrame:
    g = jobs.groupby("study", sort=True)
    out = g.agg(jobs=("job", "size"), total_s=("predicted_s", "sum"), max_job_s=("predicted_s", "max"),
                max_mb=("predicted_mb", "max")).reset_index()  # fmt: skip
    out["total_h"] = out["total_s"] / 3600
    return out


def report(
    configfile: str, jobs: pd.DataFrame, fits: dict[str, cost.Fit], sources, missing: list[str], measure: str
) -> str:
    src = ", ".join(f"{c} ({d})" for c, d in sources)
    no_fit = sorted(set(jobs.loc[jobs.predicted_s.isna(), "rule"]))
    parts = [
        f"# Predicted cost of {configfile} (benchmark column `{measure}`: "
        + ("CPU seconds, i.e. seconds on one core for one-thread jobs)" if measure == "cpu_time" else "wall seconds)"),
        "",
        f"Benchmarks: {src}. Cost model: nnrds.cost (time = a + b x (flops + kappa x serial); memory = a + c x mem "
        "or the largest observed).",
        "",
        "## Per study",
        "",
        _md(per_study(jobs)),
        "",
        "## Per rule",
        "",
        _md(per_rule(jobs)),
        "",
        "## Fits",
        "",
        _md(fit_table(fits)),
    ]
    if no_fit:
        parts += ["", f"No benchmark for rule(s) {', '.join(no_fit)}: not predicted (NaN)."]
    if missing:
        parts += ["", f"{len(missing)} benchmark file(s) named by the benchmark configs are missing, e.g. {missing[0]}"]
    return "\n".join(parts) + "\n"


def resources_json(jobs: pd.DataFrame) -> dict:
    """What common.smk's ``train_resources`` reads: predicted seconds and MB per job key."""
    out = {}
    for _, r in jobs.iterrows():
        if math.isfinite(r.predicted_s):
            out[r.job] = {"seconds": float(r.predicted_s), "mem_mb": float(r.predicted_mb)}
    return {"jobs": out}


def run(args) -> int:
    """predict every training / fit job's runtime and peak memory at a config from benchmark files of other
    scales (tables per job, rule and study; optional JSON for the rules' runtime / mem_mb resources)"""
    sources = benchmark_sources(args.benchmarks)
    plans = {str(c): plan(c, args.snakefile) for c, _ in sources}
    points, missing = collect_points(sources, plans, args.measure)
    if not points:
        raise ValueError(
            "no benchmark file of any training / fit job was found in "
            + ", ".join(str(d) for _, d in sources)
            + f" (expected e.g. {missing[0] if missing else '<dir>/results/<study>/benchmarks/<job>.tsv'})"
        )
    fits = {r: cost.fit_rule(r, p) for r, p in sorted(points.items())}
    target = plan(args.configfile, args.snakefile)
    jobs = estimate(target, fits)
    text = report(args.configfile, jobs, fits, sources, missing, args.measure)
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    if args.csv:
        jobs.to_csv(args.csv, index=False)
    if args.json:
        Path(args.json).write_text(json.dumps(resources_json(jobs), indent=1, sort_keys=True) + "\n")
    return 0


def register(sub) -> None:
    p = sub.add_parser("estimate", help=run.__doc__.split("\n\n")[0].replace("\n    ", " "))
    p.add_argument("--configfile", required=True, help="the config to predict (e.g. config/paper.yaml)")
    p.add_argument(
        "--benchmarks",
        nargs="+",
        required=True,
        metavar="DIR|CONFIG=DIR",
        help="folders of benchmark files at their rule paths (results/<study>/benchmarks/*.tsv) with the run's "
        "config.yaml, or CONFIG=DIR",
    )
    p.add_argument("--out", help="markdown report (default: stdout)")
    p.add_argument("--csv", help="per-job table (CSV)")
    p.add_argument("--json", help="per-job seconds and MB for the rules' resources (config resources.estimate)")
    p.add_argument(
        "--measure",
        choices=cost.MEASURES,
        default="cpu_time",
        help="what is predicted: CPU seconds (default; one-thread jobs: seconds on one core) or wall seconds (s)",
    )
    p.add_argument("--snakefile", help="the workflow (default: the checkout's Snakefile)")
    p.set_defaults(func=run)
