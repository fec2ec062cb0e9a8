"""Position and strain gradients of the k-space LODE sum (math.md §4.1), dense and contracted.

With the k-dependent factor F_k of :class:`~lodekit.expansion.kspace.KspaceLayout` (lm sorted
by parity), the k-space coefficients are

    c[i, a, lmn] = sum_k F_k[lmn] {Re | Im}[z_ia(k)],   z_ia(k) = sum_{j in a} exp(i k·(r_i - r_j))

with Re for even l and Im for odd l. The term j = i is a constant, so

    d c[i, a] / d r_j = sum_k F_k k {sin | -cos}(k·(r_i - r_j))   (j in a, j != i)
    d c[i, a] / d r_i = -sum_{j in a, j != i} d c[i, a] / d r_j   (translation invariance).

The dense Jacobian is (centres x atoms) pairs times k times coefficients: what featomic
computes. A model only needs the contraction with an upstream gradient G = dE/dc (a
vector-Jacobian product). Writing E = sum_k sum_ia Re[H_ia(k) P_i(k) conj(rho_a(k))] with
P_i = exp(i k·r_i), rho_a = sum_{j in a} P_j and H = G_even·F_even - i G_odd·F_odd, it is

    dE/dr_i (as a centre)    = -sum_k k Im[P_i sum_a H_ia conj(rho_a)]
    dE/dr_j (as a neighbour) =  sum_k k Im[U_a(j) conj(P_j)],   U_a = sum_i H_ia P_i,

two matrix products per k-chunk: the cost of one evaluation of the coefficients, whatever
the number of atom pairs.

Strain: under r -> (1 + eps) r (positions and cell together) every k·r is unchanged, k ->
(1 - eps^T) k and V -> (1 + tr eps) V, so only F_k moves:

    dF_k / d eps_ab = -delta_ab F_k - k_a dF_k / dk_b,

and d c / d eps is the k-space sum with that factor in place of F_k (one sum per ab), or,
contracted with G, sum_k sum_f dF_k[f] / d eps_ab Z_k[f] with Z_k[f] = sum_ia G_ia[f]
{Re | Im}[P_i conj(rho_a)]: the virial of a model at the cost of one evaluation.
"""

from __future__ import annotations

import numpy as np

from ..basis.radial import RadialBasis
from .kspace import (
    _CHUNK_ELEMENTS,
    KspaceLayout,
    _phase_factors,
    contract_block,
    half_space_kvectors,
    species_indicator,
)

__all__ = [
    "lode_kspace_gradient",
    "lode_kspace_strain_gradient",
    "lode_kspace_strain_vjp",
    "lode_kspace_vjp",
    "strain_from_weights",
]


