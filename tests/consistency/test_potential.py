"""Forces and stress of models on LODE features: the backward passes of the features and
models, the whole chain against finite differences of the energy, and an NVE run in ASE."""

import numpy as np
import pytest

import lodekit
from lodekit.datasets import random_point_charges
from lodekit.features import lode_nu1, power_spectrum
from lodekit.features.vjp import power_spectrum_backward
from lodekit.interatomic import LodePotential
from lodekit.models import AdditiveKernelRidge, StructureRidge
from tests.helpers import triclinic_box

HYPERS = dict(smearing=0.8, max_radial=2, max_angular=2, radius=3.5, k_cutoff=5.0)


def _json(calculator):
    return {"calculator": calculator.name, **calculator.get_hypers()}


def _force_by_differences(potential, atoms, j, alpha, h, **options):
    """-dE/dr_{j,alpha}: the central difference of the potential's energy with step h (Å)."""
    energy = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.positions[j, alpha] += sign * h
        energy.append(potential.compute(moved, forces=False, **options)["energy"])
    return -(energy[0] - energy[1]) / (2 * h)


def _recipe(lode=None, soap=None, blocks=("nu1",), center_types=None):
    """A recipe of LodePotential's former block names: "nu1" and "power_spectrum" of the
    LODE expansion, "soap" (its power spectrum) and "rho_x_v"; ``center_types`` splits
    every block."""
    out = []
    for block in blocks:
        if block == "soap":
            entry = {"kind": "power_spectrum", "expansion": _json(soap)}
        elif block == "rho_x_v":
            entry = {"kind": "rho_x_v", "density": _json(soap), "potential": _json(lode)}
        elif block == "nu1_split":  # nu1 split by centre species, this block only
            entry = {"kind": "nu1", "expansion": _json(lode), "center_types": [11, 17]}
        else:
            entry = {"kind": block, "expansion": _json(lode)}
        if center_types is not None:
            entry["center_types"] = list(center_types)
        out.append(entry)
    return {"blocks": out}


def test_power_spectrum_backward_matches_finite_differences():
    rng = np.random.default_rng(20)
    atoms = triclinic_box(rng)
    lode = lodekit.LodeSphericalExpansion(exponent=1, **HYPERS)
    soap = lodekit.SphericalExpansion(cutoff=3.5, smearing=0.4, max_radial=2, max_angular=2)
    a, b = lode.compute(atoms), soap.compute(atoms)
    for pair in [(a, None), (a, b)]:
        features = power_spectrum(*pair)
        weights = rng.normal(size=features.values.shape)
        grad_a, grad_b = power_spectrum_backward(weights, *pair)
        for which, grads in [(0, grad_a), (1, grad_b)]:
            if grads is None:
                continue
            source = pair[which]
            for l, i, s, m, n in [(0, 0, 0, 0, 1), (1, 2, 1, 2, 0), (2, 5, 1, 3, 2)]:
                h = 1e-6
                values = [v.copy() for v in source.values]
                shifted = []
                for sign in (1, -1):
                    values[l][i, s, m, n] = source.values[l][i, s, m, n] + sign * h
                    moved = type(source)(
                        values=[v.copy() for v in values],
                        samples=source.samples,
                        neighbor_types=source.neighbor_types,
                        hypers=source.hypers,
                    )
                    args = (moved, pair[1]) if which == 0 else (pair[0], moved)
                    if pair[1] is None:
                        args = (moved, None)
                    shifted.append(np.sum(weights * power_spectrum(*args).values))
                fd = (shifted[0] - shifted[1]) / (2 * h)
                assert grads[l][i, s, m, n] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def _training_set():
    frames = random_point_charges(40, seed=5, n_charges=8, box_range=(7.0, 9.0), min_distance=1.8)
    return frames, np.array([atoms.info["energy"] for atoms in frames])


