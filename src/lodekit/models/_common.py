"""Shared pieces of the models: group bookkeeping, baselines, cross-validation."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.utils.validation import check_array, column_or_1d

from ..errors import InputError
from .jacobians import SparseJacobian

__all__ = [
    "StructureScoreMixin",
    "aggregation_matrix",
    "as_groups",
    "check_alpha",
    "check_force_inputs",
    "check_reduce",
    "check_target",
    "column_scaling",
    "composition",
    "equivariant_target",
    "farthest_points",
    "force_entries",
    "row_blocks",
    "stack_force_rows",
    "weigh_structures",
]

#: Entries of one transient block of per-environment values (2^24 x 8 B = 128 MiB).
BLOCK_ENTRIES = 2**24


def check_force_inputs(reduce, forces, derivatives, n_structures: int, weight, name: str):
    """Validate what fitting on forces needs; returns the force weight as a float.

    ``name`` is the argument holding the derivatives (e.g. "feature_derivatives").
    """
    if reduce != "sum":
        raise InputError("fitting forces needs reduce='sum' (an extensive energy)")
    if (
        forces is None
        or derivatives is None
        or len(forces) != n_structures
        or (not callable(derivatives) and len(derivatives) != n_structures)
    ):
        raise InputError(
            f"`forces` and `{name}` must both be given, one entry per structure ({n_structures}),"
            f" or `{name}` a function of the structure index"
        )
    if all(f is None for f in forces):
        raise InputError("`forces` is None for every structure: give forces for at least one")
    weight = float(weight)
    if not np.isfinite(weight) or weight <= 0:
        raise InputError(f"`force_weight` is {weight} but must be positive")
    return weight


def force_entries(forces, derivatives):
    """(structure index, forces, derivatives) of every structure whose forces are given.

    ``forces[a]`` None: structure a enters by its energy only (forces on a subset).
    ``derivatives`` is a sequence (one array per structure, None where there are no forces)
    or a function ``a -> array``, called only for structures with forces and one at a time,
    so that the Jacobians of a large training set never sit in memory together.
    """
    for a, f in enumerate(forces):
        if f is None:
            continue
        d = derivatives(a) if callable(derivatives) else derivatives[a]
        if not isinstance(d, SparseJacobian):
            d = np.asarray(d, dtype=np.float64)
        yield a, np.asarray(f, dtype=np.float64), d


def stack_force_rows(phi, y, baseline, cv_groups, owners, rows, targets):
    """Energy rows followed by every structure's force rows, with one cross-validation label
    per row (its structure's), so that the alpha search holds out whole structures.

    ``rows[k]`` (n_force_k, n_columns) and ``targets[k]`` (n_force_k,) belong to structure
    ``owners[k]``; baselines (per-species constants) do not act on forces: zeros in the force
    rows.
    """
    n = len(y)
    structure_labels = np.arange(n) if cv_groups is None else np.asarray(cv_groups)
    labels = [np.full(len(t), structure_labels[a]) for a, t in zip(owners, targets, strict=True)]
    phi = np.vstack([phi, *rows])
    y = np.concatenate([y, *targets])
    if baseline is not None:
        n_force = sum(len(t) for t in targets)
        baseline = np.vstack([baseline, np.zeros((n_force, baseline.shape[1]))])
    return phi, y, baseline, np.concatenate([structure_labels, *labels])


def check_reduce(reduce) -> None:
    if reduce not in ("sum", "mean"):
        raise InputError(f"`reduce` is {reduce!r} but must be 'sum' or 'mean'")


def check_alpha(alpha) -> None:
    """A regulariser or a list of them to search: finite and non-negative."""
    alphas = np.atleast_1d(np.asarray(alpha, dtype=float))
    if np.any(~np.isfinite(alphas)) or np.any(alphas < 0):
        raise InputError(f"`alpha` is {alpha} but must be non-negative")


def check_target(y):
    """Reject a missing target with scikit-learn's wording."""
    if y is None:
        raise InputError("this estimator requires y to be passed, but the target y is None")


class StructureScoreMixin:
    """R^2 over structures (and tensor components), with the same keyword arguments as
    ``predict`` (scikit-learn's default ``score`` would pass them as sample weights)."""

    def score(self, X, y, groups=None, **kwargs):
        prediction = np.asarray(self.predict(X, groups=groups, **kwargs), dtype=float)
        truth = np.asarray(y, dtype=float).reshape(prediction.shape)
        residual = np.sum((prediction - truth) ** 2)
        total = np.sum((truth - truth.mean(axis=0)) ** 2)
        return float(1.0 - residual / total) if total > 0 else float(residual == 0)


def as_groups(groups, n_rows: int, name: str = "groups") -> tuple[np.ndarray, int]:
    """Validate the structure index of every environment; returns (groups, n_structures)."""
    if groups is None:
        return np.arange(n_rows), n_rows
    groups = np.asarray(groups)
    if groups.shape != (n_rows,) or (n_rows and not np.issubdtype(groups.dtype, np.integer)):
        raise InputError(
            f"`{name}` has shape {groups.shape} and dtype {groups.dtype}; expected one integer "
            f"structure index per row of X ({n_rows} rows)"
        )
    if n_rows and groups.min() < 0:
        raise InputError(f"`{name}` contains {int(groups.min())}; indices must be >= 0")
    n = int(groups.max()) + 1 if n_rows else 0
    return groups.astype(np.int64), n


def aggregation_matrix(groups: np.ndarray, n_structures: int, reduce: str):
    """Sparse G (n_structures, n_rows), CSC, with G @ per-environment = per-structure sum or
    mean (one non-zero per environment)."""
    weights = np.ones(len(groups))
    if reduce == "mean":
        counts = np.bincount(groups, minlength=n_structures).astype(float)
        weights = 1.0 / counts[groups]
    return sparse.csc_matrix(
        (weights, (groups, np.arange(len(groups)))), shape=(n_structures, len(groups))
    )


def row_blocks(n_rows: int, entries_per_row: int) -> list[slice]:
    """Consecutive row slices covering ``n_rows`` rows, each with at most
    :data:`BLOCK_ENTRIES` entries (one row at least): per-environment work done block by
    block keeps its temporaries at 128 MiB whatever the number of environments."""
    step = max(1, BLOCK_ENTRIES // max(1, entries_per_row))
    return [slice(start, start + step) for start in range(0, n_rows, step)]


def composition(species, groups: np.ndarray, n_structures: int, types: np.ndarray) -> np.ndarray:
    """Number of environments of each species in each structure, (n_structures, n_types)."""
    if species is None:
        species = np.zeros(len(groups), dtype=np.int64)
    species = np.asarray(species)
    if species.shape != groups.shape:
        raise InputError(
            f"`species` has shape {species.shape}; expected one entry per row of X "
            f"({len(groups)} rows)"
        )
    unknown = np.setdiff1d(species, types)
    if len(unknown):
        raise InputError(f"`species` contains {unknown.tolist()}, not seen during fit")
    out = np.zeros((n_structures, len(types)))
    np.add.at(out, (groups, np.searchsorted(types, species)), 1.0)
    return out


def column_scaling(x: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the selected columns of x (training environments).

    Returns (mean, scale), each (n_features,), for x' = (x - mean) / scale. Columns that are not
    selected, and selected columns that do not vary (std below 1e-12 of the largest), get
    mean 0 and scale 1: left as they are.

    Why: a linear model of LODE features is not scale-invariant. The raw power spectrum of a
    potential is dominated by a few large, nearly constant products (the central atom's own
    smeared charge), so one ridge penalty on raw columns suppresses the small columns that
    carry the information (water experiment, exploratory fit at 800 frames: 9.5 % RMSE on raw
    columns scaled as a whole, 7.7 % on standardised columns).
    """
    mean = np.zeros(x.shape[1])
    scale = np.ones(x.shape[1])
    if not np.any(columns) or len(x) == 0:
        return mean, scale
    selected = x[:, columns]
    std = selected.std(axis=0)
    varying = std > 1e-12 * max(std.max(), 1e-300)
    mean[columns] = np.where(varying, selected.mean(axis=0), 0.0)
    scale[columns] = np.where(varying, std, 1.0)
    return mean, scale


def kfold_indices(n: int, n_splits: int, seed: int):
    order = np.random.default_rng(seed).permutation(n)
    folds = np.array_split(order, n_splits)
    for k in range(n_splits):
        test = folds[k]
        train = np.concatenate([folds[j] for j in range(n_splits) if j != k])
        yield train, test


def farthest_points(x: np.ndarray, n: int | None) -> np.ndarray:
    """Sorted rows of x chosen by farthest-point sampling (skmatter), all rows if n is None or
    not smaller than len(x)."""
    if n is None or n >= len(x):
        return np.arange(len(x))
    from sklearn import config_context
    from skmatter.sample_selection import FPS

    if not np.all(np.isfinite(x)):
        raise InputError("the features hold non-finite values: farthest points are undefined")
    if x.shape[1] == 1:
        # skmatter wants two columns; a zero column leaves every distance unchanged
        x = np.hstack([x, np.zeros_like(x)])
    # skmatter validates the whole matrix at every selected point (n + 2 times): more than
    # half of the selection's time for 1500 of 23k environments (issue 28); checked once above
    with config_context(assume_finite=True):
        return np.sort(FPS(n_to_select=int(n), initialize=0).fit(x).selected_idx_)


def equivariant_target(y, o3_lambda: int) -> np.ndarray:
    """y of a lambda-model as (n_structures, 2 lambda + 1); a 1-d y is accepted for lambda 0."""
    check_target(y)
    y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
    width = 2 * int(o3_lambda) + 1
    if width == 1 and y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)  # scikit-learn's DataConversionWarning for column y
    if y.ndim == 1 and width == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[1] != width:
        raise InputError(f"`y` has shape {y.shape}; expected (n_structures, {width})")
    return y


def weigh_structures(phi, y, baseline, weights):
    """Energy rows, targets and baseline rows scaled by one weight per structure (None: as
    they are), e.g. 1 / n_atoms to fit energies per atom, so that large structures do not
    dominate the fit or the choice of its hyperparameters."""
    if weights is None:
        return phi, y, baseline
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(y),) or not np.all(np.isfinite(w) & (w > 0)):
        raise InputError(
            f"`structure_weights` has shape {w.shape}; expected {len(y)} positive finite values"
        )
    scaled = None if baseline is None else baseline * w[:, None]
    return phi * w[:, None], y * w, scaled
