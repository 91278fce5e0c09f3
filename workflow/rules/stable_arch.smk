# Stable architectures, reversibility and multilevel training (src/nnrds/studies/stable_arch.py,
# commands/stable_arch.py). One training job per architecture (every 2-D problem x step x depth, seeds one replica
# batch), one reversibility job, one multilevel job per parameterization, then one summary job (claims.csv with
# verdicts) and the figures notebook. A further part of the study adds its folder to STA_PART_DIRS (the summary
# reads every table from every folder that holds it) and its figures to STA_FIGS.

STA = config["stable_arch"]
STA_DIR = "results/stable_arch"
STA_FIGS = [
    "accuracy_vs_depth",
    "perturbation_growth",
    "growth_factors",
    "eigenvalues_stability",
    "reversibility",
    "multilevel",
]
STA_CAPTION = f"../../{STA_DIR}/caption.rst"
STA_CATEGORY = "Stable architectures"
STA_ML = STA["multilevel"]
if STA["enabled"]:
    for _p in STA_ML["parameterizations"]:
        if _p not in config["parameterizations"] or config["parameterizations"][_p]["kind"] == "mlp":
            raise SystemExit(
                f"\nnnrds: `stable_arch.multilevel.parameterizations` names {_p!r}, which is not a ResNet "
                f"parameterization under `parameterizations`\n"
            )
    if STA_ML["dataset"] not in config["data"]["sets"]:
        raise SystemExit(
            f"\nnnrds: `stable_arch.multilevel.dataset` names {STA_ML['dataset']!r}, which is not defined "
            "under `data.sets`\n"
        )
# the folders the summary reads (each holds fixed-name tables, timings.csv and provenance.json)
STA_PART_DIRS = (
    [f"{STA_DIR}/cells/stability/{a}" for a in STA["stability"]["archs"]]
    + [f"{STA_DIR}/cells/reversibility"]
    + [f"{STA_DIR}/cells/multilevel/{p}" for p in STA_ML["parameterizations"]]
)
# weight bases step: one job per problem (the regression dataset and the 2-D problems), its figures
STA_BASES = STA["bases"]
STA_BASES_ON = STA["enabled"] and STA_BASES["enabled"]
STA_BASES_PROBLEMS = [STA_BASES["dataset"], *STA_BASES["problems"]] if STA_BASES_ON else []
STA_BASES_TABLES = (
    ["bases_runs", "bases_curves", "bases_summary", "bases_effects", "bases_gram"] if STA_BASES_ON else []
)
if STA_BASES_ON:
    if STA_BASES["dataset"] not in config["data"]["sets"]:
        raise SystemExit(
            f"\nnnrds: `stable_arch.bases.dataset` names {STA_BASES['dataset']!r}, which is not defined under "
            "`data.sets`\n"
        )
    if "monomial" not in STA_BASES["bases"] or max(STA_BASES["degrees"]) >= STA_BASES["depth"] - 1:
        raise SystemExit(
            "\nnnrds: `stable_arch.bases.bases` must list monomial (the claims compare with it) and every "
            "`stable_arch.bases.degrees` must be below `stable_arch.bases.depth` - 1\n"
        )
    STA_PART_DIRS += [f"{STA_DIR}/cells/bases/{p}" for p in STA_BASES_PROBLEMS]
    STA_FIGS += ["bases_loss_curves", "bases_final_error", "bases_gram_condition"]