@pytest.mark.parametrize("kind", ["linear_nu1", "kernel_nu2"])
def test_potential_forces_and_stress_are_gradients_of_its_energy(kind):
    frames, energies = _training_set()
    calculator = lodekit.LodeSphericalExpansion(exponent=1, **HYPERS)
    if kind == "linear_nu1":
        features, model = "nu1", StructureRidge(alpha=1e-8, standardize=True)
    else:
        features = "power_spectrum"
        model = AdditiveKernelRidge(zeta=2, alpha=1e-4, n_sparse=60)
    potential = LodePotential(model, _recipe(calculator, blocks=[features], center_types=[11, 17]))
    expansion = calculator.compute(frames)
    x = lode_nu1(expansion) if features == "nu1" else power_spectrum(expansion)
    x = x.by_center_type([11, 17])
    model.fit(x.values, energies, x.samples[:, 0], x.samples[:, 2])

    atoms = random_point_charges(1, seed=9, n_charges=8, box_range=(8.0, 8.0), min_distance=1.8)[0]
    atoms.set_cell(atoms.cell.array @ np.array([[1, 0, 0], [0.2, 1, 0], [-0.1, 0.3, 1]]))
    result = potential.compute(atoms)
    h = 1e-5
    for j, alpha in [(0, 0), (4, 2), (7, 1)]:
        fd = _force_by_differences(potential, atoms, j, alpha, h)
        assert result["forces"][j, alpha] == pytest.approx(fd, rel=1e-6, abs=1e-8)
    volume = atoms.get_volume()
    for a, b in [(0, 0), (1, 2), (2, 2)]:
        energy = []
        for sign in (1, -1):
            strain = np.zeros((3, 3))
            strain[a, b] = strain[b, a] = sign * h / 2 if a != b else sign * h
            moved = atoms.copy()
            moved.set_cell(atoms.cell.array @ (np.eye(3) + strain).T, scale_atoms=True)
            energy.append(potential.compute(moved, forces=False)["energy"])
        # eps_ab = eps_ba = h/2 moves E by (dE/d eps_ab + dE/d eps_ba) h/2 = V stress_ab h
        fd = (energy[0] - energy[1]) / (2 * h) / volume
        assert result["stress"][a, b] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_nve_conserves_energy_with_the_ase_calculator():
    """Velocity Verlet, 0.5 fs, 400 steps of 8 ions from 300 K: the LODE model's electrostatics
    plus a smooth Lennard-Jones repulsion from ASE (without it, smeared opposite charges fall
    onto each other), summed by ASE's SumCalculator."""
    from ase import units
    from ase.calculators.lj import LennardJones
    from ase.calculators.mixing import SumCalculator
    from ase.md.verlet import VelocityVerlet

    from lodekit.interatomic import LodekitCalculator

    frames, energies = _training_set()
    calculator = lodekit.LodeSphericalExpansion(exponent=1, **HYPERS)
    x = lode_nu1(calculator.compute(frames)).by_center_type([11, 17])
    model = StructureRidge(alpha=1e-8, standardize=True)
    model.fit(x.values, energies, x.samples[:, 0], x.samples[:, 2])
    atoms = random_point_charges(1, seed=7, n_charges=8, box_range=(9.0, 9.0), min_distance=2.6)[0]
    lode = LodekitCalculator(LodePotential(model, _recipe(calculator, center_types=[11, 17])))
    repulsion = LennardJones(sigma=2.2, epsilon=0.2, rc=4.4, smooth=True)
    atoms.calc = SumCalculator([lode, repulsion])
    # Maxwell-Boltzmann momenta at 300 K, written out (ASE's helpers change between versions)
    masses = atoms.get_masses()[:, None]
    kt = units.kB * 300.0
    momenta = np.random.default_rng(0).normal(size=(len(atoms), 3)) * np.sqrt(masses * kt)
    atoms.set_momenta(momenta - momenta.mean(axis=0))
    start = atoms.get_positions()
    totals, kinetic = [], []
    # closed on leaving: ASE 3.23 opens os.devnull as the log of a dynamics without a logfile
    with VelocityVerlet(atoms, timestep=0.5 * units.fs) as dynamics:
        dynamics.attach(lambda: totals.append(atoms.get_total_energy()), interval=10)
        dynamics.attach(lambda: kinetic.append(atoms.get_kinetic_energy()), interval=10)
        dynamics.run(400)
    totals = np.array(totals)
    # measured: ions move up to 4 Å, the kinetic energy spans 9.1 eV (opposite charges pair
    # up), the total deviates by at most 2.9e-3 eV (3e-4 of that span) and drifts by 1.3e-3 eV
    assert np.abs(atoms.get_positions() - start).max() > 0.2
    assert np.ptp(kinetic) > 0.05
    assert np.abs(totals - totals[0]).max() < 2e-3 * np.ptp(kinetic)
    assert atoms.get_stress().shape == (6,)


