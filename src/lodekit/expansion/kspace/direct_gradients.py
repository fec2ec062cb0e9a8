"""Position and strain gradients of the k-space LODE sum (math.md §4.1), dense and contracted.

With the k-dependent factor F_k of :class:`~lodekit.expansion.kspace.layout.KspaceLayout` (lm sorted
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

from ..workspace import scratch
from .layout import CHUNK_ELEMENTS, KspaceLayout, contract_block, phase_factors
from .problem import KspaceProblem

__all__ = [
    "add_position_terms",
    "kspace_gradient",
    "kspace_strain_gradient",
    "kspace_vjp",
    "kspace_weight_vjp",
    "strain_from_projections",
    "strain_from_weights",
    "weighted_pair_terms",
]


def _split(layout: KspaceLayout, factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F as (k, even lm x n) and (k, odd lm x n)."""
    n_k = factor.shape[0]
    return (
        factor[:, : layout.n_even].reshape(n_k, -1),
        factor[:, layout.n_even :].reshape(n_k, -1),
    )


def kspace_vjp(problem: KspaceProblem, upstream: np.ndarray, with_strain: bool = False):
    """sum_{i a lm n} upstream[i, a, lm, n] d c_kspace[i, a, lm, n] / d r_j for every atom j.

    Parameters
    ----------
    problem : KspaceProblem
    upstream : ndarray, shape (n_centres, n_species, (max_angular+1)^2, n_radial)
        dE/dc for a scalar E (e.g. a linear model's weights).
    with_strain : bool
        Also compute dE/d eps (same pass over k: phases and factors are shared).

    Returns
    -------
    (ndarray (n_atoms, 3), ndarray (3, 3) or None)
        dE/dr_j (units of E per Å; forces are its negative) and, with ``with_strain``,
        dE/d eps.
    """
    n_atoms = problem.n_atoms
    n_species = problem.n_species
    centres = problem.centres
    grad = np.zeros((n_atoms, 3))
    strain = np.zeros((3, 3)) if with_strain else None
    hkl = problem.kvectors()
    if len(centres) == 0 or len(hkl) == 0:
        return grad, strain
    layout = problem.layout()
    frac = problem.fractional()
    indicator = problem.indicator()
    n_centres = len(centres)
    g_sorted = upstream[:, :, layout.parity, :]
    g = g_sorted.reshape(n_centres * n_species, -1)
    n_even = layout.n_even * problem.n_radial
    g_even, g_odd = g[:, :n_even], g[:, n_even:]

    chunk = max(32, CHUNK_ELEMENTS // max(n_atoms, n_centres * n_species, g.shape[1]))
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
        phases = phase_factors(frac, block)  # P_j(k), (atoms, k)
        rho = indicator @ phases  # (species, k)
        centre_phases = add_position_terms(grad, problem, h, phases, rho, kvec)
        if with_strain:
            strain += _strain_chunk(layout, parts, factor, centre_phases, rho, g_sorted)
    return grad, strain


def add_position_terms(grad, problem: KspaceProblem, h, phases, rho, kvec) -> np.ndarray:
    """Add one k-chunk's dE/dr (module docstring) to ``grad`` (n_atoms, 3), from H (centres,
    species, k), the phases P_j (atoms, k), rho_a (species, k) and the k-vectors (k, 3).
    Returns the centres' phases (centres, k)."""
    centres = problem.centres
    centre_phases = phases[centres]
    as_centre = np.imag(centre_phases * np.einsum("iak,ak->ik", h, rho.conj()))
    np.add.at(grad, centres, -(as_centre @ kvec))
    u = np.einsum("iak,ik->ak", h, centre_phases)  # U_a(k)
    neighbour = np.imag(u[problem.species_index] * phases.conj()) @ kvec
    if problem.weights is not None:
        neighbour *= problem.weights[:, None]  # rho_a carries w_j exp(i k·r_j)
    grad += neighbour
    return centre_phases


def kspace_weight_vjp(problem: KspaceProblem, upstream: np.ndarray) -> np.ndarray:
    """dE/dw_j (n_atoms,) of E = sum upstream · c_kspace: with rho_a = sum_{j in a} w_j P_j,
    dE/dw_j = sum_k Re[U_a(k) conj(P_j(k))] (a the channel of j, U_a as in :func:`kspace_vjp`),
    one more product per k-chunk of what the position gradient forms."""
    n_atoms, n_species = problem.n_atoms, problem.n_species
    centres = problem.centres
    out = np.zeros(n_atoms)
    hkl = problem.kvectors()
    if len(centres) == 0 or len(hkl) == 0:
        return out
    layout = problem.layout()
    frac = problem.fractional()
    n_centres = len(centres)
    g = upstream[:, :, layout.parity, :].reshape(n_centres * n_species, -1)
    n_even = layout.n_even * problem.n_radial
    g_even, g_odd = g[:, :n_even], g[:, n_even:]
    chunk = max(32, CHUNK_ELEMENTS // max(n_atoms, n_centres * n_species, g.shape[1]))
    for start in range(0, len(hkl), chunk):
        block = hkl[start : start + chunk]
        _, factor = layout.factor(block)
        f_even, f_odd = _split(layout, factor)
        h = (g_even @ f_even.T) - 1j * (g_odd @ f_odd.T)
        h = h.reshape(n_centres, n_species, len(block))
        phases = phase_factors(frac, block)
        u = np.einsum("iak,ik->ak", h, phases[centres])
        out += np.real(u[problem.species_index] * phases.conj()).sum(axis=1)
    return out


def _strain_chunk(layout, parts, factor, centre_phases, rho, g_sorted) -> np.ndarray:
    """One k-chunk of dE/d eps_ab = sum_k sum_f dF_k[f]/d eps_ab Z_k[f] (module docstring).

    dF/dk_b = d_ylm_b radial + k̂_b ylm d_radial is never formed: with A = sum_n radial Z and
    B = sum_n d_radial Z (per k and lm), sum_f dF_b Z = sum_lm (d_ylm_b A) + k̂_b sum_lm ylm B.
    """
    n_centres, n_k = centre_phases.shape
    n_species = rho.shape[0]
    n_even = layout.n_even
    # Z_k[f] = sum_i G_ia[f] {Re | Im}[P_i(k) conj(rho_a(k))]. With C = sum_i cos_ik G_ia and
    # S = sum_i sin_ik G_ia (one real product for every species: a complex product against
    # the real G would do twice the multiply-adds) and rho_a = A + i B:
    # Re[(C + i S)(A - i B)] = C A + S B, Im[...] = S A - C B.
    trig = np.concatenate([centre_phases.real.T, centre_phases.imag.T])  # (2 k, centres)
    g = g_sorted.reshape(n_centres, -1)
    both = (trig @ g).reshape(2, n_k, n_species, *factor.shape[1:])
    cos_part, sin_part = both[0], both[1]
    a_re = rho.real.T[:, :, None, None]  # (k, species, 1, 1)
    b_im = rho.imag.T[:, :, None, None]
    z = np.empty(factor.shape)
    z[:, :n_even] = np.sum(cos_part[:, :, :n_even] * a_re + sin_part[:, :, :n_even] * b_im, axis=1)
    z[:, n_even:] = np.sum(sin_part[:, :, n_even:] * a_re - cos_part[:, :, n_even:] * b_im, axis=1)
    return strain_from_weights(parts, z)


def strain_from_weights(parts: dict, z: np.ndarray) -> np.ndarray:
    """sum_k sum_f dF_k[f]/d eps_ab Z_k[f] for weights Z (k, lm sorted by parity, n) and the
    factor pieces ``parts`` of :meth:`KspaceLayout.factor_parts` of the same k-vectors."""
    a_lm = np.einsum("kfn,kfn->kf", parts["radial"], z)
    b_lm = np.einsum("kfn,kfn->kf", parts["d_radial"], z)
    return strain_from_projections(parts["kvec"], parts["ylm"], parts["d_ylm"], a_lm, b_lm)


def strain_from_projections(kvec, ylm, d_ylm, a_lm, b_lm) -> np.ndarray:
    """dE/d eps (3, 3) from A = sum_n radial Z and B = sum_n d_radial Z (k, lm sorted by
    parity) of :func:`strain_from_weights`, with the k-vectors (k, 3), signed Y_lm (k, lm) and
    its gradient (k, 3, lm)."""
    unit = kvec / np.sqrt(np.einsum("kb,kb->k", kvec, kvec))[:, None]
    along = np.einsum("kbf,kf->kb", d_ylm, a_lm) + unit * np.einsum("kf,kf->k", ylm, b_lm)[:, None]
    return -np.eye(3) * np.sum(ylm * a_lm) - kvec.T @ along


def kspace_gradient(problem: KspaceProblem, shells=None) -> np.ndarray:
    """Dense Jacobian d c_kspace[i, a, lm, n] / d r_j.

    ``shells``, the :class:`~lodekit.expansion.kspace.shells.ShellTables` of the problem's
    cell, sums the pair terms shell by shell when every atom is a centre.

    Returns
    -------
    ndarray, shape (n_centres, n_atoms, 3, n_species, (max_angular+1)^2, n_radial)
        Memory grows as centres x atoms: meant for small structures, tests and featomic's
        gradient layout. Models should use :func:`kspace_vjp`.
    """
    n_atoms = problem.n_atoms
    n_centres, n_species, n_lm, n_rad = problem.coefficient_shape
    centres, species_index = problem.centres, problem.species_index
    hkl = problem.kvectors()
    if n_centres == 0 or len(hkl) == 0:
        return np.zeros((n_centres, n_atoms, 3, n_species, n_lm, n_rad))
    layout = problem.layout()
    frac = problem.fractional()
    n_even = layout.n_even * n_rad
    # each atom's pair term goes straight to its own species' channel of the output, the
    # layout callers keep (no (centres, atoms) intermediate, each the size of the output)
    out = np.zeros((n_centres, n_atoms, 3, n_species, n_lm, n_rad))
    lm_order = np.argsort(layout.parity)  # parity-sorted lm -> natural lm
    # sum over the atoms of each species, for the centre's translation term
    by_species = np.zeros((n_species, n_centres, 3, n_lm * n_rad))
    centre_row = np.full(n_atoms, -1)
    centre_row[centres] = np.arange(n_centres)
    pair = np.empty((n_centres, 3, n_lm * n_rad))  # parity-sorted lm

    chunk = max(32, CHUNK_ELEMENTS // max(n_atoms * 3, n_lm * n_rad))
    symmetric = np.array_equal(centres, np.arange(n_atoms))
    blocks = []
    for start in range(0, len(hkl) if not (symmetric and shells is not None) else 0, chunk):
        block = hkl[start : start + chunk]
        kvec, factor = layout.factor(block)
        f_even, f_odd = _split(layout, factor)
        # F_k k_alpha, (k, 3 x coefficients)
        fk_even = (kvec[:, :, None] * f_even[:, None, :]).reshape(len(block), -1)
        fk_odd = (kvec[:, :, None] * f_odd[:, None, :]).reshape(len(block), -1)
        phases = phase_factors(frac, block)
        blocks.append((fk_even, fk_odd, phases, phases[centres]))
    if symmetric:
        if shells is not None:
            pair_terms = _shell_pair_terms(shells, layout, frac, n_rad)
        else:
            pair_terms = _block_pair_terms(blocks, n_even)
        _symmetric_pairs(out, by_species, pair_terms, species_index, n_even, lm_order)
        j_range = range(0)
    else:
        j_range = range(n_atoms)
    for j in j_range:
        pair[:] = 0.0
        for fk_even, fk_odd, phases, centre_phases in blocks:
            z = centre_phases * phases[j].conj()  # exp(i k·(r_i - r_j)), (centres, k)
            pair[:, :, :n_even] += (z.imag @ fk_even).reshape(n_centres, 3, -1)
            pair[:, :, n_even:] -= (z.real @ fk_odd).reshape(n_centres, 3, -1)
        if centre_row[j] >= 0:
            pair[centre_row[j]] = 0.0  # a centre's own term is constant
        a = species_index[j]
        by_species[a] += pair
        out[:, j, :, a] = pair.reshape(n_centres, 3, n_lm, n_rad)[:, :, lm_order]
    rows = np.arange(n_centres)
    for a in range(n_species):
        out[rows, centres, :, a] -= by_species[a].reshape(n_centres, 3, n_lm, n_rad)[:, :, lm_order]
    return out


def _symmetric_pairs(out, by_species, pair_terms, species_index, n_even, lm_order) -> None:
    """The pair terms of :func:`kspace_gradient` when every atom is a centre, from the pairs
    i > j only: exp(i k·(r_j - r_i)) is the conjugate of exp(i k·(r_i - r_j)), so the term of
    (j, i) is that of (i, j) with its even-l part (from the imaginary part) negated. Half the
    products of the general loop. ``pair_terms(j, pair)`` writes the terms of the pairs
    (i > j, j) into ``pair`` (rows i > j, 3, lm sorted by parity x n)."""
    n_atoms, n_species = out.shape[1], out.shape[3]
    n_lm, n_rad = out.shape[4], out.shape[5]
    for j in range(n_atoms - 1):
        below = np.arange(j + 1, n_atoms)
        pair = scratch("gradient.pair", (len(below), 3, n_lm * n_rad))  # rows i > j
        pair_terms(j, pair)
        a = species_index[j]
        by_species[a, j + 1 :] += pair
        out[j + 1 :, j, :, a] = pair.reshape(len(below), 3, n_lm, n_rad)[:, :, lm_order]
        pair[:, :, :n_even] *= -1.0  # now the terms of (j, i)
        species_below = species_index[j + 1 :]
        out[j, below, :, species_below] = pair.reshape(len(below), 3, n_lm, n_rad)[:, :, lm_order]
        for b in range(n_species):
            by_species[b, j] += pair[species_below == b].sum(axis=0)


def _pair_phases(cos, sin, j: int):
    """(Re, Im) of exp(i k·(r_i - r_j)) for the atoms i > j, (rows, k) each, in kept work
    arrays: (cos_i cos_j + sin_i sin_j) + i (sin_i cos_j - cos_i sin_j)."""
    rows, n_k = cos.shape[0] - j - 1, cos.shape[1]
    real = scratch("gradient.real", (rows, n_k))
    imag = scratch("gradient.imag", (rows, n_k))
    work = scratch("gradient.work", (rows, n_k))
    np.multiply(sin[j + 1 :], cos[j], out=imag)
    imag -= np.multiply(cos[j + 1 :], sin[j], out=work)
    np.multiply(cos[j + 1 :], cos[j], out=real)
    real += np.multiply(sin[j + 1 :], sin[j], out=work)
    return real, imag


def _block_pair_terms(blocks, n_even: int):
    """``pair_terms`` of :func:`_symmetric_pairs` from k-chunks of F_k k_alpha."""
    # cos and sin of k·r as contiguous arrays: Re and Im of exp(i k·(r_i - r_j)) are then
    # made in kept work arrays, ready for BLAS, without a complex temporary per atom
    parts = [
        (fk_even, fk_odd, np.ascontiguousarray(phases.real), np.ascontiguousarray(phases.imag))
        for fk_even, fk_odd, phases, _ in blocks
    ]

    def pair_terms(j: int, pair: np.ndarray) -> None:
        pair.fill(0.0)
        rows = pair.shape[0]
        for fk_even, fk_odd, cos, sin in parts:
            real, imag = _pair_phases(cos, sin, j)
            product = scratch("gradient.even", (rows, fk_even.shape[1]))
            np.matmul(imag, fk_even, out=product)
            pair[:, :, :n_even] += product.reshape(rows, 3, -1)
            product = scratch("gradient.odd", (rows, fk_odd.shape[1]))
            np.matmul(real, fk_odd, out=product)
            pair[:, :, n_even:] -= product.reshape(rows, 3, -1)

    return pair_terms


def _shell_pair_terms(shells, layout: KspaceLayout, frac: np.ndarray, n_rad: int):
    """``pair_terms`` of :func:`_symmetric_pairs` shell by shell: F_k k_alpha = Y_lm(k̂)
    k_alpha R_ln(|k|), so the pair sum over the k of a shell is one product against
    Y k_alpha (no radial index), and the radial factor is applied once per shell: about
    n_radial times fewer multiply-adds (cells whose k-vectors share norms)."""
    hkl, bounds = shells.hkl, shells.starts
    kvec = hkl @ layout.recip
    n_even_lm = layout.n_even
    n_lm = shells.ylm.shape[1]
    # (Y_lm k_alpha)^T as (lm x 3, k): rows (lm, alpha), the odd part negated (its term is
    # minus Re[...] F k, module docstring)
    yk = shells.ylm[:, :, None] * kvec[:, None, :]
    yk[:, n_even_lm:] *= -1.0
    yk_t = np.ascontiguousarray(yk.reshape(len(hkl), -1).T)
    split = 3 * n_even_lm
    phases = phase_factors(frac, hkl)
    cos, sin = np.ascontiguousarray(phases.real), np.ascontiguousarray(phases.imag)
    n_shells = shells.n_shells
    l_blocks = layout.l_blocks()

    def pair_terms(j: int, pair: np.ndarray) -> None:
        rows = pair.shape[0]
        real, imag = _pair_phases(cos, sin, j)
        # per shell, (lm x 3, m_s) @ (m_s, rows): projected (shells, lm, 3, rows)
        projected = scratch("gradient.shells", (n_shells, 3 * n_lm, rows))
        for s in range(n_shells):
            lo, hi = int(bounds[s]), int(bounds[s + 1])
            np.matmul(yk_t[:split, lo:hi], imag[:, lo:hi].T, out=projected[s, :split])
            np.matmul(yk_t[split:, lo:hi], real[:, lo:hi].T, out=projected[s, split:])
        projected = projected.reshape(n_shells, n_lm, 3 * rows)
        terms = pair.reshape(rows, 3, n_lm, n_rad)
        for l, a, b in l_blocks:
            # the shells' projections times R_ln(k_s): ((lm, alpha, rows), shells) @ (shells, n)
            block = projected[:, a:b].reshape(n_shells, -1)
            product = (block.T @ shells.radial[:, l, :]).reshape(b - a, 3, rows, n_rad)
            terms[:, :, a:b, :] = product.transpose(2, 1, 0, 3)

    return pair_terms


def weighted_pair_terms(
    positions: np.ndarray, centres: np.ndarray, weights: np.ndarray | None
) -> np.ndarray:
    """A dense Jacobian d c[i] / d r_j (n_centres, n_atoms, 3, ...) of unit-weight pair terms
    turned into that of weighted ones, in place: the term of atom j != i scales by w_j, and the
    centre's own row, minus the sum of the others (translation invariance), is rebuilt from
    them. Unchanged when ``weights`` is None."""
    if weights is None:
        return positions
    rows = np.arange(len(centres))
    positions[rows, centres] = 0.0
    positions *= weights.reshape(1, -1, *([1] * (positions.ndim - 2)))
    positions[rows, centres] = -positions.sum(axis=1)
    return positions


def kspace_strain_gradient(problem: KspaceProblem) -> np.ndarray:
    """d c_kspace[i, a, lm, n] / d eps_ab for a homogeneous deformation r -> (1 + eps) r.

    Returns
    -------
    ndarray, shape (n_centres, 3, 3, n_species, (max_angular+1)^2, n_radial)
        Axis 1 is a, axis 2 is b. The virial of a model is -dE/d eps.
    """
    n_centres, n_species, n_lm, n_rad = problem.coefficient_shape
    centres = problem.centres
    hkl = problem.kvectors()
    out = np.zeros((n_centres, 3, 3, n_species * n_lm * n_rad))
    if n_centres == 0 or len(hkl) == 0:
        return out.reshape(n_centres, 3, 3, n_species, n_lm, n_rad)
    layout, frac, indicator = problem.layout(), problem.fractional(), problem.indicator()
    chunk = max(32, CHUNK_ELEMENTS // max(problem.n_atoms, n_species * n_lm * n_rad))
    for start in range(0, len(hkl), chunk):
        block = hkl[start : start + chunk]
        kvec, factor, d_factor = layout.factor_derivative(block)
        phases = phase_factors(frac, block)
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
