"""Forces and virial of a linear LODE point-charge model against GROMACS (smooth PME).

The model is trained on energies only (lodekit's Ewald sum of random boxes); its forces and
strain derivative come from ``vector_jacobian_product``. The shared GROMACS frames store the
virial Xi = -1/2 sum_i r_i (x) F_i in eV under the name ``stress`` (its trace is -E/2 for a
Coulomb energy), i.e. 1/2 dE/d eps.
"""

import ase.io
import numpy as np

import lodekit
from lodekit.datasets import random_point_charges
from lodekit.features import lode_nu1
from lodekit.models import StructureRidge
from tests.conftest import POINT_CHARGE_BOXES, shared_file

FRAMES = ("point_charges_gromacs", "coulomb_test_frames_torchpme.xyz")


def test_linear_lode_model_forces_and_virial_match_gromacs():
    reference = ase.io.read(shared_file(*FRAMES), ":")
    # 8 charges in 7.5-10.5 Å boxes, like the GROMACS frames (closest pair there: 1.79 Å)
    train = random_point_charges(400, seed=3, **POINT_CHARGE_BOXES)
    energies = np.array([atoms.info["energy"] for atoms in train])
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.5, exponent=1, max_radial=5, max_angular=0, radius=2.0, k_cutoff=18.0
    )
    types = [11, 17]
    features = lode_nu1(calculator.compute(train)).by_center_type(types)
    model = StructureRidge(alpha=list(np.logspace(-14, 0, 15))).fit(
        features.values, energies, features.samples[:, 0], features.samples[:, 2]
    )
    # E = sum_i coef[type_i] · c_i(l = 0): dE/dc is the coefficient block of each centre
    coef = model.coef_.reshape(len(types), len(types), calculator.max_radial + 1)
    for atoms in reference:
        expansion = calculator.compute(atoms)
        upstream = np.zeros_like(expansion.values[0])
        upstream[:, :, 0, :] = coef[np.searchsorted(types, expansion.samples[:, 2])]
        gradients = calculator.vector_jacobian_product(atoms, [upstream])
        forces, virial = -gradients["positions"][0], 0.5 * gradients["strain"][0]
        gromacs_forces = atoms.get_forces()
        gromacs_virial = atoms.get_stress(voigt=False)
        # measured: 1e-4 of the largest force and virial entry
        assert np.abs(forces - gromacs_forces).max() < 5e-4 * np.abs(gromacs_forces).max()
        assert np.abs(virial - gromacs_virial).max() < 5e-4 * np.abs(gromacs_virial).max()
        # the gradient of a model without a cutoff: no net force on a periodic cell
        assert np.abs(forces.sum(axis=0)).max() < 1e-10 * np.abs(forces).max()


def test_training_on_forces_helps_against_gromacs():
    """10 random boxes with energies and forces (forces: central differences of lodekit's Ewald
    sum) give GROMACS forces far better than the same boxes' energies alone."""
    from lodekit.datasets import ewald_energy

    reference = ase.io.read(shared_file(*FRAMES), ":")
    train = random_point_charges(10, seed=3, **POINT_CHARGE_BOXES)

    def ewald_forces(atoms, h=1e-4):
        forces = np.zeros((len(atoms), 3))
        for j in range(len(atoms)):
            for alpha in range(3):
                plus, minus = atoms.copy(), atoms.copy()
                plus.positions[j, alpha] += h
                minus.positions[j, alpha] -= h
                forces[j, alpha] = -(ewald_energy(plus) - ewald_energy(minus)) / (2 * h)
        return forces

    energies = np.array([atoms.info["energy"] for atoms in train])
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.5, exponent=1, max_radial=5, max_angular=0, radius=2.0, k_cutoff=12.0
    )
    types = [11, 17]
    x = lode_nu1(calculator.compute(train)).by_center_type(types)
    expansion = {"calculator": calculator.name, **calculator.get_hypers()}
    recipe = {"blocks": [{"kind": "nu1", "expansion": expansion, "center_types": types}]}
    helper = lodekit.LodePotential(StructureRidge(), recipe)
    derivatives = [helper.feature_derivatives(atoms) for atoms in train]
    forces = [ewald_forces(atoms) for atoms in train]
    errors = {}
    for name, extra in [
        ("energies", {}),
        ("both", {"forces": forces, "feature_derivatives": derivatives}),
    ]:
        model = StructureRidge(alpha=list(np.logspace(-14, 0, 15)))
        model.fit(x.values, energies, x.samples[:, 0], x.samples[:, 2], **extra)
        potential = lodekit.LodePotential(model, recipe)
        errors[name] = max(
            np.abs(potential.compute(atoms)["forces"] - atoms.get_forces()).max()
            / np.abs(atoms.get_forces()).max()
            for atoms in reference
        )
    # measured: 1.7e-4 of the largest force with forces, 0.105 from the energies alone
    assert errors["both"] < 1e-3
    assert errors["energies"] > 10 * errors["both"]
