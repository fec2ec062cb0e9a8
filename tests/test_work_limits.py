"""Issue 27: skewed bases of a lattice, work limits, and the accuracy rule."""

import numpy as np
import pytest

from lodekit import LodeSphericalExpansion, System
from lodekit.errors import InputError
from lodekit.expansion.kspace import half_space_kvectors
from lodekit.expansion.lattice import reduced_cell
from lodekit.expansion.limits import WORK_LIMITS, estimated_kvectors, work_limits

HYPERS = dict(smearing=1.0, max_radial=3, max_angular=2, radius=4.0)
# a unimodular integer transform (det 1): the rows of U @ cell span the same lattice
SKEW = np.array([[1, 0, 0], [13, 1, 0], [-17, 29, 1]])


def _structure(cell):
    rng = np.random.default_rng(7)
    frac = rng.random((6, 3))
    positions = frac @ (6.0 * np.eye(3))
    return System(positions, [1, 1, 8, 8, 8, 1], cell=cell, pbc=True)


def test_skew_transform_is_unimodular_and_reduced_back():
    assert round(np.linalg.det(SKEW)) == 1
    cubic = 6.0 * np.eye(3)
    skewed = SKEW @ cubic
    heights = 1.0 / np.linalg.norm(np.linalg.inv(skewed), axis=0)
    assert heights.min() < 0.1  # the old planner's refusal: "only 0.088 Å high"
    reduced = reduced_cell(skewed)
    # same lattice: the integer transform between the bases is unimodular
    transform = reduced @ np.linalg.inv(cubic)
    np.testing.assert_allclose(transform, np.rint(transform), atol=1e-9)
    assert round(abs(np.linalg.det(np.rint(transform)))) == 1
    np.testing.assert_allclose(np.sort(np.linalg.norm(reduced, axis=1)), [6.0] * 3, rtol=1e-12)
    # an already reduced basis is returned as it is (same numbers as before the reduction)
    assert reduced_cell(cubic) is cubic
    hexagonal = np.array([[3.0, 0, 0], [-1.5, 1.5 * 3**0.5, 0], [0, 0, 5.0]])
    assert reduced_cell(hexagonal) is hexagonal
    # hexagonal up to rounding: a1 + a2 is shorter than a1 by 0.06 %, within the margin
    rounded = np.array([[7.0, 0, 0], [-3.5, 6.06, 0], [0.5, 0.3, 8.0]])
    assert reduced_cell(rounded) is rounded


@pytest.mark.parametrize("options", [{"accuracy": 1e-8}, {"k_cutoff": 5.0}])
def test_skewed_basis_gives_the_same_coefficients(options):
    cubic = _structure(6.0 * np.eye(3))
    skewed = _structure(SKEW @ (6.0 * np.eye(3)))
    calculator = LodeSphericalExpansion(**HYPERS, **options)
    plan = calculator.plan([cubic, skewed])
    assert plan[0] == plan[1]
    a = calculator.compute(cubic).values
    b = calculator.compute(skewed).values
    scale = max(np.abs(block).max() for block in a)
    for block_a, block_b in zip(a, b, strict=True):
        np.testing.assert_allclose(block_b, block_a, rtol=0, atol=1e-12 * scale)


def test_kvector_estimate_counts_the_half_sphere():
    cell = np.diag([6.0, 7.0, 8.0])
    n_k = len(half_space_kvectors(cell, 6.0))
    assert abs(estimated_kvectors(np.linalg.det(cell), 6.0) / n_k - 1) < 0.05


@pytest.mark.parametrize(
    "options, argument",
    [({"smearing": 0.02}, "smearing"), ({"k_cutoff": 200.0}, "k_cutoff")],
)
def test_unbounded_kspace_work_is_refused(options, argument):
    hypers = {**HYPERS, **options}
    calculator = LodeSphericalExpansion(**hypers)
    with pytest.raises(InputError, match="k-vectors") as error:
        calculator.compute(_structure(6.0 * np.eye(3)))
    message = str(error.value)
    assert argument in message and "accuracy" in message and "work_limits" in message


def test_limits_can_be_raised_and_are_restored():
    calculator = LodeSphericalExpansion(**HYPERS, k_cutoff=12.0)
    structure = _structure(6.0 * np.eye(3))
    n_k = estimated_kvectors(216.0, 12.0)
    with work_limits(max_kvectors=n_k / 2):
        with pytest.raises(InputError, match="max_kvectors"):
            calculator.compute(structure)
    assert WORK_LIMITS.max_kvectors > n_k
    assert np.isfinite(calculator.compute(structure).values[0]).all()
    with pytest.raises(InputError, match="max_kvector"):
        with work_limits(max_kvector=1):
            pass


def test_dense_jacobian_is_refused_above_its_limit():
    calculator = LodeSphericalExpansion(**HYPERS, k_cutoff=3.0)
    structure = _structure(6.0 * np.eye(3))
    with work_limits(max_jacobian_bytes=1000):
        with pytest.raises(InputError, match="vector_jacobian_product"):
            calculator.compute(structure, gradients=["positions"])
    result = calculator.compute(structure, gradients=["positions"])
    assert "positions" in result.gradients


@pytest.mark.parametrize("accuracy", [0.5, 1e-15, 1.0])
def test_accuracy_out_of_range_gives_the_rule(accuracy):
    with pytest.raises(InputError) as error:
        LodeSphericalExpansion(**HYPERS, accuracy=accuracy)
    message = str(error.value)
    assert "`accuracy`" in message and repr(accuracy) in message
    assert "1e-14" in message and "0.1" in message


