"""LODE sums of slabs: periodic along two lattice vectors, isolated along the normal.

For a slab with in-plane lattice (a1, a2), unit normal n (along a1 x a2) and cell area A, the
field of species a around centre i, expanded as in 3-D (math.md §4.1), is

    c^{i,a}_{nlm} = (4 pi / A) sum_G (1 / 2 pi) ∫ dk_z ĝ_p(k) I_nl(k) Y_lm(k̂)
                    Re[i^l sum_{j in a} exp(i k·(r_i - r_j))],      k = G + k_z n,

a sum over the in-plane reciprocal lattice G and an integral along the normal. It has two parts.

**G != 0.** The k_z integrand is smooth and Gaussian-damped. The trapezoid rule with step
2 pi / L is, term by term, the 3-D sum over the lines (h, k) != 0 of the stretched cell
(a1, a2, L n); its error is the field of the periodic copies at distances >= L - t along n (t
the atoms' height range), which for a line of in-plane wavenumber g decays as exp(-g (L - t))
(the sheet of wavevector G is a solution of Laplace's equation off the plane: its field falls
off as exp(-g |z|) for every exponent p, up to a power of |z|). Each line gets its own L from
that bound (:func:`line_length`), and lines of similar L share one stretched cell, a *tier*
(:func:`slab_tiers`): one :class:`~lodekit.expansion.kspace.problem.KspaceProblem` with the
lines as its ``miller`` indices, evaluated by any k-space backend, gradients and strain
included.

**G = 0, the normal line.** The field averaged over the plane, a function of the height only:
with Z_ia(q) = sum_{j in a} exp(i q (z_i - z_j)), z = n·r,

    c^{i,a}_{nlm} = (4 / A) Y_lm(n) ∫_0^∞ dq ĝ_p(q) I_nl(q) Re[i^l Z_ia(q)],

computed by Gauss-Legendre quadrature (:class:`NormalLine`). For p = 1 and 2 the integral
diverges at q = 0 by a term N_a ĝ_p(q) I_n0(0) that depends on nothing but the number of atoms:
the planar average of a charged sheet's potential grows without bound (as -2 pi |z| / A for
p = 1, as -2 pi ln|z| / A for p = 2). lodekit's convention (docs/conventions.md) subtracts
N_a ĝ_p(q; smearing) I_n0(0): it sets to zero the planar-average field of each smeared sheet
of atoms in the sheet's own plane, so that the line is the expansion of a definite potential.
Neutral combinations sum_a q_a c^a (sum_a q_a N_a = 0) do not depend on the convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ...basis.spherical_harmonics import real_spherical_harmonics_with_gradients
from ...density import fourier_transform, fourier_transform_difference
from .layout import species_indicator

__all__ = [
    "NormalLine",
    "SlabGeometry",
    "Tier",
    "line_constants",
    "line_length",
    "slab_tiers",
]

#: Exponents whose normal line diverges at q = 0 and takes the convention of the module
#: docstring.
CONVENTION_EXPONENTS = (1, 2)

#: Ratio of the lengths of consecutive tiers: lines whose own length is within this factor
#: share a stretched cell (a few per cent more k-vectors than one length per line).
TIER_RATIO = 1.15

#: Step (Å) to which a slab's height range is rounded up (:attr:`SlabGeometry.thickness`).
THICKNESS_STEP = 2.0

#: Shortest stretch (Å) of a tier beyond the slab's thickness.
MIN_MARGIN = 1.0

#: Gauss-Legendre nodes per uniform panel of the normal line's quadrature, and the phase span
#: (radians) of exp(i q z) over one panel: 16 nodes integrate exp(i x) over 2 pi to ~1e-20
#: ((S/2)^(2n) / (2n)!).
_NODES_PER_PANEL = 16
_PANEL_PHASE = 2 * np.pi

#: Nodes per graded panel [a, 2a] near q = 0: the |q|^k and ln q terms there are analytic in
#: the Bernstein ellipse of parameter 3 + sqrt 8 of the panel, so 10 nodes reach ~1e-15.
_NODES_PER_GRADED_PANEL = 10

#: The graded panels halve down to this fraction of the first uniform panel.
_SMALLEST_PANEL = 1e-12


@dataclass(frozen=True, eq=False)
class SlabGeometry:
    """The plane of a slab, in the frame its sums use.

    Attributes
    ----------
    lattice : ndarray, shape (2, 3)
        In-plane lattice vectors (Å), reduced (short and nearly orthogonal).
    normal : ndarray, shape (3,)
        Unit normal, along lattice[0] x lattice[1].
    area : float
        Cell area, Å^2.
    heights : ndarray, shape (n_atoms,)
        n·r of every atom minus their mean (Å).
    """

    lattice: np.ndarray
    normal: np.ndarray
    area: float
    heights: np.ndarray

    @classmethod
    def from_system(cls, system) -> SlabGeometry:
        lattice, normal, area = system.slab_frame()
        lattice = _reduced_pair(lattice)
        if np.cross(lattice[0], lattice[1]) @ normal < 0:
            lattice = lattice[::-1].copy()
        z = system.positions @ normal
        return cls(lattice, normal, area, z - z.mean())

    @property
    def thickness(self) -> float:
        """Height range of the atoms rounded up to a multiple of :data:`THICKNESS_STEP` (Å).

        The stretched lengths and the normal line's quadrature follow from it: rounded, they
        stay the same while atoms move within the step, so that the computed coefficients are
        one smooth function of the positions there (their analytic gradients are then exact,
        and molecular dynamics sees no accuracy-level jitter)."""
        return THICKNESS_STEP * float(np.ceil(np.ptp(self.heights) / THICKNESS_STEP + 1e-9))

    @property
    def plane_heights(self) -> np.ndarray:
        """Heights of the two in-plane cell vectors over each other (Å): the 2-D analogue of
        a cell's heights."""
        lengths = np.linalg.norm(self.lattice, axis=1)
        return self.area / lengths[::-1]

    def stretched_cell(self, length: float) -> np.ndarray:
        """(a1, a2, length n), rows in Å."""
        return np.vstack([self.lattice, length * self.normal])

    def reciprocal(self) -> np.ndarray:
        """In-plane reciprocal vectors b1, b2 (rows, 1/Å): a_i·b_j = 2 pi delta_ij."""
        return 2.0 * np.pi * np.linalg.pinv(self.lattice).T


