"""Checks behind the SOAP r_c 9 Å row of docs/results.md (experiment A, full mode).

The paper's SOAP r_c 9 Å model saturates near 20 % RMSE at 1500 boxes; lodekit's reaches
7.6 %. This script tests four explanations on the same boxes and split as
``lodekit reproduce point-charges --full`` (seed 0):

1. the box size alone: a least-squares fit of E in powers of 1/L (degree 1 and 3), to show
   how much of the energy a model gets from the density alone;
2. the authors' TENSOAP defaults instead of lodekit's SOAP basis: 9 radial functions
   (n_max 8), l <= 6 and a hard (step) cutoff, same kernel and sparse set;
3. a global instead of an additive model: the structure kernel sum_ij (x̂_i·x̂_j)^2
   normalised per structure, K(A,B)/sqrt(K(A,A) K(B,B)), alone or raised to a power
   zeta_s, in dense kernel ridge regression (lodekit's SOAP r_c 9 Å basis; the sum runs
   through a Nyström map on FPS points of the training pool);
4. a smaller sparse set: lodekit's SOAP r_c 9 Å model (the command's basis, kernel and
   alpha grid) with 50 ... 1000 FPS sparse environments instead of 2000.

Run: ``python docs/results/point_charges_soap_sensitivity.py [quick|full]`` (full: about
15 minutes on 2 cores). Prints JSON.
"""

import json
import sys
import time

import numpy as np

from lodekit.expansion import SphericalExpansion
from lodekit.experiments import point_charges
from lodekit.experiments.learning_curve import (
    ModelSpec,
    _subset,
    percent_rmse,
    run_learning_curves,
)
from lodekit.features import power_spectrum
from lodekit.models import AdditiveKernelRidge
from lodekit.models._common import farthest_points
from lodekit.models.kernels import normalize_rows


def box_size_baseline(frames, targets, train_sets, test):
    """% RMSE of E ~ sum_k c_k / L^k (k <= degree) per training size, degrees 1 and 3."""
    edge = np.array([atoms.cell[0, 0] for atoms in frames])
    result = {}
    for degree in (1, 3):
        design = np.stack([edge ** (-k) for k in range(degree + 1)], axis=1)
        result[f"1/L degree {degree}"] = {}
        for n, train in sorted(train_sets.items()):
            coef, *_ = np.linalg.lstsq(design[train], targets[train], rcond=None)
            error = percent_rmse(design[test] @ coef, targets[test])
            result[f"1/L degree {degree}"][n] = error
    return result


def tensoap_like_soap(mode):
    calculator = SphericalExpansion(
        cutoff=9.0, smearing=1.0, max_radial=8, max_angular=6, cutoff_function="step"
    )

    def featurize(frames):
        features = power_spectrum(calculator.compute(frames))
        return features.values, features.samples[:, 0], features.samples[:, 2]

    n_sparse = point_charges.MODES[mode]["n_sparse"]

    def kernel():
        return AdditiveKernelRidge(
            zeta=2, alpha=point_charges.ALPHAS, n_sparse=n_sparse, baselines=True
        )

    return ModelSpec(
        "soap_rc9_n8_l6_step", "SOAP r_c 9 Å, n_max 8, l <= 6, step", featurize, kernel
    )


def _dense_ridge(kernel, targets, train, test, alphas, folds=5):
    """Kernel ridge with a fitted mean and alpha by K-fold CV; % RMSE on test."""
    n = len(train)
    k_train = kernel[np.ix_(train, train)]
    y = targets[train]

    def solve(rows, alpha):
        mean = y[rows].mean()
        matrix = k_train[np.ix_(rows, rows)] + alpha * np.eye(len(rows))
        return mean, np.linalg.solve(matrix, y[rows] - mean)

    splits = np.array_split(np.random.default_rng(0).permutation(n), folds)
    errors = []
    for alpha in alphas:
        error = 0.0
        for held in splits:
            rows = np.setdiff1d(np.arange(n), held)
            mean, coef = solve(rows, alpha)
            error += np.sum((k_train[np.ix_(held, rows)] @ coef + mean - y[held]) ** 2)
        errors.append(error)
    mean, coef = solve(np.arange(n), alphas[int(np.argmin(errors))])
    prediction = kernel[np.ix_(test, train)] @ coef + mean
    return percent_rmse(prediction, targets[test])


def global_kernels(mode, soap9, targets, train_sets, test):
    """% RMSE of normalised global structure kernels (zeta_s = 1, 2, 4) per training size."""
    x, groups, _ = soap9
    x = normalize_rows(x, [slice(0, x.shape[1])])
    pool = np.flatnonzero(~np.isin(groups, test))
    sparse = x[pool[farthest_points(x[pool], point_charges.MODES[mode]["n_sparse"])]]
    eigval, eigvec = np.linalg.eigh((sparse @ sparse.T) ** 2)
    keep = eigval > 1e-12 * eigval.max()
    projector = eigvec[:, keep] / np.sqrt(eigval[keep])
    # sum over a structure's environments of the Nyström features of (x̂_i·x̂_m)^2
    summed = np.zeros((len(targets), projector.shape[1]))
    for start in range(0, len(x), 8192):
        rows = slice(start, start + 8192)
        np.add.at(summed, groups[rows], ((x[rows] @ sparse.T) ** 2) @ projector)
    unit = normalize_rows(summed, [slice(0, summed.shape[1])])
    result = {}
    for zeta in (1, 2, 4):
        kernel = (unit @ unit.T) ** zeta
        result[f"global normalised kernel^{zeta}"] = {
            n: _dense_ridge(kernel, targets, train, test, point_charges.ALPHAS)
            for n, train in sorted(train_sets.items())
        }
    return result


def sparse_set_sizes(soap9, targets, train_sets, test, sizes=(50, 100, 200, 500, 1000)):
    """% RMSE of the command's SOAP r_c 9 Å model with ``sizes`` sparse points."""
    x, groups, species = soap9
    x_test, g_test, s_test = _subset(x, groups, species, test)
    result = {}
    for n_sparse in sizes:
        result[f"soap_rc9 n_sparse {n_sparse}"] = {}
        for n, train in sorted(train_sets.items()):
            model = AdditiveKernelRidge(
                zeta=2, alpha=point_charges.ALPHAS, n_sparse=n_sparse, baselines=True
            )
            x_train, g_train, s_train = _subset(x, groups, species, train)
            model.fit(x_train, targets[train], g_train, s_train)
            error = percent_rmse(model.predict(x_test, g_test, s_test), targets[test])
            result[f"soap_rc9 n_sparse {n_sparse}"][n] = error
    return result


def main(mode="full"):
    start = time.perf_counter()
    data = point_charges.build(mode, seed=0)
    frames, targets, test = data["frames"], data["targets"], data["test"]
    result = box_size_baseline(frames, targets, data["train_sets"], test)
    metrics, _ = run_learning_curves(
        [tensoap_like_soap(mode)], frames, targets, data["train_sets"], test
    )
    result.update(metrics)
    # (features, groups, species) of the command's SOAP r_c 9 Å model, for checks 3 and 4
    soap9 = point_charges._soap(9.0)(frames)
    result.update(global_kernels(mode, soap9, targets, data["train_sets"], test))
    result.update(sparse_set_sizes(soap9, targets, data["train_sets"], test))
    result["wall_s"] = time.perf_counter() - start
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
