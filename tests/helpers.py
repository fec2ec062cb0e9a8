"""Structure generators and featomic wrappers shared by the tests."""

from __future__ import annotations

import ase
import numpy as np


def random_structure(rng, cell, symbols, min_distance=1.2, pbc=True):
    """Atoms at uniform random positions with all (minimum-image) distances >= min_distance."""
    cell = np.asarray(cell, dtype=float)
    atoms = ase.Atoms(cell=cell, pbc=pbc)
    for symbol in symbols:
        for _ in range(10_000):
            candidate = rng.random(3) @ cell
            trial = atoms + ase.Atoms(symbol, positions=[candidate])
            if len(atoms) == 0:
                atoms = trial
                break
            d = trial.get_distances(len(trial) - 1, range(len(atoms)), mic=pbc)
            if d.min() >= min_distance:
                atoms = trial
                break
        else:  # pragma: no cover - only with impossible densities
            raise RuntimeError("could not place atom")
    return atoms


def cubic_box(rng):
    return random_structure(rng, np.eye(3) * 7.0, ["Na"] * 6 + ["Cl"] * 6, min_distance=1.8)


def triclinic_box(rng):
    cell = [[6.5, 0.0, 0.0], [1.7, 6.1, 0.0], [-1.1, 0.9, 7.2]]
    return random_structure(rng, cell, ["O"] * 5 + ["H"] * 8, min_distance=1.0)


def three_species_box(rng):
    cell = [[7.5, 0.3, 0.0], [0.0, 7.0, 0.5], [0.4, 0.0, 6.8]]
    return random_structure(rng, cell, ["C"] * 3 + ["N"] * 3 + ["O"] * 4 + ["H"] * 6)


def slab(rng, symbols=("Na",) * 4 + ("Cl",) * 4, height=4.0):
    """A triclinic slab, pbc (T, T, F): atoms within ``height`` Å of the plane, the third cell
    vector tilted (ignored by the slab sums, used by ASE to scale positions under strain)."""
    cell = [[6.0, 0.0, 0.0], [1.5, 5.6, 0.0], [0.6, -0.4, height]]
    atoms = random_structure(rng, cell, list(symbols), min_distance=1.6, pbc=[True, True, False])
    atoms.positions[:, 2] -= atoms.positions[:, 2].mean()
    return atoms


def three_species_slab(rng, periodic_rows=(0, 1)):
    """C, N, O and H in a 5 Å thick slab over a triclinic in-plane cell; the non-periodic
    cell vector is tilted (not along the normal) and sets only where the heights are drawn.

    ``periodic_rows`` (0, 2): the same atoms with the cell rows 1 and 2 swapped, pbc
    (True, False, True).
    """
    cell = np.array([[6.5, 0.4, 0.0], [1.8, 6.2, 0.0], [1.3, -0.9, 5.0]])
    atoms = random_structure(
        rng, cell, ["C"] * 3 + ["N"] * 3 + ["O"] * 2 + ["H"] * 4, pbc=[True, True, False]
    )
    if tuple(periodic_rows) == (0, 2):
        atoms.set_cell(cell[[0, 2, 1]])
        atoms.pbc = [True, False, True]
    elif tuple(periodic_rows) != (0, 1):  # pragma: no cover - a test's mistake
        raise ValueError(f"periodic_rows {periodic_rows}")
    return atoms


def molecule(rng, n_atoms=10):
    symbols = (["C", "N", "O", "H"] * n_atoms)[:n_atoms]
    atoms = random_structure(rng, np.eye(3) * 4.5, symbols, min_distance=1.0, pbc=False)
    atoms.cell = np.zeros((3, 3))
    return atoms


def featomic_lode(
    atoms, *, smearing, exponent, max_radial, max_angular, radius, weight, k_cutoff, gradients=None
):
    import featomic

    calculator = featomic.LodeSphericalExpansion(
        k_cutoff=k_cutoff,
        density={
            "type": "SmearedPowerLaw",
            "smearing": smearing,
            "exponent": exponent,
            "center_atom_weight": weight,
        },
        basis={
            "type": "TensorProduct",
            "max_angular": max_angular,
            "radial": {"type": "Gto", "max_radial": max_radial, "radius": radius},
            "spline_accuracy": None,
        },
    )
    return calculator.compute(atoms, gradients=gradients)


