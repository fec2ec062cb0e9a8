"""One persistence layer: atomic writes with the umask's modes, one digest, sealed headers.

Faults these tests pin (all reproduced on the tree before lodekit.persistence):
- a model file whose recipe (metadata) was edited, smearing 1.0 -> 3.0, loaded silently and
  `lodekit predict` printed other numbers with exit code 0;
- an extra fitted entry ``predict`` in a model file was set on the loaded model; an entry
  ``__class__`` raised a raw TypeError;
- every atomic write left mode 0600 (mkstemp) whatever the umask.
"""

import hashlib
import json
import os
import stat
from pathlib import Path

import ase.io
import numpy as np
import pytest

import lodekit
from lodekit.batch import FeatureStore, StoreError, featurize
from lodekit.cli import main
from lodekit.models import StructureRidge, SymmetricTensorRegression
from lodekit.persistence import (
    ArchiveError,
    ModelFileError,
    atomic_directory,
    atomic_write,
    digest,
    load_expansion,
    load_model,
    save_expansion,
    save_model,
)
from tests.conftest import STORE_RECIPE
from tests.helpers import rewrite_npz, three_species_box, triclinic_box

RECIPE = STORE_RECIPE


@pytest.fixture
def umask():
    """Set the process umask for one test, restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def fitted_ridge():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(20, 4)), rng.normal(size=5)
    groups = np.repeat(np.arange(5), 4)
    species = rng.choice([1, 8], size=20)
    return StructureRidge(alpha=1e-3).fit(x, y, groups, species), (x, groups, species)


# ------------------------------------------------------------------ digest and atomic writes
def test_digest_is_sha256_of_type_shape_and_bytes():
    a = np.arange(6.0).reshape(2, 3)
    by_hand = hashlib.sha256(b"<f8(2, 3)" + a.tobytes()).hexdigest()
    assert digest(a) == by_hand
    assert digest(np.asfortranarray(a)) == by_hand  # layout in memory does not count
    assert digest(a.T.copy().T) == by_hand
    assert digest(a.reshape(3, 2)) != by_hand  # same bytes, other shape
    assert digest(a.view(np.int64)) != by_hand  # same bytes, other type


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077], ids=["022", "002", "077"])
def test_atomic_write_gives_the_umask_mode_and_replaces_whole_files(tmp_path, umask, mask):
    umask(mask)
    path = atomic_write(tmp_path / "f.txt", lambda stream: stream.write(b"one"))
    assert mode(path) == 0o666 & ~mask
    with pytest.raises(RuntimeError, match="disk full"):

        def half(stream):
            stream.write(b"two, half written")
            raise RuntimeError("disk full")

        atomic_write(path, half)
    assert path.read_bytes() == b"one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]  # no temporary left


def test_atomic_directory_appears_complete_or_not_at_all(tmp_path, umask):
    umask(0o002)

    def build(folder):
        (folder / "a").write_text("a")

    final = atomic_directory(tmp_path / "d", build)
    assert (final / "a").read_text() == "a"
    assert mode(final) == 0o775 and mode(final / "a") == 0o664

    def explode(folder):
        (folder / "b").write_text("b")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_directory(tmp_path / "e", explode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


# ------------------------------------------------------------------ model files
def edit_metadata(header, arrays):
    header["metadata"]["recipe"]["smearing"] = 3.0


def edit_param(header, arrays):
    header["model"]["params"]["alpha"] = 0.5


def edit_array(header, arrays):
    arrays["coef_"] = arrays["coef_"].copy()
    arrays["coef_"].view(np.uint8)[3] ^= 1  # one bit of one byte


def add_array(header, arrays):
    arrays["extra"] = np.zeros(3)


def add_attribute(name):
    def edit(header, arrays):
        header["model"]["fitted"][name] = {"scalar": 1.0}

    return edit


def add_param(header, arrays):
    header["model"]["params"]["__class__"] = "StructureRidge"


def other_class(header, arrays):
    header["model"]["class"] = "os.system"


def drop_attribute(header, arrays):
    del header["model"]["fitted"]["alpha_"]


def string_scalar(header, arrays):
    header["model"]["fitted"]["alpha_"] = {"scalar": "1e-3"}


def add_header_entry(header, arrays):
    header["__class__"] = "StructureRidge"


EDITED = "the header does not match its checksum: the file was modified"
MODEL_EDITS = [
    # (edit, checksum recomputed?, message)
    (edit_metadata, False, EDITED),
    (edit_param, False, EDITED),
    (add_attribute("predict"), False, EDITED),
    (add_header_entry, False, EDITED),
    (edit_array, False, "checksum mismatch for 'coef_': the file was modified; fit the model"),
    (add_array, False, "array 'extra' is not in the header"),
    # behind the checksum, as someone who knows the format could rewrite it
    (add_attribute("predict"), True, "'predict' is not a fitted attribute of StructureRidge"),
    (add_attribute("__class__"), True, "'__class__' is not a fitted attribute of StructureRidge"),
    (add_attribute("__dict__"), True, "'__dict__' is not a fitted attribute of StructureRidge"),
    (add_param, True, "StructureRidge takes no parameter '__class__'"),
    (other_class, True, "model has unknown class 'os.system'"),
    (drop_attribute, True, "model lacks its fitted attribute 'alpha_'"),
    (string_scalar, True, "invalid entry for model.alpha_"),
    (add_header_entry, True, "unknown header entry '__class__'"),
]


@pytest.mark.parametrize("edit, reseal, message", MODEL_EDITS)
def test_an_altered_model_file_is_refused(tmp_path, edit, reseal, message):
    model, _ = fitted_ridge()
    path = save_model(tmp_path / "m.npz", model, {"recipe": {"smearing": 1.0}})
    rewrite_npz(path, tmp_path / "altered.npz", edit, reseal=reseal)
    with pytest.raises(ModelFileError, match=message.replace("(", r"\(")):
        load_model(tmp_path / "altered.npz")


def test_predict_refuses_a_model_file_with_an_edited_recipe(tmp_path, capsys):
    model, _ = fitted_ridge()
    path = save_model(tmp_path / "m.npz", model, {"recipe": {"smearing": 1.0}})
    rewrite_npz(path, tmp_path / "altered.npz", edit_metadata, reseal=False)
    capsys.readouterr()
    code = main(["predict", str(tmp_path / "altered.npz"), str(tmp_path / "any.xyz")])
    err = capsys.readouterr().err
    assert code == 2
    assert "does not match its checksum" in err and "`MODEL`" in err


def test_a_nested_model_entry_is_checked_like_the_outer_one(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 3 + 5 * 2))
    groups = np.repeat(np.arange(4), 3)
    model = SymmetricTensorRegression(n_scalar_features=3).fit(
        x, rng.normal(size=(4, 3, 3)), groups
    )
    path = save_model(tmp_path / "t.npz", model)
    again = load_model(path)
    np.testing.assert_array_equal(again.predict(x, groups), model.predict(x, groups))

    def sneak(header, arrays):
        header["model"]["fitted"]["tensor_model_"]["model"]["fitted"]["predict"] = {"scalar": 0}

    rewrite_npz(path, tmp_path / "altered.npz", sneak, reseal=True)
    with pytest.raises(ModelFileError, match="'predict' is not a fitted attribute of Equivar"):
        load_model(tmp_path / "altered.npz")


def test_a_model_file_of_the_old_version_is_refused_with_a_way_out(tmp_path):
    model, _ = fitted_ridge()
    path = save_model(tmp_path / "m.npz", model)

    def version_1(header, arrays):  # what lodekit wrote before: no checksum over the header
        header["format_version"] = 1
        del header["checksum"], header["arrays"]

    rewrite_npz(path, tmp_path / "old.npz", version_1, reseal=False)
    with pytest.raises(ModelFileError, match=r"format version 1 .* fit the model again"):
        load_model(tmp_path / "old.npz")


def test_model_file_round_trip_is_exact_and_public(tmp_path):
    model, (x, groups, species) = fitted_ridge()
    assert lodekit.save_model is save_model and lodekit.load_model is load_model
    metadata = {"recipe": {"smearing": 1.0, "radius": 3.0}, "nan": float("nan")}
    again = load_model(save_model(tmp_path / "m.npz", model, metadata))
    np.testing.assert_array_equal(
        again.predict(x, groups, species), model.predict(x, groups, species)
    )
    for name in StructureRidge._fitted_attributes:
        np.testing.assert_array_equal(getattr(again, name), getattr(model, name))
    assert again.metadata_["recipe"] == metadata["recipe"]
    assert np.isnan(again.metadata_["nan"])
    assert again.get_params() == model.get_params()


def test_the_cross_validation_record_round_trips_and_older_files_load(tmp_path):
    """cv_alphas_ / cv_rmse_ (the K-fold RMSE of every alpha searched) are saved; a file
    written before they existed loads with empty ones and predicts as before."""
    _, (x, groups, species) = fitted_ridge()
    y = np.random.default_rng(4).normal(size=5)
    model = StructureRidge(alpha=[1e-3, 1e-1, 10.0], cv=2).fit(x, y, groups, species)
    assert model.cv_rmse_.shape == (3,) and np.all(model.cv_rmse_ > 0)
    path = save_model(tmp_path / "m.npz", model)
    again = load_model(path)
    np.testing.assert_array_equal(again.cv_rmse_, model.cv_rmse_)
    np.testing.assert_array_equal(again.cv_alphas_, [1e-3, 1e-1, 10.0])

    def before_cv(header, arrays):
        for name in ("cv_alphas_", "cv_rmse_"):
            del header["model"]["fitted"][name], arrays[name]

    rewrite_npz(path, tmp_path / "old.npz", before_cv, reseal=True)
    old = load_model(tmp_path / "old.npz")
    assert old.cv_rmse_.shape == (0,) and old.cv_alphas_.shape == (0,)
    np.testing.assert_array_equal(
        old.predict(x, groups, species), model.predict(x, groups, species)
    )


def test_saving_refuses_an_undeclared_fitted_attribute(tmp_path):
    model, _ = fitted_ridge()
    model.surprise_ = np.zeros(2)
    with pytest.raises(lodekit.LodekitError, match=r"unknown fitted attributes \['surprise_'\]"):
        save_model(tmp_path / "m.npz", model)
    assert not (tmp_path / "m.npz").exists()


# ------------------------------------------------------------------ expansion archives
@pytest.fixture(scope="module")
def expansion():
    soap = lodekit.SphericalExpansion(cutoff=2.5, smearing=0.4, max_radial=2, max_angular=1)
    return soap.compute(three_species_box(np.random.default_rng(0)))


def edit_hypers(header, arrays):
    header["hypers"]["smearing"] = 3.0 * header["hypers"]["smearing"]


def edit_values(header, arrays):
    arrays["values_l1"] = arrays["values_l1"].copy()
    arrays["values_l1"].view(np.uint8)[0] ^= 1


@pytest.mark.parametrize(
    "edit, reseal, message",
    [
        (edit_hypers, False, EDITED),
        (add_header_entry, False, EDITED),
        (edit_values, False, "checksum mismatch for 'values_l1'"),
        (add_array, False, "array 'extra' is not in the header"),
        (add_header_entry, True, "unknown header entry '__class__'"),
    ],
)
def test_an_altered_expansion_archive_is_refused(tmp_path, expansion, edit, reseal, message):
    path = save_expansion(tmp_path / "e.npz", expansion)
    rewrite_npz(path, tmp_path / "altered.npz", edit, reseal=reseal)
    with pytest.raises(ArchiveError, match=message):
        load_expansion(tmp_path / "altered.npz")


def test_expansion_archive_of_the_old_version_is_refused(tmp_path, expansion):
    path = save_expansion(tmp_path / "e.npz", expansion)

    def version_1(header, arrays):
        header["format_version"] = 1
        del header["checksum"], header["arrays"]

    rewrite_npz(path, tmp_path / "old.npz", version_1, reseal=False)
    with pytest.raises(ArchiveError, match=r"format version 1 .* compute the expansion again"):
        load_expansion(tmp_path / "old.npz")


# ------------------------------------------------------------------ feature stores
@pytest.fixture(scope="module")
def structures():
    rng = np.random.default_rng(7)
    return [triclinic_box(rng), three_species_box(rng), triclinic_box(rng)]


def edit_attributes(group: Path, edit) -> None:
    """Edit a zarr group's attributes in place, checksum untouched (zarr 3 or 2 layout)."""
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        if (group / name).exists():
            data = json.loads((group / name).read_text())
            edit(data[key] if key else data)
            (group / name).write_text(json.dumps(data))
            return
    raise AssertionError(f"no attributes in {group}")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda h: h["recipe"]["blocks"][0]["expansion"].update(smearing=3.0), EDITED),
        (lambda h: h.update(__class__="FeatureStore"), EDITED),
        (lambda h: h.update(n_chunks=1), EDITED),
        (lambda h: h.update(format_version=1), "format version 1 .* run `lodekit featurize` again"),
    ],
)
def test_an_altered_store_header_is_refused(tmp_path, structures, edit, message):
    path = tmp_path / "s"
    featurize(structures, path, RECIPE, chunk_size=2, n_workers=1, progress=False)
    edit_attributes(path, edit)
    with pytest.raises(StoreError, match=message):
        FeatureStore(path)


