"""LODE with several exponents in one pass (docs/conventions.md, "Several exponents").

The fields 1/r^p of different exponents differ only in the radial factor ĝ_p(k) of the
k-space sum and in the tabulated projections of the real-space sums. Everything else, the
pair lists, the phases exp(i k·r_j), the structure factors rho_a(k) and Y_lm, is shared: the
exponents become one sum whose radial axis holds every exponent's radial functions side by
side, (n_exponents x n_radial), exponent-major (:class:`KspaceProblem` with a tuple exponent,
:class:`~lodekit.expansion.realspace.StackedField`). The result is then reordered so that the
neighbour channels run over (exponent, species) pairs, exponent-major.

Where the exponents' periodic plans differ in more than the remainder's cutoff, and for slabs
(whose G = 0 line depends on p in closed form), each exponent is computed on its own and the
channels are concatenated.
"""

from __future__ import annotations

import numbers
from dataclasses import replace

import numpy as np

from ..errors import InputError, describe
from ..systems import System
from .jacobian import Jacobian
from .kspace import KSPACE_BACKENDS, PeriodicCorrections, Remainder
from .lattice import reduced_cell
from .limits import check_dense_jacobian
from .realspace import (
    StackedField,
    molecule_jacobian,
    molecule_pair_gradients,
    molecule_sum,
)
from .result import split_by_l

__all__ = ["SeveralExponents", "channels_first", "checked_exponent", "radial_stacked"]


def checked_exponent(value, highest: int):
    """``value`` as an int (one exponent) or a list of distinct ints (several), each in
    0..``highest``; anything else is one :class:`InputError` naming ``exponent``."""
    if isinstance(value, (list, tuple)):
        rule = (
            f"an integer from 0 to {highest}, or a non-empty list of distinct integers from 0 "
            f"to {highest}"
        )
        if not value:
            raise InputError(f"`exponent` is {value!r} but must be {rule}")
        for p in value:
            if isinstance(p, bool) or not isinstance(p, numbers.Integral) or not 0 <= p <= highest:
                raise InputError(f"`exponent` is {value!r}: entry {p!r} is not {rule}")
        exponents = [int(p) for p in value]
        if len(set(exponents)) != len(exponents):
            raise InputError(f"`exponent` is {value!r}: repeated entries, but it must be {rule}")
        return exponents
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(
            f"`exponent` is {describe(value)} but must be an integer from 0 to {highest}, or "
            "a non-empty list of distinct such integers"
        )
    if not 0 <= value <= highest:
        raise InputError(f"`exponent` is {int(value)} but must be between 0 and {highest}")
    return int(value)


