"""Side-by-side timing and memory of the lambda-equivariant product, lodekit against featomic 0.6.7.

A hand-run script, not a test. The product is the one of the water experiment (lodekit
reproduce water): SOAP (r_c 3 Å, max_radial 4, max_angular 3) times LODE (smearing 1 Å,
radius 3 Å, same basis) coupled to lambda = 2, on the first ``--frames`` frames of the
liquid-water dielectric data (96 atoms each; ``../shared/data`` or ``--data``).

Both codes start from the same two expansions, computed by lodekit in the parent process and
handed over as arrays: featomic's ``ClebschGordanProduct`` gets them as TensorMaps with the
neighbour types moved to the properties (what its ``EquivariantPowerSpectrum`` does), lodekit's
``equivariant_product`` gets them as ``Expansion`` objects. Each code runs in a fresh
subprocess (this script with ``--worker``) with its thread count set in the environment before
numpy loads: one warm-up call, then ``--repeats`` timed calls (median reported). Peak memory is
``VmHWM - VmRSS`` (MiB) with ``VmRSS`` read before the warm-up call. Before timing, the parent
checks that the two results agree: for every centre and (l_1, l_2) pair, the squared norm of
the 2 lambda + 1 by n_features block (independent of property order and of the sign
convention of the coupling coefficients).

Example::

    python benchmarks/bench_equivariant.py --frames 200 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# the /proc/self/status reader of the expansion benchmark (this folder is on sys.path when a
# script here runs); importing it loads nothing heavy
from bench_expansions import _proc_status_kib

SOAP = dict(cutoff=3.0, smearing=0.3, max_radial=4, max_angular=3, cutoff_width=0.5)
LODE = dict(smearing=1.0, exponent=1, radius=3.0, max_radial=4, max_angular=3)
O3_LAMBDA = 2


def _featomic_inputs(soap, lode):
    import metatensor

    def prepare(tensor, k):
        # one block per (lambda, centre type); the neighbour types become properties so that
        # the product couples every pair of neighbour types, as in lodekit's product
        tensor = tensor.keys_to_properties("neighbor_type")
        tensor = metatensor.rename_dimension(
            tensor, "properties", "neighbor_type", f"neighbor_{k}_type"
        )
        return metatensor.rename_dimension(tensor, "properties", "n", f"n_{k}")

    return prepare(soap.to_tensormap(), 1), prepare(lode.to_tensormap(), 2)


def _product(code: str, soap, lode):
    """A no-argument function computing the product with ``code``."""
    if code == "lodekit":
        from lodekit.features import equivariant_product

        return lambda: equivariant_product(soap, lode, o3_lambda=O3_LAMBDA)
    import metatensor
    import numpy as np
    from featomic.clebsch_gordan import ClebschGordanProduct

    first, second = _featomic_inputs(soap, lode)
    product = ClebschGordanProduct(max_angular=soap.max_angular + lode.max_angular)
    keys = metatensor.Labels(["o3_lambda", "o3_sigma"], np.array([[O3_LAMBDA, 1]]))
    return lambda: product.compute(first, second, "l_1", "l_2", selected_keys=keys)


def worker(code: str, inputs: Path, repeats: int) -> dict:
    from lodekit.persistence import load_expansion

    soap = load_expansion(inputs / "soap.npz")
    lode = load_expansion(inputs / "lode.npz")
    run = _product(code, soap, lode)
    before = _proc_status_kib("VmRSS")
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
        del result
    times.sort()
    return {
        "median_s": times[len(times) // 2],
        "peak_mib": (_proc_status_kib("VmHWM") - before) / 1024,
    }


def check_agreement(soap, lode) -> float:
    """Largest relative difference of per-centre, per-(l_1, l_2) squared norms."""
    import numpy as np

    ours = _product("lodekit", soap, lode)()
    theirs = _product("featomic", soap, lode)()
    center_types = soap.samples[:, 2]
    worst = 0.0
    for key, block in theirs.items():
        rows = center_types == int(key["center_type"])
        columns = (ours.properties[:, 0] == int(key["l_1"])) & (
            ours.properties[:, 1] == int(key["l_2"])
        )
        reference = (ours.values[rows][:, :, columns] ** 2).sum(axis=(1, 2))
        other = (block.values**2).sum(axis=(1, 2))
        worst = max(worst, float(np.max(np.abs(other - reference)) / np.max(reference)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=None, help="dielectric water data folder")
    parser.add_argument("--worker", nargs=2, metavar=("CODE", "INPUTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        code, inputs = args.worker
        print(json.dumps(worker(code, Path(inputs), args.repeats)))
        return

    import featomic

    from lodekit import __version__
    from lodekit.datasets import load_dielectric_water
    from lodekit.expansion import LodeSphericalExpansion, SphericalExpansion
    from lodekit.persistence import save_expansion

    frames = load_dielectric_water(args.data)["frames"][: args.frames]
    soap = SphericalExpansion(**SOAP).compute(frames)
    lode = LodeSphericalExpansion(**LODE).compute(frames)
    worst = check_agreement(soap, lode)
    print(f"# lambda = {O3_LAMBDA} product, {len(frames)} water frames ({len(soap)} centres)")
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"# featomic {featomic.__version__}, lodekit {__version__}")
    print(f"# command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(f"# agreement: per-centre block norms differ by {worst:.1e} at most (relative)\n")
    print(
        "| threads | featomic median (s) | lodekit median (s) | speed-up | featomic peak (MiB) "
        "| lodekit peak (MiB) | memory ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        save_expansion(Path(folder) / "soap.npz", soap)
        save_expansion(Path(folder) / "lode.npz", lode)
        for threads in args.threads:
            env = dict(os.environ)
            for name in (
                "OMP_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS",
                "RAYON_NUM_THREADS",
            ):
                env[name] = str(threads)
            record = {}
            for code in ("featomic", "lodekit"):
                command = [
                    sys.executable,
                    __file__,
                    "--worker",
                    code,
                    folder,
                    "--repeats",
                    str(args.repeats),
                ]
                output = subprocess.run(
                    command, env=env, check=True, capture_output=True, text=True
                ).stdout
                record[code] = json.loads(output.strip().splitlines()[-1])
            f, lk = record["featomic"], record["lodekit"]
            print(
                f"| {threads} | {f['median_s']:.3f} | {lk['median_s']:.3f} | "
                f"{f['median_s'] / lk['median_s']:.2f} | {f['peak_mib']:.0f} | "
                f"{lk['peak_mib']:.0f} | {f['peak_mib'] / lk['peak_mib']:.2f} |"
            )


if __name__ == "__main__":
    main()
