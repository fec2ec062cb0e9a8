"""lodekit.torch.kspace, the torch-ops k-space path of ``lodekit.torch.expansion``, forced
on the CPU (``kspace="torch"``): its coefficients against the numpy calculator, its
gradients against finite differences (gradcheck) and against the numpy path's
vector-Jacobian products, and its refusals. The CUDA test runs only where a GPU is."""

import numpy as np
import pytest

import lodekit
from tests.conftest import bench_system, water64
from tests.helpers import random_structure, triclinic_box

torch = pytest.importorskip("torch")

from lodekit.errors import InputError  # noqa: E402
from lodekit.torch import ExpansionLayer, expansion  # noqa: E402

SMALL = dict(max_radial=2, max_angular=2, radius=3.5)

#: A triclinic cell (already reduced: the calculator keeps it as it is).
SKEWED = np.array([[4.6, 0.0, 0.0], [0.9, 4.4, 0.0], [-0.5, 0.6, 4.8]])


def _lode(**changes):
    return lodekit.LodeSphericalExpansion(**{**SMALL, "smearing": 1.0, "k_cutoff": 4.0, **changes})


def _nacl4(seed=3):
    rng = np.random.default_rng(seed)
    return random_structure(rng, SKEWED, ["Na", "Cl", "Na", "Cl"], min_distance=1.6)


#: A unimodular change of basis: the same lattice, a cell the calculator reduces (its Miller
#: indices differ from those of the given cell; the torch path works in the given one).
SHEAR = np.array([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [-1.0, 1.0, 1.0]])


def _unreduced(atoms):
    atoms = atoms.copy()
    atoms.set_cell(SHEAR @ atoms.cell.array, scale_atoms=False)
    return atoms


def _tensors(atoms, grad=False):
    positions = torch.tensor(atoms.positions, dtype=torch.float64, requires_grad=grad)
    cell = torch.tensor(atoms.cell.array, dtype=torch.float64, requires_grad=grad)
    return positions, cell


def _reference(calculator, atoms, weights=None):
    """The numpy calculator's coefficients, per-l arrays concatenated (no torch involved)."""
    system = lodekit.System.from_ase(atoms)
    if weights is not None:
        system = lodekit.System(
            system.positions, system.numbers, system.cell, pbc=True, weights=weights
        )
    return np.concatenate(calculator.compute(system).values, axis=2)


def _water_small():
    """water64 cut to its first 8 molecules in a 6.2 Å box (24 atoms, dense enough)."""
    atoms = water64()[:24]
    atoms.set_cell(np.eye(3) * 6.2)
    atoms.wrap()
    return atoms


