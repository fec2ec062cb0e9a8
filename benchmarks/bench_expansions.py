"""Side-by-side timing and memory benchmark of lodekit against featomic 0.6.7.

This is a hand-run script, not a test. For every combination of code (featomic, lodekit),
system, hyperparameter set and thread count, it starts a fresh Python subprocess (this script
re-invoked with a hidden ``--worker`` flag), so that the peak memory of each measurement is
isolated from the others and from the parent process.

What is measured
----------------
In each worker, with the thread limits already in the environment before numpy, featomic or
lodekit is imported (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``RAYON_NUM_THREADS`` all set to the thread count) and inside
``threadpoolctl.threadpool_limits(threads)``:

1. import the code, read the structures with ``ase.io.read`` and build the calculator;
2. read the resident memory ``VmRSS`` from ``/proc/self/status``;
3. run one warm-up ``compute`` (spline tables, caches and lazy initialisation happen here, for
   both codes) and discard its result;
4. run ``--repeats`` timed ``compute`` calls (``time.perf_counter``), discarding each result
   before the next call;
5. read the peak resident memory ``VmHWM`` from ``/proc/self/status``.

The reported time is the median of the timed calls. The reported peak memory is
``VmHWM - VmRSS`` with ``VmRSS`` taken *before the warm-up* call, because the warm-up (building
the spline tables) is usually where the peak is reached. Memory is in MiB (2**20 bytes).

The table printed to stdout (markdown) gives, per (set, system, threads): both medians, the
speed-up ``featomic / lodekit`` (> 1 means lodekit is faster), both peak-memory increases and the
memory ratio ``featomic / lodekit`` (> 1 means lodekit uses less). A header gives the date, the
CPU, numpy, featomic and lodekit versions, the BLAS kernel seen by a worker and the command line.

Systems are ASE-readable files in ``../shared/data/bench_systems`` relative to the repository
root (override with ``--data``): ``nacl64``, ``water64``, ``water512`` and ``water64x8`` (eight
frames, all computed in one call as a list).

Hyperparameter sets: ``lode-h1`` / ``soap-h1`` use max_radial=6, max_angular=4; ``lode-h2`` /
``soap-h2`` use max_radial=8, max_angular=6. LODE: smearing 1.0, exponent 1, radius 5.0,
k_cutoff 1.2 pi / smearing, featomic default spline. SOAP: cutoff 5.0, shifted cosine of width
0.5, Gaussian density of width 0.3, default spline accuracy (1e-8) in both codes.

``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` are passed through unchanged by default;
``--unset-openblas-coretype`` removes both from the workers' environment (never from the
parent's). Whether they were set is printed in the header.

Examples
--------
Quick run on the small systems with one thread::

    python benchmarks/bench_expansions.py --systems nacl64 water64 --threads 1

Full run (all systems, all sets, 1 and 2 threads, 5 repeats), saving the raw results::

    python benchmarks/bench_expansions.py --out bench_results.json

Before/after a change: ``--baseline-src OLD/src`` (e.g. a ``git worktree`` of the older commit)
adds a third code, ``baseline``: lodekit imported from that tree (``PYTHONPATH``), timed in the
same run, interleaved with the other two, so that both trees' ratios against featomic come from
the same machine state::

    python benchmarks/bench_expansions.py --baseline-src /tmp/old/src --systems water64
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "bench_systems"

SYSTEMS = {
    "nacl64": ("nacl64.extxyz", False),
    "water64": ("water64.extxyz", False),
    "water512": ("water512.extxyz", False),
    # eight frames, read with index=":" and computed in a single call as a list
    "water64x8": ("water64x8.extxyz", True),
    # isolated molecule: lodekit computes it exactly without a box; featomic refuses molecules,
    # so it gets the molecule centred in a cubic vacuum box of side DIMER_BOX (O(1/L) accurate)
    "dimer18": ("dimer18.extxyz", False),
}
DIMER_BOX = 30.0

# (kind, max_radial, max_angular, LODE smearing, lodekit accuracy)
SETS = {
    "lode-h1": ("lode", 6, 4, 1.0, None),
    "lode-h2": ("lode", 8, 6, 1.0, None),
    # small smearing: featomic at its default k_cutoff 1.2 pi / sigma (about 1e-4 relative
    # truncation error); lodekit asked for accuracy 1e-5 (range separation)
    "lode-h1-s03": ("lode", 6, 4, 0.3, 1e-5),
    "soap-h1": ("soap", 6, 4, None, None),
    "soap-h2": ("soap", 8, 6, None, None),
}
DEFAULT_SETS = ("lode-h1", "lode-h2", "soap-h1", "soap-h2")
DEFAULT_SYSTEMS = ("nacl64", "water64", "water512", "water64x8")

CODES = ("featomic", "lodekit")

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "RAYON_NUM_THREADS",
)
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# LODE hyperparameters (smearing per set)
LODE_EXPONENT = 1
LODE_RADIUS = 5.0
# SOAP hyperparameters
SOAP_CUTOFF = 5.0
SOAP_CUTOFF_WIDTH = 0.5
SOAP_SMEARING = 0.3


# --------------------------------------------------------------------------------------------
# worker side: nothing here may import numpy before the thread limits are in the environment
# --------------------------------------------------------------------------------------------


def _proc_status_kib(field: str) -> int:
    """Value of ``field`` (e.g. ``VmRSS``) in ``/proc/self/status``, in KiB."""
    with open("/proc/self/status") as fd:
        for line in fd:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _make_calculator(code: str, set_name: str):
    import math

    kind, max_radial, max_angular, smearing, accuracy = SETS[set_name]
    if code == "featomic":
        import featomic

        if kind == "lode":
            return featomic.LodeSphericalExpansion(
                k_cutoff=1.2 * math.pi / smearing,
                density={
                    "type": "SmearedPowerLaw",
                    "smearing": smearing,
                    "exponent": LODE_EXPONENT,
                },
                basis={
                    "type": "TensorProduct",
                    "max_angular": max_angular,
                    "radial": {"type": "Gto", "max_radial": max_radial, "radius": LODE_RADIUS},
                },
            )
        return featomic.SphericalExpansion(
            cutoff={
                "radius": SOAP_CUTOFF,
                "smoothing": {"type": "ShiftedCosine", "width": SOAP_CUTOFF_WIDTH},
            },
            density={"type": "Gaussian", "width": SOAP_SMEARING},
            basis={
                "type": "TensorProduct",
                "max_angular": max_angular,
                "radial": {"type": "Gto", "max_radial": max_radial},
            },
        )

    import lodekit

    if kind == "lode":
        # lodekit's default k_cutoff is 1.2 pi / smearing, the same as featomic above, unless
        # the set asks for an accuracy
        return lodekit.LodeSphericalExpansion(
            smearing=smearing,
            exponent=LODE_EXPONENT,
            max_radial=max_radial,
            max_angular=max_angular,
            radius=LODE_RADIUS,
            accuracy=accuracy,
        )
    # default spline_accuracy=1e-8, like featomic's default
    return lodekit.SphericalExpansion(
        cutoff=SOAP_CUTOFF,
        cutoff_function="shifted_cosine",
        cutoff_width=SOAP_CUTOFF_WIDTH,
        smearing=SOAP_SMEARING,
        max_radial=max_radial,
        max_angular=max_angular,
    )


def _output_nbytes(result) -> int:
    """Size in bytes of the coefficient arrays of a featomic TensorMap or a lodekit Expansion."""
    if hasattr(result, "blocks"):
        return int(sum(block.values.nbytes for block in result.blocks()))
    return int(sum(values.nbytes for values in result.values))


def _blas_info(threadpool_info) -> list:
    keep = ("user_api", "internal_api", "architecture", "num_threads", "version", "prefix")
    return [{key: lib.get(key) for key in keep} for lib in threadpool_info()]


def _versions() -> dict:
    import ase
    import featomic
    import numpy

    import lodekit

    return {
        "numpy": numpy.__version__,
        "ase": ase.__version__,
        "featomic": featomic.__version__,
        "lodekit": lodekit.__version__,
    }


def run_worker(args: argparse.Namespace) -> None:
    """Run one measurement (or, for ``--worker info``, only report versions) as one JSON line."""
    threads = args.threads[0]
    # the parent already set these; repeat them in case the worker is started by hand
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)

    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(threads):
        if args.worker == "info":
            # import everything so that every BLAS/OpenMP library that will be loaded is seen
            versions = _versions()
            record = {
                "versions": versions,
                "threads": threads,
                "blas": _blas_info(threadpool_info),
                "openblas_env": {name: os.environ.get(name) for name in OPENBLAS_VARIABLES},
            }
            print(json.dumps(record), flush=True)
            return

        code = args.worker
        system = args.systems[0]
        set_name = args.sets[0]
        filename, multi_frame = SYSTEMS[system]

        import ase.io

        path = Path(args.data) / filename
        structures = ase.io.read(path, index=":") if multi_frame else ase.io.read(path)
        if code == "featomic" and not multi_frame and not structures.pbc.any():
            structures.cell = [DIMER_BOX] * 3
            structures.center()
            structures.pbc = True
        calculator = _make_calculator(code, set_name)
        if code == "featomic":
            import featomic

            version = featomic.__version__
        else:
            import vesin  # noqa: F401  lodekit imports it (and torch, if installed) on first use

            import lodekit

            version = lodekit.__version__

        # Resident memory BEFORE the warm-up compute: the warm-up builds the spline tables and
        # caches and is usually where the peak happens, so it must be inside the measured span.
        rss_before_kib = _proc_status_kib("VmRSS")

        result = calculator.compute(structures)
        output_nbytes = _output_nbytes(result)
        del result
        rss_after_warmup_kib = _proc_status_kib("VmRSS")

        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = calculator.compute(structures)
            times.append(time.perf_counter() - start)
            del result

        hwm_kib = _proc_status_kib("VmHWM")

        n_frames = len(structures) if multi_frame else 1
        n_atoms = sum(len(s) for s in structures) if multi_frame else len(structures)
        record = {
            "code": code,
            "version": version,
            "system": system,
            "set": set_name,
            "threads": threads,
            "repeats": args.repeats,
            "n_frames": n_frames,
            "n_atoms": n_atoms,
            "times_s": times,
            "median_s": statistics.median(times),
            "rss_before_kib": rss_before_kib,
            "rss_after_warmup_kib": rss_after_warmup_kib,
            "hwm_kib": hwm_kib,
            "peak_increase_mib": (hwm_kib - rss_before_kib) / 1024,
            "output_mib": output_nbytes / 2**20,
            "blas": _blas_info(threadpool_info),
        }
    print(json.dumps(record), flush=True)


# --------------------------------------------------------------------------------------------
# parent side
# --------------------------------------------------------------------------------------------


def _worker_env(threads: int, unset_openblas: bool) -> dict:
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    if unset_openblas:
        for name in OPENBLAS_VARIABLES:
            env.pop(name, None)
    return env


def _spawn(args: argparse.Namespace, worker: str, threads: int, system=None, set_name=None):
    """Run one worker subprocess; return (record or None, error message or None).

    The ``baseline`` worker is lodekit imported from ``--baseline-src`` (first on PYTHONPATH).
    """
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        worker,
        "--threads",
        str(threads),
        "--repeats",
        str(args.repeats),
        "--data",
        str(args.data),
    ]
    if system is not None:
        command += ["--systems", system, "--sets", set_name]
    env = _worker_env(threads, args.unset_openblas_coretype)
    if worker == "baseline":
        env["PYTHONPATH"] = os.pathsep.join([args.baseline_src, env.get("PYTHONPATH", "")])
    try:
        process = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=args.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {args.timeout} s"

    if process.returncode != 0:
        tail = "\n".join(process.stderr.strip().splitlines()[-15:])
        return None, f"exit status {process.returncode}:\n{tail}"
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return None, f"no JSON output; stdout:\n{process.stdout}\nstderr:\n{process.stderr}"
    return json.loads(lines[-1]), None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fd:
            for line in fd:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _format_blas(blas: list) -> str:
    if not blas:
        return "none loaded"
    return "; ".join(
        f"{lib['internal_api']} {lib.get('version')} arch={lib.get('architecture')} "
        f"num_threads={lib['num_threads']} ({lib.get('prefix')})"
        for lib in blas
    )


def _ratio(numerator, denominator, digits=2) -> str:
    if numerator is None or denominator is None or denominator <= 0 or numerator < 0:
        return "n/a"
    return f"{numerator / denominator:.{digits}f}"


def _cell(record, key, scale=1.0, digits=1) -> str:
    if record is None:
        return "ERR"
    return f"{record[key] * scale:.{digits}f}"


def _codes(args: argparse.Namespace) -> tuple:
    return (*CODES, "baseline") if args.baseline_src else CODES


def _print_table(rows, against: str = "lodekit") -> None:
    """Markdown table of featomic against ``against`` (lodekit, or the baseline tree)."""
    header = (
        f"| set | system | threads | featomic median (ms) | {against} median (ms) "
        f"| speed-up (featomic/{against}) | featomic peak (MiB) | {against} peak (MiB) "
        f"| memory ratio (featomic/{against}) |"
    )
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    for set_name, system, threads, pair in rows:
        fea, lod = pair["featomic"], pair.get(against)
        speed = _ratio(fea and fea["median_s"], lod and lod["median_s"])
        memory = _ratio(fea and fea["peak_increase_mib"], lod and lod["peak_increase_mib"])
        print(
            f"| {set_name} | {system} | {threads} "
            f"| {_cell(fea, 'median_s', 1e3, 2)} | {_cell(lod, 'median_s', 1e3, 2)} | {speed} "
            f"| {_cell(fea, 'peak_increase_mib')} | {_cell(lod, 'peak_increase_mib')} "
            f"| {memory} |"
        )


def run_parent(args: argparse.Namespace) -> int:
    command_line = shlex.join([Path(sys.executable).name, *sys.argv])
    openblas_env = {name: os.environ.get(name) for name in OPENBLAS_VARIABLES}

    info = {}
    for threads in args.threads:
        record, error = _spawn(args, "info", threads)
        if error is not None:
            print(f"info worker failed ({threads} threads): {error}", file=sys.stderr)
            return 1
        info[threads] = record

    first = info[args.threads[0]]
    print("# lodekit vs featomic benchmark")
    print()
    print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"- host: {platform.node()} ({platform.machine()}), {os.cpu_count()} logical CPUs")
    print(f"- platform.processor(): {platform.processor() or 'n/a'}")
    print(f"- CPU model (/proc/cpuinfo): {_cpu_model()}")
    print(f"- python: {platform.python_version()}")
    for name in ("numpy", "ase", "featomic", "lodekit"):
        print(f"- {name}: {first['versions'][name]}")
    for threads, record in info.items():
        print(f"- BLAS in a worker with {threads} thread(s): {_format_blas(record['blas'])}")
    for name, value in openblas_env.items():
        state = "not set" if value is None else f"set to {value!r}"
        action = ""
        if value is not None:
            action = (
                ", REMOVED from the workers' environment"
                if args.unset_openblas_coretype
                else ", passed to the workers unchanged"
            )
        print(f"- {name}: {state}{action}")
    print(f"- repeats: {args.repeats} timed calls after one warm-up call (median reported)")
    print(f"- data: {args.data}")
    print(f"- command: {command_line}")
    print()
    sys.stdout.flush()

    results = []
    errors = []
    rows = []
    for set_name in args.sets:
        for system in args.systems:
            for threads in args.threads:
                pair = {}
                for code in _codes(args):
                    label = f"{code} {set_name} {system} threads={threads}"
                    print(f"running {label} ...", file=sys.stderr, flush=True)
                    start = time.perf_counter()
                    record, error = _spawn(args, code, threads, system, set_name)
                    elapsed = time.perf_counter() - start
                    if error is not None:
                        errors.append((label, error))
                        print(f"  FAILED: {error}", file=sys.stderr, flush=True)
                    else:
                        results.append(record)
                        print(
                            f"  median {record['median_s'] * 1e3:.1f} ms, peak "
                            f"+{record['peak_increase_mib']:.1f} MiB ({elapsed:.1f} s wall)",
                            file=sys.stderr,
                            flush=True,
                        )
                    pair[code] = record
                rows.append((set_name, system, threads, pair))

    _print_table(rows)
    if args.baseline_src:
        print()
        print(f"Baseline: lodekit from {args.baseline_src}, same run, same workers.")
        print()
        _print_table(rows, against="baseline")
    print()
    print(
        "Times: median of the timed compute calls. Peak: VmHWM at the end minus VmRSS before "
        "the warm-up call, in MiB. Ratios > 1 favour lodekit."
    )

    if errors:
        print()
        print("## Errors")
        for label, error in errors:
            print()
            print(f"{label}:")
            print("```")
            print(error)
            print("```")

    if args.out is not None:
        dump = {
            "command": command_line,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "cpu_model": _cpu_model(),
            "processor": platform.processor(),
            "openblas_env": openblas_env,
            "unset_openblas_coretype": args.unset_openblas_coretype,
            "info": {str(threads): record for threads, record in info.items()},
            "results": results,
            "errors": [{"label": label, "error": error} for label, error in errors],
        }
        Path(args.out).write_text(json.dumps(dump, indent=2) + "\n")
        print(f"\nraw results written to {args.out}", file=sys.stderr)

    return 1 if errors else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Time lodekit against featomic 0.6.7 (one fresh subprocess per measurement).",
    )
    parser.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        help="directory with the benchmark structures (default: %(default)s)",
    )
    parser.add_argument(
        "--systems",
        nargs="+",
        choices=list(SYSTEMS),
        default=list(DEFAULT_SYSTEMS),
        metavar="SYSTEM",
        help=f"systems to run, among {', '.join(SYSTEMS)} (default: the periodic ones)",
    )
    parser.add_argument(
        "--sets",
        nargs="+",
        choices=list(SETS),
        default=list(DEFAULT_SETS),
        metavar="SET",
        help=f"hyperparameter sets, among {', '.join(SETS)} (default: H1 and H2 sets)",
    )
    parser.add_argument(
        "--threads",
        nargs="+",
        type=int,
        default=[1, 2],
        metavar="N",
        help="thread counts (default: 1 2)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (median reported)")
    parser.add_argument("--out", default=None, metavar="FILE.json", help="dump raw results here")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds per worker (default: %(default)s)"
    )
    parser.add_argument(
        "--unset-openblas-coretype",
        action="store_true",
        help="remove OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE from the workers' environment",
    )
    parser.add_argument(
        "--baseline-src",
        default=None,
        metavar="SRC",
        help="also time lodekit imported from this source folder (an older tree), same run",
    )
    parser.add_argument(
        "--worker", choices=["info", *CODES, "baseline"], default=None, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)

    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if any(threads < 1 for threads in args.threads):
        parser.error("--threads must be positive")

    if args.worker is not None:
        run_worker(args)
        return 0

    args.data = str(Path(args.data).resolve())
    if args.baseline_src is not None:
        args.baseline_src = str(Path(args.baseline_src).resolve())
        if not (Path(args.baseline_src) / "lodekit" / "__init__.py").is_file():
            parser.error(f"--baseline-src {args.baseline_src} holds no lodekit package")
    missing = [
        SYSTEMS[system][0]
        for system in args.systems
        if not (Path(args.data) / SYSTEMS[system][0]).is_file()
    ]
    if missing:
        parser.error(f"missing in {args.data}: {', '.join(missing)}")
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
