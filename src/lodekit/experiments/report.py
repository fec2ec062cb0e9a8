"""Outputs of a reproduced experiment: metrics.json, results.md, learning-curve plot, config."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from ..persistence import atomic_write

__all__ = ["write_report"]


def _versions() -> dict:
    import ase
    import numpy
    import scipy
    import sklearn

    from .._version import __version__

    return {
        "lodekit": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "ase": ase.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda stream: stream.write(text.encode()))


def write_report(
    out: Path,
    title: str,
    metrics: dict,
    *,
    paper: dict,
    labels: dict,
    config: dict,
    wall_time: float,
    notes: list[str],
    tables: dict | None = None,
) -> None:
    """Write the report files of one experiment into ``out``.

    ``metrics[model][n_train] = % RMSE``; ``paper[model]`` the paper's statement;
    ``labels[model]`` a readable name. ``tables[title][label][n_train] = % RMSE`` are further
    results (e.g. a tensor part) shown as their own tables in results.md.
    """
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "experiment": title,
        "metric": "% RMSE = 100 RMSE(test) / std(test targets)",
        "metrics": {m: {str(k): v for k, v in curve.items()} for m, curve in metrics.items()},
        "labels": {m: labels[m] for m in metrics},
        "paper": paper,
        "config": config,
        "versions": _versions(),
        "wall_time_s": wall_time,
    }
    _write_text(out / "metrics.json", json.dumps(record, indent=2))
    _write_text(
        out / "config.json",
        json.dumps({**config, "versions": record["versions"], "wall_time_s": wall_time}, indent=2),
    )
    sizes = sorted({n for curve in metrics.values() for n in curve})
    lines = [f"# {title}", "", "% RMSE on the test set (100 x RMSE / std of the test targets).", ""]
    lines.append("| model | " + " | ".join(f"n = {n}" for n in sizes) + " | paper |")
    lines.append("|---|" + "---|" * len(sizes) + "---|")
    for model, curve in metrics.items():
        cells = [f"{curve[n]:.3g}" if n in curve else "" for n in sizes]
        lines.append(f"| {labels[model]} | " + " | ".join(cells) + f" | {paper.get(model, '')} |")
    for table, rows in (tables or {}).items():
        columns = sorted({n for curve in rows.values() for n in curve})
        lines += ["", f"{table}:", ""]
        lines.append("| model | " + " | ".join(f"n = {n}" for n in columns) + " |")
        lines.append("|---|" + "---|" * len(columns))
        for label, curve in rows.items():
            cells = [f"{curve[n]:.3g}" if n in curve else "" for n in columns]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"Wall time: {wall_time:.1f} s. Configuration: config.json.", ""]
    lines += [f"- {note}" for note in notes]
    _write_text(out / "results.md", "\n".join(lines) + "\n")
    _plot(out / "learning_curves.png", title, metrics, labels)


def _plot(path: Path, title: str, metrics: dict, labels: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(8.8, 4.8))
    all_sizes = set()
    for model, curve in metrics.items():
        sizes = np.array(sorted(curve))
        all_sizes.update(sizes.tolist())
        ax.loglog(sizes, [curve[n] for n in sizes], "o-", label=labels[model])
    # label the training sizes themselves; log-scale minor labels (3x10^2...) collide
    ticks = []
    for size in sorted(all_sizes, reverse=True):  # the largest size always gets its label
        if not ticks or np.log10(ticks[-1] / size) >= 0.1:
            ticks.append(size)
    ax.set_xticks(sorted(ticks))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel("training structures")
    ax.set_ylabel("% RMSE")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    # beside the axes: inside, it hides the curves it names
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    atomic_write(path, lambda stream: fig.savefig(stream, format="png", dpi=120))
    plt.close(fig)
