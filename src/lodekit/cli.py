"""The ``lodekit`` command line: a table of sub-commands, each a thin call into the library."""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import LodekitError

__all__ = ["main"]


def _example(args) -> int:
    import ase.io

    from .expansion import LodeSphericalExpansion

    path = args.structure or resources.files("lodekit") / "data" / "water64.extxyz"
    atoms = ase.io.read(str(path))
    calculator = LodeSphericalExpansion(
        smearing=1.0, exponent=1, max_radial=6, max_angular=4, radius=5.0
    )
    start = time.perf_counter()
    expansion = calculator.compute(atoms)
    elapsed = time.perf_counter() - start

    print(f"structure: {Path(str(path)).name}: {len(atoms)} atoms, cell {atoms.cell.lengths()} Å")
    print(f"calculator: {calculator!r} (k_cutoff {calculator.effective_k_cutoff:.4f} 1/Å)")
    print(f"computed {expansion!r} in {elapsed * 1e3:.1f} ms")
    for l, block in enumerate(expansion.values):
        print(f"  l={l}: array {block.shape}, |c| max {np.abs(block).max():.4e}")
    # LODE nu = 1 per centre species: the l = 0 coefficients, averaged
    for z in expansion.center_types:
        rows = expansion.samples[:, 2] == z
        mean = expansion.values[0][rows, :, 0, 0].mean(axis=0)
        channels = ", ".join(
            f"Z={t}: {m:+.4f}" for t, m in zip(expansion.neighbor_types, mean, strict=True)
        )
        print(f"  centre Z={z}: mean c_n=0,l=0 per neighbour species: {channels}")
    if args.out:
        from .io import save_expansion

        save_expansion(args.out, expansion)
        print(f"saved to {args.out}")
    return 0


def _expand(args) -> int:
    import ase.io

    from .expansion import LodeSphericalExpansion, SphericalExpansion
    from .io import save_expansion

    classes = {"lode": LodeSphericalExpansion, "soap": SphericalExpansion}
    try:
        hypers = json.loads(Path(args.hypers).read_text())
    except OSError as err:
        raise LodekitError(f"`--hypers` {args.hypers!r} cannot be read: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise LodekitError(f"`--hypers` {args.hypers!r} is not valid JSON: {err}") from None
    try:
        calculator = classes[args.calculator].from_json(json.dumps(hypers))
    except LodekitError as err:
        message = str(err).replace("`text` ", "")
        raise LodekitError(f"`--hypers` {args.hypers!r} ({args.calculator}): {message}") from None
    try:
        frames = ase.io.read(args.input, index=":")
    except FileNotFoundError:
        raise LodekitError(f"`INPUT` {args.input!r} does not exist") from None
    except Exception as err:  # ase raises many types for unreadable files
        raise LodekitError(
            f"`INPUT` {args.input!r} is not a readable structure file: {err}"
        ) from None
    expansion = calculator.compute(frames)
    save_expansion(args.out, expansion)
    print(f"{expansion!r} -> {args.out}")
    return 0


def _reproduce(args) -> int:
    from .experiments import reproduce

    mode = "full" if args.full else "quick"
    out = Path(args.out or f"lodekit-{args.experiment}-{mode}")
    metrics = reproduce(args.experiment, mode, out=out, seed=args.seed, progress=not args.quiet)
    print((out / "results.md").read_text())
    print(f"report written to {out}/ (results.md, metrics.json, learning_curves.png, config.json)")
    return 0 if metrics else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lodekit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    example = sub.add_parser(
        "example", help="LODE features of a shipped water box (or STRUCTURE), with a summary"
    )
    example.add_argument("structure", nargs="?", help="any ASE-readable file (default: water64)")
    example.add_argument("--out", help="also save the expansion to this .npz file")
    example.set_defaults(run=_example)

    expand = sub.add_parser("expand", help="expand every frame of INPUT and save an .npz archive")
    expand.add_argument("input", metavar="INPUT", help="ASE-readable structure file")
    expand.add_argument("--calculator", choices=["lode", "soap"], default="lode")
    expand.add_argument("--hypers", required=True, help="JSON file of hyperparameters")
    expand.add_argument("--out", required=True, help="output .npz archive")
    expand.set_defaults(run=_expand)

    from .experiments import EXPERIMENTS

    reproduce = sub.add_parser(
        "reproduce", help="run one of the paper's experiments end to end, with a report"
    )
    reproduce.add_argument("experiment", choices=sorted(EXPERIMENTS))
    size = reproduce.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, minutes (default)")
    size.add_argument("--full", action="store_true", help="the paper's protocol")
    reproduce.add_argument("--out", help="output directory (default: lodekit-NAME-MODE)")
    reproduce.add_argument("--seed", type=int, default=0)
    reproduce.add_argument("--quiet", action="store_true", help="no progress bar")
    reproduce.set_defaults(run=_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except LodekitError as err:
        print(f"lodekit {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
