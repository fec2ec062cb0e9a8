"""Every k-space backend of the registry against a brute-force sum over the full k-sphere
(values, and finite differences of it for the vector-Jacobian products, strain included), and
the registry itself: a backend added there is usable through ``kspace_method`` end to end."""

import dataclasses

import numpy as np
import pytest

import lodekit
from lodekit.basis.radial.gto_integrals import kspace_radial_integral
from lodekit.basis.spherical_harmonics import real_spherical_harmonics
from lodekit.density import fourier_transform
from lodekit.expansion.kspace import KSPACE_BACKENDS, DirectBackend, KspaceProblem
from lodekit.expansion.registry import code_paths
from lodekit.systems import System
from tests.helpers import cubic_box, three_species_box, triclinic_box

HYPERS = dict(smearing=0.8, max_radial=2, max_angular=3, radius=4.0, k_cutoff=4.5)


def _problem(atoms, exponent, centres, cell=None, positions=None):
    system = System.from_ase(atoms)
    types = np.unique(system.numbers)
    calculator = lodekit.LodeSphericalExpansion(exponent=exponent, **HYPERS)
    return KspaceProblem(
        positions=system.positions if positions is None else positions,
        species_index=np.searchsorted(types, system.numbers),
        n_species=len(types),
        centres=np.asarray(centres),
        cell=system.cell if cell is None else cell,
        basis=calculator._basis,
        max_angular=HYPERS["max_angular"],
        smearing=HYPERS["smearing"],
        exponent=exponent,
        k_cutoff=HYPERS["k_cutoff"],
        tolerance=1e-12,
    )


def _brute_force(problem):
    """(4 pi / V) sum over every k of the full sphere (0 < |k| < k_c) of ĝ I_nl Y_lm
    Re[i^l sum_{j in a} exp(i k·(r_i - r_j))], one complex exponential per (i, j, k)."""
    cell, lmax = problem.cell, problem.max_angular
    recip = 2 * np.pi * np.linalg.inv(cell).T
    n_max = np.ceil(problem.k_cutoff * np.linalg.norm(cell, axis=1) / (2 * np.pi)).astype(int)
    axes = [np.arange(-n, n + 1) for n in n_max]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    kvec = hkl @ recip
    knorm = np.linalg.norm(kvec, axis=1)
    keep = (knorm > 0) & (knorm < problem.k_cutoff)
    kvec, knorm = kvec[keep], knorm[keep]
    l_of_lm = np.repeat(np.arange(lmax + 1), 2 * np.arange(lmax + 1) + 1)
    radial = kspace_radial_integral(knorm, problem.basis, lmax)
    radial = radial * fourier_transform(knorm, problem.smearing, problem.exponent)[:, None, None]
    ylm = real_spherical_harmonics(kvec, lmax)
    r = problem.positions
    phase = np.exp(1j * np.einsum("kx,ijx->ijk", kvec, r[problem.centres][:, None] - r[None]))
    onehot = np.eye(problem.n_species)[problem.species_index]  # (atoms, species)
    s = np.einsum("ijk,ja->iak", phase, onehot)
    real_part = np.real(s[..., None] * (1j**l_of_lm))  # (centres, species, k, lm)
    out = np.einsum("iakf,kf,kfn->iafn", real_part, ylm, radial[:, l_of_lm])
    return 4 * np.pi / abs(np.linalg.det(cell)) * out


def _brute_force_gradients(atoms, exponent, centres, upstream, h=1e-5):
    """dE/dr and dE/d eps of E = sum upstream · brute-force sum, by central differences."""
    base = _problem(atoms, exponent, centres)

    def energy(cell, positions):
        return np.sum(upstream * _brute_force(_problem(atoms, exponent, centres, cell, positions)))

    gradient = np.zeros_like(base.positions)
    for j in range(base.n_atoms):
        for x in range(3):
            moved = [base.positions.copy(), base.positions.copy()]
            moved[0][j, x] += h
            moved[1][j, x] -= h
            gradient[j, x] = (energy(base.cell, moved[0]) - energy(base.cell, moved[1])) / (2 * h)
    strain = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            values = []
            for sign in (1, -1):
                deformation = np.eye(3)
                deformation[a, b] += sign * h
                values.append(energy(base.cell @ deformation.T, base.positions @ deformation.T))
            strain[a, b] = (values[0] - values[1]) / (2 * h)
    return gradient, strain


