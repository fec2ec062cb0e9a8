"""Exact 2-D Ewald sum of point charges in a slab: periodic along a1, a2, finite along the normal.

The reference for slabs and interfaces (pbc ``(True, True, False)``). No vacuum padding and
no dipole correction: the sum over the in-plane lattice is split with a Gaussian of width
1/(sqrt(2) alpha) (Parry 1975; Heyes, Barber & Clarke 1977; de Leeuw & Perram 1979).

Notation: A = |a1 x a2| the in-plane area, n = (a1 x a2) / A the unit normal, for a pair
r_ij = r_j - r_i its height z_ij = r_ij · n, L the in-plane lattice translations and G the
reciprocal vectors of the 2-D lattice (G · a_k = 2 pi m_k, G in the plane). With the sums over
all ordered pairs (i, j), i = j included:

E / coulomb =
    1/2 sum_{i,j} sum_L' q_i q_j erfc(alpha |r_ij + L|) / |r_ij + L|          (L != 0 when i = j)
  + pi / (2A) sum_{i,j} q_i q_j sum_{G != 0} cos(G · r_ij) / |G| B(|G|, z_ij)
  - pi / A sum_{i,j} q_i q_j [z_ij erf(alpha z_ij) + exp(-alpha^2 z_ij^2) / (alpha sqrt(pi))]
  - alpha / sqrt(pi) sum_i q_i^2,

with B(g, z) = f(g, z) + f(g, -z) and f(g, z) = exp(g z) erfc(g / (2 alpha) + alpha z). The
second line is 1/2 q_i q_j times the potential of a unit charge's Gaussian-screened images,
(pi / A) sum_G e^{i G·rho} / |G| B; the third is the G -> 0 limit of that potential, whose
divergent constant multiplies the squared net charge and so drops for a neutral slab. A net
charge is refused (no neutralising convention for slabs is defined here). The prefactors were
checked numerically against the 3-D Ewald sum of the slab in a tall cell with the
Yeh-Berkowitz correction 2 pi M_z^2 / V, which converges to this sum exponentially in the
vacuum height (tests/reference/test_slab_ewald.py).

Numerics: exp(g z) erfc(x) with x = g / (2 alpha) + alpha z overflows for large g z; since
g z - x^2 = -g^2 / (4 alpha^2) - alpha^2 z^2, it is evaluated as erfcx(x) exp(-g^2/(4 alpha^2)
- alpha^2 z^2) for x >= 0 and as 2 exp(g z) - erfcx(-x) exp(...) for x < 0 (then g z < 0).
dB/dz = g (f(g, z) - f(g, -z)) and d/dz [z erf(alpha z) + ...] = erf(alpha z), so the forces
are analytic derivatives of the same truncated sums.

Strain: dE/d eps under r -> (I + eps) r of the positions and of a1, a2, with alpha, the
cutoffs and the sets of images and G held fixed (as in :func:`lodekit.datasets.ewald.ewald`: the
converged sum does not depend on alpha). The strained G is (I + eps)^-T G less its part along
the new normal (it must stay in the new plane), so that to first order
A -> A (1 + tr eps - n·eps n), z_ij -> z_ij (1 + n·eps n), |G| -> |G| (1 - Ĝ·eps Ĝ) and
G·r_ij -> G·r_ij + z_ij G·(eps + eps^T) n: a shear along the normal slides the layers of
the slab over each other. With E_G, E_0 the reciprocal and G = 0 terms and g_ij their
derivative with respect to r_ij (split into g_par in the plane and g_perp n):

dE/d eps = sum_{pairs, L} (dE/dv) v^T (real space, v = r_ij + L)
  - (E_G + E_0) (I - n n^T)
  + sum_{i<j} z_ij (g_par n^T + n g_par^T + g_perp n n^T)
  - sum_G (dE/d|G|) G G^T / |G|,

with dB/dg = z (f(g, z) - f(g, -z)) - 2 / (alpha sqrt(pi)) exp(-g^2 / (4 alpha^2) - alpha^2
z^2), again free of overflow. An energy that does not change under rotations has a symmetric
dE/d eps; the stress is divided by |det(cell)| as ASE does, so it needs a third cell vector
out of the plane (any such vector: it only sets the volume).

Truncation from ``accuracy``: erfc(alpha r_c) ~ accuracy and exp(-G_c^2 / (4 alpha^2)) ~
accuracy, which also bounds B (B(g, z) <= 2 exp(-g^2 / (4 alpha^2)) for every z). alpha =
sqrt(2 pi / A) balances the two sums: about log(1/accuracy) / 2 in-plane images per pair in
real space and log(1/accuracy) reciprocal vectors (half plane). The reciprocal sum runs over
pairs, O(N^2) per G: fine for reference sizes (hundreds of atoms); the estimated pair terms
are refused above ``max_pairs`` of :data:`lodekit.expansion.limits.WORK_LIMITS`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf, erfc, erfcx

from .._validation import finite_float
from ..errors import InputError, describe
from ..expansion import limits
from ..systems import stress_volume
from .ewald import COULOMB_CONSTANT

__all__ = ["slab_ewald"]

# elements of one chunk of (G or image) x pairs arrays
_CHUNK = 1 << 21


def slab_ewald(
    structure, charges=None, *, accuracy: float = 1e-10, coulomb: float = COULOMB_CONSTANT
) -> dict:
    """Electrostatic energy, forces and stress of point charges in a slab (2-D periodic).

    Parameters
    ----------
    structure : ase.Atoms
        Slab with ``pbc`` exactly ``(True, True, False)``: periodic along the first two cell
        vectors, finite along the normal to them (Å). The third cell vector is not used.
    charges : array_like, shape (n_atoms,), optional
        Charges in e summing to zero; default: the ``initial_charges`` of the atoms.
    accuracy : float
        Relative truncation of both sums: erfc(alpha r_c) and exp(-G_c^2 / 4 alpha^2) equal it.
    coulomb : float
        e^2 / (4 pi eps0) in the wanted units (default eV Å).

    Returns
    -------
    dict
        ``"energy"``: float (eV); ``"forces"``: ndarray, shape (n_atoms, 3), -dE/dr (eV/Å);
        ``"stress"``: ndarray, shape (3, 3), symmetric, dE/d(strain) / |det(cell)| (eV/Å^3,
        ASE's sign and convention; the strain deforms the positions and the two in-plane
        vectors by (I + strain)), only when the third cell vector is out of the plane
        (ASE's volume of a slab is |det(cell)|: with a zero third vector there is none).
    """
    positions, cell, q, accuracy, coulomb = _validated(structure, charges, accuracy, coulomb)
    result = _slab_ewald(positions, cell[:2], q, accuracy, coulomb)
    volume = stress_volume(cell, True)
    virial = result.pop("virial")
    if volume is not None:
        result["stress"] = 0.5 * (virial + virial.T) / volume
    return result


def _validated(structure, charges, accuracy, coulomb):
    for name in ("get_pbc", "get_positions", "get_cell"):
        if not hasattr(structure, name):
            raise InputError(
                f"`structure` is {describe(structure)}; expected an ase.Atoms with pbc "
                "(True, True, False)"
            )
    pbc = np.asarray(structure.get_pbc(), dtype=bool).tolist()
    if pbc != [True, True, False]:
        raise InputError(
            f"`structure` has pbc {pbc}; a slab needs exactly [True, True, False] (periodic "
            "along the first two cell vectors); use lodekit.datasets.ewald for pbc=True"
        )
    positions = np.asarray(structure.get_positions(), dtype=np.float64)
    cell = np.asarray(structure.get_cell(), dtype=np.float64)
    if not (np.all(np.isfinite(positions)) and np.all(np.isfinite(cell))):
        raise InputError("`structure` has non-finite positions or cell; expected finite values")
    in_plane = cell[:2]
    area = np.linalg.norm(np.cross(in_plane[0], in_plane[1]))
    lengths = np.linalg.norm(in_plane, axis=1)
    if not area > 1e-8 * max(1.0, lengths[0] * lengths[1]):
        raise InputError(
            f"`structure` has in-plane cell vectors {in_plane.tolist()} spanning an area of "
            f"{area:.3g} Å^2; the first two cell vectors must be linearly independent"
        )
    if charges is None:
        charges = structure.get_initial_charges()
    try:
        q = np.asarray(charges, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"`charges` is {describe(charges)}; expected an array of floats") from None
    if q.shape != (len(positions),) or not np.all(np.isfinite(q)):
        raise InputError(
            f"`charges` has shape {q.shape}; expected {len(positions)} finite values (one per atom)"
        )
    if abs(q.sum()) > 1e-8 * max(1.0, np.abs(q).sum()):
        raise InputError(
            f"`charges` sum to {q.sum():.6g} e; the slab Ewald sum needs a neutral slab (the "
            "G = 0 term of a charged slab diverges)"
        )
    accuracy = finite_float("accuracy", accuracy)
    if not 1e-16 <= accuracy < 1:
        raise InputError(f"`accuracy` is {accuracy} but must be in [1e-16, 1)")
    coulomb = finite_float("coulomb", coulomb)
    return positions, cell, q, accuracy, coulomb


def _slab_ewald(positions, in_plane, q, accuracy, coulomb) -> dict:
    n_atoms = len(q)
    a1, a2 = in_plane
    normal_raw = np.cross(a1, a2)
    area = np.linalg.norm(normal_raw)
    normal = normal_raw / area
    alpha = np.sqrt(2 * np.pi / area)
    log_acc = -np.log(accuracy)
    r_cut = np.sqrt(log_acc) / alpha
    g_cut = 2 * alpha * np.sqrt(log_acc)

    # coordinates in the basis (a1, a2, n): in-plane fractions s and height z
    basis = np.stack([a1, a2, normal])
    coords = np.linalg.solve(basis.T, positions.T).T
    s, z = coords[:, :2], coords[:, 2]

    # ordered pairs (i, j) with the in-plane part of r_j - r_i wrapped to [-1/2, 1/2)
    ds = s[None, :, :] - s[:, None, :]
    ds -= np.round(ds)
    dz = z[None, :] - z[:, None]
    base = ds @ in_plane + dz[..., None] * normal  # (n, n, 3)

    # in-plane translations that can bring a pair within r_cut: |m_k + s_k| <= r_c / h_k
    heights = area / np.linalg.norm(in_plane[::-1], axis=1)  # between lattice lines
    bounds = np.ceil(r_cut / heights + 0.5).astype(int)
    m = np.stack(
        np.meshgrid(*[np.arange(-b, b + 1) for b in bounds], indexing="ij"), axis=-1
    ).reshape(-1, 2)
    reach = r_cut + 0.5 * (np.linalg.norm(a1) + np.linalg.norm(a2))
    translations = m @ in_plane
    translations = translations[np.linalg.norm(translations, axis=1) <= reach]

    # reciprocal vectors of the 2-D lattice, one of each ±G pair
    b1 = 2 * np.pi * np.cross(a2, normal) / area
    b2 = 2 * np.pi * np.cross(normal, a1) / area
    g_bounds = np.floor(g_cut * np.linalg.norm(in_plane, axis=1) / (2 * np.pi)).astype(int)
    mg = np.stack(
        np.meshgrid(*[np.arange(-b, b + 1) for b in g_bounds], indexing="ij"), axis=-1
    ).reshape(-1, 2)
    first = mg[np.arange(len(mg)), np.argmax(mg != 0, axis=1)]
    mg = mg[first > 0]
    g_vectors = mg @ np.stack([b1, b2])
    g_norm = np.linalg.norm(g_vectors, axis=1)
    keep = g_norm < g_cut
    mg, g_vectors, g_norm = mg[keep], g_vectors[keep], g_norm[keep]

    upper_i, upper_j = np.triu_indices(n_atoms, 1)
    n_terms = float(n_atoms) ** 2 * len(translations) + len(upper_i) * len(g_norm)
    if n_terms > limits.WORK_LIMITS.max_pairs:
        raise InputError(
            f"the slab Ewald sum of {n_atoms} atoms needs about {n_terms:.3g} pair terms "
            f"({len(translations)} in-plane images, {len(g_norm)} reciprocal vectors), above "
            f"the limit max_pairs={limits.WORK_LIMITS.max_pairs:.3g}: use fewer atoms or a "
            "larger `accuracy`; or raise the limit with "
            "lodekit.expansion.limits.work_limits(max_pairs=...)"
        )

    gradient = np.zeros((n_atoms, 3))  # dE/dr_i / coulomb
    virial = np.zeros((3, 3))  # dE/d eps / coulomb

    # real space: 1/2 q_i q_j erfc(a d) / d over ordered pairs and images
    real = 0.0
    qq = q[:, None] * q[None, :]
    for t in translations:
        vectors = base + t
        distance = np.linalg.norm(vectors, axis=-1)
        within = distance < r_cut
        if not np.any(t):
            np.fill_diagonal(within, False)
        if not np.any(within):
            continue
        ii, jj = np.nonzero(within)
        d = distance[ii, jj]
        if d.min() < 1e-8:
            raise InputError(
                f"`structure` has atoms {ii[d.argmin()]} and {jj[d.argmin()]} at the same "
                "place (or at periodic images of each other)"
            )
        v = vectors[ii, jj]
        w = qq[ii, jj]
        screened = erfc(alpha * d) / d
        real += 0.5 * np.sum(w * screened)
        slope = (screened + 2 * alpha / np.sqrt(np.pi) * np.exp(-((alpha * d) ** 2))) / d
        pair = (0.5 * w * -slope / d)[:, None] * v  # d/dv of the term
        virial += pair.T @ v  # a strain maps every image vector v to (I + eps) v
        for axis in range(3):
            gradient[:, axis] += np.bincount(jj, pair[:, axis], minlength=n_atoms)
            gradient[:, axis] -= np.bincount(ii, pair[:, axis], minlength=n_atoms)

    # reciprocal space over the pairs i < j (twice) and i = j (constant); the half plane of
    # G counts each ±G once: factor 2
    pair_s = ds[upper_i, upper_j]  # (p, 2)
    pair_z = dz[upper_i, upper_j]
    pair_q = q[upper_i] * q[upper_j]
    reciprocal = 0.0
    pair_grad = np.zeros((len(upper_i), 3))  # d/dr_ij of the pair's reciprocal terms
    k_virial = np.zeros((3, 3))  # the |G| part of dE/d eps, before `scale`
    norm = 2 / (alpha * np.sqrt(np.pi))
    chunk = max(1, _CHUNK // max(1, len(upper_i)))
    gauss0 = np.exp(-((alpha * pair_z) ** 2))
    for start in range(0, len(g_norm), chunk):
        g = g_norm[start : start + chunk, None]
        gv = g_vectors[start : start + chunk]
        phase = 2 * np.pi * (mg[start : start + chunk] @ pair_s.T)  # (g, p)
        up = _f(g, pair_z[None, :], alpha, gauss0)
        down = _f(g, -pair_z[None, :], alpha, gauss0)
        cos, sin = np.cos(phase), np.sin(phase)
        weight = pair_q / g  # (g, p)
        reciprocal += 2 * np.sum(weight * cos * (up + down))
        pair_grad -= 2 * ((weight * sin * (up + down)).T @ gv)
        pair_grad += 2 * np.sum(pair_q * cos * (up - down), axis=0)[:, None] * normal
        # diagonal i = j: z = 0, cos = 1, B = 2 erfc(g / 2a)
        g0 = g[:, 0]
        diagonal = 2 * erfc(g0 / (2 * alpha))
        reciprocal += np.sum(q @ q * diagonal / g0)
        # d/dg of B / g for the pairs and the diagonal; d|G| / d eps = -G G^T / |G|
        gauss = np.exp(-((g / (2 * alpha)) ** 2)) * gauss0
        slope_b = pair_z * (up - down) - norm * gauss
        by_g = 2 * np.sum(pair_q * cos * (slope_b / g - (up + down) / g**2), axis=1)
        by_g += q @ q * (-norm * np.exp(-((g0 / (2 * alpha)) ** 2)) / g0 - diagonal / g0**2)
        k_virial -= (gv * (by_g / g0)[:, None]).T @ gv
    # sum over G != 0 is twice the half plane; pairs i < j count twice except the diagonal
    scale = np.pi / (2 * area) * 2
    reciprocal *= scale
    pair_grad *= scale
    k_virial *= scale

    # G = 0 term, pairs i < j twice; the diagonal gives -pi/A q_i^2 / (alpha sqrt(pi))
    h = pair_z * erf(alpha * pair_z) + gauss0 / (alpha * np.sqrt(np.pi))
    zero = -np.pi / area * (2 * np.sum(pair_q * h) + q @ q / (alpha * np.sqrt(np.pi)))
    pair_grad += (-2 * np.pi / area * pair_q * erf(alpha * pair_z))[:, None] * normal
    # strain: the 1/A of both terms, the heights z_ij and the phases G·r_ij (module docstring)
    perpendicular = pair_grad @ normal
    parallel = pair_grad - perpendicular[:, None] * normal
    slide = (pair_z[:, None] * parallel).sum(axis=0)
    virial += k_virial - (reciprocal + zero) * (np.eye(3) - np.outer(normal, normal))
    virial += np.outer(slide, normal) + np.outer(normal, slide)
    virial += np.sum(pair_z * perpendicular) * np.outer(normal, normal)
    for axis in range(3):
        gradient[:, axis] += np.bincount(upper_j, pair_grad[:, axis], minlength=n_atoms)
        gradient[:, axis] -= np.bincount(upper_i, pair_grad[:, axis], minlength=n_atoms)

    self_energy = -alpha / np.sqrt(np.pi) * (q @ q)
    energy = float(coulomb * (real + reciprocal + zero + self_energy))
    return {"energy": energy, "forces": -coulomb * gradient, "virial": coulomb * virial}


def _f(g, z, alpha, gauss0):
    """exp(g z) erfc(g / (2 alpha) + alpha z) without overflow; ``gauss0`` is
    exp(-alpha^2 z^2) of the same z (shape (p,)), g of shape (n_g, 1)."""
    x = g / (2 * alpha) + alpha * z
    gauss = np.exp(-((g / (2 * alpha)) ** 2)) * gauss0
    positive = x >= 0
    out = np.where(positive, erfcx(np.abs(x)) * gauss, 0.0)
    # x < 0 only for g z < -g^2 / (2 alpha^2) < 0: exp(g z) is small there
    negative_part = 2 * np.exp(np.minimum(g * z, 0.0)) - erfcx(np.abs(x)) * gauss
    return np.where(positive, out, negative_part)
