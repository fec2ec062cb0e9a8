"""Overhead of the torch layer (lodekit.torch) over the numpy path it wraps.

A hand-run script, not a test. On water64 (``bench_systems/water64.extxyz`` of the shared
data: ``$LODEKIT_DATA`` or ../shared/data; or ``--data``), two timings, each the median of
``--repeats`` calls after one warm-up, the two paths called alternately:

1. expansion: ``lodekit.torch.expansion`` forward, then backward of sum(G * c) to positions
   and cell, against ``compute`` + ``vector_jacobian_product(G)`` (which also gives dE/d eps);
2. model: a linear energy on the power spectrum of the same LODE expansion through
   ``FeatureLayer``, forward + backward, against the numpy chain of ``LodePotential``
   (``Recipe.expand``, ``forward``, ``vjp``, the calculator's ``vector_jacobian_product``).

The two paths run the same numpy code; the ratio is what torch adds (tensor conversion,
autograd bookkeeping, the cell gradient). Target: at most 1.3. The numbers of both paths are
checked to agree before timing.

Threads: on a few cores, torch's OpenMP threads (which spin for a while after every torch
operation) and numpy's BLAS threads compete, and even the small torch operations of the
model (a product and a sum over the coefficients) can then take tens of milliseconds.
``--torch-threads 1`` avoids it; the layer's heavy work is numpy's either way.

Example::

    OMP_NUM_THREADS=2 python benchmarks/bench_torch_layer.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import ase.io
import numpy as np
import torch

import lodekit
from lodekit.datasets.loaders import default_data_dir
from lodekit.features import Recipe
from lodekit.torch import FeatureLayer, expansion

#: The default recipe's LODE (featomic-sized: 1 Å smearing, 7 radial x 5 angular in 5 Å).
LODE = dict(smearing=1.0, max_radial=6, max_angular=4, radius=5.0)


def _compare(numpy_path, torch_path, repeats: int) -> tuple[float, float]:
    """Median seconds of the two paths, called alternately (after one warm-up call each) so
    that the load of a shared machine falls on both alike."""
    numpy_path()
    torch_path()
    times = ([], [])
    for _ in range(repeats):
        for function, out in zip((numpy_path, torch_path), times, strict=True):
            start = time.perf_counter()
            function()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = default_data_dir() / "bench_systems" / "water64.extxyz"
    parser.add_argument("--data", type=Path, default=default)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads before timing (default: torch's own choice)",
    )
    args = parser.parse_args()
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)

    atoms = ase.io.read(args.data, index=0)
    calculator = lodekit.LodeSphericalExpansion(**LODE)
    rng = np.random.default_rng(0)
    print(
        f"{len(atoms)} atoms, LODE {LODE}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), median of {args.repeats}"
    )

    # ---------------------------------------------------------------- 1. expansion
    reference = calculator.compute(atoms)
    upstream = [rng.normal(size=v.shape) for v in reference.values]
    flat_upstream = torch.from_numpy(np.concatenate(upstream, axis=2))

    def numpy_expansion():
        calculator.compute(atoms)
        return calculator.vector_jacobian_product(atoms, upstream)

    positions = torch.tensor(atoms.positions, requires_grad=True)
    cell = torch.tensor(atoms.cell.array, requires_grad=True)

    def torch_expansion():
        positions.grad = cell.grad = None
        out = expansion(calculator, positions, cell, atoms.numbers)
        (out * flat_upstream).sum().backward()
        return positions.grad

    expected = numpy_expansion()["positions"][0]
    np.testing.assert_allclose(torch_expansion().numpy(), expected, rtol=0, atol=1e-12)
    t_numpy, t_torch = _compare(numpy_expansion, torch_expansion, args.repeats)
    print(
        f"expansion forward+backward: numpy {t_numpy * 1e3:.1f} ms, torch "
        f"{t_torch * 1e3:.1f} ms, ratio {t_torch / t_numpy:.3f}"
    )

    # ---------------------------------------------------------------- 2. model
    recipe = Recipe.from_dict(
        {
            "blocks": [
                {
                    "kind": "power_spectrum",
                    "expansion": {"calculator": calculator.name, **calculator.get_hypers()},
                }
            ]
        }
    )
    species = np.unique(atoms.numbers)
    layer = FeatureLayer(recipe, species)
    weights = rng.normal(size=layer.n_columns)
    weights_t = torch.from_numpy(weights)

    def numpy_model():
        expanded = recipe.expand(atoms, species)
        values = recipe.forward(expanded).values
        energy = float(values.sum(axis=0) @ weights)
        grad = np.tile(weights, (len(values), 1))
        (up,) = recipe.vjp(expanded, grad)
        result = calculator.vector_jacobian_product(atoms, up)
        return energy, result["positions"][0]

    def torch_model():
        positions.grad = cell.grad = None
        energy = (layer(positions, cell, atoms.numbers) @ weights_t).sum()
        energy.backward()
        return energy.item(), positions.grad

    energy, gradient = numpy_model()
    energy_t, gradient_t = torch_model()
    assert abs(energy - energy_t) <= 1e-10 * max(1.0, abs(energy))
    np.testing.assert_allclose(gradient_t.numpy(), gradient, rtol=0, atol=1e-10)
    t_numpy, t_torch = _compare(numpy_model, torch_model, args.repeats)
    print(
        f"power-spectrum linear model, energy+forces+cell gradient: numpy "
        f"{t_numpy * 1e3:.1f} ms, torch {t_torch * 1e3:.1f} ms, ratio {t_torch / t_numpy:.3f}"
    )


if __name__ == "__main__":
    main()
