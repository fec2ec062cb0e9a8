"""Errors of the small-smearing LODE benchmark (set ``lode-h1-s03``) against a converged sum.

Hand-run companion of ``bench_expansions.py``: for water64 (or any given structure file) at
sigma = 0.3 Å it reports the largest coefficient error, relative to the largest coefficient, of

* featomic 0.6.7 at its default k_cutoff = 1.2 pi / sigma (spline off),
* lodekit with ``accuracy=1e-5`` (what the benchmark times),

with respect to featomic with a converged k_cutoff = 9.1 / sigma (exp(-(k sigma)^2/2) = 1e-18).

Run: ``python benchmarks/accuracy_small_smearing.py [STRUCTURE]``
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import ase.io
import featomic
import numpy as np

import lodekit

DEFAULT = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "bench_systems" / "water64.extxyz"
)
SMEARING = 0.3
BASIS = dict(max_radial=6, max_angular=4, radius=5.0)


def featomic_values(atoms, k_cutoff):
    calculator = featomic.LodeSphericalExpansion(
        k_cutoff=k_cutoff,
        density={"type": "SmearedPowerLaw", "smearing": SMEARING, "exponent": 1},
        basis={
            "type": "TensorProduct",
            "max_angular": BASIS["max_angular"],
            "radial": {"type": "Gto", "max_radial": BASIS["max_radial"], "radius": 5.0},
            "spline_accuracy": None,
        },
    )
    tensor = calculator.compute(atoms)
    return {tuple(int(v) for v in key.values): block.values for key, block in tensor.items()}


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    atoms = ase.io.read(path)
    reference = featomic_values(atoms, 9.1 / SMEARING)
    default = featomic_values(atoms, 1.2 * math.pi / SMEARING)
    calculator = lodekit.LodeSphericalExpansion(smearing=SMEARING, accuracy=1e-5, **BASIS)
    tensor = calculator.compute(atoms).to_tensormap()
    ours = {tuple(int(v) for v in key.values): block.values for key, block in tensor.items()}
    scale = max(np.abs(v).max() for v in reference.values())

    def error(values):
        return max(np.abs(values[key] - reference[key]).max() for key in reference) / scale

    print(f"structure: {path.name}, sigma = {SMEARING} Å, LODE H1 basis")
    print(f"featomic, default k_cutoff 1.2 pi / sigma: max relative error {error(default):.2e}")
    print(f"lodekit, accuracy=1e-5: max relative error {error(ours):.2e}")
    print(f"lodekit plan: {calculator.plan(atoms)[0]}")


if __name__ == "__main__":
    main()
