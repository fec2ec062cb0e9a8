"""Throughput of dataset featurisation: serial versus a 2-worker Dask cluster.

A hand-run script, not a test. It featurises water64x8-like data (the eight 192-atom frames
of ``water64x8.extxyz`` repeated to ``--frames`` structures) into a feature store twice:

1. serial: ``featurize(..., n_workers=1, n_threads=1)``: features computed in this process
   on one thread (BLAS and OpenMP included: the script sets ``OMP_NUM_THREADS=1`` and
   friends before any import), chunks written on the store's writer threads meanwhile;
2. Dask: ``featurize(..., client=client)`` on a ``distributed.LocalCluster`` of
   ``--workers`` worker processes with one thread each (dask's nanny sets
   ``OMP_NUM_THREADS=1``, so each chunk runs on one thread there too).

Each run writes a fresh store in a temporary directory; the time is the wall time of the
``featurize`` call (reading the structures, computing, writing and fsync-ing every chunk).
The cluster's start-up (with lodekit imported in every worker) is timed apart and not
included. Both stores are checked to hold the same bytes. Printed: both times, structures
per second, and the ratio serial / Dask (the speed-up). Both runs pay for writing
(compression, SHA-256, fsync) in the driver, so the ratio approaches the number of workers
only on a machine with more free cores than workers.

The recipe is lodekit's default (``lodekit.features.DEFAULT_RECIPE``: LODE, smearing 1 Å,
max_radial 6, max_angular 4, radius 5 Å, power spectrum) unless ``--recipe FILE`` is given.

Example::

    python benchmarks/bench_featurize.py --frames 48 --chunk-size 4 --workers 2
    python benchmarks/bench_featurize.py --frames 10000 --chunk-size 64 --workers 2 --featomic 800
"""

from __future__ import annotations

import os

# one thread per process for every library (BLAS, OpenMP), set before any of them loads:
# the serial run is one core, and each Dask worker one core (dask's nanny does the same)
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import ase.io  # noqa: E402

from lodekit import __version__  # noqa: E402
from lodekit.batch import featurize  # noqa: E402
from lodekit.features import DEFAULT_RECIPE  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bench_systems"


def files_of(path: Path) -> dict:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA / "water64x8.extxyz")
    parser.add_argument("--frames", type=int, default=48, help="structures (frames repeated)")
    parser.add_argument("--chunk-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--recipe", type=Path, help="JSON recipe (default: DEFAULT_RECIPE)")
    parser.add_argument(
        "--featomic",
        type=int,
        default=0,
        help="also time featomic 0.6.7's LODE spherical expansion (the default recipe's "
        "calculator, without the power spectrum: a lower bound on its cost) on this many "
        "of the structures, with --workers rayon threads",
    )
    parser.add_argument("--skip-serial", action="store_true", help="only the Dask run")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    frames = ase.io.read(args.data, index=":")
    structures = [frames[i % len(frames)] for i in range(args.frames)]
    recipe = json.loads(args.recipe.read_text()) if args.recipe else DEFAULT_RECIPE
    n_atoms = sum(len(atoms) for atoms in structures)
    print(f"lodekit {__version__}, {platform.processor() or platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} usable cores")  # fmt: skip
    print(f"data: {args.data.name} x{args.frames / len(frames):g} = {args.frames} structures, "
          f"{n_atoms} atoms; chunk size {args.chunk_size}")  # fmt: skip
    print(f"recipe: {json.dumps(recipe)}")

    with tempfile.TemporaryDirectory() as tmp:
        serial_store = Path(tmp) / "serial"
        serial = None
        if not args.skip_serial:
            start = time.perf_counter()
            featurize(
                structures,
                serial_store,
                recipe,
                chunk_size=args.chunk_size,
                n_workers=1,
                n_threads=1,
                progress=False,
            )
            serial = time.perf_counter() - start

        start = time.perf_counter()
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            client.wait_for_workers(args.workers)
            # import lodekit in the workers now: a start-up cost, not throughput
            client.run(__import__, "lodekit.batch")
            startup = time.perf_counter() - start
            dask_store = Path(tmp) / "dask"
            start = time.perf_counter()
            featurize(
                structures, dask_store, recipe, chunk_size=args.chunk_size, client=client,
                progress=False,
            )  # fmt: skip
            distributed = time.perf_counter() - start
        identical = serial is not None and files_of(serial_store) == files_of(dask_store)

    if serial is not None:
        print(f"serial (compute on 1 thread):   {serial:8.2f} s  "
              f"{args.frames / serial:7.2f} structures/s")  # fmt: skip
    print(f"dask ({args.workers} workers x 1 thread):  {distributed:8.2f} s  "
          f"{args.frames / distributed:7.2f} structures/s  (cluster start-up {startup:.1f} s, "
          "not included)")  # fmt: skip
    if serial is not None:
        print(f"ratio serial / dask: {serial / distributed:.2f}")
        print(f"stores identical: {identical}")
    if args.featomic:
        seconds = featomic_time(structures[: args.featomic], recipe, args.workers)
        rate = args.featomic / seconds
        print(f"featomic LODE expansion only ({args.workers} threads, {args.featomic} "
              f"structures): {seconds:8.2f} s  {rate:7.2f} structures/s; "
              f"lodekit dask / featomic: {(args.frames / distributed) / rate:.2f}")  # fmt: skip


def featomic_time(structures, recipe, threads: int) -> float:
    """Seconds for featomic's LodeSphericalExpansion of the recipe's (single LODE) block on
    ``structures``, one call (it parallelises over structures with rayon)."""
    os.environ["RAYON_NUM_THREADS"] = str(threads)  # read when featomic's pool first starts
    import featomic

    (block,) = recipe["blocks"]
    hypers = block["expansion"]
    if hypers["calculator"] != "lode_spherical_expansion":
        raise SystemExit("--featomic needs a recipe of one LODE block (the default recipe)")
    calculator = featomic.LodeSphericalExpansion(
        density={"type": "SmearedPowerLaw", "smearing": hypers["smearing"], "exponent": 1},
        basis={
            "type": "TensorProduct",
            "max_angular": hypers["max_angular"],
            "radial": {"type": "Gto", "max_radial": hypers["max_radial"],
                       "radius": hypers["radius"]},
        },
    )  # fmt: skip
    calculator.compute(structures[:1])  # warm-up
    start = time.perf_counter()
    calculator.compute(structures)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
