# Continuous-in-depth study (src/nnrds/studies/continuous_depth.py, commands/continuous_depth.py).
# Oscillators: one training job per scheme (every system x dt x seed one replica batch; then the convergence
# sweep of the frozen G). WP-ResNets: one job per parameterization on the land-model surrogate, evaluated at
# other depths. Then one summary job (claims.csv with verdicts) and the figures notebook.

CDS = config["continuous_depth"]
CDS_DIR = "results/continuous_depth"
CDS_FIGS = ["error_vs_h", "order_test", "wp_depth_convergence"]
CDS_CAPTION = f"../../{CDS_DIR}/caption.rst"
CDS_CATEGORY = "Continuous depth"
if CDS["enabled"]:
    for _p in CDS["wp"]["parameterizations"]:
        if _p not in config["parameterizations"]:
            raise SystemExit(
                f"\nnnrds: `continuous_depth.wp.parameterizations` names {_p!r}, which is not defined "
                f"under `parameterizations`\n"
            )
    if CDS["wp"]["dataset"] not in config["data"]["sets"]:
        raise SystemExit(
            f"\nnnrds: `continuous_depth.wp.dataset` names {CDS['wp']['dataset']!r}, which is not "
            "defined under `data.sets`\n"
        )


rule continuous_depth_oscillator:
    output:
        **table_outputs(f"{CDS_DIR}/cells/oscillator/{{scheme}}", ["runs", "convergence", "reference", "timings"]),
    log:
        f"{CDS_DIR}/logs/oscillator_{{scheme}}.log",
    benchmark:
        f"{CDS_DIR}/benchmarks/oscillator_{{scheme}}.tsv"
    group:
        "continuous_depth_train"
    threads: config["torch_threads"]
    resources:
        **train_resources(1000, rule_name="continuous_depth_oscillator"),
    params:
        cfg=lambda wc: cfg_arg({**job_env(), "study": job_study(CDS), "cell": {"scheme": wc.scheme}}),
        in_dirs="",
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("continuous-depth-oscillator")


rule continuous_depth_wp:
    input:
        data=lambda wc: dataset_inputs(CDS["wp"]["dataset"]),
    output:
        **table_outputs(f"{CDS_DIR}/cells/wp/{{param}}", ["wp_runs", "timings"]),
    log:
        f"{CDS_DIR}/logs/wp_{{param}}.log",
    benchmark:
        f"{CDS_DIR}/benchmarks/wp_{{param}}.tsv"
    group:
        "continuous_depth_train"
    threads: config["torch_threads"]
    resources:
        **train_resources(1000, rule_name="continuous_depth_wp"),
    params:
        cfg=lambda wc: cfg_arg(
            {
                **job_env(),
                "study": job_study(CDS),
                "dataset": dataset_spec(CDS["wp"]["dataset"]),
                "parameterization": config["parameterizations"][wc.param],
                "cell": {"param": wc.param},
            }
        ),
        in_dirs=in_dirs_of("data"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("continuous-depth-wp")


rule continuous_depth_summarize:
    input:
        cells=[
            f"{CDS_DIR}/cells/oscillator/{s}/{t}"
            for s in CDS["oscillator"]["schemes"]
            for t in ("runs.csv", "convergence.csv", "reference.csv", "timings.csv", "provenance.json")
        ]
        + [
            f"{CDS_DIR}/cells/wp/{p}/{t}"
            for p in CDS["wp"]["parameterizations"]
            for t in ("wp_runs.csv", "timings.csv", "provenance.json")
        ],
    output:
        **table_outputs(CDS_DIR, ["runs", "convergence", "reference", "wp_runs", "timings", "models"]),
        **report_tables(CDS_DIR, ["claims", "slopes", "orders", "sanity", "wp_summary"], CDS_CATEGORY, CDS_CAPTION),
        caption=f"{CDS_DIR}/caption.rst",
    log:
        f"{CDS_DIR}/logs/summarize.log",
    resources:
        **cluster_resources(),
    params:
        cfg=lambda wc: cfg_arg({"scale": SCALE, "study": CDS, "dataset": dataset_spec(CDS["wp"]["dataset"])}),
        in_dirs=in_dirs_of("cells"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("continuous-depth-summarize")


use rule study_figures as continuous_depth_figures with:
    input:
        notebook="workflow/notebooks/continuous_depth.ipynb",
        tables=[
            f"{CDS_DIR}/{t}.csv"
            for t in ("convergence", "reference", "models", "slopes", "orders", "wp_runs", "wp_summary", "claims")
        ],
    output:
        **figure_outputs("continuous_depth", CDS_FIGS, CDS_CATEGORY, CDS_CAPTION),
    log:
        f"{CDS_DIR}/logs/figures.log",


if CDS["enabled"]:
    ALL_TARGETS += [f"figures/continuous_depth/{f}.png" for f in CDS_FIGS] + [f"{CDS_DIR}/provenance.json"]
    declare_claims(CDS_DIR, CDS_CATEGORY)
