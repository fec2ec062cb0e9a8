"""``lodekit featurize``: features of many structures into a chunked, resumable store."""

from __future__ import annotations

import sys
import time

from ..errors import LodekitError
from ._common import connect, output_folder, positive, read_recipe, renamed

HELP = "features of every frame of INPUT... into a chunked, resumable store (zarr)"


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="ASE-readable files")
    parser.add_argument("--out", required=True, metavar="STORE", help="store directory")
    parser.add_argument(
        "--recipe",
        metavar="FILE",
        help="JSON recipe of feature blocks (default: LODE power spectrum). A calculator's "
        '"weights": "NAME" scales every atom by the per-atom array NAME of the frames (e.g. '
        '"initial_charges", an extxyz column; every frame must carry it, or the command '
        'stops naming the structure); "species_channels": false gives one neighbour channel '
        "for all atoms, labelled 0. Both are part of the store's identity: a store is "
        "resumed only with the same recipe and the same per-atom weights",
    )
    parser.add_argument(
        "--scheduler", metavar="ADDRESS", help="dask.distributed scheduler, e.g. tcp://host:8786"
    )
    parser.add_argument(
        "--chunk-size", type=int, metavar="N", help="structures per chunk (default 16)"
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="local worker processes (default: cores)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    """Exit codes: 0 done, 2 an error (one line on stderr; also when another run is writing
    the same store), 130 interrupted by Ctrl-C (the finished chunks stay: rerunning the same
    command resumes)."""
    try:
        return _run(args)
    except KeyboardInterrupt:
        # the workers ignore SIGINT and the finished chunks are on disk: one line, no traceback
        print(
            f"lodekit featurize: interrupted; the finished chunks of {args.out!r} are kept: "
            "rerun the same command to resume",
            file=sys.stderr,
        )
        return 130


def _run(args) -> int:
    from ..batch import StoreError, StructureSource, featurize

    output_folder(args.out, "a feature store (a folder)")
    recipe = read_recipe(args.recipe)
    positive(args.chunk_size, "--chunk-size")
    positive(args.workers, "--workers")
    if args.workers is not None and args.scheduler is not None:
        raise LodekitError(
            f"`--workers` is {args.workers} and `--scheduler` is {args.scheduler!r}: the "
            "cluster's workers do the work, give one of them"
        )
    source = StructureSource.scan(args.inputs, argument="INPUT", weights=recipe.weight_arrays)
    client = connect(args.scheduler)
    start = time.perf_counter()
    try:
        store = featurize(
            source,
            args.out,
            recipe,
            chunk_size=args.chunk_size,
            n_workers=args.workers,
            client=client,
            progress=not args.quiet,
        )
    except StoreError as err:
        raise renamed(err, "`store`", "`--out`") from None
    finally:
        if client is not None:
            client.close()
    print(f"{store!r} in {time.perf_counter() - start:.1f} s")
    return 0
