"""Commands of the noisy-RNN regularization study (src/nnrds/studies/noisy_rnn.py)."""
from __future__ import annotations

from .common import add_cell_args, add_summary_args, cell_job, concat, write_summary


def register(sub) -> None:
    p = sub.add_parser("noisy-rnn-train",
                       help="train one dataset x model cell (all seeds and noise levels as replicas) and evaluate "
                            "it under every test-time perturbation")
    p.add_argument("--dataset", required=True, help="digits | digits_permuted | ecg5000")
    p.add_argument("--model", required=True, help="lipschitz | noisy | antisymmetric | lstm")
    add_cell_args(p, {"runs": "output CSV, one row per seed x noise level x perturbation x strength"})
    p.set_defaults(func=_train)

    p = sub.add_parser("noisy-rnn-summarize",
                       help="concatenate cells; mean ± std over seeds; paired noisy-vs-Lipschitz robustness (accuracy drop, "
                            "matched clean accuracy, Holm); writes runs, timings, summary, robustness_comparison, "
                            "claims, caption.rst, provenance.json")
    add_summary_args(p, ["runs"], "{scale, study}")
    p.set_defaults(func=_summarize)


def _train(args) -> int:
    from ..studies import noisy_rnn

    c = args.config_json
    with cell_job(args, f"noisy_rnn/{args.dataset}/{args.model}") as out:
        out["runs"], out["timings"] = noisy_rnn.run_cell(args.dataset, args.model, c["study"], c.get("data"),
                                                         base_seed=c["seed"], device=c["device"], dtype=c["dtype"])
    return 0


def _summarize(args) -> int:
    from ..studies import noisy_rnn

    c = args.config_json
    runs = concat(args.runs, ["dataset", "model", "variant", "perturbation", "strength", "seed"])
    comp = noisy_rnn.compare(runs, c["study"])
    claims = noisy_rnn.claims(runs, comp, c["study"])
    write_summary(args, "noisy_rnn/summarize",
                  {"runs": runs, "timings": concat(args.timings), "summary": noisy_rnn.summarize(runs),
                   "robustness_comparison": comp, "claims": claims,
                   "clean_vs_training_noise": noisy_rnn.clean_vs_training_noise(runs)},
                  noisy_rnn.caption(runs, comp, claims, c["scale"], c["study"]))
    return 0
