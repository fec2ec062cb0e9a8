"""Ridge regression in an explicit feature map, with K-fold choice of the regulariser."""

from __future__ import annotations

import numpy as np

from ._common import kfold_indices

__all__ = ["fit_ridge", "select_alpha"]


def fit_ridge(
    phi: np.ndarray, target: np.ndarray, alpha: float, free: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """argmin_{w, b} |phi w + free b - target|^2 + alpha |w|^2 (b unpenalised).

    Solved by projecting the columns of ``free`` out of phi and target, then SVD ridge
    (stable for rank-deficient phi), then least squares for b. Returns (w, b).
    """
    if free is None:
        free = np.zeros((len(phi), 0))
    q, _ = np.linalg.qr(free) if free.shape[1] else (free, None)
    phi_p = phi - q @ (q.T @ phi)
    target_p = target - q @ (q.T @ target)
    u, s, vt = np.linalg.svd(phi_p, full_matrices=False)
    w = vt.T @ (s / (s * s + alpha) * (u.T @ target_p))
    b = np.zeros(free.shape[1])
    if free.shape[1]:
        b, *_ = np.linalg.lstsq(free, target - phi @ w, rcond=None)
    return w, b


def select_alpha(
    phi: np.ndarray,
    target: np.ndarray,
    baseline: np.ndarray | None,
    alphas,
    n_splits: int,
    seed: int,
    rows_per_structure: int = 1,
) -> float:
    """The alpha of ``alphas`` with the lowest K-fold RMSE over structures.

    ``baseline`` (structures x types) is refitted inside each fold when given. Rows of phi
    come in consecutive runs of ``rows_per_structure`` per structure.
    """
    alphas = np.atleast_1d(np.asarray(alphas, dtype=float))
    if len(alphas) == 1:
        return float(alphas[0])
    n_structures = phi.shape[0] // rows_per_structure
    n_splits = max(2, min(n_splits, n_structures))
    errors = np.zeros(len(alphas))
    for train, test in kfold_indices(n_structures, n_splits, seed):
        rows_tr = (train[:, None] * rows_per_structure + np.arange(rows_per_structure)).ravel()
        rows_te = (test[:, None] * rows_per_structure + np.arange(rows_per_structure)).ravel()
        free_tr = None if baseline is None else baseline[train]
        for k, alpha in enumerate(alphas):
            w, b = fit_ridge(phi[rows_tr], target[rows_tr], alpha, free_tr)
            prediction = phi[rows_te] @ w
            if baseline is not None:
                prediction += baseline[test] @ b
            errors[k] += np.sum((prediction - target[rows_te]) ** 2)
    return float(alphas[int(np.argmin(errors))])
