"""Per-atom weights (issue 31): unit weights change nothing, d c / d w and dE/dw against
central differences of the weighted coefficients (exact for a linear map, up to rounding),
position and strain gradients of weighted expansions against finite differences, an integer
weight against two unweighted atoms straddling the same point, and the single channel.

featomic with coincident atoms (weights 2 and 3 against duplicated atoms) and the Ewald
potential of a charge set are in tests/reference/test_weights_reference.py.
"""

import json

import ase
import numpy as np
import pytest

import lodekit
from lodekit.expansion.registry import code_paths
from tests.helpers import cubic_box, deformed, molecule, slab, three_species_box

ALL_PATHS = {path.name: path for path in code_paths()}

#: One code path of each kind the weights pass through: the k-space sum (direct and NUFFT),
#: the range-separated remainder, molecules, slabs (k-space and split), and SOAP pairs.
PATH_NAMES = (
    "lode-p1-kspace",
    "lode-p4-kspace",
    "lode-p1-range_separated",
    "lode-p1-kspace-nufft",
    "lode-p1-range_separated-nufft",
    "lode-p1-molecule",
    "lode-p4-molecule",
    "lode-p1-kspace-slab",
    "lode-p1-range_separated-slab",
    "soap-shifted_cosine-splineNone-periodic",
    "soap-step-splineNone-slab",
    "soap-shifted_cosine-spline1e-10-molecule",
)

#: (test, path) pairs over 3 s each on the development machine: the NUFFT and the split slab,
#: whose weighting code is the direct sum's and the unsplit slab's (run with -m slow).
SLOW = {
    ("unit", "lode-p1-range_separated-nufft"),
    ("unit", "lode-p1-range_separated-slab"),
    ("weights", "lode-p1-kspace-nufft"),
    ("weights", "lode-p1-range_separated-nufft"),
    ("weights", "lode-p1-range_separated-slab"),
}


def _params(test, names):
    return [
        pytest.param(ALL_PATHS[name], id=name, marks=pytest.mark.slow)
        if (test, name) in SLOW
        else pytest.param(ALL_PATHS[name], id=name)
        for name in names
    ]


def _structure(path, seed=21):
    rng = np.random.default_rng(seed)
    if path.boundary == "molecule":
        return molecule(rng, 7)
    if path.boundary == "slab":
        return slab(rng)
    return (
        cubic_box(rng) if path.calculator == "lode_spherical_expansion" else three_species_box(rng)
    )


def _flat(values):
    return np.concatenate(values, axis=-2)


def _weights(n_atoms, seed=3):
    """Charges of both signs and different sizes, none zero."""
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], n_atoms) * rng.uniform(0.3, 2.0, n_atoms)


def _weighted(atoms, weights):
    out = atoms.copy()
    out.set_initial_charges(weights)
    return out


def _calculator(path, **changes):
    return type(path.build())(**{**path.hypers, **changes})


@pytest.mark.parametrize("path", _params("unit", PATH_NAMES))
def test_unit_weights_reproduce_the_unweighted_numbers_exactly(path):
    atoms = _structure(path)
    calculator = path.build()
    plain = lodekit.System.from_ase(atoms)
    ones = lodekit.System.from_ase(atoms, weights=np.ones(len(atoms)))
    gradients = ["positions", "strain"]
    a = calculator.compute(plain, gradients=gradients)
    b = calculator.compute(ones, gradients=gradients)
    # finufft spreads in threads: two calls of the same NUFFT differ by ~1e-16 (the order
    # of the threads' sums), so that path is compared to 1e-14, every other bit for bit
    exact = "nufft" not in path.name

    def same(x, y):
        if exact:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-14 * np.abs(x).max())

    for x, y in zip(a.values, b.values, strict=True):
        same(x, y)
    for name in gradients:
        np.testing.assert_array_equal(a.gradients[name].samples, b.gradients[name].samples)
        for x, y in zip(a.gradients[name].values, b.gradients[name].values, strict=True):
            # the dense k-space Jacobian rebuilds a weighted centre's own row as minus the
            # sum of its (weighted) pair terms: the same numbers, summed in another order
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-14 * np.abs(x).max())
    upstream = [np.random.default_rng(4).normal(size=v.shape) for v in a.values]
    vjp_a = calculator.vector_jacobian_product(plain, upstream)
    vjp_b = calculator.vector_jacobian_product(ones, upstream)
    assert set(vjp_a) == {"positions", "strain"}
    same(vjp_a["positions"][0], vjp_b["positions"][0])
    same(vjp_a["strain"], vjp_b["strain"])


