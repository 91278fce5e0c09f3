# ELM surrogate UQ study (src/nnrds/studies/uq_elm.py; UQ core src/nnrds/uq/). One fit job per architecture
# (every method: NUTS, VI, deep ensemble, MAP) plus one extrapolation job; the simulator along the 1-D
# slices; a summary job; a papermill notebook for the figures.

UQ = config["uq_elm"]
UQ_DIR = "results/uq_elm"
UQ_ENS = "results/data/elm"
UQ_JOBS = list(UQ["architectures"]) + (["extrapolation"] if UQ["extrapolation"]["enabled"] else [])
UQ_TABLES = ["metrics", "calibration", "predictions", "slices", "trace", "timings"]
UQ_FIGS = ["parity", "calibration", "coverage_crps", "slices", "extrapolation", "nuts_trace", "flagged"]


rule uq_elm_fit:
    input:
        [f"{UQ_ENS}/{f}" for f in ("ptrain.csv", "ytrain.csv", "ptest.csv", "ytest.csv", "metadata.json")],
    output:
        [f"{UQ_DIR}/jobs/{{uqjob}}/{t}.csv" for t in UQ_TABLES],
        provenance=f"{UQ_DIR}/jobs/{{uqjob}}/provenance.json",
    wildcard_constraints:
        uqjob="|".join(UQ_JOBS) or "none",
    params:
        cfg=cfg_arg({**job_env(), "study": UQ}),
        out_dir=out_dir_of("provenance"),
        ens_dir=lambda wc, input: os.path.dirname(input[0]),
    log:
        f"{UQ_DIR}/logs/fit_{{uqjob}}.log",
    threads: config["torch_threads"]
    resources:
        **train_resources(2000),
    shell:
        "$NNRDS_PYTHON -m nnrds uq-elm-fit --job {wildcards.uqjob} --ensemble-dir {params.ens_dir} --config-json {params.cfg} "
        "--out-dir {params.out_dir} > {log} 2>&1"


rule uq_elm_truth:
    input:
        f"{UQ_ENS}/metadata.json",
    output:
        f"{UQ_DIR}/slices_truth.csv",
    params:
        cfg=cfg_arg({"elm": config["data"]["elm"], "slices": UQ["slices"]}),
        ens_dir=lambda wc, input: os.path.dirname(input[0]),
    log:
        f"{UQ_DIR}/logs/truth.log",
    resources:
        **cluster_resources(),
    shell:
        "$NNRDS_PYTHON -m nnrds uq-elm-truth --ensemble-dir {params.ens_dir} --config-json {params.cfg} --out {output} > {log} 2>&1"


rule uq_elm_summarize:
    input:
        expand(f"{UQ_DIR}/jobs/{{j}}/{{t}}.csv", j=UQ_JOBS, t=UQ_TABLES),
        provenance=expand(f"{UQ_DIR}/jobs/{{j}}/provenance.json", j=UQ_JOBS),
    output:
        [f"{UQ_DIR}/{t}.csv" for t in UQ_TABLES],
        table=report(f"{UQ_DIR}/coverage_crps.csv", category="ELM surrogate UQ", subcategory="tables",
                     caption=f"../../{UQ_DIR}/caption.rst"),
        caption=f"{UQ_DIR}/caption.rst",
        claims=f"{UQ_DIR}/claims.csv",
        provenance=f"{UQ_DIR}/provenance.json",
    params:
        cfg=cfg_arg({"scale": SCALE, "seed": config["seed"], "study": UQ}),
        dirs=lambda wc, input: [os.path.dirname(p) for p in input.provenance],
        out_dir=out_dir_of("provenance"),
    log:
        f"{UQ_DIR}/logs/summarize.log",
    resources:
        **cluster_resources(),
    shell:
        "$NNRDS_PYTHON -m nnrds uq-elm-summarize --job-dirs {params.dirs} --config-json {params.cfg} "
        "--out-dir {params.out_dir} > {log} 2>&1"


rule uq_elm_figures:
    input:
        notebook="workflow/notebooks/uq_elm.ipynb",
        tables=[f"{UQ_DIR}/{t}.csv" for t in UQ_TABLES] + [f"{UQ_DIR}/coverage_crps.csv"],
        truth=f"{UQ_DIR}/slices_truth.csv",
        caption=f"{UQ_DIR}/caption.rst",
    output:
        notebook="results/notebooks/uq_elm.ipynb",
        png=[report(f"figures/uq_elm/{f}.png", category="ELM surrogate UQ", subcategory="figures",
                    caption=f"../../{UQ_DIR}/caption.rst") for f in UQ_FIGS],
        pdf=[f"figures/uq_elm/{f}.pdf" for f in UQ_FIGS],
    params:
        fig_dir=fig_dir,
        scale=SCALE,
        results_dir=in_dir_of("caption"),
        outputs=",".join(UQ["slices"]["outputs"]),
    log:
        f"{UQ_DIR}/logs/figures.log",
    resources:
        **cluster_resources(),
    shell:
        "$NNRDS_PYTHON -m papermill {input.notebook} {output.notebook} --kernel python3 --no-progress-bar "
        "-p results_dir {params.results_dir} -p fig_dir {params.fig_dir} -p scale {params.scale} "
        "-p slice_outputs {params.outputs} > {log} 2>&1"


if UQ["enabled"]:
    ALL_TARGETS += [f"figures/uq_elm/{f}.png" for f in UQ_FIGS] + [f"{UQ_DIR}/provenance.json"]
    CLAIM_TABLES.append(f"{UQ_DIR}/claims.csv")
