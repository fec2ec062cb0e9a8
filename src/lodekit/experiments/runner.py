"""Run one experiment end to end and write its report."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from . import dimers, point_charges, water
from .learning_curve import run_learning_curves
from .report import write_report

__all__ = ["EXPERIMENTS", "reproduce"]

EXPERIMENTS = {"point-charges": point_charges, "dimers": dimers, "water": water}
TITLES = {
    "point-charges": "Random point charges (Grisafi & Ceriotti 2019, Sec. III.A)",
    "dimers": "Binding curves of charged dimers (Grisafi & Ceriotti 2019, Sec. III.B)",
    "water": "Dielectric response of liquid water (Grisafi & Ceriotti 2019, Sec. III.C)",
}


def _check_arguments(name, mode, out, seed, data) -> None:
    # every check runs before the first feature is computed: a full run takes up to an hour,
    # and a mistake found only when the report is written would throw all of it away
    if name not in EXPERIMENTS:
        raise InputError(
            f"`name` {name!r} is not an experiment: choose one of {sorted(EXPERIMENTS)}"
        )
    if mode not in EXPERIMENTS[name].MODES:
        raise InputError(
            f"`mode` {mode!r} is not a mode: choose one of {sorted(EXPERIMENTS[name].MODES)}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"`seed` {seed!r} must be a non-negative integer")
    # the report directory is made at the end: it, or its nearest existing parent, must be a
    # writable directory (an existing file at `out` is its own nearest existing path)
    out = Path(out).absolute()
    nearest = next(p for p in (out, *out.parents) if p.exists())
    if not nearest.is_dir() or not os.access(nearest, os.W_OK | os.X_OK):
        raise InputError(
            f"`out` {str(out)!r} cannot hold the report: {str(nearest)!r} is not a writable "
            "directory"
        )
    if data is not None and name == "point-charges":
        raise InputError(
            f"`data` {str(data)!r} was given, but {name} generates its own data: "
            "a data path applies to the dimers and water experiments"
        )


def _labelled(bar, desc):
    """``bar`` with a default label, so that every bar says what it counts (None stays None)."""
    if bar is None:
        return None

    def labelled(*args, **kwargs):
        kwargs.setdefault("desc", desc)
        return bar(*args, **kwargs)

    return labelled


def reproduce(
    name: str,
    mode: str = "quick",
    out: str | Path = ".",
    seed: int = 0,
    progress: bool = True,
    data: str | Path | None = None,
) -> dict:
    """Run experiment ``name`` in ``mode`` and write its report; returns the metrics.

    Parameters
    ----------
    name : {"point-charges", "dimers", "water"}
    mode : {"quick", "full"}
        "quick" checks the pipeline in under a minute on 2 cores; "full" follows the
        paper's protocol (up to about half an hour).
    out : str or Path
        Report directory (created if missing; must not be an existing file).
    seed : int
        Non-negative seed of the data generator and of the training-set draws.
    progress : bool
        Show progress bars (tqdm).
    data : str or Path, optional
        The data set of the dimers or water experiment (its file, or the folder holding it);
        default: :func:`lodekit.datasets.default_data_dir`.

    Returns
    -------
    dict
        % RMSE per model name and training size.
    """
    _check_arguments(name, mode, out, seed, data)
    module = EXPERIMENTS[name]
    bar = None
    if progress:
        from tqdm.auto import tqdm as bar

    start = time.perf_counter()
    if data is None:
        setup = module.build(mode, seed, progress=_labelled(bar, "data"))
    else:
        setup = module.build(mode, seed, progress=_labelled(bar, "data"), path=data)
    metrics, predictions = run_learning_curves(
        setup["specs"],
        setup["frames"],
        setup["targets"],
        setup["train_sets"],
        setup["test"],
        progress=_labelled(bar, "learning curves (models x training sizes)"),
        keep=setup.get("keep", ()),
        cv_groups=setup.get("cv_groups"),
        transform=setup.get("transform"),
    )
    extra_metrics = {}
    if hasattr(module, "extra"):
        extra_metrics = module.extra(
            setup, predictions, Path(out), progress=_labelled(bar, "extra models")
        )
    tables = extra_metrics.pop("tables", {})
    wall = time.perf_counter() - start
    config = {
        "experiment": name,
        "mode": mode,
        "seed": seed,
        **module.MODES[mode],
        "n_train_pool": setup["n_train_pool"],
        **extra_metrics,
    }
    labels = {spec.name: spec.label for spec in setup["specs"]}
    write_report(
        Path(out),
        TITLES[name],
        metrics,
        paper=module.PAPER,
        labels=labels,
        config=config,
        wall_time=wall,
        notes=setup["notes"],
        tables=tables,
        paper_values=module.PAPER_VALUES,
        x_label=module.X_LABEL,
    )
    return metrics
