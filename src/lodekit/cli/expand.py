"""``lodekit expand``: expand every frame of a structure file and save an .npz archive."""

from __future__ import annotations

from ..errors import LodekitError
from ._common import output_file, read_structures, read_text

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
    from ..expansion.registry import CALCULATORS
    from ..persistence import save_expansion

    output_file(args.out, "an .npz archive")
    text = read_text(args.hypers, "--hypers")
    try:
        calculator = CALCULATORS[args.calculator].from_json(text)
    except LodekitError as err:
        message = str(err).replace("`text` ", "")
        raise LodekitError(f"`--hypers` {args.hypers!r} ({args.calculator}): {message}") from None
    frames = read_structures(args.input, "INPUT")
    expansion = calculator.compute(frames)
    save_expansion(args.out, expansion)
    print(f"{expansion!r} -> {args.out}")
    return 0
