"""Experiment B of the paper: binding curves of charged molecular dimers (Sec. III.B, Fig. 2).

Data: the SSI charged dimers with GFN2-xTB binding curves (datasets.load_ssi_dimers), isolated
monomers (binding energy 0) added to the training set, split by dimer. Molecules are expanded
exactly, without a box (lodekit's non-periodic LODE).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..datasets import load_ssi_dimers
from ..models import AdditiveKernelRidge, StructureRidge
from ..persistence import atomic_write
from ..recipes import paper_recipe
from .learning_curve import ModelSpec, used_frames

__all__ = ["MODES", "PAPER", "PAPER_VALUES", "X_LABEL", "build", "extra"]

MODES = {
    "quick": {"train_dimers": [10, 25, 50], "n_test_dimers": 15, "n_sparse": 300},
    "full": {"train_dimers": [50, 100, 200, 400, 590], "n_test_dimers": 60, "n_sparse": 1500},
}

PAPER = {
    "soap": "≈ 20",
    "soap_lode1": "≈ 10",
    "soap_lode2": "≈ 4",
    "multiscale": "≈ 13 (later linear rho x V model, similar set)",
}

#: The paper's numbers at its full training set (600 dimers), as (dimers, low %, high %).
PAPER_VALUES = {
    "soap": (600, 20.0, 20.0),
    "soap_lode1": (600, 10.0, 10.0),
    "soap_lode2": (600, 4.0, 4.0),
    "multiscale": (600, 13.0, 13.0),
}

X_LABEL = "training dimers (13 curve points + 2 monomers each)"

ALPHAS = list(np.logspace(-8, 2, 11))


def _recipe(name):
    """The features of model ``name``: lodekit/recipes/paper/dimers/<name>.json."""
    return paper_recipe("dimers", name)


def build(mode: str, seed: int, progress=None, path=None):
    config = MODES[mode]
    data = load_ssi_dimers(path)
    dimers = np.unique(data["dimer"])
    test_dimers = dimers[-config["n_test_dimers"] :]
    pool = dimers[: -config["n_test_dimers"]]
    order = np.random.default_rng(seed).permutation(len(pool))
    pool = pool[order]
    is_test = np.isin(data["dimer"], test_dimers)
    test = np.flatnonzero(is_test & ~data["is_monomer"])
    train_sets = {
        n: np.flatnonzero(np.isin(data["dimer"], pool[:n])) for n in config["train_dimers"]
    }
    used, test_at, train_at = used_frames(test, train_sets)
    frames = [data["frames"][i] for i in used]
    targets = data["energy"][used]
    n_sparse = config["n_sparse"]

    def soap_model():
        return AdditiveKernelRidge(zeta=2, alpha=ALPHAS, n_sparse=n_sparse, baselines=False)

    # block widths of the two-block models (SOAP power spectrum, then the LODE block) for
    # the data set's species
    species = np.unique(np.concatenate([atoms.numbers for atoms in frames]))
    recipes = {name: _recipe(name) for name in ("soap", "soap_lode1", "soap_lode2", "multiscale")}

    def block_model(name, linear):
        widths = recipes[name].widths(species)

        def make():
            return AdditiveKernelRidge(
                zeta=2,
                alpha=ALPHAS,
                n_sparse=n_sparse,
                baselines=False,
                feature_blocks=widths,
                linear_blocks=[1] if linear else None,
            )

        return make

    specs = [
        ModelSpec.from_recipe("soap", "SOAP (3 Å, sigma 0.3)", recipes["soap"], soap_model),
        ModelSpec.from_recipe(
            "soap_lode1",
            "SOAP^2 + linear LODE nu=1",
            recipes["soap_lode1"],
            block_model("soap_lode1", linear=True),
        ),
        ModelSpec.from_recipe(
            "soap_lode2",
            "(k_SOAP + k_LODE nu=2)^2",
            recipes["soap_lode2"],
            block_model("soap_lode2", linear=False),
        ),
        ModelSpec.from_recipe(
            "multiscale",
            "linear rho x V",
            recipes["multiscale"],
            lambda: StructureRidge(alpha=ALPHAS, baselines=False),
        ),
    ]
    notes = [
        "Targets: GFN2-xTB binding energies (not the paper's B3LYP); monomers (0 eV) in training.",
        "Split by dimer: the last dimers of the SSI order are the test set, never in training.",
        "LODE of isolated molecules computed exactly, no vacuum box (featomic cannot).",
        "x axis: number of training dimers (13 curve points + 2 monomers each).",
    ]
    return {
        "frames": frames,
        "targets": targets,
        "train_sets": train_at,
        "test": test_at,
        "specs": specs,
        "notes": notes,
        "n_train_pool": len(pool),
        "keep": ("soap", "soap_lode2"),
        # the alpha search must hold out whole dimers, like the test split
        "cv_groups": data["dimer"][used],
        "curves": {
            "dimer": data["dimer"][test],
            "distance": data["distance"][test],
        },
    }


def _closest_contact(atoms) -> float:
    """Smallest distance (Å) between an atom of monomer A (the first ``n_A``) and one of B."""
    n_a = int(atoms.info["n_A"])
    a, b = atoms.positions[:n_a], atoms.positions[n_a:]
    return float(np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).min())


def extra(setup, predictions, out: Path, progress=None) -> dict:
    """Plot predicted and reference binding curves of a few test dimers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dimer, distance = setup["curves"]["dimer"], setup["curves"]["distance"]
    truth = setup["targets"][setup["test"]]
    chosen = np.unique(dimer)[:4]
    cutoff = _recipe("soap").blocks[0].calculators[0].cutoff
    labels = {spec.name: spec.label for spec in setup["specs"]}
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.2 * len(chosen), 3.2), squeeze=False)
    for ax, d in zip(axes[0], chosen, strict=True):
        rows = np.flatnonzero(dimer == d)
        rows = rows[np.argsort(distance[rows])]
        ax.plot(distance[rows], truth[rows], "k-", label="GFN2-xTB")
        for name, style in (("soap", "C0--"), ("soap_lode2", "C3-")):
            if name in predictions:
                ax.plot(distance[rows], predictions[name][rows], style, label=labels[name])
        # where no atom of one monomer lies within r_c of an atom of the other, every SOAP
        # environment is that of an isolated monomer: a local model's curve is flat there
        frames = [setup["frames"][i] for i in setup["test"][rows]]
        apart = np.array([_closest_contact(atoms) > cutoff for atoms in frames])
        if apart.any():
            ax.axvspan(
                distance[rows][apart].min(),
                distance[rows].max(),
                color="0.9",
                label=f"closest contact > r_c = {cutoff:g} Å: SOAP flat",
            )
        ax.set_title(f"dimer {int(d)}")
        ax.set_xlabel("centre separation (Å)")
    axes[0, 0].set_ylabel("binding energy (eV)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="lower center", ncol=len(names))
    fig.suptitle(
        f"Test dimers, models trained on {max(setup['train_sets'])} dimers; shaded: no atom "
        "of one monomer within the SOAP cutoff of the other",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    atomic_write(
        out / "binding_curves.png", lambda stream: fig.savefig(stream, format="png", dpi=110)
    )
    plt.close(fig)
    return {"binding_curve_dimers": [int(d) for d in chosen]}
