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

3. k-space: ``expansion`` forward, and forward + backward of sum(c^2) to positions and cell,
   by the numpy calculator (``kspace="numpy"``; tensors on a GPU are copied to the CPU and
   back) and by the torch k-space path (``kspace="torch"``, :mod:`lodekit.torch.kspace`) on
   ``--device`` (cpu or cuda), the first call of each (which builds the cell's tables) timed
   apart; and, where ``featomic-torch`` is installed, featomic's ``LodeSphericalExpansion``
   on the CPU (its default splines) for the same forward, and forward + backward to the
   positions only (featomic has no cell gradient for LODE).

``--device cuda`` puts the tensors of every section on the GPU (section 1 then times the
numpy calculator with the copies, section 2's layer takes the torch k-space path by
default); ``--kspace-only`` runs section 3 alone.

Threads: on a few cores, torch's OpenMP threads (which spin for a while after every torch
operation) and numpy's BLAS threads compete, and even the small torch operations of the
model (a product and a sum over the coefficients) can then take tens of milliseconds.
``--torch-threads 1`` avoids it; the layer's heavy work is numpy's either way.

Example::

    OMP_NUM_THREADS=2 python benchmarks/bench_torch_layer.py --repeats 5
    python benchmarks/bench_torch_layer.py --device cuda --kspace-only \
        --data ../shared/data/bench_systems/water512.extxyz
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
from lodekit.expansion.kspace.layout import half_space_kvectors
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


def _synchronised(function, device: torch.device):
    """``function`` followed by a wait for the device's queued work (GPU timings)."""
    if device.type != "cuda":
        return function

    def run():
        out = function()
        torch.cuda.synchronize(device)
        return out

    return run


def _first_and_median(function, repeats: int) -> tuple[float, float]:
    """(seconds of the first call, median seconds of ``repeats`` calls after it)."""
    start = time.perf_counter()
    function()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def _featomic_side(atoms, calculator, repeats: int, ours: np.ndarray) -> None:
    """featomic-torch's LodeSphericalExpansion (CPU, default splines) forward, and forward +
    backward of sum(c^2) to positions (it has no cell gradient for LODE), if installed; its
    values checked against ``ours`` (n_atoms, n_species, lm, n)."""
    try:
        import featomic.torch as featomic_torch
    except ImportError as err:
        print(f"featomic-torch: not installed ({err})")
        return
    lode = featomic_torch.LodeSphericalExpansion(
        k_cutoff=calculator.effective_k_cutoff,
        density={
            "type": "SmearedPowerLaw",
            "smearing": calculator.smearing,
            "exponent": calculator.exponent,
            "center_atom_weight": calculator.center_atom_weight,
        },
        basis={
            "type": "TensorProduct",
            "max_angular": calculator.max_angular,
            "radial": {
                "type": "Gto",
                "max_radial": calculator.max_radial,
                "radius": calculator.radius,
            },
        },
    )

    def run(with_backward: bool):
        (system,) = featomic_torch.systems_to_torch(
            [atoms], positions_requires_grad=with_backward, cell_requires_grad=False
        )
        out = lode.compute(system)
        if with_backward:
            sum(block.values.square().sum() for block in out.blocks()).backward()
        return out

    species = np.unique(atoms.numbers)
    difference = 0.0
    out = run(False)
    for key, block in out.items():
        l, neighbour = int(key["o3_lambda"]), int(key["neighbor_type"])
        rows = block.samples.values[:, 1].numpy()
        a = int(np.searchsorted(species, neighbour))
        mine = ours[rows, a, l * l : (l + 1) ** 2]
        difference = max(difference, float(np.abs(block.values.numpy() - mine).max()))
    print(
        f"featomic-torch {featomic_torch.__version__}: largest difference to lodekit "
        f"{difference:.2e} (largest |c| {np.abs(ours).max():.3f}; featomic's splines)"
    )
    for with_backward in (False, True):
        # its backward builds the dense position gradients first (seconds): one repeat
        n = 1 if with_backward else repeats
        first, median = _first_and_median(lambda b=with_backward: run(b), n)
        label = "forward+backward (positions)" if with_backward else "forward"
        print(f"  featomic-torch cpu {label}: first {first * 1e3:.1f} ms, {median * 1e3:.1f} ms")