@pytest.mark.parametrize("name", list(KSPACE_BACKENDS))
@pytest.mark.parametrize("exponent", [1, 4])
def test_backend_value_matches_brute_force(name, exponent):
    atoms = triclinic_box(np.random.default_rng(31))
    centres = [0, 4, 7, len(atoms) - 1]
    problem = _problem(atoms, exponent, centres)
    reference = _brute_force(problem)
    ours = KSPACE_BACKENDS[name].value(problem)
    assert ours.shape == problem.coefficient_shape
    assert np.abs(ours - reference).max() < 1e-10 * np.abs(reference).max()


@pytest.mark.parametrize("name", list(KSPACE_BACKENDS))
def test_backend_vjp_matches_brute_force_and_direct(name):
    """Positions and strain of every backend: central differences of the brute-force sum, and
    the direct backend's analytic product to the backend's own tolerance."""
    rng = np.random.default_rng(32)
    atoms = three_species_box(rng)
    centres = [1, 2, 6, len(atoms) - 2]
    problem = _problem(atoms, 1, centres)
    upstream = rng.normal(size=problem.coefficient_shape)
    gradient, strain = KSPACE_BACKENDS[name].vjp(problem, upstream, with_strain=True)
    fd_gradient, fd_strain = _brute_force_gradients(atoms, 1, centres, upstream)
    assert np.abs(gradient - fd_gradient).max() < 1e-7 * np.abs(fd_gradient).max()
    assert np.abs(strain - fd_strain).max() < 1e-7 * np.abs(fd_strain).max()
    direct_gradient, direct_strain = KSPACE_BACKENDS["direct"].vjp(problem, upstream, True)
    assert np.abs(gradient - direct_gradient).max() < 1e-10 * np.abs(direct_gradient).max()
    assert np.abs(strain - direct_strain).max() < 1e-10 * np.abs(direct_strain).max()
    without, none = KSPACE_BACKENDS[name].vjp(problem, upstream, with_strain=False)
    assert none is None
    assert np.abs(without - gradient).max() < 1e-10 * np.abs(gradient).max()


@pytest.mark.parametrize("name", list(KSPACE_BACKENDS))
def test_backend_jacobian_contracts_to_its_vjp(name):
    rng = np.random.default_rng(33)
    atoms = triclinic_box(rng)
    centres = [0, 3, len(atoms) - 1]
    problem = _problem(atoms, 4, centres)
    upstream = rng.normal(size=problem.coefficient_shape)
    positions, strain = KSPACE_BACKENDS[name].jacobian(problem, with_strain=True)
    gradient, virial = KSPACE_BACKENDS[name].vjp(problem, upstream, with_strain=True)
    contracted = np.einsum("ijxalm,ialm->jx", positions, upstream)
    assert np.abs(contracted - gradient).max() < 1e-10 * np.abs(gradient).max()
    contracted = np.einsum("iabslm,islm->ab", strain, upstream)
    assert np.abs(contracted - virial).max() < 1e-10 * np.abs(virial).max()
    assert KSPACE_BACKENDS[name].jacobian(problem, with_strain=False)[1] is None


class _Toy(DirectBackend):
    """The direct sum under another name, a hair cheaper by its cost model (so that "auto"
    takes it and the plan is otherwise the direct sum's), that records what it is asked."""

    def __init__(self):
        self.calls = []

    def cost(self, workload, k_cutoff, tolerance):
        return (1 - 1e-9) * super().cost(workload, k_cutoff, tolerance)

    def value(self, problem):
        self.calls.append("value")
        return super().value(problem)

    def vjp(self, problem, upstream, with_strain):
        self.calls.append("vjp")
        return super().vjp(problem, upstream, with_strain)

    def jacobian(self, problem, with_strain):
        self.calls.append("jacobian")
        return super().jacobian(problem, with_strain)