@pytest.mark.parametrize(
    "path",
    _params("weights", (*PATH_NAMES, "lode-p2-kspace-slab")),  # the p = 2 convention
)
def test_weight_jacobian_and_vjp_match_central_differences(path):
    """c is linear in w: the central difference is exact up to rounding, and it is taken on
    the weighted forward path, independently of the per-atom channels of d c / d w."""
    atoms = _structure(path)
    calculator = _calculator(path, weights="initial_charges")
    w = _weights(len(atoms))
    centres = np.array([0, 2, len(atoms) - 1])
    expansion = calculator.compute(_weighted(atoms, w), centres, gradients=["weights"])
    gradient = expansion.gradients["weights"]
    values = _flat(gradient.values)
    dense = np.zeros((len(centres), len(atoms), *values.shape[1:]))
    dense[gradient.samples[:, 0], gradient.samples[:, 2]] = values
    np.testing.assert_array_equal(gradient.samples[:, 1], 0)
    np.testing.assert_array_equal(gradient.atom_types, atoms.numbers[gradient.samples[:, 2]])
    scale = np.abs(dense).max()
    # d c / d w of an approximate backend (the NUFFT) is the direct sum's, as its dense
    # position Jacobian is: it meets the forward sum within the backend's tolerance
    tolerance = 1e-12
    if path.kspace == "nufft":
        tolerance = 1e-10 if "k_cutoff" in path.hypers else path.hypers["accuracy"]
    h = 0.5
    for j in (0, 1, 2, len(atoms) - 1):  # centres and neighbours
        plus, minus = w.copy(), w.copy()
        plus[j] += h
        minus[j] -= h
        fd = (
            _flat(calculator.compute(_weighted(atoms, plus), centres).values)
            - _flat(calculator.compute(_weighted(atoms, minus), centres).values)
        ) / (2 * h)
        assert np.abs(fd - dense[:, j]).max() < tolerance * scale, j
    # linear: the coefficients are the Jacobian applied to the weights
    coefficients = _flat(expansion.values)
    np.testing.assert_allclose(
        np.einsum("ij...,j->i...", dense, w), coefficients, rtol=0, atol=tolerance * scale
    )
    upstream = [np.random.default_rng(8).normal(size=v.shape) for v in expansion.values]
    vjp = calculator.vector_jacobian_product(
        _weighted(atoms, w), upstream, centres, with_weights=True
    )
    expected = np.einsum("ijasn,iasn->j", dense, _flat(upstream))
    # the product is the adjoint of each term (the backend's own, like its position product),
    # d c / d w the per-atom channels: two independent routes
    np.testing.assert_allclose(
        vjp["weights"][0], expected, rtol=0, atol=tolerance * np.abs(expected).max()
    )


#: Paths whose position and strain gradients are checked with non-unit weights.
GRADIENT_NAMES = (
    "lode-p1-kspace",
    "lode-p1-range_separated",
    "lode-p1-kspace-nufft",
    "lode-p1-molecule",
    "lode-p1-kspace-slab",
    "soap-shifted_cosine-splineNone-periodic",
)


