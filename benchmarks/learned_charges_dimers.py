"""Learned-charge model (lodekit.torch.charges) against the kernel models of ``lodekit
reproduce dimers`` on held-out SSI dimers: binding-energy and force errors.

A hand-run script, not a test. The split is that of ``lodekit reproduce dimers --quick``
(lodekit.experiments.dimers.build): the test set is the curve points of the last 15 dimers of
the SSI order (no monomers), the training set the first N dimers of the seed's permutation
of the others, with their isolated monomers (0 eV, 0 eV/Å). Every model sees the same
training dimers.

- Kernel models (SOAP; SOAP^2 + linear LODE nu=1; (k_SOAP + k_LODE nu=2)^2; linear rho x V),
  built and fitted exactly as the experiment does: on binding energies only, the alpha
  searched by dimer. Their forces on the test frames come from
  :class:`lodekit.interatomic.LodePotential` (the exact gradient of the fitted model).
- The learned-charge model, trained with Adam on energies and forces (``--epochs``).

Errors: RMSE of the binding energy per frame (eV, and % of the test set's standard deviation
as in ``lodekit reproduce``) and of every force component (eV/Å, against ``binding_forces``).

Example::

    OMP_NUM_THREADS=2 python benchmarks/learned_charges_dimers.py --train-dimers 10 --epochs 60
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import ase.io
import numpy as np
import torch

from lodekit.datasets.loaders import default_data_dir
from lodekit.experiments import dimers as experiment
from lodekit.interatomic import LodePotential
from lodekit.torch.charges import LearnedChargeModel, dimer_training_set, train_learned_charges


def _rows(x, groups, centre, structures):
    """Rows of ``structures`` (indices into the featurised frames), groups renumbered."""
    position = np.full(groups.max() + 1, -1)
    position[structures] = np.arange(len(structures))
    keep = position[groups] >= 0
    return x[keep], position[groups[keep]], centre[keep]


def _rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def _errors(energy, truth, forces, true_forces) -> dict:
    out = {"energy_rmse_eV": _rmse(energy, truth), "energy_percent": 0.0}
    out["energy_percent"] = 100 * out["energy_rmse_eV"] / float(np.std(truth))
    if forces is not None:
        out["force_rmse_eV_per_A"] = _rmse(np.concatenate(forces), np.concatenate(true_forces))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="ssi_dimers_gfn2.extxyz")
    parser.add_argument("--train-dimers", type=int, default=10, choices=(10, 25, 50))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--final-learning-rate", type=float, default=3e-4)
    parser.add_argument("--force-weight", type=float, default=1.0)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--charge-hidden", type=int, nargs="*", default=[16])
    parser.add_argument("--energy-hidden", type=int, nargs="*", default=[32, 32])
    parser.add_argument("--no-kernels", action="store_true", help="learned charges only")
    parser.add_argument(
        "--linear-electrostatics", action="store_true", help="add the linear q V term"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = args.data or default_data_dir() / "ssi_dimers" / "ssi_dimers_gfn2.extxyz"

    start = time.perf_counter()
    setup = experiment.build("quick", args.seed, path=path)
    train_rows = setup["train_sets"][args.train_dimers]
    dimer_of = setup["cv_groups"]
    train_dimers = np.unique(dimer_of[train_rows])
    test_dimers = np.unique(dimer_of[setup["test"]])
    assert not np.intersect1d(train_dimers, test_dimers).size
    raw = ase.io.read(path, index=":")
    by_dimer = np.array([int(a.info["dimer_index"]) for a in raw])
    train_frames = [raw[i] for i in np.flatnonzero(np.isin(by_dimer, train_dimers))]
    test_frames = [raw[i] for i in np.flatnonzero(np.isin(by_dimer, test_dimers))]
    test = dimer_training_set(test_frames, with_monomers=False)
    truth = test["energy"]
    true_forces = test["forces"]
    # the experiment's test frames are these, in the same order
    np.testing.assert_allclose(setup["targets"][setup["test"]], truth, rtol=0, atol=0)
    print(
        f"{len(train_dimers)} training dimers ({len(train_rows)} structures), "
        f"{len(test_dimers)} test dimers ({len(truth)} frames); std of test binding "
        f"energies {np.std(truth):.3f} eV; setup {time.perf_counter() - start:.0f} s"
    )

    results = {}
    if not args.no_kernels:
        frames = setup["frames"]
        species = np.unique(np.concatenate([a.numbers for a in frames]))
        for spec in setup["specs"]:
            tick = time.perf_counter()
            x, groups, centre = spec.featurize(frames)
            x_tr, g_tr, s_tr = _rows(x, groups, centre, train_rows)
            model = spec.make_model()
            model.fit(
                x_tr, setup["targets"][train_rows], g_tr, s_tr, cv_groups=dimer_of[train_rows]
            )
            potential = LodePotential(model, spec.recipe, species=species)
            energy, forces = [], []
            for atoms in test["structures"]:
                out = potential.compute(atoms)
                energy.append(out["energy"])
                forces.append(out["forces"])
            results[spec.name] = {
                "label": spec.label,
                "trained_on": "energies",
                **_errors(energy, truth, forces, true_forces),
                "seconds": time.perf_counter() - tick,
            }
            print(spec.name, json.dumps(results[spec.name]))

    tick = time.perf_counter()
    train = dimer_training_set(train_frames)
    model = LearnedChargeModel(
        species=[1, 6, 7, 8],
        charge_hidden=args.charge_hidden,
        energy_hidden=args.energy_hidden,
        linear_electrostatics=args.linear_electrostatics,
        seed=args.seed,
    )
    prepared = model.prepare(train["structures"], train["charge"], train["energy"], train["forces"])
    prepare_seconds = time.perf_counter() - tick

    def progress(epoch, loss):
        if epoch % 10 == 0 or epoch == args.epochs - 1:
            print(f"  epoch {epoch}: loss {loss:.4g}", flush=True)

    history = train_learned_charges(
        model,
        prepared,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        final_learning_rate=args.final_learning_rate,
        batch_size=args.batch_size,
        force_weight=args.force_weight,
        weight_decay=args.weight_decay,
        seed=args.seed,
        progress=progress,
    )
    fitted_energy, fitted_forces, _ = model.energies_and_forces(prepared)
    train_errors = {
        "train_energy_rmse_eV": _rmse(fitted_energy.detach().numpy(), train["energy"]),
        "train_force_rmse_eV_per_A": _rmse(fitted_forces.detach().numpy(), prepared.forces.numpy()),
    }
    energy, forces = [], []
    for atoms, charge in zip(test["structures"], test["charge"], strict=True):
        out = model.predict(atoms, charge)
        energy.append(out["energy"])
        forces.append(out["forces"])
    results["learned_charges"] = {
        "label": "learned charges -> LODE p=1 nu1 + SOAP -> MLP"
        + (" + linear q V" if args.linear_electrostatics else ""),
        "trained_on": "energies and forces" if args.force_weight else "energies",
        **_errors(energy, truth, forces, true_forces),
        "seconds": time.perf_counter() - tick,
        "prepare_seconds": prepare_seconds,
        "train_seconds": history["seconds"],
        "loss_first_last": [history["loss"][0], history["loss"][-1]],
        **train_errors,
    }
    print("learned_charges", json.dumps(results["learned_charges"]))

    print(
        f"\n{len(train_dimers)} training dimers, {len(test_dimers)} held-out dimers "
        f"({len(truth)} frames)\n"
    )
    print("| model | trained on | energy RMSE (eV) | energy % RMSE | force RMSE (eV/Å) |")
    print("|---|---|---|---|---|")
    # the errors of predicting zero: the scale of the targets
    zero = _errors(np.zeros_like(truth), truth, [0 * f for f in true_forces], true_forces)
    results["zero"] = {"label": "zero (RMS of the targets)", "trained_on": "-", **zero}
    for r in results.values():
        print(
            f"| {r['label']} | {r['trained_on']} | {r['energy_rmse_eV']:.3f} | "
            f"{r['energy_percent']:.1f} | {r.get('force_rmse_eV_per_A', float('nan')):.3f} |"
        )
    if args.out:
        record = {"args": {k: str(v) for k, v in vars(args).items()}, "results": results}
        args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