@pytest.mark.parametrize(
    "features", [("soap", "power_spectrum"), ("rho_x_v",), ("soap", "nu1"), ("soap", "nu1_split")]
)
def test_potential_with_soap_blocks_is_the_gradient_of_its_energy(features):
    """SOAP + LODE kernels and the multi-scale rho x V model: both expansions' products."""
    frames, energies = _training_set()
    lode = lodekit.LodeSphericalExpansion(exponent=1, **HYPERS)
    soap = lodekit.SphericalExpansion(cutoff=3.5, smearing=0.4, max_radial=2, max_angular=2)
    potential_blocks = []
    lode_x, soap_x = lode.compute(frames), soap.compute(frames)
    for block in features:
        if block == "soap":
            potential_blocks.append(power_spectrum(soap_x).values)
        elif block == "power_spectrum":
            potential_blocks.append(power_spectrum(lode_x).values)
        elif block == "nu1":
            potential_blocks.append(lode_nu1(lode_x).values)
        elif block == "nu1_split":
            potential_blocks.append(lode_nu1(lode_x).by_center_type([11, 17]).values)
        else:
            potential_blocks.append(power_spectrum(soap_x, lode_x).values)
    x = np.hstack(potential_blocks)
    widths = [b.shape[1] for b in potential_blocks]
    if len(widths) == 1:
        model = StructureRidge(alpha=1e-6, standardize=True)
    else:
        model = AdditiveKernelRidge(
            zeta=2,
            alpha=1e-4,
            n_sparse=60,
            feature_blocks=widths,
            linear_blocks=[1],
            standardize_linear=True,
        )
    model.fit(x, energies, lode_x.samples[:, 0], lode_x.samples[:, 2])
    potential = LodePotential(model, _recipe(lode, soap, features))

    atoms = random_point_charges(1, seed=9, n_charges=8, box_range=(8.0, 8.0), min_distance=1.8)[0]
    atoms.set_cell(atoms.cell.array @ np.array([[1, 0, 0], [0.2, 1, 0], [-0.1, 0.3, 1]]))
    result = potential.compute(atoms)
    # h = 1e-4: at 1e-5 the kernel model's rounding in the energy (~1e-11 eV) is ~1e-6 of the
    # difference quotient, as large as the tolerance (measured: a 1e-14 change of the LODE
    # values moved it across); Richardson with 1e-3 / 2e-3 meets the analytic force to 1e-8
    h = 1e-4
    for j, alpha in [(1, 0), (6, 2)]:
        fd = _force_by_differences(potential, atoms, j, alpha, h)
        assert result["forces"][j, alpha] == pytest.approx(fd, rel=1e-6, abs=1e-8)
    for a, b in [(0, 0), (0, 2)]:
        energy = []
        for sign in (1, -1):
            strain = np.zeros((3, 3))
            strain[a, b] = strain[b, a] = sign * h / 2 if a != b else sign * h
            moved = atoms.copy()
            moved.set_cell(atoms.cell.array @ (np.eye(3) + strain).T, scale_atoms=True)
            energy.append(potential.compute(moved, forces=False)["energy"])
        fd = (energy[0] - energy[1]) / (2 * h) / atoms.get_volume()
        assert result["stress"][a, b] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_potential_errors():
    model = StructureRidge()
    lode = lodekit.LodeSphericalExpansion(exponent=1, **HYPERS)
    with pytest.raises(lodekit.InputError, match="needs 'spherical_expansion' there"):
        LodePotential(model, _recipe(lode, lode, ["rho_x_v"]))
    with pytest.raises(lodekit.InputError, match=r"`recipe.blocks\[0\].kind` is 'nu3'"):
        LodePotential(model, _recipe(lode, blocks=["nu3"]))
    with pytest.raises(lodekit.InputError, match="reduce='sum'"):
        LodePotential(StructureRidge(reduce="mean"), _recipe(lode))
    potential = LodePotential(model, _recipe(lode, center_types=[11]))
    atoms = _training_set()[0][0]
    with pytest.raises(lodekit.InputError, match="outside the center_types"):
        potential.compute(atoms)


def test_potential_on_a_molecule_gives_forces_and_no_stress():
    frames, energies = _training_set()
    calculator = lodekit.LodeSphericalExpansion(exponent=1, **HYPERS)
    x = lode_nu1(calculator.compute(frames)).by_center_type([11, 17])
    model = StructureRidge(alpha=1e-8).fit(x.values, energies, x.samples[:, 0], x.samples[:, 2])
    potential = LodePotential(model, _recipe(calculator, center_types=[11, 17]))
    atoms = frames[1].copy()
    atoms.pbc = False
    atoms.cell = np.zeros((3, 3))
    result = potential.compute(atoms)
    assert "stress" not in result
    h = 1e-5
    for j, alpha in [(2, 1), (5, 0)]:
        fd = _force_by_differences(potential, atoms, j, alpha, h)
        assert result["forces"][j, alpha] == pytest.approx(fd, rel=1e-6, abs=1e-8)
    # an isolated molecule feels no net force
    assert np.abs(result["forces"].sum(axis=0)).max() < 1e-10 * np.abs(result["forces"]).max()


def _nu1_potential(model):
    lode = lodekit.LodeSphericalExpansion(
        smearing=0.5, exponent=1, max_radial=5, max_angular=0, radius=2.0, k_cutoff=18.0
    )
    return lode, LodePotential(model, _recipe(lode, center_types=[11, 17]))


def test_feature_derivatives_match_finite_differences():
    frames, _ = _training_set()
    lode, potential = _nu1_potential(StructureRidge())
    atoms = frames[2]
    derivatives = potential.feature_derivatives(atoms)

    def summed(structure):
        return lode_nu1(lode.compute(structure)).by_center_type([11, 17]).values.sum(axis=0)

    h = 1e-5
    for j, alpha in [(0, 0), (5, 2)]:
        moved = [atoms.copy(), atoms.copy()]
        moved[0].positions[j, alpha] += h
        moved[1].positions[j, alpha] -= h
        fd = (summed(moved[0]) - summed(moved[1])) / (2 * h)
        np.testing.assert_allclose(derivatives[j, alpha], fd, rtol=1e-6, atol=1e-8)


