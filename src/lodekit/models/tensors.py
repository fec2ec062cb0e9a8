"""Symmetry-adapted regression of tensors (lambda-equivariant linear kernels).

A symmetric 3x3 tensor T is its lambda = 0 part (the trace) plus its lambda = 2 part (5
components), T = t_0 Q_0 + sum_m t_m Q_m with orthonormal symmetric matrices Q: Q_0 = I/sqrt(3)
and Q_m (m = -2..2) the traceless quadratic forms of the real spherical harmonics,
Y_2m(r̂) ∝ r̂^T Q_m r̂, derived here from the harmonics themselves so that the lambda = 2
components rotate with the same Wigner-D matrices as the features.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import (
    check_is_fitted,
    validate_data,
)

from ..basis.spherical_harmonics import real_spherical_harmonics
from ..errors import InputError
from ._common import (
    StructureScoreMixin,
    aggregation_matrix,
    as_groups,
    check_alpha,
    check_reduce,
    check_target,
    equivariant_target,
    row_blocks,
)
from ._ridge import fit_ridge, select_alpha
from .kernel_ridge import AdditiveKernelRidge
from .kernels import normalize_equivariant

__all__ = [
    "EquivariantRidge",
    "SymmetricTensorRegression",
    "cartesian_to_spherical",
    "spherical_to_cartesian",
]


@lru_cache(maxsize=1)
def _quadratic_forms() -> np.ndarray:
    """Q (6, 3, 3): Q[0] = I/sqrt 3, Q[1 + m + 2] the lambda = 2 basis, Frobenius-orthonormal."""
    rng = np.random.default_rng(11)
    r = rng.normal(size=(60, 3))
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    y2 = real_spherical_harmonics(r, 2)[:, 4:9]
    index = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]
    monomials = np.stack([r[:, a] * r[:, b] for a, b in index], axis=1)
    coefficients, *_ = np.linalg.lstsq(monomials, y2, rcond=None)
    forms = np.zeros((6, 3, 3))
    forms[0] = np.eye(3) / np.sqrt(3)
    for m in range(5):
        q = np.zeros((3, 3))
        for (a, b), c in zip(index, coefficients[:, m], strict=True):
            if a == b:
                q[a, a] += c
            else:
                q[a, b] += c / 2
                q[b, a] += c / 2
        q -= np.trace(q) / 3 * np.eye(3)  # x^2 + y^2 + z^2 = 1 on the sphere
        forms[1 + m] = q / np.linalg.norm(q)
    return forms


def cartesian_to_spherical(tensors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3, 3) symmetric tensors -> lambda = 0 part (n,) and lambda = 2 part (n, 5)."""
    tensors = np.asarray(tensors, dtype=np.float64)
    if tensors.ndim != 3 or tensors.shape[1:] != (3, 3):
        raise InputError(f"`tensors` has shape {tensors.shape}; expected (n, 3, 3)")
    coefficients = np.einsum("kab,nab->nk", _quadratic_forms(), tensors)
    return coefficients[:, 0], coefficients[:, 1:]


def spherical_to_cartesian(scalar: np.ndarray, lambda2: np.ndarray) -> np.ndarray:
    """Inverse of :func:`cartesian_to_spherical`: (n,), (n, 5) -> (n, 3, 3)."""
    coefficients = np.column_stack([np.asarray(scalar), np.asarray(lambda2)])
    return np.einsum("nk,kab->nab", coefficients, _quadratic_forms())