def channels_first(array: np.ndarray, n_exponents: int) -> np.ndarray:
    """(..., n_species, lm, n_exponents x n) -> (..., n_exponents x n_species, lm, n)."""
    *lead, n_species, n_lm, width = array.shape
    out = array.reshape(*lead, n_species, n_lm, n_exponents, width // n_exponents)
    out = np.ascontiguousarray(np.moveaxis(out, -2, -4))
    return out.reshape(*lead, n_exponents * n_species, n_lm, width // n_exponents)


def radial_stacked(array: np.ndarray, n_exponents: int) -> np.ndarray:
    """The inverse of :func:`channels_first`."""
    *lead, n_channels, n_lm, n_radial = array.shape
    out = array.reshape(*lead, n_exponents, n_channels // n_exponents, n_lm, n_radial)
    out = np.ascontiguousarray(np.moveaxis(out, -4, -2))
    return out.reshape(*lead, n_channels // n_exponents, n_lm, n_exponents * n_radial)


def _reduced(system: System) -> System:
    cell = reduced_cell(system.cell)
    if cell is system.cell:
        return system
    return System(system.positions, system.numbers, cell, pbc=True, weights=system.weights)


class SeveralExponents:
    """The multi-exponent paths of :class:`~lodekit.expansion.lode.LodeSphericalExpansion`.

    Each exponent has a single-exponent calculator of the same hyperparameters
    (:meth:`_single`), which holds that exponent's tables and plans; the shared sums are
    built from them.
    """

    @property
    def exponents(self) -> tuple[int, ...] | None:
        """The exponents of a multi-exponent calculator, in channel order; None for one int."""
        return tuple(self.exponent) if isinstance(self.exponent, list) else None

    def _channel_labels(self, neighbor_types: np.ndarray):
        """(atomic number, exponent) of every neighbour channel; exponents None for one."""
        neighbor_types = self._channel_types(neighbor_types)
        if self.exponents is None:
            return neighbor_types, None
        n_species = len(neighbor_types)
        return (
            np.tile(neighbor_types, len(self.exponents)),
            np.repeat(np.array(self.exponents, dtype=np.int64), n_species),
        )

    def _stacked_molecule_field(self) -> StackedField:
        """The molecule tables of every exponent, radial functions side by side."""
        return StackedField([s.molecule_field for s in self._singles_list()])

    def _single(self, exponent: int):
        """The single-exponent calculator of ``exponent`` (cached: it keeps its tables)."""
        with self._lock:
            if exponent not in self._singles:
                hypers = self.get_hypers()
                hypers["exponent"] = exponent
                self._singles[exponent] = type(self)(**hypers)
            return self._singles[exponent]

    def _singles_list(self) -> list:
        return [self._single(p) for p in self.exponents]

    # ------------------------------------------------------------------ setup
    def _shared_periodic(self, system: System, centres: np.ndarray, neighbor_types: np.ndarray):
        """(plan dicts, k-space problem, backend, corrections, channels) of one periodic
        structure (with a reduced cell) shared by every exponent, or None when the exponents'
        plans differ in more than the remainder's cutoff. The problem's radial axis holds every
        exponent's functions (exponent-major); each exponent keeps its own plan's decisions,
        so that its channels equal its single-exponent calculation."""
        singles = self._singles_list()
        channels = self._channels(system, neighbor_types)
        plans = [s._plan_system(system, len(centres), channels.planned) for s in singles]
        if any(
            replace(p, real_space_cutoff=0.0) != replace(plans[0], real_space_cutoff=0.0)
            for p in plans
        ):
            return None
        plan = replace(plans[0], real_space_cutoff=max(p.real_space_cutoff for p in plans))
        problem = singles[0]._kspace_problem(system, centres, channels, plan, system.cell)
        problem = replace(problem, exponent=self.exponents)
        self._check_work(system, problem.workload, plan, self._kspace_way_out())
        remainder = None
        if plan.method == "range_separated":
            # pairs within the largest cutoff; each exponent's switched field is zero beyond its own
            fields = [s._switched_remainder(p) for s, p in zip(singles, plans, strict=True)]
            centre_self = np.concatenate(
                [
                    s._centre_field(self.smearing) - s._centre_field(plan.split_smearing)
                    for s in singles
                ]
            )
            remainder = Remainder(StackedField(fields), plan.real_space_cutoff, centre_self)
        corrections = PeriodicCorrections.build(system, problem, self.smearing, remainder)
        infos = [p.as_dict() for p in plans]
        return infos, problem, KSPACE_BACKENDS[plan.kspace_method], corrections, channels

    def _several_info(self, infos: list[dict], shared: bool) -> dict:
        """One structure's info: the first exponent's plan, every exponent's under
        ``per_exponent``, and whether their sums were shared."""
        info = dict(infos[0])
        if shared and "real_space_cutoff" in info:
            # the shared pair list reaches the largest exponent's cutoff
            info["real_space_cutoff"] = max(i["real_space_cutoff"] for i in infos)
        info["exponents"] = list(self.exponents)
        info["per_exponent"] = infos
        info["shared"] = shared
        return info

    def _centre_terms(self, coeffs, centres, channels, factor: float) -> None:
        """Add ``factor`` x C_n of every exponent (times the centre's weight) to the centre's
        own channel of ``coeffs`` (n_centres, n_exponents x channels.count, lm, n), in place."""
        n = channels.count
        for e, single in enumerate(self._singles_list()):
            single._add_centre_term(coeffs[:, e * n : (e + 1) * n], centres, channels, factor)

    # ------------------------------------------------------------------ values
    def _compute_several(self, system: System, centres: np.ndarray, neighbor_types: np.ndarray):
        n_exp = len(self.exponents)
        singles = self._singles_list()
        if system.is_molecule:
            channels = self._channels(system, neighbor_types)
            coeffs = molecule_sum(
                system.positions,
                channels.index,
                channels.count,
                centres,
                self._stacked_molecule_field(),
                self.max_angular,
                n_exp * self._basis.size,
                channels.weights,
            )
            coeffs = channels_first(coeffs, n_exp)
            self._centre_terms(coeffs, centres, channels, self.center_atom_weight)
            info = dict(singles[0].plan(system)[0], exponents=list(self.exponents), shared=True)
            return split_by_l(coeffs, self.max_angular), None, info
        shared = None
        if not system.is_slab:
            shared = self._shared_periodic(_reduced(system), centres, neighbor_types)
        if shared is None:
            parts = [s._compute_system(system, centres, neighbor_types) for s in singles]
            values = [
                np.concatenate([part[0][l] for part in parts], axis=1)
                for l in range(self.max_angular + 1)
            ]
            return values, None, self._several_info([part[2] for part in parts], False)
        infos, problem, backend, corrections, channels = shared
        coeffs = channels_first(corrections.add_values(backend.value(problem)), n_exp)
        self._centre_terms(coeffs, centres, channels, -(1.0 - self.center_atom_weight))
        return split_by_l(coeffs, self.max_angular), None, self._several_info(infos, True)

    def _plan_several(self, systems: list, neighbor_types: np.ndarray) -> list[dict]:
        """:meth:`plan` of a multi-exponent calculator."""
        out = []
        for system in systems:
            if system.periodic:
                reduced = _reduced(system)
                n = len(reduced)
                singles = self._singles_list()
                plans = [s._plan_system(reduced, n, len(neighbor_types)) for s in singles]
                shared = all(
                    replace(p, real_space_cutoff=0.0) == replace(plans[0], real_space_cutoff=0.0)
                    for p in plans
                )
                out.append(self._several_info([p.as_dict() for p in plans], shared))
            else:
                infos = [s.plan(system)[0] for s in self._singles_list()]
                out.append(self._several_info(infos, system.is_molecule))
        return out

    # ------------------------------------------------------------------ gradients
    def _shared_or_none(self, system, centres, neighbor_types):
        """:meth:`_shared_periodic` of a bulk structure; None for slabs."""
        if system.is_slab:
            return None
        return self._shared_periodic(_reduced(system), centres, neighbor_types)

    def _jacobian_several(self, system, centres, neighbor_types, with_strain) -> Jacobian:
        n_exp = len(self.exponents)
        n_lm = (self.max_angular + 1) ** 2
        singles = self._singles_list()
        if system.is_molecule:
            field = self._stacked_molecule_field()
            jacobian = molecule_jacobian(
                system,
                centres,
                self._channels(system, neighbor_types),
                field,
                n_exp * self._basis.size,
                self.max_angular,
                with_strain,
            )
            return _channels_first_jacobian(jacobian, n_exp)
        shape = (len(centres), len(system), 3, n_exp * len(neighbor_types), n_lm, self._basis.size)
        check_dense_jacobian(shape, with_strain)
        shared = self._shared_or_none(system, centres, neighbor_types)
        if shared is None:
            return _concatenate_jacobians(
                [s._jacobian_system(system, centres, neighbor_types, with_strain) for s in singles]
            )
        _, problem, backend, corrections, _ = shared
        positions, strain = backend.jacobian(problem, with_strain)
        return _channels_first_jacobian(corrections.jacobian(positions, strain), n_exp)

    def _vjp_several(self, system, centres, neighbor_types, upstream):
        """dE/dr and dE/d eps for dE/dc ``upstream`` (n_centres, n_channels, lm, n)."""
        n_exp = len(self.exponents)
        singles = self._singles_list()
        if system.is_molecule:
            channels = self._channels(system, neighbor_types)
            return molecule_pair_gradients(
                system.positions,
                channels.index,
                channels.count,
                centres,
                self._stacked_molecule_field(),
                self.max_angular,
                radial_stacked(upstream, n_exp),
                channels.weights,
            )
        shared = self._shared_or_none(system, centres, neighbor_types)
        if shared is None:
            gradient, strain = np.zeros((len(system), 3)), np.zeros((3, 3))
            for single, part in zip(singles, self._per_exponent(upstream), strict=True):
                g, s = single._vjp_system(system, centres, neighbor_types, part)
                gradient += g
                strain += s
            return gradient, strain
        _, problem, backend, corrections, _ = shared
        stacked = radial_stacked(upstream, n_exp)
        gradient, strain = backend.vjp(problem, stacked, with_strain=True)
        return corrections.vjp(stacked, gradient, strain)

    def _per_exponent(self, array: np.ndarray) -> list[np.ndarray]:
        """(n, n_exponents x n_channels, ...) -> one (n, n_channels, ...) view per exponent."""
        n = array.shape[1] // len(self.exponents)
        return [array[:, e * n : (e + 1) * n] for e in range(len(self.exponents))]

    def _weight_vjp_several(self, system, centres, neighbor_types, upstream) -> np.ndarray:
        """dE/dw (n_atoms,): the sum of every exponent's (computed exponent by exponent)."""
        return sum(
            single._weight_vjp(system, centres, neighbor_types, part)
            for single, part in zip(self._singles_list(), self._per_exponent(upstream), strict=True)
        )

    def _weight_jacobian(self, system, centres, neighbor_types):
        """d c / d w (:meth:`CalculatorBase._weight_jacobian`), exponent by exponent for
        several exponents, channels side by side on the union of their rows."""
        if self.exponents is None:
            return super()._weight_jacobian(system, centres, neighbor_types)
        parts = [s._weight_jacobian(system, centres, neighbor_types) for s in self._singles_list()]
        keys = np.unique(np.concatenate([k for k, _ in parts]), axis=0).reshape(-1, 2)
        blocks = []
        for part_keys, values in parts:
            block = np.zeros((len(keys), *values.shape[1:]))
            block[_rows_of(keys, part_keys)] = values
            blocks.append(block)
        return keys.astype(np.int64), np.concatenate(blocks, axis=1)


def _rows_of(keys: np.ndarray, some: np.ndarray) -> np.ndarray:
    """Row of each (centre, atom) of ``some`` in the sorted, distinct ``keys``."""
    width = int(max(keys[:, 1].max(initial=0), some[:, 1].max(initial=0))) + 1
    return np.searchsorted(keys[:, 0] * width + keys[:, 1], some[:, 0] * width + some[:, 1])


def _channels_first_jacobian(jacobian: Jacobian, n_exponents: int) -> Jacobian:
    strain = jacobian.strain
    return Jacobian(
        jacobian.keys,
        channels_first(jacobian.positions, n_exponents),
        None if strain is None else channels_first(strain, n_exponents),
    )


def _concatenate_jacobians(jacobians: list[Jacobian]) -> Jacobian:
    """The Jacobians of several exponents, channels side by side (rows aligned by key)."""
    keys = np.unique(np.concatenate([j.keys for j in jacobians]), axis=0).reshape(-1, 2)
    positions = []
    for j in jacobians:
        block = np.zeros((len(keys), *j.positions.shape[1:]))
        block[_rows_of(keys, j.keys)] = j.positions
        positions.append(block)
    strain = None
    if jacobians[0].strain is not None:
        strain = np.concatenate([j.strain for j in jacobians], axis=3)
    return Jacobian(keys.astype(np.int64), np.concatenate(positions, axis=2), strain)
