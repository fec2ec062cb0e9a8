"""Test data that several test files share, defined once: the recipe of the feature-store
tests, the point-charge boxes of the fit and GROMACS tests, the mixed O/H and C/N/O/H
datasets, and the data files (shipped with lodekit or in the project's shared data).

They are constants and plain functions, imported (``from tests.conftest import
STORE_RECIPE``): the tests that use them call them with their own sizes and seeds. Changing a
value here changes every test that uses it; each entry names those tests.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import ase
import ase.io
import numpy as np
import pytest

from lodekit.datasets.loaders import default_data_dir
from tests.helpers import three_species_box, triclinic_box

#: The project's shared data (``../shared/data`` beside the checkout, or ``$LODEKIT_DATA``),
#: read by the reference tests (bench systems, GROMACS frames) and the experiments.
SHARED_DATA = default_data_dir()

#: LODE expansion of a small basis (l <= 1, two radial functions) whose power spectrum is the
#: recipe of the feature-store and command-line tests (test_store.py, test_cli_featurize.py,
#: test_persistence.py); the parallel tests (test_parallel.py) take it with l <= 2.
STORE_LODE = {
    "calculator": "lode_spherical_expansion",
    "smearing": 1.0,
    "max_radial": 2,
    "max_angular": 1,
    "radius": 3.0,
}


def store_recipe(kind: str = "power_spectrum", **changes) -> dict:
    """A one-block recipe (a dict, as written to JSON) of ``kind`` on :data:`STORE_LODE`
    with ``changes`` to the expansion hypers."""
    return {"blocks": [{"kind": kind, "expansion": {**STORE_LODE, **changes}}]}


STORE_RECIPE = store_recipe()

#: ``random_point_charges`` arguments of 8 charges in 7.5-10.5 Å boxes, closest pair 1.7 Å,
#: like the shared GROMACS frames (closest pair there: 1.79 Å); test_gromacs_forces.py and
#: the fit/predict test of test_cli_featurize.py.
POINT_CHARGE_BOXES = {"n_charges": 8, "box_range": (7.5, 10.5), "min_distance": 1.7}


def shared_file(*parts: str) -> Path:
    """A file of the shared data; a missing file fails the test with its path (never a skip:
    a reference test that cannot find its reference must not pass)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"reference data missing: {path} (the project's shared data; set LODEKIT_DATA)")
    return path


def bench_system(name: str) -> ase.Atoms:
    """``bench_systems/NAME.extxyz`` of the shared data (water64, water512, nacl64, dimer18)."""
    return ase.io.read(shared_file("bench_systems", f"{name}.extxyz"))


def water64() -> ase.Atoms:
    """The 192-atom water box shipped with lodekit (byte-identical to the shared
    bench_systems/water64.extxyz)."""
    return ase.io.read(resources.files("lodekit") / "data" / "water64.extxyz")


def mixed_boxes(n: int, seed: int) -> list[ase.Atoms]:
    """``n`` random boxes, every third one C/N/O/H and the others O/H only, so that chunks of
    a dataset see different species (test_store.py, test_parallel.py)."""
    rng = np.random.default_rng(seed)
    return [triclinic_box(rng) if i % 3 else three_species_box(rng) for i in range(n)]


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file of a directory tree with its bytes (a store left untouched keeps it)."""
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


#: SOAP power spectrum + LODE nu = 1 of the small NaCl potential of the `evaluate` and `md`
#: command tests (test_cli_potential.py, test_cli_contract.py) and of test_potential_files.py.
NACL_POTENTIAL_RECIPE = {
    "blocks": [
        {
            "kind": "power_spectrum",
            "expansion": {"calculator": "spherical_expansion", "cutoff": 4.0, "smearing": 0.5,
                          "max_radial": 3, "max_angular": 2},
        },
        {
            "kind": "nu1",
            "center_types": [11, 17],
            "expansion": {"calculator": "lode_spherical_expansion", "smearing": 1.0,
                          "radius": 2.0, "max_radial": 1, "max_angular": 0, "accuracy": 1e-8},
        },
    ]
}  # fmt: skip


def nacl_potential(path: Path):
    """A potential (StructureRidge on :data:`NACL_POTENTIAL_RECIPE`) fitted to the energies of
    20 rattled rigid-ion NaCl cells, saved to ``path``; returns the LodePotential (about 1 s).
    test_cli_potential.py, test_cli_contract.py."""
    from lodekit.datasets import rigid_ion_nacl
    from lodekit.features import Recipe
    from lodekit.interatomic import LodePotential
    from lodekit.models import StructureRidge

    frames = rigid_ion_nacl(20, seed=5, rattle=0.15)
    recipe = Recipe.from_dict(NACL_POTENTIAL_RECIPE)
    x = recipe.compute(frames)
    energies = [atoms.info["energy"] for atoms in frames]
    model = StructureRidge(alpha=[1e-8, 1e-6]).fit(
        x.values, energies, x.samples[:, 0], x.samples[:, 2]
    )
    potential = LodePotential(model, recipe, species=[11, 17])
    potential.save(path)
    return potential
