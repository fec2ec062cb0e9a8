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

#: Seconds to keep trying to reach a ``--scheduler`` before giving up.
SCHEDULER_TIMEOUT = 10.0


def _example(args) -> int:
    import ase.io

    from .expansion import LodeSphericalExpansion

    if args.out:
        _output_file(args.out, "an .npz archive")
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
    _output_file(args.out, "an .npz archive")
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


def _read_recipe(path):
    """The featurisation recipe of ``--hypers`` (None: the defaults)."""
    from .featurizer import Featurizer

    if path is None:
        return Featurizer.from_hypers(None)
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise LodekitError(f"`--hypers` {path!r} cannot be read: {err.strerror}") from None
    except UnicodeDecodeError:
        raise LodekitError(f"`--hypers` {path!r} is not a text (JSON) file") from None
    try:
        return Featurizer.from_hypers(text, name="--hypers")
    except LodekitError as err:
        raise LodekitError(str(err).replace("`--hypers`", f"`--hypers` {path!r}", 1)) from None


def _connect(address):
    """A dask.distributed client of the scheduler at ``address`` (None: no client)."""
    if address is None:
        return None
    try:
        from distributed import Client
    except ImportError:
        raise LodekitError(
            "`--scheduler` needs dask.distributed: pip install 'lodekit[dask]'"
        ) from None
    try:
        return Client(address, timeout=SCHEDULER_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise LodekitError(f"`--scheduler` {address!r} cannot be reached: {reason}") from None


def _output_file(value: str, what: str) -> Path:
    """``--out`` of a file written atomically: its folder must exist, and it is no folder."""
    from .io import check_output_file

    return check_output_file(value, "--out", what)


def _renamed(err: LodekitError, old: str, new: str) -> LodekitError:
    """The library names its arguments; the command line names its own options."""
    return LodekitError(str(err).replace(old, new, 1))


def _featurize(args) -> int:
    from .parallel import featurize
    from .sources import StructureSource
    from .store import StoreError

    featurizer = _read_recipe(args.hypers)
    if args.chunk_size is not None and args.chunk_size < 1:
        raise LodekitError(f"`--chunk-size` is {args.chunk_size} but must be a positive integer")
    if args.workers is not None and args.workers < 1:
        raise LodekitError(f"`--workers` is {args.workers} but must be a positive integer")
    if args.workers is not None and args.scheduler is not None:
        raise LodekitError(
            f"`--workers` is {args.workers} and `--scheduler` is {args.scheduler!r}: the "
            "cluster's workers do the work, give one of them"
        )
    source = StructureSource.scan(args.inputs, argument="INPUT")
    client = _connect(args.scheduler)
    start = time.perf_counter()
    try:
        store = featurize(
            source,
            args.out,
            featurizer,
            chunk_size=args.chunk_size,
            n_workers=args.workers,
            client=client,
            progress=not args.quiet,
        )
    except StoreError as err:
        raise _renamed(err, "`store`", "`--out`") from None
    finally:
        if client is not None:
            client.close()
    print(f"{store!r} in {time.perf_counter() - start:.1f} s")
    return 0


def _fit(args) -> int:
    from .models import save_model
    from .pipeline import fit_store
    from .sources import MEMORY, StructureSource
    from .store import FeatureStore, StoreError

    out = _output_file(args.out, "a model file")
    try:
        store = FeatureStore(args.store)
        store.require_complete()
    except StoreError as err:
        raise _renamed(err, "`store`", "`STORE`") from None
    if args.structures:
        source = StructureSource.scan(args.structures, argument="--structures")
        where = "`--structures`"
    else:
        names = [record["name"] for record in store.inputs]
        if MEMORY in names:
            raise LodekitError(
                f"`STORE` {args.store!r} was featurised from structures in memory: give their "
                "files with --structures"
            )
        source = StructureSource.scan(names, argument=f"input of STORE {args.store!r}")
        where = f"the inputs recorded in `STORE` {args.store!r}"
    theirs = [(r["n_frames"], r["sha256"]) for r in store.inputs]
    ours = [(r["n_frames"], r["sha256"]) for r in source.records]
    if theirs != ours:
        raise LodekitError(
            f"{where} are not the structures featurised in `STORE` {args.store!r} "
            f"({source.n_structures} structures now, {store.n_structures} there, or changed "
            "since): featurise them again"
        )
    targets = source.targets(args.target)
    alpha = args.alpha if args.alpha else None
    try:
        model = fit_store(
            store,
            targets,
            model=args.model,
            zeta=args.zeta,
            n_sparse=args.n_sparse,
            target_name=args.target,
            **({"alpha": alpha} if alpha else {}),
        )
    except StoreError as err:
        raise _renamed(err, "`store`", "`STORE`") from None
    save_model(out, model, model.metadata_)
    meta = model.metadata_
    percent = meta["train_percent_rmse"]
    print(
        f"{args.model} model on {store.n_structures} structures ({store.header['n_environments']}"
        f" environments x {store.n_features} features), alpha {model.alpha_:.3g}: training "
        f"RMSE {meta['train_rmse']:.6g}"
        + (f" ({percent:.3g} % of the target's standard deviation)" if percent is not None else "")
        + f" -> {out}"
    )
    return 0


def _predict(args) -> int:
    from .io import atomic_write
    from .models import ModelFileError, load_model
    from .pipeline import predict_structures
    from .sources import StructureSource

    if args.chunk_size < 1:
        raise LodekitError(f"`--chunk-size` is {args.chunk_size} but must be a positive integer")
    if args.workers is not None and args.workers < 1:
        raise LodekitError(f"`--workers` is {args.workers} but must be a positive integer")
    try:
        model = load_model(args.model)
    except ModelFileError as err:
        raise _renamed(err, f"model file {args.model!r}", f"`MODEL` {args.model!r}") from None
    if args.out is not None:
        _output_file(args.out, "a CSV file")
    source = StructureSource.scan(args.inputs, argument="INPUT")
    client = _connect(args.scheduler)
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
    column = str(model.metadata_.get("target", "prediction"))
    lines = [f"structure,input,frame,{column}"]
    index = 0
    for record in source.records:
        for frame in range(record["n_frames"]):
            name = record["name"].replace('"', '""')
            lines.append(f'{index},"{name}",{frame},{float(values[index])!r}')
            index += 1
    text = "\n".join(lines) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        atomic_write(args.out, lambda stream: stream.write(text.encode()))
        print(f"{len(values)} predictions -> {args.out}", file=sys.stderr)
    return 0


def _reproduce(args) -> int:
    from .experiments import reproduce

    mode = "full" if args.full else "quick"
    out = Path(args.out or f"lodekit-{args.experiment}-{mode}")
    metrics = reproduce(
        args.experiment, mode, out=out, seed=args.seed, progress=not args.quiet, data=args.data
    )
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

    featurize = sub.add_parser(
        "featurize",
        help="features of every frame of INPUT... into a chunked, resumable store (zarr)",
    )
    featurize.add_argument("inputs", nargs="+", metavar="INPUT", help="ASE-readable files")
    featurize.add_argument("--out", required=True, metavar="STORE", help="store directory")
    featurize.add_argument(
        "--hypers", metavar="FILE", help="JSON recipe (default: LODE power spectrum)"
    )
    featurize.add_argument(
        "--scheduler", metavar="ADDRESS", help="dask.distributed scheduler, e.g. tcp://host:8786"
    )
    featurize.add_argument(
        "--chunk-size", type=int, metavar="N", help="structures per chunk (default 16)"
    )
    featurize.add_argument(
        "--workers", type=int, metavar="N", help="local worker processes (default: cores)"
    )
    featurize.add_argument("--quiet", action="store_true", help="no progress bar")
    featurize.set_defaults(run=_featurize)

    fit = sub.add_parser("fit", help="fit a model of per-structure targets on a feature store")
    fit.add_argument("store", metavar="STORE", help="store written by `lodekit featurize`")
    fit.add_argument("--target", required=True, metavar="KEY", help="atoms.info key (e.g. energy)")
    fit.add_argument("--out", required=True, metavar="MODEL", help="model file (.npz)")
    fit.add_argument(
        "--structures",
        nargs="+",
        metavar="INPUT",
        help="files holding the targets (default: the inputs recorded in the store)",
    )
    fit.add_argument("--model", choices=["linear", "kernel"], default="linear")
    fit.add_argument(
        "--alpha", type=float, nargs="+", metavar="A", help="regulariser(s), searched by CV"
    )
    fit.add_argument("--zeta", type=float, default=2.0, help="kernel exponent (kernel model)")
    fit.add_argument(
        "--n-sparse", type=int, default=1000, help="sparse environments (kernel model)"
    )
    fit.set_defaults(run=_fit)

    predict = sub.add_parser("predict", help="per-structure predictions of a fitted model")
    predict.add_argument("model", metavar="MODEL", help="model file written by `lodekit fit`")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="ASE-readable files")
    predict.add_argument("--out", metavar="CSV", help="write a CSV file (default: print)")
    predict.add_argument("--scheduler", metavar="ADDRESS", help="dask.distributed scheduler")
    predict.add_argument("--chunk-size", type=int, default=16, metavar="N")
    predict.add_argument("--workers", type=int, metavar="N", help="local worker processes")
    predict.set_defaults(run=_predict)

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
    reproduce.add_argument(
        "--data",
        metavar="PATH",
        help="data set of dimers or water: its file or folder (default: $LODEKIT_DATA, "
        "or ../shared/data beside a source checkout)",
    )
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