@pytest.mark.parametrize("path", _params("gradients", GRADIENT_NAMES))
def test_weighted_position_and_strain_gradients(path):
    atoms = _weighted(_structure(path), _weights(len(_structure(path))))
    calculator = _calculator(path, weights="initial_charges")
    centres = np.array([0, 3, len(atoms) - 1])
    expansion = calculator.compute(atoms, centres, gradients=["positions", "strain"])
    gradient = expansion.gradients["positions"]
    values = _flat(gradient.values)
    positions = np.zeros((len(centres), len(atoms), *values.shape[1:]))
    positions[gradient.samples[:, 0], gradient.samples[:, 2]] = values
    strain = _flat(expansion.gradients["strain"].values)
    h = 1e-6 if path.method == "range_separated" else 1e-5
    tolerance = 1e-6 if path.method == "range_separated" else 1e-7

    def coefficients(moved):
        return _flat(calculator.compute(moved, centres).values)

    scale = np.abs(positions).max()
    # the NUFFT's dense Jacobian is the direct sum's (checked on the direct path): only its
    # vector-Jacobian product, below, is its own
    moved_atoms = () if path.kspace == "nufft" else (0, 3, len(atoms) - 1)
    for j in moved_atoms:
        for alpha in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[j, alpha] += h
            minus.positions[j, alpha] -= h
            fd = (coefficients(plus) - coefficients(minus)) / (2 * h)
            assert np.abs(positions[:, j, alpha] - fd).max() < tolerance * scale, (j, alpha)
    scale = np.abs(strain).max()
    components = [(0, 0), (1, 2)] if path.boundary != "molecule" else [(0, 1)]
    for a, b in components if moved_atoms else []:
        fd = (coefficients(deformed(atoms, a, b, h)) - coefficients(deformed(atoms, a, b, -h))) / (
            2 * h
        )
        assert np.abs(strain[:, a, b] - fd).max() < tolerance * scale, (a, b)
    # the vector-Jacobian product: the same Jacobian contracted
    upstream = [np.random.default_rng(6).normal(size=v.shape) for v in expansion.values]
    vjp = calculator.vector_jacobian_product(atoms, upstream, centres)
    g = _flat(upstream)
    tolerance = 1e-10 if path.kspace == "nufft" else 1e-11
    expected = np.einsum("iasn,ijxasn->jx", g, positions)
    assert np.abs(vjp["positions"][0] - expected).max() < tolerance * np.abs(expected).max()
    expected = np.einsum("iasn,ixyasn->xy", g, strain)
    assert np.abs(vjp["strain"][0] - expected).max() < tolerance * np.abs(expected).max()


@pytest.mark.parametrize(
    "name", ["lode-p1-molecule", "lode-p4-kspace-slab", "soap-step-splineNone-periodic"]
)
def test_integer_weight_equals_two_atoms_at_the_same_point(name):
    """Two unit atoms cannot share a position (System refuses it), but a pair straddling the
    point at +-delta is the doubled atom up to O(delta^2); Richardson's combination
    (4 c(delta) - c(2 delta)) / 3 removes that term, leaving O(delta^4). Centres other than
    the doubled atom are compared (its own field enters a weighted centre as w C_n).
    featomic, which accepts coincident atoms, is the reference of the periodic k-space sum and
    of SOAP in tests/reference/test_weights_reference.py."""
    path = ALL_PATHS[name]
    atoms = _structure(path, seed=5)
    calculator = path.build()
    doubled, others = 2, np.array([i for i in range(len(atoms)) if i != 2])
    w = np.ones(len(atoms))
    w[doubled] = 2.0
    weighted = calculator.compute(lodekit.System.from_ase(atoms, weights=w), others)
    direction = np.array([0.48, -0.6, 0.64])

    def straddled(delta):
        pair = atoms.copy()
        pair.positions[doubled] += delta * direction
        pair += ase.Atoms(
            atoms.numbers[[doubled]], positions=atoms.positions[[doubled]] - delta * direction
        )
        return _flat(calculator.compute(pair, others).values)

    delta = 1e-3
    extrapolated = (4 * straddled(delta) - straddled(2 * delta)) / 3
    reference = _flat(weighted.values)
    scale = np.abs(reference).max()
    assert np.abs(extrapolated - reference).max() < 1e-9 * scale


