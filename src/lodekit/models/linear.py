"""Linear ridge regression on structure-summed (or averaged) features."""

from __future__ import annotations

import numpy as np
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
    force_entries,
    weigh_structures,
)
from ._ridge import FORCE_RECORD, fit_structure_regression
from .jacobians import SparseJacobian

__all__ = ["StructureRidge"]


class StructureRidge(StructureScoreMixin, RegressorMixin, BaseEstimator):
    """y_A = sum_{i in A} x_i · w + sum_{i in A} b_{species(i)} (or means with reduce="mean").

    With LODE nu = 1 features of sharp charges this is the paper's point-charge model.

    Parameters
    ----------
    alpha : float or sequence of float
        Ridge regulariser; a sequence (even of one value) is searched by K-fold
        cross-validation over structures, which also gives ``cv_rmse_``.
    reduce : {"sum", "mean"}
    baselines : bool
        One free constant per species (not regularised).
    standardize : bool
        Centre and scale every column of X to zero mean and unit variance over the training
        environments before the fit, so that one ridge penalty treats all columns alike.
    cv, random_state : int
        Folds and seed of the alpha search.

    Attributes
    ----------
    coef_ : ndarray (n_features,)
        Weights of the (standardised, when ``standardize``) features.
    feature_mean_, feature_scale_ : ndarray (n_features,)
        Column shift and scale (0 and 1 without ``standardize``).
    baseline_ : ndarray (n_types,)
    types_ : ndarray of int
    alpha_ : float
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
        "alpha_",
        "cv_alphas_",
        "cv_rmse_",
        "coef_",
        "baseline_",
        *FORCE_RECORD,
    )
    #: Added after model files existed: older files load them empty (no cross-validation record)
    _fitted_later = ("cv_alphas_", "cv_rmse_", *FORCE_RECORD)

    def __init__(
        self, *, alpha=1e-8, reduce="sum", baselines=True, standardize=False, cv=5, random_state=0
    ):
        self.alpha = alpha
        self.reduce = reduce
        self.baselines = baselines
        self.standardize = standardize
        self.cv = cv
        self.random_state = random_state

    def _structure_features(self, X, groups, species):
        groups, n_structures = as_groups(groups, X.shape[0])
        g = aggregation_matrix(groups, n_structures, self.reduce)
        counts = composition(species, groups, n_structures, self.types_)
        if self.reduce == "mean":
            counts /= np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        mean = getattr(self, "feature_mean_", None)
        if mean is not None:
            X = (X - mean) / self.feature_scale_
        return g @ X, counts

    def fit(
        self,
        X,
        y,
        groups=None,
        species=None,
        cv_groups=None,
        *,
        forces=None,
        feature_derivatives=None,
        force_weight=1.0,
        structure_weights=None,
    ):
        """Fit on environments X (n_env, n_features) and structure targets y (n_structures,).

        With ``forces`` the energies and forces are fitted together (``reduce="sum"``): the
        force on atom j of structure A is -d(sum_i x_i)/dr_j · w, so every force component is one
        more row of the least-squares problem, weighted by ``force_weight`` (eV/Å rows against
        eV rows). The alpha search then holds out whole structures (energy and force rows).

        Parameters
        ----------
        forces : sequence of (ndarray (n_atoms_A, 3) or None), optional
            Reference forces of every structure (eV/Å); None for a structure fitted on its
            energy only.
        feature_derivatives : sequence of ndarray (n_atoms_A, 3, n_features), or callable
            d(sum_i x_i)/dr of every structure with forces, in the columns of X (e.g.
            :meth:`lodekit.LodePotential.feature_derivatives`); a function of the structure
            index computes each when needed, so only one is in memory at a time.
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
        check_reduce(self.reduce)
        check_alpha(self.alpha)
        X = validate_data(self, X, dtype=np.float64)
        check_target(y)
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim != 1:
            raise InputError(f"`y` has shape {y.shape}; expected one value per structure")
        self.types_ = np.unique(np.zeros(1, int) if species is None else np.asarray(species))
        columns = np.full(X.shape[1], bool(self.standardize))
        self.feature_mean_, self.feature_scale_ = column_scaling(X, columns)
        phi, counts = self._structure_features(X, groups, species)
        if len(phi) != len(y):
            raise InputError(f"`groups` names {len(phi)} structures but `y` has {len(y)} values")
        baseline = counts if self.baselines else None
        phi, y, baseline = weigh_structures(phi, y, baseline, structure_weights)
        force_rows = None
        if forces is not None or feature_derivatives is not None:
            force_rows = self._force_rows(phi, y, forces, feature_derivatives)
        self.coef_ = fit_structure_regression(
            self, phi, y, baseline, cv_groups, force_rows, force_weight
        )
        return self

    def _force_rows(self, phi, y, forces, derivatives):
        """(owners, rows, targets): the unweighted force rows of every structure with forces."""
        check_force_inputs(self.reduce, forces, derivatives, len(y), 1.0, "feature_derivatives")
        owners, rows, targets = [], [], []
        for a, f, d in force_entries(forces, derivatives):
            if isinstance(d, SparseJacobian):
                d = d.summed()
            if d.ndim != 3 or d.shape[1:] != (3, phi.shape[1]) or f.shape != d.shape[:2]:
                raise InputError(
                    f"structure {a}: `forces` has shape {f.shape} and `feature_derivatives` "
                    f"{d.shape}; expected (n_atoms, 3) and (n_atoms, 3, {phi.shape[1]})"
                )
            if not (np.all(np.isfinite(f)) and np.all(np.isfinite(d))):
                raise InputError(f"structure {a}: `forces` or `feature_derivatives` is not finite")
            # F = -d(sum x)/dr · w, in the standardised columns the weights refer to
            owners.append(a)
            rows.append(-(d / self.feature_scale_).reshape(-1, phi.shape[1]))
            targets.append(f.ravel())
        return owners, rows, targets

    def predict(self, X, groups=None, species=None):
        """Structure predictions, shape (n_structures,)."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        phi, counts = self._structure_features(X, groups, species)
        return phi @ self.coef_ + counts @ self.baseline_

    def environment_gradient(self, X, groups=None, species=None):
        """d y_A / d x_i for every environment i (row of X): the weights (over the column
        scale), divided by the number of environments of the structure with ``reduce="mean"``.

        Returns
        -------
        ndarray, shape (n_environments, n_features)
        """
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        groups, n_structures = as_groups(groups, X.shape[0])
        out = np.tile(self.coef_ / self.feature_scale_, (X.shape[0], 1))
        if self.reduce == "mean":
            counts = np.bincount(groups, minlength=n_structures).astype(float)
            out /= counts[groups][:, None]
        return out
