"""Time and peak memory of the water experiment's lambda = 2 models, two lodekit trees side by side.

A hand-run script, not a test. featomic has no regression models, so there is no external
anchor here: the anchor is another lodekit source tree (``--baseline-src``, e.g. a worktree of
an older commit), run on the same input in the same invocation.

Input: the features of ``lodekit reproduce water`` on the first ``--frames`` frames of the
liquid-water dielectric data (96 atoms each; ``../shared/data`` or ``--data``): the SOAP(3 Å)
power spectrum (300 invariants) beside the SOAP(3 Å) x LODE(3 Å) lambda = 2 product (5 x 700
columns), and the lambda = 2 part of epsilon_inf as the target. Both models are fitted on all
frames and predict them back: ``EquivariantRidge`` on the lambda columns, and
``EquivariantKernelRidge`` (zeta 2, ``--sparse`` FPS points) on all columns, each with the
experiment's alpha grid and ``reduce="mean"``. Every (tree, model) pair runs in a fresh
subprocess (this script with ``--worker``): peak memory is ``VmHWM - VmRSS`` (MiB) with
``VmRSS`` read after the input is loaded, so it counts what the model adds. The predictions of
the two trees are compared (largest difference relative to the largest prediction).

Example::

    git worktree add /tmp/old <commit>
    python benchmarks/bench_lambda_models.py --frames 400 --baseline-src /tmp/old/src
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

# the water experiment's expansions, as in the product benchmark, and the /proc/self/status
# reader of the expansion benchmark (this folder is on sys.path when a script here runs);
# importing them loads nothing heavy
from bench_equivariant import LODE, SOAP
from bench_expansions import _proc_status_kib

MODELS = ("EquivariantRidge", "EquivariantKernelRidge")


def worker(model_name: str, inputs: Path, n_sparse: int) -> dict:
    import numpy as np

    import lodekit
    from lodekit.experiments.water import ALPHAS
    from lodekit.models import EquivariantKernelRidge, EquivariantRidge

    # the parent wrote this file itself a moment ago: a plain npz of arrays
    with np.load(inputs / "input.npz") as data:
        x, groups, y = data["x"], data["groups"], data["y"]
        n_invariant = int(data["n_invariant"])
    if model_name == "EquivariantRidge":
        model = EquivariantRidge(o3_lambda=2, alpha=ALPHAS, reduce="mean")
        x = x[:, n_invariant:]
    else:
        model = EquivariantKernelRidge(
            o3_lambda=2,
            n_invariant_features=n_invariant,
            zeta=2,
            alpha=ALPHAS,
            n_sparse=n_sparse,
            reduce="mean",
        )
    before = _proc_status_kib("VmRSS")
    start = time.perf_counter()
    model.fit(x, y, groups)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    prediction = model.predict(x, groups)
    predict_s = time.perf_counter() - start
    np.save(inputs / f"prediction-{model_name}-{os.getpid()}.npy", prediction)
    return {
        "fit_s": fit_s,
        "predict_s": predict_s,
        "peak_mib": (_proc_status_kib("VmHWM") - before) / 1024,
        "prediction": str(inputs / f"prediction-{model_name}-{os.getpid()}.npy"),
        "package": str(Path(lodekit.__file__).parent),
    }


def _run(model_name: str, folder: str, n_sparse: int, src: str | None) -> dict:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, __file__, "--worker", model_name, folder, "--sparse", str(n_sparse)]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--sparse", type=int, default=1000, help="FPS points of the kernel model")
    parser.add_argument("--baseline-src", default=None, help="src folder of the anchor tree")
    parser.add_argument("--data", type=Path, default=None, help="dielectric water data folder")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "INPUTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model_name, inputs = args.worker
        print(json.dumps(worker(model_name, Path(inputs), args.sparse)))
        return

    import numpy as np

    from lodekit import __version__
    from lodekit.datasets import load_dielectric_water
    from lodekit.expansion import LodeSphericalExpansion, SphericalExpansion
    from lodekit.features import equivariant_product, power_spectrum
    from lodekit.models import cartesian_to_spherical

    data = load_dielectric_water(args.data)
    frames = data["frames"][: args.frames]
    soap = SphericalExpansion(**SOAP).compute(frames)
    lode = LodeSphericalExpansion(**LODE).compute(frames)
    lam = equivariant_product(soap, lode, o3_lambda=2).values
    invariants = power_spectrum(soap).values
    x = np.hstack([invariants, lam.reshape(len(lam), -1)])
    _, y = cartesian_to_spherical(data["epsilon"][: args.frames])
    groups = soap.samples[:, 0]
    del soap, lode, lam

    trees = {"this tree": None}
    if args.baseline_src is not None:
        trees["baseline"] = args.baseline_src
    print(f"# lambda = 2 models, {len(frames)} water frames ({len(x)} environments, ", end="")
    print(f"{x.shape[1]} columns)")
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPUs, ", end="")
    print(f"lodekit {__version__}")
    print(f"# command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(f"# input x: {x.nbytes / 2**20:.0f} MiB\n")
    print("| model | tree (package folder) | fit (s) | predict (s) | peak (MiB) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        np.savez(
            Path(folder) / "input.npz", x=x, groups=groups, y=y, n_invariant=invariants.shape[1]
        )
        del x
        ratios = []
        for model_name in MODELS:
            records = {
                tree: _run(model_name, folder, args.sparse, src) for tree, src in trees.items()
            }
            for tree, record in records.items():
                print(
                    f"| {model_name} | {tree} ({record['package']}) | {record['fit_s']:.2f} "
                    f"| {record['predict_s']:.2f} | {record['peak_mib']:.0f} |"
                )
            if "baseline" in records:
                new, old = records["this tree"], records["baseline"]
                a, b = np.load(new["prediction"]), np.load(old["prediction"])
                ratios.append(
                    f"# {model_name}: baseline / this tree: "
                    f"fit time {old['fit_s'] / new['fit_s']:.2f}, "
                    f"predict time {old['predict_s'] / new['predict_s']:.2f}, "
                    f"peak {old['peak_mib'] / new['peak_mib']:.2f}; predictions differ by "
                    f"{np.abs(a - b).max() / np.abs(b).max():.1e} (relative)"
                )
    print()
    print("\n".join(ratios))


if __name__ == "__main__":
    main()
