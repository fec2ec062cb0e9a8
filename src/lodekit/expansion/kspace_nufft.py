"""The k-space LODE sum by non-uniform FFTs: O(N log N) for large cells (finufft).

The direct sum (:mod:`lodekit.expansion.kspace`) costs centres x k-vectors x coefficients, and
at fixed density and smearing the number of k-vectors grows with the volume: N^2 overall.
Written per coefficient channel f = (a, l, m, n), the same sum is

    c[i, f] = Re sum_{k in half} V_f(k) exp(i k·r_i),
    V_f(k) = F_k[lmn] conj(rho_a(k)) (even l),  -i F_k[lmn] conj(rho_a(k)) (odd l),

with rho_a(k) = sum_{j in a} exp(i k·r_j) (F_k of :class:`~lodekit.expansion.kspace.KspaceLayout`,
which holds the parity signs and the factor 2 of the half sphere). Both are non-uniform FFTs on
the grid of Miller indices: rho_a is a type-1 transform (atoms -> modes), and each channel a
type-2 transform (modes -> centres). Filling the full grid with the Hermitian extension
V(-k) = conj(V(k)) makes the type-2 result real, 2 c[i, f], so two channels share one complex
transform (the second as its imaginary part). Cost: channels x (grid log grid + atoms x w^3)
with the spreading width w set by the tolerance; memory: a few grids at a time, never an
(atoms x k) array.

The transforms are accurate to a relative tolerance ``eps`` of the l2 norm of their outputs;
:func:`nufft_tolerance` converts an absolute accuracy of the coefficients into one.
"""

from __future__ import annotations

import numpy as np

from ..basis.radial import RadialBasis
from .kspace import KspaceLayout, half_space_kvectors, species_indicator

__all__ = ["lode_kspace_sum_nufft", "lode_kspace_vjp_nufft", "nufft_available"]

#: Largest number of complex grid values held for the channel transforms at once (16 B each).
_GRID_BUDGET = 1 << 25

#: Channel pairs transformed per finufft call.
_BATCH = 16

#: Smallest tolerance finufft accepts in double precision.
MIN_EPS = 1e-14


def nufft_available() -> bool:
    """Whether finufft can be imported (``pip install finufft``)."""
    try:
        import finufft  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        return False
    return True


def _grid_points(positions: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, ...]:
    """x_d = 2 pi f_d wrapped into [-pi, pi): k·r = hkl·x for k = hkl @ (2 pi inv(cell).T)."""
    frac = positions @ np.linalg.inv(cell)
    frac = frac - np.floor(frac + 0.5)
    x = 2.0 * np.pi * frac
    return tuple(np.ascontiguousarray(x[:, d]) for d in range(3))


def _setup(
    hkl,
    positions,
    species_index,
    n_species,
    centres,
    cell,
    basis,
    max_angular,
    smearing,
    exponent,
    eps,
    n_threads,
):
    """What both transforms need: the grid, the layout of F_k, the points of all atoms and of
    the centres, and conj(rho_a(k)) on the half sphere, rho_a = sum_{j in a} exp(+i k·r_j)."""
    grid = _HalfGrid(hkl, eps, n_threads)
    layout = KspaceLayout(cell, basis, max_angular, smearing, exponent)
    points = _grid_points(positions, cell)
    centre_points = tuple(p[centres] for p in points)
    conj_rho = grid.sums(points, species_indicator(species_index, n_species)).conj()
    return grid, layout, points, centre_points, conj_rho


