# The figures rule of every study is this template (included right after common.smk):
# `use rule study_figures as <key>_figures with:` giving input: notebook + the tables it plots, all in one results
# folder; output: figure_outputs(...); log:. A notebook takes exactly three parameters: results_dir (the folder of
# its tables, fixed names), fig_dir, scale.
rule study_figures:
    input:
        notebook="workflow/notebooks/{key}.ipynb",
        tables=[],
    output:
        notebook="results/notebooks/{key}.template.ipynb",
        png=[],
    log:
        "results/logs/{key}.template.log",
    resources:
        **cluster_resources(),
    params:
        results_dir=lambda wildcards, input: os.path.dirname(input.tables[0]),
        fig_dir=fig_dir,
        scale=SCALE,
    shell:
        "$NNRDS_PYTHON -m papermill {input.notebook} {output.notebook} --kernel python3 --no-progress-bar "
        "-p results_dir {params.results_dir} -p fig_dir {params.fig_dir} -p scale {params.scale} > {log} 2>&1"
