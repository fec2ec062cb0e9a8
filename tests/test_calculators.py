"""Hyperparameter validation, JSON round-trip, atom selection and output layout."""

import json

import ase
import numpy as np
import pytest

import lodekit
import lodekit.basis
import lodekit.expansion
from lodekit import InputError, LodeSphericalExpansion, SphericalExpansion
from tests.helpers import three_species_box

LODE_ARGS = dict(smearing=1.0, max_radial=3, max_angular=2, radius=4.0)
SOAP_ARGS = dict(cutoff=4.0, smearing=0.4, max_radial=3, max_angular=2)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(smearing=-0.1), "`smearing` is -0.1 but must be positive"),
        (dict(smearing=float("nan")), "`smearing` is nan but must be finite"),
        (dict(smearing="1"), "`smearing` is '1' but must be a real number"),
        (dict(max_radial=-1), "`max_radial` is -1 but must be between 0 and 30"),
        (dict(max_radial=2.5), "`max_radial` is 2.5 but must be an integer"),
        (dict(max_angular=True), "`max_angular` is True but must be an integer"),
        (dict(radius=0), "`radius` is 0 but must be positive"),
        (dict(exponent=7), "`exponent` is 7 but must be between 0 and 6"),
        (dict(center_atom_weight=float("inf")), "`center_atom_weight` is inf"),
        (dict(k_cutoff=-2.0), "`k_cutoff` is -2.0 but must be positive"),
        (dict(k_cutoff=1.0), "smearing is too small for this k-cutoff"),
    ],
)
def test_lode_hyperparameter_errors(changes, message):
    with pytest.raises(InputError, match=message):
        LodeSphericalExpansion(**{**LODE_ARGS, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(cutoff=0.0), "`cutoff` is 0.0 but must be positive"),
        (dict(cutoff_function="cosine"), "`cutoff_function` is 'cosine' but must be one of"),
        (dict(cutoff_width=5.0), r"`cutoff_width` is 5.0 but must be in \(0, cutoff=4.0\]"),
        (dict(spline_accuracy=1e-15), "`spline_accuracy` is 1e-15 but must be between"),
        (dict(smearing=0), "`smearing` is 0 but must be positive"),
    ],
)
def test_soap_hyperparameter_errors(changes, message):
    with pytest.raises(InputError, match=message):
        SphericalExpansion(**{**SOAP_ARGS, **changes})


def test_hyperparameters_are_keyword_only():
    with pytest.raises(TypeError):
        LodeSphericalExpansion(1.0, 3, 2, 4.0)


@pytest.mark.parametrize(
    "calculator",
    [
        LodeSphericalExpansion(**LODE_ARGS, exponent=3, k_cutoff=5.0, center_atom_weight=0.5),
        LodeSphericalExpansion(**LODE_ARGS),
        SphericalExpansion(**SOAP_ARGS, cutoff_function="step", spline_accuracy=None),
    ],
)
def test_json_round_trip(calculator):
    text = calculator.to_json()
    again = type(calculator).from_json(text)
    assert again == calculator
    assert again.to_json() == text
    assert json.loads(text)["calculator"] == calculator.name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"calculator": "spherical_expansion"}', "describes calculator 'spherical_expansion'"),
        ('{"smearing": 1.0, "cutof": 3}', r"unknown hyperparameter\(s\) \['cutof'\]"),
    ],
)
def test_bad_json(text, message):
    with pytest.raises(InputError, match=message):
        LodeSphericalExpansion.from_json(text)


@pytest.mark.parametrize(
    "calculator",
    [LodeSphericalExpansion(**LODE_ARGS), SphericalExpansion(**SOAP_ARGS)],
    ids=["lode", "soap"],
)
def test_selected_atoms_are_exactly_rows_of_the_full_result(calculator):
    rng = np.random.default_rng(0)
    frames = [three_species_box(rng), three_species_box(rng)]
    full = calculator.compute(frames)
    picks = [np.array([7, 2, 11]), np.array([], dtype=int)]
    part = calculator.compute(frames, selected_atoms=picks)
    rows = [7, 2, 11]
    assert part.samples.tolist() == full.samples[rows].tolist()
    # the same numbers up to the rounding of a BLAS product of another shape
    scale = max(np.abs(v).max() for v in full.values)
    for a, b in zip(part.values, full.values, strict=True):
        np.testing.assert_allclose(a, b[rows], rtol=0, atol=1e-14 * scale)
    single = calculator.compute(frames[1], selected_atoms=[3])
    np.testing.assert_allclose(
        single.values[1][0], full.values[1][len(frames[0]) + 3], rtol=0, atol=1e-14 * scale
    )