def test_soap_pair_estimate_and_limit():
    from lodekit import SphericalExpansion
    from lodekit.expansion.limits import estimated_pairs
    from lodekit.neighbors import neighbor_pairs

    structure = _structure(6.0 * np.eye(3))
    i, _, _ = neighbor_pairs(structure, 5.0)
    estimate = estimated_pairs(structure.positions, structure.cell, True, 5.0)
    assert 0.5 < estimate / len(i) < 2.0  # the average density: close to the real count
    calculator = SphericalExpansion(cutoff=5.0, smearing=0.3, max_radial=2, max_angular=1)
    with work_limits(max_pairs=estimate / 2):
        with pytest.raises(InputError, match="`cutoff`"):
            calculator.compute(structure)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: LodeSphericalExpansion(**{**HYPERS, "max_radial": 20}), "`max_radial`"),
        (
            lambda: LodeSphericalExpansion(
                **{**HYPERS, "smearing": 1e-5}, radial_basis="monomials"
            ),
            "`smearing`",
        ),
        (lambda: System([[0, 0, 1e300]], [1]), "`positions[0]`"),
        (lambda: System([[0, 0, 0]], [1], cell=1e200 * np.eye(3), pbc=True), "`cell`"),
    ],
)
def test_inputs_beyond_double_precision_are_refused(make, argument):
    with pytest.raises(InputError) as error:
        make()
    assert argument in str(error.value)


def test_range_separated_remainder_pairs_are_estimated_and_limited():
    # the remainder of a range-separated sum is a real-space pair sum: its estimate is close to
    # the neighbour list's true count, and above max_pairs the compute is refused, naming the
    # way out (`accuracy`) (issue 27's "look for the same class of fault elsewhere")
    from lodekit.expansion.limits import estimated_pairs
    from lodekit.neighbors import neighbor_pairs

    structure = _structure(6.0 * np.eye(3))
    calculator = LodeSphericalExpansion(**{**HYPERS, "smearing": 0.3}, accuracy=1e-8)
    (plan,) = calculator.plan(structure)
    cutoff = plan["real_space_cutoff"]
    assert cutoff > 0
    estimate = estimated_pairs(structure.positions, structure.cell, True, cutoff)
    i, _, _ = neighbor_pairs(structure, cutoff)
    assert 0.8 < estimate / len(i) < 1.25
    expected = calculator.compute(structure).values[0]
    with work_limits(max_pairs=estimate / 2):
        with pytest.raises(InputError, match=r"real-space remainder .* `accuracy`"):
            calculator.compute(structure)
    # under the limit (the default) it is computed, and nothing is left changed
    assert np.array_equal(calculator.compute(structure).values[0], expected)


def _water_like_slab():
    rng = np.random.default_rng(2)
    from tests.helpers import random_structure

    cell = [[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 6.0]]
    return random_structure(rng, cell, ["O", "H", "H"] * 6, min_distance=1.0, pbc=[1, 1, 0])


def test_slab_kspace_work_is_estimated_and_refused_with_a_way_out():
    slab = _water_like_slab()
    calculator = LodeSphericalExpansion(
        smearing=0.8, max_radial=2, max_angular=2, radius=3.0, accuracy=1e-8
    )
    plan = calculator.plan(slab)[0]
    # the tiers' k-vectors: what the limit is compared with, below it here
    n_k = sum(plan["kvectors"])
    assert n_k > 1000
    with work_limits(max_kvectors=n_k / 4):
        with pytest.raises(InputError) as error:
            calculator.compute(slab)
    message = str(error.value)
    assert "k-vectors" in message and "thinner slab" in message and "accuracy" in message
    calculator.compute(slab)  # the limit is restored


def test_a_slab_too_wide_to_list_its_lines_is_refused_before_listing_them():
    """A 1e5 Å wide slab cell holds about A k_c^2 / (8 pi) ~ 1.5e10 in-plane lines: refused
    from that estimate (listing them needed 144 GiB, found by the fuzz test), and the
    estimate counts the lines of a real slab to 10 %."""
    positions = [[3.8, 1.6, 0.2], [0.1, 4.9, 5.5], [3.6, 4.4, 3.3], [5.6, 4.9, 0.0]]
    wide = System(positions, [1, 1, 1, 1], np.eye(3) * 1e5, pbc=(True, False, True))
    calculator = LodeSphericalExpansion(smearing=1.0, max_radial=2, max_angular=1, radius=3.0)
    with pytest.raises(InputError, match=r"in-plane lines .* smaller in-plane cell"):
        calculator.compute(wide)
    from lodekit.expansion.kspace.slab import SlabGeometry, in_plane_lines

    geometry = SlabGeometry.from_system(System.from_ase(_water_like_slab()))
    k_cutoff = 4.0
    estimate = geometry.area * k_cutoff**2 / (8 * np.pi)
    assert abs(len(in_plane_lines(geometry, k_cutoff)[0]) / estimate - 1) < 0.1


def test_slab_refuses_k_cutoff_and_defaults_to_an_accuracy():
    slab = _water_like_slab()
    fixed = LodeSphericalExpansion(
        smearing=0.8, max_radial=2, max_angular=2, radius=3.0, k_cutoff=5.0
    )
    with pytest.raises(InputError, match=r"`structures\[0\]` is a slab .* `k_cutoff`"):
        fixed.compute(slab)
    default = LodeSphericalExpansion(smearing=0.8, max_radial=2, max_angular=2, radius=3.0)
    from lodekit.expansion.lode import DEFAULT_SLAB_ACCURACY

    assert default.plan(slab)[0]["accuracy"] == DEFAULT_SLAB_ACCURACY
    explicit = LodeSphericalExpansion(
        smearing=0.8, max_radial=2, max_angular=2, radius=3.0, accuracy=DEFAULT_SLAB_ACCURACY
    )
    for a, b in zip(default.compute(slab).values, explicit.compute(slab).values, strict=True):
        np.testing.assert_array_equal(a, b)
