"""Run one experiment end to end and write its report."""

from __future__ import annotations

import time
from pathlib import Path

from . import point_charges
from .learning_curve import run_learning_curves
from .report import write_report

__all__ = ["EXPERIMENTS", "reproduce"]

EXPERIMENTS = {"point-charges": point_charges}
TITLES = {"point-charges": "Random point charges (Grisafi & Ceriotti 2019, Sec. III.A)"}


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
    frames, targets, train_pool, test, sizes, specs, notes = module.build(mode, seed, progress=bar)
    metrics = run_learning_curves(specs, frames, targets, train_pool, test, sizes, progress=bar)
    wall = time.perf_counter() - start
    config = {
        "experiment": name,
        "mode": mode,
        "seed": seed,
        **module.MODES[mode],
        "n_train_pool": len(train_pool),
    }
    labels = {spec.name: spec.label for spec in specs}
    write_report(Path(out), TITLES[name], metrics, module.PAPER, labels, config, wall, notes)
    return metrics
