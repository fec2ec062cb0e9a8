"""The non-uniform FFT path of periodic LODE against the direct k-space sum: values and
vector-Jacobian products on random cells, the accuracy contract against converged sums, and
the automatic choice between the two."""

import numpy as np
import pytest

import lodekit
from lodekit.expansion.kspace import KSPACE_BACKENDS, KspaceProblem
from lodekit.expansion.kspace import nufft as nufft_module
from lodekit.systems import System
from tests.conftest import bench_system, water64
from tests.helpers import random_structure, three_species_box, triclinic_box

STRUCTURES = {"triclinic": triclinic_box, "three_species": three_species_box}


DIRECT, NUFFT = KSPACE_BACKENDS["direct"], KSPACE_BACKENDS["nufft"]


def _problem(atoms, exponent, centres, eps=0.0, smearing=0.8, k_cutoff=5.0):
    system = System.from_ase(atoms)
    types = np.unique(system.numbers)
    calculator = lodekit.LodeSphericalExpansion(
        smearing=smearing, exponent=exponent, max_radial=3, max_angular=3, radius=4.0
    )
    return KspaceProblem(
        positions=system.positions,
        species_index=np.searchsorted(types, system.numbers),
        n_species=len(types),
        centres=centres,
        cell=system.cell,
        basis=calculator._basis,
        max_angular=3,
        smearing=smearing,
        exponent=exponent,
        k_cutoff=k_cutoff,
        tolerance=eps,
    )


@pytest.mark.parametrize("kind", sorted(STRUCTURES))
@pytest.mark.parametrize("exponent", [0, 1, 3, 6])
@pytest.mark.parametrize("eps", [1e-6, 1e-12])
def test_nufft_sum_equals_direct_sum_within_its_tolerance(kind, exponent, eps):
    atoms = STRUCTURES[kind](np.random.default_rng(3))
    centres = np.array([0, 2, 5, len(atoms) - 1])
    problem = _problem(atoms, exponent, centres, eps)
    direct = DIRECT.value(problem)
    nufft = NUFFT.value(problem)
    # measured: the error relative to the largest coefficient stays near eps
    assert np.abs(nufft - direct).max() < 10 * eps * np.abs(direct).max()


@pytest.mark.parametrize("upsampling", nufft_module.UPSAMPLING)
def test_each_upsampling_factor_meets_the_tolerance(monkeypatch, upsampling):
    # the cost model picks the factor; whichever it picks, values and the VJP stay within the
    # tolerance of the direct sum
    monkeypatch.setattr(nufft_module, "UPSAMPLING", (upsampling,))
    atoms = STRUCTURES["three_species"](np.random.default_rng(5))
    centres = np.arange(len(atoms))
    problem = _problem(atoms, 1, centres, 1e-8)
    direct = DIRECT.value(problem)
    assert np.abs(NUFFT.value(problem) - direct).max() < 10 * 1e-8 * np.abs(direct).max()
    upstream = np.random.default_rng(1).normal(size=direct.shape)
    gradient, _ = DIRECT.vjp(problem, upstream, with_strain=False)
    nufft_gradient, _ = NUFFT.vjp(problem, upstream, with_strain=False)
    assert np.abs(nufft_gradient - gradient).max() < 1e-6 * np.abs(gradient).max()


def test_upsampling_choice_follows_the_grid_per_point():
    # FFT-bound (a large grid for few points) takes the small grid of 1.25; a small grid with
    # many points at a tight tolerance keeps the narrow kernel of 2; below the tolerance that
    # 1.25 can reach (a kernel wider than 16), 2 is the only choice
    choose = nufft_module.choose_upsampling
    assert choose((85, 85, 85), 1536, 10, 1e-7)[0] == 1.25
    assert choose((43, 43, 43), 12288, 10, 1e-9)[0] == 2.0
    assert choose((85, 85, 85), 1536, 10, 1e-13)[0] == 2.0
    assert nufft_module.nufft_width(1e-13, 1.25) > 16


@pytest.mark.parametrize("kind", sorted(STRUCTURES))
@pytest.mark.parametrize("exponent", [1, 4])
def test_nufft_vector_jacobian_product_equals_direct(kind, exponent):
    atoms = STRUCTURES[kind](np.random.default_rng(4))
    centres = np.array([1, 3, 4, len(atoms) - 2])
    problem = _problem(atoms, exponent, centres, 1e-12)
    rng = np.random.default_rng(0)
    upstream = rng.normal(size=problem.coefficient_shape)
    gradient, strain = DIRECT.vjp(problem, upstream, with_strain=True)
    nufft_gradient, nufft_strain = NUFFT.vjp(problem, upstream, with_strain=True)
    assert np.abs(nufft_gradient - gradient).max() < 1e-10 * np.abs(gradient).max()
    assert np.abs(nufft_strain - strain).max() < 1e-10 * np.abs(strain).max()