def lode_kspace_sum_nufft(
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
    eps: float,
    n_threads: int = 0,
) -> np.ndarray:
    """The same sum as :func:`~lodekit.expansion.kspace.lode_kspace_sum`, by NUFFTs.

    Parameters
    ----------
    positions, species_index, n_species, centres, cell, basis, max_angular, smearing,
    exponent, k_cutoff
        As for ``lode_kspace_sum``.
    eps : float
        Relative tolerance of every transform (finufft's ``eps``, >= 1e-14).
    n_threads : int
        Threads of finufft (0: its default, all cores).

    Returns
    -------
    ndarray, shape (n_centres, n_species, (max_angular+1)^2, n_radial)
    """
    n_lm = (max_angular + 1) ** 2
    n_rad = basis.size
    n_centres = len(centres)
    out = np.zeros((n_centres, n_species, n_lm, n_rad))
    hkl = half_space_kvectors(cell, k_cutoff)
    if n_centres == 0 or len(hkl) == 0:
        return out
    grid, layout, _, centre_points, conj_rho = _setup(
        hkl,
        positions,
        species_index,
        n_species,
        centres,
        cell,
        basis,
        max_angular,
        smearing,
        exponent,
        eps,
        n_threads,
    )

    _, factor = layout.factor(hkl)  # (k, lm sorted by parity, n)
    phase = np.where(np.arange(n_lm) < layout.n_even, 1.0, -1j)
    n_channels = n_species * n_lm * n_rad
    result = np.empty((n_channels, n_centres))
    step = 2 * _BATCH
    for first in range(0, n_channels, step):
        channels = np.arange(first, min(first + step, n_channels))
        a, f, n = np.unravel_index(channels, (n_species, n_lm, n_rad))
        v = (factor[:, f, n] * phase[f]).T * conj_rho[a]  # V_f(k), (channels, k)
        result[channels] = grid.real_parts(centre_points, v, isign=1)
    out[:, :, layout.parity] = result.reshape(n_species, n_lm, n_rad, n_centres).transpose(
        3, 0, 1, 2
    )
    return out


