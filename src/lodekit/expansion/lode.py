"""The public LODE calculator (math.md §4)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numpy as np

from .. import _validation as check
from ..basis.multipoles import MultipoleTail
from ..basis.radial import RADIAL_BASES
from ..density import (
    SUPPORTED_EXPONENTS,
    fourier_transform,
    fourier_transform_difference,
)
from ..errors import InputError
from ..systems import System
from ._base import CalculatorBase
from .channels import Channels
from .jacobian import Jacobian
from .kspace import (
    KSPACE_BACKENDS,
    KspaceProblem,
    KspaceWorkload,
    PeriodicCorrections,
    Remainder,
    available_methods,
    half_space_kvectors,
)
from .kspace.slab import NormalLine, SlabGeometry, line_constants, line_length, slab_tiers
from .lattice import reduced_cell
from .limits import (
    check_dense_jacobian,
    check_kspace_work,
    check_pairs,
    check_slab_lines,
    estimated_pairs,
)
from .pairs import pair_contractions
from .plan import (
    PeriodicPlan,
    choose_kspace_method,
    choose_split,
    kspace_cutoff_for,
    remainder_range,
)
from .realspace import (
    RadialField,
    SwitchedField,
    molecule_jacobian,
    molecule_pair_blocks,
    molecule_pair_gradients,
    molecule_sum,
)
from .result import split_by_l
from .several import SeveralExponents, checked_exponent

__all__ = ["LodeSphericalExpansion", "PeriodicTerms"]

#: k_cutoff * smearing must reach this: exp(-(k_c sigma)^2 / 2) <= 0.1, i.e. the truncated
#: Fourier sum keeps at least 90 % of the smeared density's spectral weight.
MIN_KCUT_SMEARING = float(np.sqrt(2.0 * np.log(10.0)))

#: Accuracy of the real-space tables relative to their largest value.
TABLE_ACCURACY = 1e-13

#: Width (Å) of the switch that turns the real-space remainder off at its cutoff.
SWITCH_WIDTH = 0.5

#: Share of the ``accuracy`` budget given to the tolerance of approximate k-space backends
#: (the non-uniform FFTs).
NUFFT_SHARE = 0.1

#: Tolerance of the non-uniform FFTs with a fixed ``k_cutoff``: featomic's truncated sum to
#: about 1e-12 of the largest coefficient.
FEATOMIC_NUFFT_EPS = 1e-13

#: Smallest ``accuracy`` accepted.
MIN_ACCURACY = 1e-14

#: Largest ``accuracy`` accepted: the bounds of the planner (exp(-(k_c sigma)^2 / 2) for the
#: k-space truncation, the remainder's tail) are measured and validated up to 0.1.
MAX_ACCURACY = 0.1

#: ``accuracy`` of slabs when neither ``k_cutoff`` nor ``accuracy`` is given: a slab's sum has
#: no truncated (featomic) form, so it is always converged.
DEFAULT_SLAB_ACCURACY = 1e-8

#: Share of the ``accuracy`` budget given to the stretching (trapezoid) error of a slab's
#: in-plane lines (:func:`~lodekit.expansion.kspace.slab.line_length`).
STRETCH_SHARE = 0.1

#: Height (Å) added to a slab's thickness for the stretched cell the planner costs when the
#: slab has no in-plane line within the cutoff.
PLANNING_STRETCH = 20.0


def _checked_kspace_method(value) -> str:
    """``value`` if it is "auto" or the name of a backend that can run here."""
    method = check.choice("kspace_method", value, ("auto", *KSPACE_BACKENDS))
    if method != "auto" and not KSPACE_BACKENDS[method].available():
        raise InputError(f"`kspace_method` is {method!r} but {KSPACE_BACKENDS[method].requirement}")
    return method


def _backend(method: str, channels: Channels):
    """The backend ``method``, or the exact direct sum in place of an approximate one for the
    per-atom channels of d c / d w (:attr:`Channels.derivative`)."""
    backend = KSPACE_BACKENDS[method]
    if channels.derivative and backend.tolerance(FEATOMIC_NUFFT_EPS) > 0:
        return KSPACE_BACKENDS["direct"]
    return backend


def _check_some_kvector(cell: np.ndarray, k_cutoff: float) -> None:
    """Refuse a fixed ``k_cutoff`` below every reciprocal-lattice vector of ``cell``: the
    k-space sum would be empty, the coefficients blind to the structure (featomic refuses it
    too). With ``accuracy`` the planner's cutoff may leave nothing to sum, legitimately."""
    shortest_basis = np.linalg.norm(2.0 * np.pi * np.linalg.inv(cell).T, axis=1).min()
    if shortest_basis < k_cutoff or len(half_space_kvectors(cell, k_cutoff)):
        return
    raise InputError(
        f"`k_cutoff` is {k_cutoff:g} 1/Å but no reciprocal-lattice vector of the cell "
        f"{np.round(cell, 6).tolist()} is that short (the shortest basis vector is "
        f"{shortest_basis:.6g} 1/Å): the k-space sum would be empty; give "
        "a larger `k_cutoff`, or `accuracy` instead"
    )


#: Most atoms (frames x atoms) in one batch of :meth:`LodeSphericalExpansion._batches`:
#: 5 frames of 192 atoms, whose per-call costs are then small beside the products, and whose
#: phases stay those of one pass (water64x8, one thread: 41-47 ms and +33 MiB at 1024,
#: 46-55 ms and +50 MiB at 2048, 54-60 ms for 2048 in passes of 4 MiB of phases).
BATCH_ATOMS = 1024