def kspace_section(atoms, calculator, device: torch.device, repeats: int) -> None:
    """Section 3 (module docstring)."""
    positions = torch.tensor(atoms.positions, device=device, requires_grad=True)
    cell = torch.tensor(atoms.cell.array, device=device, requires_grad=True)

    def path(kspace: str, with_backward: bool):
        def run():
            positions.grad = cell.grad = None
            if not with_backward:
                with torch.no_grad():
                    return expansion(calculator, positions, cell, atoms.numbers, kspace=kspace)
            out = expansion(calculator, positions, cell, atoms.numbers, kspace=kspace)
            out.square().sum().backward()
            return out

        return _synchronised(run, device)

    results = {}
    for kspace in ("numpy", "torch"):
        out = path(kspace, True)()
        results[kspace] = (out.detach().cpu().numpy(), positions.grad.cpu(), cell.grad.cpu())
    for a, b in zip(results["numpy"], results["torch"], strict=True):
        scale = max(1.0, float(np.abs(np.asarray(a)).max()))
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-10 * scale)
    n_k = len(half_space_kvectors(atoms.cell.array, calculator.effective_k_cutoff))
    print(f"k-space on {device}: {n_k} k-vectors (half sphere)")
    for with_backward in (False, True):
        label = "forward+backward" if with_backward else "forward"
        for kspace in ("numpy", "torch"):
            # a fresh cell (a copy) so that the first call builds the tables again
            cell.data = cell.data.clone() * (1.0 + 1e-12)
            first, median = _first_and_median(path(kspace, with_backward), repeats)
            print(
                f"  {kspace:5s} {label}: first {first * 1e3:.1f} ms, median {median * 1e3:.1f} ms"
            )
    _featomic_side(atoms, calculator, repeats, results["numpy"][0])


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
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--kspace-only", action="store_true", help="run section 3 alone")
    args = parser.parse_args()
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    device = torch.device(args.device)

    atoms = ase.io.read(args.data, index=0)
    calculator = lodekit.LodeSphericalExpansion(**LODE)
    rng = np.random.default_rng(0)
    print(
        f"{len(atoms)} atoms, LODE {LODE}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {device}, median of {args.repeats}"
    )
    if args.kspace_only:
        kspace_section(atoms, calculator, device, args.repeats)
        return

    # ---------------------------------------------------------------- 1. expansion
    reference = calculator.compute(atoms)
    upstream = [rng.normal(size=v.shape) for v in reference.values]
    flat_upstream = torch.from_numpy(np.concatenate(upstream, axis=2)).to(device)

    def numpy_expansion():
        calculator.compute(atoms)
        return calculator.vector_jacobian_product(atoms, upstream)

    positions = torch.tensor(atoms.positions, device=device, requires_grad=True)
    cell = torch.tensor(atoms.cell.array, device=device, requires_grad=True)

    def torch_expansion():
        positions.grad = cell.grad = None
        # the numpy calculator, whatever the device (section 3 times the torch k-space path)
        out = expansion(calculator, positions, cell, atoms.numbers, kspace="numpy")
        (out * flat_upstream).sum().backward()
        return positions.grad.cpu()

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
    weights_t = torch.from_numpy(weights).to(device)

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
        return energy.item(), positions.grad.cpu()

    energy, gradient = numpy_model()
    energy_t, gradient_t = torch_model()
    assert abs(energy - energy_t) <= 1e-10 * max(1.0, abs(energy))
    np.testing.assert_allclose(gradient_t.numpy(), gradient, rtol=0, atol=1e-10)
    t_numpy, t_torch = _compare(numpy_model, torch_model, args.repeats)
    print(
        f"power-spectrum linear model, energy+forces+cell gradient: numpy "
        f"{t_numpy * 1e3:.1f} ms, torch {t_torch * 1e3:.1f} ms, ratio {t_torch / t_numpy:.3f}"
    )

    # ---------------------------------------------------------------- 3. k-space
    kspace_section(atoms, calculator, device, args.repeats)


if __name__ == "__main__":
    main()
