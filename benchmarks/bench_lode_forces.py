"""Forces of a linear model on periodic LODE features: lodekit's vector-Jacobian product
against featomic 0.6.7's dense position gradients, side by side in one run.

A linear model E = sum_i w_{Z_i} · c_i has dE/dc_i = w_{Z_i}, so its forces need only the
contraction of the Jacobian with that upstream gradient. featomic has no such path: it builds
the dense (centre, atom) Jacobian, which a model then contracts. This script times, per system:

- featomic: ``compute(..., gradients=["positions"])`` (values + dense Jacobian);
- lodekit: ``compute`` (values) + ``vector_jacobian_product`` (forces and the strain
  derivative, which featomic does not have for LODE), same k_cutoff;

and checks that both give the same forces (featomic's Jacobian contracted with the same
weights). A second table times the full Jacobian both ways: featomic as above against
lodekit's ``compute(..., gradients=["positions"])`` (and with "strain" added, which featomic
lacks for LODE). Hyperparameters: LODE H1 or H2 of ../shared/spec/performance.md (smearing 1 Å,
exponent 1, radius 5 Å, k_cutoff 1.2 pi). Hand-run, not a test::

    python benchmarks/bench_lode_forces.py [--systems water64 nacl64] [--set h1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import ase.io
import numpy as np

SETS = {"h1": (6, 4), "h2": (8, 6)}


def _featomic(atoms, max_radial, max_angular):
    import featomic

    calculator = featomic.LodeSphericalExpansion(
        k_cutoff=1.2 * np.pi,
        density={"type": "SmearedPowerLaw", "smearing": 1.0, "exponent": 1},
        basis={
            "type": "TensorProduct",
            "max_angular": max_angular,
            "radial": {"type": "Gto", "max_radial": max_radial, "radius": 5.0},
        },
    )
    return calculator.compute(atoms, gradients=["positions"])


def _featomic_forces(tensor, weights, types, n_atoms):
    """-sum over blocks of the Jacobian contracted with the per-centre-species weights."""
    forces = np.zeros((n_atoms, 3))
    for key, block in tensor.items():
        l = int(key["o3_lambda"])
        centre = int(np.searchsorted(types, int(key["center_type"])))
        neighbour = int(np.searchsorted(types, int(key["neighbor_type"])))
        w = weights[centre, neighbour, l * l : (l + 1) ** 2]  # (2l+1, n)
        gradient = block.gradient("positions")
        rows = np.asarray(gradient.samples.values)
        contribution = np.einsum("gxmn,mn->gx", np.asarray(gradient.values), w)
        np.add.at(forces, rows[:, 2], -contribution)
    return forces


def _lodekit_calculator(max_radial, max_angular):
    import lodekit

    return lodekit.LodeSphericalExpansion(
        smearing=1.0,
        exponent=1,
        max_radial=max_radial,
        max_angular=max_angular,
        radius=5.0,
        k_cutoff=1.2 * np.pi,
    )


def _lodekit_forces(atoms, max_radial, max_angular, weights):
    calculator = _lodekit_calculator(max_radial, max_angular)
    expansion = calculator.compute(atoms, n_threads=1)
    rows = np.searchsorted(expansion.neighbor_types, expansion.samples[:, 2])
    upstream = [weights[rows][:, :, l * l : (l + 1) ** 2] for l in range(max_angular + 1)]
    gradients = calculator.vector_jacobian_product(atoms, upstream)
    return expansion, -gradients["positions"][0], gradients["strain"][0]


def _lodekit_jacobian(atoms, max_radial, max_angular, gradients):
    calculator = _lodekit_calculator(max_radial, max_angular)
    return calculator.compute(atoms, gradients=gradients, n_threads=1)


def _jacobian_forces(expansion, weights, types, n_atoms):
    """The same contraction as _featomic_forces, from lodekit's sparse Jacobian rows."""
    gradient = expansion.gradients["positions"]
    centre = np.searchsorted(types, expansion.samples[gradient.samples[:, 0], 2])
    flat = np.concatenate(gradient.values, axis=3)  # (rows, 3, species, lm, n)
    contribution = np.einsum("gxalm,galm->gx", flat, weights[centre])
    forces = np.zeros((n_atoms, 3))
    np.add.at(forces, gradient.samples[:, 2], -contribution)
    return forces


def _median_time(function, repeats):
    function()  # warm-up: tables, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=["water64", "nacl64"])
    parser.add_argument("--set", choices=sorted(SETS), default="h1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data")
    )
    args = parser.parse_args(argv)
    max_radial, max_angular = SETS[args.set]
    import featomic

    import lodekit

    print(f"# LODE {args.set.upper()} forces of a linear model, {datetime.date.today()}")
    print(f"# {platform.processor() or platform.machine()}, featomic {featomic.__version__}, ")
    print(f"# lodekit {lodekit.__version__}, numpy {np.__version__}")
    print(
        "| system | atoms | featomic values + Jacobian (s) | lodekit values + VJP (s) | "
        "speed-up | max force difference (eV/Å) |"
    )
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    timings = {}
    for name in args.systems:
        atoms = ase.io.read(Path(args.data) / "bench_systems" / f"{name}.extxyz")
        types = np.unique(atoms.numbers)
        n_lm = (max_angular + 1) ** 2
        weights = rng.normal(size=(len(types), len(types), n_lm, max_radial + 1))
        t_feat, tensor = _median_time(
            lambda a=atoms: _featomic(a, max_radial, max_angular), args.repeats
        )
        reference = _featomic_forces(tensor, weights, types, len(atoms))
        t_ours, (_, forces, _) = _median_time(
            lambda a=atoms, w=weights: _lodekit_forces(a, max_radial, max_angular, w), args.repeats
        )
        difference = np.abs(forces - reference).max()
        print(
            f"| {name} | {len(atoms)} | {t_feat:.3f} | {t_ours:.4f} | {t_feat / t_ours:.0f}x "
            f"| {difference:.1e} |"
        )
        timings[name] = (len(atoms), t_feat, reference, weights, types)

    print()
    print(
        "| system | atoms | featomic values + Jacobian (s) | lodekit values + Jacobian (s) | "
        "speed-up | lodekit + strain Jacobian (s) | max force difference (eV/Å) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.systems:
        n_atoms, t_feat, reference, weights, types = timings[name]
        atoms = ase.io.read(Path(args.data) / "bench_systems" / f"{name}.extxyz")
        t_jac, expansion = _median_time(
            lambda a=atoms: _lodekit_jacobian(a, max_radial, max_angular, ["positions"]),
            args.repeats,
        )
        t_strain, _ = _median_time(
            lambda a=atoms: _lodekit_jacobian(a, max_radial, max_angular, ["positions", "strain"]),
            args.repeats,
        )
        difference = np.abs(_jacobian_forces(expansion, weights, types, n_atoms) - reference).max()
        print(
            f"| {name} | {n_atoms} | {t_feat:.3f} | {t_jac:.3f} | {t_feat / t_jac:.1f}x | "
            f"{t_strain:.3f} | {difference:.1e} |"
        )


if __name__ == "__main__":
    main()
