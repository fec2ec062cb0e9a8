"""Training a potential (issue 28): the three costs the issue measured, each beside the way it
was done before, in one run.

1. Kernel force rows: the tangent contraction sum_i sum_f t[i,a,f] s[m,f] p[i,m] as lodekit
   does it (chunked matrix products) against the einsum it replaced, once the sparse points
   outnumber the features.
2. Farthest-point sampling: skmatter's FPS with its per-step finiteness check (as before) and
   with the check done once (as lodekit now calls it).
3. Derivative rows of a linear model for one structure: one forward Jacobian summed over
   environments (lodekit train) against a backward pass per feature column
   (LodePotential.feature_derivatives).

    python benchmarks/bench_training.py [--quick]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def best_of(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def contraction(quick: bool) -> None:
    from lodekit.models.kernel_ridge import _contract_tangents

    rng = np.random.default_rng(0)
    n_env, n_coord, n_features = 48, 144, 1000  # a 48-atom molecule, 1000 features
    t = rng.normal(size=(n_env, n_coord, n_features))
    for m in (300, 1500):
        sparse, power = rng.normal(size=(m, n_features)), rng.normal(size=(n_env, m))

        def before(sparse=sparse, power=power):
            return np.einsum("itf,mf,im->tm", t, sparse, power, optimize=True)

        def after(sparse=sparse, power=power):
            return _contract_tangents(t, sparse, power)

        old = best_of(before, 1)
        new = best_of(after, 1 if quick else 3)
        error = np.abs(before() - after()).max()
        print(
            f"force rows, 48 env x 144 coords x 1000 features, {m} sparse: einsum {old:.3f} s, "
            f"lodekit {new:.3f} s, ratio {old / new:.1f} (max difference {error:.1e})"
        )


def farthest_points(quick: bool) -> None:
    from sklearn import config_context
    from skmatter.sample_selection import FPS

    from lodekit.models._common import farthest_points as lodekit_fps

    rng = np.random.default_rng(1)
    n, f, k = (8000, 500, 300) if quick else (20000, 1000, 500)
    x = rng.normal(size=(n, f))
    start = time.perf_counter()
    with config_context(assume_finite=False):
        before = np.sort(FPS(n_to_select=k, initialize=0).fit(x).selected_idx_)
    old = time.perf_counter() - start
    start = time.perf_counter()
    after = lodekit_fps(x, k)
    new = time.perf_counter() - start
    assert np.array_equal(before, after)
    print(
        f"FPS, {k} of {n} x {f}: checked every step {old:.2f} s, lodekit {new:.2f} s, "
        f"ratio {old / new:.2f} (same selection)"
    )


def derivative_rows(quick: bool) -> None:
    from lodekit import LodePotential
    from lodekit.datasets import rigid_ion_nacl
    from lodekit.models import StructureRidge
    from lodekit.recipes import potential_preset

    atoms = rigid_ion_nacl(1, seed=3)[0]
    recipe = potential_preset("ionic-soap+lode", [11, 17])
    potential = LodePotential(StructureRidge(), recipe, species=[11, 17])
    potential.feature_jacobian(atoms)  # warm-up: spline tables
    old = best_of(lambda: potential.feature_derivatives(atoms), 1)
    new = best_of(lambda: potential.feature_jacobian(atoms).sum(axis=0), 1 if quick else 3)
    error = np.abs(
        potential.feature_derivatives(atoms) - potential.feature_jacobian(atoms).sum(axis=0)
    ).max()
    n_features = sum(recipe.widths([11, 17]))
    print(
        f"linear derivative rows, 8-atom NaCl cell, {n_features} columns: one backward pass "
        f"per column {old:.3f} s, one forward Jacobian {new:.3f} s, ratio {old / new:.1f} "
        f"(max difference {error:.1e})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, single repeats")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    contraction(args.quick)
    farthest_points(args.quick)
    derivative_rows(args.quick)


if __name__ == "__main__":
    main()