def test_fitting_forces_recovers_a_linear_model():
    """Targets made by a known linear model: 3 structures cannot pin its 24 weights down from
    energies alone, but with their forces the fit predicts a new structure's energy and
    forces as the known model does. (Weights themselves are not identifiable: the Na-centred
    Cl channel and the Cl-centred Na channel sum the same pair function.)"""
    frames, _ = _training_set()
    train, new = frames[:3], frames[10]
    lode, potential = _nu1_potential(StructureRidge())
    x = lode_nu1(lode.compute(train)).by_center_type([11, 17])
    rng = np.random.default_rng(40)
    w = rng.normal(size=x.values.shape[1])
    energies = np.bincount(x.samples[:, 0], weights=x.values @ w)
    derivatives = [potential.feature_derivatives(atoms) for atoms in train]
    forces = [-(d @ w) for d in derivatives]
    args = (x.values, energies, x.samples[:, 0], x.samples[:, 2])
    both = StructureRidge(alpha=1e-12, baselines=False)
    both.fit(*args, forces=forces, feature_derivatives=derivatives)
    energy_only = StructureRidge(alpha=1e-12, baselines=False).fit(*args)

    x_new = lode_nu1(lode.compute(new)).by_center_type([11, 17]).values.sum(axis=0)
    d_new = potential.feature_derivatives(new)
    truth_energy, truth_forces = x_new @ w, -(d_new @ w)
    assert x_new @ both.coef_ == pytest.approx(truth_energy, rel=1e-6)
    # measured: 3e-6 of the largest force (near-degenerate columns, alpha 1e-12)
    scale = np.abs(truth_forces).max()
    np.testing.assert_allclose(-(d_new @ both.coef_), truth_forces, atol=1e-5 * scale)
    assert np.abs(-(d_new @ energy_only.coef_) - truth_forces).max() > 1e-2 * scale


def test_forces_on_a_subset_and_streamed_derivatives():
    """Issue 28: forces of only some structures, and derivatives computed when needed. With
    forces on 3 of 5 structures the fit recovers a known linear model as before; giving the
    derivatives as a function gives the same weights to the last bit, calls it once for each
    structure with forces and never for the others; the weighted least squares written out
    with numpy (energy rows of all 5, force rows of 3) agrees."""
    frames, _ = _training_set()
    train, new = frames[:5], frames[10]
    lode, potential = _nu1_potential(StructureRidge())
    x = lode_nu1(lode.compute(train)).by_center_type([11, 17])
    w = np.random.default_rng(41).normal(size=x.values.shape[1])
    energies = np.bincount(x.samples[:, 0], weights=x.values @ w)
    with_forces = [0, 2, 4]
    derivatives = {a: potential.feature_derivatives(train[a]) for a in with_forces}
    forces = [-(derivatives[a] @ w) if a in derivatives else None for a in range(5)]
    args = (x.values, energies, x.samples[:, 0], x.samples[:, 2])
    listed = StructureRidge(alpha=1e-12, baselines=False).fit(
        *args, forces=forces, feature_derivatives=[derivatives.get(a) for a in range(5)],
        force_weight=0.7,
    )  # fmt: skip
    calls = []

    def streamed(a):
        calls.append(a)
        return derivatives[a]

    lazy = StructureRidge(alpha=1e-12, baselines=False).fit(
        *args, forces=forces, feature_derivatives=streamed, force_weight=0.7
    )
    assert calls == with_forces
    assert np.array_equal(lazy.coef_, listed.coef_)

    d_new = potential.feature_derivatives(new)
    truth_forces = -(d_new @ w)
    np.testing.assert_allclose(
        -(d_new @ lazy.coef_), truth_forces, atol=1e-5 * np.abs(truth_forces).max()
    )

    # the same problem by hand: min |Phi c - y|^2 + alpha |c|^2, force rows weighted by 0.7
    phi = np.vstack(
        [np.stack([x.values[x.samples[:, 0] == a].sum(axis=0) for a in range(5)])]
        + [-0.7 * derivatives[a].reshape(-1, len(w)) for a in with_forces]
    )
    y = np.concatenate([energies] + [0.7 * forces[a].ravel() for a in with_forces])
    by_hand = np.linalg.solve(phi.T @ phi + lazy.alpha_ * np.eye(len(w)), phi.T @ y)
    np.testing.assert_allclose(phi @ lazy.coef_, phi @ by_hand, atol=1e-6 * np.abs(y).max())


def test_force_fitting_errors():
    frames, energies = _training_set()
    lode, _ = _nu1_potential(StructureRidge())
    x = lode_nu1(lode.compute(frames[:2])).by_center_type([11, 17])
    args = (x.values, energies[:2], x.samples[:, 0], x.samples[:, 2])
    with pytest.raises(lodekit.InputError, match="must both be given"):
        StructureRidge().fit(*args, forces=[np.zeros((8, 3))] * 2)
    with pytest.raises(lodekit.InputError, match=r"expected \(n_atoms, 3\)"):
        StructureRidge().fit(
            *args, forces=[np.zeros((8, 3))] * 2, feature_derivatives=[np.zeros((8, 3, 5))] * 2
        )
    with pytest.raises(lodekit.InputError, match="None for every structure"):
        StructureRidge().fit(*args, forces=[None, None], feature_derivatives=[None, None])
    with pytest.raises(lodekit.InputError, match="reduce='sum'"):
        StructureRidge(reduce="mean").fit(
            *args, forces=[np.zeros((8, 3))] * 2, feature_derivatives=[np.zeros((8, 3, 24))] * 2
        )


