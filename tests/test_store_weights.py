"""Feature stores and `lodekit featurize` with calculators weighted by a per-atom ase array."""

import json

import ase.io
import numpy as np
import pytest

from lodekit import System
from lodekit.batch import FeatureStore, StoreError, StructureSource, featurize, load_features
from lodekit.batch.featurize import compute_chunks
from lodekit.batch.fit_predict import store_source
from lodekit.cli import main
from lodekit.errors import InputError
from lodekit.features import Recipe
from tests.conftest import STORE_LODE, mixed_boxes, snapshot

#: LODE power spectrum weighted by the extxyz column ``initial_charges``, one all-atoms
#: channel, then the unweighted nu = 1 of the same basis (a calculator of its own).
WEIGHTED = {
    "blocks": [
        {
            "kind": "power_spectrum",
            "expansion": {
                **STORE_LODE,
                "weights": "initial_charges",
                "species_channels": False,
            },
        },
        {"kind": "nu1", "expansion": STORE_LODE},
    ]
}
#: The same blocks without the weights option.
UNWEIGHTED = {
    "blocks": [
        {"kind": "power_spectrum", "expansion": {**STORE_LODE, "species_channels": False}},
        {"kind": "nu1", "expansion": STORE_LODE},
    ]
}


def charged_frames(n: int, seed: int) -> list:
    frames = mixed_boxes(n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for atoms in frames:
        atoms.set_initial_charges(rng.uniform(-1.0, 1.0, len(atoms)))
    return frames


def write(path, frames):
    ase.io.write(path, frames, format="extxyz")
    return path


def test_store_from_frames_weights_every_atom_by_its_charge(tmp_path):
    path = write(tmp_path / "q.extxyz", charged_frames(5, seed=3))
    store = featurize(path, tmp_path / "w", WEIGHTED, chunk_size=2, n_workers=1, progress=False)
    weighted = load_features(store.path)

    # reference: the unweighted recipes on Systems built with the charges read from the file
    frames = ase.io.read(path, ":")
    species = store.species
    charged = [
        System(a.positions, a.numbers, a.cell.array, a.pbc, weights=a.arrays["initial_charges"])
        for a in frames
    ]
    plain = [System(a.positions, a.numbers, a.cell.array, a.pbc) for a in frames]
    first = Recipe.from_dict({"blocks": UNWEIGHTED["blocks"][:1]}).compute(charged, species)
    second = Recipe.from_dict({"blocks": UNWEIGHTED["blocks"][1:]}).compute(plain, species)
    reference = np.hstack([first.values, second.values])
    scale = np.abs(reference).max()
    np.testing.assert_allclose(weighted.values, reference, rtol=0, atol=1e-12 * scale)
    np.testing.assert_array_equal(weighted.samples, first.samples)
    # a source scanned for another recipe is read again for this one's arrays
    [(_, values, _)] = compute_chunks(
        StructureSource.scan(path), Recipe.from_dict(WEIGHTED), species, chunk_size=5, n_workers=1
    )
    np.testing.assert_array_equal(values, weighted.values)
    again = featurize(StructureSource.scan(path), tmp_path / "again", WEIGHTED, progress=False)
    assert again.inputs == store.inputs

    # the same frames without weights give other features in the weighted block only
    unweighted = load_features(
        featurize(path, tmp_path / "u", UNWEIGHTED, chunk_size=2, n_workers=1, progress=False).path
    )
    width = first.values.shape[1]
    assert np.abs(unweighted.values[:, :width] - weighted.values[:, :width]).max() > 1e-3 * scale
    np.testing.assert_array_equal(unweighted.values[:, width:], weighted.values[:, width:])


def test_frame_without_the_array_is_refused_naming_the_structure(tmp_path, capsys):
    write(tmp_path / "a.extxyz", charged_frames(2, seed=5))
    frames = charged_frames(2, seed=6)
    del frames[1].arrays["initial_charges"]  # ase would read the missing column as zeros
    write(tmp_path / "b.extxyz", frames)
    inputs = [str(tmp_path / "a.extxyz"), str(tmp_path / "b.extxyz")]
    store = tmp_path / "s"
    with pytest.raises(InputError) as info:
        featurize(inputs, store, WEIGHTED, n_workers=1, progress=False)
    message = str(info.value)
    assert "frame 1 (structure 3)" in message and "'initial_charges'" in message
    assert "every structure must carry it" in message and "\n" not in message
    assert not store.exists()

    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(WEIGHTED))
    capsys.readouterr()
    code = main(["featurize", *inputs, "--out", str(store), "--recipe", str(recipe), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("lodekit featurize: error: `INPUT`")
    assert "(structure 3)" in err and "'initial_charges'" in err
    assert not store.exists()


def test_resume_refuses_other_weights(tmp_path):
    frames = charged_frames(3, seed=8)
    path = write(tmp_path / "q.extxyz", frames)
    weighted, unweighted = tmp_path / "w", tmp_path / "u"
    featurize(path, weighted, WEIGHTED, chunk_size=2, n_workers=1, progress=False)
    featurize(path, unweighted, UNWEIGHTED, chunk_size=2, n_workers=1, progress=False)
    before = {store: snapshot(store) for store in (weighted, unweighted)}
    # the structures a weighted store was computed from are found again, charges included
    assert store_source(FeatureStore(weighted)).n_structures == 3

    for store, recipe, message in [
        (weighted, UNWEIGHTED, r"weights: 'initial_charges' there, None now"),
        (unweighted, WEIGHTED, r"weights: None there, 'initial_charges' now"),
    ]:
        with pytest.raises(StoreError, match=message):
            featurize(path, store, recipe, n_workers=1, progress=False)

    frames[2].set_initial_charges(-frames[2].get_initial_charges())  # same atoms, other charges
    write(path, frames)
    with pytest.raises(StoreError, match="different contents"):
        featurize(path, weighted, WEIGHTED, n_workers=1, progress=False)
    with pytest.raises(InputError, match="are not the structures featurised"):
        store_source(FeatureStore(weighted))
    # unweighted features do not depend on the charges: that store still resumes
    featurize(path, unweighted, UNWEIGHTED, n_workers=1, progress=False)
    assert {store: snapshot(store) for store in (weighted, unweighted)} == before
