"""Several LODE exponents in one call against one call per exponent (issue 31).

A hand-run script, not a test. For every system it builds ``LodeSphericalExpansion(exponent=
[1, 3, 6], ...)`` and the three single-exponent calculators with the same hyperparameters
(LODE H1: smearing 1, max_radial 6, max_angular 4, radius 5, k_cutoff 1.2 pi / smearing), runs
one warm-up ``compute`` of each (tables, caches), then ``--repeats`` rounds, each timing (with
``time.perf_counter``) one multi-exponent call and the three single calls one after the other,
so that both see the same machine state. It prints the medians, the ratio separate / one pass
(> 1: one pass is faster) and checks that both give the same numbers.

Systems are ASE-readable files in ``../shared/data/bench_systems`` relative to the repository
root, or under ``$LODEKIT_DATA/bench_systems`` when that is set (override with ``--data``).

Example::

    OMP_NUM_THREADS=1 python benchmarks/bench_exponents.py --systems water64 water512 --repeats 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import ase.io
import numpy as np

import lodekit

HYPERS = dict(smearing=1.0, max_radial=6, max_angular=4, radius=5.0)
EXPONENTS = [1, 3, 6]


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=["water64", "water512"])
    data = os.environ.get("LODEKIT_DATA", str(root.parent / "shared" / "data"))
    parser.add_argument("--data", default=str(Path(data) / "bench_systems"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kspace-method", default="auto")
    args = parser.parse_args()

    print(
        f"exponents {EXPONENTS}, {HYPERS}, kspace_method {args.kspace_method}, "
        f"threads {args.threads}"
    )
    print("| system | atoms | one pass (s) | separate (s) | separate / one pass |")
    print("|---|---|---|---|---|")
    for name in args.systems:
        atoms = ase.io.read(Path(args.data) / f"{name}.extxyz")
        options = dict(HYPERS, kspace_method=args.kspace_method)
        several = lodekit.LodeSphericalExpansion(exponent=EXPONENTS, **options)
        singles = [lodekit.LodeSphericalExpansion(exponent=p, **options) for p in EXPONENTS]

        def one_pass(several=several, atoms=atoms):
            return several.compute(atoms, n_threads=args.threads)

        def separate(singles=singles, atoms=atoms):
            return [single.compute(atoms, n_threads=args.threads) for single in singles]

        joint, parts = one_pass(), separate()  # warm-up, and the numbers compared
        worst = max(
            np.abs(joint.values[l] - np.concatenate([p.values[l] for p in parts], axis=1)).max()
            for l in range(HYPERS["max_angular"] + 1)
        )
        scale = max(np.abs(v).max() for v in joint.values)
        assert worst <= 1e-12 * scale, f"{name}: one pass differs by {worst / scale:.2e}"
        times_one, times_separate = [], []
        for _ in range(args.repeats):
            times_one.append(_timed(one_pass))
            times_separate.append(_timed(separate))
        one, sep = statistics.median(times_one), statistics.median(times_separate)
        print(f"| {name} | {len(atoms)} | {one:.4f} | {sep:.4f} | {sep / one:.2f} |")


if __name__ == "__main__":
    main()