@dataclass(frozen=True, eq=False)
class PeriodicTerms:
    """The parts of one bulk structure's coefficients (every atom a centre), for code that
    evaluates the k-space sum itself (:mod:`lodekit.torch.kspace`): the numbers are

        c = kspace_sum(problem) + delta_l0 (k_zero_unit x channel totals of the weights)
            + delta_l0 delta_{a, channel(i)} w_i centre_term

    Attributes
    ----------
    plan : PeriodicPlan
        The structure's plan (``method``, ``kspace_method``, ``k_cutoff``).
    problem : KspaceProblem
        The k-space sum, in the reduced cell of the lattice (:func:`_reduced`): its
        k-vectors are those of the given cell, its Miller indices are not.
    k_zero_unit : ndarray (n_radial,) or None
        The k = 0 term of one atom of unit weight (∝ 1/V); None where it diverges.
    centre_term : ndarray (n_radial,)
        -(1 - center_atom_weight) C_n, added to each centre's own channel (l = 0) times
        its weight.
    channels : Channels
        The channel and weight of every atom.
    labels : ndarray of int
        The neighbour-type label of every channel (``Expansion.neighbor_types``).
    """

    plan: PeriodicPlan
    problem: KspaceProblem
    k_zero_unit: np.ndarray | None
    centre_term: np.ndarray
    channels: Channels
    labels: np.ndarray


def _reduced(system: System) -> System:
    """``system`` itself, or the same periodic structure described by a reduced cell
    (:func:`~lodekit.expansion.lattice.reduced_cell`): every periodic sum is a property of the
    lattice, while the planner's bounds (cell heights, index ranges) are computed from rows."""
    cell = reduced_cell(system.cell)
    if cell is system.cell:
        return system
    return System(system.positions, system.numbers, cell, pbc=True, weights=system.weights)


