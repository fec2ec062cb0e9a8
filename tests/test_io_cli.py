"""Expansion archives and the command line."""

import json
import zipfile

import numpy as np
import pytest

import lodekit
from lodekit.cli import main
from lodekit.persistence import ArchiveError, load_expansion, save_expansion
from tests.helpers import molecule, rewrite_npz, three_species_box


@pytest.fixture
def expansions():
    rng = np.random.default_rng(0)
    lode = lodekit.LodeSphericalExpansion(smearing=1.0, max_radial=2, max_angular=2, radius=3.0)
    soap = lodekit.SphericalExpansion(cutoff=2.5, smearing=0.4, max_radial=2, max_angular=1)
    return [lode.compute(three_species_box(rng)), soap.compute(molecule(rng))]


def test_round_trip(tmp_path, expansions):
    for i, expansion in enumerate(expansions):
        path = save_expansion(tmp_path / f"e{i}.npz", expansion)
        again = load_expansion(path)
        for a, b in zip(expansion.values, again.values, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(again.samples, expansion.samples)
        assert again.hypers == expansion.hypers
        assert again.to_tensormap().keys == expansion.to_tensormap().keys


def test_round_trip_keeps_gradients(tmp_path):
    rng = np.random.default_rng(2)
    soap = lodekit.SphericalExpansion(cutoff=2.5, smearing=0.4, max_radial=2, max_angular=1)
    expansion = soap.compute(three_species_box(rng), gradients=["positions", "strain"])
    again = load_expansion(save_expansion(tmp_path / "g.npz", expansion))
    assert set(again.gradients) == {"positions", "strain"}
    for name, gradient in expansion.gradients.items():
        np.testing.assert_array_equal(again.gradients[name].samples, gradient.samples)
        for a, b in zip(gradient.values, again.gradients[name].values, strict=True):
            np.testing.assert_array_equal(a, b)
    reference, loaded = expansion.to_tensormap(), again.to_tensormap()
    for key, block in reference.items():
        assert block.gradient("strain").values.shape == (
            loaded.block(key).gradient("strain").values.shape
        )

    # a gradient array cut short is caught, not returned
    def cut(header, arrays):
        arrays["gradient_positions_l1"] = arrays["gradient_positions_l1"][:-1]

    rewrite_npz(tmp_path / "g.npz", tmp_path / "bad.npz", cut, reseal=False)
    with pytest.raises(ArchiveError, match="checksum mismatch for 'gradient_positions_l1'"):
        load_expansion(tmp_path / "bad.npz")
    # and behind the checksum (recomputed), the shape check
    rewrite_npz(tmp_path / "g.npz", tmp_path / "bad.npz", cut, reseal=True)
    with pytest.raises(ArchiveError, match="positions gradient arrays do not match"):
        load_expansion(tmp_path / "bad.npz")


def test_corrupt_truncated_and_tampered_archives(tmp_path, expansions):
    path = save_expansion(tmp_path / "good.npz", expansions[0])
    data = path.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match=r"not a readable \.npz archive"):
        load_expansion(truncated)

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"definitely not a zip file")
    with pytest.raises(ArchiveError, match="not a readable"):
        load_expansion(garbage)

    with pytest.raises(ArchiveError, match="does not exist"):
        load_expansion(tmp_path / "missing.npz")

    tampered = tmp_path / "tampered.npz"

    def cut(header, arrays):
        arrays["values_l1"] = arrays["values_l1"][:, :, :2]

    rewrite_npz(path, tampered, cut, reseal=True)  # checksum recomputed: the shape check
    with pytest.raises(ArchiveError, match="do not match the header"):
        load_expansion(tampered)
    with np.load(tampered) as archive:
        arrays = {k: archive[k] for k in archive.files}

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**arrays, "values_l1": np.array([object()], dtype=object)})
    with pytest.raises(ArchiveError, match="not a readable"):
        load_expansion(pickled)

    other = tmp_path / "other.npz"
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    header = json.loads(arrays["header"].tobytes())
    header["format"] = "something-else"
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(other, **arrays)
    with pytest.raises(ArchiveError, match="is not a lodekit-expansion archive"):
        load_expansion(other)
    assert zipfile.is_zipfile(path)


def test_failed_write_keeps_previous_file(tmp_path, expansions, monkeypatch):
    path = save_expansion(tmp_path / "e.npz", expansions[0])
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        save_expansion(path, expansions[1])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npz"]


def test_cli_example(capsys, tmp_path):
    assert main(["example", "--out", str(tmp_path / "w.npz")]) == 0
    out = capsys.readouterr().out
    assert "192 centres" in out
    assert load_expansion(tmp_path / "w.npz").values[0].shape == (192, 2, 1, 7)


def test_cli_expand_and_errors(capsys, tmp_path):
    structure = tmp_path / "s.extxyz"
    three_species_box(np.random.default_rng(3)).write(structure)
    hypers = tmp_path / "h.json"
    hypers.write_text(
        json.dumps({"cutoff": 3.0, "smearing": 0.4, "max_radial": 2, "max_angular": 1})
    )
    out = tmp_path / "out.npz"
    assert (
        main(
            [
                "expand",
                str(structure),
                "--calculator",
                "spherical_expansion",
                "--hypers",
                str(hypers),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    first = out.read_bytes()

    bad = [
        (
            [
                "expand",
                str(tmp_path / "none.xyz"),
                "--calculator",
                "spherical_expansion",
                "--hypers",
                str(hypers),
            ],
            "`INPUT`",
        ),
        (["expand", str(structure), "--hypers", str(hypers)], "`--hypers`"),
        (["expand", str(structure), "--hypers", str(tmp_path / "none.json")], "cannot be read"),
    ]
    for argv, message in bad:
        capsys.readouterr()
        assert main([*argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err
        assert len(err.strip().splitlines()) == 1
    assert out.read_bytes() == first


def test_output_path_that_cannot_be_written(capsys, tmp_path, expansions):
    # a folder, or a path under a missing folder or under a file: one clear line, nothing written
    afile = tmp_path / "a_file"
    afile.write_text("keep me")
    targets = [tmp_path, tmp_path / "missing" / "w.npz", afile / "w.npz"]
    for target in targets:
        with pytest.raises(lodekit.errors.InputError, match="`path`"):
            save_expansion(target, expansions[0])
        capsys.readouterr()
        assert main(["example", "--out", str(target)]) == 2
        err = capsys.readouterr()
        assert "`--out`" in err.err and len(err.err.strip().splitlines()) == 1
        assert err.out == ""  # refused before computing anything
    assert afile.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