def _split(layout: KspaceLayout, factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F as (k, even lm x n) and (k, odd lm x n)."""
    n_k = factor.shape[0]
    return (
        factor[:, : layout.n_even].reshape(n_k, -1),
        factor[:, layout.n_even :].reshape(n_k, -1),
    )


def lode_kspace_vjp(
    positions: np.ndarray,
    species_index: np.ndarray,
    n_species: int,
    centres: np.ndarray,
    cell: np.ndarray,
    basis: RadialBasis,
    max_angular: int,
    smearing: float,
    exponent: int,
    k_cutoff: float,
    upstream: np.ndarray,
    with_strain: bool = False,
):
    """sum_{i a lm n} upstream[i, a, lm, n] d c_kspace[i, a, lm, n] / d r_j for every atom j.

    Parameters
    ----------
    positions, species_index, n_species, centres, cell, basis, max_angular, smearing,
    exponent, k_cutoff
        As for :func:`~lodekit.expansion.kspace.lode_kspace_sum`.
    upstream : ndarray, shape (n_centres, n_species, (max_angular+1)^2, n_radial)
        dE/dc for a scalar E (e.g. a linear model's weights).
    with_strain : bool
        Also return dE/d eps (same pass over k: phases and factors are shared).

    Returns
    -------
    ndarray, shape (n_atoms, 3)
        dE/dr_j (units of E per Å); forces are its negative. With ``with_strain``, a tuple
        (that array, dE/d eps of shape (3, 3)).
    """
    n_atoms = len(positions)
    grad = np.zeros((n_atoms, 3))
    strain = np.zeros((3, 3))
    hkl = half_space_kvectors(cell, k_cutoff)
    if len(centres) == 0 or len(hkl) == 0:
        return (grad, strain) if with_strain else grad
    layout = KspaceLayout(cell, basis, max_angular, smearing, exponent)
    frac = positions @ np.linalg.inv(cell)
    indicator = species_indicator(species_index, n_species)
    n_centres = len(centres)
    g_sorted = upstream[:, :, layout.parity, :]
    g = g_sorted.reshape(n_centres * n_species, -1)
    n_even = layout.n_even * basis.size
    g_even, g_odd = g[:, :n_even], g[:, n_even:]

    chunk = max(32, _CHUNK_ELEMENTS // max(n_atoms, n_centres * n_species, g.shape[1]))
    for start in range(0, len(hkl), chunk):
        block = hkl[start : start + chunk]
        if with_strain:
            parts = layout.factor_parts(block)
            kvec = parts["kvec"]
            factor = parts["ylm"][:, :, None] * parts["radial"]
        else:
            kvec, factor = layout.factor(block)
        f_even, f_odd = _split(layout, factor)
        h = (g_even @ f_even.T) - 1j * (g_odd @ f_odd.T)  # (centres x species, k)
        h = h.reshape(n_centres, n_species, len(block))
        phases = _phase_factors(frac, block)  # P_j(k), (atoms, k)
        rho = indicator @ phases  # (species, k)
        centre_phases = phases[centres]
        as_centre = np.imag(centre_phases * np.einsum("iak,ak->ik", h, rho.conj()))
        np.add.at(grad, centres, -(as_centre @ kvec))
        u = np.einsum("iak,ik->ak", h, centre_phases)  # U_a(k)
        grad += np.imag(u[species_index] * phases.conj()) @ kvec
        if with_strain:
            strain += _strain_chunk(layout, parts, factor, centre_phases, rho, g_sorted)
    return (grad, strain) if with_strain else grad


def _strain_chunk(layout, parts, factor, centre_phases, rho, g_sorted) -> np.ndarray:
    """One k-chunk of dE/d eps_ab = sum_k sum_f dF_k[f]/d eps_ab Z_k[f] (module docstring).

    dF/dk_b = d_ylm_b radial + k̂_b ylm d_radial is never formed: with A = sum_n radial Z and
    B = sum_n d_radial Z (per k and lm), sum_f dF_b Z = sum_lm (d_ylm_b A) + k̂_b sum_lm ylm B.
    """
    n_centres = centre_phases.shape[0]
    n_even = layout.n_even
    z = np.zeros(factor.shape)
    for a in range(rho.shape[0]):
        # Z_k[f] = sum_i G_ia[f] {Re | Im}[P_i(k) conj(rho_a(k))]
        weighted = (centre_phases.T @ g_sorted[:, a].reshape(n_centres, -1)).reshape(factor.shape)
        weighted *= rho[a].conj()[:, None, None]
        z[:, :n_even] += weighted[:, :n_even].real
        z[:, n_even:] += weighted[:, n_even:].imag
    return strain_from_weights(parts, z)


def strain_from_weights(parts: dict, z: np.ndarray) -> np.ndarray:
    """sum_k sum_f dF_k[f]/d eps_ab Z_k[f] for weights Z (k, lm sorted by parity, n) and the
    factor pieces ``parts`` of :meth:`KspaceLayout.factor_parts` of the same k-vectors."""
    a_lm = np.einsum("kfn,kfn->kf", parts["radial"], z)
    b_lm = np.einsum("kfn,kfn->kf", parts["d_radial"], z)
    ylm = parts["ylm"]
    along = (
        np.einsum("kbf,kf->kb", parts["d_ylm"], a_lm)
        + parts["unit"] * np.einsum("kf,kf->k", ylm, b_lm)[:, None]
    )
    return -np.eye(3) * np.sum(ylm * a_lm) - parts["kvec"].T @ along


def lode_kspace_gradient(
    positions: np.ndarray,
    species_index: np.ndarray,
    n_species: int,
    centres: np.ndarray,
    cell: np.ndarray,
    basis: RadialBasis,
    max_angular: int,
    smearing: float,
    exponent: int,
    k_cutoff: float,
) -> np.ndarray:
    """Dense Jacobian d c_kspace[i, a, lm, n] / d r_j.

    Returns
    -------
    ndarray, shape (n_centres, n_atoms, 3, n_species, (max_angular+1)^2, n_radial)
        Memory grows as centres x atoms: meant for small structures, tests and featomic's
        gradient layout. Models should use :func:`lode_kspace_vjp`.
    """
    n_atoms = len(positions)
    n_centres = len(centres)
    n_lm = (max_angular + 1) ** 2
    n_rad = basis.size
    hkl = half_space_kvectors(cell, k_cutoff)
    if n_centres == 0 or len(hkl) == 0:
        return np.zeros((n_centres, n_atoms, 3, n_species, n_lm, n_rad))
    layout = KspaceLayout(cell, basis, max_angular, smearing, exponent)
    frac = positions @ np.linalg.inv(cell)
    n_even = layout.n_even * n_rad
    pair = np.zeros((n_centres, n_atoms, 3, n_lm * n_rad))  # parity-sorted lm

    chunk = max(32, _CHUNK_ELEMENTS // max(n_atoms * 3, n_lm * n_rad))
    for start in range(0, len(hkl), chunk):
        block = hkl[start : start + chunk]
        kvec, factor = layout.factor(block)
        f_even, f_odd = _split(layout, factor)
        # F_k k_alpha, (k, 3 x coefficients)
        fk_even = (kvec[:, :, None] * f_even[:, None, :]).reshape(len(block), -1)
        fk_odd = (kvec[:, :, None] * f_odd[:, None, :]).reshape(len(block), -1)
        phases = _phase_factors(frac, block)
        centre_phases = phases[centres]
        for j in range(n_atoms):
            z = centre_phases * phases[j].conj()  # exp(i k·(r_i - r_j)), (centres, k)
            pair[:, j, :, :n_even] += (z.imag @ fk_even).reshape(n_centres, 3, -1)
            pair[:, j, :, n_even:] -= (z.real @ fk_odd).reshape(n_centres, 3, -1)

    natural = np.empty((n_centres, n_atoms, 3, n_lm, n_rad))
    natural[:, :, :, layout.parity] = pair.reshape(n_centres, n_atoms, 3, n_lm, n_rad)
    rows = np.arange(n_centres)
    # a centre's own term is constant: drop it before the translation sum
    natural[rows, centres] = 0.0
    by_species = np.zeros((n_species, n_centres, n_atoms, 3, n_lm, n_rad))
    for a in range(n_species):
        members = species_index == a
        by_species[a][:, members] = natural[:, members]
        by_species[a][rows, centres] -= natural[:, members].sum(axis=1)
    return np.moveaxis(by_species, 0, 3)


def _setup(positions, species_index, n_species, cell, basis, max_angular, smearing, exponent):
    layout = KspaceLayout(cell, basis, max_angular, smearing, exponent)
    frac = positions @ np.linalg.inv(cell)
    return layout, frac, species_indicator(species_index, n_species)


def lode_kspace_strain_gradient(
    positions: np.ndarray,
    species_index: np.ndarray,
    n_species: int,
    centres: np.ndarray,
    cell: np.ndarray,
    basis: RadialBasis,
    max_angular: int,
    smearing: float,
    exponent: int,
    k_cutoff: float,
) -> np.ndarray:
    """d c_kspace[i, a, lm, n] / d eps_ab for a homogeneous deformation r -> (1 + eps) r.

    Returns
    -------
    ndarray, shape (n_centres, 3, 3, n_species, (max_angular+1)^2, n_radial)
        Axis 1 is a, axis 2 is b. The virial of a model is -dE/d eps.
    """
    n_centres = len(centres)
    n_lm = (max_angular + 1) ** 2
    n_rad = basis.size
    hkl = half_space_kvectors(cell, k_cutoff)
    out = np.zeros((n_centres, 3, 3, n_species * n_lm * n_rad))
    if n_centres == 0 or len(hkl) == 0:
        return out.reshape(n_centres, 3, 3, n_species, n_lm, n_rad)
    layout, frac, indicator = _setup(
        positions, species_index, n_species, cell, basis, max_angular, smearing, exponent
    )
    chunk = max(32, _CHUNK_ELEMENTS // max(len(positions), n_species * n_lm * n_rad))
    for start in range(0, len(hkl), chunk):
        block = hkl[start : start + chunk]
        kvec, factor, d_factor = layout.factor_derivative(block)
        phases = _phase_factors(frac, block)
        rho = indicator @ phases
        centre_phases = phases[centres]
        plain = contract_block(centre_phases, rho, factor, layout.n_even)
        for a in range(3):
            out[:, a, a] -= plain
            for b in range(3):
                moved = -kvec[:, a, None, None] * d_factor[:, b]
                out[:, a, b] += contract_block(centre_phases, rho, moved, layout.n_even)
    out = out.reshape(n_centres, 3, 3, n_species, n_lm, n_rad)
    result = np.empty_like(out)
    result[..., layout.parity, :] = out
    return result


def lode_kspace_strain_vjp(
    positions: np.ndarray,
    species_index: np.ndarray,
    n_species: int,
    centres: np.ndarray,
    cell: np.ndarray,
    basis: RadialBasis,
    max_angular: int,
    smearing: float,
    exponent: int,
    k_cutoff: float,
    upstream: np.ndarray,
) -> np.ndarray:
    """sum_{i a lm n} upstream[i, a, lm, n] d c_kspace[i, a, lm, n] / d eps_ab, shape (3, 3).

    ``upstream`` has the shape of the coefficients (n_centres, n_species, lm, n). Computed with
    the position gradient in one pass (:func:`lode_kspace_vjp` with ``with_strain``).
    """
    return lode_kspace_vjp(
        positions,
        species_index,
        n_species,
        centres,
        cell,
        basis,
        max_angular,
        smearing,
        exponent,
        k_cutoff,
        upstream,
        with_strain=True,
    )[1]
