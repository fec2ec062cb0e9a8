"""The k-space LODE sum by non-uniform FFTs: O(N log N) for large cells (finufft).

The direct sum (:mod:`lodekit.expansion.kspace.direct`) costs centres x k-vectors x
coefficients, and at fixed density and smearing the number of k-vectors grows with the volume:
N^2 overall. Written per coefficient channel f = (a, l, m, n), the same sum is

    c[i, f] = Re sum_{k in half} V_f(k) exp(i k·r_i),
    V_f(k) = F_k[lmn] conj(rho_a(k)) (even l),  -i F_k[lmn] conj(rho_a(k)) (odd l),

with rho_a(k) = sum_{j in a} exp(i k·r_j) (F_k of
:class:`~lodekit.expansion.kspace.layout.KspaceLayout`, which holds the parity signs and the
factor 2 of the half sphere). Both are non-uniform FFTs on the grid of Miller indices: rho_a is
a type-1 transform (atoms -> modes), and each channel a type-2 transform (modes -> centres).
Filling the full grid with the Hermitian extension V(-k) = conj(V(k)) makes the type-2 result
real, 2 c[i, f], so two channels share one complex transform (the second as its imaginary
part). Cost: channels x (grid log grid + atoms x w^3) with the spreading width w set by the
tolerance; memory: a few grids at a time, never an (atoms x k) array.

The transforms are accurate to a relative tolerance ``eps`` of the l2 norm of their outputs
(``KspaceProblem.tolerance``; the calculator gives them a tenth of its ``accuracy``).
"""

from __future__ import annotations

import numpy as np

from .base import KspaceBackend
from .direct import DirectBackend
from .direct_gradients import strain_from_weights
from .problem import KspaceProblem, KspaceWorkload

__all__ = [
    "MIN_EPS",
    "UPSAMPLING",
    "NufftBackend",
    "choose_upsampling",
    "nufft_available",
    "nufft_sum",
    "nufft_vjp",
    "nufft_weight_vjp",
    "nufft_width",
]

#: Largest number of complex grid values held for the channel transforms at once (16 B each).
_GRID_BUDGET = 1 << 24

#: Channel pairs transformed per finufft call.
_BATCH = 16

#: Smallest tolerance finufft accepts in double precision.
MIN_EPS = 1e-14

# Rough costs on one core (seconds per unit) of finufft 2.5, measured on the development
# machine (one transform of a batch of 16): one point x w^3 of spreading or interpolation, w
# the kernel width; one (upsampled grid point x log2 of the grid) of FFT.
_COST_SPREAD = 1.0e-9
_COST_FFT = 1.1e-9

#: finufft's upsampling factors (``upsampfac``) the cost model chooses between, both supported
#: since finufft 2.2: 2 has the narrowest kernel, 1.25 a grid (2 / 1.25)^3 = 4.1x smaller.
#: Large cells are FFT-bound, and there 1.25 is 3-4x faster at tolerances 1e-5 to 1e-9.
UPSAMPLING = (2.0, 1.25)

#: Widest spreading kernel finufft builds; an upsampling factor that would need more is not used.
_MAX_WIDTH = 16


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


def _setup(problem: KspaceProblem, hkl: np.ndarray):
    """What both transforms need: the grid, the layout of F_k, the points of all atoms and of
    the centres, and conj(rho_a(k)) on the half sphere, rho_a = sum_{j in a} exp(+i k·r_j)."""
    n_modes = 2 * np.abs(hkl).max(axis=0) + 1
    n_channels = int(np.prod(problem.coefficient_shape[1:]))
    upsampling = choose_upsampling(
        n_modes, max(problem.n_atoms, len(problem.centres)), n_channels, problem.tolerance
    )[0]
    grid = _HalfGrid(hkl, problem.tolerance, problem.n_threads, upsampling)
    layout = problem.layout()
    points = _grid_points(problem.positions, problem.cell)
    centre_points = tuple(p[problem.centres] for p in points)
    conj_rho = grid.sums(points, problem.indicator()).conj()
    return grid, layout, points, centre_points, conj_rho


