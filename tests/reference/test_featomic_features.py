"""Power spectra against featomic 0.6.7 (SoapPowerSpectrum, clebsch_gordan.PowerSpectrum)."""

import numpy as np
import pytest

import lodekit
from lodekit.features import power_spectrum
from tests.helpers import three_species_box

featomic = pytest.importorskip("featomic")

SOAP = dict(cutoff=3.5, smearing=0.4, max_radial=4, max_angular=3, cutoff_width=0.5)
LODE = dict(smearing=1.0, max_radial=4, max_angular=3, radius=3.5, k_cutoff=4.0)


def featomic_soap_hypers():
    return dict(
        cutoff={"radius": 3.5, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
        density={"type": "Gaussian", "width": 0.4},
        basis={
            "type": "TensorProduct",
            "max_angular": 3,
            "radial": {"type": "Gto", "max_radial": 4},
            "spline_accuracy": None,
        },
    )


def featomic_lode_hypers():
    return dict(
        k_cutoff=4.0,
        density={"type": "SmearedPowerLaw", "smearing": 1.0, "exponent": 1},
        basis={
            "type": "TensorProduct",
            "max_angular": 3,
            "radial": {"type": "Gto", "max_radial": 4, "radius": 3.5},
            "spline_accuracy": None,
        },
    )


def dense_lookup(features, rows, names, values):
    """Columns of ``features`` for the featomic property rows ``values`` (named ``names``)."""
    index = {
        tuple(p): k
        for k, p in enumerate(
            features.properties[:, [features.property_names.index(n) for n in names]].tolist()
        )
    }
    return features.values[np.ix_(rows, [index[tuple(v)] for v in values.tolist()])]


def test_soap_power_spectrum_matches_featomic():
    frames = [three_species_box(np.random.default_rng(s)) for s in (1, 2)]
    expansion = lodekit.SphericalExpansion(spline_accuracy=None, **SOAP).compute(frames)
    ours = power_spectrum(expansion)
    reference = featomic.SoapPowerSpectrum(**featomic_soap_hypers()).compute(frames)
    scale = max(np.abs(b.values).max() for b in reference.blocks())
    checked = 0
    for key, block in reference.items():
        center, t1, t2 = (
            int(key[n]) for n in ("center_type", "neighbor_1_type", "neighbor_2_type")
        )
        samples = block.samples.values
        rows = [
            int(np.flatnonzero((ours.samples[:, 0] == s) & (ours.samples[:, 1] == a))[0])
            for s, a in samples.tolist()
        ]
        names = block.properties.names  # l, n_1, n_2
        props = np.column_stack(
            [
                block.properties.values[:, 0],
                np.full(len(block.properties), t1),
                block.properties.values[:, 1],
                np.full(len(block.properties), t2),
                block.properties.values[:, 2],
            ]
        )
        mine = dense_lookup(
            ours, rows, ("l", "neighbor_1_type", "n_1", "neighbor_2_type", "n_2"), props
        )
        assert names == ["l", "n_1", "n_2"]
        np.testing.assert_allclose(mine, block.values, rtol=0, atol=1e-10 * scale)
        assert np.all(ours.samples[rows, 2] == center)
        checked += block.values.size
    assert checked > 0


def test_soap_lode_power_spectrum_matches_featomic():
    from featomic.clebsch_gordan import PowerSpectrum

    atoms = three_species_box(np.random.default_rng(4))
    soap = lodekit.SphericalExpansion(spline_accuracy=None, **SOAP).compute(atoms)
    lode = lodekit.LodeSphericalExpansion(**LODE).compute(atoms)
    ours = power_spectrum(soap, lode)
    calculator = PowerSpectrum(
        featomic.SphericalExpansion(**featomic_soap_hypers()),
        featomic.LodeSphericalExpansion(**featomic_lode_hypers()),
    )
    reference = calculator.compute(atoms)
    scale = max(np.abs(b.values).max() for b in reference.blocks())
    for key, block in reference.items():
        rows = [int(a) for _, a in block.samples.values.tolist()]
        names = tuple(block.properties.names)
        mine = dense_lookup(ours, rows, names, block.properties.values)
        np.testing.assert_allclose(mine, block.values, rtol=0, atol=1e-10 * scale)
        assert np.all(ours.samples[rows, 2] == int(key["center_type"]))
