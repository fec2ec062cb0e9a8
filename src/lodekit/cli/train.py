"""``lodekit train``: a potential from reference energies and forces, in one file."""

from __future__ import annotations

import json
import sys

from ..errors import LodekitError
from ._common import output_file, positive, read_recipe, read_structures, read_text

HELP = "train an interatomic potential on energies and forces (extxyz), with a cost estimate"

#: Peak memory (GiB) refused unless --max-memory raises it.
MAX_MEMORY_GIB = 8.0


def add_arguments(parser) -> None:
    from ..interatomic.training import ALPHAS, FORCE_WEIGHTS
    from ..recipes import potential_presets

    parser.add_argument("train", metavar="TRAIN", help="training structures (extxyz...)")
    parser.add_argument("--out", required=True, metavar="MODEL", help="potential file (.npz)")
    features = parser.add_mutually_exclusive_group()
    features.add_argument("--recipe", metavar="FILE", help="feature recipe (JSON)")
    features.add_argument(
        "--preset",
        choices=sorted(potential_presets()),
        help="shipped recipe (default: molecule-soap+lode, or aqueous-soap+lode when a "
        "training structure is periodic: bulk or slab)",
    )
    parser.add_argument("--validation", metavar="FILE", help="structures to report errors on")
    parser.add_argument("--model", choices=["kernel", "linear"], default="kernel")
    parser.add_argument("--energy-key", default="energy", metavar="KEY")
    parser.add_argument("--forces-key", default="forces", metavar="KEY")
    parser.add_argument("--stress-key", default="stress", metavar="KEY")
    parser.add_argument("--no-forces", action="store_true", help="fit no forces")
    parser.add_argument(
        "--energy-per-structure",
        action="store_true",
        help="weigh every structure's energy alike (default: energies per atom)",
    )
    parser.add_argument(
        "--no-stress", action="store_true", help="fit no stress (periodic structures, slabs too)"
    )
    parser.add_argument(
        "--molecules",
        action="store_true",
        help="treat every structure as an isolated molecule (ignore its cell and pbc)",
    )
    parser.add_argument(
        "--references",
        metavar="FILE",
        help='fixed per-species energies (JSON {"1": -13.6, ...}, eV); default: fitted',
    )
    parser.add_argument("--alpha", type=float, nargs="+", default=list(ALPHAS), metavar="A")
    parser.add_argument(
        "--force-weight", type=float, nargs="+", default=list(FORCE_WEIGHTS), metavar="W"
    )
    parser.add_argument("--n-sparse", type=int, default=1000, metavar="N")
    parser.add_argument("--zeta", type=int, default=2, metavar="Z")
    parser.add_argument(
        "--max-memory",
        type=float,
        default=MAX_MEMORY_GIB,
        metavar="GIB",
        help=f"refuse a fit estimated above this peak memory (default {MAX_MEMORY_GIB:g})",
    )
    parser.add_argument(
        "--store",
        metavar="DIR",
        help="featurise into this resumable feature store (rerun after a crash: only the "
        "missing chunks are computed)",
    )
    parser.add_argument("--workers", type=int, metavar="N", help="featurisation processes")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _read(path: str, option: str, molecules: bool) -> list:
    frames = read_structures(path, option)
    if molecules:
        for atoms in frames:
            atoms.pbc = False
    return frames


def default_preset(frames) -> str:
    """The preset for training structures without --recipe or --preset: the periodic one
    when any structure has two or three periodic axes (a slab is periodic in its plane, where
    the molecule preset's assumptions of an isolated system do not hold), else the molecule
    one."""
    periodic = any(sum(bool(flag) for flag in atoms.pbc) >= 2 for atoms in frames)
    return "aqueous-soap+lode" if periodic else "molecule-soap+lode"


def _references(path):
    if path is None:
        return None
    text = read_text(path, "--references")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise LodekitError(f"`--references` {path!r} is not JSON: {err.msg}") from None
    if not isinstance(data, dict):
        raise LodekitError(f"`--references` {path!r} must hold an object {{Z: eV}}")
    from ..interatomic.potential import as_references

    try:
        return as_references(data)
    except LodekitError as err:
        raise LodekitError(f"`--references` {path!r}: {err}") from None


