"""Ewald summation of point-charge energies (the reference of the point-charge experiment).

E = 1/2 sum'_{i,j,L} q_i q_j erfc(a r)/r + (2 pi / V) sum_{k != 0} exp(-k^2 / 4a^2) / k^2 |S(k)|^2
    - a / sqrt(pi) sum_i q_i^2 - pi Q^2 / (2 V a^2),

times e^2 / (4 pi eps0) = 14.399645 eV Å: tin-foil boundary conditions, a neutralising
background for a net charge Q. Real-space pairs come from vesin; the reciprocal sum has its own
k-vectors and structure factors, written independently of the LODE k-space code that this
sum is used to check. The cost is O(N^1.5) at the balanced splitting a = sqrt(pi) (N / V^2)^(1/6).
:func:`ewald` adds the analytic forces and stress of the same truncated sums.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfc

from ..errors import InputError
from ..neighbors import neighbor_pairs
from ..systems import System

__all__ = ["COULOMB_CONSTANT", "ewald", "ewald_energy"]

#: e^2 / (4 pi eps0) in eV Å (math.md §1).
COULOMB_CONSTANT = 14.399645

_K_CHUNK = 4096


def ewald_energy(structure, charges=None, *, accuracy: float = 1e-10, coulomb=COULOMB_CONSTANT):
    """Electrostatic energy (eV) of point charges in a periodic cell of any shape, or in a
    slab (two periodic axes: the exact 2-D sum of :func:`~lodekit.datasets.slab_ewald.slab_ewald`,
    for neutral slabs).

    Parameters
    ----------
    structure : ase.Atoms or System
        Periodic structure (Å): pbc True on all three axes, or on exactly two (a slab).
    charges : array_like, shape (n_atoms,), optional
        Charges in e; default: the ``initial_charges`` of an ase.Atoms.
    accuracy : float
        Relative truncation of both sums: erfc(a r_c) and exp(-k_c^2 / 4a^2) equal it.
    coulomb : float
        e^2 / (4 pi eps0) in the wanted units (default eV Å).
    """
    system, q = _validated(structure, charges, accuracy)
    if system.is_slab:
        return _slab(system, q, accuracy, coulomb)["energy"]
    return _ewald(system, q, accuracy, coulomb, derivatives=False)["energy"]


def ewald(structure, charges=None, *, accuracy: float = 1e-10, coulomb=COULOMB_CONSTANT) -> dict:
    """Electrostatic energy, forces and stress of point charges in a periodic cell or a slab.

    The derivatives are analytic derivatives of the same truncated sums as
    :func:`ewald_energy`, whose value ``energy`` equals to the last bit. Slabs (two periodic
    axes, neutral) take the exact 2-D sum of :func:`~lodekit.datasets.slab_ewald.slab_ewald`,
    whose stress is given only when the cell has a volume.

    Parameters
    ----------
    structure : ase.Atoms or System
        Periodic structure (Å): pbc True on all three axes, or on exactly two (a slab).
    charges : array_like, shape (n_atoms,), optional
        Charges in e; default: the ``initial_charges`` of an ase.Atoms.
    accuracy : float
        Relative truncation of both sums: erfc(a r_c) and exp(-k_c^2 / 4a^2) equal it.
    coulomb : float
        e^2 / (4 pi eps0) in the wanted units (default eV Å).

    Returns
    -------
    dict
        ``"energy"``: float (eV); ``"forces"``: ndarray, shape (n_atoms, 3), -dE/dr (eV/Å);
        ``"stress"``: ndarray, shape (3, 3), symmetric, (1/V) dE/d(strain) (eV/Å^3, ASE's
        sign and convention: positions and cell both deformed by (I + strain)).
    """
    system, q = _validated(structure, charges, accuracy)
    if system.is_slab:
        return _slab(system, q, accuracy, coulomb)
    return _ewald(system, q, accuracy, coulomb, derivatives=True)


def _slab(system: System, q: np.ndarray, accuracy: float, coulomb: float) -> dict:
    """:func:`~lodekit.datasets.slab_ewald.slab_ewald` of a slab whose lattice may be in any
    two cell rows (it takes them first; the order of the rows changes neither the sums nor
    |det(cell)|)."""
    import ase

    from .slab_ewald import slab_ewald

    rows = [axis for axis in range(3) if system.pbc[axis]] + [system.pbc.index(False)]
    atoms = ase.Atoms(
        numbers=system.numbers,
        positions=system.positions,
        cell=system.cell[rows],
        pbc=[True, True, False],
    )
    return slab_ewald(atoms, q, accuracy=accuracy, coulomb=coulomb)


def _validated(structure, charges, accuracy: float) -> tuple[System, np.ndarray]:
    if isinstance(structure, System):
        system = structure
        if charges is None:
            raise InputError("`charges` is required when `structure` is a lodekit.System")
    else:
        system = System.from_ase(structure)
        if charges is None:
            charges = structure.get_initial_charges()
    if system.is_molecule:
        raise InputError(
            f"`structure` has pbc {list(system.pbc)}: the Ewald sum needs a periodic cell "
            "(pbc=True) or a slab (two periodic axes)"
        )
    q = np.asarray(charges, dtype=np.float64)
    if q.shape != (len(system),) or not np.all(np.isfinite(q)):
        raise InputError(
            f"`charges` has shape {q.shape}; expected {len(system)} finite values (one per atom)"
        )
    if not 1e-16 <= accuracy < 1:
        raise InputError(f"`accuracy` is {accuracy} but must be in [1e-16, 1)")
    return system, q


def _ewald(system: System, q: np.ndarray, accuracy: float, coulomb: float, derivatives: bool):
    # The energy lines are the former energy-only code, operation for operation, so energies
    # stay bit-identical and ewald() equals ewald_energy(); the derivative lines only add.
    volume = system.volume
    alpha = np.sqrt(np.pi) * (len(q) / volume**2) ** (1 / 6)
    log_acc = -np.log(accuracy)
    r_cut = np.sqrt(log_acc) / alpha
    k_cut = 2 * alpha * np.sqrt(log_acc)

    i, j, vectors = neighbor_pairs(system, r_cut)
    distance = np.linalg.norm(vectors, axis=1)
    real = 0.5 * np.sum(q[i] * q[j] * erfc(alpha * distance) / distance)

    hkl = _half_sphere(system.cell, k_cut)
    recip = 2 * np.pi * np.linalg.inv(system.cell).T
    frac = system.positions @ np.linalg.inv(system.cell)
    reciprocal = 0.0
    if derivatives:
        # alpha, the cutoffs and the k-vector set are held fixed while differentiating:
        # alpha depends on the volume, but at convergence the total energy (background term
        # included) does not depend on alpha, so dE/dalpha dalpha/dstrain is within the
        # truncation error; the sets of pairs and k-vectors change only where a term is
        # already below `accuracy`.
        gradient = np.zeros((len(q), 3))  # dE/dr_i
        virial = np.zeros((3, 3))  # dE/dstrain
        # ordered pair (i, j), v = r_j + shift - r_i: d/dv of 1/2 q_i q_j erfc(a r) / r,
        # from the slope d/dr of erfc(a r) / r
        slope = (
            -erfc(alpha * distance) / distance
            - 2 * alpha / np.sqrt(np.pi) * np.exp(-((alpha * distance) ** 2))
        ) / distance
        pair = (0.5 * q[i] * q[j] * slope / distance)[:, None] * vectors
        for axis in range(3):
            gradient[:, axis] += np.bincount(j, pair[:, axis], minlength=len(q))
            gradient[:, axis] -= np.bincount(i, pair[:, axis], minlength=len(q))
        # a strain maps every pair vector v to (I + strain) v
        virial += pair.T @ vectors
        k_gradient = np.zeros((len(q), 3))
        k_virial = np.zeros((3, 3))
    for start in range(0, len(hkl), _K_CHUNK):
        block = hkl[start : start + _K_CHUNK]
        k2 = np.einsum("ij,ij->i", block @ recip, block @ recip)
        phases = np.exp(2j * np.pi * (frac @ block.T))
        structure_factor = q @ phases
        # the half space counts each ±k pair once: 4 pi / V instead of 2 pi / V
        weight = np.exp(-k2 / (4 * alpha**2)) / k2
        density = weight * np.abs(structure_factor) ** 2
        reciprocal += np.sum(density)
        if derivatives:
            k = block @ recip
            # d|S|^2 / dr_i = -2 q_i k Im(e^{i k r_i} S*)
            sine = phases.imag * structure_factor.real - phases.real * structure_factor.imag
            k_gradient -= 2 * q[:, None] * ((sine * weight) @ k)
            # a strain maps k to (I + strain)^-T k: d(k^2) = -2 k (strain k); at fixed |S|^2,
            # d(weight)/d(k^2) = -weight (1/(4 a^2) + 1/k^2); the 1/V term is added below
            k_virial += (k * (2 * density * (1 / (4 * alpha**2) + 1 / k2))[:, None]).T @ k
    reciprocal *= 4 * np.pi / volume
    self_energy = -alpha / np.sqrt(np.pi) * np.sum(q * q)
    background = -np.pi * q.sum() ** 2 / (2 * volume * alpha**2)
    energy = float(coulomb * (real + reciprocal + self_energy + background))
    if not derivatives:
        return {"energy": energy}
    gradient += k_gradient * (4 * np.pi / volume)
    # the reciprocal and background terms scale as 1/V at fixed k and alpha: dV = V tr(strain);
    # the self term does not depend on the cell
    virial += k_virial * (4 * np.pi / volume) - (reciprocal + background) * np.eye(3)
    virial = 0.5 * (virial + virial.T)
    return {
        "energy": energy,
        "forces": -coulomb * gradient,
        "stress": coulomb * virial / volume,
    }


def _half_sphere(cell: np.ndarray, k_cut: float) -> np.ndarray:
    """Integer triplets n != 0 with |n · 2 pi inv(cell)| < k_cut, one of each ±n pair (n_k, 3)."""
    # |n_i| = |k · a_i| / (2 pi) <= k_cut |a_i| / (2 pi)
    bound = np.floor(k_cut * np.linalg.norm(cell, axis=1) / (2 * np.pi)).astype(int)
    axes = [np.arange(-b, b + 1) for b in bound]
    n = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    # the first non-zero index positive picks one vector of each ±n pair and drops n = 0
    first = n[np.arange(len(n)), np.argmax(n != 0, axis=1)]
    n = n[first > 0]
    k = n @ (2 * np.pi * np.linalg.inv(cell).T)
    return n[np.einsum("ij,ij->i", k, k) < k_cut * k_cut]