def _reduced_pair(lattice: np.ndarray) -> np.ndarray:
    """Gauss-Lagrange reduction of a 2-D basis (the same lattice, shortest vectors)."""
    a, b = (np.array(v, dtype=np.float64) for v in lattice)
    for _ in range(1000):
        if a @ a > b @ b:
            a, b = b, a
        multiple = np.rint(a @ b / (a @ a))
        if multiple == 0:
            break
        candidate = b - multiple * a
        if candidate @ candidate >= (1 - 1e-2) * (b @ b):
            break
        b = candidate
    out = np.array([a, b])
    return lattice if np.array_equal(out, lattice) else out


def in_plane_lines(geometry: SlabGeometry, k_cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """In-plane Miller pairs (h, k) != 0 of one half plane with |G| < k_cutoff.

    Returns
    -------
    (ndarray of int (n_lines, 2), ndarray (n_lines,))
        The pairs, sorted lexicographically, and |G| = |h b1 + k b2| (1/Å).
    """
    n_max = np.floor(k_cutoff * np.linalg.norm(geometry.lattice, axis=1) / (2 * np.pi))
    h = np.arange(0, int(n_max[0]) + 1)
    k = np.arange(-int(n_max[1]), int(n_max[1]) + 1)
    hk = np.stack(np.meshgrid(h, k, indexing="ij"), axis=-1).reshape(-1, 2)
    hk = hk[(hk[:, 0] > 0) | ((hk[:, 0] == 0) & (hk[:, 1] > 0))]
    g = np.linalg.norm(hk @ geometry.reciprocal(), axis=1)
    keep = g < k_cutoff
    return hk[keep], g[keep]


@lru_cache(maxsize=32)
def _basis_profile(basis, max_angular: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(r grid, max over (l, n) of r^2 |R_nl(r)| on it, reach): the reach is the largest r
    where that envelope exceeds 1e-16 of its maximum (Å)."""
    r_max = 3.0 * basis.radius + 10.0 * basis.decay_width
    r = np.linspace(0.0, r_max, 4001)[1:]  # R_nl may be singular in log form at r = 0
    envelope = (r[:, None, None] ** 2 * np.abs(basis.functions(r, max_angular))).max(axis=(1, 2))
    significant = np.flatnonzero(envelope > 1e-16 * envelope.max())
    return r, envelope, float(r[significant[-1]])


def line_length(
    g: np.ndarray, geometry: SlabGeometry, basis, max_angular: int, n_atoms: int, budget: float
) -> np.ndarray:
    """Stretched-cell length L (Å) that each in-plane line of wavenumber g needs.

    The trapezoid error of line g is bounded by the field of the copies of the slab at
    distances >= L - t: 2 x (2 pi n_atoms / (A g)) exp(-g (L - t)) E(g), where
    E(g) = ∫ r^2 |R_nl(r)| cosh(g r) dr (largest over l, n) is the most a basis function
    picks up from a field growing as exp(g z) across it, and the factor 2 counts the copies
    above and below. L is the smallest length that brings this below ``budget`` (the
    coefficients' units).

    The amplitude 2 pi / (A g) is that of p = 1; for other exponents the sheet's field is
    (2 pi / Gamma(p/2)) (g / 2z)^nu K_nu(g z) / A, nu = p/2 - 1, which differs from it by
    powers of g and z. The bound is conservative by the factor n_atoms (a structure factor at
    its largest) and by taking the largest basis function everywhere: measured against
    brute-force lattice sums (tests/reference/test_slab_lode.py, p = 3, 4, 6 at accuracy
    1e-10) the slab sums are exact to 1e-13.
    """
    r, envelope, _ = _basis_profile(basis, max_angular)
    dr = r[1] - r[0]
    g = np.asarray(g, dtype=np.float64)
    picked = (envelope[None, :] * np.cosh(np.outer(g, r))).sum(axis=1) * dr
    bound = 4.0 * np.pi * n_atoms / (geometry.area * g) * picked
    margin = np.log(np.maximum(bound / budget, 1.0)) / g
    return geometry.thickness + margin


@dataclass(frozen=True, eq=False)
class Tier:
    """In-plane lines that share one stretched cell.

    Attributes
    ----------
    length : float
        The stretched cell's length along the normal (Å).
    lines : ndarray of int, shape (n_lines, 2)
        In-plane Miller pairs (h, k).
    wavenumbers : ndarray, shape (n_lines,)
        |G| of each line (1/Å).
    """

    length: float
    lines: np.ndarray
    wavenumbers: np.ndarray

    def _m_max(self, k_cutoff: float) -> np.ndarray:
        """Largest |m| of each line: |2 pi m / length| < sqrt(k_cutoff^2 - g^2), floored."""
        reach = np.sqrt(np.maximum(k_cutoff**2 - self.wavenumbers**2, 0.0))
        return np.floor(reach * self.length / (2 * np.pi)).astype(int)

    def miller(self, geometry: SlabGeometry, k_cutoff: float) -> np.ndarray:
        """Miller indices (n_k, 3) of the stretched cell: every line (h, k) with each m such
        that |G + 2 pi m n / length| < k_cutoff, sorted lexicographically."""
        rows = []
        for pair, m_max in zip(self.lines, self._m_max(k_cutoff), strict=True):
            m = np.arange(-m_max, m_max + 1)
            rows.append(np.column_stack([np.full((len(m), 2), pair), m]))
        miller = np.concatenate(rows)
        miller = miller[np.lexsort((miller[:, 2], miller[:, 1], miller[:, 0]))]
        kvec = miller @ (2.0 * np.pi * np.linalg.inv(geometry.stretched_cell(self.length)).T)
        return miller[np.einsum("ij,ij->i", kvec, kvec) < k_cutoff**2]

    def kvector_count(self, k_cutoff: float) -> float:
        """About how many k-vectors :meth:`miller` holds."""
        return float(np.sum(2 * self._m_max(k_cutoff) + 1))

    def merged(self, other: Tier) -> Tier:
        """Both tiers' lines in the longer of the two cells."""
        return Tier(
            max(self.length, other.length),
            np.concatenate([self.lines, other.lines]),
            np.concatenate([self.wavenumbers, other.wavenumbers]),
        )


def slab_tiers(geometry: SlabGeometry, k_cutoff: float, lengths_of_lines) -> list[Tier]:
    """Group the in-plane lines into stretched cells.

    Parameters
    ----------
    geometry : SlabGeometry
    k_cutoff : float
        1/Å.
    lengths_of_lines : callable
        g (n_lines,) -> the length L (Å) each line needs (:func:`line_length`).

    Returns
    -------
    list of Tier
        Shortest first. Tier lengths are the thickness plus MIN_MARGIN x TIER_RATIO^j: a grid
        fixed in Å, so that a small deformation moves no line to another tier (unless it sits
        on an edge), and each line's tier is at least as long as it needs.
    """
    hk, g = in_plane_lines(geometry, k_cutoff)
    if len(hk) == 0:
        return []
    margin = np.asarray(lengths_of_lines(g), dtype=np.float64) - geometry.thickness
    index = np.ceil(np.log(np.maximum(margin, MIN_MARGIN) / MIN_MARGIN) / np.log(TIER_RATIO))
    index = index.astype(int)
    return [
        Tier(
            geometry.thickness + MIN_MARGIN * TIER_RATIO ** int(j),
            hk[index == j],
            g[index == j],
        )
        for j in np.unique(index)
    ]


# ---------------------------------------------------------------------------- normal line
def _gauss_legendre_panels(edges: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of Gauss-Legendre rules of ``n_nodes`` on each [edges[i], edges[i+1]]."""
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    lo, hi = edges[:-1, None], edges[1:, None]
    nodes = 0.5 * (hi - lo) * x[None] + 0.5 * (hi + lo)
    weights = 0.5 * (hi - lo) * w[None]
    return nodes.ravel(), weights.ravel()


def line_quadrature(q_max: float, panel: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights on (0, q_max]: uniform panels of width <= ``panel`` (1/Å) and, below
    the first, panels halving towards 0 (the integrands have |q|^k and ln q terms there),
    down to 1e-12 of a panel, the last one reaching 0."""
    first = min(panel, q_max)
    n_uniform = max(1, int(np.ceil((q_max - first) / panel)))
    uniform = np.linspace(first, q_max, n_uniform + 1) if q_max > first else np.array([first])
    n_graded = int(np.ceil(np.log2(1.0 / _SMALLEST_PANEL)))
    graded = np.concatenate([[0.0], first * 0.5 ** np.arange(n_graded, 0, -1), [first]])
    near, w_near = _gauss_legendre_panels(graded, _NODES_PER_GRADED_PANEL)
    far, w_far = _gauss_legendre_panels(uniform, _NODES_PER_PANEL)  # none when q_max <= first
    return np.concatenate([near, far]), np.concatenate([w_near, w_far])


def _l_signs(max_angular: int) -> tuple[np.ndarray, np.ndarray]:
    """Re[i^l D] = s_re Re D + s_im Im D: (s_re, s_im) for l = 0..max_angular."""
    l = np.arange(max_angular + 1) % 4
    return np.array([1.0, 0.0, -1.0, 0.0])[l], np.array([0.0, -1.0, 0.0, 1.0])[l]


def line_constants(
    basis, max_angular: int, smearing: float, split: float, exponent: int
) -> np.ndarray:
    """K[l, n]: the q-integrals of the normal line that do not depend on positions.

    With Re[i^l Z] = Re[i^l (Z - N_a)] + N_a Re[i^l], the line is
    ∫ ĝ(q; split) I_nl Re[i^l (Z - N_a)] dq + N_a K[l, n] with

        K[l, n] = Re[i^l] ∫_0^∞ ĝ(q; split) I_nl(q) dq                       (l > 0, or l = 0
                                                                            and p not 1, 2),
        K[0, n] = ∫_0^∞ [ĝ(q; split) I_n0(q) - ĝ(q; smearing) I_n0(0)] dq     (p = 1, 2: the
                                                                            convention),

    the latter written as ∫ [(ĝ_split - ĝ_smearing) I_n0(q) + ĝ_smearing (I_n0(q) - I_n0(0))],
    each part free of cancellation at small q (I_n0(q) - I_n0(0) from the radial moments
    there).

    Returns
    -------
    ndarray, shape (max_angular + 1, n_radial), units of ĝ I (Å^(9/2 - p)) per Å.
    """
    _, _, reach = _basis_profile(basis, max_angular)
    sigma = min(smearing, split)
    q_max = np.sqrt(2.0 * 40.0) / sigma  # exp(-40) of the Gaussian damping
    q, w = line_quadrature(q_max, _PANEL_PHASE / (reach + sigma * sigma * q_max + 1.0))
    g_split = fourier_transform(q, split, exponent)
    integral = basis.kspace_integral(q, max_angular)  # (q, l, n)
    s_re, _ = _l_signs(max_angular)
    constants = s_re[:, None] * np.einsum("q,q,qln->ln", w, g_split, integral)
    if exponent in CONVENTION_EXPONENTS:
        # -fourier_transform_difference(q, smearing, split) = ĝ_split - ĝ_smearing
        difference = -fourier_transform_difference(q, smearing, split, exponent)
        g_full = fourier_transform(q, smearing, exponent)
        change = _integral_change(basis, q, integral[:, 0, :], reach)
        integrand = difference[:, None] * integral[:, 0, :] + g_full[:, None] * change
        constants[0] = w @ integrand
    return constants


def _integral_change(basis, q: np.ndarray, integral0: np.ndarray, reach: float) -> np.ndarray:
    """I_n0(q) - I_n0(0), shape (n_q, n_radial): the Taylor series of j_0 in the radial
    moments where q reach < 0.7 (I_n0(q) - I_n0(0) = sum_m (-1)^m q^2m M_2m / (2m+1)!), the
    difference of the integrals above."""
    order = 24
    moments = basis.moments(order, 0)[:, 0, :]  # (order + 1, n)
    small = q * reach < 0.7
    out = integral0 - basis.kspace_integral(np.zeros(1), 0)[0, 0][None, :]
    qs = q[small]
    series = np.zeros((len(qs), integral0.shape[1]))
    factorial = 1.0
    for m in range(1, order // 2 + 1):
        factorial *= (2 * m) * (2 * m + 1)
        series += ((-1) ** m * qs ** (2 * m) / factorial)[:, None] * moments[2 * m][None, :]
    out[small] = series
    return out


class NormalLine:
    """The G = 0 line of one slab's sum (module docstring): values and gradients.

    Parameters
    ----------
    geometry : SlabGeometry
    species_index : ndarray of int, shape (n_atoms,)
    n_species : int
    centres : ndarray of int, shape (n_centres,)
    basis, max_angular
        As for the k-space problem.
    split : float
        Smearing (Å) of the part computed in k-space.
    exponent : int
    k_cutoff : float
        Upper end of the q integral (1/Å), the k-space cutoff of the plan.
    constants : ndarray, shape (max_angular + 1, n_radial)
        :func:`line_constants` of the calculator's smearing and this split.
    weights : ndarray, shape (n_atoms,), or None
        Weight of every atom's density (None: 1): Z_ia(q) = sum_{j in a} w_j exp(i q z_ij),
        and N_a of the convention is the channel's total weight.
    """

    def __init__(
        self,
        geometry: SlabGeometry,
        species_index,
        n_species,
        centres,
        basis,
        max_angular,
        split,
        exponent,
        k_cutoff,
        constants,
        weights=None,
    ):
        self.geometry = geometry
        self.weights = weights
        self.species_index = np.asarray(species_index)
        self.n_species = int(n_species)
        self.centres = np.asarray(centres)
        self.max_angular = int(max_angular)
        self.n_radial = basis.size
        self.constants = constants
        _, _, reach = _basis_profile(basis, max_angular)
        span = geometry.thickness + reach + split * split * k_cutoff + 1.0
        self.q, quadrature = line_quadrature(k_cutoff, _PANEL_PHASE / span)
        radial = fourier_transform(self.q, split, exponent)[:, None, None] * basis.kspace_integral(
            self.q, max_angular
        )
        self.weighted = quadrature[:, None, None] * radial  # (q, l, n)
        self.ylm, self.d_ylm = real_spherical_harmonics_with_gradients(
            geometry.normal[None], max_angular
        )
        self.ylm, self.d_ylm = self.ylm[0], self.d_ylm[0]  # (lm,), (3, lm)
        self.l_of_lm = np.repeat(np.arange(max_angular + 1), 2 * np.arange(max_angular + 1) + 1)
        self.counts = np.bincount(
            self.species_index, weights=weights, minlength=self.n_species
        ).astype(float)

    @property
    def prefactor(self) -> float:
        return 4.0 / self.geometry.area

    def _chunks(self):
        step = max(16, (1 << 20) // max(1, len(self.centres) * self.n_species))
        for start in range(0, len(self.q), step):
            yield slice(start, start + step)

    def radial_part(self) -> np.ndarray:
        """F[i, a, l, n] + N_a K[l, n]: the line without Y_lm(n) and 4 / A."""
        z = self.geometry.heights
        z_centres = z[self.centres]
        indicator = species_indicator(self.species_index, self.n_species, self.weights)
        s_re, s_im = _l_signs(self.max_angular)
        n_centres, n_species = len(self.centres), self.n_species
        out = np.zeros((n_centres * n_species, (self.max_angular + 1) * self.n_radial))
        for part in self._chunks():
            q = self.q[part]
            # exp(i x) - 1 = -2 sin^2(x / 2) + i sin x: small at small q, no cancellation
            x_c, x_j = np.outer(z_centres, q), np.outer(z, q)
            alpha = -2.0 * np.sin(0.5 * x_c) ** 2 + 1j * np.sin(x_c)  # (centres, q)
            beta = -2.0 * np.sin(0.5 * x_j) ** 2 - 1j * np.sin(x_j)  # (atoms, q)
            b = indicator @ beta  # sum_{j in a} (exp(-i q z_j) - 1), (species, q)
            # Z - N = (1 + alpha)(N + B) - N = alpha (N + B) + B
            d = alpha[:, None, :] * (self.counts[:, None] + b)[None] + b[None]
            d = d.reshape(n_centres * n_species, len(q))
            w = self.weighted[part]
            out += d.real @ (s_re[None, :, None] * w).reshape(len(q), -1)
            out += d.imag @ (s_im[None, :, None] * w).reshape(len(q), -1)
        out = out.reshape(n_centres, n_species, self.max_angular + 1, self.n_radial)
        out += self.counts[None, :, None, None] * self.constants[None, None]
        return out

    def value(self) -> np.ndarray:
        """The line's coefficients, (n_centres, n_species, (max_angular+1)^2, n_radial)."""
        radial = self.radial_part()
        return self.prefactor * self.ylm[None, None, :, None] * radial[:, :, self.l_of_lm, :]

    def _projected(self, upstream: np.ndarray) -> np.ndarray:
        """(4 / A) sum_m upstream[i, a, lm, n] Y_lm(n): (centres, species, l, n)."""
        out = np.zeros((*upstream.shape[:2], self.max_angular + 1, self.n_radial))
        np.add.at(
            out.transpose(2, 0, 1, 3),
            self.l_of_lm,
            (upstream * self.ylm[None, None, :, None]).transpose(2, 0, 1, 3),
        )
        return self.prefactor * out

    def height_gradient(self, upstream: np.ndarray) -> np.ndarray:
        """dE/dz_j (n_atoms,) of E = sum upstream · value()."""
        z = self.geometry.heights
        n_atoms = len(z)
        g = self._projected(upstream)  # (centres, species, l, n)
        n_centres, n_species = g.shape[:2]
        il = (1j) ** np.arange(self.max_angular + 1)
        indicator = species_indicator(self.species_index, self.n_species, self.weights)
        grad = np.zeros(n_atoms)
        flat_g = g.reshape(n_centres * n_species, -1)
        for part in self._chunks():
            q = self.q[part]
            # H[i, a, q] = sum_{l n} G~ W i^l; E = sum Re[H Z]
            h = flat_g @ (self.weighted[part] * il[None, :, None]).reshape(len(q), -1).T
            h = h.reshape(n_centres, n_species, len(q))
            p = np.exp(1j * np.outer(z, q))  # (atoms, q)
            p_c = p[self.centres]
            s = indicator @ p  # sum_j exp(i q z_j), (species, q)
            z_ia = p_c[:, None, :] * s.conj()[None]  # Z_ia(q)
            # as a centre: dZ/dz_i = i q Z
            np.add.at(grad, self.centres, np.real(np.einsum("iaq,iaq,q->i", h, z_ia, 1j * q)))
            # as a neighbour: dZ_ia/dz_j = -i q exp(i q (z_i - z_j))
            u = np.einsum("iaq,iq->aq", h, p_c)  # sum_i H exp(i q z_i)
            neighbour = np.real(np.einsum("jq,jq,q->j", u[self.species_index], p.conj(), -1j * q))
            grad += neighbour if self.weights is None else neighbour * self.weights
        return grad

    def weight_vjp(self, upstream: np.ndarray) -> np.ndarray:
        """dE/dw_j (n_atoms,) of E = sum upstream · value().

        The line is linear in the weights: d(Z_ia - N_a)/dw_j = exp(i q z_ij) - 1 =
        alpha_i + beta_j + alpha_i beta_j (alpha_i = exp(i q z_i) - 1, beta_j =
        exp(-i q z_j) - 1, each small at small q, as in :meth:`radial_part`), so with
        A, B = sum_{l n} G~ {s_re | s_im} W per centre, channel and node,

            dE/dw_j = sum_q [S0 + Re beta_j (sum_i A + S0) + Im beta_j (sum_i B + S1)]
                      + sum_i G~ · K,

        S0 = sum_i (A Re alpha_i + B Im alpha_i), S1 = sum_i (B Re alpha_i - A Im alpha_i),
        all at the channel of j."""
        z = self.geometry.heights
        g = self._projected(upstream)  # (centres, species, l, n), 4 / A and Y_lm(n) in
        n_centres, n_species = g.shape[:2]
        s_re, s_im = _l_signs(self.max_angular)
        flat_g = g.reshape(n_centres * n_species, -1)
        index = self.species_index
        out = np.zeros(len(z))
        for part in self._chunks():
            q = self.q[part]
            w = self.weighted[part]
            a = flat_g @ (s_re[None, :, None] * w).reshape(len(q), -1).T
            b = flat_g @ (s_im[None, :, None] * w).reshape(len(q), -1).T
            a = a.reshape(n_centres, n_species, len(q))
            b = b.reshape(n_centres, n_species, len(q))
            x_c, x_j = np.outer(z[self.centres], q), np.outer(z, q)
            re_alpha, im_alpha = -2.0 * np.sin(0.5 * x_c) ** 2, np.sin(x_c)  # (centres, q)
            re_beta, im_beta = -2.0 * np.sin(0.5 * x_j) ** 2, -np.sin(x_j)  # (atoms, q)
            s0 = np.einsum("iaq,iq->aq", a, re_alpha) + np.einsum("iaq,iq->aq", b, im_alpha)
            s1 = np.einsum("iaq,iq->aq", b, re_alpha) - np.einsum("iaq,iq->aq", a, im_alpha)
            total = s0[index] + re_beta * (a.sum(axis=0) + s0)[index]
            total += im_beta * (b.sum(axis=0) + s1)[index]
            out += total.sum(axis=1)
        out += np.einsum("ialn,ln->a", g, self.constants)[index]
        return out

    def vjp(self, upstream: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dE/dr (n_atoms, 3) and dE/d eps (3, 3) of E = sum upstream · value().

        Under r -> (1 + eps) r (positions and in-plane lattice): heights change by
        dz_ij = z_ij n_a n_b eps_ab, the area by A (delta_ab - n_a n_b) eps_ab and the normal
        by dn_c = -n_a (delta_cb - n_c n_b) eps_ab.
        """
        n = self.geometry.normal
        dz = self.height_gradient(upstream)
        gradient = dz[:, None] * n[None, :]
        radial = self.radial_part()
        energy = self.prefactor * np.sum(
            upstream * self.ylm[None, None, :, None] * radial[:, :, self.l_of_lm, :]
        )
        # sum over lm n of upstream * dY_lm/dn * (4/A) radial: the rotation of the normal
        turn = self.prefactor * np.einsum(
            "ialn,xl,ialn->x", upstream, self.d_ylm, radial[:, :, self.l_of_lm, :]
        )
        projector = np.eye(3) - np.outer(n, n)
        strain = (
            np.outer(n, n) * np.sum(self.geometry.heights * dz)
            - energy * projector
            - np.outer(n, projector @ turn)
        )
        return gradient, strain

    def jacobian(self, with_strain: bool):
        """Dense d c / d r_j (n_centres, n_atoms, 3, n_species, lm, n) and, with
        ``with_strain``, d c / d eps (n_centres, 3, 3, n_species, lm, n)."""
        z = self.geometry.heights
        n = self.geometry.normal
        n_centres, n_atoms = len(self.centres), len(z)
        n_l = self.max_angular + 1
        s_re, s_im = _l_signs(self.max_angular)
        # d P / d z_j = -i q P for P = exp(i q z_ij), so
        # d Re[i^l P] / d z_j = q (s_re Im P - s_im Re P) with the signs of Re[i^l P]
        dz_pair = np.zeros((n_centres * n_atoms, n_l * self.n_radial))
        z_ij = (z[self.centres][:, None] - z[None, :]).ravel()
        for part in self._chunks():
            q = self.q[part]
            x = np.outer(z_ij, q)
            w = self.weighted[part] * q[:, None, None]
            dz_pair += np.sin(x) @ (s_re[None, :, None] * w).reshape(len(q), -1)
            dz_pair -= np.cos(x) @ (s_im[None, :, None] * w).reshape(len(q), -1)
        dz_pair = dz_pair.reshape(n_centres, n_atoms, n_l, self.n_radial)
        rows = np.arange(n_centres)
        dz_pair[rows, self.centres] = 0.0  # the centre's own term is constant
        per_species = np.zeros((n_centres, n_atoms, self.n_species, n_l, self.n_radial))
        if self.weights is not None:
            dz_pair *= self.weights[None, :, None, None]
        per_species[:, np.arange(n_atoms), self.species_index] = dz_pair
        per_species[rows, self.centres] -= per_species.sum(axis=1)
        # (centres, atoms, species, lm, n), Y_lm and 4/A included
        dz = (
            self.prefactor * per_species[..., self.l_of_lm, :] * self.ylm[None, None, None, :, None]
        )
        positions = dz[:, :, None] * n[None, None, :, None, None, None]
        if not with_strain:
            return positions, None
        radial = self.radial_part()[:, :, self.l_of_lm, :]
        value = self.prefactor * self.ylm[None, None, :, None] * radial
        projector = np.eye(3) - np.outer(n, n)
        moved = np.einsum("j,ijalm->ialm", z, dz)
        turn = self.prefactor * np.einsum("xl,ialn->ixaln", self.d_ylm, radial)
        turn = np.einsum("yx,ixaln->iyaln", projector, turn)
        strain = (
            np.outer(n, n)[None, :, :, None, None, None] * moved[:, None, None]
            - projector[None, :, :, None, None, None] * value[:, None, None]
            - n[None, :, None, None, None, None] * turn[:, None]
        )
        return positions, strain