def nufft_sum(problem: KspaceProblem) -> np.ndarray:
    """The same sum as :func:`~lodekit.expansion.kspace.direct.kspace_sum`, by NUFFTs to the
    relative tolerance ``problem.tolerance`` (finufft's ``eps``, clamped to >= 1e-14) with
    ``problem.n_threads`` threads (0: finufft's default, all cores).

    Returns
    -------
    ndarray, shape (n_centres, n_species, (max_angular+1)^2, n_radial)
    """
    n_centres, n_species, n_lm, n_rad = problem.coefficient_shape
    out = np.zeros((n_centres, n_species, n_lm, n_rad))
    hkl = problem.kvectors()
    if n_centres == 0 or len(hkl) == 0:
        return out
    grid, layout, _, centre_points, conj_rho = _setup(problem, hkl)

    ylm, radial = layout.factor_pieces(hkl)  # (lm by parity, k), (l, n, k)
    # phi conj(rho_a) for phi = 1 (even l) and -i (odd l): rows (phi, species)
    signed_rho = np.concatenate([conj_rho, -1j * conj_rho])
    n_channels = n_species * n_lm * n_rad
    result = np.empty((n_channels, n_centres))
    step = 2 * _BATCH
    # V_f(k) of one step of channels, written in place: fresh arrays of this size would cost
    # their page faults again at every step
    rows = np.empty((step, len(hkl)), dtype=np.complex128)
    weights = np.empty((step, len(hkl)))
    for first in range(0, n_channels, step):
        channels = np.arange(first, min(first + step, n_channels))
        v = _channel_rows(ylm, radial, layout, signed_rho, channels, rows, weights)
        result[channels] = grid.real_parts(centre_points, v, isign=1)
    out[:, :, layout.parity] = result.reshape(n_species, n_lm, n_rad, n_centres).transpose(
        3, 0, 1, 2
    )
    return out


def _channel_rows(ylm, radial, layout, signed_rho, channels, rows, weights) -> np.ndarray:
    """V_f(k) = phi_f Y_f(k) R_f(k) conj(rho_a(k)) of the flat channels f = (a, lm, n), shape
    (len(channels), n_k), written into the first rows of ``rows`` (complex) with ``weights``
    (real, same shape) as scratch. From the pieces of :meth:`KspaceLayout.factor_pieces`
    (``ylm`` (lm, k), ``radial`` (l, n, k), lm sorted by parity) and ``signed_rho``
    (2 x species, k), phi conj(rho_a) for phi = 1 then -i."""
    n_species, n_lm, n_rad = len(signed_rho) // 2, ylm.shape[0], radial.shape[1]
    a, f, n = np.unravel_index(channels, (n_species, n_lm, n_rad))
    out, w = rows[: len(channels)], weights[: len(channels)]
    np.take(ylm, f, axis=0, out=w, mode="clip")  # "raise" would buffer the output
    w *= radial[layout.l_sorted[f], n]
    np.take(signed_rho, np.where(f < layout.n_even, a, a + n_species), axis=0, out=out, mode="clip")
    # complex x real as two real products (numpy would cast the weights to complex)
    out.view(np.float64).reshape(*out.shape, 2)[...] *= w[:, :, None]
    return out


def _channel_values(factor, phase, conj_rho, channels) -> np.ndarray:
    """V_f(k) = phi_f F_k[f] conj(rho_a(k)) of the flat channels f = (a, lm, n), shape
    (len(channels), n_k); ``factor`` is (n_k, lm sorted by parity, n)."""
    n_species, (_, n_lm, n_rad) = conj_rho.shape[0], factor.shape
    a, f, n = np.unravel_index(channels, (n_species, n_lm, n_rad))
    return (factor[:, f, n] * phase[f]).T * conj_rho[a]


class _HalfGrid:
    """Grid bookkeeping of one cell and k-cutoff: flat indices of +k and -k, and transforms."""

    def __init__(self, hkl: np.ndarray, eps: float, n_threads: int, upsampling: float = 2.0):
        import finufft

        self.finufft = finufft
        n_max = np.abs(hkl).max(axis=0)
        self.shape = tuple(int(2 * n + 1) for n in n_max)
        self.size = int(np.prod(self.shape))
        self.plus = np.ravel_multi_index(tuple((hkl + n_max).T), self.shape)
        self.minus = np.ravel_multi_index(tuple((n_max - hkl).T), self.shape)
        self.eps = max(float(eps), MIN_EPS)
        self.options = {"upsampfac": float(upsampling)}
        if n_threads:
            self.options["nthreads"] = n_threads
        self._buffer = self._plus_rows = self._minus_rows = None
        self._scratch = {}

    def _scratch_array(self, name: str, shape: tuple) -> np.ndarray:
        """A complex array kept between calls (see :func:`nufft_sum` on page faults)."""
        held = self._scratch.get(name)
        if held is None or held.size < int(np.prod(shape)):
            held = self._scratch[name] = np.empty(int(np.prod(shape)), dtype=np.complex128)
        return held[: int(np.prod(shape))].reshape(shape)

    def _mode_buffer(self, batch: int):
        """(buffer (batch, size) complex, flat indices of +k and -k in it, (batch, n_k) each):
        made and zeroed once per grid, since only the k-sphere's modes are ever written (one
        flat scatter is several times faster than a 2-D fancy assignment)."""
        if self._buffer is None or len(self._buffer) < batch:
            self._buffer = np.zeros((batch, self.size), dtype=np.complex128)
            rows = self.size * np.arange(batch)[:, None]
            self._plus_rows, self._minus_rows = rows + self.plus, rows + self.minus
        return self._buffer, self._plus_rows, self._minus_rows

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
        buffer, plus_rows, minus_rows = self._mode_buffer(batch)
        flat = buffer.reshape(-1)
        for start in range(0, len(pairs), batch):
            group = pairs[start : start + batch]
            n = len(group)
            grids = buffer[:n]
            # +k: V1 + i V2; -k: conj(V1) + i conj(V2) = conj(V1 - i V2)
            twisted = self._scratch_array("twisted", (n, pairs.shape[2]))
            summed = self._scratch_array("summed", (n, pairs.shape[2]))
            np.multiply(group[:, 1], 1j, out=twisted)
            np.add(group[:, 0], twisted, out=summed)
            flat[plus_rows[:n].ravel()] = summed.ravel()
            np.subtract(group[:, 0], twisted, out=twisted)
            flat[minus_rows[:n].ravel()] = np.conjugate(twisted, out=twisted).ravel()
            transformed = self._scratch_array("transformed", (n, len(points[0])))
            self.finufft.nufft3d2(
                *points,
                grids.reshape(n, *self.shape),
                out=transformed,
                eps=self.eps,
                isign=isign,
                **self.options,
            )
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


