"""``lodekit evaluate``: errors of a potential's energies, forces and stress on labelled data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ._common import check_species, output_folder, read_potential, read_structures

HELP = "errors of a potential's energies, forces and stress against reference data"

#: Written in DIR (the plots unless --no-plots).
METRICS, PARITY_ENERGY, PARITY_FORCES = "metrics.json", "parity_energy.png", "parity_forces.png"


def add_arguments(parser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", help="potential file (lodekit train, LodePotential.save)"
    )
    parser.add_argument(
        "data",
        nargs="+",
        metavar="DATA",
        help="ASE-readable files with reference energies, and forces or stress where known",
    )
    parser.add_argument(
        "--energy-key", default="energy", metavar="KEY", help="info key of the energy (eV)"
    )
    parser.add_argument(
        "--forces-key", default="forces", metavar="KEY", help="arrays key of the forces (eV/Å)"
    )
    parser.add_argument(
        "--stress-key", default="stress", metavar="KEY", help="info key of the stress (eV/Å^3)"
    )
    parser.add_argument("--out", metavar="DIR", help="output folder (default: lodekit-evaluate)")
    parser.add_argument("--no-plots", action="store_true", help="write metrics.json only")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..interatomic.labels import read_labels
    from ..interatomic.metrics import compute_metrics, predictions
    from ..persistence import atomic_write

    potential = read_potential(args.model)
    out = output_folder(args.out or "lodekit-evaluate", "an output folder")
    # everything is read and checked before the first (slow) evaluation and the first write
    frames, labels, origins = [], [], []
    for path in args.data:
        read = read_structures(path, "DATA")
        for index, atoms in enumerate(read):
            check_species(potential, atoms, path, index, "DATA")
        labels.append(
            read_labels(
                read,
                energy_key=args.energy_key,
                forces_key=args.forces_key,
                stress_key=args.stress_key,
                source=f"`DATA` {path!r}",
            )
        )
        frames += read
        origins += [(path, index) for index in range(len(read))]
    reference = _joined(labels)
    progress = None
    if not args.quiet:
        from functools import partial

        from tqdm.auto import tqdm

        progress = partial(tqdm, unit="structure")

    def where(index: int) -> str:
        path, frame = origins[index]
        return f"`DATA` {path!r} frame {frame}"

    predicted = predictions(potential, frames, reference, progress, where)
    metrics = compute_metrics(frames, reference, predicted)
    metrics = {"model": args.model, "data": list(args.data), **metrics}

    out.mkdir(exist_ok=True)
    written = [out / METRICS]
    if not args.no_plots:
        written += _plots(out, frames, reference, predicted, metrics)
    metrics["plots"] = [p.name for p in written[1:]]
    text = json.dumps(metrics, indent=2) + "\n"
    atomic_write(out / METRICS, lambda stream: stream.write(text.encode()))
    sys.stdout.write(table(metrics))
    print(f"written to {out}/ ({', '.join(p.name for p in written)})")
    return 0


def _joined(labels: list):
    """One :class:`~lodekit.interatomic.labels.Labels` of the labels of every file."""
    from ..interatomic.labels import Labels

    return Labels(
        np.concatenate([item.energy for item in labels]),
        [f for item in labels for f in item.forces],
        [s for item in labels for s in item.stress],
        np.concatenate([item.n_atoms for item in labels]),
    )


def table(metrics: dict) -> str:
    """The errors as a short plain-text table."""
    rows = [("", "RMSE", "MAE")]
    energy = metrics["energy"]
    rows.append(("energy (eV)", energy["rmse_eV"], energy["mae_eV"]))
    rows.append(("energy (eV/atom)", energy["rmse_eV_per_atom"], energy["mae_eV_per_atom"]))
    forces = metrics["forces"]
    if forces is not None:
        rows.append(("forces (eV/Å)", forces["rmse_eV_per_A"], forces["mae_eV_per_A"]))
        for symbol, entry in forces["per_species"].items():
            rows.append((f"  {symbol} (eV/Å)", entry["rmse_eV_per_A"], entry["mae_eV_per_A"]))
    if metrics["stress"] is not None:
        stress = metrics["stress"]
        rows.append(("stress (eV/Å^3)", stress["rmse_eV_per_A3"], stress["mae_eV_per_A3"]))
    lines = []
    for name, *values in rows:
        cells = [v if isinstance(v, str) else f"{v:.4g}" for v in values]
        lines.append(f"{name:<18}{cells[0]:>12}{cells[1]:>12}")
    counts = metrics["counts"]
    lines.append(
        f"{counts['structures']} structures ({counts['atoms']} atoms); forces of "
        f"{counts['structures_with_forces']} ({counts['atoms_with_forces']} atoms), stress of "
        f"{counts['structures_with_stress']}"
    )
    return "\n".join(lines) + "\n"


def _plots(out: Path, frames, reference, predicted, metrics) -> list[Path]:
    """Parity plots of the energies per atom and (where there are reference forces) of the
    force components, coloured by species."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ase.data import chemical_symbols

    from ..persistence import atomic_write

    written = []
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ref, pred = reference.energy / reference.n_atoms, predicted["energy"] / reference.n_atoms
    ax.scatter(ref, pred, s=12, alpha=0.7)
    _diagonal(ax, ref, pred)
    ax.set_xlabel("reference energy (eV/atom)")
    ax.set_ylabel("predicted energy (eV/atom)")
    rmse = metrics["energy"]["rmse_eV_per_atom"]
    ax.set_title(f"energy per atom: RMSE {1000 * rmse:.3g} meV/atom ({len(ref)} structures)")
    written.append(_save(fig, out / PARITY_ENERGY, atomic_write, plt))

    with_forces = [i for i, f in enumerate(reference.forces) if f is not None]
    if with_forces:
        ref = np.concatenate([reference.forces[i] for i in with_forces])
        pred = np.concatenate([predicted["forces"][i] for i in with_forces])
        numbers = np.concatenate([frames[i].numbers for i in with_forces])
        fig, ax = plt.subplots(figsize=(5.2, 5.0))
        per_species = metrics["forces"]["per_species"]
        for k, z in enumerate(np.unique(numbers)):
            symbol = chemical_symbols[z]
            rmse_z = per_species[symbol]["rmse_eV_per_A"]
            ax.scatter(ref[numbers == z].ravel(), pred[numbers == z].ravel(), s=6, alpha=0.6,
                       color=f"C{k % 10}", label=f"{symbol} (RMSE {rmse_z:.3g} eV/Å)")  # fmt: skip
        _diagonal(ax, ref, pred)
        ax.set_xlabel("reference force component (eV/Å)")
        ax.set_ylabel("predicted force component (eV/Å)")
        rmse = metrics["forces"]["rmse_eV_per_A"]
        ax.set_title(f"forces: RMSE {rmse:.3g} eV/Å ({len(numbers)} atoms)")
        ax.legend(fontsize=8, loc="upper left")
        written.append(_save(fig, out / PARITY_FORCES, atomic_write, plt))
    return written


def _diagonal(ax, ref, pred) -> None:
    values = np.concatenate([np.ravel(ref), np.ravel(pred)])
    low, high = float(values.min()), float(values.max())
    pad = 0.05 * (high - low) or 0.5
    ax.plot([low - pad, high + pad], [low - pad, high + pad], "k--", linewidth=0.8, zorder=0)
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_aspect("equal")
    ax.grid(True, alpha=0.3)


def _save(fig, path: Path, atomic_write, plt) -> Path:
    fig.tight_layout()
    atomic_write(path, lambda stream: fig.savefig(stream, format="png", dpi=120))
    plt.close(fig)
    return path
