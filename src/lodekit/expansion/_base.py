"""Shared machinery of the public calculators: hyperparameter JSON and atom selection."""

from __future__ import annotations

import inspect
import json
import os

import numpy as np

from ..errors import InputError, describe
from ..systems import System, as_systems
from . import limits
from .channels import ALL_ATOMS, Channels
from .jacobian import Jacobian
from .result import GRADIENT_PARAMETERS, Expansion, Gradient, split_gradient_by_l
from .threads import one_blas_thread, thread_pool

__all__ = ["CalculatorBase"]

#: Largest (centres x atoms x coefficients) block of unit-weight contributions formed at once
#: for derivatives with respect to the weights (float64 numbers).
WEIGHT_BLOCK = 1 << 23

#: Hyperparameters left out of :meth:`CalculatorBase.get_hypers` at their default value, so
#: that recipes, stores and model files written before they existed keep their digests.
OPTIONAL_HYPERS = {"weights": None, "species_channels": True}


class CalculatorBase:
    """Keyword-only hyperparameters, stored as plain attributes, with JSON round-trip.

    Subclasses define ``_hyper_names`` and a ``_compute_system(system, centres, types)``
    method returning a list (per l) of arrays (n_centres, n_species, 2l+1, n_radial), a
    boolean (n_centres, n_species) mask of the channels that received a contribution (None
    when all did) and a JSON-serialisable dict describing how the structure was computed.
    """

    _hyper_names: tuple[str, ...] = ()
    name = "calculator"

    def get_hypers(self) -> dict:
        """Hyperparameters as a JSON-serialisable dict (featomic 0.6 names); ``weights`` and
        ``species_channels`` only when not at their defaults (None, True)."""
        return {
            key: getattr(self, key)
            for key in self._hyper_names
            if key not in OPTIONAL_HYPERS or getattr(self, key) != OPTIONAL_HYPERS[key]
        }

    def _set_weight_hypers(self, weights, species_channels) -> None:
        """Validate and store ``weights`` (None or an ase array name) and
        ``species_channels`` (bool)."""
        if weights is not None and (not isinstance(weights, str) or not weights):
            raise InputError(
                f"`weights` is {describe(weights)}; expected None or the name of a per-atom "
                "array of ase.Atoms inputs (e.g. 'initial_charges')"
            )
        if not isinstance(species_channels, (bool, np.bool_)):
            raise InputError(
                f"`species_channels` is {describe(species_channels)}; expected True (one "
                "channel per species) or False (one channel for all atoms)"
            )
        self.weights = weights
        self.species_channels = bool(species_channels)

    def _systems(self, structures) -> list[System]:
        """``structures`` as Systems, ase.Atoms inputs weighted by the ``weights`` array."""
        return as_systems(structures, weights=self.weights)

    def _neighbor_types(self, systems: list[System]) -> np.ndarray:
        """Labels of the neighbour channels: the species present, or [:data:`ALL_ATOMS`]."""
        return self._channel_types(np.unique(np.concatenate([s.numbers for s in systems])))

    def _channels(self, system: System, neighbor_types: np.ndarray) -> Channels:
        return Channels.of(system, neighbor_types, self.species_channels)

    def to_json(self) -> str:
        return json.dumps({"calculator": self.name, **self.get_hypers()})

    @classmethod
    def from_json(cls, text: str):
        """Rebuild a calculator from :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"`text` is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise InputError(f"`text` holds {describe(data)}; expected a JSON object")
        data = dict(data)
        name = data.pop("calculator", cls.name)
        if name != cls.name:
            raise InputError(f"`text` describes calculator {name!r}, not {cls.name!r}")
        unknown = sorted(set(data) - set(cls._hyper_names))
        if unknown:
            raise InputError(
                f"`text` has unknown hyperparameter(s) {unknown}; expected {list(cls._hyper_names)}"
            )
        missing = [name for name in cls._required_hypers() if name not in data]
        if missing:
            raise InputError(f"`text` lacks hyperparameter(s) {missing}, which {cls.name} requires")
        return cls(**data)

    @classmethod
    def _required_hypers(cls) -> list[str]:
        """Keyword arguments of the constructor without a default, in signature order."""
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [
            p.name
            for p in parameters
            if p.kind is p.KEYWORD_ONLY and p.default is inspect.Parameter.empty
        ]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_hypers().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_hypers() == other.get_hypers()

    __hash__ = None  # mutable-free but compared by value; not meant as dict keys

    # ------------------------------------------------------------------------------------
    def _check_system(self, system: System, index: int) -> None:
        """Hook for calculator-specific structure requirements."""

    def _prepare(self) -> None:
        """Hook: build lazy tables before structures are dispatched to threads."""

    def _channel_labels(self, neighbor_types: np.ndarray):
        """(atomic number of every neighbour channel, the exponent of every channel or None):
        hook for calculators whose channels are not the species alone."""
        return self._channel_types(neighbor_types), None

    def _channel_types(self, neighbor_types: np.ndarray) -> np.ndarray:
        """``neighbor_types``, or the single all-atoms channel of ``species_channels=False``."""
        if not self.species_channels:
            return np.array([ALL_ATOMS], dtype=np.int64)
        return np.asarray(neighbor_types)

    def _gradient_inputs(self, structures, upstream, selected_atoms):
        """Validated inputs of ``vector_jacobian_product``: (systems, per-structure centres,
        neighbour types, upstream as (n_rows, n_species, (L+1)^2, n_radial))."""
        systems = self._systems(structures)
        selection = _normalise_selection(selected_atoms, systems)
        for i, system in enumerate(systems):
            self._check_system(system, i)
        neighbor_types = self._neighbor_types(systems)
        n_rows = sum(len(c) for c in selection)
        values = getattr(upstream, "values", upstream)
        if not isinstance(values, (list, tuple)) or len(values) != self.max_angular + 1:
            raise InputError(
                f"`upstream` must be a list of {self.max_angular + 1} arrays (one per l, as "
                "Expansion.values)"
            )
        parts = []
        for l, block in enumerate(values):
            block = np.asarray(block, dtype=np.float64)
            n_channels = len(self._channel_labels(neighbor_types)[0])
            expected = (n_rows, n_channels, 2 * l + 1, self._basis.size)
            if block.shape != expected:
                raise InputError(
                    f"`upstream[{l}]` has shape {block.shape}; expected {expected} (the shape "
                    "of compute(structures, selected_atoms).values[l])"
                )
            if not np.all(np.isfinite(block)):
                raise InputError(f"`upstream[{l}]` contains NaN or infinite values")
            parts.append(block)
        return systems, selection, neighbor_types, np.concatenate(parts, axis=2)

    def compute(
        self, structures, selected_atoms=None, *, gradients=None, n_threads=None
    ) -> Expansion:
        """Expand the environments of the selected atoms.

        Parameters
        ----------
        structures : ase.Atoms, lodekit.System, or a list of them
        selected_atoms : None, array of int, or list of (array of int or None)
            Centres to compute. For one structure an index array is accepted; for several,
            one entry per structure (None for all atoms). Default: every atom.
        n_threads : int, optional
            Threads: structures computed concurrently (SOAP: chunks of the batch's
            neighbour pairs). Default: the ``OMP_NUM_THREADS`` environment variable if set,
            else the number of usable cores. Within one structure, dense products use the
            BLAS threads of numpy.

        Returns
        -------
        Expansion
            Rows in order of system, then of the given atom indices.
        """
        systems = self._systems(structures)
        selection = _normalise_selection(selected_atoms, systems)
        for i, system in enumerate(systems):
            self._check_system(system, i)
        gradients = _check_gradients(gradients)
        neighbor_types = self._neighbor_types(systems)
        n_threads = _thread_count(n_threads)
        self._prepare()
        values, has_neighbors, infos = self._compute_values(
            systems, selection, neighbor_types, n_threads
        )
        jobs = list(zip(systems, selection, strict=True))
        jacobians, weight_jacobians = [], []
        if "positions" in gradients or "strain" in gradients:

            def jacobian(job):
                return self._jacobian_system(job[0], job[1], neighbor_types, "strain" in gradients)

            jacobians = _map(jacobian, jobs, n_threads)
        if "weights" in gradients:

            def weight_jacobian(job):
                return self._weight_jacobian(job[0], job[1], neighbor_types)

            weight_jacobians = _map(weight_jacobian, jobs, n_threads)
        samples = []
        for index, (system, centres) in enumerate(jobs):
            samples.append(
                np.column_stack(
                    [np.full(len(centres), index), centres, system.numbers[centres]]
                ).astype(np.int64)
            )
        channel_types, exponents = self._channel_labels(neighbor_types)
        return Expansion(
            values=values,
            samples=np.concatenate(samples).reshape(-1, 3),
            neighbor_types=channel_types,
            hypers=json.loads(self.to_json()),
            has_neighbors=has_neighbors,
            info={"structures": infos},
            gradients=_assemble_gradients(
                gradients, jacobians, weight_jacobians, jobs, self.max_angular
            ),
            exponents=exponents,
        )

    def _compute_values(self, systems, selection, neighbor_types, n_threads):
        """Coefficients of all selected centres of all structures.

        Returns
        -------
        values : list of ndarray
            Per l, (n_rows, n_species, 2l+1, n_radial), rows in order of structure then centre.
        has_neighbors : ndarray of bool, shape (n_rows, n_species), or None
        infos : list of dict
            One per structure.
        """
        jobs = list(zip(systems, selection, strict=True))
        batches = self._batches(jobs, n_threads)
        # threads left over when there are fewer batches than threads go inside the batches
        inner = max(1, n_threads // len(batches)) if batches else 1

        def run(batch):
            return self._compute_batch([jobs[i] for i in batch], neighbor_types, inner)

        results = [None] * len(jobs)
        for batch, outputs in zip(batches, _map(run, batches, n_threads), strict=True):
            for i, output in zip(batch, outputs, strict=True):
                results[i] = output
        parts = [result[0] for result in results]
        masks = [result[1] for result in results]
        values = [np.concatenate([p[l] for p in parts]) for l in range(len(parts[0]))]
        has_neighbors = None if masks[0] is None else np.concatenate(masks)
        return values, has_neighbors, [result[2] for result in results]

    def _batches(self, jobs: list, n_threads: int) -> list[list[int]]:
        """The jobs (system, centres) grouped into batches computed by one call of
        :meth:`_compute_batch` each: one job per batch, unless the calculator shares work
        between structures."""
        return [[i] for i in range(len(jobs))]

    def _compute_batch(self, jobs: list, neighbor_types, n_threads: int) -> list:
        """:meth:`_compute_system` of every job of a batch, in order; ``n_threads`` is what a
        batch may use inside (more than one when there are fewer batches than threads)."""
        return [self._compute_system(system, centres, neighbor_types) for system, centres in jobs]

    def _compute_system(self, system, centres, neighbor_types):
        raise NotImplementedError  # pragma: no cover - or _compute_values is overridden

    def _jacobian_system(self, system, centres, neighbor_types, with_strain) -> Jacobian:
        raise NotImplementedError  # pragma: no cover - every calculator defines it

    def _channel_values(self, system, centres, channels: Channels) -> np.ndarray:
        """Coefficients of one structure in the given channels, (n_centres, channels.count,
        (L+1)^2, n_radial)."""
        raise NotImplementedError  # pragma: no cover - every calculator defines it

    def _unit_contributions(self, system, centres, neighbor_types):
        """Blocks (atoms, c) of unit-weight contributions: c[i, k] (n_centres, len(atoms),
        (L+1)^2, n_radial) is d c[i, channel of atoms[k]] / d w_{atoms[k]}, with the channels of
        the structure's own plan (:meth:`Channels.atoms`). The coefficients are linear in the
        weights, so this is exact; its cost is that of one evaluation per block of atoms."""
        channels = self._channels(system, neighbor_types)
        n_coefficients = (self.max_angular + 1) ** 2 * self._basis.size
        step = max(1, WEIGHT_BLOCK // max(1, len(centres) * n_coefficients))
        for start in range(0, len(system), step):
            atoms = np.arange(start, min(start + step, len(system)))
            yield channels, atoms, self._channel_values(system, centres, channels.atoms(atoms))

    def _weight_jacobian(self, system, centres, neighbor_types) -> tuple[np.ndarray, np.ndarray]:
        """(keys (n_rows, 2) of (centre row, atom), d c / d w (n_rows, n_species, lm, n)):
        every (centre, atom) whose derivative is not identically zero."""
        n_lm, n_rad = (self.max_angular + 1) ** 2, self._basis.size
        shape = (len(centres), len(system), len(neighbor_types), n_lm, n_rad)
        size = 8.0 * float(np.prod(shape, dtype=np.float64))
        limit = limits.WORK_LIMITS.max_jacobian_bytes  # the module's: work_limits() rebinds it
        if size > limit:
            raise InputError(
                f"`gradients`: the dense weight Jacobian of {shape[0]} centres x {shape[1]} "
                f"atoms x {int(np.prod(shape[2:]))} coefficients needs {size / 2**30:.3g} GiB, "
                f"above the limit max_jacobian_bytes={limit / 2**30:.3g}"
                " GiB: use vector_jacobian_product(..., with_weights=True), select fewer atoms, "
                "or raise the limit with lodekit.expansion.limits.work_limits"
            )
        dense = np.zeros(shape)
        for channels, atoms, block in self._unit_contributions(system, centres, neighbor_types):
            dense[:, atoms, channels.index[atoms]] = block
        flat = dense.reshape(len(centres) * len(system), -1)
        keep = np.flatnonzero(np.any(flat != 0.0, axis=1))
        keys = np.column_stack([keep // len(system), keep % len(system)]).astype(np.int64)
        return keys, dense.reshape(len(centres) * len(system), *dense.shape[2:])[keep]

    def _weight_vjp(self, system, centres, neighbor_types, upstream) -> np.ndarray:
        """dE/dw (n_atoms,) of E = sum upstream · c, ``upstream`` (n_centres, n_species, lm, n)."""
        out = np.zeros(len(system))
        for channels, atoms, block in self._unit_contributions(system, centres, neighbor_types):
            g = upstream[:, channels.index[atoms]]  # (centres, atoms, lm, n)
            out[atoms] = np.einsum("ijfn,ijfn->j", g, block)
        return out


def _map(function, jobs: list, n_threads: int) -> list:
    """``[function(job) for job in jobs]``, in ``n_threads`` threads when more than one."""
    if n_threads > 1 and len(jobs) > 1:
        # numpy, vesin and sphericart release the GIL: structures overlap well. One BLAS
        # thread each: BLAS's own threads on top oversubscribe the cores (water64x8 LODE H1
        # on 2 cores: 0.17 s against 0.10 s with one BLAS thread per structure, 0.14 s serial)
        with one_blas_thread():
            return list(thread_pool("structures", min(n_threads, len(jobs))).map(function, jobs))
    return [function(job) for job in jobs]


def _check_gradients(gradients) -> tuple[str, ...]:
    if gradients is None:
        return ()
    if isinstance(gradients, str):
        gradients = [gradients]
    if not isinstance(gradients, (list, tuple)) or not all(
        g in GRADIENT_PARAMETERS for g in gradients
    ):
        raise InputError(
            f"`gradients` is {describe(gradients)}; expected None or a list of "
            f"{list(GRADIENT_PARAMETERS)}"
        )
    return tuple(g for g in GRADIENT_PARAMETERS if g in gradients)


def _assemble_gradients(gradients, jacobians, weight_jacobians, jobs, max_angular) -> dict:
    """Per-structure Jacobians -> one :class:`Gradient` per parameter, rows of all structures."""
    if not gradients:
        return {}
    out = {}
    offsets = np.cumsum([0] + [len(centres) for _, centres in jobs])
    if "weights" in gradients:
        samples, types, values = [], [], []
        for index, ((system, _), (keys, block)) in enumerate(
            zip(jobs, weight_jacobians, strict=True)
        ):
            rows, atoms = keys[:, 0], keys[:, 1]
            samples.append(
                np.column_stack([rows + offsets[index], np.full(len(rows), index), atoms])
            )
            types.append(system.numbers[atoms])
            values.append(block)
        out["weights"] = Gradient(
            samples=np.concatenate(samples).astype(np.int64).reshape(-1, 3),
            values=split_gradient_by_l(np.concatenate(values), max_angular),
            atom_types=np.concatenate(types).astype(np.int64),
        )
    if "positions" in gradients:
        samples, types, values = [], [], []
        for index, ((system, _), jacobian) in enumerate(zip(jobs, jacobians, strict=True)):
            rows, atoms = jacobian.keys[:, 0], jacobian.keys[:, 1]
            samples.append(
                np.column_stack([rows + offsets[index], np.full(len(rows), index), atoms])
            )
            types.append(system.numbers[atoms])
            values.append(jacobian.positions)
        flat = values[0] if len(values) == 1 else np.concatenate(values)
        out["positions"] = Gradient(
            samples=np.concatenate(samples).astype(np.int64).reshape(-1, 3),
            values=split_gradient_by_l(flat, max_angular),
            atom_types=np.concatenate(types).astype(np.int64),
        )
    if "strain" in gradients:
        flat = np.concatenate([jacobian.strain for jacobian in jacobians])
        out["strain"] = Gradient(
            samples=np.arange(offsets[-1], dtype=np.int64).reshape(-1, 1),
            values=split_gradient_by_l(flat, max_angular),
        )
    return out


def _thread_count(n_threads) -> int:
    """The validated ``n_threads`` of :meth:`CalculatorBase.compute` (None: the default)."""
    if n_threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        n_threads = int(env) if env.isdigit() and int(env) > 0 else len(os.sched_getaffinity(0))
    elif isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise InputError(f"`n_threads` is {describe(n_threads)} but must be a positive integer")
    return max(1, n_threads)


def _normalise_selection(selected_atoms, systems: list[System]) -> list[np.ndarray]:
    if selected_atoms is None:
        return [np.arange(len(s)) for s in systems]
    if len(systems) == 1 and _is_index_array(selected_atoms):
        selected_atoms = [selected_atoms]
    if not isinstance(selected_atoms, (list, tuple)) or len(selected_atoms) != len(systems):
        raise InputError(
            f"`selected_atoms` is {describe(selected_atoms)}; expected None or one index array "
            f"(or None) per structure ({len(systems)} structure(s))"
        )
    out = []
    for i, (entry, system) in enumerate(zip(selected_atoms, systems, strict=True)):
        if entry is None:
            out.append(np.arange(len(system)))
            continue
        idx = np.asarray(entry)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise InputError(
                f"`selected_atoms[{i}]` is {describe(entry)}; expected a 1-d array of atom indices"
            )
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(system)):
            raise InputError(
                f"`selected_atoms[{i}]` contains {int(idx.min() if idx.min() < 0 else idx.max())}"
                f", outside 0..{len(system) - 1} (structure {i} has {len(system)} atoms)"
            )
        if len(np.unique(idx)) != len(idx):
            raise InputError(f"`selected_atoms[{i}]` contains repeated atom indices")
        out.append(idx)
    return out


def _is_index_array(obj) -> bool:
    if isinstance(obj, np.ndarray):
        return obj.ndim == 1
    return isinstance(obj, (list, tuple)) and all(
        isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in obj
    )