class LodeSphericalExpansion(SeveralExponents, CalculatorBase):
    """LODE: local expansion of the smeared power-law field of every species.

    c^{i,a}_{nlm} = ∫ d^3r R_n(r) Y_lm(r̂) V_a(r_i + r), computed in reciprocal space for
    periodic structures (Grisafi & Ceriotti, J. Chem. Phys. 151, 204105 (2019), eq. 7-9;
    exponents p != 1 as in Huguenin-Dumittan et al., J. Phys. Chem. Lett. 14, 9612 (2023)).
    Results match featomic 0.6's ``LodeSphericalExpansion`` with ``spline_accuracy=None``.

    Parameters
    ----------
    smearing : float
        Gaussian smearing sigma of each atom, Å.
    max_radial : int
        Largest radial index (``max_radial + 1`` radial functions per l).
    max_angular : int
        Largest angular channel l.
    radius : float
        Radial basis radius, Å (GTO: sets the widths; monomials: their support).
    exponent : int or list of int, default 1
        Power p of the 1/r^p field, 0..6 (0 is the Gaussian density itself). A list of
        distinct exponents computes the expansion of every field in one pass, sharing the
        exponent-independent work (pairs, phases, structure factors): the neighbour channels
        then run over (exponent, species) pairs, exponent-major, and ``Expansion.exponents``
        names each channel's p (docs/conventions.md, "Several exponents").
    center_atom_weight : float, default 1.0
        Weight w of the centre's own field in its own channel (1 keeps it, 0 removes it).
    k_cutoff : float or None
        Reciprocal-space cutoff, 1/Å; None means 1.2 pi / smearing (featomic's default), unless
        ``accuracy`` is given. With a k_cutoff the periodic result is featomic's truncated sum.
    accuracy : float or None
        Instead of ``k_cutoff``: the largest error allowed, relative to the largest coefficient
        of each structure, with respect to the converged (k_cutoff -> infinity) sum. lodekit
        then chooses the k-space cutoff and, where it is cheaper, splits the field into a
        smooth k-space part and a short-ranged real-space remainder (math.md §4.3); see
        :meth:`plan`. Molecules are always computed to ~1e-13.
    kspace_method : {"auto", "direct", "nufft"}
        How periodic k-space sums are evaluated: "direct" sums over k-vectors (cost ~ atoms x
        k-vectors, N^2 at fixed density); "nufft" uses non-uniform FFTs (finufft; ~ N log N)
        to a tolerance of a tenth of ``accuracy`` (1e-13 relative with a ``k_cutoff``); "auto"
        picks the cheapest by the backends' cost models (the NUFFT wins from a few thousand
        atoms on). Any key of :data:`lodekit.expansion.kspace.KSPACE_BACKENDS` is accepted.
    radial_basis : str, default "gto"
        Key of :data:`lodekit.basis.RADIAL_BASES`: "gto" (featomic's ``Gto``) or "monomials"
        (featomic's ``Monomials``, r^(l+2n) on [0, radius], orthonormalised per l).
    weights : str or None, default None
        Name of the per-atom array of ase.Atoms inputs (e.g. ``"initial_charges"``) whose
        values scale each atom's smeared field (:meth:`lodekit.System.from_ase`); a
        :class:`lodekit.System` input uses its own ``weights``. None: ase.Atoms inputs are
        unweighted. With weights, the centre's own field takes the centre's weight and the
        k = 0 terms the channels' total weights (docs/conventions.md).
    species_channels : bool, default True
        One neighbour channel per species (featomic's layout), or (False) one channel for all
        atoms, labelled 0 in ``Expansion.neighbor_types``: with charges as weights and p = 1,
        the potential of the charge distribution.

    Notes
    -----
    Slabs (``pbc`` with two periodic axes): the exact sum periodic in the plane, isolated along
    the normal (:mod:`lodekit.expansion.kspace.slab`, docs/conventions.md), to ``accuracy``
    (default :data:`DEFAULT_SLAB_ACCURACY`); a ``k_cutoff`` is refused for them. For p = 1, 2
    each species' planar-average field is set to zero in the plane of its own atoms.

    Work limits: before a periodic structure is computed, its k-space sum is estimated
    (k-vectors V k_c^3 / (12 pi^2), seconds by the backend's cost model) and a dense Jacobian
    (``gradients``) its memory; above :data:`lodekit.expansion.limits.WORK_LIMITS` (default
    about 4.2 M k-vectors, 3600 s, 8 GiB) an :class:`~lodekit.errors.InputError` names the
    estimate and the way out (``accuracy``, a larger smearing, a smaller k_cutoff,
    :meth:`vector_jacobian_product`). ``with lodekit.expansion.limits.work_limits(...)``
    raises them. Skewed cells are computed with a reduced basis of the same lattice.
    """

    name = "lode_spherical_expansion"
    _hyper_names = (
        "smearing",
        "exponent",
        "max_radial",
        "max_angular",
        "radius",
        "center_atom_weight",
        "k_cutoff",
        "accuracy",
        "kspace_method",
        "radial_basis",
        "weights",
        "species_channels",
    )

    def __init__(
        self,
        *,
        smearing,
        max_radial,
        max_angular,
        radius,
        exponent=1,
        center_atom_weight=1.0,
        k_cutoff=None,
        accuracy=None,
        kspace_method="auto",
        radial_basis="gto",
        weights=None,
        species_channels=True,
    ):
        self.smearing = check.positive_float("smearing", smearing)
        self.max_radial = check.int_in_range("max_radial", max_radial, 0, 30)
        self.max_angular = check.int_in_range("max_angular", max_angular, 0, 30)
        self.radius = check.positive_float("radius", radius)
        self.exponent = checked_exponent(exponent, max(SUPPORTED_EXPONENTS))
        self.center_atom_weight = check.finite_float("center_atom_weight", center_atom_weight)
        if k_cutoff is not None:
            k_cutoff = check.positive_float("k_cutoff", k_cutoff)
            if k_cutoff * self.smearing < MIN_KCUT_SMEARING:
                raise InputError(
                    f"`k_cutoff` is {k_cutoff} but with `smearing` {self.smearing} the product "
                    f"k_cutoff * smearing = {k_cutoff * self.smearing:.3g} must be at least "
                    f"{MIN_KCUT_SMEARING:.3f}: the smearing is too small for this k-cutoff and "
                    "the truncated Fourier sum would be wrong by more than 10 %"
                )
        self.k_cutoff = k_cutoff
        if accuracy is not None:
            if k_cutoff is not None:
                raise InputError(
                    f"`accuracy` is {accuracy} and `k_cutoff` is {k_cutoff}: give one of them "
                    "(accuracy lets lodekit choose the k-space cutoff)"
                )
            accuracy = check.positive_float("accuracy", accuracy)
            if not MIN_ACCURACY <= accuracy <= MAX_ACCURACY:
                raise InputError(
                    f"`accuracy` is {accuracy} but must be between {MIN_ACCURACY} and "
                    f"{MAX_ACCURACY} (a relative error: double precision cannot deliver less "
                    f"than {MIN_ACCURACY}, and the planner's error model holds up to "
                    f"{MAX_ACCURACY})"
                )
        self.accuracy = accuracy
        self.kspace_method = _checked_kspace_method(kspace_method)
        self.radial_basis = check.choice("radial_basis", radial_basis, tuple(RADIAL_BASES))
        self._basis = RADIAL_BASES[self.radial_basis](self.max_radial, self.radius)
        self._basis.check(self.max_angular)
        self._basis.check_smearing(self.smearing)
        self._set_weight_hypers(weights, species_channels)
        self._molecule_field = None
        self._remainder_fields = {}
        self._line_constant_cache = {}
        # tables are built lazily, possibly from several threads (one per structure)
        self._lock = threading.Lock()
        self._singles = {}

    @property
    def effective_k_cutoff(self) -> float:
        """The k-space cutoff actually used (1/Å)."""
        return self.k_cutoff if self.k_cutoff is not None else 1.2 * np.pi / self.smearing

    @property
    def molecule_field(self) -> RadialField:
        """The tabulated projection used for isolated molecules (built on first use)."""
        with self._lock:
            return self._build_molecule_field()

    def _build_molecule_field(self) -> RadialField:
        if self._molecule_field is None:
            basis, sigma, p = self._basis, self.smearing, self.exponent
            # past d_switch the multipole series of the bare 1/r^p is exact to double precision
            d_switch, n_terms = basis.far_field(sigma)
            tail = None
            if p >= 1:
                tail = MultipoleTail(basis, self.max_angular, p, n_terms)
            self._molecule_field = RadialField(
                basis,
                self.max_angular,
                lambda k: fourier_transform(k, sigma, p),
                sharpest_width=sigma,
                d_switch=d_switch,
                tail=tail,
                accuracy=TABLE_ACCURACY,
            )
        return self._molecule_field

    def _centre_field(self, smearing: float) -> np.ndarray:
        """C_n = sqrt(4 pi) ∫ r^2 R_n g_p dr, an isolated atom's own field (n,)."""
        return np.sqrt(4 * np.pi) * self._basis.centre_moment(smearing, self.exponent)

    def _line_constants(self, split: float) -> np.ndarray:
        """:func:`~lodekit.expansion.kspace.slab.line_constants` of this split, cached."""
        key = round(split, 12)
        with self._lock:
            if key not in self._line_constant_cache:
                self._line_constant_cache[key] = line_constants(
                    self._basis, self.max_angular, self.smearing, split, self.exponent
                )
            return self._line_constant_cache[key]

    # ------------------------------------------------------------------ periodic planning
    def _remainder_field(self, split: float) -> RadialField:
        """Tabulated projection of g_p(smearing) - g_p(split), cached per split."""
        key = round(split, 12)
        with self._lock:
            return self._build_remainder_field(key, split)

    def _build_remainder_field(self, key: float, split: float) -> RadialField:
        if key not in self._remainder_fields:
            sigma, p = self.smearing, self.exponent
            width = self._basis.decay_width
            # beyond this the remainder's projection is below 1e-15 of its value at 0
            d_max = remainder_range(split, width, 1e-16) + 2 * split
            self._remainder_fields[key] = RadialField(
                self._basis,
                self.max_angular,
                lambda k: fourier_transform_difference(k, sigma, split, p),
                sharpest_width=sigma,
                d_switch=d_max,
                tail=None,
                accuracy=TABLE_ACCURACY,
            )
        return self._remainder_fields[key]

    def _plan_system(self, system: System, n_centres: int, n_species: int) -> PeriodicPlan:
        workload = KspaceWorkload(
            system.cell,
            len(system),
            n_centres,
            n_species,
            (self.max_angular + 1) ** 2 * self._basis.size,
        )
        if self.accuracy is None:
            return self._plan_fixed_cutoff(workload)
        return self._plan_accuracy(system, workload)

    def _plan_fixed_cutoff(self, workload: KspaceWorkload) -> PeriodicPlan:
        """featomic's truncated sum at ``effective_k_cutoff``, by the cheapest backend."""
        methods = self._kspace_methods()
        method, _ = choose_kspace_method(
            methods, workload, self.effective_k_cutoff, FEATOMIC_NUFFT_EPS
        )
        return PeriodicPlan(
            "kspace",
            self.effective_k_cutoff,
            self.smearing,
            0.0,
            None,
            kspace_method=method,
            nufft_eps=KSPACE_BACKENDS[method].tolerance(FEATOMIC_NUFFT_EPS),
        )

    def _plan_accuracy(self, system: System, workload: KspaceWorkload) -> PeriodicPlan:
        """The cheapest split and backend that meet ``accuracy`` (math.md §4.3)."""
        heights = 1.0 / np.linalg.norm(np.linalg.inv(system.cell), axis=0)
        return self._plan_split(self.accuracy, workload, heights.min(), len(system) / system.volume)

    def _plan_split(
        self, accuracy: float, workload: KspaceWorkload, height: float, density: float
    ) -> PeriodicPlan:
        """The cheapest split and backend that meet ``accuracy`` for a cell whose shortest
        periodic height is ``height`` (Å) and whose atoms have ``density`` (1/Å^3; a slab's
        atoms fill less than the workload's stretched cell)."""
        if self.smearing > 0.5 * height:
            raise InputError(
                f"`smearing` is {self.smearing} but the cell is only {height:.3f} Å "
                "high: with `accuracy`, the smearing must not exceed half the shortest cell "
                "height (an atom's density would overlap its own periodic images)"
            )
        width = self._basis.decay_width
        # the k-space truncation gets half of the error budget, the real-space cut a quarter,
        # approximate backends (the NUFFT's transforms) a tenth
        tolerance = NUFFT_SHARE * accuracy
        split, method = choose_split(
            self.smearing,
            accuracy,
            workload,
            width,
            max_split=max(self.smearing, width, 0.5 * height),
            methods=self._kspace_methods(),
            tolerance=tolerance,
            occupied_volume=workload.n_atoms / density,
        )
        k_cutoff = kspace_cutoff_for(0.5 * accuracy, split)
        eps = KSPACE_BACKENDS[method].tolerance(tolerance)
        if split == self.smearing:
            return PeriodicPlan(
                "kspace", k_cutoff, split, 0.0, accuracy, kspace_method=method, nufft_eps=eps
            )
        # the switch starts where the neglected tail is within budget, so it costs no accuracy
        cutoff = self._remainder_cutoff(split, density, accuracy) + SWITCH_WIDTH
        return PeriodicPlan(
            "range_separated",
            k_cutoff,
            split,
            cutoff,
            accuracy,
            switch_width=SWITCH_WIDTH,
            kspace_method=method,
            nufft_eps=eps,
        )

    def _kspace_methods(self) -> tuple[str, ...]:
        if self.kspace_method != "auto":
            return (self.kspace_method,)
        return available_methods()

    def _switched_remainder(self, plan: PeriodicPlan) -> SwitchedField:
        """The remainder field of a range-separated plan, switched off at its cutoff."""
        return SwitchedField(
            self._remainder_field(plan.split_smearing),
            plan.real_space_cutoff - plan.switch_width,
            plan.switch_width,
        )

    def _remainder_cutoff(self, split: float, density: float, accuracy: float) -> float:
        """Smallest pair distance beyond which the neglected remainder, summed over an
        average density of neighbours, stays below a quarter of the error budget."""
        field = self._remainder_field(split)
        d = np.linspace(0.0, field.d_switch, 2001)
        envelope = np.abs(field(d)).max(axis=(1, 2))
        scale = np.abs(self._centre_field(self.smearing)).max()
        shell = 4 * np.pi * density * d * d * envelope * (d[1] - d[0])
        beyond = np.cumsum(shell[::-1])[::-1]  # neglected sum when cutting at d
        ok = np.flatnonzero(beyond <= 0.25 * accuracy * scale)
        return float(d[ok[0]]) if len(ok) else float(field.d_switch)

    def plan(self, structures) -> list[dict]:
        """How :meth:`compute` would evaluate each structure, one dict per structure.

        Periodic structures: ``method`` ("kspace" or "range_separated"), ``k_cutoff`` (1/Å),
        ``split_smearing`` (Å, the smearing of the k-space part), ``real_space_cutoff`` (Å, 0
        without range separation) and ``accuracy``. Slabs add ``pbc``, ``stretched_lengths``
        (Å), ``kvectors`` and ``tier_methods`` (one per stretched cell of in-plane lines) and
        ``line_nodes`` (quadrature nodes of the G = 0 line). Isolated molecules:
        ``{"method": "molecule", "table_accuracy": ...}``. Building the plan may tabulate the
        remainder field (cached for later calls).
        """

        systems = self._systems(structures)
        neighbor_types = self._neighbor_types(systems)
        n_species = len(neighbor_types)
        if self.exponents is not None:
            return self._plan_several(systems, neighbor_types)
        out = []
        for index, system in enumerate(systems):
            if system.periodic:
                system = _reduced(system)
                out.append(self._plan_system(system, len(system), n_species).as_dict())
            elif system.is_slab:
                self._check_system(system, index)
                out.append(self._slab_plan_dict(system, self._channels(system, neighbor_types)))
            else:
                out.append({"method": "molecule", "table_accuracy": TABLE_ACCURACY})
        return out

    # ------------------------------------------------------------------ evaluation
    def _kspace_problem(
        self,
        system: System,
        centres: np.ndarray,
        channels: Channels,
        plan: PeriodicPlan,
        cell: np.ndarray,
    ) -> KspaceProblem:
        """The k-space sum of one periodic structure under its plan, in ``cell`` (the
        structure's own, or a slab's stretched one; the one place it is built)."""
        return KspaceProblem(
            positions=system.positions,
            species_index=channels.index,
            n_species=channels.count,
            centres=centres,
            cell=cell,
            basis=self._basis,
            max_angular=self.max_angular,
            smearing=plan.split_smearing,
            exponent=self.exponent,
            k_cutoff=plan.k_cutoff,
            tolerance=plan.nufft_eps,
            weights=channels.weights,
        )

    def _periodic_corrections(
        self, system: System, problem: KspaceProblem, plan: PeriodicPlan
    ) -> PeriodicCorrections:
        """The k = 0 term and, for range-separated plans, the remainder of one structure."""
        remainder = None
        if plan.method == "range_separated":
            remainder = Remainder(
                self._switched_remainder(plan),
                plan.real_space_cutoff,
                self._centre_field(self.smearing) - self._centre_field(plan.split_smearing),
            )
        return PeriodicCorrections.build(system, problem, self.smearing, remainder)

    def _periodic_setup(self, system: System, centres: np.ndarray, channels: Channels):
        """(plan, k-space problem, backend, corrections) of one periodic structure (given with
        a reduced cell), refused when its estimated work exceeds the work limits."""
        plan = self._plan_system(system, len(centres), channels.planned)
        problem = self._kspace_problem(system, centres, channels, plan, system.cell)
        self._check_work(system, problem.workload, plan, self._kspace_way_out())
        if self.k_cutoff is not None:
            _check_some_kvector(system.cell, self.k_cutoff)
        corrections = self._periodic_corrections(system, problem, plan)
        return plan, problem, _backend(plan.kspace_method, channels), corrections

    def _check_work(
        self, system: System, workload: KspaceWorkload, plan: PeriodicPlan, way_out: str
    ) -> None:
        """Refuse a k-space sum (of ``workload``'s cell and k-vectors) or a range-separated
        remainder above the work limits (:mod:`~lodekit.expansion.limits`)."""
        backend = KSPACE_BACKENDS[plan.kspace_method]
        seconds = backend.cost(workload, plan.k_cutoff, plan.nufft_eps)
        check_kspace_work(workload.volume, plan.k_cutoff, seconds, way_out)
        if plan.real_space_cutoff > 0:
            # the range-separated remainder: a real-space sum over (centre, neighbour) pairs
            pairs = estimated_pairs(
                system.positions, system.cell, system.pbc, plan.real_space_cutoff
            )
            check_pairs(
                pairs * workload.n_centres / len(system),
                f"the real-space remainder (cutoff {plan.real_space_cutoff:.3g} Å)",
                f"a larger `accuracy` (now {plan.accuracy}), or fewer centres per structure",
            )

    def _kspace_way_out(self) -> str:
        """What to change when a bulk structure's k-space sum is refused."""
        if self.accuracy is None:
            return (
                f"give `accuracy` (range separation) instead of `k_cutoff` "
                f"{self.effective_k_cutoff:.4g}, a smaller `k_cutoff` or a larger `smearing` "
                f"(now {self.smearing})"
            )
        return (
            f"a larger `accuracy` (now {self.accuracy}) or a larger `smearing` "
            f"(now {self.smearing})"
        )

    def _compute_system(self, system: System, centres: np.ndarray, neighbor_types: np.ndarray):
        if self.exponents is not None:
            return self._compute_several(system, centres, neighbor_types)
        coeffs, info = self._coefficients(system, centres, self._channels(system, neighbor_types))
        return split_by_l(coeffs, self.max_angular), None, info

    def _batches(self, jobs: list, n_threads: int) -> list[list[int]]:
        """Bulk structures of one cell, size and centres (the frames of a constant-volume
        trajectory, a dataset of one box) are batched: their k-space sums share the cell's
        tables and run as one set of products (:func:`~lodekit.expansion.kspace.shells.
        shell_sum` of frames). A group is cut into at least ``n_threads`` batches, for the
        threads, of at most :data:`BATCH_ATOMS` atoms each."""
        if self.exponents is not None:
            return super()._batches(jobs, n_threads)
        groups: dict = {}
        for i, (system, centres) in enumerate(jobs):
            if system.periodic:
                key = (system.cell.tobytes(), len(system), centres.tobytes())
            else:
                key = i
            groups.setdefault(key, []).append(i)
        batches = []
        for members in groups.values():
            n_atoms = len(jobs[members[0]][0])
            parts = max(n_threads, -(-len(members) * n_atoms // BATCH_ATOMS))
            # no empty batch: a group of fewer structures than parts is one per batch
            batches.extend(
                part.tolist() for part in np.array_split(members, min(parts, len(members)))
            )
        return batches

    def _compute_batch(self, jobs: list, neighbor_types, n_threads: int) -> list:
        if self.exponents is not None or not all(system.periodic for system, _ in jobs):
            return super()._compute_batch(jobs, neighbor_types, n_threads)
        batch = [
            (system, centres, self._channels(system, neighbor_types)) for system, centres in jobs
        ]
        return [
            (split_by_l(coeffs, self.max_angular), None, info)
            for coeffs, info in self._periodic_coefficients(batch, n_threads)
        ]

    def _channel_values(self, system: System, centres: np.ndarray, channels: Channels):
        return self._coefficients(system, centres, channels)[0]

    def _coefficients(self, system: System, centres: np.ndarray, channels: Channels):
        """(coefficients (n_centres, channels.count, lm, n), info) of one structure."""
        if system.is_molecule:
            return self._compute_molecule(system, centres, channels)
        if system.is_slab:
            return self._compute_slab(system, centres, channels)
        return self._periodic_coefficients([(system, centres, channels)])[0]

    def _periodic_coefficients(self, batch: list, n_threads: int = 1) -> list:
        """[(coefficients, info)] of bulk structures [(system, centres, channels)]; the
        backend sums the k-space parts of all of them in one call (:meth:`KspaceBackend.values`),
        which batches the frames of one cell, with ``n_threads`` threads."""
        setups = []
        for system, centres, channels in batch:
            plan, problem, *rest = self._periodic_setup(_reduced(system), centres, channels)
            if n_threads > 1:  # else the backend's default (the NUFFT's: every core)
                problem = replace(problem, n_threads=n_threads)
            setups.append((plan, problem, *rest))
        backend = setups[0][2]
        if len(setups) > 1 and all(setup[2] is backend for setup in setups):
            values = backend.values([setup[1] for setup in setups])
        else:  # one structure, or plans that differ: no batch
            values = [own.value(problem) for _, problem, own, _ in setups]
        out = []
        for (_, centres, channels), (plan, _, _, corrections), value in zip(
            batch, setups, values, strict=True
        ):
            coeffs = corrections.add_values(value)
            self._add_centre_term(coeffs, centres, channels, -(1.0 - self.center_atom_weight))
            out.append((coeffs, plan.as_dict()))
        return out

    def _periodic_terms(self, system: System) -> PeriodicTerms:
        """The :class:`PeriodicTerms` of one bulk structure (single exponent), every atom a
        centre, with the plan and work limits of :meth:`compute`."""
        neighbor_types = self._neighbor_types([system])
        channels = self._channels(system, neighbor_types)
        centres = np.arange(len(system))
        plan, problem, _, corrections = self._periodic_setup(_reduced(system), centres, channels)
        return PeriodicTerms(
            plan,
            problem,
            corrections.k_zero_unit,
            -(1.0 - self.center_atom_weight) * self._centre_field(self.smearing),
            channels,
            self._channel_types(neighbor_types),
        )

    def _add_centre_term(
        self, coeffs: np.ndarray, centres: np.ndarray, channels: Channels, factor: float
    ) -> None:
        """Add ``factor`` times the centre's own field C_n (times the centre's weight) to
        its own channel, l = 0, in place."""
        term = factor * self._centre_field(self.smearing)
        rows = np.arange(len(centres))
        own = channels.index[centres]
        weights = channels.weight_of(centres)
        if weights is None:
            coeffs[rows, own, 0, :] += term
        else:
            coeffs[rows, own, 0, :] += weights[:, None] * term

    def _check_system(self, system: System, index: int) -> None:
        """Refuse an isolated molecule whose all-pairs sum would exceed the work limits (the
        periodic sums are checked once planned), and a slab with a fixed ``k_cutoff``."""
        if system.is_slab and self.k_cutoff is not None:
            raise InputError(
                f"`structures[{index}]` is a slab (pbc {list(system.pbc)}) but `k_cutoff` is "
                f"{self.k_cutoff}: a slab's sum has no truncated (featomic) form; give "
                f"`accuracy` instead, or neither (slabs then use accuracy="
                f"{DEFAULT_SLAB_ACCURACY:g})"
            )
        if system.is_molecule:
            check_pairs(
                float(len(system)) ** 2,
                f"`structures[{index}]`, an isolated molecule of {len(system)} atoms,",
                "give it a periodic cell or split the structure",
            )

    def _compute_molecule(self, system: System, centres: np.ndarray, channels: Channels):
        coeffs = molecule_sum(
            system.positions,
            channels.index,
            channels.count,
            centres,
            self.molecule_field,
            self.max_angular,
            self._basis.size,
            channels.weights,
        )
        self._add_centre_term(coeffs, centres, channels, self.center_atom_weight)
        info = {"method": "molecule", "table_accuracy": TABLE_ACCURACY}
        return coeffs, info

    # ------------------------------------------------------------------ gradients
    def _jacobian_system(
        self, system: System, centres: np.ndarray, neighbor_types: np.ndarray, with_strain: bool
    ) -> Jacobian:
        """Full Jacobian of :meth:`_compute_system` (the same terms, differentiated)."""
        if self.exponents is not None:
            return self._jacobian_several(system, centres, neighbor_types, with_strain)
        channels = self._channels(system, neighbor_types)
        if system.is_molecule:
            return self._jacobian_molecule(system, centres, channels, with_strain)
        n_lm = (self.max_angular + 1) ** 2
        shape = (len(centres), len(system), 3, len(neighbor_types), n_lm, self._basis.size)
        check_dense_jacobian(shape, with_strain)
        if system.is_slab:
            return self._jacobian_slab(system, centres, channels, with_strain)
        system = _reduced(system)
        _, problem, backend, corrections = self._periodic_setup(system, centres, channels)
        positions, strain = backend.jacobian(problem, with_strain)
        return corrections.jacobian(positions, strain)

    def _jacobian_molecule(
        self, system: System, centres: np.ndarray, channels: Channels, with_strain: bool
    ) -> Jacobian:
        return molecule_jacobian(
            system,
            centres,
            channels,
            self.molecule_field,
            self._basis.size,
            self.max_angular,
            with_strain,
        )

    def vector_jacobian_product(
        self, structures, upstream, selected_atoms=None, *, with_weights=False
    ) -> dict:
        """Gradients of E = sum_i sum_{a l m n} G[i, a, l, m, n] c[i, a, l, m, n].

        The contraction of the Jacobian with an upstream gradient G = dE/dc (for a linear
        model, its weights): what forces and stress of a model need, at about the cost of one
        evaluation of the coefficients, without the (centres x atoms) Jacobian.

        Parameters
        ----------
        structures : ase.Atoms, lodekit.System, or a list of them
            As for :meth:`compute`.
        upstream : list of ndarray, or Expansion
            ``upstream[l]`` has the shape of ``compute(structures, selected_atoms).values[l]``,
            (n_centres, n_species, 2l + 1, n_radial) (n_exponents x n_species channels with
            several exponents): dE/dc in units of E per coefficient.
        selected_atoms
            As for :meth:`compute`; must match the rows of ``upstream``.
        with_weights : bool, default False
            Also return dE/dw, the gradient with respect to the per-atom weights: the
            adjoint of every term, about the cost of one more evaluation, so it is computed
            only when asked for.

        Returns
        -------
        dict
            ``"positions"``: list with one (n_atoms, 3) array dE/dr per structure (forces are
            its negative); ``"strain"``: (n_structures, 3, 3), dE/d eps_ab for the homogeneous
            deformation r -> (1 + eps) r of positions and cell (the virial is its negative,
            the stress -dE/d eps / V); with ``with_weights``, ``"weights"``: list with one
            (n_atoms,) array dE/dw per structure.

        Notes
        -----
        Periodic structures: the k-space sum and, for range-separated plans, the real-space
        remainder over the pairs of the forward sum (switched off smoothly at its cutoff, so the
        coefficients and these gradients are continuous as pairs come and go). Isolated
        molecules: the tabulated projections of every pair, differentiated exactly.
        """
        systems, selection, neighbor_types, flat = self._gradient_inputs(
            structures, upstream, selected_atoms
        )
        n_species = len(neighbor_types) * len(self.exponents or [0])
        n_lm = (self.max_angular + 1) ** 2
        positions, strain, weights = [], np.zeros((len(systems), 3, 3)), []
        first = 0
        for index, (system, centres) in enumerate(zip(systems, selection, strict=True)):
            g = flat[first : first + len(centres)].reshape(len(centres), n_species, n_lm, -1)
            first += len(centres)
            gradient, strain[index] = self._vjp_system(system, centres, neighbor_types, g)
            positions.append(gradient)
            if with_weights:
                weights.append(self._weight_vjp(system, centres, neighbor_types, g))
        out = {"positions": positions, "strain": strain}
        if with_weights:
            out["weights"] = weights
        return out

    def _weight_vjp(self, system, centres, neighbor_types, upstream) -> np.ndarray:
        """dE/dw (n_atoms,) of one structure: the adjoint of every term (the k-space sum by
        its backend, a slab's normal line, the k = 0 and remainder terms, molecule pairs, the
        centre's own field), at about the cost of one evaluation."""
        if self.exponents is not None:
            return self._weight_vjp_several(system, centres, neighbor_types, upstream)
        channels = self._channels(system, neighbor_types)
        if system.is_slab:
            _, parts, line, corrections = self._slab_setup(system, centres, channels)
            out = line.weight_vjp(upstream) + corrections.weight_vjp(upstream)
            for problem, backend in parts:
                out += backend.weight_vjp(problem, upstream)
            factor = -(1.0 - self.center_atom_weight)
        elif system.is_molecule:
            out = np.zeros(len(system))
            g = upstream.reshape(len(centres) * channels.count, *upstream.shape[2:])
            for rows, _i, j, vectors, target in molecule_pair_blocks(
                system.positions, channels.index, channels.count, centres
            ):
                block_g = g[rows[0] * channels.count : (rows[-1] + 1) * channels.count]
                np.add.at(
                    out,
                    j,
                    pair_contractions(
                        block_g, target, vectors, self.molecule_field, self.max_angular
                    ),
                )
            factor = self.center_atom_weight
        else:
            system = _reduced(system)
            _, problem, backend, corrections = self._periodic_setup(system, centres, channels)
            out = backend.weight_vjp(problem, upstream) + corrections.weight_vjp(upstream)
            factor = -(1.0 - self.center_atom_weight)
        rows = np.arange(len(centres))
        own = upstream[rows, channels.index[centres], 0, :]
        np.add.at(out, centres, factor * (own @ self._centre_field(self.smearing)))
        return out

    def _vjp_system(
        self, system: System, centres: np.ndarray, neighbor_types: np.ndarray, upstream
    ) -> tuple[np.ndarray, np.ndarray]:
        """dE/dr (n_atoms, 3) and dE/d eps (3, 3) of one structure, for dE/dc ``upstream``
        (n_centres, n_species, lm, n)."""
        if self.exponents is not None:
            return self._vjp_several(system, centres, neighbor_types, upstream)
        channels = self._channels(system, neighbor_types)
        if system.is_slab:
            return self._vjp_slab(system, centres, channels, upstream)
        if system.is_molecule:
            return molecule_pair_gradients(
                system.positions,
                channels.index,
                channels.count,
                centres,
                self.molecule_field,
                self.max_angular,
                upstream,
                channels.weights,
            )
        system = _reduced(system)
        _, problem, backend, corrections = self._periodic_setup(system, centres, channels)
        gradient, strain = backend.vjp(problem, upstream, with_strain=True)
        return corrections.vjp(upstream, gradient, strain)

    # ------------------------------------------------------------------ slabs
    def _slab_plan(self, system: System, geometry: SlabGeometry, n_centres: int, n_species: int):
        """The split and k-space cutoff of a slab, planned on the stretched cell that holds as
        many k-vectors as its tiers would without a split."""
        accuracy = self.accuracy if self.accuracy is not None else DEFAULT_SLAB_ACCURACY
        k_cutoff = kspace_cutoff_for(0.5 * accuracy, self.smearing)
        check_slab_lines(geometry.area, k_cutoff, self._slab_way_out(accuracy))
        tiers = slab_tiers(geometry, k_cutoff, self._line_lengths(geometry, len(system), accuracy))
        counts = [tier.kvector_count(k_cutoff) for tier in tiers]
        total = sum(counts)
        length = (
            sum(c * tier.length for c, tier in zip(counts, tiers, strict=True)) / total
            if total
            else geometry.thickness + PLANNING_STRETCH
        )
        workload = KspaceWorkload(
            geometry.stretched_cell(length),
            len(system),
            n_centres,
            n_species,
            (self.max_angular + 1) ** 2 * self._basis.size,
        )
        density = len(system) / (geometry.area * max(geometry.thickness, 1.0))
        return self._plan_split(accuracy, workload, geometry.plane_heights.min(), density)

    def _slab_way_out(self, accuracy: float) -> str:
        """What to change when a slab's k-space sum is refused."""
        return (
            f"a larger `accuracy` (now {accuracy}), a larger `smearing` (now "
            f"{self.smearing}), a smaller in-plane cell, or a thinner slab"
        )

    def _line_lengths(self, geometry: SlabGeometry, n_atoms: int, accuracy: float):
        """g -> the stretched length each in-plane line needs (:func:`line_length`)."""
        scale = np.abs(self._centre_field(self.smearing)).max()
        budget = STRETCH_SHARE * accuracy * scale

        def lengths(g):
            return line_length(g, geometry, self._basis, self.max_angular, n_atoms, budget)

        return lengths

    def _slab_setup(self, system: System, centres: np.ndarray, channels: Channels):
        """(plan, [(problem, backend)] of the tiers, normal line, corrections) of a slab."""
        geometry = SlabGeometry.from_system(system)
        plan = self._slab_plan(system, geometry, len(centres), channels.planned)
        tiers = slab_tiers(
            geometry, plan.k_cutoff, self._line_lengths(geometry, len(system), plan.accuracy)
        )
        base = self._kspace_problem(
            system,
            centres,
            channels,
            plan,
            geometry.stretched_cell(geometry.thickness + PLANNING_STRETCH),
        )
        tiers, methods = self._merged_tiers(geometry, tiers, plan, base.workload)
        # refused before the Miller indices (the unbounded part) are built
        # the cube whose half k-sphere holds as many k-vectors as the tiers
        n_kvectors = sum(tier.kvector_count(plan.k_cutoff) for tier in tiers)
        side = (n_kvectors * 12 * np.pi**2 / plan.k_cutoff**3) ** (1 / 3)
        way_out = self._slab_way_out(plan.accuracy)
        self._check_work(system, replace(base.workload, cell=np.eye(3) * side), plan, way_out)
        parts = []
        for tier, method in zip(tiers, methods, strict=True):
            miller = tier.miller(geometry, plan.k_cutoff)
            problem = replace(base, cell=geometry.stretched_cell(tier.length), miller=miller)
            parts.append((problem, _backend(method, channels)))
        line = NormalLine(
            geometry,
            base.species_index,
            base.n_species,
            centres,
            self._basis,
            self.max_angular,
            plan.split_smearing,
            self.exponent,
            plan.k_cutoff,
            self._line_constants(plan.split_smearing),
            channels.weights,
        )
        corrections = self._periodic_corrections(system, base, plan)
        return plan, parts, line, corrections

    def _merged_tiers(self, geometry: SlabGeometry, tiers, plan, workload: KspaceWorkload):
        """The tiers to evaluate and the backend of each: the shortest ones merged into one
        cell for the plan's backend, as far as the backends' cost models say it pays (an
        approximate backend costs about the same whatever the number of lines in its grid);
        the others by the direct sum, or by the backend ``kspace_method`` forces."""
        if not tiers:
            return [], []
        others = plan.kspace_method if self.kspace_method != "auto" else "direct"

        def cost(method, tier):
            tier_workload = replace(
                workload,
                cell=geometry.stretched_cell(tier.length),
                n_kvectors=tier.kvector_count(plan.k_cutoff),
            )
            backend = KSPACE_BACKENDS[method]
            return backend.cost(tier_workload, plan.k_cutoff, plan.nufft_eps)

        best, merged = None, tiers[0]
        for j in range(len(tiers)):
            if j:
                merged = merged.merged(tiers[j])
            total = cost(plan.kspace_method, merged)
            total += sum(cost(others, tier) for tier in tiers[j + 1 :])
            if best is None or total < best[0]:
                best = (total, j, merged)
        _, j, merged = best
        return [merged, *tiers[j + 1 :]], [plan.kspace_method] + [others] * (len(tiers) - j - 1)

    def _slab_plan_dict(self, system: System, channels: Channels) -> dict:
        plan, parts, line, _ = self._slab_setup(system, np.arange(len(system)), channels)
        return _slab_info(system, plan, parts, line)

    def _compute_slab(self, system: System, centres: np.ndarray, channels: Channels):
        plan, parts, line, corrections = self._slab_setup(system, centres, channels)
        coeffs = line.value()
        for problem, backend in parts:
            coeffs += backend.value(problem)
        coeffs = corrections.add_values(coeffs)
        self._add_centre_term(coeffs, centres, channels, -(1.0 - self.center_atom_weight))
        return coeffs, _slab_info(system, plan, parts, line)

    def _vjp_slab(self, system, centres, channels, upstream):
        _, parts, line, corrections = self._slab_setup(system, centres, channels)
        gradient, strain = line.vjp(upstream)
        for problem, backend in parts:
            g, s = backend.vjp(problem, upstream, with_strain=True)
            gradient += g
            strain += s
        return corrections.vjp(upstream, gradient, strain)

    def _jacobian_slab(self, system, centres, channels, with_strain):
        _, parts, line, corrections = self._slab_setup(system, centres, channels)
        positions, strain = line.jacobian(with_strain)
        for problem, backend in parts:
            p, s = backend.jacobian(problem, with_strain)
            positions += p
            if with_strain:
                strain += s
        return corrections.jacobian(positions, strain)


def _slab_info(system: System, plan: PeriodicPlan, parts, line: NormalLine) -> dict:
    """What :meth:`LodeSphericalExpansion.plan` and ``Expansion.info`` report for a slab:
    the plan, and per tier its stretched length (Å), k-vectors and backend."""
    info = plan.as_dict()
    info["pbc"] = list(system.pbc)
    info["stretched_lengths"] = [float(np.linalg.norm(problem.cell[2])) for problem, _ in parts]
    info["kvectors"] = [len(problem.miller) for problem, _ in parts]
    info["tier_methods"] = [
        next(name for name, known in KSPACE_BACKENDS.items() if known is backend)
        for _, backend in parts
    ]
    info["line_nodes"] = len(line.q)
    return info
