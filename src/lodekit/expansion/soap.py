"""The local density (SOAP) spherical expansion (math.md §5)."""

from __future__ import annotations

import numpy as np

from .. import _validation as check
from ..basis.radial import RADIAL_BASES
from ..basis.splines import MAX_POINTS, TabulatedFunction
from ..errors import InputError
from ..systems import System
from ._base import CalculatorBase
from .channels import Channels
from .jacobian import Jacobian, cutoff_pair_jacobian
from .limits import check_pairs, estimated_pairs
from .pairs import (
    accumulate_rows,
    pair_contractions,
    pair_gradients,
    parallel_map,
    selected_pairs,
)
from .workspace import scratch

__all__ = ["SphericalExpansion"]

CUTOFF_FUNCTIONS = ("step", "shifted_cosine")


class SphericalExpansion(CalculatorBase):
    """Expansion of the Gaussian-smeared neighbour density within a cutoff (SOAP).

    c^{i,a}_{nlm} = sum_{j in a, r_ij < r_c} f_c(r_ij) ∫ R_n(r) Y_lm(r̂) g_0(|r - r_ij|) d^3r
    plus the centre itself with weight ``center_atom_weight``. Same numbers as featomic 0.6's
    ``SphericalExpansion`` with a ``Gaussian`` density and a ``Gto`` (or ``Monomials``) basis of
    radius ``cutoff``.

    Parameters
    ----------
    cutoff : float
        Neighbour cutoff r_c (Å); also the radial basis radius.
    smearing : float
        Width sigma of the Gaussian atom density (Å).
    max_radial, max_angular : int
        Largest radial index and largest l.
    cutoff_function : {"step", "shifted_cosine"}
        "step": f_c = 1 inside; "shifted_cosine": 1/2 (1 + cos(pi (r - r_c + w) / w)) on
        [r_c - w, r_c], 1 below.
    cutoff_width : float
        Width w (Å) of the shifted cosine; ignored for "step".
    center_atom_weight : float, default 1.0
    spline_accuracy : float or None, default 1e-8
        Tabulate the radial integral with a cubic spline to this relative accuracy (fast);
        None evaluates the closed form for every pair (exact, slower).
    radial_basis : str, default "gto"
        Key of :data:`lodekit.basis.RADIAL_BASES` ("gto" or "monomials").
    weights : str or None, default None
        Name of the per-atom array of ase.Atoms inputs (e.g. ``"initial_charges"``) whose
        values scale each atom's Gaussian (:meth:`lodekit.System.from_ase`); a
        :class:`lodekit.System` input uses its own ``weights``. The centre's own Gaussian
        takes the centre's weight (times ``center_atom_weight``).
    species_channels : bool, default True
        One neighbour channel per species, or (False) one channel for all atoms, labelled 0
        in ``Expansion.neighbor_types`` (docs/conventions.md).

    Notes
    -----
    Work limits: a structure whose neighbour list would hold more than
    ``lodekit.expansion.limits.WORK_LIMITS.max_pairs`` pairs (estimated at the average
    density; default 10^8) is refused with an :class:`~lodekit.errors.InputError`; raise it
    with ``lodekit.expansion.limits.work_limits(max_pairs=...)``.
    """

    name = "spherical_expansion"
    _hyper_names = (
        "cutoff",
        "cutoff_function",
        "cutoff_width",
        "smearing",
        "max_radial",
        "max_angular",
        "center_atom_weight",
        "spline_accuracy",
        "radial_basis",
        "weights",
        "species_channels",
    )

    def __init__(
        self,
        *,
        cutoff,
        smearing,
        max_radial,
        max_angular,
        cutoff_function="shifted_cosine",
        cutoff_width=0.5,
        center_atom_weight=1.0,
        spline_accuracy=1e-8,
        radial_basis="gto",
        weights=None,
        species_channels=True,
    ):
        self.cutoff = check.positive_float("cutoff", cutoff)
        self.smearing = check.positive_float("smearing", smearing)
        self.max_radial = check.int_in_range("max_radial", max_radial, 0, 30)
        self.max_angular = check.int_in_range("max_angular", max_angular, 0, 30)
        self.cutoff_function = check.choice("cutoff_function", cutoff_function, CUTOFF_FUNCTIONS)
        self.cutoff_width = check.finite_float("cutoff_width", cutoff_width)
        if self.cutoff_function == "shifted_cosine" and not 0 < self.cutoff_width <= self.cutoff:
            raise InputError(
                f"`cutoff_width` is {cutoff_width} but must be in (0, cutoff={self.cutoff}] "
                "for the shifted cosine"
            )
        self.center_atom_weight = check.finite_float("center_atom_weight", center_atom_weight)
        if spline_accuracy is not None:
            spline_accuracy = check.positive_float("spline_accuracy", spline_accuracy)
            if not 1e-13 <= spline_accuracy <= 1e-2:
                raise InputError(
                    f"`spline_accuracy` is {spline_accuracy} but must be between 1e-13 and 1e-2 "
                    "(or None for exact radial integrals)"
                )
        self.spline_accuracy = spline_accuracy
        self._check_table_size()
        self.radial_basis = check.choice("radial_basis", radial_basis, tuple(RADIAL_BASES))
        self._basis = RADIAL_BASES[self.radial_basis](self.max_radial, self.cutoff)
        self._basis.check(self.max_angular)
        self._basis.check_smearing(self.smearing)
        self._set_weight_hypers(weights, species_channels)
        self._table = None
        self._d_table = None
        self._self_term = None

    def radial_integral(self, distances: np.ndarray) -> np.ndarray:
        """J_nl(d) for neighbour distances (Å), shape (n, max_angular + 1, n_radial)."""
        if self.spline_accuracy is None:
            return self._exact_radial(distances)
        self._prepare()
        return self._table(distances)

    def _prepare(self) -> None:
        if self._self_term is None:
            # the centre itself: a Gaussian at d = 0 only has l = 0, Y_00 = 1/sqrt(4 pi)
            self._self_term = self._exact_radial(np.zeros(1))[0, 0] / np.sqrt(4 * np.pi)
        if self.spline_accuracy is not None and self._table is None:
            self._table = TabulatedFunction(self._exact_radial, self.cutoff, self.spline_accuracy)

    def radial_integral_derivative(self, distances: np.ndarray) -> np.ndarray:
        """dJ_nl/dd (Å^(1/2)), shape (n, max_angular + 1, n_radial); tabulated to
        ``spline_accuracy`` like the values, or in closed form with None."""
        if self.spline_accuracy is None:
            return self._basis.gaussian_integral_derivative(
                distances, self.max_angular, self.smearing
            )
        self._prepare()
        if self._d_table is None:
            self._d_table = TabulatedFunction(
                lambda d: self._basis.gaussian_integral_derivative(
                    d, self.max_angular, self.smearing
                ),
                self.cutoff,
                self.spline_accuracy,
            )
        return self._d_table(distances)

    def _exact_radial(self, distances: np.ndarray) -> np.ndarray:
        return self._basis.gaussian_integral(distances, self.max_angular, self.smearing)

    def _cutoff_factor(self, distances: np.ndarray) -> np.ndarray:
        if self.cutoff_function == "step":
            return np.ones_like(distances)
        start = self.cutoff - self.cutoff_width
        x = np.clip((distances - start) / self.cutoff_width, 0.0, 1.0)
        return 0.5 * (1.0 + np.cos(np.pi * x))

    def _cutoff_derivative(self, distances: np.ndarray) -> np.ndarray:
        if self.cutoff_function == "step":
            return np.zeros_like(distances)
        start = self.cutoff - self.cutoff_width
        x = (distances - start) / self.cutoff_width
        inside = (x > 0) & (x < 1)
        return np.where(inside, -0.5 * np.pi / self.cutoff_width * np.sin(np.pi * x), 0.0)

    def _radial_with_derivative(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """F = f_c J and F' = f_c' J + f_c J' (the pair function and its slope), sharing J."""
        cut, d_cut = self._cutoff_factor(d), self._cutoff_derivative(d)
        values, slopes = self.radial_integral(d), self.radial_integral_derivative(d)
        return (
            cut[:, None, None] * values,
            d_cut[:, None, None] * values + cut[:, None, None] * slopes,
        )

    def _check_table_size(self) -> None:
        """Refuse a spline table that could not reach ``spline_accuracy``: a cubic spline of
        features of width ``smearing`` needs a step of about smearing x accuracy^(1/4)."""
        if self.spline_accuracy is None:
            return
        points = self.cutoff / (self.smearing * self.spline_accuracy**0.25)
        if points > MAX_POINTS:
            raise InputError(
                f"`smearing` is {self.smearing} Å: with `cutoff` {self.cutoff} Å and "
                f"`spline_accuracy` {self.spline_accuracy} the radial table would need about "
                f"{points:.3g} points, more than {MAX_POINTS}: use spline_accuracy=None (exact "
                "radial integrals), a larger smearing or a larger spline_accuracy"
            )

    def _check_system(self, system: System, index: int) -> None:
        """Refuse a structure whose neighbour list would exceed the work limits."""
        pairs = estimated_pairs(system.positions, system.cell, system.pbc, self.cutoff)
        check_pairs(
            pairs,
            f"`structures[{index}]` with `cutoff` {self.cutoff} Å",
            "a smaller `cutoff` or fewer atoms per structure",
        )

    def _jacobian_system(
        self, system: System, centres: np.ndarray, neighbor_types: np.ndarray, with_strain: bool
    ) -> Jacobian:
        channels = self._channels(system, neighbor_types)
        # the centre's own term is constant: no gradient
        return cutoff_pair_jacobian(
            system,
            channels.index,
            channels.count,
            centres,
            self.cutoff,
            self._radial_with_derivative,
            self.max_angular,
            with_strain,
            channels.weights,
        )

    def vector_jacobian_product(
        self, structures, upstream, selected_atoms=None, *, with_weights=False
    ) -> dict:
        """Gradients of E = sum G · c, as :meth:`LodeSphericalExpansion.vector_jacobian_product`.

        Every pair (i, j) inside the cutoff contributes f_c(d) J_nl(d) Y_lm(d̂) with d = r_j -
        r_i; its gradient with respect to d is (f_c J)' d̂ Y + f_c J grad Y, contracted with G of
        the pair's row and added to j and subtracted from i; the strain derivative is
        sum over pairs of g_a d_b. The centre's own term is constant.

        Returns
        -------
        dict
            ``"positions"``: one (n_atoms, 3) array dE/dr per structure; ``"strain"``:
            (n_structures, 3, 3), dE/d eps_ab for r -> (1 + eps) r; with ``with_weights``,
            ``"weights"``: one (n_atoms,) array dE/dw per structure.
        """
        systems, selection, neighbor_types, flat = self._gradient_inputs(
            structures, upstream, selected_atoms
        )
        n_species = len(neighbor_types)
        n_rad = self._basis.size
        self._prepare()
        positions, strain, weights = [], np.zeros((len(systems), 3, 3)), []
        first = 0
        for index, (system, centres) in enumerate(zip(systems, selection, strict=True)):
            g = flat[first : first + len(centres)].reshape(len(centres) * n_species, -1, n_rad)
            first += len(centres)
            channels = self._channels(system, neighbor_types)
            i, j, vectors, target = selected_pairs(
                system, channels.index, n_species, centres, self.cutoff
            )
            per_pair = pair_gradients(
                g,
                target,
                vectors,
                self._radial_with_derivative,
                self.max_angular,
                channels.weight_of(j),
            )
            if with_weights:
                upstream_of = g.reshape(len(centres), n_species, -1, n_rad)
                weights.append(self._weight_vjp(system, centres, neighbor_types, upstream_of))
            grad = np.zeros((len(system), 3))
            np.add.at(grad, j, per_pair)
            np.add.at(grad, i, -per_pair)
            strain[index] = per_pair.T @ vectors
            positions.append(grad)
        out = {"positions": positions, "strain": strain}
        if with_weights:
            out["weights"] = weights
        return out

    def _weight_vjp(self, system, centres, neighbor_types, upstream) -> np.ndarray:
        """dE/dw (n_atoms,) of one structure: every pair's term contracted with its row of
        ``upstream`` (n_centres, n_species, lm, n), and the centre's own Gaussian."""
        self._prepare()
        channels = self._channels(system, neighbor_types)
        n_species = channels.count
        _, j, vectors, target = selected_pairs(
            system, channels.index, n_species, centres, self.cutoff
        )
        g = upstream.reshape(len(centres) * n_species, *upstream.shape[2:])

        def radial(d):
            return self._radial_with_derivative(d)[0]

        out = np.zeros(len(system))
        np.add.at(out, j, pair_contractions(g, target, vectors, radial, self.max_angular))
        own = upstream[np.arange(len(centres)), channels.index[centres], 0, :]
        np.add.at(out, centres, self.center_atom_weight * (own @ self._self_term))
        return out

    def _compute_values(self, systems, selection, neighbor_types, n_threads):
        channels = [self._channels(system, neighbor_types) for system in systems]
        values, seen = self._batch_values(systems, selection, channels, n_threads)
        return values, seen, [{"cutoff": self.cutoff} for _ in systems]

    def _channel_values(self, system: System, centres: np.ndarray, channels: Channels):
        self._prepare()
        values, _ = self._batch_values([system], [centres], [channels], 1)
        n_lm = (self.max_angular + 1) ** 2
        out = np.empty((len(centres), channels.count, n_lm, self._basis.size))
        for l, block in enumerate(values):
            out[:, :, l * l : (l + 1) ** 2] = block
        return out

    def _batch_values(self, systems, selection, channels, n_threads):
        """All structures as one batch: their pair lists concatenated (rows offset by the
        centres of the structures before), one radial and one Y_lm evaluation per chunk of
        pairs and batched matrix products into every row (:func:`.pairs.accumulate_rows`).
        ``channels``: one :class:`Channels` per structure, all of the same count. Returns the
        values per l and the (n_rows, n_channels) mask of rows that received a term."""
        n_species = channels[0].count
        n_rad = self._basis.size
        first_row = np.cumsum([0] + [len(centres) for centres in selection])
        weighted = any(c.weights is not None for c in channels)

        def pairs(job):
            index, system, centres = job
            own_channels = channels[index]
            _i, j, vectors, target = selected_pairs(
                system, own_channels.index, n_species, centres, self.cutoff
            )
            # each pair lands in (centre row, neighbour species): one flat output row; sorted
            # here, in the structure's thread, the batch is sorted as structures follow
            order = np.argsort(target, kind="stable")
            target = target[order] + first_row[index] * n_species
            pair_weights = None
            if weighted:
                all_weights = own_channels.weights
                if all_weights is None:
                    all_weights = np.ones(len(system))
                pair_weights = all_weights[j[order]]
            centre_weights = own_channels.weight_of(centres)
            if weighted and centre_weights is None:
                centre_weights = np.ones(len(centres))
            return vectors[order], target, own_channels.index[centres], pair_weights, centre_weights

        jobs = list(zip(range(len(systems)), systems, selection, strict=True))
        work = 0
        if n_threads > 1 and len(jobs) > 1:
            work = sum(estimated_pairs(s.positions, s.cell, s.pbc, self.cutoff) for s in systems)
        parts = parallel_map(pairs, jobs, n_threads, int(work))
        vectors = np.concatenate([part[0] for part in parts]).reshape(-1, 3)
        target = np.concatenate([part[1] for part in parts]).astype(np.int64)
        own = np.concatenate([part[2] for part in parts]).astype(np.int64)
        pair_weights = centre_weights = None
        if weighted:
            pair_weights = np.concatenate([part[3] for part in parts])
            centre_weights = np.concatenate([part[4] for part in parts])

        n_centres = int(first_row[-1])
        values, counts = accumulate_rows(
            n_centres * n_species,
            target,
            vectors,
            self._cut_radial,
            self.max_angular,
            n_rad,
            n_threads,
            pair_weights,
        )
        values = [
            block.reshape(n_centres, n_species, 2 * l + 1, n_rad) for l, block in enumerate(values)
        ]
        rows = np.arange(n_centres)
        if centre_weights is None:
            values[0][rows, own, 0, :] += self.center_atom_weight * self._self_term
        else:
            values[0][rows, own, 0, :] += (
                centre_weights[:, None] * self.center_atom_weight * self._self_term
            )
        seen = (counts > 0).reshape(n_centres, n_species)
        if self.center_atom_weight != 0.0:
            seen[rows, own] = True
        return values, seen

    def _cut_radial(self, distances: np.ndarray, out: np.ndarray) -> None:
        """Write f_c(d) J_nl(d) into ``out``, shape (n, max_angular + 1, n_radial)."""
        if self._table is not None:
            flat = out.reshape(len(distances), -1)
            self._table.evaluate(distances, flat, scratch("soap.spline", flat.shape))
        else:
            out[...] = self._exact_radial(distances)
        out *= self._cutoff_factor(distances)[:, None, None]