def test_feature_jacobian_matches_finite_differences():
    """Per-environment feature Jacobians (forward through the expansions' full Jacobians) of
    every feature block, split by centre type, against central differences of the features."""
    atoms = triclinic_box(np.random.default_rng(2))
    lode = lodekit.LodeSphericalExpansion(**HYPERS)
    soap = lodekit.SphericalExpansion(
        cutoff=3.0, smearing=0.4, max_radial=2, max_angular=2, spline_accuracy=None
    )
    potential = LodePotential(
        StructureRidge(),
        _recipe(lode, soap, ("nu1", "soap", "power_spectrum", "rho_x_v"), center_types=[1, 8]),
    )
    jacobian = potential.feature_jacobian(atoms)
    assert jacobian.shape[:3] == (len(atoms), len(atoms), 3)
    h = 1e-5
    for j in (0, 4, 9):
        for alpha in range(3):
            moved = [atoms.copy(), atoms.copy()]
            moved[0].positions[j, alpha] += h
            moved[1].positions[j, alpha] -= h
            fd = (potential._forward(moved[0])[1] - potential._forward(moved[1])[1]) / (2 * h)
            assert np.abs(jacobian[:, j, alpha] - fd).max() < 1e-7 * np.abs(jacobian).max()


def _lennard_jones_frames(n_frames):
    from ase.calculators.lj import LennardJones

    from tests.helpers import random_structure

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(n_frames):
        atoms = random_structure(rng, np.eye(3) * 7.0, ["Ar"] * 10, min_distance=2.4)
        atoms.calc = LennardJones(sigma=2.5, epsilon=0.1, rc=4.5, smooth=True)
        frames.append((atoms, atoms.get_potential_energy(), atoms.get_forces()))
    return frames


def test_kernel_model_trained_on_forces_learns_lennard_jones():
    """A SOAP kernel model (zeta = 2, sparse) fitted to ASE's Lennard-Jones energies and forces
    of 8 random cells: on 8 other cells its forces (through the potential's backward chain)
    beat the energy-only model's by far. Measured: force RMSE 0.17 vs 0.49 eV/Å (forces
    have a spread of 0.57 eV/Å)."""
    frames = _lennard_jones_frames(16)
    train, test = frames[:8], frames[8:]
    soap = lodekit.SphericalExpansion(
        cutoff=5.0, smearing=0.5, max_radial=4, max_angular=4, cutoff_width=1.0
    )
    x = np.vstack([power_spectrum(soap.compute(atoms)).values for atoms, _, _ in train])
    groups = np.repeat(np.arange(len(train)), 10)
    energies = np.array([energy for _, energy, _ in train])
    species = np.full(len(x), 18)
    args = (x, energies, groups, species)
    energy_only = AdditiveKernelRidge(zeta=2, alpha=1e-8, n_sparse=60).fit(*args)
    probe = LodePotential(energy_only, _recipe(soap=soap, blocks=["soap"]))
    jacobians = [probe.feature_jacobian(atoms) for atoms, _, _ in train]
    both = AdditiveKernelRidge(zeta=2, alpha=1e-8, n_sparse=60).fit(
        *args, forces=[f for _, _, f in train], feature_jacobians=jacobians
    )
    # Jacobians computed when needed (streamed) give the same model to the last bit
    streamed = AdditiveKernelRidge(zeta=2, alpha=1e-8, n_sparse=60).fit(
        *args, forces=[f for _, _, f in train], feature_jacobians=lambda a: jacobians[a]
    )
    assert np.array_equal(streamed.weights_, both.weights_)
    errors = {}
    for name, model in [("energy", energy_only), ("both", both)]:
        potential = LodePotential(model, _recipe(soap=soap, blocks=["soap"]))
        residuals = [potential.compute(a, stress=False)["forces"] - f for a, _, f in test]
        errors[name] = np.sqrt(np.mean(np.concatenate(residuals) ** 2))
    spread = np.std(np.concatenate([f for _, _, f in test]))
    assert errors["both"] < 0.45 * errors["energy"]
    assert errors["both"] < 0.35 * spread

    # the force rows of the fit are the gradient the potential differentiates
    atoms, _, _ = train[3]
    rows = both._derivative_rows(x[groups == 3], jacobians[3].reshape(10, -1, x.shape[1]))
    predicted = LodePotential(both, _recipe(soap=soap, blocks=["soap"])).compute(atoms)["forces"]
    np.testing.assert_allclose(-(rows @ both.weights_).reshape(-1, 3), predicted, atol=1e-10)


def test_kernel_force_fitting_errors():
    frames = _lennard_jones_frames(2)
    soap = lodekit.SphericalExpansion(cutoff=4.0, smearing=0.5, max_radial=2, max_angular=2)
    x = np.vstack([power_spectrum(soap.compute(atoms)).values for atoms, _, _ in frames])
    args = (x, np.array([e for _, e, _ in frames]), np.repeat([0, 1], 10))
    forces = [f for _, _, f in frames]
    with pytest.raises(lodekit.InputError, match="must both be given"):
        AdditiveKernelRidge().fit(*args, forces=forces)
    with pytest.raises(lodekit.InputError, match="environments, atoms, xyz, features"):
        AdditiveKernelRidge().fit(
            *args, forces=forces, feature_jacobians=[np.zeros((10, 10, 3, 5))] * 2
        )
    with pytest.raises(lodekit.InputError, match="reduce='sum'"):
        AdditiveKernelRidge(reduce="mean").fit(
            *args, forces=forces, feature_jacobians=[np.zeros((10, 10, 3, x.shape[1]))] * 2
        )


