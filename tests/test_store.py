"""Chunked feature stores: round trip, completion, resumption, refusal to mix."""

import shutil

import numpy as np
import pytest

from lodekit.batch import FeatureStore, StoreError, featurize, load_features
from lodekit.features import Recipe
from tests.conftest import STORE_RECIPE, mixed_boxes, snapshot, store_recipe
from tests.helpers import assert_same_store

RECIPE = STORE_RECIPE


@pytest.fixture(scope="module")
def dataset():
    """Seven small boxes; chunks of two see different species (O/H only, or C/N/O/H)."""
    return mixed_boxes(7, seed=7)


def test_round_trip_matches_direct_computation(tmp_path, dataset):
    store = featurize(dataset, tmp_path / "s", RECIPE, chunk_size=2, n_workers=1, progress=False)
    assert store.n_chunks == 4 and store.complete
    features = load_features(tmp_path / "s")
    reference = Recipe.from_dict(RECIPE).compute(dataset, [1, 6, 7, 8])
    np.testing.assert_array_equal(features.samples, reference.samples)
    scale = np.abs(reference.values).max()
    np.testing.assert_allclose(features.values, reference.values, rtol=0, atol=1e-12 * scale)
    np.testing.assert_array_equal(features.properties, reference.properties)
    assert features.property_names == reference.property_names
    assert features.metadata["recipe"] == Recipe.from_dict(RECIPE).to_dict()
    assert features.metadata["species"] == [1, 6, 7, 8]

    reopened = FeatureStore(tmp_path / "s")
    assert reopened.header["n_structures"] == 7
    assert reopened.header["inputs"][0]["name"] == "<memory>"
    assert reopened.header["inputs"][0]["n_frames"] == 7
    assert reopened.header["lodekit_version"]
    chunk = reopened.read_chunk(1)
    np.testing.assert_array_equal(chunk.samples[:, 0], np.repeat([2, 3], [13, 16]))
    parts = [f for _, f in reopened.iter_chunks()]
    np.testing.assert_array_equal(np.concatenate([p.values for p in parts]), features.values)
    # a plain zarr reader sees the same arrays, and no foreign object in the hierarchy
    import zarr

    group = zarr.open_group(str(tmp_path / "s"), mode="r")
    np.testing.assert_array_equal(group["chunks"]["000003"]["values"][...], chunk_values(store, 3))
    assert sorted(group["chunks"].group_keys()) == ["000000", "000001", "000002", "000003"]
    assert not (tmp_path / "s" / ".incomplete").exists()


def chunk_values(store, index):
    return store.read_chunk(index).values


def test_half_written_chunk_is_recomputed_and_missing_chunks_refused(tmp_path, dataset):
    path = tmp_path / "s"
    featurize(dataset, path, RECIPE, chunk_size=2, n_workers=1, progress=False)
    shutil.copytree(path, tmp_path / "reference")
    expected = snapshot(path)
    # a run killed while writing chunk 2: its arrays half there, under .incomplete, never
    # renamed into chunks/
    shutil.copytree(path / "chunks" / "000002", path / ".incomplete" / "000002-dead")
    values = path / ".incomplete" / "000002-dead" / "values"
    for data in [p for p in values.rglob("*") if p.is_file()]:
        if data.name not in ("zarr.json", ".zarray", ".zattrs"):  # zarr 3 and 2 metadata
            data.unlink()
    shutil.rmtree(path / "chunks" / "000002")
    # chunk 3 copied without its record (a non-atomic copy of a store): not finished either
    for name in ("zarr.json", ".zattrs"):
        (path / "chunks" / "000003" / name).unlink(missing_ok=True)
    store = FeatureStore(path)
    assert store.finished_chunks() == [0, 1] and store.missing_chunks() == [2, 3]
    kept = [(path / "chunks" / f"00000{i}").stat().st_ino for i in (0, 1)]
    with pytest.raises(StoreError, match=r"incomplete: 2 of 4 chunks are missing \(2, 3\)"):
        store.load()
    partial = store.load(allow_missing=True)
    assert sorted(set(partial.samples[:, 0])) == [0, 1, 2, 3]

    featurize(dataset, path, RECIPE, n_workers=1, progress=False)  # chunk size from the store
    assert snapshot(path).keys() == expected.keys()
    # finished chunks are skipped, not rewritten: the same directories (inodes) as before
    assert [(path / "chunks" / f"00000{i}").stat().st_ino for i in (0, 1)] == kept
    assert_same_store(path, tmp_path / "reference")


def test_corrupt_chunk_is_detected(tmp_path, dataset):
    path = tmp_path / "s"
    featurize(dataset[:4], path, RECIPE, chunk_size=2, n_workers=1, progress=False)
    store = FeatureStore(path)
    import zarr

    array = zarr.open_array(str(path / "chunks" / "000001" / "values"), mode="r+")
    array[0, 0] = array[0, 0] + 1.0
    with pytest.raises(
        StoreError, match=r"chunk 1 .* checksum mismatch for 'values'.* run featurize again"
    ):
        store.load()
    store.load(verify=False)
    shutil.rmtree(path / "chunks" / "000001" / "samples")
    with pytest.raises(StoreError, match=r"chunk 1 .* cannot be read"):
        store.read_chunk(1)


def test_rerun_with_another_recipe_inputs_or_chunks_refuses(tmp_path, dataset):
    path = tmp_path / "s"
    featurize(dataset[:4], path, RECIPE, chunk_size=2, n_workers=1, progress=False)
    before = snapshot(path)
    cases = [
        (dict(structures=dataset[:4], recipe=store_recipe(smearing=0.8)), "smearing: 1.0 there"),
        (
            dict(structures=dataset[:4], recipe=store_recipe(kind="nu1")),
            r"blocks\[0\]\.kind: 'power_spectrum' there, 'nu1' now",
        ),
        (dict(structures=dataset[:5], recipe=RECIPE), "other structures"),
        (dict(structures=dataset[1:5], recipe=RECIPE), "different contents"),
        (dict(structures=dataset[:4], recipe=RECIPE, chunk_size=3), "chunks of 2 structures"),
        (dict(structures=dataset[:4], recipe=RECIPE, species=[1, 6, 7, 8, 9]), "species"),
    ]
    for kwargs, message in cases:
        structures = kwargs.pop("structures")
        recipe = kwargs.pop("recipe")
        with pytest.raises(StoreError, match=message) as info:
            featurize(structures, path, recipe, n_workers=1, progress=False, **kwargs)
        assert "refusing to mix" in str(info.value) or "leave the chunk size out" in str(info.value)
    assert snapshot(path) == before

    (tmp_path / "file").write_text("precious")
    with pytest.raises(StoreError, match="is a file"):
        featurize(dataset[:2], tmp_path / "file", RECIPE, n_workers=1, progress=False)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "notes.txt").write_text("precious")
    with pytest.raises(StoreError, match="not a lodekit feature store"):
        featurize(dataset[:2], tmp_path / "dir", RECIPE, n_workers=1, progress=False)
    assert (tmp_path / "file").read_text() == (tmp_path / "dir" / "notes.txt").read_text()
    with pytest.raises(StoreError, match="does not exist"):
        FeatureStore(tmp_path / "nowhere")


def test_one_writer_at_a_time(tmp_path, dataset):
    path = tmp_path / "s"
    store = featurize(dataset[:2], path, RECIPE, chunk_size=1, n_workers=1, progress=False)
    with store.writer(), pytest.raises(StoreError, match="being written by another process"):
        with FeatureStore(path).writer():
            pass
    with FeatureStore(path).writer():  # released
        pass