@pytest.mark.parametrize("name", ["lode-p1-kspace", "lode-p4-molecule", "lode-p1-kspace-slab"])
def test_one_channel_is_the_sum_of_the_species_channels(name):
    """Every term (pair fields, k = 0 totals, the centre's own field) is linear in the atoms
    of a channel, so the all-atoms channel is the sum of the species channels."""
    path = ALL_PATHS[name]
    atoms = _weighted(_structure(path), _weights(len(_structure(path))))
    by_species = _calculator(path, weights="initial_charges").compute(atoms)
    single = _calculator(path, weights="initial_charges", species_channels=False).compute(atoms)
    np.testing.assert_array_equal(single.neighbor_types, [0])
    for a, b in zip(by_species.values, single.values, strict=True):
        np.testing.assert_allclose(
            a.sum(axis=1, keepdims=True), b, rtol=0, atol=1e-12 * np.abs(a).max()
        )


def test_soap_one_channel_and_weights():
    atoms = _weighted(cubic_box(np.random.default_rng(2)), _weights(12))
    hypers = dict(cutoff=3.5, smearing=0.4, max_radial=3, max_angular=2, center_atom_weight=0.6)
    by_species = lodekit.SphericalExpansion(weights="initial_charges", **hypers).compute(atoms)
    single = lodekit.SphericalExpansion(
        weights="initial_charges", species_channels=False, **hypers
    ).compute(atoms)
    np.testing.assert_array_equal(single.neighbor_types, [0])
    for a, b in zip(by_species.values, single.values, strict=True):
        np.testing.assert_allclose(a.sum(axis=1, keepdims=True), b, rtol=0, atol=1e-13)
    assert single.has_neighbors.all()
    blocks = single.to_tensormap()
    assert set(blocks.keys.column("neighbor_type").tolist()) == {0}


def test_hyperparameters_round_trip_and_default_json():
    for calculator in (
        lodekit.LodeSphericalExpansion(
            smearing=0.9,
            max_radial=2,
            max_angular=2,
            radius=3.0,
            weights="initial_charges",
            species_channels=False,
        ),
        lodekit.SphericalExpansion(
            cutoff=3.0, smearing=0.4, max_radial=2, max_angular=2, weights="charges"
        ),
    ):
        again = type(calculator).from_json(calculator.to_json())
        assert again == calculator
        assert again.weights == calculator.weights
        assert again.species_channels == calculator.species_channels
    # at their defaults the two are left out: earlier recipes and stores keep their digests
    plain = lodekit.SphericalExpansion(cutoff=3.0, smearing=0.4, max_radial=2, max_angular=2)
    assert "weights" not in json.loads(plain.to_json())
    assert "species_channels" not in json.loads(plain.to_json())
    assert plain.weights is None and plain.species_channels is True


def test_weight_gradient_survives_an_archive(tmp_path):
    from lodekit.persistence import load_expansion, save_expansion

    atoms = molecule(np.random.default_rng(1), 5)
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.6, max_radial=2, max_angular=1, radius=3.0, species_channels=False
    )
    expansion = calculator.compute(atoms, gradients=["weights", "positions"])
    again = load_expansion(save_expansion(tmp_path / "e.npz", expansion))
    for name in ("weights", "positions"):
        np.testing.assert_array_equal(
            again.gradients[name].samples, expansion.gradients[name].samples
        )
        pairs = zip(again.gradients[name].values, expansion.gradients[name].values, strict=True)
        for a, b in pairs:
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.neighbor_types, [0])


