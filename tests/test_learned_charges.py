"""lodekit.torch.charges: the learned-charge model on a few SSI dimers. Its loss falls, the
charges keep each structure's total charge, the forces are minus the finite-difference
gradient of the energy, the training form (Taylor data) equals the lodekit.torch layer, and
the ASE calculator returns the model's numbers."""

import ase
import ase.io
import numpy as np
import pytest

import lodekit
from lodekit.errors import InputError
from tests.conftest import shared_file

torch = pytest.importorskip("torch")

from lodekit.torch.charges import (  # noqa: E402
    LearnedChargeCalculator,
    LearnedChargeModel,
    dimer_training_set,
    train_learned_charges,
)

SPECIES = [1, 6, 7, 8]


@pytest.fixture(scope="module")
def dimers():
    """The first two dimers of the file (one ARG+/ASP-, one with total charge 2), every
    fourth curve point, and their four monomers: 11 structures."""
    path = shared_file("ssi_dimers", "ssi_dimers_gfn2.extxyz")
    frames = ase.io.read(path, index=":26")[::4]
    assert len({atoms.info["dimer_index"] for atoms in frames}) == 2
    return frames, dimer_training_set(frames)


@pytest.fixture(scope="module")
def trained(dimers):
    """A model trained for a few epochs (about 1 s) and its history."""
    _, data = dimers
    torch.set_num_threads(1)
    model = LearnedChargeModel(SPECIES, charge_hidden=(8,), energy_hidden=(16,), seed=1)
    prepared = model.prepare(data["structures"], data["charge"], data["energy"], data["forces"])
    history = train_learned_charges(model, prepared, epochs=12, batch_size=6, seed=2)
    return model, prepared, history


def test_training_set_of_dimers_and_monomers(dimers):
    frames, data = dimers
    n = len(frames)
    assert len(data["structures"]) == n + 4
    for atoms, charge, energy, forces in zip(
        frames, data["charge"][:n], data["energy"][:n], data["forces"][:n], strict=True
    ):
        assert charge == atoms.info["charge_A"] + atoms.info["charge_B"]
        assert energy == atoms.info["binding_energy"]
        np.testing.assert_array_equal(forces, atoms.arrays["binding_forces"])
    monomers = data["structures"][n:]
    first = frames[0]
    n_a = first.info["n_A"]
    np.testing.assert_array_equal(monomers[0].positions, first.positions[:n_a])
    np.testing.assert_array_equal(monomers[1].positions, first.positions[n_a:])
    assert data["charge"][n : n + 2].tolist() == [first.info["charge_A"], first.info["charge_B"]]
    assert np.all(data["energy"][n:] == 0) and all(np.all(f == 0) for f in data["forces"][n:])
    assert data["is_monomer"].tolist() == [False] * n + [True] * 4


def test_loss_falls(trained):
    _, _, history = trained
    loss = history["loss"]
    assert len(loss) == 12 and np.all(np.isfinite(loss))
    assert loss[-1] < 0.5 * loss[0]


def test_total_charge_is_conserved_for_every_structure(dimers, trained):
    _, data = dimers
    model, prepared, _ = trained
    _, _, charges = model.energies_and_forces(prepared, forces=False)
    sums = np.zeros(len(prepared))
    np.add.at(sums, prepared.structure.numpy(), charges.detach().numpy())
    np.testing.assert_allclose(sums, data["charge"], rtol=0, atol=1e-12)
    assert set(data["charge"].tolist()) >= {-1.0, 0.0, 1.0, 2.0}
    # the learned charges are not uniform: the network gives each atom its own
    assert charges.detach().std() > 1e-3
    for atoms, charge in zip(data["structures"][::5], data["charge"][::5], strict=True):
        result = model.predict(atoms, charge)
        assert result["charges"].sum() == pytest.approx(charge, abs=1e-12)


def test_forces_are_minus_the_finite_difference_gradient(dimers, trained):
    """Central differences of the energy (the lodekit.torch layer) along every coordinate
    of a dimer: truncation error ~ h^2 E''' ~ 1e-8 eV/Å at h = 1e-4 Å."""
    _, data = dimers
    model, _, _ = trained
    atoms, charge = data["structures"][1], data["charge"][1]
    forces = model.predict(atoms, charge)["forces"]
    h = 1e-4
    numeric = np.zeros_like(forces)
    for j in range(len(atoms)):
        for x in range(3):
            energies = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[j, x] += sign * h
                energies.append(model.predict(moved, charge)["energy"])
            numeric[j, x] = -(energies[0] - energies[1]) / (2 * h)
    assert np.abs(forces).max() > 1e-3
    np.testing.assert_allclose(forces, numeric, rtol=0, atol=1e-6)


