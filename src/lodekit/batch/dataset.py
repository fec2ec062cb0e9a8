"""The structures of a dataset: ASE-readable files (read lazily) or a list in memory.

A :class:`StructureSource` numbers the structures of all its inputs consecutively (the
*system index* of a feature store) and describes every input by its name, its number of
frames and a SHA-256 fingerprint of the structures in it (atomic numbers, positions, cell,
periodicity, and the per-atom weights the features depend on: the ase arrays named by the
recipe's ``weights`` options, a System's own weights), so that a feature store can tell
whether it is being resumed on the same data.
Files are read with :func:`ase.io.iread`, one pass per use: a dataset larger than memory is
never held whole.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError, describe
from ..systems import System, ase_weights

__all__ = ["MEMORY", "StructureSource", "read_frames"]

#: Name recorded for structures passed in memory rather than as files.
MEMORY = "<memory>"


class StructureSource:
    """An ordered dataset of structures; build it with :meth:`scan`.

    Attributes
    ----------
    records : list of dict
        One per input: ``{"name", "n_frames", "sha256"}``; ``name`` is the absolute path of
        a file, or ``"<memory>"``.
    n_atoms : ndarray of int64, shape (n_structures,)
        Atoms of every structure, in dataset order.
    species : ndarray of int64
        Sorted atomic numbers present anywhere in the dataset.
    boundaries : ndarray of str, shape (n_structures,)
        Every structure's entry of :data:`lodekit.systems.BOUNDARIES` ("periodic", "slab"
        or "molecule"; a model trained on one kind extrapolates on another),
        in dataset order.
    periodic : ndarray of bool, shape (n_structures,)
        Whether every structure is bulk (all three axes periodic), in dataset order.
    argument : str
        How error messages name the inputs (``structures``, or ``INPUT`` on the command line).
    weights : tuple of str
        The ase per-atom arrays every ase structure was checked to carry and fingerprinted
        with (:attr:`lodekit.features.Recipe.weight_arrays` of the recipe it is read for).
    """

    def __init__(
        self,
        inputs,
        records,
        n_atoms,
        species,
        argument,
        validated=None,
        boundaries=None,
        weights=(),
    ):
        self._inputs = inputs
        self.weights = tuple(weights)
        # validated System copies of in-memory inputs, by input position
        self._validated = validated or {}
        self.records = records
        self.n_atoms = n_atoms
        self.species = species
        self.argument = argument
        if boundaries is None:
            boundaries = ["molecule"] * len(n_atoms)
        self.boundaries = np.asarray(boundaries, dtype=str)

    @property
    def periodic(self) -> np.ndarray:
        return self.boundaries == "periodic"

    @property
    def n_structures(self) -> int:
        return len(self.n_atoms)

    @classmethod
    def scan(cls, structures, *, argument: str = "structures", weights=()) -> StructureSource:
        """Read every input once: count frames and atoms, collect species, fingerprint.

        Parameters
        ----------
        structures : path, ase.Atoms, lodekit.System, or a list of paths or of structures
            Files in any format :func:`ase.io.read` understands (all their frames, in order),
            or structures in memory. A list mixes neither.
        argument : str
            Name used in error messages.
        weights : sequence of str
            Per-atom arrays (``atoms.arrays`` keys, e.g. ``"initial_charges"``) that every
            ase structure must carry: those a recipe's calculators read their ``weights``
            from (:attr:`lodekit.features.Recipe.weight_arrays`). They are fingerprinted with
            the structures and travel with them to :meth:`systems`. A
            :class:`~lodekit.systems.System` keeps its own weights.

        Raises
        ------
        InputError
            A file is missing, unreadable, holds no structure or an invalid one, or an ase
            structure lacks one of the ``weights`` arrays (an unset ``initial_charges``
            included: ASE would read it as zeros); the message names the file, the frame and
            the structure's index in the dataset.
        """
        names = _weight_names(weights)
        inputs = _normalise(structures, argument)
        records, n_atoms, species, memory, boundaries = [], [], set(), {}, []
        index = 0
        for position, item in enumerate(inputs):
            digest, count, validated = hashlib.sha256(), 0, []
            for frame, atoms in enumerate(_frames(item, argument)):
                # validate now, so that a bad structure stops the run before any work
                structure, system, arrays = _checked(atoms, item, frame, index, argument, names)
                if isinstance(item, list):
                    validated.append(structure)
                numbers = _fingerprint(digest, atoms, arrays)
                index += 1
                n_atoms.append(len(numbers))
                boundaries.append(system.boundary)
                species.update(numbers.tolist())
                count += 1
            if count == 0:
                raise InputError(f"`{argument}` {_label(item)!r} contains no structure")
            if isinstance(item, list):
                memory[position] = validated
                name = MEMORY
            else:
                name = str(Path(item).resolve())
            records.append({"name": name, "n_frames": count, "sha256": digest.hexdigest()})
        return cls(
            inputs,
            records,
            np.asarray(n_atoms, dtype=np.int64),
            np.array(sorted(species), dtype=np.int64),
            argument,
            memory,
            boundaries,
            names,
        )

    def for_weights(self, weights) -> StructureSource:
        """This source, or the same inputs scanned again for the per-atom arrays ``weights``
        (e.g. a source scanned for one recipe, given to another)."""
        names = _weight_names(weights)
        if names == self.weights:
            return self
        first = self._inputs[0]
        structures = first if isinstance(first, list) else self._inputs
        return type(self).scan(structures, argument=self.argument, weights=names)

    def systems(self, wanted=None) -> Iterator[tuple[int, object]]:
        """(system index, structure) of every structure, in order, read lazily.

        The structure is a validated :class:`~lodekit.systems.System`; when the source was
        scanned with ``weights``, an ase structure comes instead as an ``ase.Atoms`` holding
        only the numbers, positions, cell, periodicity and those arrays, for
        :meth:`lodekit.features.Recipe.compute` to weight every calculator by its own array.
        Structures whose index is not in ``wanted`` (when given, a container of ints) come
        as (index, None): still read, since files are read sequentially, but not validated.
        """
        index = 0
        for position, item in enumerate(self._inputs):
            frames = self._validated.get(position)
            if frames is not None:
                for structure in frames:
                    yield index, (None if wanted is not None and index not in wanted else structure)
                    index += 1
                continue
            for frame, atoms in enumerate(_frames(item, self.argument)):
                if wanted is not None and index not in wanted:
                    yield index, None
                else:
                    yield index, _checked(atoms, item, frame, index, self.argument, self.weights)[0]
                index += 1

    def targets(self, key: str, *, argument: str = "--target") -> np.ndarray:
        """Per-structure value of ``key``: ``atoms.info[key]``, or the calculator result of
        that name (ASE's extxyz reader moves ``energy=`` and the like there).

        Returns
        -------
        ndarray of float64, shape (n_structures,)
        """
        out = []
        for item in self._inputs:
            for frame, atoms in enumerate(_frames(item, self.argument)):
                value = _target(atoms, key)
                if value is None:
                    keys = sorted(getattr(atoms, "info", {}))
                    raise InputError(
                        f"`{argument}` {key!r} is not in atoms.info (keys: {keys}) nor a "
                        f"calculator result of frame {frame} of {_label(item)!r}"
                    )
                try:
                    number = float(np.asarray(value, dtype=np.float64))
                except (TypeError, ValueError):
                    raise InputError(
                        f"`{argument}` {key!r} is {describe(value)} in frame {frame} of "
                        f"{_label(item)!r}; expected one number per structure"
                    ) from None
                out.append(number)
        return np.asarray(out, dtype=np.float64)


def read_frames(path: str | os.PathLike, *, argument: str = "path") -> list:
    """Every frame of one ASE-readable file, checked as :meth:`StructureSource.scan` does.

    Parameters
    ----------
    path : str or path-like
        Any format :func:`ase.io.read` understands.
    argument : str
        Name used in error messages.

    Returns
    -------
    list of ase.Atoms
        The frames, in file order (at least one).

    Raises
    ------
    InputError
        The file is missing, a folder, unreadable (empty, binary, truncated, another kind of
        file), holds no structure or an invalid one; the message names ``argument``, the file
        and the reason, on one line.
    """
    item = os.fspath(path)
    frames = list(_frames(item, argument))
    if not frames:
        raise InputError(f"`{argument}` {item!r} contains no structure")
    for frame, atoms in enumerate(frames):
        _checked(atoms, item, frame, frame, argument, ())
    return frames


def _normalise(structures, argument: str) -> list:
    """Inputs as a list of paths, or a single entry holding a list of in-memory structures."""
    if isinstance(structures, (str, os.PathLike)):
        return [os.fspath(structures)]
    if isinstance(structures, System) or _is_atoms(structures):
        return [[structures]]
    if not isinstance(structures, Sequence) or len(structures) == 0:
        raise InputError(
            f"`{argument}` is {describe(structures)}; expected file paths or structures "
            "(ase.Atoms / lodekit.System), one or a non-empty list"
        )
    paths = [isinstance(s, (str, os.PathLike)) for s in structures]
    if all(paths):
        return [os.fspath(s) for s in structures]
    if any(paths):
        raise InputError(f"`{argument}` mixes file paths and structures; give one kind")
    for i, item in enumerate(structures):
        if not (isinstance(item, System) or _is_atoms(item)):
            raise InputError(
                f"`{argument}[{i}]` is {describe(item)}; expected an ase.Atoms or a lodekit.System"
            )
    return [list(structures)]


def _is_atoms(obj) -> bool:
    from ase import Atoms

    return isinstance(obj, Atoms)


def _label(item) -> str:
    return MEMORY if isinstance(item, list) else item


def _frames(item, argument: str):
    """Frames of one input, lazily; reading errors become one-line :class:`InputError`."""
    if isinstance(item, list):
        yield from item
        return
    import ase.io

    if not Path(item).exists():
        raise InputError(f"`{argument}` {item!r} does not exist")
    if Path(item).is_dir():
        raise InputError(f"`{argument}` {item!r} is a directory, not a structure file")
    try:
        # ase raises many exception types for unreadable files, also midway through a file
        yield from ase.io.iread(item, index=":")
    except Exception as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        if type(err).__name__ == "UnknownFileTypeError" and " " not in reason:
            # a bare format name (e.g. 'npz'): ase guessed a format that it cannot read
            reason = f"ase reads no structure from a {reason!r} file"
        raise InputError(
            f"`{argument}` {item!r} is not a readable structure file: {reason}"
        ) from None


def _fingerprint(digest, atoms, arrays: dict) -> np.ndarray:
    """Feed one structure and its weight ``arrays`` ({name: (n_atoms,)}) to ``digest``;
    returns its atomic numbers. Unweighted structures hash as they always have, so stores
    written before weights were fingerprinted keep their digests."""
    if isinstance(atoms, System):
        numbers, positions, cell = atoms.numbers, atoms.positions, atoms.cell
        pbc = np.array(atoms.pbc)
        if atoms.weights is not None:
            arrays = {"<System.weights>": atoms.weights}
    else:
        numbers, positions = atoms.get_atomic_numbers(), atoms.get_positions()
        cell, pbc = atoms.cell.array, atoms.pbc
    numbers = np.ascontiguousarray(numbers, dtype="<i8")
    for array in (
        numbers,
        np.ascontiguousarray(positions, dtype="<f8"),
        np.ascontiguousarray(cell, dtype="<f8"),
        np.ascontiguousarray(pbc, dtype=bool),
    ):
        digest.update(np.asarray(array.shape, dtype="<i8").tobytes())
        digest.update(array.tobytes())
    for name in sorted(arrays):
        # the name too: the same numbers read as another array are another dataset
        digest.update(name.encode())
        values = np.ascontiguousarray(arrays[name], dtype="<f8")
        digest.update(np.asarray(values.shape, dtype="<i8").tobytes())
        digest.update(values.tobytes())
    return numbers


def _weight_names(weights) -> tuple:
    if isinstance(weights, str) or not all(isinstance(w, str) and w for w in weights):
        raise InputError(
            f"`weights` is {describe(weights)}; expected a sequence of per-atom array names "
            "(e.g. ['initial_charges'])"
        )
    return tuple(sorted(set(weights)))


def _checked(atoms, item, frame: int, index: int, argument: str, names: tuple):
    """(structure to compute, its System, its weight arrays) of one frame, validated.

    ``names`` are the per-atom arrays the recipe reads weights from: with any, an ase frame
    travels as a bare ase.Atoms carrying them (the recipe weights each calculator by its own
    array, through :func:`lodekit.systems.ase_weights`); a System keeps its own weights.
    """
    where = f"`{argument}` {_label(item)!r}, frame {frame}"
    if isinstance(atoms, System):
        return atoms, atoms, {}
    try:
        system = System.from_ase(atoms)
    except InputError as err:
        raise InputError(f"{where}: {err}") from None
    if not names:
        return system, system, {}
    arrays = {}
    for name in names:
        try:
            arrays[name] = ase_weights(atoms, name, required=True)
        except InputError as err:
            raise InputError(
                f"{where} (structure {index}): {err}; the recipe reads per-atom weights from "
                f"the array {name!r} (a calculator's `weights` option), so every structure "
                "must carry it"
            ) from None
    from ase import Atoms

    bare = Atoms(
        numbers=atoms.get_atomic_numbers(),
        positions=atoms.get_positions(),
        cell=atoms.cell.array,
        pbc=atoms.pbc,
    )
    for name, values in arrays.items():
        if name not in bare.arrays:  # "positions" or "numbers" as weights: already there
            bare.new_array(name, values)
    return bare, system, arrays


def _target(atoms, key: str):
    info = getattr(atoms, "info", {})
    if key in info:
        return info[key]
    calc = getattr(atoms, "calc", None)
    results = getattr(calc, "results", None) or {}
    return results.get(key)
