"""``lodekit predict``: per-structure predictions of a fitted model."""

from __future__ import annotations

import sys

from ._common import connect, output_file, positive, renamed

HELP = "per-structure predictions of a fitted model"


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file written by `lodekit fit`")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="ASE-readable files")
    parser.add_argument("--out", metavar="CSV", help="write a CSV file (default: print)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="dask.distributed scheduler")
    parser.add_argument("--chunk-size", type=int, default=16, metavar="N")
    parser.add_argument("--workers", type=int, metavar="N", help="local worker processes")


def run(args) -> int:
    from ..batch import StructureSource
    from ..batch.fit_predict import (
        periodicity_mismatches,
        predict_structures,
        prediction_table,
    )
    from ..persistence import ModelFileError, atomic_write, load_model

    positive(args.chunk_size, "--chunk-size")
    positive(args.workers, "--workers")
    try:
        model = load_model(args.model)
    except ModelFileError as err:
        raise renamed(err, f"model file {args.model!r}", f"`MODEL` {args.model!r}") from None
    if args.out is not None:
        output_file(args.out, "a CSV file")
    source = StructureSource.scan(args.inputs, argument="INPUT")
    trained, mismatched = periodicity_mismatches(model, source)
    if len(mismatched):
        # a warning, not a refusal: the numbers are still computed, but outside the training
        # domain (a periodic model applied to a molecule or a slab, or the reverse)
        print(_periodicity_warning(trained, mismatched, source), file=sys.stderr)
    client = connect(args.scheduler)
    try:
        values = predict_structures(
            model,
            source,
            chunk_size=args.chunk_size,
            n_workers=args.workers,
            client=client,
            argument="INPUT",
            where=f"`MODEL` {args.model!r}",
        )
    finally:
        if client is not None:
            client.close()
    text = prediction_table(source, values, str(model.metadata_.get("target", "prediction")))
    if args.out is None:
        sys.stdout.write(text)
    else:
        atomic_write(args.out, lambda stream: stream.write(text.encode()))
        print(f"{len(values)} predictions -> {args.out}", file=sys.stderr)
    return 0


def _periodicity_warning(trained: str, indices, source) -> str:
    """One line naming the structures (index, file, frame) of the other periodicity."""
    where = []
    first = 0
    for record in source.records:
        frames = [int(i) - first for i in indices if first <= i < first + record["n_frames"]]
        if frames:
            shown = ", ".join(map(str, frames[:5])) + (", ..." if len(frames) > 5 else "")
            where.append(f"{record['name']!r} frame(s) {shown}")
        first += record["n_frames"]
    names = {
        "periodic": "periodic",
        "slab": "slabs (two periodic axes)",
        "molecule": "non-periodic (no cell)",
    }
    kinds = {str(source.boundaries[i]) for i in indices}
    other = " or ".join(names[kind] for kind in names if kind in kinds)
    return (
        f"warning: the model was trained on {trained} structures only, but {len(indices)} "
        f"structure(s) are {other}: index {', '.join(map(str, indices[:5].tolist()))}"
        f"{', ...' if len(indices) > 5 else ''} ({'; '.join(where)}); their predictions are "
        "extrapolations"
    )