@pytest.mark.parametrize(
    ("o3_lambda", "o3_sigma", "mixed"), [(1, 1, True), (2, 1, False), (1, -1, True)]
)
def test_equivariant_product_forward_and_backward_match_finite_differences(
    o3_lambda, o3_sigma, mixed
):
    """lambda-equivariants: the tangent along atom displacements (from the expansions' full
    Jacobians) against central differences of the features, and the backward pass against
    the directional derivative of sum G · T along random changes of the coefficients."""
    from lodekit.features import equivariant_product
    from lodekit.features.jvp import equivariant_product_forward
    from lodekit.features.vjp import equivariant_product_backward

    atoms = triclinic_box(np.random.default_rng(4))
    lode = lodekit.LodeSphericalExpansion(**HYPERS)
    soap = lodekit.SphericalExpansion(
        cutoff=3.0, smearing=0.4, max_radial=2, max_angular=2, spline_accuracy=None
    )
    options = dict(o3_lambda=o3_lambda, o3_sigma=o3_sigma)

    def pair(structure, gradients=None):
        b = lode.compute(structure, gradients=gradients)
        a = soap.compute(structure, gradients=gradients) if mixed else b
        return a, b

    def product(a, b):
        return equivariant_product(a, b if mixed else None, **options).values

    def tangent(expansion):
        gradient = expansion.gradients["positions"]
        out = []
        for values in gradient.values:
            dense = np.zeros((len(expansion), len(atoms), *values.shape[1:]))
            dense[gradient.samples[:, 0], gradient.samples[:, 2]] = values
            out.append(dense.reshape(len(expansion), 3 * len(atoms), *values.shape[2:]))
        return out

    a, b = pair(atoms, ["positions"])
    if mixed:
        forward = equivariant_product_forward(a, tangent(a), b, tangent(b), **options)
    else:
        forward = equivariant_product_forward(a, tangent(a), **options)
    h = 1e-5
    for j, alpha in [(0, 0), (3, 1), (7, 2)]:
        moved = [atoms.copy(), atoms.copy()]
        moved[0].positions[j, alpha] += h
        moved[1].positions[j, alpha] -= h
        fd = (product(*pair(moved[0])) - product(*pair(moved[1]))) / (2 * h)
        assert np.abs(forward[:, 3 * j + alpha] - fd).max() < 1e-7 * np.abs(forward).max()

    rng = np.random.default_rng(0)
    values = product(a, b)
    grad = rng.normal(size=values.shape)
    grad_a, grad_b = equivariant_product_backward(grad, a, b if mixed else None, **options)
    da = [rng.normal(size=v.shape) for v in a.values]
    db = [rng.normal(size=v.shape) for v in b.values] if mixed else da
    from dataclasses import replace

    def energy(t):
        shifted_a = replace(a, values=[v + t * d for v, d in zip(a.values, da, strict=True)])
        shifted_b = replace(b, values=[v + t * d for v, d in zip(b.values, db, strict=True)])
        return np.sum(grad * product(shifted_a, shifted_b if mixed else shifted_a))

    fd = (energy(1e-5) - energy(-1e-5)) / 2e-5
    analytic = sum(np.sum(g * d) for g, d in zip(grad_a, da, strict=True))
    if mixed:
        analytic += sum(np.sum(g * d) for g, d in zip(grad_b, db, strict=True))
    assert analytic == pytest.approx(fd, rel=1e-7)


def test_force_fitting_refuses_non_finite_forces():
    frames, energies = _training_set()
    lode, potential = _nu1_potential(StructureRidge())
    x = lode_nu1(lode.compute(frames[:2])).by_center_type([11, 17])
    derivatives = [potential.feature_derivatives(atoms) for atoms in frames[:2]]
    forces = [np.zeros((len(atoms), 3)) for atoms in frames[:2]]
    forces[1][0, 0] = np.nan
    with pytest.raises(lodekit.InputError, match="structure 1: `forces` or"):
        StructureRidge().fit(
            x.values,
            energies[:2],
            x.samples[:, 0],
            x.samples[:, 2],
            forces=forces,
            feature_derivatives=derivatives,
        )