def test_weights_from_a_named_ase_array():
    atoms = molecule(np.random.default_rng(1), 5)
    w = _weights(5)
    atoms.set_array("charges", w)
    system = lodekit.System.from_ase(atoms, weights="charges")
    np.testing.assert_array_equal(system.weights, w)
    assert not system.weights.flags.writeable
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.6, max_radial=2, max_angular=1, radius=3.0, weights="charges"
    )
    from_ase = calculator.compute(atoms)
    from_system = calculator.compute(system)
    for a, b in zip(from_ase.values, from_system.values, strict=True):
        np.testing.assert_array_equal(a, b)
    # a System keeps its own weights whatever the calculator's array name
    unweighted = calculator.compute(lodekit.System.from_ase(atoms))
    assert not np.allclose(unweighted.values[0], from_ase.values[0])


@pytest.mark.parametrize(
    "weights, match",
    [
        (np.ones(4), r"`weights` .* shape \(4,\); expected shape \(5,\)"),
        (np.array([1.0, np.nan, 1.0, 1.0, 1.0]), r"`weights\[1\]` is nan: weights must be finite"),
        (np.array([1.0, 1.0, np.inf, 1.0, 1.0]), r"`weights\[2\]` is inf"),
        ("charges", r"`weights` is 'charges' but .* arrays present: \['masses'\]"),
        ([["a"] * 5], r"`weights` is .*; expected one float per atom"),
    ],
)
def test_bad_weights_are_refused(weights, match):
    atoms = molecule(np.random.default_rng(1), 5)
    atoms.set_masses(np.ones(5))
    with pytest.raises(lodekit.InputError, match=match):
        lodekit.System.from_ase(atoms, weights=weights)


def test_dense_weight_jacobian_obeys_the_work_limits():
    from lodekit.expansion.limits import work_limits

    atoms = molecule(np.random.default_rng(1), 5)
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.6, max_radial=2, max_angular=1, radius=3.0
    )
    with work_limits(max_jacobian_bytes=1000):
        with pytest.raises(lodekit.InputError, match="dense weight Jacobian of 5 centres"):
            calculator.compute(atoms, gradients=["weights"])


def test_bad_weight_hyperparameters_are_refused():
    atoms = molecule(np.random.default_rng(1), 5)
    hypers = dict(smearing=0.6, max_radial=1, max_angular=1, radius=3.0)
    with pytest.raises(lodekit.InputError, match="`weights` is 3; expected None or the name"):
        lodekit.LodeSphericalExpansion(weights=3, **hypers)
    with pytest.raises(lodekit.InputError, match="`species_channels` is 'no'"):
        lodekit.LodeSphericalExpansion(species_channels="no", **hypers)
    calculator = lodekit.LodeSphericalExpansion(weights="charges", **hypers)
    with pytest.raises(lodekit.InputError, match=r"`structures\[0\]`: `weights` is 'charges'"):
        calculator.compute(atoms)


def test_default_backend_weight_vjp_equals_the_direct_adjoint():
    """A backend without its own ``weight_vjp`` gets the per-atom channels of the base class:
    the same numbers as the direct sum's adjoint."""
    from dataclasses import replace

    from lodekit.expansion.kspace import KSPACE_BACKENDS
    from lodekit.expansion.kspace.base import KspaceBackend
    from tests.helpers import kspace_problem

    atoms = cubic_box(np.random.default_rng(4))
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.9, max_radial=2, max_angular=2, radius=3.0, k_cutoff=4.0
    )
    problem = replace(
        kspace_problem(calculator, atoms, np.array([1, 4, 7])), weights=_weights(len(atoms))
    )
    direct = KSPACE_BACKENDS["direct"]
    upstream = np.random.default_rng(9).normal(size=problem.coefficient_shape)
    expected = direct.weight_vjp(problem, upstream)
    by_channels = KspaceBackend.weight_vjp(direct, problem, upstream)
    np.testing.assert_allclose(by_channels, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