def featomic_lode_monomials(
    atoms, *, smearing, exponent, max_radial, max_angular, radius, weight, k_cutoff, n_points
):
    """featomic 0.6.7's LODE with its ``Monomials`` radial basis (one per l), splined by its own
    ``LodeSpliner`` on ``n_points`` equidistant k (the spline error falls as n_points^-4).

    featomic's native ``Gto`` code orthonormalises the centre's own contribution; the 0.6.7
    ``LodeSpliner`` returns it for the bare primitives (it never applies the orthonormalisation
    matrix it uses for the splines). It is rotated here with featomic's own matrix, so that
    ``center_atom_weight != 1`` can be compared too; all numbers remain featomic's.
    """
    import featomic
    from featomic.basis import Explicit, Monomials
    from featomic.density import SmearedPowerLaw
    from featomic.splines import LodeSpliner

    by_angular = {
        l: Monomials(angular_channel=l, max_radial=max_radial, radius=radius)
        for l in range(max_angular + 1)
    }
    density = SmearedPowerLaw(smearing=smearing, exponent=exponent, center_atom_weight=weight)
    spliner = LodeSpliner(
        density=density,
        basis=Explicit(by_angular=by_angular, spline_accuracy=None),
        k_cutoff=k_cutoff,
        n_spline_points=n_points,
    )
    hypers = spliner.get_hypers()
    channel = hypers["basis"].by_angular[0]
    orthonormalization = by_angular[0]._get_orthonormalization_matrix()
    channel.lode_center_contribution = orthonormalization @ channel.lode_center_contribution
    return featomic.LodeSphericalExpansion(**hypers).compute(atoms)


def featomic_soap(
    atoms,
    *,
    cutoff,
    cutoff_function,
    cutoff_width,
    smearing,
    max_radial,
    max_angular,
    weight,
    gradients=None,
):
    import featomic

    smoothing = (
        {"type": "Step"}
        if cutoff_function == "step"
        else {"type": "ShiftedCosine", "width": cutoff_width}
    )
    calculator = featomic.SphericalExpansion(
        cutoff={"radius": cutoff, "smoothing": smoothing},
        density={"type": "Gaussian", "width": smearing, "center_atom_weight": weight},
        basis={
            "type": "TensorProduct",
            "max_angular": max_angular,
            "radial": {"type": "Gto", "max_radial": max_radial},
            "spline_accuracy": None,
        },
    )
    return calculator.compute(atoms, gradients=gradients)


def featomic_soap_monomials(
    atoms, *, cutoff, cutoff_function, cutoff_width, smearing, max_radial, max_angular, weight
):
    """featomic 0.6.7's SOAP with its ``Monomials`` radial basis (radius = cutoff), the radial
    integrals splined by its own ``SoapSpliner`` on 1000 points."""
    import featomic
    from featomic.basis import Explicit, Monomials
    from featomic.cutoff import Cutoff, ShiftedCosine, Step
    from featomic.density import Gaussian
    from featomic.splines import SoapSpliner

    smoothing = Step() if cutoff_function == "step" else ShiftedCosine(width=cutoff_width)
    by_angular = {
        l: Monomials(angular_channel=l, max_radial=max_radial, radius=cutoff)
        for l in range(max_angular + 1)
    }
    spliner = SoapSpliner(
        cutoff=Cutoff(radius=cutoff, smoothing=smoothing),
        density=Gaussian(width=smearing, center_atom_weight=weight),
        basis=Explicit(by_angular=by_angular, spline_accuracy=None),
        n_spline_points=1000,
    )
    return featomic.SphericalExpansion(**spliner.get_hypers()).compute(atoms)


def kspace_problem(calculator, atoms, centres):
    """The :class:`~lodekit.expansion.kspace.KspaceProblem` of ``calculator`` for a periodic
    structure in k_cutoff mode, restricted to ``centres``."""
    from lodekit.expansion.kspace import KspaceProblem
    from lodekit.systems import System

    system = System.from_ase(atoms)
    types = np.unique(system.numbers)
    return KspaceProblem(
        positions=system.positions,
        species_index=np.searchsorted(types, system.numbers),
        n_species=len(types),
        centres=np.asarray(centres),
        cell=system.cell,
        basis=calculator._basis,
        max_angular=calculator.max_angular,
        smearing=calculator.smearing,
        exponent=calculator.exponent,
        k_cutoff=calculator.effective_k_cutoff,
    )


def max_relative_difference(reference, ours):
    """Largest |difference| over all blocks, relative to the largest reference coefficient.

    The two TensorMaps must have the same keys and, block by block, the same samples.
    """
    assert reference.keys == ours.keys
    scale = max(np.abs(block.values).max() for block in reference.blocks())
    worst = 0.0
    for key, block in reference.items():
        mine = ours.block(key)
        assert block.samples == mine.samples, f"samples differ for {key}"
        assert block.components == mine.components
        assert block.properties == mine.properties
        worst = max(worst, np.abs(block.values - mine.values).max(initial=0.0))
    return worst / scale


