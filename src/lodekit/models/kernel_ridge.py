"""Sparse, structure-additive kernel ridge regression (the paper's energy models)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import scipy.sparse
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import (
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ..errors import InputError
from ._common import (
    StructureScoreMixin,
    aggregation_matrix,
    as_groups,
    check_alpha,
    check_force_inputs,
    check_reduce,
    check_target,
    column_scaling,
    composition,
    farthest_points,
    force_entries,
    weigh_structures,
)
from ._ridge import FORCE_RECORD, fit_structure_regression
from .jacobians import SparseJacobian
from .kernels import normalize_rows, polynomial_kernel

__all__ = ["AdditiveKernelRidge"]

#: Environments per block when forming kernel rows: bounds memory to block x n_sparse.
_ROW_BLOCK = 4096


class AdditiveKernelRidge(StructureScoreMixin, RegressorMixin, BaseEstimator):
    """Kernel ridge regression of structure properties written as sums over environments.

    y_A = sum_{i in A} sum_m k(x_i, x_m) w_m + sum_{i in A} b_{species(i)}

    (or the mean over i with ``reduce="mean"``) with k(x, y) = (sum_b w_b x̂_b · ŷ_b)^zeta on
    per-block normalised features x̂ (e.g. (k_SOAP + k_LODE)^zeta of Grisafi & Ceriotti 2019).
    The m run over ``n_sparse`` environments chosen by farthest-point sampling (all of them
    by default); the weights minimise |K_NM w - y|^2 + alpha w^T K_MM w (subset of
    regressors), solved as ridge regression in the Nyström features K_NM K_MM^(-1/2).

    Memory: the fit builds K_MM (n_sparse^2) and K_NM (n_structures x n_sparse), forming
    kernel rows in blocks of 4096 environments; it never forms an environment x environment
    matrix. With n_sparse = None every environment is a sparse point: only for small sets.

    Parameters
    ----------
    zeta : float
        Exponent of the polynomial kernel.
    alpha : float or sequence of float
        Regulariser; a sequence (even of one value) is searched by K-fold cross-validation
        over structures, which also gives ``cv_rmse_``.
    n_sparse : int or None
        Number of sparse environments (farthest-point sampling, skmatter); None for all.
    reduce : {"sum", "mean"}
        Sum (extensive targets, e.g. energies) or mean over the environments of a structure.
    feature_blocks : sequence of int or None
        Column counts of consecutive feature blocks (e.g. [n_soap, n_lode]); each block is
        normalised on its own and enters the kernel with its weight.
    block_weights : sequence of float or None
        Weights of the blocks (default 1 each).
    linear_blocks : sequence of int or None
        Blocks that enter linearly and unnormalised, outside the power: k = (sum of the other
        blocks)^zeta + sum of the linear blocks (e.g. SOAP^zeta + a linear LODE nu = 1 term).
    normalize : bool
        Normalise the features of every environment (per block) before the kernel.
    standardize_linear : bool
        Centre and scale every column of the linear blocks to zero mean and unit variance over
        the training environments (kept in ``feature_mean_`` and ``feature_scale_``), so that
        one ridge penalty treats all columns alike. Other blocks are untouched.
    baselines : bool
        Fit one constant per species (per environment) before the kernel model.
    cv : int
        Folds of the alpha search.
    random_state : int
        Seed of the fold split.

    Attributes
    ----------
    sparse_points_ : ndarray (n_sparse, n_features)
        Normalised features of the sparse environments.
    sparse_index_ : ndarray of int
        Rows of the training X that were selected.
    weights_ : ndarray (n_sparse,)
    baseline_ : ndarray (n_types,)
        Per-species constants (zeros when ``baselines`` is False).
    types_ : ndarray of int
        Species seen in fit.
    alpha_ : float
        The regulariser used.
    cv_alphas_, cv_rmse_ : ndarray (n_alphas,)
        The regulariser candidates searched and the K-fold RMSE of each over the held-out rows
        (units of y; with forces, energy and weighted force rows together); empty when
        ``alpha`` is one number (no search).
    force_weight_ : float
        The force weight used (0.0: fitted on energies only).
    cv_force_weights_ : ndarray (n_weights,), cv_energy_rmse_, cv_force_rmse_ : ndarray
        (n_weights, n_alphas)
        With several force weights: the candidates and the K-fold energy (eV) and force
        (eV/Å, unweighted) RMSE of every (weight, alpha) pair; empty otherwise.
    n_features_in_ : int
    """

    #: Everything ``fit`` learns (read and written by model files: nothing else is set)
    _fitted_attributes = (
        "n_features_in_",
        "types_",
        "feature_mean_",
        "feature_scale_",
        "sparse_index_",
        "sparse_points_",
        "alpha_",
        "cv_alphas_",
        "cv_rmse_",
        "baseline_",
        "weights_",
        *FORCE_RECORD,
    )
    #: Added after model files existed: older files load them empty (no cross-validation record)
    _fitted_later = ("cv_alphas_", "cv_rmse_", *FORCE_RECORD)

    def __init__(
        self,
        *,
        zeta=2.0,
        alpha=1e-6,
        n_sparse=None,
        reduce="sum",
        feature_blocks=None,
        block_weights=None,
        linear_blocks=None,
        normalize=True,
        standardize_linear=False,
        baselines=True,
        cv=5,
        random_state=0,
    ):
        self.zeta = zeta
        self.alpha = alpha
        self.n_sparse = n_sparse
        self.reduce = reduce
        self.feature_blocks = feature_blocks
        self.block_weights = block_weights
        self.linear_blocks = linear_blocks
        self.normalize = normalize
        self.standardize_linear = standardize_linear
        self.baselines = baselines
        self.cv = cv
        self.random_state = random_state

    # -------------------------------------------------------------------------------------
    def _blocks(self, n_features: int) -> tuple[list[slice], np.ndarray]:
        sizes = [n_features] if self.feature_blocks is None else list(self.feature_blocks)
        if sum(sizes) != n_features or any(int(s) <= 0 for s in sizes):
            raise InputError(
                f"`feature_blocks` is {self.feature_blocks}: block sizes must be positive and "
                f"add up to the {n_features} columns of X"
            )
        edges = np.concatenate([[0], np.cumsum(sizes)])
        blocks = [slice(int(a), int(b)) for a, b in pairwise(edges)]
        weights = np.ones(len(blocks)) if self.block_weights is None else self.block_weights
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (len(blocks),):
            raise InputError(
                f"`block_weights` has {weights.size} entries for {len(blocks)} feature blocks"
            )
        return blocks, weights

    def _check_params(self):
        check_reduce(self.reduce)
        if not np.isfinite(self.zeta) or self.zeta <= 0:
            raise InputError(f"`zeta` is {self.zeta} but must be positive")
        check_alpha(self.alpha)

    def _linear(self) -> frozenset:
        linear = frozenset(int(b) for b in (self.linear_blocks or ()))
        if any(not 0 <= b < len(self._blocks_) for b in linear):
            raise InputError(
                f"`linear_blocks` is {self.linear_blocks} but there are {len(self._blocks_)} "
                "feature blocks"
            )
        return linear

    def _prepared(self, x: np.ndarray) -> np.ndarray:
        mean = getattr(self, "feature_mean_", None)
        if mean is not None and (np.any(mean != 0) or np.any(self.feature_scale_ != 1)):
            x = (x - mean) / self.feature_scale_
        if not self.normalize:
            return x
        return normalize_rows(x, self._blocks_, skip=self._linear())

    def _kernel_rows(self, xn: np.ndarray, groups: np.ndarray, n_structures: int) -> np.ndarray:
        """sum (or mean) over environments of k(x_i, x_m): (n_structures, n_sparse)."""
        out = np.zeros((n_structures, len(self.sparse_points_)))
        g = aggregation_matrix(groups, n_structures, self.reduce)
        for start in range(0, len(xn), _ROW_BLOCK):
            rows = slice(start, start + _ROW_BLOCK)
            k = polynomial_kernel(
                xn[rows],
                self.sparse_points_,
                self.zeta,
                self._blocks_,
                self._weights_,
                self._linear(),
            )
            out += g[:, rows] @ k
        return out

    def _select_sparse(self, xn: np.ndarray) -> np.ndarray:
        """Pick the sparse environments of the prepared features ``xn`` (farthest-point
        sampling; sets ``sparse_index_`` and ``sparse_points_``) and return the Nyström
        projector of their kernel, shape (n_sparse, n_kept)."""
        self.sparse_index_ = farthest_points(xn, self.n_sparse)
        self.sparse_points_ = xn[self.sparse_index_]
        k_mm = polynomial_kernel(
            self.sparse_points_,
            self.sparse_points_,
            self.zeta,
            self._blocks_,
            self._weights_,
            self._linear(),
        )
        return _nystrom_projector(k_mm)

    # -------------------------------------------------------------------------------------
    def _derivative_rows(self, x: np.ndarray, jacobian: np.ndarray) -> np.ndarray:
        """d/dr of the kernel rows of one structure: (3 n_atoms, n_sparse).

        With y_A = sum_i sum_m k(x_i, x_m) W_m, the force rows are -sum_i dk(x_i, x_m)/dx_i ·
        dx_i/dr (the same chain as :meth:`environment_gradient`, kept per sparse point m).

        Parameters
        ----------
        x : ndarray, shape (n_env, n_features)
            Raw features of the structure's environments.
        jacobian : ndarray, shape (n_env, 3 n_atoms, n_features)
            dx_i/dr of the raw features.
        """
        scale, shifted, prepared, linear, power = self._kernel_slopes(x)
        tangent = jacobian / scale  # d shifted / dr
        sparse = self.sparse_points_
        out = np.zeros((jacobian.shape[1], len(sparse)))
        for index, (block, weight) in enumerate(zip(self._blocks_, self._weights_, strict=True)):
            t = tangent[:, :, block]
            if index in linear:
                out += weight * (t.sum(axis=0) @ sparse[:, block].T)
                continue
            if self.normalize:
                # d x̂ = (1 - x̂ x̂^T) dx / |x|
                unit = prepared[:, block]
                norm = np.linalg.norm(shifted[:, block], axis=1)
                t = t - np.einsum("itf,if->it", t, unit)[:, :, None] * unit[:, None, :]
                t = t / np.where(norm > 0, norm, 1.0)[:, None, None]
            out += weight * _contract_tangents(t, sparse[:, block], power)
        return out

    def _kernel_slopes(self, x: np.ndarray):
        """What both force-row paths need of the environments x (n_env, n_features):
        (column scales, standardised x, prepared x, linear block indices, and
        power[i, m] = zeta k_im^(zeta - 1) of the kernel blocks against the sparse points)."""
        mean = getattr(self, "feature_mean_", np.zeros(x.shape[1]))
        scale = getattr(self, "feature_scale_", np.ones(x.shape[1]))
        shifted = (x - mean) / scale
        prepared = self._prepared(x)
        linear = self._linear()
        sparse = self.sparse_points_
        inner = np.zeros((len(x), len(sparse)))
        for index, (block, weight) in enumerate(zip(self._blocks_, self._weights_, strict=True)):
            if index not in linear:
                inner += weight * (prepared[:, block] @ sparse[:, block].T)
        if self.zeta == 1:
            power = np.ones_like(inner)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                power = np.where(inner != 0, self.zeta * inner ** (self.zeta - 1), 0.0)
        return scale, shifted, prepared, linear, power

    def _sparse_derivative_rows(self, x: np.ndarray, jacobian: SparseJacobian) -> np.ndarray:
        """:meth:`_derivative_rows` from a :class:`SparseJacobian`: (3 n_atoms, n_sparse).

        Per row r = (environment i, atom j), with tangent t = dx_i/dr_j, the row adds
        weight x power[i, m] x (d x̂_i · s_m) to atom j: U = t S^T per chunk of rows (one
        matrix product), the normalisation's projection applied after it,
        d x̂ · s_m = (t · s_m - (t · x̂_i)(x̂_i · s_m)) / |x_i|, then a sparse sum of the rows
        into their atoms. No (environments x atoms) array is formed.
        """
        scale, shifted, prepared, linear, power = self._kernel_slopes(x)
        sparse = self.sparse_points_
        n_sparse = len(sparse)
        # per block: the sparse points over the column scales (t / scale · s = t · s / scale),
        # and for normalised blocks x̂_i / scale, x̂_i · s_m and 1 / |x_i|
        terms = []
        for index, (block, weight) in enumerate(zip(self._blocks_, self._weights_, strict=True)):
            points = sparse[:, block] / scale[block]
            if index in linear or not self.normalize:
                terms.append((block, weight, points, None))
                continue
            unit = prepared[:, block]
            norm = np.linalg.norm(shifted[:, block], axis=1)
            inverse = 1.0 / np.where(norm > 0, norm, 1.0)
            terms.append(
                (block, weight, points, (unit / scale[block], unit @ sparse[:, block].T, inverse))
            )
        keys, values = jacobian.keys, jacobian.values
        out = np.zeros((jacobian.n_atoms, 3 * n_sparse))
        chunk = max(1, _TANGENT_CHUNK_BYTES // (8 * 3 * max(n_sparse, 1)))
        for start in range(0, len(keys), chunk):
            env = keys[start : start + chunk, 0]
            atom = keys[start : start + chunk, 1]
            n = len(env)
            summed = np.zeros((n, 3, n_sparse))
            for index, (block, weight, points, normalised) in enumerate(terms):
                t = values[start : start + chunk, :, block]
                u = (t.reshape(3 * n, -1) @ points.T).reshape(n, 3, n_sparse)
                if index in linear:
                    summed += weight * u
                    continue
                if normalised is not None:
                    unit, overlap, inverse = normalised
                    along = np.matmul(t, unit[env][:, :, None])  # (n, 3, 1): t · x̂_i
                    u -= along * overlap[env][:, None, :]
                    u *= inverse[env][:, None, None]
                summed += weight * (u * power[env][:, None, :])
            by_atom = scipy.sparse.csr_matrix(
                (np.ones(n), (atom, np.arange(n))), shape=(jacobian.n_atoms, n)
            )
            out += by_atom @ summed.reshape(n, 3 * n_sparse)
        return out.reshape(3 * jacobian.n_atoms, n_sparse)

    def _force_rows(self, projector, n_structures, X, groups, forces, jacobians):
        """(owners, rows, targets): the unweighted force rows, in the Nyström features, of
        every structure with forces."""
        check_force_inputs(self.reduce, forces, jacobians, n_structures, 1.0, "feature_jacobians")
        owners, rows, targets = [], [], []
        for a, f, d in force_entries(forces, jacobians):
            members = np.flatnonzero(groups == a)
            if isinstance(d, SparseJacobian):
                shape = (d.n_environments, d.n_atoms, d.n_features)
                expected = (len(members), len(f), X.shape[1])
                if f.ndim != 2 or f.shape[1:] != (3,) or shape != expected:
                    raise InputError(
                        f"structure {a}: `forces` has shape {f.shape} and `feature_jacobians` "
                        f"(environments, atoms, features) {shape}; expected (n_atoms, 3) and "
                        f"{expected}"
                    )
                values = d.values
            else:
                expected = (len(members), len(f), 3, X.shape[1])
                if f.ndim != 2 or f.shape[1:] != (3,) or d.shape != expected:
                    raise InputError(
                        f"structure {a}: `forces` has shape {f.shape} and `feature_jacobians` "
                        f"{d.shape}; expected (n_atoms, 3) and {expected} (environments, atoms, "
                        "xyz, features)"
                    )
                values = d
            if not (np.all(np.isfinite(f)) and np.all(np.isfinite(values))):
                raise InputError(f"structure {a}: `forces` or `feature_jacobians` is not finite")
            if isinstance(d, SparseJacobian):
                derivative = self._sparse_derivative_rows(X[members], d)
            else:
                derivative = self._derivative_rows(
                    X[members], d.reshape(len(members), -1, X.shape[1])
                )
            owners.append(a)
            rows.append(-(derivative @ projector))
            targets.append(f.ravel())
        return owners, rows, targets

    def fit(
        self,
        X,
        y,
        groups=None,
        species=None,
        cv_groups=None,
        *,
        forces=None,
        feature_jacobians=None,
        force_weight=1.0,
        structure_weights=None,
    ):
        """Fit on environments X (n_env, n_features) and structure targets y (n_structures,).

        ``groups`` gives the structure (row of y) of every environment (default: one
        environment per structure); ``species`` the species of every environment (for the
        baselines; default: one species). ``cv_groups`` (one label per structure) keeps
        related structures in the same fold of the alpha search.

        With ``forces`` (``reduce="sum"``), energies and forces are fitted together: the
        force on atom j of structure A is -sum_i sum_m dk(x_i, x_m)/dx_i · dx_i/dr_j W_m,
        linear in the weights, so each force component is one more row of the regression
        (weighted by ``force_weight``, eV/Å rows against eV rows) in the same sparse
        (Nyström) basis. The alpha search holds out whole structures.

        Parameters
        ----------
        forces : sequence of (ndarray (n_atoms_A, 3) or None), optional
            Reference forces (eV/Å) of every structure; None for a structure fitted on its
            energy only.
        feature_jacobians : sequence of ndarray (n_env_A, n_atoms_A, 3, n_features) or of
            SparseJacobian, or callable
            dx_i/dr_j of every environment of every structure with forces, environments in
            the order of their rows in X (e.g. :meth:`lodekit.LodePotential.feature_jacobian`,
            ``sparse=True`` for a :class:`~lodekit.models.SparseJacobian`: its rows are
            contracted one by one, no (environments x atoms) array is formed);
            a function of the structure index computes each when needed (streamed: one in
            memory at a time, its force rows kept as (3 n_atoms, n_sparse)).
        force_weight : float or sequence of float
            Weight of the force rows (eV/Å) against the energy rows (eV). Several: chosen
            together with alpha by K-fold cross-validation over whole structures, the pair
            with the lowest sum of relative held-out errors (energy RMSE over the spread of
            the energies after per-species baselines, plus force RMSE over the RMS force);
            the errors of every pair are kept in ``cv_energy_rmse_`` and ``cv_force_rmse_``.
        structure_weights : array_like (n_structures,), optional
            A weight per structure on its energy row (e.g. 1 / n_atoms: energies per atom,
            so that large structures do not dominate); the K-fold energy errors are then in
            the weighted units.
        """
        self._check_params()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=1)
        y, groups, n_structures = _structure_targets(y, groups, X.shape[0])
        self._blocks_, self._weights_ = self._blocks(X.shape[1])
        self.types_ = np.unique(np.zeros(1, int) if species is None else np.asarray(species))
        counts = _species_counts(species, groups, n_structures, self.types_, self.reduce)

        columns = _standardized_columns(
            self._blocks_, self._linear() if self.standardize_linear else (), X.shape[1]
        )
        self.feature_mean_, self.feature_scale_ = column_scaling(X, columns)
        xn = self._prepared(X)
        projector = self._select_sparse(xn)
        phi = self._kernel_rows(xn, groups, n_structures) @ projector

        baseline = counts if self.baselines else None
        phi, y, baseline = weigh_structures(phi, y, baseline, structure_weights)
        force_rows = None
        if forces is not None or feature_jacobians is not None:
            force_rows = self._force_rows(projector, len(y), X, groups, forces, feature_jacobians)
        weights = fit_structure_regression(
            self, phi, y, baseline, cv_groups, force_rows, force_weight
        )
        self.weights_ = projector @ weights
        return self

    def memory_estimate(
        self,
        n_environments: int,
        n_structures: int,
        n_features: int,
        *,
        n_force_components: int = 0,
        jacobian_entries: int = 0,
    ) -> dict:
        """Largest arrays :meth:`fit` will build, in bytes, before building them.

        Parameters
        ----------
        n_environments, n_structures, n_features : int
        n_force_components : int
            Force rows of a fit with forces: 3 x the atoms of every structure with forces.
        jacobian_entries : int
            Entries of the largest feature Jacobian of one structure (n_env_A x n_atoms_A x 3 x
            n_features). With ``feature_jacobians`` given as a function only one is held at a
            time; a list of them is the caller's memory, on top of this estimate.

        Returns
        -------
        dict
            Bytes: ``normalised_features`` (n_env x n_features), ``k_mm`` (n_sparse^2),
            ``k_nm`` (n_structures x n_sparse), ``kernel_block`` (4096 x n_sparse,
            transient), ``aggregation`` (the sparse per-structure summation matrix, one
            entry per environment); with forces ``regression`` (the energy and force rows in
            the sparse basis, 8 B x rows x n_sparse, times 8: the rows, their stacked copy,
            a fold's copy, its projection and SVD) and ``jacobian`` (6 copies of the largest
            Jacobian: the tangents and their normalised forms); and ``total``. Measured: the
            peak traced by tracemalloc during such fits is 0.45-0.95 of ``total``. No
            environment x environment matrix is ever formed.
        """
        m = n_environments if self.n_sparse is None else min(self.n_sparse, n_environments)
        sizes = {
            "normalised_features": 8 * n_environments * n_features,
            "k_mm": 8 * m * m,
            "k_nm": 8 * n_structures * m,
            "kernel_block": 8 * min(_ROW_BLOCK, n_environments) * m,
            "aggregation": 16 * n_environments,
        }
        if n_force_components:
            sizes["regression"] = 8 * 8 * (n_structures + n_force_components) * m
            sizes["jacobian"] = 6 * 8 * jacobian_entries
        sizes["total"] = sum(sizes.values())
        return sizes

    def _restore(self) -> None:
        """Rebuild the derived block layout after loading fitted arrays from a file."""
        self._blocks_, self._weights_ = self._blocks(self.n_features_in_)

    def predict(self, X, groups=None, species=None):
        """Structure predictions, shape (n_structures,)."""
        check_is_fitted(self, "weights_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        groups, n_structures = as_groups(groups, X.shape[0])
        xn = self._prepared(X)
        prediction = self._kernel_rows(xn, groups, n_structures) @ self.weights_
        counts = _species_counts(species, groups, n_structures, self.types_, self.reduce)
        return prediction + counts @ self.baseline_

    def environment_gradient(self, X, groups=None, species=None):
        """d y_A / d x_i for every environment i (row of X), the input of force models.

        y_A = sum_i sum_m W_m k(x_i, x_m): with the inner product s = sum_b w_b x̂_b · x̂_mb of
        the kernel blocks, d/dx̂_b = sum_m W_m zeta s^(zeta-1) w_b x̂_mb, projected on the
        tangent of the unit sphere and divided by |x_b| when normalised ((1 - x̂ x̂^T)/|x|);
        linear blocks give sum_m W_m w_b x_mb. Standardised columns are divided by their scale.

        Returns
        -------
        ndarray, shape (n_environments, n_features)
        """
        check_is_fitted(self, "weights_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        groups, n_structures = as_groups(groups, X.shape[0])
        mean = getattr(self, "feature_mean_", np.zeros(X.shape[1]))
        scale = getattr(self, "feature_scale_", np.ones(X.shape[1]))
        shifted = (X - mean) / scale
        linear = self._linear()
        prepared = self._prepared(X)
        inner = np.zeros((X.shape[0], len(self.sparse_points_)))
        for index, (block, weight) in enumerate(zip(self._blocks_, self._weights_, strict=True)):
            if index not in linear:
                inner += weight * (prepared[:, block] @ self.sparse_points_[:, block].T)
        with np.errstate(divide="ignore", invalid="ignore"):
            power = np.where(inner != 0, self.zeta * inner ** (self.zeta - 1), 0.0)
        if self.zeta == 1:
            power = np.ones_like(inner)
        coupling = power * self.weights_[None, :]
        out = np.zeros_like(X)
        for index, (block, weight) in enumerate(zip(self._blocks_, self._weights_, strict=True)):
            if index in linear:
                out[:, block] = weight * (self.weights_ @ self.sparse_points_[:, block])
                continue
            g = weight * (coupling @ self.sparse_points_[:, block])
            if self.normalize:
                unit = prepared[:, block]
                norm = np.linalg.norm(shifted[:, block], axis=1, keepdims=True)
                g = (g - np.sum(g * unit, axis=1, keepdims=True) * unit) / np.where(
                    norm > 0, norm, 1.0
                )
            out[:, block] = g
        out /= scale
        if self.reduce == "mean":
            counts = np.bincount(groups, minlength=n_structures).astype(float)
            out /= counts[groups][:, None]
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        # normalised features drop the magnitude of generic inputs by design (they are meant
        # for atomic descriptors), so scikit-learn's "score > 0.5 on any data" does not apply
        tags.regressor_tags.poor_score = bool(self.normalize)
        return tags


# -----------------------------------------------------------------------------------------
# The steps of AdditiveKernelRidge.fit that do not need the estimator.


#: Bytes of the (environments x coordinates x sparse points) intermediate of one chunk.
_TANGENT_CHUNK_BYTES = 32 << 20


def _contract_tangents(t: np.ndarray, sparse: np.ndarray, power: np.ndarray) -> np.ndarray:
    """sum_i sum_f t[i, a, f] sparse[m, f] power[i, m]: shape (n_coordinates, n_sparse).

    One matrix product per chunk of environments, (chunk x a, f) @ (f, m), then the weighted
    sum over i. ``np.einsum("itf,mf,im->tm", optimize=True)`` finds no path once m exceeds f
    and falls back to a slow loop: 8.95 s against 0.22 s here for 48 environments, 144
    coordinates, 1000 features, 1500 sparse points (benchmarks/bench_training.py); chunks
    keep the intermediate under 32 MiB.
    """
    n_env, n_coord, _ = t.shape
    out = np.zeros((n_coord, len(sparse)))
    chunk = max(1, _TANGENT_CHUNK_BYTES // (8 * n_coord * max(len(sparse), 1)))
    for start in range(0, n_env, chunk):
        stop = min(start + chunk, n_env)
        products = (t[start:stop].reshape(-1, t.shape[2]) @ sparse.T).reshape(
            stop - start, n_coord, len(sparse)
        )
        out += np.einsum("iam,im->am", products, power[start:stop])
    return out


def _structure_targets(y, groups, n_rows: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate the structure targets against the environments' structure index.

    Parameters
    ----------
    y : array-like, shape (n_structures,) or (n_structures, 1)
        One target per structure.
    groups : array-like of int, shape (n_rows,), or None
        Structure of every environment (None: one environment per structure).
    n_rows : int
        Number of environments (rows of X).

    Returns
    -------
    y : ndarray, shape (n_structures,)
    groups : ndarray of int, shape (n_rows,)
    n_structures : int
    """
    check_target(y)
    y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    if y.ndim != 1:
        raise InputError(f"`y` has shape {y.shape}; expected one value per structure")
    groups, n_structures = as_groups(groups, n_rows)
    if n_structures != len(y):
        raise InputError(f"`groups` names {n_structures} structures but `y` has {len(y)} values")
    return y, groups, n_structures


