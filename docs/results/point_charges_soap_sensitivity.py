"""Checks behind the SOAP r_c 9 Å row of docs/results.md (experiment A, full mode).

The paper's SOAP r_c 9 Å model saturates near 20 % RMSE at 1500 boxes; lodekit's reaches
7.6 %. This script tests the two obvious explanations on the same boxes and split as
``lodekit reproduce point-charges --full`` (seed 0):

1. the box size alone: a least-squares fit of E in powers of 1/L (degree 1 and 3), to show
   how much of the energy a model gets from the density alone;
2. the authors' TENSOAP defaults instead of lodekit's SOAP basis: 9 radial functions
   (n_max 8), l <= 6 and a hard (step) cutoff, same kernel and sparse set.

Run: ``python docs/results/point_charges_soap_sensitivity.py [quick|full]`` (full: about
10 minutes on 2 cores). Prints JSON.
"""

import json
import sys
import time

import numpy as np

from lodekit.expansion import SphericalExpansion
from lodekit.experiments import point_charges
from lodekit.experiments.learning_curve import ModelSpec, percent_rmse, run_learning_curves
from lodekit.features import power_spectrum
from lodekit.models import AdditiveKernelRidge


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


def main(mode="full"):
    start = time.perf_counter()
    data = point_charges.build(mode, seed=0)
    frames, targets, test = data["frames"], data["targets"], data["test"]
    result = box_size_baseline(frames, targets, data["train_sets"], test)
    metrics, _ = run_learning_curves(
        [tensoap_like_soap(mode)], frames, targets, data["train_sets"], test
    )
    result.update(metrics)
    result["wall_s"] = time.perf_counter() - start
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