class _HalfGrid:
    """Grid bookkeeping of one cell and k-cutoff: flat indices of +k and -k, and transforms."""

    def __init__(self, hkl: np.ndarray, eps: float, n_threads: int):
        import finufft

        self.finufft = finufft
        n_max = np.abs(hkl).max(axis=0)
        self.shape = tuple(int(2 * n + 1) for n in n_max)
        self.size = int(np.prod(self.shape))
        self.plus = np.ravel_multi_index(tuple((hkl + n_max).T), self.shape)
        self.minus = np.ravel_multi_index(tuple((n_max - hkl).T), self.shape)
        self.eps = max(float(eps), MIN_EPS)
        self.options = {"nthreads": n_threads} if n_threads else {}

    def real_parts(self, points, values: np.ndarray, isign: int) -> np.ndarray:
        """Re sum_{k in half} values[t, k] exp(isign i k·r) at the points, for every row t.

        Rows are paired into one complex transform each, through the Hermitian extension
        (module docstring). Returns (n_rows, n_points).
        """
        n_rows = len(values)
        padded = values if n_rows % 2 == 0 else np.vstack([values, np.zeros_like(values[:1])])
        pairs = padded.reshape(-1, 2, padded.shape[1])
        out = np.empty((len(pairs), 2, len(points[0])))
        batch = max(1, min(len(pairs), _BATCH, _GRID_BUDGET // self.size))
        buffer = np.empty((batch, self.size), dtype=np.complex128)
        for start in range(0, len(pairs), batch):
            group = pairs[start : start + batch]
            grids = buffer[: len(group)]
            grids.fill(0.0)
            grids[:, self.plus] = group[:, 0] + 1j * group[:, 1]
            grids[:, self.minus] = group[:, 0].conj() + 1j * group[:, 1].conj()
            transformed = self.finufft.nufft3d2(
                *points,
                grids.reshape(len(group), *self.shape),
                eps=self.eps,
                isign=isign,
                **self.options,
            ).reshape(len(group), -1)
            out[start : start + len(group), 0] = 0.5 * transformed.real
            out[start : start + len(group), 1] = 0.5 * transformed.imag
        return out.reshape(-1, out.shape[2])[:n_rows]

    def sums(self, points, strengths: np.ndarray) -> np.ndarray:
        """S_t(k) = sum_j strengths[t, j] exp(i k·r_j) on the half sphere, (n_rows, n_k), for
        real strengths: two rows per complex transform, separated by S(-k) = conj(S(k))."""
        n_rows = len(strengths)
        padded = (
            strengths if n_rows % 2 == 0 else np.vstack([strengths, np.zeros_like(strengths[:1])])
        )
        pairs = padded.reshape(-1, 2, padded.shape[1])
        out = np.empty((len(pairs), 2, len(self.plus)), dtype=np.complex128)
        batch = max(1, min(len(pairs), _BATCH, _GRID_BUDGET // self.size))
        for start in range(0, len(pairs), batch):
            group = pairs[start : start + batch]
            combined = self.finufft.nufft3d1(
                *points,
                np.ascontiguousarray(group[:, 0] + 1j * group[:, 1]),
                self.shape,
                eps=self.eps,
                isign=1,
                **self.options,
            ).reshape(len(group), -1)
            at_plus, at_minus = combined[:, self.plus], combined[:, self.minus].conj()
            out[start : start + len(group), 0] = 0.5 * (at_plus + at_minus)
            out[start : start + len(group), 1] = -0.5j * (at_plus - at_minus)
        return out.reshape(-1, out.shape[2])[:n_rows]


def lode_kspace_vjp_nufft(
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
    eps: float,
    n_threads: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """dE/dr (n_atoms, 3) and dE/d eps (3, 3) of E = sum upstream · c_kspace, by NUFFTs.

    With V_f = phi_f F_f conj(rho_a) (module docstring) and S_f(k) = sum_i G[i, f] P_i(k):

    - as a centre, dE/dr_i = sum_f G[i, f] Re sum_k i k V_f(k) P_i(k): the gradient of every
      channel's field at the centres (three type-2 transforms per channel pair);
    - as a neighbour of species a, dE/dr_j = Re sum_k (-i k) U_a(k) conj(P_j(k)) with
      U_a = sum_{f in a} phi_f F_f S_f (type-1 transforms of the upstream gradient, then three
      type-2 transforms per species);
    - dE/d eps from Z_k[f] = {Re | Im}[S_f conj(rho_a)], as in the direct product.

    Same arguments as :func:`lode_kspace_sum_nufft`, plus ``upstream`` of the coefficients'
    shape (n_centres, n_species, (max_angular+1)^2, n_radial).
    """
    from .kspace_gradients import strain_from_weights

    n_atoms = len(positions)
    grad, strain = np.zeros((n_atoms, 3)), np.zeros((3, 3))
    hkl = half_space_kvectors(cell, k_cutoff)
    if len(centres) == 0 or len(hkl) == 0:
        return grad, strain
    grid, layout, points, centre_points, conj_rho = _setup(
        hkl,
        positions,
        species_index,
        n_species,
        centres,
        cell,
        basis,
        max_angular,
        smearing,
        exponent,
        eps,
        n_threads,
    )
    n_lm, n_rad, n_even = (max_angular + 1) ** 2, basis.size, layout.n_even

    parts = layout.factor_parts(hkl)
    kvec = parts["kvec"]
    factor = parts["ylm"][:, :, None] * parts["radial"]  # (k, lm by parity, n)
    phase = np.where(np.arange(n_lm) < n_even, 1.0, -1j)
    g = upstream[:, :, layout.parity, :]  # (centres, species, lm by parity, n)

    # the upstream gradient summed over centres with their phases, per channel
    strengths = g.reshape(len(centres), -1).T  # (channels, centres)
    s = grid.sums(centre_points, strengths).reshape(n_species, n_lm, n_rad, -1)
    z = np.zeros(factor.shape)
    u = np.zeros((n_species, len(hkl)), dtype=np.complex128)
    for a in range(n_species):
        weighted = s[a].transpose(2, 0, 1) * conj_rho[a][:, None, None]  # (k, lm, n)
        z[:, :n_even] += weighted[:, :n_even].real
        z[:, n_even:] += weighted[:, n_even:].imag
        u[a] = np.einsum("kfn,fnk->k", factor * phase[None, :, None], s[a])
    strain += strain_from_weights(parts, z)

    # as a neighbour: Re sum_k (-i k_x) U_a(k) conj(P_j(k)), rows (species, x)
    rows = (-1j * kvec.T[None, :, :] * u[:, None, :]).reshape(3 * n_species, -1)
    field = grid.real_parts(points, rows, isign=-1).reshape(n_species, 3, n_atoms)
    grad += field[species_index, :, np.arange(n_atoms)]

    # as a centre: sum_f G[i, f] Re sum_k i k_x V_f(k) P_i(k), channels in batches
    n_channels = n_species * n_lm * n_rad
    flat_g = g.reshape(len(centres), n_channels)
    step = 2 * _BATCH
    for first in range(0, n_channels, step):
        channels = np.arange(first, min(first + step, n_channels))
        a, f, n = np.unravel_index(channels, (n_species, n_lm, n_rad))
        v = (factor[:, f, n] * phase[f]).T * conj_rho[a]  # (channels, k)
        rows = (1j * kvec.T[:, None, :] * v[None]).reshape(-1, len(hkl))  # (x, channel)
        values = grid.real_parts(centre_points, rows, isign=1)
        values = values.reshape(3, len(channels), len(centres))
        grad[centres] += np.einsum("xci,ic->ix", values, flat_g[:, channels])
    return grad, strain