def _species_counts(species, groups, n_structures: int, types, reduce: str) -> np.ndarray:
    """Columns of the species baselines, shape (n_structures, n_types): environments of each
    species per structure, or their fraction with ``reduce="mean"`` (the baseline is then
    averaged like the kernel part)."""
    counts = composition(species, groups, n_structures, types)
    if reduce == "mean":
        counts /= np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    return counts


def _standardized_columns(blocks: list[slice], standardized, n_features: int) -> np.ndarray:
    """Boolean mask, shape (n_features,), of the columns of the blocks numbered in
    ``standardized`` (the linear blocks, with ``standardize_linear``)."""
    columns = np.zeros(n_features, dtype=bool)
    for index in standardized:
        columns[blocks[index]] = True
    return columns


def _nystrom_projector(k_mm: np.ndarray) -> np.ndarray:
    """U L^(-1/2) of K_MM = U L U^T over the eigenvalues above 1e-12 of the largest, shape
    (n_sparse, n_kept): with w = U L^(-1/2) v, K_NM w = (K_NM U L^(-1/2)) v and
    w^T K_MM w = |v|^2, so the subset-of-regressors problem is ridge regression in v."""
    eigval, eigvec = np.linalg.eigh(k_mm)
    keep = eigval > 1e-12 * max(eigval.max(), 1e-300)
    return eigvec[:, keep] / np.sqrt(eigval[keep])