def run(args) -> int:
    from ..interatomic.labels import read_labels
    from ..interatomic.metrics import potential_errors
    from ..interatomic.training import plan_training, train_potential
    from ..recipes import potential_preset

    positive(args.n_sparse, "--n-sparse")
    positive(args.workers, "--workers")
    positive(args.zeta, "--zeta")
    if not args.max_memory > 0:
        raise LodekitError(f"`--max-memory` is {args.max_memory} but must be positive (GiB)")
    if any(not a >= 0 for a in args.alpha):
        raise LodekitError(f"`--alpha` {args.alpha} must be non-negative")
    if any(not w > 0 for w in args.force_weight):
        raise LodekitError(f"`--force-weight` {args.force_weight} must be positive")
    out = output_file(args.out, "a potential file")
    references = _references(args.references)
    frames = _read(args.train, "TRAIN", args.molecules)
    forces_key = None if args.no_forces else args.forces_key
    labels = read_labels(
        frames,
        energy_key=args.energy_key,
        forces_key=forces_key,
        stress_key=None if args.no_stress else args.stress_key,
        source=f"`TRAIN` {args.train!r}",
    )
    validation = None
    if args.validation is not None:
        v_frames = _read(args.validation, "--validation", args.molecules)
        v_labels = read_labels(
            v_frames,
            energy_key=args.energy_key,
            forces_key=args.forces_key,
            stress_key=args.stress_key,
            source=f"`--validation` {args.validation!r}",
        )
        validation = (v_frames, v_labels)
    species = sorted({int(z) for atoms in frames for z in atoms.numbers})
    if validation is not None:
        unknown = sorted({int(z) for a in validation[0] for z in a.numbers} - set(species))
        if unknown:
            raise LodekitError(
                f"`--validation` {args.validation!r} holds species {unknown} that the training "
                f"set {args.train!r} lacks"
            )
    if args.recipe is not None:
        recipe = read_recipe(args.recipe)
    else:
        preset = args.preset or default_preset(frames)
        recipe = potential_preset(preset, species)
    plan = plan_training(
        frames,
        labels,
        recipe,
        model=args.model,
        n_sparse=args.n_sparse,
        n_weights=len(args.force_weight),
    )
    print(f"plan: {plan.describe()}", file=sys.stderr)
    if plan.memory_bytes > args.max_memory * 2**30:
        raise LodekitError(
            f"the fit needs about {plan.memory_bytes / 2**30:.2f} GiB (estimated), above "
            f"`--max-memory` {args.max_memory:g} GiB: use fewer structures with forces, a "
            "smaller --n-sparse or a smaller recipe, or raise --max-memory"
        )
    progress = None
    if not args.quiet:
        from tqdm.auto import tqdm as progress
    features = None
    if args.store is not None:
        from ..batch import featurize, load_features

        featurize(
            frames,
            args.store,
            recipe,
            species=species,
            n_workers=args.workers,
            progress=not args.quiet,
        )
        features = load_features(args.store)
    potential, record = train_potential(
        frames,
        labels,
        recipe,
        model=args.model,
        alphas=args.alpha,
        force_weights=args.force_weight,
        n_sparse=args.n_sparse,
        zeta=args.zeta,
        references=references,
        species=species,
        use_stress=not args.no_stress,
        energy_per_atom=not args.energy_per_structure,
        features=features,
        progress=progress,
    )
    if validation is not None:
        record["validation"] = potential_errors(potential, *validation)
    record["train_file"] = str(args.train)
    potential.save(out, record)
    print(_summary(record, out))
    for warning in _edge_warnings(record):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _summary(record: dict, out) -> str:
    lines = [
        f"{record['model']} potential on {record['n_structures']} structures "
        f"({record['n_force_structures']} with forces, {record['n_stress_structures']} with "
        f"stress): alpha {record['alpha']:.3g}, force weight {record['force_weight']:.3g}"
    ]
    if record["force_weights"]:
        w = record["force_weights"].index(record["force_weight"])
        a = record["alphas"].index(record["alpha"])
        rows = "force RMSE"
        if record["n_stress_structures"]:
            rows = "force and virial-per-atom RMSE (eV/Å and eV rows together)"
        unit = "eV/atom" if record["energy_per_atom"] else "eV"
        lines.append(
            f"5-fold CV: energy RMSE {record['cv_energy_rmse'][w][a]:.4g} {unit}, {rows} "
            f"{record['cv_force_rmse'][w][a]:.4g}"
        )
    if "validation" in record:
        v = record["validation"]
        text = f"validation: energy RMSE {1000 * v['energy']['rmse_eV_per_atom']:.3g} meV/atom"
        if v["forces"] is not None:
            text += f", force RMSE {v['forces']['rmse_eV_per_A']:.4g} eV/Å"
        if v["stress"] is not None:
            text += f", stress RMSE {v['stress']['rmse_eV_per_A3']:.3g} eV/Å^3"
        lines.append(text)
    lines.append(f"-> {out}")
    return "\n".join(lines)


def _edge_warnings(record: dict) -> list[str]:
    out = []
    for name, grid, value in (
        ("alpha", record["alphas"], record["alpha"]),
        ("force weight", record["force_weights"], record["force_weight"]),
    ):
        if len(grid) > 1 and value in (min(grid), max(grid)):
            end = "smallest" if value == min(grid) else "largest"
            option = "--alpha" if name == "alpha" else "--force-weight"
            out.append(
                f"the chosen {name} {value:.3g} is the {end} of the grid searched: the best "
                f"may lie beyond it; widen the grid with {option}"
            )
    return out