class _Missing(DirectBackend):
    requirement = "toylib is not installed: pip install toylib"

    def available(self):
        return False

    def cost(self, workload, k_cutoff, tolerance):
        return -1.0  # would win every plan if "auto" did not skip it


@pytest.mark.parametrize("accuracy", [None, 1e-6])
def test_a_registered_backend_is_usable_end_to_end(monkeypatch, accuracy):
    toy = _Toy()
    monkeypatch.setitem(KSPACE_BACKENDS, "toy", toy)
    monkeypatch.setitem(KSPACE_BACKENDS, "missing", _Missing())
    atoms = triclinic_box(np.random.default_rng(34))
    hypers = dict(smearing=0.3, exponent=1, max_radial=2, max_angular=2, radius=3.0)
    hypers.update(accuracy=1e-6) if accuracy else hypers.update(k_cutoff=12.0)
    calculator = lodekit.LodeSphericalExpansion(kspace_method="toy", **hypers)
    reference = lodekit.LodeSphericalExpansion(kspace_method="direct", **hypers)
    plan = calculator.plan(atoms)[0]
    assert plan == dict(reference.plan(atoms)[0], kspace_method="toy")

    ours = calculator.compute(atoms, gradients=["positions", "strain"])
    expected = reference.compute(atoms, gradients=["positions", "strain"])
    assert ours.info["structures"][0]["kspace_method"] == "toy"
    for a, b in zip(ours.values, expected.values, strict=True):
        np.testing.assert_array_equal(a, b)
    for kind in ("positions", "strain"):
        for a, b in zip(ours.gradients[kind].values, expected.gradients[kind].values, strict=True):
            np.testing.assert_array_equal(a, b)
    weights = [np.random.default_rng(35).normal(size=v.shape) for v in expected.values]
    got, want = (c.vector_jacobian_product(atoms, weights) for c in (calculator, reference))
    np.testing.assert_array_equal(got["positions"][0], want["positions"][0])
    np.testing.assert_array_equal(got["strain"], want["strain"])
    assert {"value", "jacobian", "vjp"} <= set(toy.calls)

    # "auto" costs every available backend from the registry: the cheapest wins
    assert lodekit.LodeSphericalExpansion(**hypers).plan(atoms)[0]["kspace_method"] == "toy"
    # the gradient tests' code paths list it
    assert {"toy", "missing"} <= {path.kspace for path in code_paths()}
    with pytest.raises(lodekit.InputError, match="`kspace_method` is 'missing' but toylib"):
        lodekit.LodeSphericalExpansion(kspace_method="missing", **hypers)


def test_direct_sum_of_frames_sharing_a_cell_matches_brute_force(monkeypatch):
    """The direct backend keeps the k-space factor of a cell for the next structure of that
    cell: frames with moved atoms, then more atoms than one k-chunk holds, then another
    smearing, each against the brute-force sum."""
    from lodekit.expansion.kspace import direct

    monkeypatch.setattr(direct, "_KEPT", type(direct._KEPT)())
    atoms = triclinic_box(np.random.default_rng(33))
    rng = np.random.default_rng(34)
    first = _problem(atoms, 1, [0, 3, len(atoms) - 1])
    for _ in range(3):
        positions = first.positions + rng.normal(scale=0.05, size=first.positions.shape)
        problem = dataclasses.replace(first, positions=positions)
        reference = _brute_force(problem)
        assert (
            np.abs(direct.kspace_sum(problem) - reference).max() < 1e-10 * np.abs(reference).max()
        )
        assert len(direct._KEPT) == 1
    # the same cell with chunks of 32 k-vectors: the kept factor is used chunk by chunk
    monkeypatch.setattr(direct, "CHUNK_ELEMENTS", 32 * 2 * 16 * HYPERS["max_radial"])
    problem = first
    reference = _brute_force(problem)
    assert len(problem.kvectors()) > 64
    assert np.abs(direct.kspace_sum(problem) - reference).max() < 1e-10 * np.abs(reference).max()
    # another smearing on the same cell is another factor
    other = dataclasses.replace(problem, smearing=0.6)
    reference = _brute_force(other)
    assert np.abs(direct.kspace_sum(other) - reference).max() < 1e-10 * np.abs(reference).max()