CASES = {
    "water64-p1": (water64, dict(smearing=1.5, k_cutoff=2.6, max_angular=3), None),
    "water24-p6": (_water_small, dict(exponent=6, center_atom_weight=0.3), None),
    "triclinic-p0": (lambda: triclinic_box(np.random.default_rng(5)), dict(exponent=0), None),
    "skewed-p3-weights": (_nacl4, dict(exponent=3, center_atom_weight=0.0), "random"),
    "unreduced-p2": (lambda: _unreduced(_nacl4()), dict(exponent=2), None),
    "nacl64-charges": (
        lambda: bench_system("nacl64"),
        dict(smearing=1.5, k_cutoff=2.4, species_channels=False),
        "initial_charges",
    ),
    "accuracy-plan": (_nacl4, dict(k_cutoff=None, accuracy=1e-6, smearing=1.0), None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_coefficients_equal_the_numpy_calculator(name):
    make, hypers, weights = CASES[name]
    atoms = make()
    calculator = _lode(**hypers)
    if weights == "random":
        weights = np.random.default_rng(7).normal(size=len(atoms))
    elif weights is not None:
        weights = atoms.get_array(weights).copy()
    expected = _reference(calculator, atoms, weights)
    positions, cell = _tensors(atoms)
    w = None if weights is None else torch.from_numpy(weights)
    ours = expansion(calculator, positions, cell, atoms.numbers, weights=w, kspace="torch")
    assert ours.grad_fn is None or "_Expansion" not in type(ours.grad_fn).__name__
    assert ours.shape == expected.shape
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-12 * scale)


def test_a_kept_cell_is_not_reused_for_another():
    """The tables kept for a cell are not reused for another cell or calculator."""
    atoms = _nacl4()
    p1, p4 = _lode(), _lode(exponent=4)
    for calculator, factor in ((p1, 1.0), (p1, 1.1), (p4, 1.1), (p1, 1.0), (p1, 1.1)):
        scaled = atoms.copy()
        scaled.set_cell(atoms.cell.array * factor, scale_atoms=True)
        positions, cell = _tensors(scaled)
        ours = expansion(calculator, positions, cell, scaled.numbers, kspace="torch")
        np.testing.assert_allclose(ours.numpy(), _reference(calculator, scaled), atol=1e-12)


def test_kept_tables_carry_no_graph():
    """A call with a cell gradient, then one without on the same cell: the second's backward
    must not run into the first's (freed) graph through the kept tables."""
    atoms = _nacl4()
    calculator = _lode()
    positions, cell = _tensors(atoms)
    cell.requires_grad_()
    expansion(calculator, positions, cell, atoms.numbers, kspace="torch").square().sum().backward()
    first = cell.grad.clone()
    positions.requires_grad_()
    out = expansion(calculator, positions, cell.detach(), atoms.numbers, kspace="torch")
    out.square().sum().backward()
    assert torch.equal(cell.grad, first)
    assert positions.grad is not None


def test_species_widening_matches_the_numpy_path():
    atoms = _nacl4()
    calculator = _lode()
    positions, cell = _tensors(atoms)
    kwargs = dict(species=[1, 11, 17])
    numpy_path = expansion(calculator, positions, cell, atoms.numbers, kspace="numpy", **kwargs)
    torch_path = ExpansionLayer(calculator, kwargs["species"], kspace="torch")(
        positions, cell, atoms.numbers
    )
    assert torch_path.shape[1] == 3
    assert torch.all(torch_path[:, 0] == 0)
    np.testing.assert_allclose(torch_path.numpy(), numpy_path.numpy(), rtol=0, atol=1e-12)


def test_gradcheck_positions_cell_weights():
    atoms = _nacl4()
    # p = 4: the k = 0 term (weights and volume) is part of the function
    calculator = _lode(max_radial=1, smearing=0.9, k_cutoff=3.0, exponent=4, center_atom_weight=0.5)
    positions, cell = _tensors(atoms, grad=True)
    weights = torch.tensor([0.7, -1.2, 1.1, -0.4], dtype=torch.float64, requires_grad=True)

    def function(r, h, w):
        return expansion(calculator, r, h, atoms.numbers, weights=w, kspace="torch")

    assert torch.autograd.gradcheck(
        function, (positions, cell, weights), eps=1e-6, atol=1e-8, rtol=1e-6, fast_mode=True
    )


def _assert_gradients_equal(calculator, atoms, weighted: bool):
    """Gradients of sum(G * c) by the torch path equal those of the numpy path's VJP."""
    positions, cell = _tensors(atoms, grad=True)
    weights = None
    if weighted:
        rng = np.random.default_rng(2)
        weights = torch.tensor(rng.normal(size=len(atoms)), requires_grad=True)
    inputs = [positions, cell] + ([weights] if weighted else [])
    grads = {}
    for path in ("numpy", "torch"):
        for tensor in inputs:
            tensor.grad = None
        out = expansion(calculator, positions, cell, atoms.numbers, weights=weights, kspace=path)
        upstream = torch.from_numpy(np.random.default_rng(4).normal(size=out.shape))
        (out * upstream).sum().backward()
        grads[path] = [tensor.grad.clone() for tensor in inputs]
    names = ("positions", "cell", "weights")[: len(inputs)]
    for name, a, b in zip(names, grads["numpy"], grads["torch"], strict=True):
        scale = max(1.0, float(a.abs().max()))
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=1e-12 * scale, err_msg=name)


def test_gradients_equal_the_numpy_vjp():
    """Unweighted, species channels, p = 5 (a k = 0 term)."""
    atoms = triclinic_box(np.random.default_rng(11))
    _assert_gradients_equal(_lode(center_atom_weight=0.6, exponent=5), atoms, weighted=False)


