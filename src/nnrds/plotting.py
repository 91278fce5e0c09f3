"""Shared figure style: one look, one colour per parameterization, atomic PNG + PDF output."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402

from .store import atomic_path  # noqa: E402

#: fixed colours so a parameterization looks the same in every figure of every study
PARAM_COLORS = {
    "mlp": "#7f7f7f",
    "nonpar": "#d62728",
    "const": "#1f77b4",
    "linear": "#2ca02c",
    "cubic": "#9467bd",
    "legendre3": "#ff7f0e",
    "legendre1": "#17becf",
    "legendre5": "#8c564b",
}
_FALLBACK = plt.get_cmap("tab20").colors
#: display names and colours of the polynomial weight bases (``nnrds.wp.POLY_KINDS``), every study
BASIS_NAMES = {"monomial": "monomial (t/T)ᵏ", "legendre": "shifted Legendre", "chebyshev": "shifted Chebyshev"}
BASIS_COLORS = {"monomial": "#d62728", "legendre": "#ff7f0e", "chebyshev": "#2ca02c"}
#: one colour per UQ method (ELM UQ study)
UQ_METHOD_COLORS = {
    "nuts": "#d62728",
    "nuts_stacked": "#ff7f0e",
    "vi": "#1f77b4",
    "vi_lowrank": "#9467bd",
    "ensemble": "#2ca02c",
    "map": "#7f7f7f",
}

SUBSTITUTE_NOTE = "Data: public substitutes for the original (non-public) datasets; see README."

#: verdict colours (claims figures of every study)
VERDICT_COLORS = {"supported": "#2ca02c", "contradicted": "#d62728", "inconclusive": "#7f7f7f"}

# --- stiffness study: regularizers and Jacobian-spectrum metrics
REGULARIZER_COLORS = {"none": "#333333", "l2": "#1f77b4", "stiffness": "#ff7f0e"}
REGULARIZER_LABELS = {"none": "no regularization", "l2": "L2 weight decay", "stiffness": "stiffness penalty"}
STIFFNESS_METRIC_LABELS = {
    "stiffness_ratio": "stiffness ratio\nmax|Re λ| / min|Re λ| (log)",
    "spectral_radius": "spectral radius ρ(J) (log)",
    "euler_index": "explicit-Euler index h·ρ(J) (log)",
    "euler_amp": "max |1 + hλ|\n(≤ 1: Euler-stable)",
    "test_mse": "test MSE (units of\ntraining output variance, log)",
}

# --- noisy-RNN study: models (noisy variants get shades of RNN_NOISY_CMAP) and test-time perturbations
RNN_COLORS = {"lipschitz": "#1f77b4", "antisymmetric": "#2ca02c", "lstm": "#7f7f7f", "cornn": "#9467bd"}
RNN_LINESTYLES = {"lipschitz": "-", "antisymmetric": "--", "lstm": ":", "cornn": "-."}
RNN_ORDER = {"lipschitz": 0, "antisymmetric": 1, "lstm": 2, "cornn": 3}
RNN_NOISY_CMAP = "Oranges"
PERTURBATION_ORDER = ("gaussian", "multiplicative", "salt_pepper", "fgsm")
PERTURBATION_LABELS = {
    "gaussian": "additive noise σ (x + σξ)",
    "multiplicative": "multiplicative noise σ (x(1 + σξ))",
    "salt_pepper": "salt-and-pepper rate p",
    "fgsm": "FGSM step ε (input units)",
}


def noisy_rnn_label(variant: str, noise_add: float, noise_mult: float) -> str:
    """Display name of a noisy-RNN study variant (the noisy RNN by its training-noise levels)."""
    return f"noisy σ₁={noise_add:g}, σ₂={noise_mult:g}" if variant.startswith("noisy") else variant


def color_for(name: str, i: int = 0) -> str:
    return PARAM_COLORS.get(name, _FALLBACK[i % len(_FALLBACK)])


def style() -> None:
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "font.size": 10,
            "axes.titlesize": 10,
            "axes.labelsize": 10,
            "legend.fontsize": 8,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.constrained_layout.use": True,
            "svg.hashsalt": "nnrds",
            "pdf.compression": 6,
        }
    )


def savefig(fig, path_png: str | os.PathLike) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` atomically (no half-written figure on interrupt)."""
    png = Path(path_png)
    written = []
    for ext in (".png", ".pdf"):
        target = png.with_suffix(ext)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext[1:], metadata={"CreationDate": None} if ext == ".pdf" else None)
        written.append(target)
    return written