@pytest.mark.parametrize("centres,n_threads", [(None, 1), ([1, 4, 5, 9], 1), (None, 3)])
def test_shell_by_shell_sum_of_a_cubic_cell_matches_brute_force(monkeypatch, centres, n_threads):
    """A cubic cell's k-vectors share norms: the direct backend sums them shell by shell
    (kspace/shells.py), in several passes here, for every atom or a few, the passes shared
    out to threads or not."""
    from lodekit.expansion.kspace import direct, shells

    monkeypatch.setattr(direct, "_KEPT", type(direct._KEPT)())
    atoms = cubic_box(np.random.default_rng(35))
    chosen = np.arange(len(atoms)) if centres is None else centres
    problem = _problem(atoms, 1, chosen)
    tables = shells.shell_tables(problem.layout(), problem.kvectors())
    assert tables is not None and tables.n_shells < len(tables.hkl) / shells.MIN_SHELL_SIZE
    monkeypatch.setattr(direct, "CHUNK_ELEMENTS", 40 * len(atoms))  # about 40 k per pass
    monkeypatch.setattr(shells, "_SHELL_GROUP", 3)  # groups of 3 shells within a pass
    monkeypatch.setattr(shells, "_Q_BYTES", 0)
    reference = _brute_force(problem)
    problem = dataclasses.replace(problem, n_threads=n_threads)
    assert np.abs(direct.kspace_sum(problem) - reference).max() < 1e-10 * np.abs(reference).max()


def test_shell_by_shell_vjp_of_a_cubic_cell_matches_brute_force(monkeypatch):
    """Positions and strain of the direct backend's VJP summed shell by shell, in several
    passes, against central differences of the brute-force sum."""
    from lodekit.expansion.kspace import direct

    monkeypatch.setattr(direct, "_KEPT", type(direct._KEPT)())
    monkeypatch.setattr(direct, "CHUNK_ELEMENTS", 40 * 24)  # about 40 k per pass
    rng = np.random.default_rng(36)
    atoms = cubic_box(rng)
    centres = [0, 5, 7, 11]
    problem = _problem(atoms, 1, centres)
    assert isinstance(direct._tables_of_cell(problem)[2], direct.ShellTables)
    upstream = rng.normal(size=problem.coefficient_shape)
    gradient, strain = KSPACE_BACKENDS["direct"].vjp(problem, upstream, with_strain=True)
    fd_gradient, fd_strain = _brute_force_gradients(atoms, 1, centres, upstream)
    assert np.abs(gradient - fd_gradient).max() < 1e-7 * np.abs(fd_gradient).max()
    assert np.abs(strain - fd_strain).max() < 1e-7 * np.abs(fd_strain).max()


def test_shell_by_shell_dense_jacobian_of_a_cubic_cell_matches_brute_force(monkeypatch):
    """Every atom a centre of a cubic cell: the dense Jacobian's pair terms summed shell by
    shell, contracted with an upstream gradient, against central differences of the
    brute-force sum."""
    from lodekit.expansion.kspace import direct

    monkeypatch.setattr(direct, "_KEPT", type(direct._KEPT)())
    rng = np.random.default_rng(37)
    atoms = cubic_box(rng)
    centres = np.arange(len(atoms))
    problem = _problem(atoms, 1, centres)
    assert isinstance(direct._tables_of_cell(problem)[2], direct.ShellTables)
    upstream = rng.normal(size=problem.coefficient_shape)
    positions, _ = KSPACE_BACKENDS["direct"].jacobian(problem, with_strain=False)
    contracted = np.einsum("ijxalm,ialm->jx", positions, upstream)
    fd_gradient, _ = _brute_force_gradients(atoms, 1, centres, upstream)
    assert np.abs(contracted - fd_gradient).max() < 1e-7 * np.abs(fd_gradient).max()