def test_feature_jacobian_with_strain_matches_finite_differences():
    """d x_i / d eps_ab of a SOAP + LODE recipe on a triclinic rattled cell, against central
    differences of the features of the cell and positions deformed by (I + eps) (h = 1e-5;
    measured 2e-8 of the largest derivative, the LODE block's accuracy 1e-8); the position
    part is the strain-free Jacobian, to the last bit."""
    import ase.build

    from lodekit.features import Recipe
    from tests.conftest import NACL_POTENTIAL_RECIPE

    recipe = Recipe.from_dict(NACL_POTENTIAL_RECIPE)
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.8, cubic=True)
    atoms.rattle(0.1, seed=2)
    skew = np.random.default_rng(1).normal(scale=0.2, size=(3, 3))
    atoms.set_cell(atoms.cell + skew, scale_atoms=True)
    potential = LodePotential(StructureRidge(), recipe, species=[11, 17])
    positions, strain = potential.feature_jacobian(atoms, strain=True)
    assert np.array_equal(positions, potential.feature_jacobian(atoms))
    step, worst = 1e-5, 0.0
    for a in range(3):
        for b in range(3):
            values = []
            for sign in (1, -1):
                deformation = np.eye(3)
                deformation[a, b] += sign * step
                moved = atoms.copy()
                moved.set_cell(atoms.cell.array @ deformation.T)
                moved.positions = atoms.positions @ deformation.T
                values.append(recipe.compute(moved, [11, 17]).values)
            difference = (values[0] - values[1]) / (2 * step)
            worst = max(worst, np.abs(difference - strain[:, a, b]).max())
    assert worst < 1e-6 * np.abs(strain).max()
    with pytest.raises(lodekit.InputError, match="periodic"):
        potential.feature_jacobian(
            ase.Atoms("NaCl", positions=[[0, 0, 0], [2.5, 0, 0]]), strain=True
        )


def _slab_potential(kind="soap"):
    """StructureRidge on random slabs' features (their energies random too: any fitted weights
    make a smooth energy to differentiate): the SOAP power spectrum, or with "soap+lode" also
    the slab LODE invariants nu = 1 and rho x V (p = 1, to an accuracy of 1e-9)."""
    from lodekit.features import Recipe
    from tests.helpers import three_species_slab

    soap = lodekit.SphericalExpansion(
        cutoff=3.5, smearing=0.4, max_radial=2, max_angular=2, spline_accuracy=None
    )
    lode = lodekit.LodeSphericalExpansion(
        exponent=1, smearing=0.9, max_radial=2, max_angular=2, radius=3.0, accuracy=1e-9
    )
    blocks = ("soap",) if kind == "soap" else ("soap", "nu1", "rho_x_v")
    recipe = Recipe.from_dict(_recipe(lode=lode, soap=soap, blocks=blocks))
    rng = np.random.default_rng(12)
    frames = [three_species_slab(rng) for _ in range(6)]
    x = recipe.compute(frames)
    model = StructureRidge(alpha=1e-6, standardize=True).fit(
        x.values, rng.normal(size=len(frames)), x.samples[:, 0], x.samples[:, 2]
    )
    return LodePotential(model, recipe, species=[1, 6, 7, 8]), three_species_slab(rng)


def _slab_strained(atoms, deformation):
    """Positions and the two periodic vectors (rows 0, 1) mapped by ``deformation``."""
    moved = atoms.copy()
    moved.positions = atoms.positions @ deformation.T
    cell = atoms.cell.array.copy()
    cell[:2] = cell[:2] @ deformation.T
    moved.set_cell(cell)
    return moved


@pytest.mark.parametrize("kind", ["soap", "soap+lode"])
def test_slab_stress_is_the_strain_derivative_over_det_cell(kind):
    """ASE's stress of a slab: dE/d eps (positions and the two periodic vectors deformed)
    over |det(cell)|, the tilted third vector setting only that volume; all nine components
    against central differences of the energy, and forces likewise."""
    potential, atoms = _slab_potential(kind)
    result = potential.compute(atoms)
    volume = abs(np.linalg.det(atoms.cell.array))
    h = 1e-5
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            energy = []
            for sign in (1, -1):
                deformation = np.eye(3)
                deformation[a, b] += sign * h
                moved = _slab_strained(atoms, deformation)
                energy.append(potential.compute(moved, forces=False, stress=False)["energy"])
            numeric[a, b] = (energy[0] - energy[1]) / (2 * h)
    scale = np.abs(numeric).max()
    # measured: 1.4e-9 of the largest entry (h = 1e-5, exact radial integrals)
    assert np.abs(result["stress"] * volume - numeric).max() < 1e-7 * scale
    # a zero third vector: no volume, so no stress, and a message that says so
    flat = atoms.copy()
    flat.cell[2] = [0.0, 0.0, 0.0]
    with pytest.raises(lodekit.InputError, match=r"a slab's stress needs a non-zero third"):
        potential.compute(flat)
    without = potential.compute(flat, stress=False)
    assert without["energy"] == pytest.approx(result["energy"], rel=1e-12)
    np.testing.assert_allclose(without["forces"], result["forces"], rtol=0, atol=1e-12 * scale)
    for j, alpha in [(0, 2), (5, 0), (11, 1)]:
        fd = _force_by_differences(potential, atoms, j, alpha, h, stress=False)
        assert result["forces"][j, alpha] == pytest.approx(fd, rel=1e-6, abs=1e-9 * scale)