#: continuous-depth study: integration schemes (display name, colour) and the nonpar ResNet's interpolations
SCHEME_NAMES = {"euler": "Euler (ResNet unit)", "midpoint": "midpoint (RK2)", "rk4": "RK4"}
SCHEME_COLORS = {"euler": "#d62728", "midpoint": "#2ca02c", "rk4": "#1f77b4"}
PARAM_COLORS.update({"nonpar/constant": "#d62728", "nonpar/linear": "#e377c2"})

# --- PINN failure-mode study (pinn_failure) ---
#: one colour per PINN training mode (seq2seq modes of other window widths fall back to the cycle)
PINN_MODE_COLORS = {
    "plain": "#d62728",
    "curriculum": "#1f77b4",
    "seq2seq_0.1": "#2ca02c",
    "seq2seq_0.05": "#9467bd",
    "causal": "#ff7f0e",
}
#: display names of the PINN problems and of their swept coefficient
PINN_PROBLEMS = {
    "convection": ("convection  u_t + β u_x = 0", "β"),
    "reaction": ("reaction  u_t − ρ u(1 − u) = 0", "ρ"),
    "reaction_diffusion": ("reaction–diffusion  u_t − ν u_xx − ρ u(1 − u) = 0", "ν"),
}


# ------------------------------------------------------------------ materials UQ (workflow/notebooks/materials.ipynb)
#: display names of the materials sets and the structure of each set's E-V curve
MATERIALS_SETS = {"al_emt": "Al-EMT (substitute)", "fitsnap": "FitSNAP Ta (DFT)", "wbe": "FitSNAP W–Be (DFT)"}
MATERIALS_EV_STRUCTURES = {"al_emt": "fcc Al", "fitsnap": "bcc Ta", "wbe": "hcp Be"}
#: axis label of every predicted quantity and the factor its values are shown with (stress in meV/Å³)
MATERIALS_QUANTITIES = {
    "energy": ("energy (eV/atom)", 1.0),
    "forces": ("force component (eV/Å)", 1.0),
    "stress": ("stress component (meV/Å³)", 1e3),
}
#: display names and colours of the UQ methods of the materials study; colours of in-distribution / held-out items
UQ_METHODS = {
    "ensemble": ("deep ensemble", "#2ca02c"),
    "bbb": ("Bayes-by-backprop", "#9467bd"),
    "linear": ("linear baseline (Bayesian ridge)", "#ff7f0e"),
}
HELDOUT_COLORS = {False: "#1f77b4", True: "#d62728"}


# ------------------------------------------------ stable architectures (workflow/notebooks/stable_arch.ipynb)
#: display name and colour of every architecture (block + scheme) and of the stability region of each scheme
STABLE_ARCHS = {
    "resnet": ("ResNet (Euler)", "#7f7f7f"),
    "antisym_euler": ("antisymmetric, Euler", "#d62728"),
    "antisym_euler_damped": ("antisymmetric damped, Euler", "#ff9896"),
    "antisym_midpoint": ("antisymmetric, 2-step midpoint", "#2ca02c"),
    "hamiltonian": ("Hamiltonian, Verlet", "#1f77b4"),
    "second_order": ("second-order, leapfrog", "#9467bd"),
}
#: stability functions (nnrds.integrators.amplification names) of the spectra figure: the two-step midpoint rule is
#: the "leapfrog" polynomial; the second-order net's Stormer step shares Verlet's
STABLE_SCHEMES = {"euler": "forward Euler", "leapfrog": "2-step midpoint rule", "verlet": "Verlet / Stormer"}
TOY2D_NAMES = {"peaks": "peaks (5 classes)", "ellipses": "ellipses (3 rings)", "swiss_roll": "Swiss roll (2 arms)"}