def test_training_form_equals_the_torch_layer(dimers, trained):
    """Energies, forces and charges of the Taylor data used in training against the model
    evaluated through lodekit.torch (expansions with charges as weights, autograd forces)."""
    _, data = dimers
    model, prepared, _ = trained
    energies, forces, charges = model.energies_and_forces(prepared)
    for s in (0, 3, len(prepared) - 1):
        atoms = data["structures"][s]
        first, last = prepared.first_atom[s], prepared.first_atom[s + 1]
        result = model.predict(atoms, data["charge"][s])
        assert result["energy"] == pytest.approx(energies[s].item(), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(
            result["forces"], forces[first:last].detach().numpy(), rtol=0, atol=1e-10
        )
        np.testing.assert_allclose(
            result["charges"], charges[first:last].detach().numpy(), rtol=0, atol=1e-12
        )


def test_ase_calculator_returns_the_model(dimers, trained, tmp_path):
    _, data = dimers
    model, _, _ = trained
    atoms = data["structures"][2].copy()
    expected = model.predict(atoms, 2.0)
    atoms.info["charge"] = 2.0
    atoms.calc = LearnedChargeCalculator(model)
    assert atoms.get_potential_energy() == pytest.approx(expected["energy"], rel=1e-14)
    np.testing.assert_allclose(atoms.get_forces(), expected["forces"], rtol=0, atol=1e-14)
    np.testing.assert_allclose(atoms.get_charges(), expected["charges"], rtol=0, atol=1e-14)
    # the total charge given to the calculator wins over atoms.info
    atoms.calc = LearnedChargeCalculator(model, charge=0.0)
    assert atoms.get_charges().sum() == pytest.approx(0.0, abs=1e-12)
    # a saved and reloaded model gives the same numbers
    model.save(tmp_path / "model.pt")
    again = LearnedChargeModel.load(tmp_path / "model.pt")
    assert again.predict(atoms, 2.0)["energy"] == pytest.approx(expected["energy"], rel=1e-14)


def test_bad_inputs_name_the_argument(dimers):
    _, data = dimers
    model = LearnedChargeModel(SPECIES)
    periodic = ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.8]], cell=np.eye(3) * 5, pbc=True)
    with pytest.raises(InputError, match=r"`structures\[0\]` has pbc"):
        model.prepare([periodic], [0.0])
    with pytest.raises(InputError, match="`charges` has shape"):
        model.prepare(data["structures"][:2], [0.0])
    with pytest.raises(InputError, match="exponent"):
        LearnedChargeModel(SPECIES, lode={"smearing": 1.0, "exponent": 3, "radius": 3.0})
    sulfur = ase.Atoms("SH2", positions=[[0, 0, 0], [0, 0, 1.3], [1.3, 0, 0]])
    with pytest.raises(InputError, match=r"species \[16\]"):
        model.predict(sulfur)
    prepared = model.prepare(data["structures"][:2], data["charge"][:2])
    with pytest.raises(InputError, match="no reference energies"):
        train_learned_charges(model, prepared)


def test_energies_only_training_needs_no_forces(dimers):
    _, data = dimers
    model = LearnedChargeModel(SPECIES, charge_hidden=(4,), energy_hidden=(4,))
    prepared = model.prepare(data["structures"][:4], data["charge"][:4], data["energy"][:4])
    history = train_learned_charges(model, prepared, epochs=2, force_weight=0.0)
    assert len(history["loss"]) == 2 and np.all(np.isfinite(history["loss"]))
    with pytest.raises(InputError, match="no reference energies or forces"):
        train_learned_charges(model, prepared, epochs=2)


def test_linear_electrostatics_term_in_both_forms(dimers, tmp_path):
    """The optional linear q V term: the training form equals the torch layer, the term
    changes the energy by sum_i q_i (w . V_i / s), and it survives save/load."""
    _, data = dimers
    model = LearnedChargeModel(
        SPECIES, charge_hidden=(4,), energy_hidden=(4,), linear_electrostatics=True
    )
    prepared = model.prepare(data["structures"], data["charge"], data["energy"], data["forces"])
    model.set_scales(prepared)
    with torch.no_grad():
        model.electrostatic_weights.copy_(torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=torch.float64))
    energies, forces, _ = model.energies_and_forces(prepared)
    s = 1
    first, last = prepared.first_atom[s], prepared.first_atom[s + 1]
    atoms, charge = data["structures"][s], data["charge"][s]
    result = model.predict(atoms, charge)
    assert result["energy"] == pytest.approx(energies[s].item(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(
        result["forces"], forces[first:last].detach().numpy(), rtol=0, atol=1e-10
    )
    # the term by hand, from the weighted LODE expansion of the learned charges
    q = result["charges"]
    system = lodekit.System(atoms.positions, atoms.numbers, weights=q)
    v = model.lode.compute(system).values[0][:, 0, 0, :] / model.potential_scale.numpy()
    term = float(np.sum(q[:, None] * v * np.array([0.3, -0.2, 0.5, 0.1])))
    with torch.no_grad():
        model.electrostatic_weights.zero_()
    assert model.predict(atoms, charge)["energy"] == pytest.approx(
        result["energy"] - term, rel=1e-12, abs=1e-12
    )
    model.save(tmp_path / "model.pt")
    assert LearnedChargeModel.load(tmp_path / "model.pt").linear_electrostatics
