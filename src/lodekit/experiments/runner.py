"""Run one experiment end to end and write its report."""

from __future__ import annotations

import time
from pathlib import Path

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


def reproduce(
    name: str, mode: str = "quick", out: str | Path = ".", seed: int = 0, progress: bool = True
) -> dict:
    """Run experiment ``name`` in ``mode`` ("quick" or "full"); returns the metrics."""
    module = EXPERIMENTS[name]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm
    start = time.perf_counter()
    setup = module.build(mode, seed, progress=bar)
    metrics, predictions = run_learning_curves(
        setup["specs"],
        setup["frames"],
        setup["targets"],
        setup["train_sets"],
        setup["test"],
        progress=bar,
        keep=setup.get("keep", ()),
        cv_groups=setup.get("cv_groups"),
        transform=setup.get("transform"),
    )
    extra_metrics = {}
    if hasattr(module, "extra"):
        extra_metrics = module.extra(setup, predictions, Path(out), progress=bar)
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
        module.PAPER,
        labels,
        config,
        wall,
        setup["notes"],
        tables=tables,
    )
    return metrics
