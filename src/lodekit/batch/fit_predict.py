"""Models fitted on a feature store, and applied to new structures with the same recipe.

The glue of ``lodekit fit`` and ``lodekit predict``: a model file written by
:func:`fit_store` carries in its metadata everything needed to featurise new structures
exactly as the training set was (the recipe, the species list, the centre species and the
design of the feature matrix), so :func:`predict_structures` needs only the model.
"""

from __future__ import annotations

import numpy as np

from .._validation import finite_float, int_in_range, positive_float
from ..errors import InputError, describe
from ..features import Features
from ..features.recipe import Recipe
from ..systems import BOUNDARIES
from .dataset import MEMORY, StructureSource
from .featurize import DEFAULT_CHUNK_SIZE, compute_chunks
from .store import FeatureStore

__all__ = [
    "DEFAULT_ALPHAS",
    "MODEL_KINDS",
    "alpha_at_grid_edge",
    "fit_store",
    "periodicity_mismatches",
    "predict_structures",
    "prediction_table",
    "store_source",
]

#: ``"linear"``: :class:`~lodekit.models.StructureRidge` on one copy of the feature columns
#: per centre species (separate weights per species: with LODE nu = 1 a point-charge model);
#: ``"kernel"``: :class:`~lodekit.models.AdditiveKernelRidge`, polynomial kernel on
#: normalised features, sparse environments by farthest-point sampling.
MODEL_KINDS = ("linear", "kernel")

#: The key of each boundary kind (:data:`~lodekit.systems.BOUNDARIES`) in a model's
#: ``train_periodicity`` counts, and how messages name it.
PERIODICITY_KEYS = {"periodic": "periodic", "slab": "slab", "molecule": "non_periodic"}
_PERIODICITY_NAMES = {"periodic": "periodic", "slab": "slab", "molecule": "non-periodic"}

#: Ridge regularisers searched by 5-fold cross-validation over structures.
DEFAULT_ALPHAS = tuple(float(10.0**k) for k in range(-10, 1))


def fit_store(
    store,
    targets,
    *,
    model: str = "linear",
    alpha=DEFAULT_ALPHAS,
    zeta: float = 2.0,
    n_sparse: int = 1000,
    target_name: str = "target",
    periodic=None,
):
    """Fit a structure-additive model to per-structure targets on a complete feature store.

    Parameters
    ----------
    store : FeatureStore or path
    targets : array_like, shape (n_structures,)
        One value per structure of the store, in its order (e.g. energies in eV).
    model : {"linear", "kernel"}
        See :data:`MODEL_KINDS`.
    alpha : float or sequence of float
        Regulariser(s); several are searched by cross-validation.
    zeta : float
        Kernel exponent (``"kernel"`` only).
    n_sparse : int
        Sparse environments, at most (``"kernel"`` only).
    target_name : str
        Recorded in the metadata and used as the prediction column name.
    periodic : array_like of str or of bool, shape (n_structures,), optional
        Each structure's boundary conditions: "periodic" (bulk), "slab" or "molecule" (e.g.
        :attr:`StructureSource.boundaries`); True and False mean bulk and molecule. Recorded
        as counts in ``train_periodicity`` so that :func:`periodicity_mismatches` can warn.
        Slabs are a kind of their own: a model of bulk has seen no surface, a model of
        molecules no in-plane images.

    Returns
    -------
    model : fitted estimator
        With ``metadata_``: the ``recipe`` (a dict), ``species``, ``center_types``,
        ``design``, ``model``, ``target``, ``n_structures``, training errors in the
        target's units (``train_rmse``, ``train_percent_rmse``: RMSE over the standard
        deviation of the targets, in %), the K-fold error at the chosen alpha (``cv_rmse``,
        ``cv_percent_rmse``, ``cv_folds``; None when one alpha was given and there were
        fewer than two structures), ``alphas`` (the grid searched) and
        ``train_periodicity`` (``{"periodic": n, "slab": s, "non_periodic": m}``, when
        ``periodic`` is given). Save it with :func:`lodekit.persistence.save_model`
        (``metadata=model.metadata_``).
    """
    from ..models import AdditiveKernelRidge, StructureRidge

    if model not in MODEL_KINDS:
        raise InputError(f"`model` is {describe(model)} but must be one of {list(MODEL_KINDS)}")
    _check_settings(model, alpha, zeta, n_sparse)
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    features = store.load()
    y = np.asarray(targets, dtype=np.float64)
    if y.shape != (store.n_structures,) or not np.all(np.isfinite(y)):
        raise InputError(
            f"`targets` has shape {y.shape}; expected {store.n_structures} finite values, one "
            "per structure of the store"
        )
    boundaries = None if periodic is None else _as_boundaries(periodic, store.n_structures)
    alphas = [float(a) for a in np.atleast_1d(np.asarray(alpha, dtype=float))]
    center_types = np.unique(features.samples[:, 2]).tolist()
    design = "by_center_type" if model == "linear" else "plain"
    x = _design(features, design, center_types)
    groups, species = features.samples[:, 0], features.samples[:, 2]
    # always a list: a single alpha is cross-validated too, so that its held-out error is known
    alpha_arg = alphas
    if model == "linear":
        estimator = StructureRidge(alpha=alpha_arg, standardize=True)
    else:
        estimator = AdditiveKernelRidge(
            zeta=zeta, alpha=alpha_arg, n_sparse=min(int(n_sparse), len(x))
        )
    estimator.fit(x, y, groups, species)
    residual = estimator.predict(x, groups, species) - y
    rmse = float(np.sqrt(np.mean(residual**2)))
    spread = float(np.std(y))
    cv_rmse = _cv_rmse_at_choice(estimator)
    estimator.metadata_ = {
        "created_by": "lodekit fit",
        "recipe": store.recipe,
        "species": store.species,
        "center_types": center_types,
        "design": design,
        "model": model,
        "target": target_name,
        "n_structures": store.n_structures,
        "store": str(store.path),
        "train_rmse": rmse,
        "train_percent_rmse": _percent(rmse, spread),
        "alphas": alphas,
        "cv_folds": int(estimator.cv),
        "cv_rmse": cv_rmse,
        "cv_percent_rmse": _percent(cv_rmse, spread),
    }
    if boundaries is not None:
        estimator.metadata_["train_periodicity"] = {
            key: int(np.sum(boundaries == kind)) for kind, key in PERIODICITY_KEYS.items()
        }
    return estimator


