"""Sparse symmetry-adapted kernel regression (non-linear SA-GPR) of lambda-equivariant targets."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ..errors import InputError
from ._common import (
    StructureScoreMixin,
    aggregation_matrix,
    as_groups,
    check_alpha,
    check_reduce,
    equivariant_target,
    farthest_points,
    row_blocks,
)
from ._ridge import fit_ridge, select_alpha
from .kernels import equivariant_kernel, normalize_equivariant, normalize_rows

__all__ = ["EquivariantKernelRidge"]


class EquivariantKernelRidge(StructureScoreMixin, RegressorMixin, BaseEstimator):
    """Sparse symmetry-adapted kernel ridge regression of lambda-equivariant structure targets.

    y_A,mu = sum_{i in A} sum_{m, nu} k^lambda_{mu nu}(i, m) w_{m nu}, with the kernel

        k^lambda_{mu nu}(i, m) = (t̂_i t̂_m^T)_{mu nu} (x̂_i · x̂_m)^(zeta - 1)

    of :func:`lodekit.models.kernels.equivariant_kernel`: the linear lambda-kernel of the
    normalised lambda-features t̂ times a power of the invariant kernel of the same
    environments (the non-linear SA-GPR of Grisafi et al., Phys. Rev. Lett. 120, 036002,
    2018). Predictions rotate exactly like the lambda-features. The m run over ``n_sparse``
    environments chosen by farthest-point sampling on the invariants; the weights minimise
    |K_NM w - y|^2 + alpha w^T K_MM w (subset of regressors), solved as ridge regression in the
    Nyström features K_NM K_MM^(-1/2), with (2 lambda + 1) rows per structure. With zeta = 1 and
    every environment a sparse point this is exactly :class:`EquivariantRidge`'s model.

    Parameters
    ----------
    o3_lambda : int
        Angular order of the target and of the lambda-features.
    n_invariant_features : int
        Columns of X that hold the invariant (lambda = 0) features; the rest is the lambda block.
    zeta : int
        Exponent; integer >= 1 so that the kernel stays positive semi-definite for features
        whose inner products can be negative.
    alpha : float or sequence of float
        Regulariser; a sequence is searched by K-fold cross-validation over structures.
    n_sparse : int or None
        Number of sparse environments (FPS, skmatter); None for all.
    reduce : {"sum", "mean"}
        Sum (extensive) or mean (intensive) over the environments of a structure.
    cv, random_state : int
        Folds and seed of the alpha search.

    Attributes
    ----------
    sparse_invariants_ : ndarray (n_sparse, n_invariant_features)
    sparse_lambda_ : ndarray (n_sparse, 2 lambda + 1, q)
        Normalised features of the sparse environments.
    sparse_index_ : ndarray of int
        Rows of the training X that were selected.
    weights_ : ndarray (n_sparse (2 lambda + 1),)
    alpha_ : float

    Notes
    -----
    X is (n_env, n_invariant_features + (2 lambda + 1) q): the invariants, then the lambda
    block flattened with the mu index slowest (``values.reshape(n, -1)`` of
    :class:`lodekit.features.Features`). y is (n_structures, 2 lambda + 1), or (n_structures,)
    for lambda = 0. Memory: K_MM is (n_sparse (2 lambda + 1))^2 and K_NM (n_structures
    (2 lambda + 1)) x (n_sparse (2 lambda + 1)) floats; environment rows are formed in blocks
    of at most 2^24 kernel entries. No constant is fitted (it would break equivariance).
    """

    #: Everything ``fit`` learns (read and written by model files: nothing else is set)
    _fitted_attributes = (
        "n_features_in_",
        "sparse_index_",
        "sparse_invariants_",
        "sparse_lambda_",
        "alpha_",
        "weights_",
    )

    def __init__(
        self,
        *,
        o3_lambda=2,
        n_invariant_features=1,
        zeta=2,
        alpha=1e-8,
        n_sparse=None,
        reduce="sum",
        cv=5,
        random_state=0,
    ):
        self.o3_lambda = o3_lambda
        self.n_invariant_features = n_invariant_features
        self.zeta = zeta
        self.alpha = alpha
        self.n_sparse = n_sparse
        self.reduce = reduce
        self.cv = cv
        self.random_state = random_state

    def _check_params(self):
        if int(self.o3_lambda) != self.o3_lambda or self.o3_lambda < 0:
            raise InputError(f"`o3_lambda` is {self.o3_lambda} but must be an integer >= 0")
        if int(self.zeta) != self.zeta or self.zeta < 1:
            raise InputError(f"`zeta` is {self.zeta} but must be an integer >= 1")
        check_reduce(self.reduce)
        if self.n_sparse is not None and (int(self.n_sparse) != self.n_sparse or self.n_sparse < 1):
            raise InputError(f"`n_sparse` is {self.n_sparse} but must be a positive integer")
        check_alpha(self.alpha)

    def _split(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised invariants (n, p) and the raw lambda-features (n, 2 lambda + 1, q), a
        view of X: they are normalised block by block where the kernel needs them, as a
        normalised copy of all of them would be the largest array of a fit (2.2 GB for the
        800 training frames of the water experiment)."""
        width = 2 * int(self.o3_lambda) + 1
        p = int(self.n_invariant_features)
        if not 0 < p < X.shape[1] or (X.shape[1] - p) % width:
            raise InputError(
                f"`n_invariant_features` is {self.n_invariant_features} but X has "
                f"n_features = {X.shape[1]}: the columns after the invariants must be a "
                f"non-empty multiple of 2 lambda + 1 = {width}"
            )
        invariants = normalize_rows(X[:, :p], [slice(0, p)])
        return invariants, X[:, p:].reshape(len(X), width, -1)

    def _kernel_rows(self, invariants, lam, groups, n_structures) -> np.ndarray:
        """(n_structures (2 lambda + 1), n_sparse (2 lambda + 1)): sum (or mean) over the
        environments of each structure of k^lambda(i, m), rows (A, mu), columns (m, nu).
        ``lam`` holds the raw lambda-features; each block is normalised as it is used."""
        width = lam.shape[1]
        n_sparse = len(self.sparse_lambda_)
        out = np.zeros((n_structures, width * n_sparse * width))
        g = aggregation_matrix(groups, n_structures, self.reduce)
        for rows in row_blocks(len(lam), width * n_sparse * width):
            k = equivariant_kernel(
                normalize_equivariant(lam[rows]),
                invariants[rows],
                self.sparse_lambda_,
                self.sparse_invariants_,
                int(self.zeta),
            )
            out += g[:, rows] @ k.reshape(len(k), -1)
        return out.reshape(n_structures * width, n_sparse * width)

    def fit(self, X, y, groups=None, cv_groups=None):
        """Fit on environments X and structure targets y (see Notes of the class).

        ``groups`` gives the structure of every environment (default: one environment per
        structure); ``cv_groups`` (one label per structure) keeps related structures in the
        same fold of the alpha search.
        """
        self._check_params()
        X = validate_data(self, X, dtype=np.float64)
        y = equivariant_target(y, self.o3_lambda)
        width = y.shape[1]
        groups, n_structures = as_groups(groups, X.shape[0])
        if n_structures != len(y):
            raise InputError(f"`groups` names {n_structures} structures but `y` has {len(y)}")
        invariants, lam = self._split(X)

        self.sparse_index_ = farthest_points(invariants, self.n_sparse)
        self.sparse_invariants_ = invariants[self.sparse_index_]
        self.sparse_lambda_ = normalize_equivariant(lam[self.sparse_index_])

        n_sparse = len(self.sparse_index_)
        k_mm = equivariant_kernel(
            self.sparse_lambda_,
            self.sparse_invariants_,
            self.sparse_lambda_,
            self.sparse_invariants_,
            int(self.zeta),
        ).reshape(n_sparse * width, n_sparse * width)
        eigval, eigvec = np.linalg.eigh(k_mm)
        keep = eigval > 1e-12 * max(eigval.max(), 1e-300)
        # Nyström map: K_NM w with w = U L^-1/2 v, and w^T K_MM w = |v|^2
        projector = eigvec[:, keep] / np.sqrt(eigval[keep])
        phi = self._kernel_rows(invariants, lam, groups, n_structures) @ projector
        target = y.reshape(-1)
        self.alpha_ = select_alpha(
            phi,
            target,
            None,
            self.alpha,
            self.cv,
            self.random_state,
            rows_per_structure=width,
            cv_groups=cv_groups,
        )
        weights, _ = fit_ridge(phi, target, self.alpha_)
        self.weights_ = projector @ weights
        return self

    def predict(self, X, groups=None):
        """(n_structures, 2 lambda + 1) predictions ((n_structures,) for lambda = 0)."""
        check_is_fitted(self, "weights_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        groups, n_structures = as_groups(groups, X.shape[0])
        invariants, lam = self._split(X)
        width = lam.shape[1]
        prediction = self._kernel_rows(invariants, lam, groups, n_structures) @ self.weights_
        prediction = prediction.reshape(n_structures, width)
        return prediction[:, 0] if width == 1 else prediction

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # no intercept (it would break equivariance) and normalised inputs
        tags.regressor_tags.poor_score = True
        return tags