@pytest.mark.parametrize("kind", ["soap", "soap+lode"])
def test_slab_feature_jacobian_with_strain_matches_finite_differences(kind):
    potential, atoms = _slab_potential(kind)
    _, strain = potential.feature_jacobian(atoms, strain=True)
    h, worst = 1e-5, 0.0
    for a, b in [(0, 1), (2, 0), (1, 2), (2, 2)]:
        values = []
        for sign in (1, -1):
            deformation = np.eye(3)
            deformation[a, b] += sign * h
            values.append(potential._forward(_slab_strained(atoms, deformation))[1])
        worst = max(worst, np.abs((values[0] - values[1]) / (2 * h) - strain[:, a, b]).max())
    # measured: 1.1e-9 of the largest derivative
    assert worst < 1e-7 * np.abs(strain).max()


def test_ase_calculator_on_a_slab_and_a_molecule():
    """The ASE calculator gives a slab's stress (the potential's, in Voigt order) and says
    PropertyNotImplementedError, as ASE expects, when asked for a molecule's."""
    from ase.calculators.calculator import PropertyNotImplementedError
    from ase.stress import full_3x3_to_voigt_6_stress

    from lodekit.interatomic import LodekitCalculator

    potential, atoms = _slab_potential("soap+lode")
    atoms.calc = LodekitCalculator(potential)
    reference = potential.compute(atoms)
    np.testing.assert_array_equal(atoms.get_forces(), reference["forces"])
    np.testing.assert_array_equal(
        atoms.get_stress(), full_3x3_to_voigt_6_stress(reference["stress"])
    )
    molecule = atoms.copy()
    molecule.pbc = False
    molecule.calc = LodekitCalculator(potential)
    assert molecule.get_potential_energy() != reference["energy"]
    with pytest.raises(PropertyNotImplementedError, match="no stress"):
        molecule.get_stress()


def test_slab_stress_labels_are_read_and_need_a_volume():
    from ase.calculators.singlepoint import SinglePointCalculator

    from lodekit.interatomic.labels import read_labels
    from tests.helpers import three_species_slab

    slab = three_species_slab(np.random.default_rng(3))
    stress = np.arange(6.0) * 1e-3
    slab.calc = SinglePointCalculator(slab, energy=-1.0, stress=stress)
    labels = read_labels([slab])
    xx, yy, zz, yz, xz, xy = stress
    np.testing.assert_array_equal(labels.stress[0], [[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    flat = slab.copy()
    flat.cell[2] = [0.0, 0.0, 0.0]
    flat.calc = SinglePointCalculator(flat, energy=-1.0, stress=stress)
    with pytest.raises(lodekit.InputError, match=r"frame 0 is a slab .* needs a non-zero third"):
        read_labels([flat])
    assert read_labels([flat], stress_key=None).stress == [None]


def test_charge_weighted_single_channel_lode_potential_is_the_gradient_of_its_energy():
    """A recipe block of LODE p = 1 weighted by the ase array ``initial_charges`` in one
    all-atoms channel: the recipe reads the charges from ase inputs, and the potential's
    forces and stress (through the weighted VJP) are the derivatives of its energy."""
    frames, energies = _training_set()
    for atoms in frames:
        atoms.set_initial_charges(np.where(atoms.numbers == 11, 1.0, -1.0))
    calculator = lodekit.LodeSphericalExpansion(
        exponent=1, weights="initial_charges", species_channels=False, **HYPERS
    )
    recipe = lodekit.Recipe.coerce(_recipe(calculator, blocks=["nu1"], center_types=[11, 17]))
    expansion = calculator.compute(frames)
    assert expansion.neighbor_types.tolist() == [0]
    x = lode_nu1(expansion).by_center_type([11, 17])
    assert np.abs(recipe.compute(frames).values - x.values).max() < 1e-14
    model = StructureRidge(alpha=1e-8, standardize=True)
    model.fit(x.values, energies, x.samples[:, 0], x.samples[:, 2])
    potential = LodePotential(model, recipe)

    atoms = frames[0].copy()
    atoms.set_cell(atoms.cell.array @ np.array([[1, 0, 0], [0.2, 1, 0], [-0.1, 0.3, 1]]))
    result = potential.compute(atoms)
    unit = atoms.copy()
    unit.set_initial_charges(np.ones(len(atoms)))
    assert abs(potential.compute(unit, forces=False)["energy"] - result["energy"]) > 1e-3
    h = 1e-4
    for j, alpha in [(0, 0), (3, 2), (6, 1)]:
        fd = _force_by_differences(potential, atoms, j, alpha, h)
        assert result["forces"][j, alpha] == pytest.approx(fd, rel=1e-6, abs=1e-7)
    energy = []
    h = 1e-5  # the k-sphere of a fixed k_cutoff changes under larger strains
    for sign in (1, -1):
        moved = atoms.copy()
        moved.set_cell(atoms.cell.array * (1 + sign * h), scale_atoms=True)
        energy.append(potential.compute(moved, forces=False)["energy"])
    # a uniform scaling: dE = sum_a dE/d eps_aa h = V trace(stress) h
    fd = (energy[0] - energy[1]) / (2 * h) / atoms.get_volume()
    assert np.trace(result["stress"]) == pytest.approx(fd, rel=1e-6, abs=1e-8)
