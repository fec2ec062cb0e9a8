"""lodekit.torch: the autograd Functions against finite differences (gradcheck), the layer
against the numpy recipe and LodePotential, and the optional-dependency contract."""

import subprocess
import sys

import numpy as np
import pytest

import lodekit
from lodekit.features import Recipe
from lodekit.interatomic import LodePotential
from lodekit.models import StructureRidge
from tests.helpers import random_structure

torch = pytest.importorskip("torch")

from lodekit.errors import InputError  # noqa: E402
from lodekit.torch import (  # noqa: E402
    ExpansionLayer,
    FeatureLayer,
    expansion,
    features,
    nu1,
    power_spectrum,
    rho_x_v,
    split_by_l,
)

SMALL = dict(max_radial=1, max_angular=1, radius=3.0)

#: One calculator per code path the torch Function must differentiate (boundary, method).
PATHS = {
    "lode-direct": ("periodic", dict(SMALL, smearing=0.9, k_cutoff=4.0, center_atom_weight=0.5)),
    # a sharp smearing and a tight accuracy: the planner splits the field
    "lode-range_separated": ("periodic", dict(SMALL, smearing=0.3, accuracy=1e-9)),
    "lode-nufft": ("periodic", dict(SMALL, smearing=0.9, k_cutoff=4.0, kspace_method="nufft")),
    "lode-p3-direct": ("periodic", dict(SMALL, smearing=0.9, k_cutoff=4.0, exponent=3)),
    "lode-exponents-direct": (
        "periodic",
        dict(SMALL, smearing=0.9, k_cutoff=4.0, exponent=[1, 3], center_atom_weight=0.5),
    ),
    "lode-molecule": ("molecule", dict(SMALL, smearing=0.6)),
    "lode-slab": ("slab", dict(SMALL, smearing=0.9, accuracy=1e-9)),
    "soap-periodic": ("periodic", dict(SMALL, cutoff=3.0, smearing=0.4)),
    "soap-molecule": ("molecule", dict(SMALL, cutoff=3.0, smearing=0.4)),
}

#: Paths too slow for a full Jacobian by finite differences (two evaluations per input
#: entry, one backward pass per output entry)
SLOW_PATHS = ("lode-range_separated", "lode-nufft", "lode-slab")

CELL = np.array([[4.6, 0.0, 0.0], [0.9, 4.4, 0.0], [-0.5, 0.6, 4.8]])


def _structure(boundary: str, seed: int = 3):
    rng = np.random.default_rng(seed)
    pbc = {"periodic": True, "molecule": False, "slab": [True, True, False]}[boundary]
    atoms = random_structure(rng, CELL, ["Na", "Cl", "Na", "Cl"], min_distance=1.6, pbc=pbc)
    if boundary == "molecule":
        atoms.cell[:] = 0.0
    return atoms


def _calculator(name: str):
    hypers = dict(PATHS[name][1])
    if name.startswith("soap"):
        hypers.pop("radius")
        return lodekit.SphericalExpansion(**hypers)
    return lodekit.LodeSphericalExpansion(**hypers)


def _tensors(atoms):
    positions = torch.tensor(atoms.positions, dtype=torch.float64, requires_grad=True)
    cell = torch.tensor(atoms.cell.array, dtype=torch.float64, requires_grad=any(atoms.pbc))
    return positions, cell


def _gradcheck(name: str, fast: bool) -> bool:
    """The expansion of path ``name`` equals ``compute``; gradcheck of positions and (if
    periodic) cell: finite differences (step 1e-6) against the analytic backward pass. The
    NUFFT's tolerance is 1e-13 of the largest coefficient, far below what they resolve.
    ``fast``: finite differences along one random direction of the inputs against the
    backward pass of one random weighting of the outputs, instead of every entry."""
    boundary = PATHS[name][0]
    atoms = _structure(boundary)
    calculator = _calculator(name)
    positions, cell = _tensors(atoms)
    pbc = list(atoms.pbc)
    types = atoms.numbers

    out = expansion(calculator, positions, cell, types, pbc)
    reference = calculator.compute(atoms)
    for l, values in enumerate(split_by_l(out)):
        np.testing.assert_array_equal(values.detach().numpy(), reference.values[l])

    def function(p, h):
        return expansion(calculator, p, h, types, pbc)

    inputs = (positions, cell) if any(pbc) else (positions, cell.detach())
    return torch.autograd.gradcheck(function, inputs, atol=1e-6, rtol=1e-5, fast_mode=fast)