class EquivariantRidge(StructureScoreMixin, RegressorMixin, BaseEstimator):
    """Linear lambda-kernel regression of lambda-equivariant structure targets.

    y_A,mu = sum_{i in A} sum_q T_i,mu q w_q: the model of the linear symmetry-adapted kernel
    k^lambda_{mu nu}(i, j) = sum_q T_i,mu q T_j,nu q, solved in its primal (feature) form. The
    same w for every mu makes predictions rotate exactly like the features.

    Parameters
    ----------
    o3_lambda : int
    alpha : float or sequence of float
    normalize : bool
        Divide every environment's features by sqrt of the Frobenius norm of their
        (2 lambda + 1)^2 self-product (rotation invariant).
    reduce : {"sum", "mean"}
    cv, random_state : int

    Notes
    -----
    X is (n_env, (2 lambda + 1) n_features) with the mu index slowest (``values.reshape(n, -1)``
    of :class:`lodekit.features.Features`); y is (n_structures, 2 lambda + 1).
    """

    #: Everything ``fit`` learns (read and written by model files: nothing else is set)
    _fitted_attributes = ("n_features_in_", "alpha_", "coef_")

    def __init__(
        self, *, o3_lambda=2, alpha=1e-8, normalize=True, reduce="sum", cv=5, random_state=0
    ):
        self.o3_lambda = o3_lambda
        self.alpha = alpha
        self.normalize = normalize
        self.reduce = reduce
        self.cv = cv
        self.random_state = random_state

    def _design(self, X, groups):
        width = 2 * self.o3_lambda + 1
        if X.shape[1] % width:
            raise InputError(
                f"`X` has {X.shape[1]} columns, not a multiple of 2 lambda + 1 = {width}"
            )
        t = X.reshape(X.shape[0], width, -1)
        groups, n_structures = as_groups(groups, X.shape[0])
        g = aggregation_matrix(groups, n_structures, self.reduce)
        design = np.zeros((n_structures, X.shape[1]))
        # normalised block by block: a normalised copy of X would be the largest array of a
        # fit (2.2 GB for the 800 training frames of the water experiment)
        for rows in row_blocks(len(t), X.shape[1]):
            block = normalize_equivariant(t[rows]) if self.normalize else t[rows]
            design += g[:, rows] @ block.reshape(len(block), -1)
        return design.reshape(n_structures, *t.shape[1:])  # (s, mu, q)

    def fit(self, X, y, groups=None):
        check_reduce(self.reduce)
        check_alpha(self.alpha)
        X = validate_data(self, X, dtype=np.float64)
        y = equivariant_target(y, self.o3_lambda)
        width = y.shape[1]
        design = self._design(X, groups)
        if len(design) != len(y):
            raise InputError(f"`groups` names {len(design)} structures but `y` has {len(y)}")
        phi = design.reshape(-1, design.shape[2])
        target = y.reshape(-1)
        self.alpha_ = select_alpha(
            phi, target, None, self.alpha, self.cv, self.random_state, rows_per_structure=width
        )
        self.coef_, _ = fit_ridge(phi, target, self.alpha_)
        return self

    def predict(self, X, groups=None):
        """(n_structures, 2 lambda + 1) predictions ((n_structures,) for lambda = 0)."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        prediction = self._design(X, groups) @ self.coef_
        return prediction[:, 0] if self.o3_lambda == 0 else prediction

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # no intercept (it would break equivariance) and normalised inputs: generic data
        # cannot be expected to score well
        tags.regressor_tags.poor_score = True
        return tags


class SymmetricTensorRegression(StructureScoreMixin, RegressorMixin, BaseEstimator):
    """A symmetric 3x3 tensor per structure from lambda = 0 and lambda = 2 features.

    The trace part is learned by :class:`AdditiveKernelRidge` on the invariant features, the
    lambda = 2 part by :class:`EquivariantRidge`; predictions are Cartesian tensors.

    Parameters
    ----------
    n_scalar_features : int
        X = [invariant features (n_scalar_features columns) | lambda = 2 features flattened
        (5 x n columns, mu slowest)].
    zeta, alpha, n_sparse : as in AdditiveKernelRidge (for the trace)
    alpha_lambda2 : float or sequence of float
        Regulariser of the lambda = 2 model.
    reduce : {"sum", "mean"}

    Attributes
    ----------
    scalar_model_ : AdditiveKernelRidge
    tensor_model_ : EquivariantRidge
    """

    #: Everything ``fit`` learns (read and written by model files: nothing else is set)
    _fitted_attributes = ("n_features_in_", "scalar_model_", "tensor_model_")

    def __init__(
        self,
        *,
        n_scalar_features=1,
        zeta=2.0,
        alpha=1e-8,
        n_sparse=None,
        alpha_lambda2=1e-8,
        reduce="mean",
    ):
        self.n_scalar_features = n_scalar_features
        self.zeta = zeta
        self.alpha = alpha
        self.n_sparse = n_sparse
        self.alpha_lambda2 = alpha_lambda2
        self.reduce = reduce

    def _split(self, X):
        n0 = int(self.n_scalar_features)
        if not 0 < n0 < X.shape[1]:
            raise InputError(
                f"`n_scalar_features` is {self.n_scalar_features} but X has {X.shape[1]} "
                "columns: it must leave room for the lambda = 2 block"
            )
        return X[:, :n0], X[:, n0:]

    def fit(self, X, y, groups=None):
        check_target(y)
        X = validate_data(self, X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        scalar, lambda2 = cartesian_to_spherical(y)
        x0, x2 = self._split(X)
        self.scalar_model_ = AdditiveKernelRidge(
            zeta=self.zeta,
            alpha=self.alpha,
            n_sparse=self.n_sparse,
            reduce=self.reduce,
            baselines=True,
        ).fit(x0, scalar, groups=groups)
        self.tensor_model_ = EquivariantRidge(
            o3_lambda=2, alpha=self.alpha_lambda2, reduce=self.reduce
        ).fit(x2, lambda2, groups=groups)
        return self

    def predict(self, X, groups=None):
        """(n_structures, 3, 3) Cartesian tensors."""
        check_is_fitted(self, "tensor_model_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        x0, x2 = self._split(X)
        scalar = self.scalar_model_.predict(x0, groups=groups)
        return spherical_to_cartesian(scalar, self.tensor_model_.predict(x2, groups=groups))
