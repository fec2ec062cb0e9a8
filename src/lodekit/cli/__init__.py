"""The ``lodekit`` command line: a table of sub-commands, one module each.

Each module holds ``HELP``, ``add_arguments(parser)`` and ``run(args) -> exit code``; the work
itself is done by the library. Bad input, whether argparse or the library finds it (a
:class:`~lodekit.errors.LodekitError`), becomes one line on stderr naming the argument, and
exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from .._version import __version__
from ..errors import LodekitError
from . import evaluate, example, expand, featurize, fit, md, predict, reproduce, train

__all__ = ["COMMANDS", "build_parser", "main"]

#: The sub-commands, in the order ``lodekit --help`` lists them.
COMMANDS = {
    "example": example,
    "expand": expand,
    "featurize": featurize,
    "fit": fit,
    "predict": predict,
    "train": train,
    "evaluate": evaluate,
    "md": md,
    "reproduce": reproduce,
}


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose refusal is one line (argparse prints the usage first)."""

    def error(self, message: str):
        _refuse(self.prog, f"{message} (see {self.prog} --help)")
        self.exit(2)


def _refuse(prog: str, message: str) -> None:
    # ase and numpy messages may span lines: the contract is one line
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="lodekit",
        description="Long-distance equivariant (LODE) and SOAP features, models and the "
        "experiments of Grisafi & Ceriotti (2019).",
    )
    parser.add_argument("--version", action="version", version=f"lodekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        command = sub.add_parser(name, help=module.HELP)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except LodekitError as err:
        _refuse(f"lodekit {args.command}", str(err))
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