rule stable_arch_bases:
    input:
        data=lambda wc: dataset_inputs(wc.problem) if wc.problem == STA_BASES["dataset"] else [],
    output:
        **table_outputs(f"{STA_DIR}/cells/bases/{{problem}}", ["bases_runs", "bases_curves", "timings"]),
    log:
        f"{STA_DIR}/logs/bases_{{problem}}.log",
    benchmark:
        f"{STA_DIR}/benchmarks/bases_{{problem}}.tsv"
    group:
        "stable_arch_train"
    threads: config["torch_threads"]
    resources:
        **train_resources(1000, rule_name="stable_arch_bases"),
    params:
        # the regression dataset's spec for its job; a 2-D problem (nnrds.data.toy2d) needs none
        cfg=lambda wc: cfg_arg(
            {
                **job_env(),
                "study": job_study(STA),
                **({"dataset": dataset_spec(wc.problem)} if wc.problem == STA_BASES["dataset"] else {}),
                "cell": {"problem": wc.problem},
            }
        ),
        in_dirs=in_dirs_of("data"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("stable-arch-bases")


rule stable_arch_stability:
    output:
        **table_outputs(
            f"{STA_DIR}/cells/stability/{{arch}}", ["runs", "growth", "spectra", "reversibility", "timings"]
        ),
    log:
        f"{STA_DIR}/logs/stability_{{arch}}.log",
    benchmark:
        f"{STA_DIR}/benchmarks/stability_{{arch}}.tsv"
    group:
        "stable_arch_train"
    threads: config["torch_threads"]
    resources:
        **train_resources(1000, rule_name="stable_arch_stability"),
    params:
        cfg=lambda wc: cfg_arg({**job_env(), "study": job_study(STA), "cell": {"arch": wc.arch}}),
        in_dirs="",
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("stable-arch-stability")


rule stable_arch_reversibility:
    output:
        **table_outputs(f"{STA_DIR}/cells/reversibility", ["reversibility", "timings"]),
    log:
        f"{STA_DIR}/logs/reversibility.log",
    benchmark:
        f"{STA_DIR}/benchmarks/reversibility.tsv"
    group:
        "stable_arch_train"
    threads: config["torch_threads"]
    resources:
        **train_resources(1000, rule_name="stable_arch_reversibility"),
    params:
        cfg=lambda wc: cfg_arg({**job_env(), "study": job_study(STA)}),
        in_dirs="",
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("stable-arch-reversibility")


rule stable_arch_multilevel:
    input:
        data=lambda wc: dataset_inputs(STA_ML["dataset"]),
    output:
        **table_outputs(f"{STA_DIR}/cells/multilevel/{{param}}", ["multilevel", "timings"]),
    log:
        f"{STA_DIR}/logs/multilevel_{{param}}.log",
    benchmark:
        f"{STA_DIR}/benchmarks/multilevel_{{param}}.tsv"
    group:
        "stable_arch_train"
    threads: config["torch_threads"]
    resources:
        **train_resources(1000, rule_name="stable_arch_multilevel"),
    params:
        cfg=lambda wc: cfg_arg(
            {
                **job_env(),
                "study": job_study(STA),
                "dataset": dataset_spec(STA_ML["dataset"]),
                "parameterization": config["parameterizations"][wc.param],
                "cell": {"param": wc.param},
            }
        ),
        in_dirs=in_dirs_of("data"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("stable-arch-multilevel")


rule stable_arch_summarize:
    input:
        cells=lambda wc: [f"{d}/provenance.json" for d in STA_PART_DIRS],
    output:
        **table_outputs(
            STA_DIR,
            ["runs", "growth", "spectra", "reversibility", "multilevel", "timings", "summary", "multilevel_summary"]
            + STA_BASES_TABLES,
        ),
        claims=report(f"{STA_DIR}/claims.csv", category=STA_CATEGORY, subcategory="tables", caption=STA_CAPTION),
        caption=f"{STA_DIR}/caption.rst",
    log:
        f"{STA_DIR}/logs/summarize.log",
    resources:
        **cluster_resources(),
    params:
        cfg=lambda wc: cfg_arg({"scale": SCALE, "study": STA}),
        in_dirs=in_dirs_of("cells"),
        out_dir=out_dir_of("provenance"),
    shell:
        nnrds_shell("stable-arch-summarize")


use rule study_figures as stable_arch_figures with:
    input:
        notebook="workflow/notebooks/stable_arch.ipynb",
        tables=[
            f"{STA_DIR}/{t}.csv"
            for t in [
                "runs",
                "growth",
                "spectra",
                "reversibility",
                "multilevel",
                "summary",
                "multilevel_summary",
                "claims",
            ]
            + STA_BASES_TABLES
        ],
    output:
        **figure_outputs("stable_arch", STA_FIGS, STA_CATEGORY, STA_CAPTION),
    log:
        f"{STA_DIR}/logs/figures.log",


if STA["enabled"]:
    ALL_TARGETS += [f"figures/stable_arch/{f}.png" for f in STA_FIGS] + [f"{STA_DIR}/provenance.json"]
    declare_claims(STA_DIR, STA_CATEGORY)