@pytest.mark.parametrize(("accuracy", "smearing"), [(1e-4, 0.4), (1e-4, 1.0), (1e-7, 1.0)])
def test_nufft_meets_the_accuracy_contract(accuracy, smearing):
    """Forced NUFFT (and range separation where the plan takes it) against a converged direct
    sum (k_cutoff 9.5 / sigma): error below ``accuracy`` of the largest coefficient."""
    rng = np.random.default_rng(7)
    cell = [[11.0, 0.4, 0.0], [0.0, 10.5, 0.8], [0.6, 0.0, 11.8]]
    atoms = random_structure(rng, cell, ["O"] * 20 + ["H"] * 20 + ["Na"] * 4, min_distance=1.3)
    hypers = dict(smearing=smearing, exponent=1, max_radial=4, max_angular=3, radius=4.0)
    calculator = lodekit.LodeSphericalExpansion(accuracy=accuracy, kspace_method="nufft", **hypers)
    plan = calculator.plan(atoms)[0]
    assert plan["kspace_method"] == "nufft"
    assert plan["nufft_eps"] == pytest.approx(0.1 * accuracy)
    ours = np.concatenate(calculator.compute(atoms).values, axis=2)
    converged = lodekit.LodeSphericalExpansion(
        k_cutoff=9.5 / smearing, kspace_method="direct", **hypers
    )
    reference = np.concatenate(converged.compute(atoms).values, axis=2)
    assert np.abs(ours - reference).max() < accuracy * np.abs(reference).max()


def test_k_cutoff_mode_with_nufft_keeps_the_truncated_sum():
    """With a fixed k_cutoff (featomic's contract) the NUFFT gives the same truncated sum to
    ~1e-12, whichever path computes it."""
    atoms = triclinic_box(np.random.default_rng(5))
    hypers = dict(smearing=0.8, max_radial=3, max_angular=3, radius=4.0, k_cutoff=5.0)
    direct = lodekit.LodeSphericalExpansion(kspace_method="direct", **hypers).compute(atoms)
    nufft = lodekit.LodeSphericalExpansion(kspace_method="nufft", **hypers).compute(atoms)
    a, b = (np.concatenate(e.values, axis=2) for e in (direct, nufft))
    assert np.abs(a - b).max() < 1e-11 * np.abs(a).max()


def test_auto_takes_the_direct_sum_for_small_cells_and_nufft_for_large():
    small = water64()
    large = bench_system("water512").repeat(2)
    calculator = lodekit.LodeSphericalExpansion(
        smearing=1.0, max_radial=6, max_angular=4, radius=5.0
    )
    assert calculator.kspace_method == "auto"
    assert calculator.plan(small)[0]["kspace_method"] == "direct"
    assert calculator.plan(large)[0]["kspace_method"] == "nufft"
    forced = lodekit.LodeSphericalExpansion(
        smearing=1.0, max_radial=6, max_angular=4, radius=5.0, kspace_method="direct"
    )
    assert forced.plan(large)[0]["kspace_method"] == "direct"


def test_kspace_method_is_checked():
    with pytest.raises(lodekit.InputError, match="`kspace_method` is 'fft'"):
        lodekit.LodeSphericalExpansion(
            smearing=1.0, max_radial=2, max_angular=2, radius=3.0, kspace_method="fft"
        )


def test_both_forms_of_the_kspace_product_agree(monkeypatch):
    # contract_block switches from per-parity products to one wide product at
    # _WIDE_PRODUCT_CENTRES centres: both forms against the direct definition
    from lodekit.expansion.kspace import layout

    rng = np.random.default_rng(2)
    phases = np.exp(1j * rng.uniform(0, 2 * np.pi, size=(7, 40)))
    rho = rng.normal(size=(3, 40)) + 1j * rng.normal(size=(3, 40))
    factor = rng.normal(size=(40, 9, 4))  # lm sorted by parity: 4 even (l = 0, 2), 5 odd
    t = phases[:, None, :] * rho.conj()[None]
    expected = np.concatenate(
        [
            np.einsum("iak,kfn->iafn", t.real, factor[:, :4]),
            np.einsum("iak,kfn->iafn", t.imag, factor[:, 4:]),
        ],
        axis=2,
    ).reshape(7, -1)
    for threshold in (1, 10_000):
        monkeypatch.setattr(layout, "_WIDE_PRODUCT_CENTRES", threshold)
        assert np.allclose(layout.contract_block(phases, rho, factor, 4), expected, atol=1e-12)


def test_phases_agree_with_the_exponential_in_any_order_of_k():
    # phase_factors builds exp(2 pi i hkl·f) from per-axis tables, a few atoms at a time:
    # against the exponential evaluated directly, with the k-vectors shuffled (the shell sum
    # passes them sorted by norm) and more atoms than one pass holds
    from lodekit.expansion.kspace import layout

    rng = np.random.default_rng(4)
    cell = np.array([[7.0, 0.0, 0.0], [1.5, 6.0, 0.0], [-1.0, 0.5, 8.0]])
    hkl = rng.permutation(layout.half_space_kvectors(cell, 2.5))
    frac = rng.uniform(-0.2, 1.2, size=(3 * layout._PHASE_ROWS + 5, 3))
    expected = np.exp(2j * np.pi * frac @ hkl.T)
    out = np.full(expected.shape, np.nan, dtype=complex)
    got = layout.phase_factors(frac, hkl, out=out)
    assert got is out
    assert np.abs(got - expected).max() < 1e-12
