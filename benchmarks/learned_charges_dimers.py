"""Learned-charge model (lodekit.torch.charges) against the kernel models of ``lodekit
reproduce dimers`` on held-out SSI dimers: binding-energy and force errors over seeds.

A hand-run script, not a test. The split is that of ``lodekit reproduce dimers --quick``
(lodekit.experiments.dimers.build): the test set is the curve points of the last 15 dimers of
the SSI order (no monomers; the same 195 frames for every seed), the training set the first N
dimers of the seed's permutation of the other 635, with their isolated monomers (0 eV,
0 eV/Å). For N in 10, 25, 50 these are exactly the quick mode's training sets; other N (e.g.
100) are the first N dimers of the same permutation. Every model sees the same training
dimers for one (N, seed).

- Kernel models (SOAP; SOAP^2 + linear LODE nu=1; (k_SOAP + k_LODE nu=2)^2; linear rho x V),
  built and fitted exactly as the experiment does: on binding energies only, the alpha
  searched by dimer. Their forces on the test frames are the exact gradient of the fitted
  model (:class:`lodekit.interatomic.LodePotential`).
- The same kernel models (``--force-kernels``) fitted on energies and forces together
  (``AdditiveKernelRidge.fit(forces=, feature_jacobians=)``, the Jacobians streamed by
  :meth:`LodePotential.feature_jacobian`): same features, same sparse points, the force
  weight and alpha chosen together by 5-fold cross-validation over whole dimers
  (``--force-weights``).
- The learned-charge model, trained with Adam on energies and forces (``--epochs``).

Errors on the test frames: MAE and RMSE of the binding energy per frame (eV) and of every
force component (eV/Å, against ``binding_forces``); the table gives mean ± sample standard
deviation over the seeds. Each (N, seed) is written to ``--out-dir`` as soon as a model is
done, and models found there are not run again: an interrupted command can be rerun.

Example::

    OMP_NUM_THREADS=1 python benchmarks/learned_charges_dimers.py --train-dimers 50 \\
        --seeds 0 1 2 3 --epochs 120 --out-dir /tmp/charges
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

#: the quick mode's test set and sparse points; the training sets are chosen on the command line
N_TEST_DIMERS = 15
N_SPARSE = 300


def _rows(x, groups, centre, structures):
    """Rows of ``structures`` (indices into the featurised frames), groups renumbered."""
    position = np.full(groups.max() + 1, -1)
    position[structures] = np.arange(len(structures))
    keep = position[groups] >= 0
    return x[keep], position[groups[keep]], centre[keep]


def _errors(energy, truth, forces, true_forces) -> dict:
    """MAE and RMSE of the energies (eV) and of every force component (eV/Å)."""
    error = np.asarray(energy, dtype=np.float64) - truth
    out = {
        "energy_mae_eV": float(np.mean(np.abs(error))),
        "energy_rmse_eV": float(np.sqrt(np.mean(error**2))),
    }
    out["energy_percent"] = 100 * out["energy_rmse_eV"] / float(np.std(truth))
    if forces is not None:
        error = np.concatenate(forces) - np.concatenate(true_forces)
        out["force_mae_eV_per_A"] = float(np.mean(np.abs(error)))
        out["force_rmse_eV_per_A"] = float(np.sqrt(np.mean(error**2)))
    return out


def _setup(seed: int, train_dimers, path) -> dict:
    """The dimers experiment's split (quick mode's test set) with training sets of
    ``train_dimers`` dimers."""
    # build() reads its split sizes from MODES: a mode of this script's sizes, same test set
    experiment.MODES["learned_charges_benchmark"] = {
        "train_dimers": sorted(train_dimers),
        "n_test_dimers": N_TEST_DIMERS,
        "n_sparse": N_SPARSE,
    }
    try:
        return experiment.build("learned_charges_benchmark", seed, path=path)
    finally:
        del experiment.MODES["learned_charges_benchmark"]


def _kernel_runs(setup, n_dimers, test, truth, true_forces, args, done, save):
    """Energy-trained kernel models, and those of ``args.force_kernels`` trained on energies
    and forces; results into ``done`` (skipping those already there)."""
    frames = setup["frames"]
    train_rows = setup["train_sets"][n_dimers]
    dimer_of = setup["cv_groups"]
    targets = setup["targets"][train_rows]
    # monomers are the training rows with binding energy exactly 0 (two per dimer)
    is_monomer = targets == 0.0
    if is_monomer.sum() != 2 * n_dimers:
        raise RuntimeError(f"{is_monomer.sum()} zero-energy rows for {n_dimers} dimers")
    train_frames = [frames[i] for i in train_rows]
    train_forces = [
        np.zeros((len(atoms), 3)) if monomer else np.asarray(atoms.arrays["binding_forces"])
        for atoms, monomer in zip(train_frames, is_monomer, strict=True)
    ]
    species = np.unique(np.concatenate([a.numbers for a in frames]))
    features = {}
    for spec in setup["specs"]:
        runs = [(spec.name, False)]
        if spec.name in args.force_kernels:
            runs.append((spec.name + "+forces", True))
        for key, with_forces in runs:
            if key in done:
                continue
            tick = time.perf_counter()
            if spec.name not in features:
                features[spec.name] = spec.featurize(frames)
            x, groups, centre = features[spec.name]
            x_tr, g_tr, s_tr = _rows(x, groups, centre, train_rows)
            model = spec.make_model()
            potential = LodePotential(model, spec.recipe, species=species)
            options = {}
            if with_forces:
                jacobian_name = (
                    "feature_jacobians"
                    if hasattr(model, "n_sparse")
                    else "feature_derivatives"  # StructureRidge: summed over environments
                )

                def derivative(a, potential=potential, linear=jacobian_name):
                    jacobian = potential.feature_jacobian(train_frames[a], sparse=True)
                    # a linear model needs only the sum over environments (one forward
                    # Jacobian: far cheaper than feature_derivatives' pass per column)
                    return jacobian.summed() if linear == "feature_derivatives" else jacobian

                options = {
                    "forces": train_forces,
                    jacobian_name: derivative,
                    "force_weight": list(args.force_weights),
                }
            model.fit(x_tr, targets, g_tr, s_tr, cv_groups=dimer_of[train_rows], **options)
            energy, forces = [], []
            for atoms in test["structures"]:
                out = potential.compute(atoms)
                energy.append(out["energy"])
                forces.append(out["forces"])
            done[key] = {
                "label": spec.label + (", kernel" if hasattr(model, "n_sparse") else ""),
                "trained_on": "energies and forces" if with_forces else "energies",
                **_errors(energy, truth, forces, true_forces),
                "alpha": float(model.alpha_),
                "seconds": time.perf_counter() - tick,
            }
            if with_forces:
                done[key]["force_weight"] = float(model.force_weight_)
            print(f"  {key}", json.dumps(done[key]), flush=True)
            save()


def _learned_run(train_frames, test, truth, true_forces, seed, args) -> dict:
    tick = time.perf_counter()
    train = dimer_training_set(train_frames)
    model = LearnedChargeModel(
        species=[1, 6, 7, 8],
        charge_hidden=args.charge_hidden,
        energy_hidden=args.energy_hidden,
        linear_electrostatics=args.linear_electrostatics,
        seed=seed,
    )
    prepared = model.prepare(train["structures"], train["charge"], train["energy"], train["forces"])
    prepare_seconds = time.perf_counter() - tick

    def progress(epoch, loss):
        if epoch % 20 == 0 or epoch == args.epochs - 1:
            print(f"    epoch {epoch}: loss {loss:.4g}", flush=True)

    history = train_learned_charges(
        model,
        prepared,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        final_learning_rate=args.final_learning_rate,
        batch_size=args.batch_size,
        force_weight=args.force_weight,
        weight_decay=args.weight_decay,
        seed=seed,
        progress=progress,
    )
    fitted_energy, fitted_forces, _ = model.energies_and_forces(prepared)
    train_errors = _errors(
        fitted_energy.detach().numpy(),
        train["energy"],
        [fitted_forces.detach().numpy()],
        [prepared.forces.numpy()],
    )
    energy, forces = [], []
    for atoms, charge in zip(test["structures"], test["charge"], strict=True):
        out = model.predict(atoms, charge)
        energy.append(out["energy"])
        forces.append(out["forces"])
    return {
        "label": "learned charges -> LODE p=1 nu1 + SOAP -> MLP"
        + (" + linear q V" if args.linear_electrostatics else ""),
        "trained_on": "energies and forces" if args.force_weight else "energies",
        **_errors(energy, truth, forces, true_forces),
        "seconds": time.perf_counter() - tick,
        "prepare_seconds": prepare_seconds,
        "train_seconds": history["seconds"],
        "loss_first_last": [history["loss"][0], history["loss"][-1]],
        "train": {k: v for k, v in train_errors.items() if k != "energy_percent"},
    }


def _mean_std(values) -> str:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def _table(n_dimers: int, runs: dict, n_test_frames: int) -> str:
    """Markdown table of mean ± std over the seeds of ``runs`` {seed: {model: result}}."""
    order = []
    for results in runs.values():
        order += [k for k in results if k not in order]
    lines = [
        f"{n_dimers} training dimers, seeds {sorted(runs)}, {N_TEST_DIMERS} held-out dimers "
        f"({n_test_frames} frames); mean ± std over seeds",
        "",
        "| model | trained on | seeds | E MAE (eV) | E RMSE (eV) | F MAE (eV/Å) | F RMSE (eV/Å) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in order:
        found = [results[key] for results in runs.values() if key in results]
        cells = [
            _mean_std([r[name] for r in found])
            for name in (
                "energy_mae_eV",
                "energy_rmse_eV",
                "force_mae_eV_per_A",
                "force_rmse_eV_per_A",
            )
        ]
        first = found[0]
        lines.append(
            f"| {first['label']} | {first['trained_on']} | {len(found)} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="ssi_dimers_gfn2.extxyz")
    parser.add_argument("--train-dimers", type=int, nargs="+", default=[50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--final-learning-rate", type=float, default=3e-4)
    parser.add_argument("--force-weight", type=float, default=1.0)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--charge-hidden", type=int, nargs="*", default=[16])
    parser.add_argument("--energy-hidden", type=int, nargs="*", default=[32, 32])
    parser.add_argument("--no-kernels", action="store_true", help="learned charges only")
    parser.add_argument("--no-learned", action="store_true", help="kernel models only")
    parser.add_argument(
        "--force-kernels",
        nargs="*",
        default=["soap", "soap_lode1", "soap_lode2"],
        help="kernel models also fitted on energies and forces (names of the experiment)",
    )
    parser.add_argument(
        "--force-weights",
        type=float,
        nargs="+",
        default=[0.3, 1.0, 3.0, 10.0],
        help="force weights (eV per eV/Å) searched with alpha for the force-fitted kernels",
    )
    parser.add_argument(
        "--linear-electrostatics", action="store_true", help="add the linear q V term"
    )
    parser.add_argument(
        "--out-dir", type=Path, default=None, help="per-(N, seed) JSON, reused when present"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = args.data or default_data_dir() / "ssi_dimers" / "ssi_dimers_gfn2.extxyz"
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)

    raw = ase.io.read(path, index=":")
    by_dimer = np.array([int(a.info["dimer_index"]) for a in raw])
    tables = {n: {} for n in args.train_dimers}
    test_frames_count = 0
    for seed in args.seeds:
        start = time.perf_counter()
        setup = _setup(seed, args.train_dimers, path)
        dimer_of = setup["cv_groups"]
        test_dimers = np.unique(dimer_of[setup["test"]])
        test_frames = [raw[i] for i in np.flatnonzero(np.isin(by_dimer, test_dimers))]
        test = dimer_training_set(test_frames, with_monomers=False)
        truth = test["energy"]
        true_forces = test["forces"]
        test_frames_count = len(truth)
        # the experiment's test frames are these, in the same order
        np.testing.assert_allclose(setup["targets"][setup["test"]], truth, rtol=0, atol=0)
        for n_dimers in args.train_dimers:
            train_rows = setup["train_sets"][n_dimers]
            train_dimers = np.unique(dimer_of[train_rows])
            assert len(train_dimers) == n_dimers
            assert not np.intersect1d(train_dimers, test_dimers).size
            record = args.out_dir / f"N{n_dimers}_seed{seed}.json" if args.out_dir else None
            done = json.loads(record.read_text())["results"] if record and record.exists() else {}

            def save(done=done, record=record, n_dimers=n_dimers, seed=seed):
                if record is not None:
                    settings = {k: str(v) for k, v in vars(args).items()}
                    payload = {"n_dimers": n_dimers, "seed": seed, "args": settings}
                    record.write_text(json.dumps({**payload, "results": done}, indent=2))

            print(
                f"seed {seed}: {n_dimers} training dimers ({len(train_rows)} structures), "
                f"{len(test_dimers)} test dimers ({len(truth)} frames); setup "
                f"{time.perf_counter() - start:.0f} s",
                flush=True,
            )
            if not args.no_kernels:
                _kernel_runs(setup, n_dimers, test, truth, true_forces, args, done, save)
            if not args.no_learned and "learned_charges" not in done:
                train_frames = [raw[i] for i in np.flatnonzero(np.isin(by_dimer, train_dimers))]
                done["learned_charges"] = _learned_run(
                    train_frames, test, truth, true_forces, seed, args
                )
                print("  learned_charges", json.dumps(done["learned_charges"]), flush=True)
                save()
            zero = [0 * f for f in true_forces]
            done["zero"] = {
                "label": "zero (the targets' mean absolute value and RMS)",
                "trained_on": "-",
                **_errors(np.zeros_like(truth), truth, zero, true_forces),
            }
            save()
            tables[n_dimers][seed] = done
    for n_dimers, runs in tables.items():
        print("\n" + _table(n_dimers, runs, test_frames_count))


if __name__ == "__main__":
    main()