def test_an_altered_store_array_or_chunk_record_is_refused(tmp_path, structures):
    import zarr

    path = tmp_path / "s"
    featurize(structures, path, RECIPE, chunk_size=2, n_workers=1, progress=False)
    FeatureStore(path).load()
    edit_attributes(path / "chunks" / "000001", lambda r: r.update(n_rows=r["n_rows"] + 0))
    FeatureStore(path).load()  # rewritten unchanged: still fine
    edit_attributes(path / "chunks" / "000001", lambda r: r.update(first_structure=1))
    with pytest.raises(StoreError, match=r"chunk 1 \(000001\): the header does not match"):
        FeatureStore(path).load(verify=False)  # the record is checked even without arrays
    edit_attributes(path / "chunks" / "000001", lambda r: r.update(first_structure=2))
    FeatureStore(path).load()

    n_atoms = zarr.open_array(str(path / "n_atoms"), mode="r+")
    n_atoms[0] = n_atoms[0] + 1
    with pytest.raises(StoreError, match="checksum mismatch for 'n_atoms'"):
        FeatureStore(path)


# ------------------------------------------------------------------ modes of every writer
@pytest.mark.parametrize("mask", [0o022, 0o002], ids=["022", "002"])
def test_every_writer_keeps_the_umask_mode(tmp_path, umask, mask, structures, expansion):
    from lodekit.experiments.report import write_report

    umask(mask)
    files, folders = 0o666 & ~mask, 0o777 & ~mask
    assert mode(save_expansion(tmp_path / "e.npz", expansion)) == files
    model, _ = fitted_ridge()
    assert mode(save_model(tmp_path / "m.npz", model)) == files

    store = tmp_path / "store"
    featurize(structures, store, RECIPE, chunk_size=2, n_workers=1, progress=False)
    written = list(store.rglob("*"))
    assert len(written) > 10 and (store / "chunks" / "000001").is_dir()
    assert {mode(p) for p in written if p.is_file()} == {files}
    assert {mode(p) for p in [store, *written] if p.is_dir()} == {folders}

    out = tmp_path / "report"
    write_report(
        out, "t", {"a": {10: 5.0}}, paper={}, labels={"a": "a"}, config={}, wall_time=1.0, notes=[]
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "learning_curves.png", "metrics.json", "results.md",
    ]  # fmt: skip
    assert {mode(p) for p in out.iterdir()} == {files}


def test_predict_writes_its_csv_with_the_umask_mode(tmp_path, umask, capsys):
    umask(0o002)
    rng = np.random.default_rng(2)
    boxes = [triclinic_box(rng) for _ in range(4)]
    for k, box in enumerate(boxes):
        box.info["energy"] = float(k)
    inputs = tmp_path / "boxes.extxyz"
    ase.io.write(inputs, boxes)
    (tmp_path / "h.json").write_text(json.dumps(RECIPE))
    store, model, csv = tmp_path / "s", tmp_path / "m.npz", tmp_path / "p.csv"
    argv = [
        ["featurize", str(inputs), "--out", str(store), "--recipe", str(tmp_path / "h.json"),
         "--workers", "1", "--quiet"],
        ["fit", str(store), "--target", "energy", "--out", str(model)],
        ["predict", str(model), str(inputs), "--out", str(csv), "--workers", "1"],
    ]  # fmt: skip
    for args in argv:
        assert main(args) == 0, capsys.readouterr().err
    assert mode(model) == 0o664 and mode(csv) == 0o664
    assert len(csv.read_text().splitlines()) == 5
