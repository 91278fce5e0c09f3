# Noisy-RNN regularization study (src/nnrds/studies/noisy_rnn.py, models in src/nnrds/rnn.py).
# One training job per dataset x model; its seeds (and the noisy RNN's training-noise levels) train as
# replicas of one batched network, then every perturbation is evaluated in the same job. One summary job
# (claims.csv: robustness = accuracy drop from clean at matched clean accuracy, paired over seeds, Holm over the
# comparisons; appended to the claims ledger), one papermill notebook for the figures. ECG5000 comes from the raw-data layer (rule
# data_acquire_ecg5000 in data.smk: verified mirror copy, or a download when data.mirror is null) unless
# `noisy_rnn.ecg_path` names a file.

NRN = config["noisy_rnn"]
NRN_DIR = "results/noisy_rnn"
NRN_CELLS = expand("{dataset}/{model}", dataset=NRN["tasks"], model=NRN["models"])
NRN_FIGS = ["robustness_advantage", "accuracy_vs_strength", "clean_vs_training_noise"]
NRN_ECG = NRN["ecg_path"] or "results/data/ecg5000/train.csv"


rule noisy_rnn_train:
    input:
        lambda wc: [NRN_ECG] if wc.dataset == "ecg5000" else [],
    output:
        runs=f"{NRN_DIR}/cells/{{dataset}}/{{model}}/runs.csv",
        timings=f"{NRN_DIR}/cells/{{dataset}}/{{model}}/timings.csv",
        provenance=f"{NRN_DIR}/cells/{{dataset}}/{{model}}/provenance.json",
    wildcard_constraints:
        dataset="digits|digits_permuted|ecg5000",
        model="lipschitz|noisy|antisymmetric|lstm",
    params:
        cfg=cfg_arg({**job_env(), "study": {**NRN, "ecg_path": NRN_ECG}, "data": {"mirror": mirror_path()}}),
    log:
        f"{NRN_DIR}/logs/train_{{dataset}}_{{model}}.log",
    threads: config["torch_threads"]
    resources:
        **train_resources(1000),
    group:
        "noisy_rnn_train"
    shell:
        "$NNRDS_PYTHON -m nnrds noisy-rnn-train --dataset {wildcards.dataset} --model {wildcards.model} "
        "--config-json {params.cfg} --runs {output.runs} --timings {output.timings} "
        "--provenance {output.provenance} > {log} 2>&1"


rule noisy_rnn_summarize:
    input:
        runs=expand(f"{NRN_DIR}/cells/{{cell}}/runs.csv", cell=NRN_CELLS),
        timings=expand(f"{NRN_DIR}/cells/{{cell}}/timings.csv", cell=NRN_CELLS),
        provenance=expand(f"{NRN_DIR}/cells/{{cell}}/provenance.json", cell=NRN_CELLS),
    output:
        runs=report(f"{NRN_DIR}/runs.csv", category="Noisy RNN", subcategory="tables",
                    caption=f"../../{NRN_DIR}/caption.rst"),
        timings=f"{NRN_DIR}/timings.csv",
        summary=report(f"{NRN_DIR}/summary.csv", category="Noisy RNN", subcategory="tables",
                       caption=f"../../{NRN_DIR}/caption.rst"),
        comparison=report(f"{NRN_DIR}/robustness_comparison.csv", category="Noisy RNN", subcategory="tables",
                          caption=f"../../{NRN_DIR}/caption.rst"),
        claims=report(f"{NRN_DIR}/claims.csv", category="Noisy RNN", subcategory="tables",
                      caption=f"../../{NRN_DIR}/caption.rst"),
        clean_vs_noise=f"{NRN_DIR}/clean_vs_training_noise.csv",
        caption=f"{NRN_DIR}/caption.rst",
        provenance=f"{NRN_DIR}/provenance.json",
    params:
        cfg=cfg_arg({"scale": SCALE, "study": NRN}),
        out_dir=out_dir_of("provenance"),
    log:
        f"{NRN_DIR}/logs/summarize.log",
    resources:
        **cluster_resources(),
    shell:
        "$NNRDS_PYTHON -m nnrds noisy-rnn-summarize --runs {input.runs} --timings {input.timings} "
        "--provenance {input.provenance} --config-json {params.cfg} --out-dir {params.out_dir} > {log} 2>&1"


rule noisy_rnn_figures:
    input:
        notebook="workflow/notebooks/noisy_rnn.ipynb",
        runs=f"{NRN_DIR}/runs.csv",
        summary=f"{NRN_DIR}/summary.csv",
        comparison=f"{NRN_DIR}/robustness_comparison.csv",
    output:
        notebook="results/notebooks/noisy_rnn.ipynb",
        png=[report(f"figures/noisy_rnn/{f}.png", category="Noisy RNN", subcategory="figures",
                    caption=f"../../{NRN_DIR}/caption.rst") for f in NRN_FIGS],
        pdf=[f"figures/noisy_rnn/{f}.pdf" for f in NRN_FIGS],
    params:
        fig_dir=fig_dir,
        scale=SCALE,
    log:
        f"{NRN_DIR}/logs/figures.log",
    resources:
        **cluster_resources(),
    shell:
        "$NNRDS_PYTHON -m papermill {input.notebook} {output.notebook} --kernel python3 --no-progress-bar "
        "-p runs_csv {input.runs} -p summary_csv {input.summary} -p comparison_csv {input.comparison} "
        "-p fig_dir {params.fig_dir} -p scale {params.scale} > {log} 2>&1"


if NRN["enabled"]:
    ALL_TARGETS += [f"figures/noisy_rnn/{f}.png" for f in NRN_FIGS] + [f"{NRN_DIR}/provenance.json"]
    CLAIM_TABLES.append(f"{NRN_DIR}/claims.csv")
