"""``lodekit reproduce``: one of the paper's experiments end to end, with a report."""

from __future__ import annotations

from ..errors import InputError
from ._common import options_named, output_folder

HELP = "run one of the paper's experiments end to end, with a report"

#: The library's argument names of this command's options (the data loaders name the data
#: file `path`).
OPTIONS = {"data": "--data", "path": "--data", "out": "--out", "seed": "--seed"}


def add_arguments(parser) -> None:
    from ..experiments import EXPERIMENTS

    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="small sizes, under a minute on 2 cores (default)"
    )
    size.add_argument(
        "--full", action="store_true", help="the paper's protocol, up to about half an hour"
    )
    parser.add_argument("--out", help="output directory (default: lodekit-NAME-MODE)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="data set of dimers or water: its file or folder (default: $LODEKIT_DATA, "
        "or shared/data in the current folder or its parent)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..experiments import reproduce

    mode = "full" if args.full else "quick"
    out = output_folder(args.out or f"lodekit-{args.experiment}-{mode}", "a report folder")
    try:
        metrics = reproduce(
            args.experiment, mode, out=out, seed=args.seed, progress=not args.quiet, data=args.data
        )
    except InputError as err:
        raise options_named(err, OPTIONS) from None
    print((out / "results.md").read_text())
    print(f"report written to {out}/ (results.md, metrics.json, learning_curves.png, config.json)")
    return 0 if metrics else 1