def _as_boundaries(periodic, n_structures: int) -> np.ndarray:
    """``periodic`` of :func:`fit_store` as entries of BOUNDARIES, shape (n_structures,)."""
    values = np.asarray(periodic)
    if values.dtype == bool:
        values = np.where(values, "periodic", "molecule")
    if values.shape != (n_structures,):
        raise InputError(
            f"`periodic` has shape {values.shape}; expected {n_structures} entries, one per "
            "structure of the store"
        )
    unknown = sorted(set(values.tolist()) - set(BOUNDARIES))
    if unknown:
        raise InputError(
            f"`periodic` holds {unknown[:3]}; each entry must be one of {list(BOUNDARIES)} "
            "(or a bool: True for bulk, False for a molecule)"
        )
    return values.astype(str)


def _percent(value, spread: float):
    return None if value is None or spread <= 0 else 100.0 * value / spread


def _cv_rmse_at_choice(estimator) -> float | None:
    """The K-fold RMSE of the chosen alpha (None when nothing was cross-validated)."""
    alphas, rmse = estimator.cv_alphas_, estimator.cv_rmse_
    if len(rmse) == 0:
        return None
    return float(rmse[int(np.flatnonzero(alphas == estimator.alpha_)[0])])


def alpha_at_grid_edge(model) -> str | None:
    """``"smallest"`` or ``"largest"`` when a model's chosen alpha is that end of a grid of
    two or more values searched (the optimum may lie beyond it), else None."""
    alphas = np.asarray(getattr(model, "cv_alphas_", ()), dtype=float)
    if len(np.unique(alphas)) < 2:
        return None
    if model.alpha_ == alphas.min():
        return "smallest"
    if model.alpha_ == alphas.max():
        return "largest"
    return None


def periodicity_mismatches(model, source: StructureSource) -> tuple[str, np.ndarray]:
    """Structures of a boundary kind (bulk, slab, molecule) that the model's training set
    never had.

    Parameters
    ----------
    model : fitted estimator with ``metadata_`` from :func:`fit_store`
    source : StructureSource

    Returns
    -------
    trained : str
        The kinds of the training structures, e.g. ``"periodic"``, ``"non-periodic"``,
        ``"slab"`` or ``"periodic and non-periodic"``; ``""`` (and no mismatches) when
        unknown. Models written before slabs were accepted have no slab count: they had none.
    indices : ndarray of int, shape (n_mismatched,)
        Dataset indices of the structures of the other kinds.
    """
    counts = (getattr(model, "metadata_", None) or {}).get("train_periodicity")
    if not isinstance(counts, dict):
        return "", np.zeros(0, dtype=np.int64)
    trained = [kind for kind, key in PERIODICITY_KEYS.items() if counts.get(key, 0)]
    if not trained:
        return "", np.zeros(0, dtype=np.int64)
    names = " and ".join(_PERIODICITY_NAMES[kind] for kind in trained)
    return names, np.flatnonzero(~np.isin(source.boundaries, trained))


