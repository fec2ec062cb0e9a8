"""From reference energies and forces to a :class:`LodePotential`: features, force rows,
hyperparameters by K-fold cross-validation, a cost estimate before the work.

This is the library side of ``lodekit train``. Energies enter as structure rows (eV), forces
as one row per component (eV/Å), for the structures that have them; the force weight and the
regulariser are chosen together by K-fold cross-validation over whole structures
(:func:`lodekit.models._ridge.search_force_weight`). The feature Jacobians that force rows
need are computed one structure at a time and dropped once their rows are built.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError
from ..features.recipe import Recipe
from ..systems import stress_volume
from .labels import Labels
from .potential import LodePotential, as_references

__all__ = ["TrainingPlan", "plan_training", "train_potential"]

#: Defaults of the searches (log-spaced grids).
ALPHAS = tuple(float(a) for a in np.logspace(-10, 0, 11))
FORCE_WEIGHTS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


@dataclass
class TrainingPlan:
    """What a training run will build, estimated before it starts.

    ``memory_bytes``: the largest arrays of the fit (features, kernel rows, force rows, one
    structure's Jacobian); ``seconds``: featurisation and Jacobians timed on the first
    structure and scaled by atoms (linear in atoms for features, quadratic for Jacobians).
    """

    n_structures: int
    n_atoms: int
    n_force_structures: int
    n_features: int
    species: list[int]
    memory_bytes: float
    seconds: float
    details: dict = field(default_factory=dict)

    def describe(self) -> str:
        return (
            f"{self.n_structures} structures ({self.n_atoms} atoms, forces for "
            f"{self.n_force_structures}), species {self.species}, {self.n_features} features; "
            f"estimated peak memory {self.memory_bytes / 2**30:.2f} GiB, time "
            f"{self.seconds:.0f} s"
        )


def _model(kind: str, recipe: Recipe, species, *, alphas, n_sparse, zeta, baselines, n_env):
    from ..models import AdditiveKernelRidge, StructureRidge

    if kind == "linear":
        return StructureRidge(alpha=list(alphas), baselines=baselines)
    if kind != "kernel":
        raise InputError(f"`model` {kind!r} is not a model; choose 'kernel' or 'linear'")
    widths = recipe.widths(species)
    # blocks of l = 0 LODE coefficients (nu1) enter linearly: a potential is linear in them
    # (the paper's SOAP^2 + linear LODE), and a power of a normalised potential discards its
    # magnitude
    linear = [i for i, block in enumerate(recipe.blocks) if block.kind.name == "nu1"]
    return AdditiveKernelRidge(
        zeta=zeta,
        alpha=list(alphas),
        n_sparse=min(int(n_sparse), n_env),
        baselines=baselines,
        feature_blocks=widths if len(widths) > 1 else None,
        linear_blocks=linear or None,
    )


#: Rate (flop/s) of the SVDs of the hyperparameter search on 2 cores: numpy's LAPACK on the
#: development machine ran 13-27 Gflop/s on 7000 x 300 to 20000 x 1000 matrices.
SVD_RATE = 2e10


def plan_training(
    frames, labels: Labels, recipe: Recipe, *, model="kernel", n_sparse=1000, n_weights=None
):
    """Estimate memory and time of :func:`train_potential` from the first structure.

    Time: featurisation and Jacobians timed on the first structure (with forces) and scaled
    by atoms (features linearly, Jacobians quadratically), plus the SVDs of the search (one
    per fold and force weight, and the final fit: 4 rows m^2 + 8 m^3 flop for m columns)
    at :data:`SVD_RATE`.
    """
    species = sorted({int(z) for atoms in frames for z in atoms.numbers})
    n_features = int(sum(recipe.widths(species)))
    n_atoms = labels.n_atoms
    with_forces = [a for a, f in enumerate(labels.forces) if f is not None]
    probe = LodePotential(_model(model, recipe, species, alphas=ALPHAS, n_sparse=n_sparse,
                                 zeta=2, baselines=True, n_env=int(n_atoms.sum())),
                          recipe, species=species)  # fmt: skip
    start = time.perf_counter()
    recipe.compute(frames[0], species)
    feature_seconds = (time.perf_counter() - start) / max(int(n_atoms[0]), 1)
    jacobian_seconds = 0.0
    if with_forces:
        first = with_forces[0]
        start = time.perf_counter()
        probe.feature_jacobian(frames[first], sparse=True)
        jacobian_seconds = (time.perf_counter() - start) / max(int(n_atoms[first]), 1) ** 2
    n_env = int(n_atoms.sum())
    n_force = int(3 * n_atoms[with_forces].sum())
    columns = min(n_sparse, n_env) if model == "kernel" else n_features
    rows = len(frames) + n_force
    weights = (len(FORCE_WEIGHTS) if n_weights is None else n_weights) if with_forces else 1
    # five folds (four fifths of the rows each) per force weight, and the final fit
    svd_flops = (weights * 5 * 0.8 + 1) * (4.0 * rows * columns**2 + 8.0 * columns**3)
    seconds = (
        feature_seconds * n_atoms.sum()
        + jacobian_seconds * np.sum(n_atoms[with_forces] ** 2)
        + svd_flops / SVD_RATE
    )
    largest = int(max((n_atoms[a] ** 2 * 3 for a in with_forces), default=0)) * n_features
    if model == "kernel":
        sizes = probe.model.memory_estimate(
            n_env,
            len(frames),
            n_features,
            n_force_components=n_force,
            jacobian_entries=largest,
        )
    else:
        # features, every structure's derivative rows (n_atoms x 3 x features), the stacked
        # regression with its fold copies and SVD (6 copies, as the kernel estimate), and the
        # one Jacobian held while its rows are summed (with its reshaped copy)
        sizes = {
            "features": 8 * n_env * n_features,
            "derivatives": 8 * n_force * n_features,
            "regression": 8 * 6 * rows * n_features,
            "jacobian": 8 * 2 * largest,
        }
        sizes["total"] = sum(sizes.values())
    return TrainingPlan(
        len(frames), n_env, len(with_forces), n_features, species, float(sizes["total"]),
        float(seconds), {"memory": sizes},
    )  # fmt: skip


def train_potential(
    frames,
    labels: Labels,
    recipe: Recipe,
    *,
    model: str = "kernel",
    alphas=ALPHAS,
    force_weights=FORCE_WEIGHTS,
    n_sparse: int = 1000,
    zeta: int = 2,
    references: dict | None = None,
    species=None,
    use_stress: bool = True,
    energy_per_atom: bool = True,
    features=None,
    progress=None,
) -> tuple[LodePotential, dict]:
    """Fit a potential on energies (and forces where given).

    Parameters
    ----------
    frames : list of ase.Atoms
    labels : Labels
        Reference energies (eV) and forces (eV/Å, None for structures without).
    recipe : Recipe
    model : {"kernel", "linear"}
        Sparse kernel ridge (FPS sparse environments, zeta-th power of normalised features,
        LODE nu = 1 blocks linear) or ridge on the structure-summed features.
    alphas, force_weights : sequences of float
        Grids searched together by 5-fold cross-validation over whole structures.
    n_sparse, zeta : int
        Sparse environments and kernel exponent (kernel model).
    references : dict {Z: eV}, optional
        Fixed per-species energies subtracted from the targets (and added back by the
        potential). Default: per-species energies fitted as unpenalised baselines.
    species : sequence of int, optional
        Neighbour species of the potential (default: those of ``frames``).
    use_stress : bool
        Fit the stress of periodic structures (bulk or slab) that have one: its virial
        V sigma = dE/d eps (eV; V = |det(cell)|, also for a slab as in ASE), divided by the
        number of atoms, enters as three more "force" rows of 3 components, weighted like
        the forces (and counted in their cross-validated error).
    energy_per_atom : bool
        Weigh each energy row by 1 / n_atoms: the fit and the cross-validation see energies
        per atom (eV/atom), so that large structures do not dominate; the force rows keep
        their weight (eV/Å per component, already per atom).
    features : Features, optional
        The recipe's features of ``frames`` with these ``species``, already computed (e.g.
        loaded from a feature store, :func:`lodekit.batch.load_features`); default: computed
        here.
    progress : callable, optional
        A tqdm-like factory, for the Jacobian pass.

    Returns
    -------
    (LodePotential, dict)
        The potential, and a record of the fit: chosen alpha and force weight, the K-fold
        energy and force errors, the per-species energies.
    """
    species = sorted(
        {int(z) for atoms in frames for z in atoms.numbers} if species is None else species
    )
    energies = np.asarray(labels.energy, dtype=np.float64).copy()
    references = as_references(references) or None
    if references:
        missing = sorted(set(species) - set(references))
        if missing:
            raise InputError(
                f"`references` gives no energy for species {missing}; give every species "
                "or let them be fitted"
            )
        for a, atoms in enumerate(frames):
            energies[a] -= sum(references[int(z)] for z in atoms.numbers)
    if features is None:
        features = _features(recipe, frames, species, progress)
    elif len(features.values) != int(labels.n_atoms.sum()):
        raise InputError(
            f"`features` has {len(features.values)} rows; the structures have "
            f"{int(labels.n_atoms.sum())} atoms"
        )
    groups, centres = features.samples[:, 0], features.samples[:, 2]
    estimator = _model(
        model, recipe, species, alphas=alphas, n_sparse=n_sparse, zeta=zeta,
        baselines=not references, n_env=len(features.values),
    )  # fmt: skip
    targets = _derivative_targets(frames, labels, use_stress)
    with_forces = [a for a, t in enumerate(targets) if t is not None]
    fit_options = {}
    if energy_per_atom:
        fit_options["structure_weights"] = 1.0 / labels.n_atoms
    bar = None
    if with_forces:
        probe = LodePotential(estimator, recipe, species=species)
        if progress is not None:
            bar = progress(total=len(with_forces), desc="Jacobians")

        def derivative(a):
            # one structure at a time: computed when the model asks, dropped after its rows.
            # A linear model needs only the sum over environments; one forward Jacobian is
            # far cheaper than feature_derivatives' backward pass per column (3 s against
            # 65 s for 40 NaCl cells and 332 columns)
            with_stress = use_stress and labels.stress[a] is not None
            # by (environment, atom) row: a kernel model contracts the rows one by one and
            # never forms environments x atoms x 3 x features
            out = probe.feature_jacobian(frames[a], strain=with_stress, sparse=True)
            if with_stress:
                # the virial rows, per atom, after the atoms' rows (see _derivative_targets)
                out = out.with_strain_rows(
                    1.0 / len(frames[a]), positions=labels.forces[a] is not None
                )
            if model == "linear":
                out = out.summed()
            if bar is not None:
                bar.update()
            return out

        name = "feature_jacobians" if model == "kernel" else "feature_derivatives"
        fit_options.update(
            {"forces": targets, name: derivative, "force_weight": list(force_weights)}
        )
    estimator.fit(features.values, energies, groups, centres, **fit_options)
    if bar is not None:
        bar.close()
    fitted = {int(z): float(b) for z, b in zip(estimator.types_, estimator.baseline_, strict=True)}
    potential = LodePotential(estimator, recipe, species=species, references=references)
    record = {
        "model": model,
        "alpha": float(estimator.alpha_),
        "force_weight": float(estimator.force_weight_),
        "alphas": [float(a) for a in np.atleast_1d(alphas)],
        "force_weights": [float(w) for w in estimator.cv_force_weights_],
        "cv_energy_rmse": np.asarray(estimator.cv_energy_rmse_).tolist(),
        "cv_force_rmse": np.asarray(estimator.cv_force_rmse_).tolist(),
        "cv_alpha_rmse": np.asarray(estimator.cv_rmse_).tolist(),
        "fitted_species_energies": {str(z): e for z, e in fitted.items()} if not references
        else {},
        "energy_per_atom": bool(energy_per_atom),
        "n_structures": len(frames),
        "n_force_structures": sum(labels.forces[a] is not None for a in with_forces),
        "n_stress_structures": sum(labels.stress[a] is not None for a in with_forces)
        if use_stress
        else 0,
        "species": species,
    }  # fmt: skip
    return potential, record


def _derivative_targets(frames, labels: Labels, use_stress: bool) -> list:
    """The derivative rows' targets of every structure: its forces (n_atoms, 3) and, for a
    periodic structure with a stress, the virial per atom as three more rows: -V sigma / n,
    whose rows are -(d x / d eps) / n . w in the force convention (F = -dE/dr), since
    V sigma = dE/d eps. None for a structure with neither."""
    out = []
    for a, atoms in enumerate(frames):
        rows = [] if labels.forces[a] is None else [labels.forces[a]]
        if use_stress and labels.stress[a] is not None:
            volume = stress_volume(atoms.cell.array, atoms.pbc)
            rows.append(-volume * labels.stress[a] / len(atoms))
        out.append(np.concatenate(rows) if rows else None)
    return out


def _features(recipe: Recipe, frames, species, progress, chunk: int = 16):
    """The recipe's features of every frame, in chunks of ``chunk`` frames when a progress
    bar is shown (so that it moves)."""
    if progress is None:
        return recipe.compute(frames, species)
    parts = []
    bar = progress(total=len(frames), desc="features", unit="structure")
    for start in range(0, len(frames), chunk):
        parts.append(recipe.compute(frames[start : start + chunk], species, first_system=start))
        bar.update(len(frames[start : start + chunk]))
    bar.close()
    return replace(
        parts[0],
        values=np.concatenate([p.values for p in parts]),
        samples=np.concatenate([p.samples for p in parts]),
    )
