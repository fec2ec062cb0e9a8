"""Time and peak memory of periodic LODE from 10^3 to 10^5 atoms (liquid-water boxes).

Each size runs in a fresh process (peak resident memory is per process): the water512 box
(1536 atoms) repeated 1, 2, 3 and 4 times per axis. lodekit (``kspace_method="auto"``, which
takes the non-uniform FFT path from a few thousand atoms on) runs at every size; the direct
k-space sum and featomic 0.6.7 (the anchor) run up to ``--anchor-max`` atoms, where they take
minutes. Hyperparameters: LODE H1 of ../shared/spec/performance.md (smearing 1 Å, exponent 1,
max_radial 6, max_angular 4, radius 5 Å, k_cutoff 1.2 pi); ``--accuracy`` switches lodekit to
the accuracy contract instead. The growth exponent is the slope of log(time) against
log(atoms) over the lodekit runs. Hand-run, not a test::

    python benchmarks/bench_scaling.py [--repeats 1 2 3 4] [--anchor-max 12288] [--accuracy 1e-6]

It also prints the growth exponent of peak memory and draws time per atom against atoms beside
featomic and the mesh-rate floor of performance.md (``--figure``, default
benchmarks/figures/scaling.png).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

_CHILD = r"""
import json, resource, sys, time
import ase.io
import numpy as np
which, path, repeat, accuracy = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
atoms = ase.io.read(path).repeat(repeat)
hypers = dict(smearing=1.0, max_radial=6, max_angular=4, radius=5.0)
if which == "featomic":
    import featomic
    calculator = featomic.LodeSphericalExpansion(
        k_cutoff=1.2 * np.pi,
        density={"type": "SmearedPowerLaw", "smearing": 1.0, "exponent": 1},
        basis={"type": "TensorProduct", "max_angular": 4,
               "radial": {"type": "Gto", "max_radial": 6, "radius": 5.0}},
    )
    start = time.perf_counter()
    calculator.compute(atoms)
    plan = {}
else:
    import lodekit
    options = {"k_cutoff": 1.2 * np.pi} if accuracy == "none" else {"accuracy": float(accuracy)}
    calculator = lodekit.LodeSphericalExpansion(
        kspace_method="auto" if which == "lodekit" else "direct", **hypers, **options
    )
    plan = calculator.plan(atoms)[0]
    start = time.perf_counter()
    calculator.compute(atoms)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
print(json.dumps({"atoms": len(atoms), "seconds": elapsed, "peak_gib": peak, "plan": plan}))
"""


def _run(which, path, repeat, accuracy, timeout):
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, which, str(path), str(repeat), str(accuracy)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--anchor-max", type=int, default=12288)
    parser.add_argument("--accuracy", default="none", help="e.g. 1e-6; default: k_cutoff mode")
    parser.add_argument("--timeout", type=int, default=3600)
    parser.add_argument(
        "--figure",
        default=str(Path(__file__).resolve().parent / "figures" / "scaling.png"),
        help="time per atom against atoms: lodekit, featomic and the mesh-rate floor",
    )
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data")
    )
    args = parser.parse_args(argv)
    path = Path(args.data) / "bench_systems" / "water512.extxyz"
    print(f"# LODE H1 scaling, {datetime.date.today()}, {platform.machine()}, one process each")
    print(
        f"# contract: {'k_cutoff 1.2 pi (featomic)' if args.accuracy == 'none' else args.accuracy}"
    )
    print(
        "| atoms | lodekit auto (s) | plan | peak (GiB) | lodekit direct (s) | "
        "featomic (s) | featomic / lodekit |"
    )
    print("|---|---|---|---|---|---|---|")
    sizes, times, memories, anchors = [], [], [], []
    for repeat in args.repeats:
        ours = _run("lodekit", path, repeat, args.accuracy, args.timeout)
        n_atoms = 1536 * repeat**3
        plan = ours.get("plan", {})
        description = f"{plan.get('method', '?')}/{plan.get('kspace_method', '?')}"
        direct = featomic = None
        if n_atoms <= args.anchor_max:
            direct = _run("direct", path, repeat, args.accuracy, args.timeout).get("seconds")
            featomic = _run("featomic", path, repeat, args.accuracy, args.timeout).get("seconds")
        seconds = ours.get("seconds")
        if seconds is not None:
            sizes.append(n_atoms)
            times.append(seconds)
            memories.append(ours["peak_gib"])
        if featomic is not None:
            anchors.append((n_atoms, featomic))

        def cell(value, digits=2):
            return "-" if value is None else f"{value:.{digits}f}"

        ratio = None if featomic is None or seconds is None else featomic / seconds
        print(
            f"| {n_atoms} | {cell(seconds)} | {description} | {cell(ours.get('peak_gib'))} | "
            f"{cell(direct)} | {cell(featomic)} | {cell(ratio, 1)} |",
            flush=True,
        )
    if len(sizes) >= 2:
        slope = np.polyfit(np.log(sizes), np.log(times), 1)[0]
        memory_slope = np.polyfit(np.log(sizes), np.log(memories), 1)[0]
        print(f"\ngrowth exponent (lodekit, log time vs log atoms): {slope:.2f}")
        print(f"growth exponent (lodekit, log peak memory vs log atoms): {memory_slope:.2f}")
    if sizes and args.figure:
        _figure(Path(args.figure), sizes, times, anchors, args.accuracy)


#: The mesh-Ewald rate of ../shared/spec/performance.md: one long-range channel costs about
#: 0.5 µs per atom (LAMMPS PPPM, one core); LODE H1 on water has 2 x 25 x 7 channels.
FLOOR_PER_ATOM = 350 * 0.5e-6


def _figure(path: Path, sizes, times, anchors, accuracy):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    sizes = np.asarray(sizes, dtype=float)
    ax.loglog(sizes, 1e3 * np.asarray(times) / sizes, "o-", label="lodekit")
    if anchors:
        n, t = np.array(anchors, dtype=float).T
        ax.loglog(n, 1e3 * t / n, "s-", label="featomic 0.6.7")
    ax.axhline(1e3 * FLOOR_PER_ATOM, color="k", ls="--", label="mesh-rate floor (1 core)")
    ax.set_xlabel("atoms")
    ax.set_ylabel("time per atom (ms)")
    contract = "k_cutoff 1.2 pi" if accuracy == "none" else f"accuracy {accuracy}"
    ax.set_title(f"LODE H1, liquid water, {contract}")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