def predict_structures(
    model,
    structures,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    n_workers: int | None = None,
    client=None,
    argument: str = "structures",
    where: str = "`model`",
) -> np.ndarray:
    """Per-structure predictions of a model written by :func:`fit_store`.

    The structures are featurised with the recipe in the model's metadata, chunk by chunk
    (in parallel as in :func:`lodekit.batch.featurize`, nothing written to disk).

    Parameters
    ----------
    model : fitted estimator with ``metadata_`` (e.g. from :func:`lodekit.persistence.load_model`)
    structures : paths, structures, or StructureSource
    argument, where : str
        How error messages name the structures and the model.

    Returns
    -------
    ndarray of float64, shape (n_structures,)
    """
    metadata = getattr(model, "metadata_", None) or {}
    needed = ("recipe", "species", "center_types", "design")
    if any(key not in metadata for key in needed):
        raise InputError(
            f"{where} has no featurisation metadata ({', '.join(needed)}): it was not "
            "written by `lodekit fit` / fit_store"
        )
    try:
        recipe = Recipe.from_dict(metadata["recipe"], name="recipe")
    except InputError as err:
        raise InputError(f"{where}: invalid metadata: {err}") from None
    source = structures
    if not isinstance(source, StructureSource):
        source = StructureSource.scan(structures, argument=argument, weights=recipe.weight_arrays)
    species = np.asarray(metadata["species"], dtype=np.int64)
    unknown = np.setdiff1d(source.species, species)
    if len(unknown):
        raise InputError(
            f"`{argument}` contain species {unknown.tolist()} that the model was not trained "
            f"on (it knows {species.tolist()})"
        )
    centers = np.asarray(metadata["center_types"], dtype=np.int64)
    properties, names = recipe.properties(species)
    out = np.full(source.n_structures, np.nan)
    for _, values, samples in compute_chunks(
        source,
        recipe,
        species,
        chunk_size=chunk_size,
        n_workers=n_workers,
        client=client,
    ):
        unseen = np.setdiff1d(samples[:, 2], centers)
        if len(unseen):
            raise InputError(
                f"`{argument}` contain centre species {unseen.tolist()} that the model was not "
                f"trained on (it knows {centers.tolist()})"
            )
        features = Features(
            values=values, samples=samples, properties=properties, property_names=names
        )
        x = _design(features, metadata["design"], centers)
        first = int(samples[0, 0])
        groups = samples[:, 0] - first
        prediction = model.predict(x, groups, samples[:, 2])
        out[first : first + len(prediction)] = prediction
    return out


def _check_settings(model: str, alpha, zeta, n_sparse) -> None:
    """Refuse bad regularisers and kernel settings before the store is read."""
    alphas = np.atleast_1d(np.asarray(alpha, dtype=object)).ravel()
    if alphas.size == 0 or any(finite_float("alpha", a) < 0 for a in alphas):
        raise InputError(f"`alpha` is {describe(alpha)} but must be non-negative (one or more)")
    if model == "kernel":
        positive_float("zeta", zeta)
        int_in_range("n_sparse", n_sparse, 1)


def store_source(store, structures=None, *, argument: str = "STORE") -> StructureSource:
    """The structures a complete store was featurised from, checked against it.

    Parameters
    ----------
    store : FeatureStore
    structures : paths or None
        Files holding the structures (and their targets); None: the inputs recorded in the
        store, which must have been files.
    argument : str
        How error messages name the store.

    Returns
    -------
    StructureSource
        Whose frames are, in order and content, those of the store.
    """
    store.require_complete()
    # the store fingerprinted the weight arrays its recipe reads: scan for the same ones
    weights = Recipe.from_dict(store.recipe, name=f"recipe of {argument}").weight_arrays
    if structures:
        source = StructureSource.scan(structures, argument="--structures", weights=weights)
        where = "`--structures`"
    else:
        names = [record["name"] for record in store.inputs]
        if MEMORY in names:
            raise InputError(
                f"`{argument}` {str(store.path)!r} was featurised from structures in memory: "
                "give their files with --structures"
            )
        source = StructureSource.scan(
            names, argument=f"input of {argument} {str(store.path)!r}", weights=weights
        )
        where = f"the inputs recorded in `{argument}` {str(store.path)!r}"
    theirs = [(r["n_frames"], r["sha256"]) for r in store.inputs]
    ours = [(r["n_frames"], r["sha256"]) for r in source.records]
    if theirs != ours:
        raise InputError(
            f"{where} are not the structures featurised in `{argument}` {str(store.path)!r} "
            f"({source.n_structures} structures now, {store.n_structures} there, or changed "
            "since): featurise them again"
        )
    return source


def prediction_table(source: StructureSource, values, column: str) -> str:
    """CSV text: one row per structure (index, input file, frame in it, prediction)."""
    lines = [f"structure,input,frame,{column}"]
    index = 0
    for record in source.records:
        for frame in range(record["n_frames"]):
            name = record["name"].replace('"', '""')
            lines.append(f'{index},"{name}",{frame},{float(values[index])!r}')
            index += 1
    return "\n".join(lines) + "\n"


def _design(features: Features, design: str, center_types) -> np.ndarray:
    """The model's feature matrix (n_environments, n_columns)."""
    if design == "by_center_type":
        return features.by_center_type(center_types).values
    if design == "plain":
        return features.values
    raise InputError(f"`design` is {design!r} but must be 'by_center_type' or 'plain'")