def test_gradients_equal_the_numpy_vjp_weighted_unreduced():
    """Weighted, one channel for all atoms (p = 1), in a cell that the calculator reduces
    (dE/dH is that of the given rows)."""
    atoms = _unreduced(triclinic_box(np.random.default_rng(11)))
    calculator = _lode(species_channels=False, center_atom_weight=0.6)
    _assert_gradients_equal(calculator, atoms, weighted=True)


def test_auto_uses_numpy_on_the_cpu():
    atoms = _nacl4()
    positions, cell = _tensors(atoms, grad=True)
    out = expansion(_lode(), positions, cell, atoms.numbers)
    assert "_Expansion" in type(out.grad_fn).__name__
    forced = expansion(_lode(), positions, cell, atoms.numbers, kspace="torch")
    assert "_Expansion" not in type(forced.grad_fn).__name__


def test_second_derivatives_positions_weights_gradgradcheck():
    """With a fixed cell the path is plain autograd: forces can be trained on."""
    atoms = _nacl4()
    calculator = _lode(max_radial=1, max_angular=1, smearing=0.9, k_cutoff=3.0, exponent=4)
    positions, cell = _tensors(atoms)
    positions.requires_grad_()
    weights = torch.tensor([0.7, -1.2, 1.1, -0.4], dtype=torch.float64, requires_grad=True)

    def function(r, w):
        return expansion(calculator, r, cell, atoms.numbers, weights=w, kspace="torch")

    assert torch.autograd.gradgradcheck(
        function, (positions, weights), eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True
    )


def test_second_derivative_through_the_cell_raises():
    atoms = _nacl4()
    positions, cell = _tensors(atoms, grad=True)
    out = expansion(_lode(max_angular=1), positions, cell, atoms.numbers, kspace="torch")
    (grad_cell,) = torch.autograd.grad(out.square().sum(), cell, create_graph=True)
    with pytest.raises(RuntimeError):
        grad_cell.sum().backward()


REFUSED = {
    "range_separated": ("periodic", dict(smearing=0.3, k_cutoff=None, accuracy=1e-9), "plan"),
    "nufft": ("periodic", dict(kspace_method="nufft"), "nufft"),
    "several exponents": ("periodic", dict(exponent=[1, 3]), "several exponents"),
    "slab": ("slab", dict(k_cutoff=None), "slab"),
    "molecule": ("molecule", dict(k_cutoff=None), "molecule"),
    "soap": ("periodic", None, "SphericalExpansion"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_paths(name):
    boundary, hypers, words = REFUSED[name]
    if name == "nufft":
        pytest.importorskip("finufft")
    atoms = _nacl4()
    pbc = {"periodic": True, "slab": [True, True, False], "molecule": False}[boundary]
    if hypers is None:
        calculator = lodekit.SphericalExpansion(
            max_radial=1, max_angular=1, cutoff=3.0, smearing=0.4
        )
    else:
        calculator = _lode(**hypers)
    positions, cell = _tensors(atoms)
    if boundary == "molecule":
        cell = None
    with pytest.raises(InputError, match=f"`kspace` is 'torch' but .*{words}"):
        expansion(calculator, positions, cell, atoms.numbers, pbc, kspace="torch")
    with pytest.raises(InputError, match="`kspace`"):
        expansion(calculator, positions, cell, atoms.numbers, pbc, kspace="gpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_take_the_torch_path():
    atoms = triclinic_box(np.random.default_rng(5))
    calculator = _lode()
    positions, cell = (t.cuda().requires_grad_() for t in _tensors(atoms))
    weights = torch.linspace(-1, 1, len(atoms), dtype=torch.float64).cuda().requires_grad_()
    out = expansion(calculator, positions, cell, atoms.numbers, weights=weights)
    assert out.is_cuda and "_Expansion" not in type(out.grad_fn).__name__
    (out.square().sum()).backward()
    gpu = [t.grad.cpu() for t in (positions, cell, weights)]
    cpu = [t.detach().cpu().requires_grad_() for t in (positions, cell, weights)]
    expected = expansion(calculator, *cpu[:2], atoms.numbers, weights=cpu[2], kspace="numpy")
    np.testing.assert_allclose(out.detach().cpu().numpy(), expected.detach().numpy(), atol=1e-12)
    expected.square().sum().backward()
    for a, b in zip(gpu, cpu, strict=True):
        np.testing.assert_allclose(a.numpy(), b.grad.numpy(), rtol=0, atol=1e-10)
