"""``lodekit fit``: a model of per-structure targets on a feature store."""

from __future__ import annotations

import sys

from ..errors import InputError
from ._common import options_named, output_file, renamed

HELP = "fit a model of per-structure targets on a feature store"

#: The library's argument names of this command's options.
OPTIONS = {"alpha": "--alpha", "zeta": "--zeta", "n_sparse": "--n-sparse"}


def add_arguments(parser) -> None:
    parser.add_argument("store", metavar="STORE", help="store written by `lodekit featurize`")
    parser.add_argument(
        "--target", required=True, metavar="KEY", help="atoms.info key (e.g. energy)"
    )
    parser.add_argument("--out", required=True, metavar="MODEL", help="model file (.npz)")
    parser.add_argument(
        "--structures",
        nargs="+",
        metavar="INPUT",
        help="files holding the targets (default: the inputs recorded in the store)",
    )
    parser.add_argument("--model", choices=["linear", "kernel"], default="linear")
    parser.add_argument(
        "--alpha",
        type=float,
        nargs="+",
        metavar="A",
        help="regulariser(s), searched by CV (default 1e-10 ... 1); the CV error at the "
        "chosen one is printed, with a warning when it is an end of the grid",
    )
    parser.add_argument("--zeta", type=float, default=2.0, help="kernel exponent (kernel model)")
    parser.add_argument(
        "--n-sparse", type=int, default=1000, help="sparse environments (kernel model)"
    )


def run(args) -> int:
    from ..batch import FeatureStore, StoreError
    from ..batch.fit_predict import alpha_at_grid_edge, fit_store, store_source
    from ..persistence import save_model

    out = output_file(args.out, "a model file")
    try:
        store = FeatureStore(args.store)
        source = store_source(store, args.structures)
        model = fit_store(
            store,
            source.targets(args.target),
            model=args.model,
            zeta=args.zeta,
            n_sparse=args.n_sparse,
            target_name=args.target,
            periodic=source.boundaries,
            **({"alpha": args.alpha} if args.alpha else {}),
        )
    except StoreError as err:
        raise renamed(err, "`store`", "`STORE`") from None
    except InputError as err:
        raise options_named(err, OPTIONS) from None
    save_model(out, model, model.metadata_)
    print(_summary(args.model, store, model, out))
    edge = alpha_at_grid_edge(model)
    if edge is not None:
        grid = model.metadata_["alphas"]
        print(
            f"warning: the chosen alpha {model.alpha_:.3g} is the {edge} of the grid searched "
            f"({min(grid):.3g} to {max(grid):.3g}, {len(grid)} values): the best alpha may lie "
            f"beyond it; widen the grid with --alpha",
            file=sys.stderr,
        )
    return 0


def _summary(kind: str, store, model, out) -> str:
    """One line: the design, the chosen alpha, the training and the cross-validated error."""
    meta = model.metadata_

    def error(name: str, value, percent) -> str:
        text = f"{name} RMSE {value:.6g}"
        return text + (f" ({percent:.3g} % of the target's std)" if percent is not None else "")

    cv = (
        error(f"{meta['cv_folds']}-fold CV", meta["cv_rmse"], meta["cv_percent_rmse"])
        if meta["cv_rmse"] is not None
        else "no cross-validation (too few structures)"
    )
    return (
        f"{kind} model on {store.n_structures} structures ({store.header['n_environments']}"
        f" environments x {store.n_features} features), alpha {model.alpha_:.3g}: "
        + error("training", meta["train_rmse"], meta["train_percent_rmse"])
        + f", {cv} -> {out}"
    )
