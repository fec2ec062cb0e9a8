"""SOAP power-spectrum Jacobian of a 48-atom organic molecule (issue 30, deliverable 3): the
dense path it replaced beside the sparse one, and featomic's SOAP power spectrum with
position gradients as the anchor, in one run.

The molecule: pentadecan-1-ol, C15H31OH (48 atoms: H, C, O), an all-trans chain built here
(C-C 1.54 Å, C-H 1.09 Å, tetrahedral angles), no file needed. SOAP H1 hyperparameters:
cutoff 5 Å, shifted cosine of width 0.5 Å, Gaussian density of width 0.3 Å, max_radial 6,
max_angular 4: 5 x 6 x 49 = 1470 power-spectrum columns for three species.

- dense (before): every expansion's Jacobian made dense over (centres, 3 x atoms), then the
  recipe's Jacobian-vector products (``Recipe.jvp``), as ``feature_jacobian`` did;
- sparse (now): ``feature_jacobian(..., sparse=True)``, the chain rule on the (centre, atom)
  rows of the expansion's Jacobian (``Recipe.sparse_jvp``);
- featomic: ``SoapPowerSpectrum.compute(..., gradients=["positions"])`` (its gradients are
  stored by (sample, atom) pair too).

Times per frame are medians over repeats, all including the expansion and its Jacobian.

    python benchmarks/bench_sparse_jacobian.py [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out.add_argument("--threads", type=int, default=1, help="threads (default 1)")
    out.add_argument("--repeats", type=int, default=5, help="repeats per timing")
    return out


if __name__ == "__main__":
    # before numpy loads: the OpenMP and BLAS pools read their sizes once, and idle threads
    # of a larger pool spin on the cores the timed thread needs
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "RAYON_NUM_THREADS"):  # fmt: skip
        os.environ[variable] = str(parser().parse_args().threads)

import numpy as np  # noqa: E402

CUTOFF, CUTOFF_WIDTH, SMEARING, MAX_RADIAL, MAX_ANGULAR = 5.0, 0.5, 0.3, 6, 4


def pentadecanol():
    """C15H31OH, all-trans, as ase.Atoms (48 atoms, no cell)."""
    import ase

    step, wiggle = 1.54 * np.sin(np.radians(109.5 / 2)), 1.54 * np.cos(np.radians(109.5 / 2))
    symbols, positions = [], []
    n_carbon = 15
    for k in range(n_carbon + 1):  # the backbone: 15 C, then O
        y = wiggle / 2 if k % 2 else -wiggle / 2
        symbols.append("C" if k < n_carbon else "O")
        positions.append([k * step, y, 0.0])
        if k < n_carbon:
            # two H per carbon, out of the backbone plane, pointing away from the chain
            for z in (0.89, -0.89):
                symbols.append("H")
                positions.append([k * step, y + np.sign(y) * 0.63, z])
    # the hydroxyl H continues the zig-zag at 0.96 Å
    oxygen = np.array(positions[-1])
    symbols.append("H")
    positions.append(oxygen + np.array([step, -np.sign(oxygen[1]) * wiggle, 0.0]) * 0.96 / 1.54)
    symbols.append("H")  # the methyl's third H, along the chain axis
    positions.append([-1.03, -wiggle / 2 - 0.36, 0.0])
    return ase.Atoms(symbols, positions=positions)


def recipe():
    return {
        "blocks": [
            {
                "kind": "power_spectrum",
                "expansion": {
                    "calculator": "spherical_expansion",
                    "cutoff": CUTOFF,
                    "cutoff_function": "shifted_cosine",
                    "cutoff_width": CUTOFF_WIDTH,
                    "smearing": SMEARING,
                    "max_radial": MAX_RADIAL,
                    "max_angular": MAX_ANGULAR,
                },
            }
        ]
    }


def dense_jacobian(potential, atoms):
    """The path ``feature_jacobian`` took before: dense tangents, then ``Recipe.jvp``."""
    expanded = potential._expand(atoms, gradients=["positions"])
    n_atoms = len(atoms)
    tangents = []
    for expansion in expanded.expansions:
        gradient = expansion.gradients["positions"]
        tangent = []
        for values in gradient.values:
            dense = np.zeros((len(expansion), n_atoms, *values.shape[1:]))
            dense[gradient.samples[:, 0], gradient.samples[:, 2]] = values
            tangent.append(dense.reshape(len(expansion), 3 * n_atoms, *values.shape[2:]))
        tangents.append(tangent)
    out = potential.recipe.jvp(expanded, tangents)
    return out.reshape(out.shape[0], n_atoms, 3, out.shape[2])


def featomic_calculator():
    import featomic

    return featomic.SoapPowerSpectrum(
        cutoff={"radius": CUTOFF, "smoothing": {"type": "ShiftedCosine", "width": CUTOFF_WIDTH}},
        density={"type": "Gaussian", "width": SMEARING},
        basis={
            "type": "TensorProduct",
            "max_angular": MAX_ANGULAR,
            "radial": {"type": "Gto", "max_radial": MAX_RADIAL},
        },
    )


def median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def force_rows(potential, atoms, sparse, dense, repeats: int, n_sparse: int = 500) -> None:
    """Kernel force rows of the molecule (AdditiveKernelRidge, zeta = 2, ``n_sparse`` sparse
    points among 20 jittered copies of its environments): from the dense Jacobian (chunked
    tangent contraction) and from the sparse one (row by row)."""
    from lodekit.models import AdditiveKernelRidge

    x = potential.recipe.compute(atoms).values
    rng = np.random.default_rng(0)
    copies = np.vstack([x * (1 + 0.02 * rng.normal(size=x.shape)) for _ in range(20)])
    groups = np.repeat(np.arange(20), len(x))
    model = AdditiveKernelRidge(zeta=2, n_sparse=n_sparse).fit(copies, rng.normal(size=20), groups)
    flat = dense.reshape(len(x), -1, x.shape[1])
    old = median_time(lambda: model._derivative_rows(x, flat), max(1, repeats // 2))
    new = median_time(lambda: model._sparse_derivative_rows(x, sparse), max(1, repeats // 2))
    error = np.abs(model._derivative_rows(x, flat) - model._sparse_derivative_rows(x, sparse))
    print(
        f"kernel force rows, {n_sparse} sparse points: dense {1e3 * old:.1f} ms, sparse "
        f"{1e3 * new:.1f} ms, ratio {old / new:.1f}x (max difference {error.max():.1e})"
    )


def main() -> None:
    args = parser().parse_args()
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(args.threads)
    except ImportError:  # pragma: no cover - depends on the environment
        limiter = None

    from lodekit import LodePotential
    from lodekit.models import StructureRidge

    atoms = pentadecanol()
    potential = LodePotential(StructureRidge(), recipe())
    sparse = potential.feature_jacobian(atoms, sparse=True)  # warm-up: spline tables
    dense = dense_jacobian(potential, atoms)
    difference = np.abs(sparse.to_dense() - dense).max()
    expansion = potential.recipe.calculators[0]

    rows = [
        ("expansion + its Jacobian only",
         lambda: expansion.compute(atoms, gradients=["positions"])),
        ("dense (before)", lambda: dense_jacobian(potential, atoms)),
        ("sparse (feature_jacobian, sparse=True)",
         lambda: potential.feature_jacobian(atoms, sparse=True)),
        ("sparse, then dense output (feature_jacobian)", lambda: potential.feature_jacobian(atoms)),
    ]  # fmt: skip
    try:
        calculator = featomic_calculator()
        calculator.compute(atoms, gradients=["positions"])
        rows.append(
            ("featomic 0.6.7 SoapPowerSpectrum, gradients",
             lambda: calculator.compute(atoms, gradients=["positions"])),
        )  # fmt: skip
    except ImportError:  # pragma: no cover - depends on the environment
        pass
    times = {name: median_time(function, args.repeats) for name, function in rows}

    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"{args.threads} thread(s), median of {args.repeats}")  # fmt: skip
    print(f"pentadecan-1-ol C15H31OH, {len(atoms)} atoms; SOAP H1 power spectrum, "
          f"{sparse.n_features} columns; {len(sparse.keys)} (environment, atom) rows of "
          f"{len(atoms) ** 2}")  # fmt: skip
    print(f"{'path':48s} {'ms/frame':>10s}")
    for name, _ in rows:
        print(f"{name:48s} {1e3 * times[name]:10.1f}")
    old, new = times["dense (before)"], times["sparse (feature_jacobian, sparse=True)"]
    print(f"dense / sparse: {old / new:.1f}x; max |sparse - dense| {difference:.1e} "
          f"(largest entry {np.abs(dense).max():.1e})")  # fmt: skip
    anchor = times.get("featomic 0.6.7 SoapPowerSpectrum, gradients")
    if anchor is not None:
        print(f"featomic / sparse: {anchor / new:.2f}x")
    force_rows(potential, atoms, sparse, dense, args.repeats)
    if limiter is not None:
        limiter.unregister()


if __name__ == "__main__":
    main()