def nufft_vjp(problem: KspaceProblem, upstream: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dE/dr (n_atoms, 3) and dE/d eps (3, 3) of E = sum upstream · c_kspace, by NUFFTs.

    With V_f = phi_f F_f conj(rho_a) (module docstring) and S_f(k) = sum_i G[i, f] P_i(k):

    - as a centre, dE/dr_i = sum_f G[i, f] Re sum_k i k V_f(k) P_i(k): the gradient of every
      channel's field at the centres (three type-2 transforms per channel pair);
    - as a neighbour of species a, dE/dr_j = Re sum_k (-i k) U_a(k) conj(P_j(k)) with
      U_a = sum_{f in a} phi_f F_f S_f (type-1 transforms of the upstream gradient, then three
      type-2 transforms per species);
    - dE/d eps from Z_k[f] = {Re | Im}[S_f conj(rho_a)], as in the direct product.

    ``upstream`` has the coefficients' shape (n_centres, n_species, (max_angular+1)^2,
    n_radial); tolerance and threads as for :func:`nufft_sum`.
    """
    n_atoms, centres, species_index = problem.n_atoms, problem.centres, problem.species_index
    grad, strain = np.zeros((n_atoms, 3)), np.zeros((3, 3))
    hkl = problem.kvectors()
    if len(centres) == 0 or len(hkl) == 0:
        return grad, strain
    grid, layout, points, centre_points, conj_rho = _setup(problem, hkl)
    _, n_species, n_lm, n_rad = problem.coefficient_shape
    n_even = layout.n_even

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
    neighbour = field[species_index, :, np.arange(n_atoms)]
    if problem.weights is not None:
        neighbour *= problem.weights[:, None]  # rho_a carries w_j exp(i k·r_j)
    grad += neighbour

    # as a centre: sum_f G[i, f] Re sum_k i k_x V_f(k) P_i(k), channels in batches
    n_channels = n_species * n_lm * n_rad
    flat_g = g.reshape(len(centres), n_channels)
    step = 2 * _BATCH
    for first in range(0, n_channels, step):
        channels = np.arange(first, min(first + step, n_channels))
        v = _channel_values(factor, phase, conj_rho, channels)  # (channels, k)
        rows = (1j * kvec.T[:, None, :] * v[None]).reshape(-1, len(hkl))  # (x, channel)
        values = grid.real_parts(centre_points, rows, isign=1)
        values = values.reshape(3, len(channels), len(centres))
        grad[centres] += np.einsum("xci,ic->ix", values, flat_g[:, channels])
    return grad, strain


def nufft_weight_vjp(problem: KspaceProblem, upstream: np.ndarray) -> np.ndarray:
    """dE/dw_j (n_atoms,) of E = sum upstream · c_kspace, by NUFFTs: Re sum_k U_a(k)
    conj(P_j(k)) with U_a of :func:`nufft_vjp` (a the channel of j): type-1 transforms of the
    upstream gradient, then one type-2 transform per pair of channels."""
    n_atoms = problem.n_atoms
    out = np.zeros(n_atoms)
    hkl = problem.kvectors()
    if len(problem.centres) == 0 or len(hkl) == 0:
        return out
    grid, layout, points, centre_points, _ = _setup(problem, hkl)
    _, n_species, n_lm, n_rad = problem.coefficient_shape
    _, factor = layout.factor(hkl)  # (k, lm by parity, n)
    phase = np.where(np.arange(n_lm) < layout.n_even, 1.0, -1j)
    g = upstream[:, :, layout.parity, :]
    strengths = g.reshape(len(problem.centres), -1).T  # (channels, centres)
    s = grid.sums(centre_points, strengths).reshape(n_species, n_lm, n_rad, -1)
    u = np.einsum("kfn,afnk->ak", factor * phase[None, :, None], s)
    field = grid.real_parts(points, u, isign=-1)  # (species, atoms)
    return field[problem.species_index, np.arange(n_atoms)]


def nufft_width(eps: float, upsampling: float = 2.0) -> int:
    """Spreading kernel width (grid points per dimension) of finufft at tolerance eps and
    upsampling factor sigma: ln(0.35 / eps) / (pi sqrt(1 - 1/sigma)) + 1, rounded up (finufft
    2.5's rule for 3-D; its earlier kernels are within a point of it)."""
    return int(np.ceil(np.log(0.353 / eps) / (np.pi * np.sqrt(1.0 - 1.0 / upsampling)) + 1.0))


def _fft_size(n: float) -> int:
    """The smallest 2^a 3^b 5^c >= n (the FFT sizes finufft pads its grid to)."""
    best = 1 << int(np.ceil(np.log2(max(n, 1.0))))
    three = 1
    while three < best:
        five = three
        while five < best:
            two = five
            while two < n:
                two *= 2
            best = min(best, two)
            five *= 5
        three *= 3
    return best


def choose_upsampling(n_modes, n_points: int, n_transforms: int, eps: float) -> tuple[float, float]:
    """The cheaper of :data:`UPSAMPLING` for ``n_transforms`` transforms of a grid of
    ``n_modes`` (3,) modes at ``n_points`` points, and its estimated seconds on one core:
    transforms x (points x w^3 of spreading + one FFT of the upsampled grid)."""
    costs = {}
    for sigma in UPSAMPLING:
        width = nufft_width(eps, sigma)
        if width > _MAX_WIDTH:
            if sigma != 2.0:
                continue
            width = _MAX_WIDTH  # finufft clips the kernel (eps below its reach at sigma 2)
        grid = float(np.prod([_fft_size(max(sigma * m, 2 * width)) for m in n_modes]))
        per_transform = _COST_SPREAD * n_points * width**3 + _COST_FFT * grid * np.log2(grid)
        costs[sigma] = n_transforms * per_transform
    sigma = min(costs, key=costs.get)
    return sigma, costs[sigma]


class NufftBackend(KspaceBackend):
    """Non-uniform FFTs (finufft): ~ channels x (grid log grid + atoms x w^3), N log N at fixed
    density; accurate to ``problem.tolerance`` relative to the l2 norm of each transform.

    The dense :meth:`jacobian` is the direct backend's (exact): it costs centres x atoms
    whichever way, and is meant for small structures.
    """

    requirement = "finufft is not installed: pip install finufft"

    def available(self) -> bool:
        return nufft_available()

    def tolerance(self, requested: float) -> float:
        return max(requested, MIN_EPS)

    def cost(self, workload: KspaceWorkload, k_cutoff: float, tolerance: float) -> float:
        cell = workload.cell
        n_max = np.floor(k_cutoff * np.linalg.norm(cell, axis=1) / (2.0 * np.pi))
        n_species, n_coefficients = workload.n_species, workload.n_coefficients
        transforms = -(-n_species * n_coefficients // 2)  # two real channels per transform
        points = max(workload.n_centres, workload.n_atoms)
        # the channel transforms, and one per pair of species for the structure factors
        return choose_upsampling(
            2 * n_max + 1, points, transforms + -(-n_species // 2), max(tolerance, MIN_EPS)
        )[1]

    def value(self, problem: KspaceProblem) -> np.ndarray:
        return nufft_sum(problem)

    def vjp(self, problem: KspaceProblem, upstream: np.ndarray, with_strain: bool):
        # the strain comes with the position gradient at little extra cost
        gradient, strain = nufft_vjp(problem, upstream)
        return gradient, strain if with_strain else None

    def weight_vjp(self, problem: KspaceProblem, upstream: np.ndarray) -> np.ndarray:
        return nufft_weight_vjp(problem, upstream)

    def jacobian(self, problem: KspaceProblem, with_strain: bool):
        # The dense Jacobian holds n_centres x n_atoms x 3 x coefficients numbers: at the sizes
        # where it fits in memory (a few hundred atoms) the direct sum is the faster backend,
        # and beyond them forces go through the VJP. So the exact direct Jacobian is used.
        return DirectBackend().jacobian(problem, with_strain)
