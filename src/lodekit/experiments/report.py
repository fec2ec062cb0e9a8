"""Outputs of a reproduced experiment: metrics.json, results.md, learning-curve plot, config."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from ..persistence import atomic_write

__all__ = ["quick_caveat", "tidy_log_axis", "write_report"]


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


def _results_page() -> str:
    """Where the full-mode results live: the checkout's docs/results.md when this lodekit
    runs from one (an editable install), else its path in the source tree."""
    page = Path(__file__).resolve().parents[3] / "docs" / "results.md"
    if page.is_file():
        return f"[docs/results.md]({page.as_uri()})"
    return "docs/results.md in the lodekit source tree"


def quick_caveat(sizes: list[int]) -> str:
    """The line that heads every quick-mode report (fault 11 of issue 27: quick numbers sat
    beside the paper's with nothing saying they are not comparable)."""
    return (
        f"**Quick mode** (at most {max(sizes)} training structures): a check of the pipeline. "
        "Its errors, and even the ordering of the models, are not comparable with the paper's "
        f"full-size numbers in the last column; full-mode results: {_results_page()}."
    )


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
    paper_values: dict | None = None,
    x_label: str = "training structures",
) -> None:
    """Write the report files of one experiment into ``out``.

    Parameters
    ----------
    out : Path
        Report directory (created if missing).
    title : str
    metrics : dict
        ``metrics[model][n_train]`` = % RMSE on the test set.
    paper : dict
        ``paper[model]``: the paper's statement, shown beside the model's row.
    labels : dict
        ``labels[model]``: a readable name.
    config : dict
        Mode, sizes, seeds... (``config["mode"] == "quick"`` heads the report with a caveat).
    wall_time : float
        Seconds.
    notes : list of str
    tables : dict, optional
        ``tables[title][label][n_train]`` = % RMSE: further results (e.g. a tensor part),
        shown as their own tables and in a second panel of the plot.
    paper_values : dict, optional
        ``paper_values[model] = (n_train, low, high)``: the paper's number in %, drawn on the
        plot at its training size: a star where ``low == high``, a bar from ``low`` to ``high``,
        a triangle where one bound is None ("below high", "above low").
    x_label : str
        What the training-set size counts.
    """
    out.mkdir(parents=True, exist_ok=True)
    paper_values = paper_values or {}
    record = {
        "experiment": title,
        "metric": "% RMSE = 100 RMSE(test) / std(test targets)",
        "training_size": x_label,
        "metrics": {m: {str(k): v for k, v in curve.items()} for m, curve in metrics.items()},
        "labels": {m: labels[m] for m in metrics},
        "paper": paper,
        "paper_values": {
            m: dict(zip(("n_train", "low", "high"), value, strict=True))
            for m, value in paper_values.items()
        },
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
    lines = [f"# {title}", ""]
    if config.get("mode") == "quick":
        lines += [quick_caveat(sizes), ""]
    lines += [
        f"% RMSE on the test set (100 x RMSE / std of the test targets); n: {x_label}.",
        "",
    ]
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
    _plot(
        out / "learning_curves.png",
        title,
        metrics,
        labels,
        tables=tables or {},
        paper_values=paper_values,
        x_label=x_label,
    )


def tidy_log_axis(axis, values) -> None:
    """Label a log axis at 1, 2, 5 x 10^k (1 x 10^k alone over more than three decades),
    written as plain numbers: matplotlib's default leaves short ranges unlabelled and
    labels minor ticks in a way that collides."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    values = np.asarray([v for v in values if v > 0], dtype=float)
    span = np.log10(values.max() / values.min()) if values.size else 0.0
    axis.set_major_locator(LogLocator(base=10, subs=(1.0,) if span > 3 else (1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _training_size_ticks(axis, sizes) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    # label the training sizes themselves, thinned so that neighbours do not collide
    ticks = []
    for size in sorted(sizes, reverse=True):  # the largest size always gets its label
        if not ticks or np.log10(ticks[-1] / size) >= 0.1:
            ticks.append(size)
    axis.set_major_locator(FixedLocator(sorted(ticks)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _paper_marker(ax, n, low, high, color) -> list[float]:
    """Draw the paper's number of one model; returns the y values drawn."""
    style = {"color": color, "markeredgecolor": "black", "markersize": 10, "zorder": 5}
    if low is not None and high is not None and low == high:
        ax.plot([n], [low], marker="*", linestyle="none", **style)
        return [low]
    if low is not None and high is not None:
        middle = np.sqrt(low * high)
        ax.errorbar(
            [n], [middle], yerr=[[middle - low], [high - middle]], marker="*", capsize=4, **style
        )
        return [low, high]
    if high is not None:  # "below high"
        ax.plot([n], [high], marker="v", linestyle="none", **style)
        return [high]
    ax.plot([n], [low], marker="^", linestyle="none", **style)  # "above low"
    return [low]


def _plot(path: Path, title, metrics, labels, *, tables, paper_values, x_label) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(title, metrics, labels, paper_values)]
    for table, rows in tables.items():
        panels.append((table, rows, {label: label for label in rows}, {}))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(8.8 + 5.6 * (len(panels) - 1), 4.8), squeeze=False
    )
    for ax, (heading, curves, names, marks) in zip(axes[0], panels, strict=True):
        sizes, ys = set(), []
        for k, (model, curve) in enumerate(curves.items()):
            color = f"C{k % 10}"
            n = np.array(sorted(curve))
            sizes.update(n.tolist())
            ax.loglog(n, [curve[i] for i in n], "o-", color=color, label=names[model])
            ys += [curve[i] for i in n]
            if model in marks:
                at, low, high = marks[model]
                ys += _paper_marker(ax, at, low, high, color)
                sizes.add(at)
        if marks:
            ax.plot([], [], "*", color="white", markeredgecolor="black", markersize=10,
                    label="paper: ★ its number, ▲▼ a bound\n(colour of its model)")  # fmt: skip
        _training_size_ticks(ax.xaxis, sizes)
        tidy_log_axis(ax.yaxis, ys)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel(x_label)
        ax.set_ylabel("% RMSE")
        ax.set_title(heading, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        # beside or below the axes: inside, the legend hides the curves it names
        if len(panels) == 1:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=1)
    fig.tight_layout()
    atomic_write(path, lambda stream: fig.savefig(stream, format="png", dpi=120))
    plt.close(fig)
