"""``lodekit expand``: expand every frame of a structure file and save an .npz archive."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import LodekitError
from ._common import output_file

HELP = "expand every frame of INPUT and save an .npz archive"


def add_arguments(parser) -> None:
    parser.add_argument("input", metavar="INPUT", help="ASE-readable structure file")
    from ..expansion.registry import CALCULATORS

    parser.add_argument(
        "--calculator",
        choices=list(CALCULATORS),
        default="lode_spherical_expansion",
        help="calculator name (default: lode_spherical_expansion)",
    )
    parser.add_argument("--hypers", required=True, help="JSON file of hyperparameters")
    parser.add_argument("--out", required=True, help="output .npz archive")


def run(args) -> int:
    import ase.io

    from ..expansion.registry import CALCULATORS
    from ..persistence import save_expansion

    output_file(args.out, "an .npz archive")
    try:
        hypers = json.loads(Path(args.hypers).read_text())
    except OSError as err:
        raise LodekitError(f"`--hypers` {args.hypers!r} cannot be read: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise LodekitError(f"`--hypers` {args.hypers!r} is not valid JSON: {err}") from None
    try:
        calculator = CALCULATORS[args.calculator].from_json(json.dumps(hypers))
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
