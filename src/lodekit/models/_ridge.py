"""Ridge regression in an explicit feature map, with K-fold choice of the regulariser."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import kfold_indices

__all__ = [
    "FORCE_RECORD",
    "AlphaSearch",
    "EnergyForceDesign",
    "ForceWeightSearch",
    "check_force_weight",
    "energy_force_design",
    "fit_ridge",
    "fit_structure_regression",
    "search_alpha",
    "search_force_weight",
    "select_alpha",
    "set_force_record",
]


class _RidgePath:
    """SVD of phi with the ``free`` (unpenalised) columns projected out: solves for any alpha.

    argmin_{w, b} |phi w + free b - target|^2 + alpha |w|^2 (b unpenalised), stable for
    rank-deficient phi; one decomposition serves every alpha of a search.
    """

    def __init__(self, phi: np.ndarray, target: np.ndarray, free: np.ndarray | None):
        self.phi, self.target = phi, target
        self.free = np.zeros((len(phi), 0)) if free is None else free
        q = np.linalg.qr(self.free)[0] if self.free.shape[1] else self.free
        phi_p = phi - q @ (q.T @ phi)
        target_p = target - q @ (q.T @ target)
        self.u, self.s, self.vt = np.linalg.svd(phi_p, full_matrices=False)
        self.projected = self.u.T @ target_p

    def solve(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        w = self.vt.T @ (self.s / (self.s * self.s + alpha) * self.projected)
        b = np.zeros(self.free.shape[1])
        if self.free.shape[1]:
            b, *_ = np.linalg.lstsq(self.free, self.target - self.phi @ w, rcond=None)
        return w, b


def fit_ridge(
    phi: np.ndarray, target: np.ndarray, alpha: float, free: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """argmin_{w, b} |phi w + free b - target|^2 + alpha |w|^2 (b unpenalised); (w, b)."""
    return _RidgePath(phi, target, free).solve(alpha)


@dataclass(frozen=True)
class AlphaSearch:
    """Outcome of a K-fold search: the chosen regulariser and the error at every candidate.

    ``alphas`` (n_alphas,) in the order given; ``rmse`` (n_alphas,): root mean square of the
    held-out residuals (every row is held out once), in the units of the target rows. Both
    are empty when one fixed regulariser was given (no search, nothing cross-validated).
    """

    alpha: float
    alphas: np.ndarray
    rmse: np.ndarray


def select_alpha(
    phi: np.ndarray,
    target: np.ndarray,
    baseline: np.ndarray | None,
    alphas,
    n_splits: int,
    seed: int,
    rows_per_structure: int = 1,
    cv_groups: np.ndarray | None = None,
) -> float:
    """The alpha of ``alphas`` with the lowest K-fold RMSE over structures.

    ``baseline`` (structures x types, unpenalised) is refitted inside each fold when given.
    Rows of phi come in consecutive runs of ``rows_per_structure`` per structure.
    ``cv_groups`` (one label per structure) keeps structures of one label in the same fold
    (e.g. all points of one dimer's binding curve), so that the search is not fooled by
    near-duplicates.
    """
    alphas = np.atleast_1d(np.asarray(alphas, dtype=float))
    if len(alphas) == 1:
        return float(alphas[0])
    errors = _fold_errors(
        phi, target, baseline, alphas, n_splits, seed, rows_per_structure, cv_groups
    )
    return float(alphas[int(np.argmin(errors))])


def search_alpha(
    phi: np.ndarray,
    target: np.ndarray,
    baseline: np.ndarray | None,
    alpha,
    n_splits: int,
    seed: int,
    cv_groups: np.ndarray | None = None,
) -> AlphaSearch:
    """:func:`select_alpha` keeping the K-fold RMSE of every candidate.

    A scalar ``alpha`` is used as it is (no search); a sequence, even of one value, is
    cross-validated, so that its held-out error is known.
    """
    if np.ndim(alpha) == 0:
        return AlphaSearch(float(alpha), np.zeros(0), np.zeros(0))
    alphas = np.atleast_1d(np.asarray(alpha, dtype=float))
    if len(alphas) == 1 and len(target) < 2:  # nothing to hold out
        return AlphaSearch(float(alphas[0]), np.zeros(0), np.zeros(0))
    errors = _fold_errors(phi, target, baseline, alphas, n_splits, seed, 1, cv_groups)
    rmse = np.sqrt(errors / len(target))
    return AlphaSearch(float(alphas[int(np.argmin(errors))]), alphas, rmse)


def _fold_errors(phi, target, baseline, alphas, n_splits, seed, rows_per_structure, cv_groups):
    """Sum over folds of the held-out squared residuals, one per alpha (n_alphas,)."""
    kinds = np.zeros(len(target), dtype=np.int64)
    return _fold_residuals(
        phi, target, baseline, alphas, n_splits, seed, rows_per_structure, cv_groups, kinds
    )[:, 0]


def _fold_residuals(
    phi, target, baseline, alphas, n_splits, seed, rows_per_structure, cv_groups, kinds, scale=None
):
    """Held-out squared residuals summed over folds, per alpha and per kind of row:
    (n_alphas, kinds.max() + 1). ``scale`` (per row) divides each residual first (to undo a
    row weight)."""
    n_kinds = int(kinds.max()) + 1
    n_structures = phi.shape[0] // rows_per_structure
    n_splits = max(2, min(n_splits, n_structures))
    errors = np.zeros((len(alphas), n_kinds))
    if cv_groups is None:
        folds = list(kfold_indices(n_structures, n_splits, seed))
    else:
        labels, label_of = np.unique(np.asarray(cv_groups), return_inverse=True)
        n_splits = max(2, min(n_splits, len(labels)))
        folds = [
            (np.flatnonzero(np.isin(label_of, tr)), np.flatnonzero(np.isin(label_of, te)))
            for tr, te in kfold_indices(len(labels), n_splits, seed)
        ]
    for train, test in folds:
        rows_tr = (train[:, None] * rows_per_structure + np.arange(rows_per_structure)).ravel()
        rows_te = (test[:, None] * rows_per_structure + np.arange(rows_per_structure)).ravel()
        path = _RidgePath(
            phi[rows_tr], target[rows_tr], None if baseline is None else baseline[train]
        )
        for k, alpha in enumerate(alphas):
            w, b = path.solve(alpha)
            prediction = phi[rows_te] @ w
            if baseline is not None:
                prediction += baseline[test] @ b
            residual = prediction - target[rows_te]
            if scale is not None:
                residual = residual / scale[rows_te]
            errors[k] += np.bincount(kinds[rows_te], weights=residual**2, minlength=n_kinds)
    return errors


@dataclass(frozen=True)
class ForceWeightSearch:
    """Outcome of the K-fold search over (force weight, alpha) of a fit on energies and forces.

    ``energy_rmse`` (eV) and ``force_rmse`` (eV/Å), shape (n_weights, n_alphas): held-out
    errors of the energy rows and of the (unweighted) force components, whole structures held
    out. ``score`` = energy_rmse / energy_spread + force_rmse / force_spread, the sum of the
    two relative errors, with the spreads of what the model must learn (energies after
    their per-species least-squares baseline, force components' RMS); the lowest wins.
    """

    alpha: float
    force_weight: float
    alphas: np.ndarray
    force_weights: np.ndarray
    energy_rmse: np.ndarray
    force_rmse: np.ndarray
    score: np.ndarray


def search_force_weight(
    energy_phi: np.ndarray,
    energy_y: np.ndarray,
    baseline: np.ndarray | None,
    force_phi: np.ndarray,
    force_y: np.ndarray,
    force_owner: np.ndarray,
    alphas,
    weights,
    n_splits: int,
    seed: int,
    cv_groups: np.ndarray | None = None,
) -> ForceWeightSearch:
    """K-fold choice of the force weight and the regulariser together.

    Parameters
    ----------
    energy_phi : ndarray (n_structures, n_columns)
    energy_y : ndarray (n_structures,), eV
    baseline : ndarray (n_structures, n_types) or None
        Unpenalised per-species columns of the energy rows (zeros on force rows).
    force_phi : ndarray (n_force, n_columns), force_y : ndarray (n_force,)
        Unweighted force rows and their targets (eV/Å).
    force_owner : ndarray (n_force,)
        The structure of every force row.
    alphas, weights : sequences of float
    cv_groups : ndarray (n_structures,), optional
        Labels kept together in one fold.

    Every (weight, alpha) pair sees the same folds; one SVD per weight and fold serves the
    whole alpha grid.
    """
    alphas = np.atleast_1d(np.asarray(alphas, dtype=float))
    weights = np.atleast_1d(np.asarray(weights, dtype=float))
    n = len(energy_y)
    labels = np.arange(n) if cv_groups is None else np.asarray(cv_groups)
    row_labels = np.concatenate([labels, labels[force_owner]])
    kinds = np.concatenate([np.zeros(n, np.int64), np.ones(len(force_y), np.int64)])
    stacked_baseline = None
    if baseline is not None:
        stacked_baseline = np.vstack([baseline, np.zeros((len(force_y), baseline.shape[1]))])
    energy_rmse = np.zeros((len(weights), len(alphas)))
    force_rmse = np.zeros_like(energy_rmse)
    for w, weight in enumerate(weights):
        scale = np.concatenate([np.ones(n), np.full(len(force_y), weight)])
        errors = _fold_residuals(
            np.vstack([energy_phi, weight * force_phi]),
            np.concatenate([energy_y, weight * force_y]),
            stacked_baseline,
            alphas,
            n_splits,
            seed,
            1,
            row_labels,
            kinds,
            scale,
        )
        energy_rmse[w] = np.sqrt(errors[:, 0] / n)
        force_rmse[w] = np.sqrt(errors[:, 1] / max(len(force_y), 1))
    if baseline is None:
        energy_spread = float(np.std(energy_y))
    else:
        coefficients, *_ = np.linalg.lstsq(baseline, energy_y, rcond=None)
        energy_spread = float(np.sqrt(np.mean((energy_y - baseline @ coefficients) ** 2)))
    force_spread = float(np.sqrt(np.mean(force_y**2)))
    score = energy_rmse / max(energy_spread, 1e-300) + force_rmse / max(force_spread, 1e-300)
    best = np.unravel_index(int(np.argmin(score)), score.shape)
    return ForceWeightSearch(
        float(alphas[best[1]]),
        float(weights[best[0]]),
        alphas,
        weights,
        energy_rmse,
        force_rmse,
        score,
    )


@dataclass(frozen=True)
class EnergyForceDesign:
    """The stacked regression of a fit on energies and forces, and how its hyperparameters
    were chosen: ``phi``, ``y``, ``baseline`` (energy rows, then force rows weighted by
    ``force_weight``), ``search`` (the chosen alpha and the K-fold RMSE per alpha: of the
    stacked rows for one given weight, of the energies for a searched weight), and for a
    searched weight the :class:`ForceWeightSearch` (else None)."""

    phi: np.ndarray
    y: np.ndarray
    baseline: np.ndarray | None
    search: AlphaSearch
    force_weight: float
    weight_search: ForceWeightSearch | None


def check_force_weight(force_weight) -> np.ndarray:
    """``force_weight`` as a non-empty array of positive finite numbers."""
    from ..errors import InputError

    try:
        weights = np.atleast_1d(np.asarray(force_weight, dtype=float))
    except (TypeError, ValueError):
        weights = np.zeros(0)
    if weights.ndim != 1 or len(weights) == 0 or not np.all(np.isfinite(weights) & (weights > 0)):
        raise InputError(
            f"`force_weight` is {force_weight!r} but must be a positive number or a non-empty "
            "sequence of them"
        )
    return weights


def energy_force_design(
    phi, y, baseline, cv_groups, owners, rows, targets, alpha, force_weight, n_splits, seed
) -> EnergyForceDesign:
    """Stack energy rows and force rows, choosing alpha (and the force weight when several
    are given) by K-fold cross-validation over whole structures.

    ``rows[k]`` (n_k, n_columns) and ``targets[k]`` (n_k,) are the unweighted force rows of
    structure ``owners[k]``.
    """
    from ._common import stack_force_rows

    weights = check_force_weight(force_weight)
    weight_search = None
    if np.ndim(force_weight) == 0:
        weight = float(weights[0])
    else:
        owner_of_row = np.concatenate(
            [np.full(len(t), a) for a, t in zip(owners, targets, strict=True)]
        )
        alphas = alpha if np.ndim(alpha) else [alpha]
        weight_search = search_force_weight(
            phi,
            y,
            baseline,
            np.vstack(rows),
            np.concatenate(targets),
            owner_of_row,
            alphas,
            weights,
            n_splits,
            seed,
            cv_groups,
        )
        weight = weight_search.force_weight
    stacked = stack_force_rows(
        phi,
        y,
        baseline,
        cv_groups,
        owners,
        [weight * r for r in rows],
        [weight * t for t in targets],
    )
    phi, y, baseline, row_groups = stacked
    if weight_search is None:
        search = search_alpha(phi, y, baseline, alpha, n_splits, seed, cv_groups=row_groups)
    else:
        at = int(np.flatnonzero(weight_search.force_weights == weight)[0])
        search = AlphaSearch(
            weight_search.alpha, weight_search.alphas, weight_search.energy_rmse[at]
        )
    return EnergyForceDesign(phi, y, baseline, search, weight, weight_search)


#: The fitted attributes :func:`set_force_record` sets.
FORCE_RECORD = ("force_weight_", "cv_force_weights_", "cv_energy_rmse_", "cv_force_rmse_")


def set_force_record(model, design: EnergyForceDesign | None) -> None:
    """Record on ``model`` the force weight used (0.0: fitted on energies only) and, when
    several were searched, the K-fold energy and force RMSE of every (weight, alpha) pair."""
    search = None if design is None else design.weight_search
    model.force_weight_ = 0.0 if design is None else float(design.force_weight)
    model.cv_force_weights_ = np.zeros(0) if search is None else search.force_weights
    model.cv_energy_rmse_ = np.zeros((0, 0)) if search is None else search.energy_rmse
    model.cv_force_rmse_ = np.zeros((0, 0)) if search is None else search.force_rmse


def fit_structure_regression(model, phi, y, baseline, cv_groups, force_rows, force_weight):
    """The last steps of a structure model's ``fit``, shared by the linear and kernel models:
    choose alpha (and the force weight) by K-fold CV, record the search on ``model``
    (``alpha_``, ``cv_alphas_``, ``cv_rmse_``, :data:`FORCE_RECORD`, ``baseline_``) and
    return the fitted weights of the columns of ``phi``.

    ``force_rows``: None (energies only) or (owners, rows, targets), the unweighted force
    rows of :func:`energy_force_design`. ``model`` supplies ``alpha``, ``cv``,
    ``random_state``, ``baselines`` and ``types_``.
    """
    design = None
    if force_rows is None:
        search = search_alpha(
            phi, y, baseline, model.alpha, model.cv, model.random_state, cv_groups=cv_groups
        )
    else:
        design = energy_force_design(
            phi, y, baseline, cv_groups, *force_rows, model.alpha, force_weight, model.cv,
            model.random_state,
        )  # fmt: skip
        phi, y, baseline, search = design.phi, design.y, design.baseline, design.search
    set_force_record(model, design)
    model.alpha_, model.cv_alphas_, model.cv_rmse_ = search.alpha, search.alphas, search.rmse
    weights, model.baseline_ = fit_ridge(phi, y, model.alpha_, baseline)
    if not model.baselines:
        model.baseline_ = np.zeros(len(model.types_))
    return weights
