# ELM surrogate UQ study (src/nnrds/studies/uq_elm.py, commands/uq_elm.py; UQ core src/nnrds/uq/). One fit job
# per architecture (every method: NUTS, VI, deep ensemble, MAP) plus one extrapolation job; one NUTS feasibility
# cell per training size of the depth sweep; the simulator along the 1-D slices; a summary job; the figures
# notebook. Rules name folders; the commands write fixed table names.

UQ = config["uq_elm"]
UQ_DIR = "results/uq_elm"
UQ_ENS = "results/data/elm"
UQ_ENS_FILES = [f"{UQ_ENS}/{f}" for f in ("ptrain.csv", "ytrain.csv", "ptest.csv", "ytest.csv", "metadata.json")]
UQ_JOBS = list(UQ["architectures"]) + (["extrapolation"] if UQ["extrapolation"]["enabled"] else [])
UQ_DEPTH = [f"n{n}" for n in UQ["depth_sweep"]["n_train"]] if UQ["depth_sweep"]["enabled"] else []
UQ_TABLES = ["metrics", "calibration", "predictions", "slices", "trace", "timings"]
UQ_FIGS = ["parity", "calibration", "coverage_crps", "slices", "extrapolation", "nuts_trace", "flagged"] + (
    ["depth_feasibility"] if UQ_DEPTH else []
)
UQ_CAPTION = f"../../{UQ_DIR}/caption.rst"


rule uq_elm_fit:
    input:
        data=UQ_ENS_FILES,
    output:
        **table_outputs(f"{UQ_DIR}/jobs/{{uqjob}}", UQ_TABLES),
    log:
        f"{UQ_DIR}/logs/fit_{{uqjob}}.log",
    benchmark:
        f"{UQ_DIR}/benchmarks/fit_{{uqjob}}.tsv"
    wildcard_constraints:
        uqjob="|".join(UQ_JOBS) or "none",
    priority: LONG_JOB_PRIORITY
    threads: config["torch_threads"]
    resources:
        **train_resources(2000, rule_name="uq_elm_fit"),
    params:
        cfg=lambda wc: cfg_arg({**job_env(), "study": job_study(UQ), "job": wc.uqjob}),
        in_dirs=in_dirs_of("data"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("uq-elm-fit")


rule uq_elm_depth:
    input:
        data=UQ_ENS_FILES,
    output:
        **table_outputs(f"{UQ_DIR}/depth/n{{n}}", ["depth_runs", "depth_timings"]),
    log:
        f"{UQ_DIR}/logs/depth_n{{n}}.log",
    benchmark:
        f"{UQ_DIR}/benchmarks/depth_n{{n}}.tsv"
    wildcard_constraints:
        n="[0-9]+",
    priority: LONG_JOB_PRIORITY
    threads: config["torch_threads"]
    resources:
        **train_resources(2000, rule_name="uq_elm_depth"),
    params:
        cfg=lambda wc: cfg_arg({**job_env(), "study": job_study(UQ), "n_train": int(wc.n)}),
        in_dirs=in_dirs_of("data"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("uq-elm-depth")


rule uq_elm_truth:
    input:
        data=f"{UQ_ENS}/metadata.json",
    output:
        truth=f"{UQ_DIR}/slices_truth.csv",
    log:
        f"{UQ_DIR}/logs/truth.log",
    resources:
        **cluster_resources(),
    params:
        cfg=cfg_arg({"elm": config["data"]["elm"], "slices": UQ["slices"]}),
        in_dirs=in_dirs_of("data"),
        out_dir=out_dir_of("truth"),
    shell:
        nnrds_shell("uq-elm-truth")


rule uq_elm_summarize:
    input:
        jobs=expand(f"{UQ_DIR}/jobs/{{j}}/{{t}}", j=UQ_JOBS, t=[f"{t}.csv" for t in UQ_TABLES] + ["provenance.json"]),
        depth=expand(
            f"{UQ_DIR}/depth/{{d}}/{{t}}", d=UQ_DEPTH, t=["depth_runs.csv", "depth_timings.csv", "provenance.json"]
        ),
    output:
        **{t: f"{UQ_DIR}/{t}.csv" for t in UQ_TABLES + ["depth_runs", "depth_timings"]},
        table=report(
            f"{UQ_DIR}/coverage_crps.csv", category="ELM surrogate UQ", subcategory="tables", caption=UQ_CAPTION
        ),
        caption=f"{UQ_DIR}/caption.rst",
        claims=f"{UQ_DIR}/claims.csv",
        diagnostics=report(
            f"{UQ_DIR}/nuts_diagnostics.csv", category="ELM surrogate UQ", subcategory="tables", caption=UQ_CAPTION
        ),
        efficiency=report(
            f"{UQ_DIR}/depth_efficiency.csv", category="ELM surrogate UQ", subcategory="tables", caption=UQ_CAPTION
        ),
        provenance=f"{UQ_DIR}/provenance.json",
    log:
        f"{UQ_DIR}/logs/summarize.log",
    resources:
        **cluster_resources(),
    params:
        cfg=cfg_arg({"scale": SCALE, "seed": config["seed"], "study": UQ}),
        in_dirs=in_dirs_of("jobs", "depth"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("uq-elm-summarize")


use rule study_figures as uq_elm_figures with:
    input:
        notebook="workflow/notebooks/uq_elm.ipynb",
        tables=[
            f"{UQ_DIR}/{t}.csv"
            for t in UQ_TABLES + ["coverage_crps", "slices_truth", "depth_runs", "nuts_diagnostics"]
        ]
        + [f"{UQ_DIR}/caption.rst"],
    output:
        **figure_outputs("uq_elm", UQ_FIGS, "ELM surrogate UQ", UQ_CAPTION),
    log:
        f"{UQ_DIR}/logs/figures.log",


if UQ["enabled"]:
    ALL_TARGETS += [f"figures/uq_elm/{f}.png" for f in UQ_FIGS] + [f"{UQ_DIR}/provenance.json"]
    declare_claims(UQ_DIR, "ELM surrogate UQ")