@pytest.mark.parametrize("name", list(PATHS))
def test_expansion_matches_compute_and_passes_gradcheck(name):
    # the slow paths (50-300 ms an evaluation) in fast mode here, in full below
    assert _gradcheck(name, fast=name in SLOW_PATHS)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_PATHS)
def test_slow_paths_pass_full_gradcheck(name):
    assert _gradcheck(name, fast=False)


def test_molecule_has_zero_cell_gradient():
    atoms = _structure("molecule")
    positions, _ = _tensors(atoms)
    cell = torch.zeros((3, 3), dtype=torch.float64, requires_grad=True)
    out = expansion(_calculator("lode-molecule"), positions, cell, atoms.numbers, False)
    out.sum().backward()
    assert torch.all(cell.grad == 0)
    assert torch.any(positions.grad != 0)


def test_cell_gradient_is_unchanged_by_wrapping_atoms_into_the_cell():
    """An atom given a lattice vector outside the cell: same energy, same gradients (the
    calculators wrap positions; the cell gradient must be that of the positions given)."""
    atoms = _structure("periodic")
    calculator = _calculator("lode-direct")
    grads = []
    for shift in (np.zeros(3), CELL[0] - 2 * CELL[2]):
        moved = atoms.positions.copy()
        moved[1] += shift
        positions = torch.tensor(moved, requires_grad=True)
        cell = torch.tensor(CELL, requires_grad=True)
        out = expansion(calculator, positions, cell, atoms.numbers)
        weights = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).reshape(out.shape)
        (out * weights).sum().backward()
        grads.append((positions.grad, cell.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-10, atol=1e-12)
    # the moved atom sits at r + n H_0 for every H: E(r + n H_0, H) = E(r + n (H_0 - H), H),
    # so dE/dH loses n^T g of that atom
    expected = grads[0][1] - torch.outer(torch.tensor([1.0, 0.0, -2.0]), grads[0][0][1])
    torch.testing.assert_close(grads[1][1], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["nu1", "power_spectrum", "rho_x_v", "equivariant"])
def test_feature_functions_pass_gradcheck(kind):
    generator = torch.Generator().manual_seed(1)

    def coefficients(n_species, max_angular, n_radial):
        shape = (3, n_species, (max_angular + 1) ** 2, n_radial)
        values = torch.randn(shape, dtype=torch.float64, generator=generator)
        return values.requires_grad_()

    if kind == "nu1":
        inputs, function = (coefficients(2, 1, 2),), nu1
    elif kind == "power_spectrum":
        inputs, function = (coefficients(2, 2, 2),), power_spectrum
    elif kind == "rho_x_v":
        inputs, function = (coefficients(2, 2, 2), coefficients(2, 2, 3)), rho_x_v
    else:
        inputs = (coefficients(2, 1, 2), coefficients(2, 2, 1))

        def function(a, b):
            return features("equivariant", a, b, o3_lambda=1)

    assert torch.autograd.gradcheck(function, inputs)


def _recipe(center_types=None, kinds=("nu1",)):
    lode = {"calculator": "lode_spherical_expansion", "smearing": 0.9, "k_cutoff": 4.0}
    lode.update(max_radial=2, max_angular=2, radius=3.0)
    soap = {"calculator": "spherical_expansion", "cutoff": 3.0, "smearing": 0.4}
    soap.update(max_radial=1, max_angular=2)
    blocks = []
    for kind in kinds:
        if kind == "rho_x_v":
            block = {"kind": kind, "density": soap, "potential": lode}
        elif kind == "soap":
            block = {"kind": "power_spectrum", "expansion": soap}
        else:
            block = {"kind": kind, "expansion": lode}
        if center_types is not None:
            block["center_types"] = center_types
        blocks.append(block)
    return Recipe.from_dict({"blocks": blocks})


def test_feature_layer_gives_the_recipe_columns():
    recipe = _recipe(kinds=("nu1", "power_spectrum", "rho_x_v", "soap"))
    atoms = _structure("periodic")
    atoms.numbers[:] = [11, 17, 11, 11]  # no lone channel: species [1, 11, 17] has H absent
    species = [1, 11, 17]
    layer = FeatureLayer(recipe, species)
    positions, cell = _tensors(atoms)
    out = layer(positions, cell, torch.tensor(atoms.numbers))
    expected = recipe.compute(atoms, species).values
    assert out.shape == expected.shape == (4, layer.n_columns)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    ("kind", "boundary"),
    [("nu1", "periodic"), ("power_spectrum", "periodic"), ("power_spectrum", "molecule")],
)
def test_linear_model_in_torch_equals_lode_potential(kind, boundary):
    """A linear model on the layer's columns, written in torch: energy, forces (autograd on
    positions) and stress (from autograd on the cell) against LodePotential's numpy chain."""
    rng = np.random.default_rng(7)
    center_types = [11, 17]
    recipe = _recipe(center_types=center_types, kinds=(kind,))
    frames = [_structure("periodic", seed) for seed in range(6)]
    species = [11, 17]
    x = recipe.compute(frames, species)
    energies = rng.normal(size=len(frames))
    model = StructureRidge(alpha=1e-6, standardize=True).fit(
        x.values, energies, x.samples[:, 0], x.samples[:, 2]
    )
    potential = LodePotential(model, recipe, species=species)

    atoms = _structure(boundary, seed=11)
    layer = FeatureLayer(recipe, species)
    positions, cell = _tensors(atoms)
    columns = layer(positions, cell, atoms.numbers, boundary == "periodic")
    mean = torch.from_numpy(model.feature_mean_)
    scale = torch.from_numpy(model.feature_scale_)
    coef = torch.from_numpy(model.coef_)
    baseline = dict(zip(model.types_.tolist(), model.baseline_.tolist(), strict=True))
    energy = ((columns - mean) / scale).sum(dim=0) @ coef
    energy = energy + sum(baseline[int(z)] for z in atoms.numbers)
    energy.backward()

    reference = potential.compute(atoms)
    assert energy.item() == pytest.approx(reference["energy"], rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(-positions.grad.numpy(), reference["forces"], rtol=0, atol=1e-10)
    if boundary == "molecule":
        assert "stress" not in reference
        return
    # dE/d eps = g^T r + (dE/dH)^T H, the stress (1/V) of its symmetric part
    strain = positions.grad.numpy().T @ atoms.positions + cell.grad.numpy().T @ CELL
    stress = 0.5 * (strain + strain.T) / abs(np.linalg.det(CELL))
    np.testing.assert_allclose(stress, reference["stress"], rtol=0, atol=1e-10)


def test_double_backward_is_refused():
    atoms = _structure("periodic")
    positions, cell = _tensors(atoms)
    out = nu1(expansion(_calculator("lode-direct"), positions, cell, atoms.numbers))
    (gradient,) = torch.autograd.grad(out.square().sum(), positions, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        gradient.sum().backward()


def test_coefficients_changed_in_place_are_refused_in_backward():
    values = torch.randn((2, 1, 4, 2), dtype=torch.float64, requires_grad=True)
    coefficients = values * 1.0
    out = power_spectrum(coefficients)
    coefficients.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_bad_inputs_name_the_argument():
    atoms = _structure("periodic")
    calculator = _calculator("lode-direct")
    positions, cell = _tensors(atoms)
    with pytest.raises(InputError, match=r"`positions` has dtype torch\.float32"):
        expansion(calculator, positions.detach().float(), cell, atoms.numbers)
    with pytest.raises(InputError, match="not in `species`"):
        expansion(calculator, positions, cell, atoms.numbers, species=[11])
    with pytest.raises(InputError, match="`kind`"):
        features("bispectrum", torch.zeros((1, 1, 1, 1), dtype=torch.float64))
    with pytest.raises(InputError, match="outside the center_types"):
        FeatureLayer(_recipe(center_types=[11]), [11, 17])(positions, cell, atoms.numbers)


def test_expansion_layer_widens_channels_to_species():
    atoms = _structure("periodic")
    atoms.numbers[:] = 11
    positions, cell = _tensors(atoms)
    layer = ExpansionLayer(_calculator("lode-direct"), species=[1, 11, 17])
    out = layer(positions, cell, atoms.numbers)
    assert out.shape == (4, 3, 4, 2)
    assert torch.all(out[:, [0, 2]] == 0)
    np.testing.assert_array_equal(
        out[:, 1, :1].detach().numpy(), _calculator("lode-direct").compute(atoms).values[0][:, 0]
    )
    out[:, 1].sum().backward()
    assert positions.grad.shape == (4, 3)


def test_import_without_torch_says_how_to_install():
    """A process where ``import torch`` fails: the core imports (it never asks for torch),
    lodekit.torch raises one ImportError that says how to install it. (A finder, not
    ``sys.modules["torch"] = None``: scipy looks torch up in sys.modules and would fail.)"""
    code = (
        "import importlib.abc, sys\n"
        "class NoTorch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import lodekit, lodekit.interatomic, lodekit.batch, lodekit.experiments, lodekit.cli\n"
        "try:\n"
        "    import lodekit.torch\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'lodekit[torch]'" in result.stdout


#: Paths of the weight gradient: (path, species_channels)
WEIGHT_PATHS = [
    ("lode-direct", True),
    ("lode-direct", False),
    ("lode-range_separated", False),
    ("lode-nufft", False),
    ("lode-molecule", True),
    ("lode-molecule", False),
    ("soap-periodic", True),
]


@pytest.mark.parametrize(("name", "species_channels"), WEIGHT_PATHS)
def test_weighted_expansion_matches_compute_and_passes_gradcheck(name, species_channels):
    """Per-atom weights (charge-like, of both signs): the output equals ``compute`` of the
    weighted System, and gradcheck (finite differences) passes on weights, positions and, if
    periodic, the cell together. Fast mode (one random direction) for the slow paths."""
    boundary = PATHS[name][0]
    atoms = _structure(boundary)
    calculator = _calculator(name)
    calculator = type(calculator)(
        **{**calculator.get_hypers(), "species_channels": species_channels}
    )
    positions, cell = _tensors(atoms)
    pbc = list(atoms.pbc)
    types = atoms.numbers
    charges = torch.tensor([0.7, -1.1, 0.3, 0.1], dtype=torch.float64, requires_grad=True)

    out = expansion(calculator, positions, cell, types, pbc, weights=charges, species=[11, 17])
    system = lodekit.System(
        atoms.positions, types, atoms.cell.array, pbc=pbc, weights=charges.detach().numpy()
    )
    reference = calculator.compute(system)
    assert out.shape[1] == (2 if species_channels else 1)
    for l, values in enumerate(split_by_l(out)):
        np.testing.assert_array_equal(values.detach().numpy(), reference.values[l])

    def function(w, p, h):
        return expansion(calculator, p, h, types, pbc, weights=w)

    inputs = (charges, positions, cell if any(pbc) else cell.detach())
    assert torch.autograd.gradcheck(
        function, inputs, atol=1e-6, rtol=1e-5, fast_mode=name in SLOW_PATHS
    )


def test_unit_weights_equal_no_weights_and_weights_alone_get_a_gradient():
    atoms = _structure("periodic")
    calculator = _calculator("lode-direct")
    positions = torch.tensor(atoms.positions)
    cell = torch.tensor(atoms.cell.array)
    ones = torch.ones(4, dtype=torch.float64, requires_grad=True)
    weighted = expansion(calculator, positions, cell, atoms.numbers, weights=ones)
    plain = expansion(calculator, positions, cell, atoms.numbers)
    torch.testing.assert_close(weighted, plain, rtol=1e-13, atol=1e-14)
    # the coefficients are linear in the weights: d(sum c)/dw_j is the sum of atom j's
    # unit-weight contribution, i.e. of the expansion with weights e_j
    weighted.sum().backward()
    for j in range(4):
        unit = torch.zeros(4, dtype=torch.float64)
        unit[j] = 1.0
        alone = expansion(calculator, positions, cell, atoms.numbers, weights=unit)
        assert ones.grad[j].item() == pytest.approx(alone.sum().item(), rel=1e-10, abs=1e-12)


def test_bad_weights_name_the_argument():
    atoms = _structure("periodic")
    calculator = _calculator("lode-direct")
    positions, cell = _tensors(atoms)
    with pytest.raises(InputError, match=r"`weights` has shape \(3,\)"):
        expansion(
            calculator, positions, cell, atoms.numbers, weights=torch.ones(3, dtype=torch.float64)
        )
    with pytest.raises(InputError, match=r"`weights` has dtype torch\.float32"):
        expansion(calculator, positions, cell, atoms.numbers, weights=torch.ones(4))