def test_expansion_layout_and_tensormap():
    atoms = three_species_box(np.random.default_rng(1))
    expansion = LodeSphericalExpansion(**LODE_ARGS).compute([atoms, atoms[:5]])
    assert expansion.neighbor_types.tolist() == [1, 6, 7, 8]
    assert [v.shape for v in expansion.values] == [(21, 4, 2 * l + 1, 4) for l in range(3)]
    assert all(v.dtype == np.float64 for v in expansion.values)
    assert expansion.samples.shape == (21, 3)
    assert expansion.samples[16].tolist() == [1, 0, atoms.numbers[0]]
    tensor = expansion.to_tensormap()
    assert tensor.keys.names == ["o3_lambda", "o3_sigma", "center_type", "neighbor_type"]
    assert len(tensor.keys) == 3 * 4 * 4
    block = tensor.block(o3_lambda=1, center_type=8, neighbor_type=6)
    rows = np.flatnonzero(expansion.samples[:, 2] == 8)
    np.testing.assert_array_equal(block.values, expansion.values[1][rows, 1])  # C: channel 1
    assert block.samples.names == ["system", "atom"]
    assert block.components[0].names == ["o3_mu"]
    assert block.properties.names == ["n"]
    with pytest.raises(InputError, match="`o3_lambda` is 3"):
        expansion.block(3)


def test_public_names_resolve():
    for name in lodekit.__all__:
        assert getattr(lodekit, name) is not None
    for module in (lodekit.basis, lodekit.expansion):
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_importing_lodekit_loads_no_model_or_store_library():
    """`import lodekit` stays light: scikit-learn (its OpenMP runtime halves the speed of the
    expansions' small BLAS products on 2 threads), zarr and finufft load when first used."""
    import subprocess
    import sys

    code = (
        "import sys, lodekit; "
        "print(sorted(m for m in ('sklearn', 'skmatter', 'zarr', 'finufft', 'distributed') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_single_atom_periodic_cell():
    atoms = ase.Atoms("Ar", positions=[[0, 0, 0]], cell=np.eye(3) * 5.0, pbc=True)
    expansion = LodeSphericalExpansion(**LODE_ARGS).compute(atoms)
    # cubic symmetry around the only atom: every l = 1 and l = 2 coefficient vanishes
    np.testing.assert_allclose(expansion.values[1], 0, atol=1e-12)
    np.testing.assert_allclose(expansion.values[2], 0, atol=1e-12)


def test_a_k_cutoff_below_every_k_vector_of_the_cell_is_refused():
    """A 2.6 Å cube's shortest k-vectors are 2 pi / 2.6 = 2.417 1/Å long: a k_cutoff of 2.2
    leaves the k-space sum empty (featomic refuses it too); 2.5 keeps the six shortest."""
    atoms = ase.Atoms("NaCl", positions=[[0, 0, 0], [1.3, 1.3, 1.3]], cell=[2.6] * 3, pbc=True)
    with pytest.raises(InputError, match=r"`k_cutoff` is 2.2 1/Å but no reciprocal.*2.41661"):
        LodeSphericalExpansion(**LODE_ARGS, k_cutoff=2.2).compute(atoms)
    values = LodeSphericalExpansion(**LODE_ARGS, k_cutoff=2.5).compute(atoms).values
    # the six k = 2 pi / a (±1, 0, 0), ... put exp(i k·(r_Cl - r_Na)) = -1: the Cl channel
    # around Na is minus the Na channel (the k = 0 and centre terms are zero here)
    na_channel, cl_channel = values[0][0, 0, 0], values[0][0, 1, 0]
    assert np.abs(na_channel).max() > 1e-3
    np.testing.assert_allclose(cl_channel, -na_channel, rtol=1e-12)


@pytest.mark.parametrize(
    "calculator",
    [LodeSphericalExpansion(**LODE_ARGS), SphericalExpansion(**SOAP_ARGS)],
    ids=["lode", "soap"],
)
def test_threads_over_structures_give_the_same_numbers(calculator):
    rng = np.random.default_rng(9)
    frames = [three_species_box(rng) for _ in range(3)]
    serial = calculator.compute(frames, n_threads=1)
    threaded = type(calculator).from_json(calculator.to_json()).compute(frames, n_threads=3)
    for a, b in zip(serial.values, threaded.values, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="`n_threads` is 0 but must be a positive integer"):
        calculator.compute(frames, n_threads=0)
