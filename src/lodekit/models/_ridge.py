"""Ridge regression in an explicit feature map, with K-fold choice of the regulariser."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import kfold_indices

__all__ = ["AlphaSearch", "fit_ridge", "search_alpha", "select_alpha"]


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
    n_structures = phi.shape[0] // rows_per_structure
    n_splits = max(2, min(n_splits, n_structures))
    errors = np.zeros(len(alphas))
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
            errors[k] += np.sum((prediction - target[rows_te]) ** 2)
    return errors
