"""The command line's contract on bad input, sub-command by sub-command.

Every case gives one sub-command one bad input (a missing file, a folder, an empty, binary,
truncated or wrong-kind file, an existing output of the wrong kind, a missing output folder,
a bad number) and expects: exit code 2, exactly one line on stderr that names the argument, no
traceback, nothing on stdout, and every file that was there before unchanged (bytes and mode),
with no file added.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import ase.build
import ase.io
import numpy as np
import pytest

from lodekit.cli import COMMANDS, main
from tests.conftest import STORE_RECIPE, nacl_potential
from tests.helpers import triclinic_box

#: Hyperparameters of `lodekit expand`'s default calculator (LODE), small.
HYPERS = {"smearing": 1.0, "max_radial": 2, "max_angular": 1, "radius": 3.0}

#: Mode given to every earlier output, so that a rewrite with default permissions shows.
EARLIER_MODE = 0o640


def call(argv: list[str], capsys) -> tuple[object, str, str]:
    """Exit code of ``lodekit argv`` (main's return or SystemExit's code), stdout, stderr."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse refuses its own way
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(root: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every path under ``root``: its bytes (None for a folder) and permission bits."""
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes(), p.stat().st_mode & 0o777)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Good inputs (structures, recipe, hypers, a store, a model, an expansion archive),
    bad ones, and earlier outputs; returns the folder and a dict of named paths."""
    root = tmp_path_factory.mktemp("contract")
    rng = np.random.default_rng(11)
    boxes = [triclinic_box(rng) for _ in range(4)]
    for i, box in enumerate(boxes):
        box.info["energy"] = float(i) - 1.5
    paths = {name: root / name for name in ("s.extxyz", "recipe.json", "hypers.json")}
    ase.io.write(paths["s.extxyz"], boxes)
    paths["recipe.json"].write_text(json.dumps(STORE_RECIPE))
    paths["hypers.json"].write_text(json.dumps(HYPERS))
    paths["store"] = root / "store"
    paths["model.npz"] = root / "model.npz"
    paths["expansion.npz"] = root / "expansion.npz"
    one = root / "one.extxyz"
    ase.io.write(one, boxes[0])
    recipe, structures = str(paths["recipe.json"]), str(paths["s.extxyz"])
    good = [
        ["featurize", structures, "--out", str(paths["store"]), "--recipe", recipe, "--quiet"],
        ["fit", str(paths["store"]), "--target", "energy", "--out", str(paths["model.npz"])],
        [
            "expand",
            str(one),
            "--hypers",
            str(paths["hypers.json"]),
            "--out",
            str(paths["expansion.npz"]),
        ],
    ]
    for argv in good:
        if argv[0] == "featurize":
            argv += ["--workers", "1", "--chunk-size", "2"]
        assert main(argv) == 0, argv
    one.unlink()

    text = paths["s.extxyz"].read_text().splitlines(keepends=True)
    model = paths["model.npz"].read_bytes()
    bad = {
        "missing": root / "missing.extxyz",
        "folder": root / "folder",
        "empty": root / "empty.extxyz",
        "binary": root / "binary.extxyz",
        "truncated": root / "truncated.extxyz",
        "truncated.json": root / "truncated.json",
        "truncated.npz": root / "truncated.npz",
        "truncated.store": root / "truncated.store",
        "nokey.json": root / "nokey.json",
        "data": root / "data",
    }
    bad["folder"].mkdir()
    bad["empty"].write_bytes(b"")
    bad["binary"].write_bytes(bytes(range(256)) * 8)
    bad["truncated"].write_text("".join(text[:5]))  # 13 atoms announced, 3 given
    bad["truncated.json"].write_text(json.dumps(STORE_RECIPE)[:25])
    bad["truncated.npz"].write_bytes(model[: len(model) // 2])
    bad["nokey.json"].write_text(json.dumps({k: v for k, v in HYPERS.items() if k != "radius"}))
    bad["data"].mkdir()  # a data folder without the data set's file
    # a store cut short: its header file emptied
    bad["truncated.store"].mkdir()
    for item in paths["store"].iterdir():
        if item.is_file():
            (bad["truncated.store"] / item.name).write_bytes(b"")
    paths.update(bad)

    # a potential, a NaCl cell it knows (two frames) and its earlier evaluate/md outputs
    paths["potential.npz"] = root / "potential.npz"
    nacl_potential(paths["potential.npz"])
    paths["nacl.extxyz"] = root / "nacl.extxyz"
    cell = ase.build.bulk("NaCl", "rocksalt", a=5.7, cubic=True)
    cell.info["energy"] = -30.0
    ase.io.write(paths["nacl.extxyz"], [cell, cell])
    for name, files in (("evaluated", ["metrics.json"]), ("dynamics", ["md.log"])):
        paths[name] = root / name
        paths[name].mkdir()
        for file in files:
            (paths[name] / file).write_text(f"earlier {file}\n")

    # earlier outputs, which no refused command may touch
    for name in ("earlier.npz", "earlier_model.npz", "earlier.csv"):
        paths[name] = root / name
        paths[name].write_text(f"earlier output {name}\n")
        paths[name].chmod(EARLIER_MODE)
    paths["report"] = root / "report"
    paths["report"].mkdir()
    (paths["report"] / "results.md").write_text("earlier report\n")
    paths["root"] = root  # {root}/absent-*: output folders that are never made
    return root, {name: str(path) for name, path in paths.items()}


# (case id, argv with {names} of world paths, the argument the one line must name)
CASES = [
    # --- example STRUCTURE [--out NPZ]
    ("example-missing", "example {missing} --out {earlier.npz}", "STRUCTURE"),
    ("example-folder", "example {folder} --out {earlier.npz}", "STRUCTURE"),
    ("example-empty", "example {empty} --out {earlier.npz}", "STRUCTURE"),
    ("example-binary", "example {binary} --out {earlier.npz}", "STRUCTURE"),
    ("example-truncated", "example {truncated} --out {earlier.npz}", "STRUCTURE"),
    ("example-wrong-kind", "example {model.npz} --out {earlier.npz}", "STRUCTURE"),
    ("example-out-folder", "example {s.extxyz} --out {folder}", "--out"),
    ("example-out-no-folder", "example {s.extxyz} --out {root}/absent-example/x.npz", "--out"),
    # --- expand INPUT --hypers JSON --out NPZ
    ("expand-missing", "expand {missing} --hypers {hypers.json} --out {earlier.npz}", "INPUT"),
    ("expand-folder", "expand {folder} --hypers {hypers.json} --out {earlier.npz}", "INPUT"),
    ("expand-empty", "expand {empty} --hypers {hypers.json} --out {earlier.npz}", "INPUT"),
    ("expand-binary", "expand {binary} --hypers {hypers.json} --out {earlier.npz}", "INPUT"),
    ("expand-truncated", "expand {truncated} --hypers {hypers.json} --out {earlier.npz}", "INPUT"),
    ("expand-wrong-kind", "expand {model.npz} --hypers {hypers.json} --out {earlier.npz}", "INPUT"),
    (
        "expand-hypers-missing",
        "expand {s.extxyz} --hypers {missing} --out {earlier.npz}",
        "--hypers",
    ),
    ("expand-hypers-folder", "expand {s.extxyz} --hypers {folder} --out {earlier.npz}", "--hypers"),
    ("expand-hypers-empty", "expand {s.extxyz} --hypers {empty} --out {earlier.npz}", "--hypers"),
    ("expand-hypers-binary", "expand {s.extxyz} --hypers {binary} --out {earlier.npz}", "--hypers"),
    (
        "expand-hypers-truncated",
        "expand {s.extxyz} --hypers {truncated.json} --out {earlier.npz}",
        "--hypers",
    ),
    (
        "expand-hypers-wrong-kind",
        "expand {s.extxyz} --hypers {recipe.json} --out {earlier.npz}",
        "--hypers",
    ),
    (
        "expand-hypers-missing-key",
        "expand {s.extxyz} --hypers {nokey.json} --out {earlier.npz}",
        "--hypers",
    ),
    ("expand-out-folder", "expand {s.extxyz} --hypers {hypers.json} --out {folder}", "--out"),
    (
        "expand-out-no-folder",
        "expand {s.extxyz} --hypers {hypers.json} --out {root}/absent-expand/x.npz",
        "--out",
    ),
    # --- featurize INPUT... --out STORE [--recipe JSON]; the earlier output is the store
    ("featurize-missing", "featurize {missing} --out {store} --recipe {recipe.json}", "INPUT"),
    ("featurize-folder", "featurize {folder} --out {store} --recipe {recipe.json}", "INPUT"),
    ("featurize-empty", "featurize {empty} --out {store} --recipe {recipe.json}", "INPUT"),
    ("featurize-binary", "featurize {binary} --out {store} --recipe {recipe.json}", "INPUT"),
    ("featurize-truncated", "featurize {truncated} --out {store} --recipe {recipe.json}", "INPUT"),
    ("featurize-wrong-kind", "featurize {model.npz} --out {store} --recipe {recipe.json}", "INPUT"),
    (
        "featurize-recipe-missing",
        "featurize {s.extxyz} --out {store} --recipe {missing}",
        "--recipe",
    ),
    ("featurize-recipe-folder", "featurize {s.extxyz} --out {store} --recipe {folder}", "--recipe"),
    ("featurize-recipe-empty", "featurize {s.extxyz} --out {store} --recipe {empty}", "--recipe"),
    ("featurize-recipe-binary", "featurize {s.extxyz} --out {store} --recipe {binary}", "--recipe"),
    (
        "featurize-recipe-truncated",
        "featurize {s.extxyz} --out {store} --recipe {truncated.json}",
        "--recipe",
    ),
    (
        "featurize-recipe-wrong-kind",
        "featurize {s.extxyz} --out {store} --recipe {hypers.json}",
        "--recipe",
    ),
    (
        "featurize-out-file",
        "featurize {s.extxyz} --out {earlier.npz} --recipe {recipe.json}",
        "--out",
    ),
    (
        "featurize-out-no-folder",
        "featurize {s.extxyz} --out {root}/absent-featurize/new.store --recipe {recipe.json}",
        "--out",
    ),
    (
        "featurize-chunk-size-0",
        "featurize {s.extxyz} --out {store} --recipe {recipe.json} --chunk-size 0",
        "--chunk-size",
    ),
    (
        "featurize-workers-negative",
        "featurize {s.extxyz} --out {store} --recipe {recipe.json} --workers -1",
        "--workers",
    ),
    (
        "featurize-chunk-size-text",
        "featurize {s.extxyz} --out {store} --recipe {recipe.json} --chunk-size many",
        "--chunk-size",
    ),
    # --- fit STORE --target KEY --out MODEL [--structures INPUT...] [numbers]
    ("fit-missing", "fit {missing} --target energy --out {earlier_model.npz}", "STORE"),
    ("fit-folder", "fit {folder} --target energy --out {earlier_model.npz}", "STORE"),
    ("fit-empty", "fit {empty} --target energy --out {earlier_model.npz}", "STORE"),
    ("fit-binary", "fit {binary} --target energy --out {earlier_model.npz}", "STORE"),
    ("fit-truncated", "fit {truncated.store} --target energy --out {earlier_model.npz}", "STORE"),
    ("fit-wrong-kind", "fit {model.npz} --target energy --out {earlier_model.npz}", "STORE"),
    (
        "fit-structures-missing",
        "fit {store} --target energy --out {earlier_model.npz} --structures {missing}",
        "--structures",
    ),
    (
        "fit-structures-folder",
        "fit {store} --target energy --out {earlier_model.npz} --structures {folder}",
        "--structures",
    ),
    (
        "fit-structures-empty",
        "fit {store} --target energy --out {earlier_model.npz} --structures {empty}",
        "--structures",
    ),
    (
        "fit-structures-binary",
        "fit {store} --target energy --out {earlier_model.npz} --structures {binary}",
        "--structures",
    ),
    (
        "fit-structures-truncated",
        "fit {store} --target energy --out {earlier_model.npz} --structures {truncated}",
        "--structures",
    ),
    (
        "fit-structures-wrong-kind",
        "fit {store} --target energy --out {earlier_model.npz} --structures {model.npz}",
        "--structures",
    ),
    ("fit-target-absent", "fit {store} --target charge --out {earlier_model.npz}", "--target"),
    ("fit-out-folder", "fit {store} --target energy --out {folder}", "--out"),
    ("fit-out-no-folder", "fit {store} --target energy --out {root}/absent-fit/m.npz", "--out"),
    (
        "fit-n-sparse-0",
        "fit {store} --target energy --out {earlier_model.npz} --model kernel --n-sparse 0",
        "--n-sparse",
    ),
    (
        "fit-n-sparse-negative",
        "fit {store} --target energy --out {earlier_model.npz} --model kernel --n-sparse -5",
        "--n-sparse",
    ),
    (
        "fit-zeta-0",
        "fit {store} --target energy --out {earlier_model.npz} --model kernel --zeta 0",
        "--zeta",
    ),
    (
        "fit-zeta-nan",
        "fit {store} --target energy --out {earlier_model.npz} --model kernel --zeta nan",
        "--zeta",
    ),
    (
        "fit-alpha-negative",
        "fit {store} --target energy --out {earlier_model.npz} --alpha 1e-3 -1",
        "--alpha",
    ),
    (
        "fit-alpha-nan",
        "fit {store} --target energy --out {earlier_model.npz} --alpha nan",
        "--alpha",
    ),
    (
        "fit-alpha-inf",
        "fit {store} --target energy --out {earlier_model.npz} --alpha inf",
        "--alpha",
    ),
    # --- predict MODEL INPUT... [--out CSV] [--chunk-size N] [--workers N]
    ("predict-missing", "predict {missing} {s.extxyz} --out {earlier.csv}", "MODEL"),
    ("predict-folder", "predict {folder} {s.extxyz} --out {earlier.csv}", "MODEL"),
    ("predict-empty", "predict {empty} {s.extxyz} --out {earlier.csv}", "MODEL"),
    ("predict-binary", "predict {binary} {s.extxyz} --out {earlier.csv}", "MODEL"),
    ("predict-truncated", "predict {truncated.npz} {s.extxyz} --out {earlier.csv}", "MODEL"),
    ("predict-wrong-kind", "predict {expansion.npz} {s.extxyz} --out {earlier.csv}", "MODEL"),
    ("predict-text", "predict {s.extxyz} {s.extxyz} --out {earlier.csv}", "MODEL"),
    ("predict-input-missing", "predict {model.npz} {missing} --out {earlier.csv}", "INPUT"),
    ("predict-input-folder", "predict {model.npz} {folder} --out {earlier.csv}", "INPUT"),
    ("predict-input-empty", "predict {model.npz} {empty} --out {earlier.csv}", "INPUT"),
    ("predict-input-binary", "predict {model.npz} {binary} --out {earlier.csv}", "INPUT"),
    ("predict-input-truncated", "predict {model.npz} {truncated} --out {earlier.csv}", "INPUT"),
    ("predict-input-wrong-kind", "predict {model.npz} {model.npz} --out {earlier.csv}", "INPUT"),
    ("predict-out-folder", "predict {model.npz} {s.extxyz} --out {folder}", "--out"),
    (
        "predict-out-no-folder",
        "predict {model.npz} {s.extxyz} --out {root}/absent-predict/p.csv",
        "--out",
    ),
    (
        "predict-chunk-size-0",
        "predict {model.npz} {s.extxyz} --out {earlier.csv} --chunk-size 0",
        "--chunk-size",
    ),
    (
        "predict-workers-0",
        "predict {model.npz} {s.extxyz} --out {earlier.csv} --workers 0",
        "--workers",
    ),
    # --- evaluate MODEL DATA... [--energy-key K] [--out DIR]; the earlier output a folder
    # lodekit train: the training file, its options and files, the output
    ("train-missing", "train {missing} --out {earlier_model.npz} --preset ionic-soap", "TRAIN"),
    ("train-folder", "train {folder} --out {earlier_model.npz} --preset ionic-soap", "TRAIN"),
    ("train-empty", "train {empty} --out {earlier_model.npz} --preset ionic-soap", "TRAIN"),
    ("train-binary", "train {binary} --out {earlier_model.npz} --preset ionic-soap", "TRAIN"),
    ("train-truncated", "train {truncated} --out {earlier_model.npz}", "TRAIN"),
    ("train-no-energy", "train {nacl.extxyz} --out {earlier_model.npz} --energy-key e0", "TRAIN"),
    ("train-out-folder", "train {nacl.extxyz} --out {folder}", "--out"),
    ("train-out-no-folder", "train {nacl.extxyz} --out {root}/absent-train/p.npz", "--out"),
    (
        "train-recipe-missing",
        "train {nacl.extxyz} --out {earlier_model.npz} --recipe {missing}",
        "--recipe",
    ),
    (
        "train-recipe-truncated",
        "train {nacl.extxyz} --out {earlier_model.npz} --recipe {truncated.json}",
        "--recipe",
    ),
    (
        "train-validation-missing",
        "train {nacl.extxyz} --out {earlier_model.npz} --validation {missing}",
        "--validation",
    ),
    (
        "train-references-binary",
        "train {nacl.extxyz} --out {earlier_model.npz} --references {binary}",
        "--references",
    ),
    (
        "train-references-truncated",
        "train {nacl.extxyz} --out {earlier_model.npz} --references {truncated.json}",
        "--references",
    ),
    ("train-n-sparse", "train {nacl.extxyz} --out {earlier_model.npz} --n-sparse 0", "--n-sparse"),
    (
        "train-max-memory",
        "train {nacl.extxyz} --out {earlier_model.npz} --max-memory -1",
        "--max-memory",
    ),
    (
        "train-force-weight",
        "train {nacl.extxyz} --out {earlier_model.npz} --force-weight -1",
        "--force-weight",
    ),
    ("train-preset", "train {nacl.extxyz} --out {earlier_model.npz} --preset nope", "--preset"),
    ("evaluate-missing", "evaluate {missing} {nacl.extxyz} --out {evaluated}", "MODEL"),
    ("evaluate-folder", "evaluate {folder} {nacl.extxyz} --out {evaluated}", "MODEL"),
    ("evaluate-empty", "evaluate {empty} {nacl.extxyz} --out {evaluated}", "MODEL"),
    ("evaluate-binary", "evaluate {binary} {nacl.extxyz} --out {evaluated}", "MODEL"),
    ("evaluate-truncated", "evaluate {truncated.npz} {nacl.extxyz} --out {evaluated}", "MODEL"),
    ("evaluate-not-potential", "evaluate {model.npz} {nacl.extxyz} --out {evaluated}", "MODEL"),
    ("evaluate-wrong-kind", "evaluate {expansion.npz} {nacl.extxyz} --out {evaluated}", "MODEL"),
    ("evaluate-text", "evaluate {nacl.extxyz} {nacl.extxyz} --out {evaluated}", "MODEL"),
    ("evaluate-data-missing", "evaluate {potential.npz} {missing} --out {evaluated}", "DATA"),
    ("evaluate-data-folder", "evaluate {potential.npz} {folder} --out {evaluated}", "DATA"),
    ("evaluate-data-empty", "evaluate {potential.npz} {empty} --out {evaluated}", "DATA"),
    ("evaluate-data-binary", "evaluate {potential.npz} {binary} --out {evaluated}", "DATA"),
    (
        "evaluate-data-truncated",
        "evaluate {potential.npz} {nacl.extxyz} {truncated} --out {evaluated}",
        "DATA",
    ),
    (
        "evaluate-data-wrong-kind",
        "evaluate {potential.npz} {model.npz} --out {evaluated}",
        "DATA",
    ),
    (
        "evaluate-unknown-species",
        "evaluate {potential.npz} {nacl.extxyz} {s.extxyz} --out {evaluated}",
        "DATA",
    ),
    (
        "evaluate-energy-key-absent",
        "evaluate {potential.npz} {nacl.extxyz} --energy-key dft --out {evaluated}",
        "--energy-key",
    ),
    ("evaluate-out-file", "evaluate {potential.npz} {nacl.extxyz} --out {earlier.npz}", "--out"),
    (
        "evaluate-out-no-folder",
        "evaluate {potential.npz} {nacl.extxyz} --out {root}/absent-evaluate/e",
        "--out",
    ),
    # --- md MODEL STRUCTURE --steps N --dt FS [options]; the earlier output a folder
    ("md-missing", "md {missing} {nacl.extxyz} --steps 2 --dt 1 --out {dynamics}", "MODEL"),
    ("md-folder", "md {folder} {nacl.extxyz} --steps 2 --dt 1 --out {dynamics}", "MODEL"),
    ("md-empty", "md {empty} {nacl.extxyz} --steps 2 --dt 1 --out {dynamics}", "MODEL"),
    ("md-binary", "md {binary} {nacl.extxyz} --steps 2 --dt 1 --out {dynamics}", "MODEL"),
    (
        "md-truncated",
        "md {truncated.npz} {nacl.extxyz} --steps 2 --dt 1 --out {dynamics}",
        "MODEL",
    ),
    (
        "md-not-potential",
        "md {model.npz} {nacl.extxyz} --steps 2 --dt 1 --out {dynamics}",
        "MODEL",
    ),
    (
        "md-wrong-kind",
        "md {expansion.npz} {nacl.extxyz} --steps 2 --dt 1 --out {dynamics}",
        "MODEL",
    ),
    (
        "md-structure-missing",
        "md {potential.npz} {missing} --steps 2 --dt 1 --out {dynamics}",
        "STRUCTURE",
    ),
    (
        "md-structure-folder",
        "md {potential.npz} {folder} --steps 2 --dt 1 --out {dynamics}",
        "STRUCTURE",
    ),
    (
        "md-structure-empty",
        "md {potential.npz} {empty} --steps 2 --dt 1 --out {dynamics}",
        "STRUCTURE",
    ),
    (
        "md-structure-binary",
        "md {potential.npz} {binary} --steps 2 --dt 1 --out {dynamics}",
        "STRUCTURE",
    ),
    (
        "md-structure-truncated",
        "md {potential.npz} {truncated} --steps 2 --dt 1 --out {dynamics}",
        "STRUCTURE",
    ),
    (
        "md-structure-wrong-kind",
        "md {potential.npz} {model.npz} --steps 2 --dt 1 --out {dynamics}",
        "STRUCTURE",
    ),
    (
        "md-unknown-species",
        "md {potential.npz} {s.extxyz} --steps 2 --dt 1 --out {dynamics}",
        "STRUCTURE",
    ),
    (
        "md-frame-out-of-range",
        "md {potential.npz} {nacl.extxyz} --steps 2 --dt 1 --frame 2 --out {dynamics}",
        "--frame",
    ),
    ("md-steps-0", "md {potential.npz} {nacl.extxyz} --steps 0 --dt 1 --out {dynamics}", "--steps"),
    (
        "md-steps-negative",
        "md {potential.npz} {nacl.extxyz} --steps -3 --dt 1 --out {dynamics}",
        "--steps",
    ),
    (
        "md-steps-text",
        "md {potential.npz} {nacl.extxyz} --steps many --dt 1 --out {dynamics}",
        "--steps",
    ),
    (
        "md-steps-too-many",
        "md {potential.npz} {nacl.extxyz} --steps 10000001 --dt 1 --out {dynamics}",
        "--steps",
    ),
    ("md-steps-absent", "md {potential.npz} {nacl.extxyz} --dt 1 --out {dynamics}", "--steps"),
    ("md-dt-0", "md {potential.npz} {nacl.extxyz} --steps 2 --dt 0 --out {dynamics}", "--dt"),
    (
        "md-dt-negative",
        "md {potential.npz} {nacl.extxyz} --steps 2 --dt -1 --out {dynamics}",
        "--dt",
    ),
    ("md-dt-nan", "md {potential.npz} {nacl.extxyz} --steps 2 --dt nan --out {dynamics}", "--dt"),
    (
        "md-dt-too-large",
        "md {potential.npz} {nacl.extxyz} --steps 2 --dt 10.5 --out {dynamics}",
        "--dt",
    ),
    (
        "md-temperature-negative",
        "md {potential.npz} {nacl.extxyz} --steps 2 --dt 1 --temperature -5 --out {dynamics}",
        "--temperature",
    ),
    (
        "md-temperature-inf",
        "md {potential.npz} {nacl.extxyz} --steps 2 --dt 1 --temperature inf --out {dynamics}",
        "--temperature",
    ),
    (
        "md-langevin-no-temperature",
        "md {potential.npz} {nacl.extxyz} --steps 2 --dt 1 --thermostat langevin --out {dynamics}",
        "--temperature",
    ),
    (
        "md-thermostat-unknown",
        "md {potential.npz} {nacl.extxyz} --steps 2 --dt 1 --thermostat nose --out {dynamics}",
        "--thermostat",
    ),
    (
        "md-friction-0",
        "md {potential.npz} {nacl.extxyz} --steps 2 --dt 1 --thermostat langevin "
        "--temperature 300 --friction 0 --out {dynamics}",
        "--friction",
    ),
    (
        "md-seed-negative",
        "md {potential.npz} {nacl.extxyz} --steps 2 --dt 1 --seed -1 --out {dynamics}",
        "--seed",
    ),
    (
        "md-interval-0",
        "md {potential.npz} {nacl.extxyz} --steps 2 --dt 1 --interval 0 --out {dynamics}",
        "--interval",
    ),
    (
        "md-out-file",
        "md {potential.npz} {nacl.extxyz} --steps 2 --dt 1 --out {earlier.npz}",
        "--out",
    ),
    (
        "md-out-no-folder",
        "md {potential.npz} {nacl.extxyz} --steps 2 --dt 1 --out {root}/absent-md/m",
        "--out",
    ),
    # --- reproduce NAME [--data PATH] [--out DIR] [--seed N]; the earlier output is a report
    (
        "reproduce-data-missing",
        "reproduce dimers --quiet --data {missing} --out {report}",
        "--data",
    ),
    ("reproduce-data-folder", "reproduce dimers --quiet --data {data} --out {report}", "--data"),
    ("reproduce-data-empty", "reproduce dimers --quiet --data {empty} --out {report}", "--data"),
    ("reproduce-data-binary", "reproduce dimers --quiet --data {binary} --out {report}", "--data"),
    (
        "reproduce-data-truncated",
        "reproduce dimers --quiet --data {truncated} --out {report}",
        "--data",
    ),
    (
        "reproduce-data-wrong-kind",
        "reproduce water --quiet --data {model.npz} --out {report}",
        "--data",
    ),
    ("reproduce-out-file", "reproduce point-charges --quiet --out {earlier.npz}", "--out"),
    (
        "reproduce-out-no-folder",
        "reproduce point-charges --quiet --out {root}/absent-reproduce/r",
        "--out",
    ),
    (
        "reproduce-seed-negative",
        "reproduce point-charges --quiet --seed -1 --out {report}",
        "--seed",
    ),
    ("reproduce-unknown", "reproduce nothing --quiet --out {report}", "experiment"),
]


#: Cases whose line must also give this reason (faults that once gave a wrong one).
REASONS = {
    "predict-text": "not a lodekit-model file",
    "predict-binary": "not a lodekit-model file",
    "expand-hypers-missing-key": "lacks hyperparameter(s) ['radius']",
    "featurize-out-no-folder": "does not exist",
    "featurize-out-file": "is a file",
    "fit-n-sparse-0": "`--n-sparse` is 0 but must be >= 1",
    "reproduce-out-no-folder": "does not exist",
    "evaluate-not-potential": "not a potential",
    "evaluate-unknown-species": "frame 0 holds species the potential does not know: H (Z=1), O",
    "md-not-potential": "not a potential",
    "md-unknown-species": "frame 3 holds species the potential does not know: H (Z=1), O",
    "md-steps-too-many": "at most 10000000 steps",
    "md-dt-too-large": "must be in (0, 10] fs",
    "md-frame-out-of-range": "has 2 frame(s)",
}


@pytest.mark.parametrize(("case", "template", "argument"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line_and_exit_code_2(world, capsys, case, template, argument):
    root, paths = world
    argv = [re.sub(r"\{([^}]+)\}", lambda m: paths[m[1]], part) for part in template.split()]
    before = tree(root)
    code, out, err = call(argv, capsys)
    assert code == 2, (code, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), err
    assert lines[0].startswith(f"lodekit {argv[0]}: error: "), err
    assert argument in lines[0], err
    assert REASONS.get(case, "") in lines[0], err
    assert "Traceback" not in err
    assert out == ""
    assert tree(root) == before  # earlier outputs kept, bytes and mode; nothing added


def test_the_table_covers_every_sub_command():
    from lodekit.cli import COMMANDS

    assert {case[1].split()[0] for case in CASES} == set(COMMANDS)


@pytest.mark.parametrize("command", [[], *[[name] for name in COMMANDS]], ids=repr)
def test_help_is_plain_text(command, capsys):
    # `lodekit --help` once showed the module's developer text with reST markup (issue 27, 16)
    code, out, err = call([*command, "--help"], capsys)
    assert code == 0 and err == ""
    assert out.startswith("usage: lodekit")
    for markup in ("``", ":class:", ":func:", ":meth:", ":mod:", "Parameters\n", "----"):
        assert markup not in out, (command, markup)