def ewald_energy(atoms, charges, accuracy=1e-12):
    """Point-charge Ewald energy (eV) with tin-foil boundaries, written for the tests only.

    E = 1/2 sum' q_i q_j erfc(a r)/r + (2 pi / V) sum_k exp(-k^2/4a^2)/k^2 |S(k)|^2
        - a/sqrt(pi) sum q_i^2, times e^2/(4 pi eps0) = 14.399645 eV Å.
    """
    from scipy.special import erfc

    coulomb = 14.399645
    cell = atoms.cell.array
    volume = abs(np.linalg.det(cell))
    positions = atoms.positions
    q = np.asarray(charges, dtype=float)
    a = np.sqrt(np.pi) * (len(q) / volume**2) ** (1 / 6)
    r_cut = np.sqrt(-np.log(accuracy)) / a
    k_cut = 2 * a * np.sqrt(-np.log(accuracy))
    lengths = np.linalg.norm(cell, axis=1)
    n = np.ceil(r_cut / (volume / np.prod(lengths)) / lengths).astype(int) + 1
    shifts = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in n], indexing="ij"), -1)
    shifts = shifts.reshape(-1, 3) @ cell
    real = 0.0
    for i in range(len(q)):
        d = np.linalg.norm(positions[None, :, :] + shifts[:, None, :] - positions[i], axis=-1)
        mask = (d > 1e-12) & (d < r_cut)
        real += 0.5 * q[i] * np.sum((q[None, :] * erfc(a * d) / np.where(mask, d, 1.0))[mask])
    recip = 2 * np.pi * np.linalg.inv(cell).T
    m = np.ceil(k_cut * lengths / (2 * np.pi)).astype(int)
    hkl = np.stack(np.meshgrid(*[np.arange(-x, x + 1) for x in m], indexing="ij"), -1)
    kvec = hkl.reshape(-1, 3) @ recip
    k2 = np.einsum("ij,ij->i", kvec, kvec)
    keep = (k2 > 0) & (k2 < k_cut**2)
    kvec, k2 = kvec[keep], k2[keep]
    structure = np.exp(1j * positions @ kvec.T).T @ q
    reciprocal = (
        2 * np.pi / volume * np.sum(np.exp(-k2 / (4 * a * a)) / k2 * np.abs(structure) ** 2)
    )
    self_energy = -a / np.sqrt(np.pi) * np.sum(q * q)
    return coulomb * (real + reciprocal + self_energy)


def transformed(atoms, matrix):
    """A copy of ``atoms`` with positions (and, if periodic or a slab, the cell) mapped by
    ``matrix``."""
    out = atoms.copy()
    out.positions = atoms.positions @ matrix.T
    if atoms.pbc.any():
        out.cell = atoms.cell.array @ matrix.T
    return out


def deformed(atoms, a, b, h):
    """A copy of ``atoms`` under r -> (1 + eps) r with the single strain component eps_ab = h:
    positions and cell of a periodic structure or a slab (whose third cell vector must then
    not be zero), positions of a molecule."""
    deformation = np.eye(3)
    deformation[a, b] += h
    moved = atoms.copy()
    if atoms.pbc.any():
        moved.set_cell(atoms.cell.array @ deformation.T, scale_atoms=True)
    else:
        moved.positions = atoms.positions @ deformation.T
    return moved


def assert_same_store(path_a, path_b, rtol=1e-12):
    """Two feature stores hold the same dataset: same header and chunks, the same samples
    exactly and the same values to ``rtol`` of the largest (bit-identical in practice, but
    threaded libraries may sum in another order), and nothing else on disk."""
    from lodekit.batch import FeatureStore

    a, b = FeatureStore(path_a), FeatureStore(path_b)
    assert a.header == b.header
    assert a.finished_chunks() == b.finished_chunks() == list(range(a.n_chunks))
    np.testing.assert_array_equal(a.properties, b.properties)
    for index in range(a.n_chunks):
        one, two = a.read_chunk(index), b.read_chunk(index)
        np.testing.assert_array_equal(one.samples, two.samples)
        scale = max(np.abs(one.values).max(), 1e-300)
        np.testing.assert_allclose(one.values, two.values, rtol=0, atol=rtol * scale)

    def names(path):
        return sorted(str(p.relative_to(path)) for p in path.rglob("*"))

    assert names(a.path) == names(b.path)


def rewrite_npz(source, target, edit, *, reseal: bool):
    """Copy a lodekit ``.npz`` to ``target`` after ``edit(header, arrays)`` (both mutable).

    ``reseal=False`` keeps the old checksum (an edit a reader must detect); ``reseal=True``
    recomputes it, as someone who knows the format could, to reach the checks behind it.
    """
    import json

    from lodekit.persistence.header import seal

    with np.load(source) as data:
        arrays = {name: data[name] for name in data.files}
    header = json.loads(arrays.pop("header").tobytes())
    edit(header, arrays)
    if reseal:
        sealed = ("format", "format_version", "lodekit_version", "arrays", "checksum")
        payload = {k: v for k, v in header.items() if k not in sealed}
        header = seal(header["format"], header["format_version"], payload, arrays)
    encoded = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(target, header=encoded, **arrays)
    return target
