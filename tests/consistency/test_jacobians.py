"""Full Jacobians from ``compute(..., gradients=[...])`` on every code path of the registry:
finite differences of positions and strain, and the vector-Jacobian product (featomic's
gradient blocks: tests/reference/test_featomic_gradients.py)."""

import itertools

import numpy as np
import pytest

import lodekit
from lodekit.basis import RADIAL_BASES
from lodekit.expansion._base import CalculatorBase
from lodekit.expansion.kspace import KSPACE_BACKENDS
from lodekit.expansion.registry import BOUNDARIES, CALCULATORS, code_paths
from tests.helpers import (
    cubic_box,
    deformed,
    molecule,
    slab,
    three_species_box,
    three_species_slab,
)

PATHS = code_paths()
GRADIENTS = ["positions", "strain"]

#: Slab exponents whose finite-difference checks run in CI: p = 1 and 2 (the k∥ = 0
#: convention) and 4; the others (the same code with another ĝ_p, about 4 s each) are marked
#: slow and run by hand (`pytest -m slow tests/consistency/test_jacobians.py`).
CI_SLAB_EXPONENTS = (1, 2, 4)


def _marked(path):
    slow = (
        path.boundary == "slab"
        and path.calculator == "lode_spherical_expansion"
        and path.hypers["exponent"] not in CI_SLAB_EXPONENTS
    )
    return pytest.param(path, id=path.name, marks=pytest.mark.slow) if slow else path


GRADIENT_PATHS = [_marked(path) for path in PATHS]


def _structure(path):
    rng = np.random.default_rng(21)
    if path.boundary == "molecule":
        return molecule(rng, 8)
    if path.boundary == "slab" and path.calculator == "lode_spherical_expansion":
        return slab(rng)
    if path.boundary == "slab":
        return three_species_slab(rng)
    # the range-separated plan is chosen for this box (sharp smearing, 12 atoms)
    return (
        cubic_box(rng) if path.calculator == "lode_spherical_expansion" else three_species_box(rng)
    )


def _flat(values):
    return np.concatenate(values, axis=-2)


def _dense_positions(expansion, n_atoms):
    """(n_centres, n_atoms, 3, n_species, lm, n) from the sparse gradient rows."""
    gradient = expansion.gradients["positions"]
    values = _flat(gradient.values)
    dense = np.zeros((len(expansion), n_atoms, *values.shape[1:]))
    dense[gradient.samples[:, 0], gradient.samples[:, 2]] = values
    return dense


def test_registry_lists_every_calculator_and_option():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    assert {cls.name for cls in subclasses(CalculatorBase)} == set(CALCULATORS)
    assert {path.calculator for path in PATHS} == set(CALCULATORS)
    assert {path.boundary for path in PATHS} == set(BOUNDARIES)
    lode = {(p.hypers["exponent"], p.method) for p in PATHS if p.method != "pairs"}
    assert len(lode) == 3 * len(lodekit.density.SUPPORTED_EXPONENTS)
    assert {p.kspace for p in PATHS if p.boundary == "periodic" and p.method != "pairs"} == set(
        KSPACE_BACKENDS
    )
    assert {p.hypers.get("radial_basis", "gto") for p in PATHS} == set(RADIAL_BASES)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_registry_path_takes_its_method(path):
    atoms = _structure(path)
    expansion = path.build().compute(atoms)
    if path.method != "pairs":
        info = expansion.info["structures"][0]
        assert info["method"] == path.method
        if path.boundary in ("periodic", "slab"):
            assert info["kspace_method"] == path.kspace


@pytest.mark.parametrize("path", GRADIENT_PATHS, ids=lambda p: p.name)
def test_jacobian_matches_finite_differences(path):
    atoms = _structure(path)
    calculator = path.build()
    centres = np.array([0, 3, len(atoms) - 1])
    expansion = calculator.compute(atoms, centres, gradients=GRADIENTS)
    positions = _dense_positions(expansion, len(atoms))
    strain = _flat(expansion.gradients["strain"].values)
    # the range-separated remainder is cut at a finite distance: a step small enough that
    # no pair crosses the cutoff
    h = 1e-6 if path.method == "range_separated" else 1e-5
    tolerance = 1e-6 if path.method == "range_separated" else 1e-7
    scale = np.abs(positions).max()
    assert scale > 0

    def values(moved):
        return _flat(calculator.compute(moved, centres).values)

    for j in (0, 3, 5, len(atoms) - 1):
        for alpha in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[j, alpha] += h
            minus.positions[j, alpha] -= h
            fd = (values(plus) - values(minus)) / (2 * h)
            assert np.abs(positions[:, j, alpha] - fd).max() < tolerance * scale, (j, alpha)
    scale = np.abs(strain).max()
    # a slab: all nine, the normal's rows and columns included (the periodic vectors and the
    # heights deform together)
    components = [(0, 0), (1, 1), (0, 1), (1, 0), (2, 1)]
    if path.boundary == "slab":
        components = list(itertools.product(range(3), range(3)))
    for a, b in components:
        fd = (values(deformed(atoms, a, b, h)) - values(deformed(atoms, a, b, -h))) / (2 * h)
        assert np.abs(strain[:, a, b] - fd).max() < tolerance * scale, (a, b)


@pytest.mark.parametrize("path", GRADIENT_PATHS, ids=lambda p: p.name)
def test_jacobian_contracted_equals_vector_jacobian_product(path):
    atoms = _structure(path)
    calculator = path.build()
    rng = np.random.default_rng(5)
    expansion = calculator.compute(atoms, gradients=GRADIENTS)
    upstream = [rng.normal(size=v.shape) for v in expansion.values]
    vjp = calculator.vector_jacobian_product(atoms, upstream)
    g = _flat(upstream)
    # the dense Jacobian of an approximate backend (the NUFFT) is the direct sum's; its product
    # meets it within its tolerance (1e-13 with a k_cutoff, a tenth of the accuracy otherwise)
    tolerance = 1e-11
    if KSPACE_BACKENDS[path.kspace].tolerance(1e-13) > 0:
        tolerance = 1e-10 if "k_cutoff" in path.hypers else path.hypers["accuracy"]
    by_jacobian = np.einsum("iasn,ijxasn->jx", g, _dense_positions(expansion, len(atoms)))
    reference = vjp["positions"][0]
    assert np.abs(by_jacobian - reference).max() < tolerance * np.abs(reference).max()
    strain = np.einsum("iasn,ixyasn->xy", g, _flat(expansion.gradients["strain"].values))
    assert np.abs(strain - vjp["strain"][0]).max() < tolerance * np.abs(strain).max()


def test_gradients_argument_is_checked():
    calculator = lodekit.SphericalExpansion(cutoff=3.0, smearing=0.3, max_radial=1, max_angular=1)
    atoms = molecule(np.random.default_rng(1), 4)
    with pytest.raises(lodekit.InputError, match="`gradients`"):
        calculator.compute(atoms, gradients=["cell"])
    only = calculator.compute(atoms, gradients="positions")
    assert set(only.gradients) == {"positions"}
