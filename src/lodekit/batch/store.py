"""Feature stores: per-environment features of a whole dataset, chunk by chunk, on disk.

A store is a directory, readable as a zarr group by any zarr tool::

    STORE/                      group; attributes: the header (see below)
      properties                int64 (n_features, n_property_columns): one row per column
      n_atoms                   int64 (n_structures,): atoms of every structure
      chunks/                   group
        000000/                 group, one per finished chunk; attributes: the chunk record
          values                float64 (n_rows, n_features)
          samples               int64 (n_rows, 3): system (index in the dataset), atom, Z
        000001/ ...
      .incomplete/              chunks being written (only during a run, or after a crash);
                                never read, cleared by the next writer

Chunk k holds structures ``k * chunk_size`` to ``(k + 1) * chunk_size - 1`` (the last chunk
may be shorter), every atom a sample, in dataset order.

Completion: a chunk is written under ``.incomplete/``, flushed to disk (fsync) with its
record (row count, digests of both arrays, sealed by a checksum), then renamed to
``chunks/NNNNNN`` in one atomic step. A chunk directory therefore exists only once complete;
a process killed midway leaves at most a directory under ``.incomplete/``, which the next
run deletes and recomputes. The header is created the same way (built beside ``STORE`` and
renamed), so a store either has a complete header or does not exist. Reading verifies every
chunk against its record.

Writers: one run at a time, guarded by an exclusive ``flock`` on ``STORE.lock`` beside the
store (:func:`run_lock`; beside it, since the store itself appears by a rename), held from
before the store is created to the end of the run and released by the kernel when the
holder dies. A rerun verifies every finished chunk and recomputes those that fail.

Header (root attributes), in lodekit's one sealed header format
(:mod:`lodekit.persistence.header`): ``format``, ``format_version``, ``lodekit_version``,
``recipe``
(the :class:`~lodekit.features.Recipe` as a dict), ``species``, ``property_names``,
``sample_names``, ``inputs`` (name, frame count and SHA-256 fingerprint
of every input: its structures and the per-atom weights the recipe's ``weights`` options
read, :mod:`lodekit.batch.dataset`), ``n_structures``, ``n_environments``,
``chunk_size``, ``n_chunks``, ``arrays`` (digests of ``properties`` and ``n_atoms``) and
``checksum`` over all of it.
A chunk record is sealed the same way (format ``lodekit-feature-chunk``: ``chunk``,
``first_structure``, ``stop_structure``, ``n_rows``, digests of ``values`` and ``samples``).
Opening a store verifies its header; reading a chunk verifies its record, and its arrays
unless ``verify=False``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import LodekitError, describe
from ..features import Features
from ..persistence import atomic_directory
from ..persistence.header import seal, verify_arrays
from ..persistence.header import verify as verify_header

__all__ = ["FeatureStore", "StoreError", "load_features", "run_lock"]

FORMAT = "lodekit-feature-store"
#: 2: header and chunk records sealed by a checksum, the header holds a multi-block ``recipe``
#: (version 1: ``hypers`` of one calculator, only the chunk arrays checked)
FORMAT_VERSION = 2
CHUNK_FORMAT = "lodekit-feature-chunk"
_REGENERATE = "delete the store and run `lodekit featurize` again"
_HEADER_ENTRIES = (
    "recipe",
    "species",
    "property_names",
    "sample_names",
    "n_features",
    "inputs",
    "n_structures",
    "n_environments",
    "chunk_size",
    "n_chunks",
    "units",
)
SPEC = {
    "kind": FORMAT,
    "version": FORMAT_VERSION,
    "payload": _HEADER_ENTRIES,
    "regenerate": _REGENERATE,
}
_RECORD_ENTRIES = ("chunk", "first_structure", "stop_structure", "n_rows")
SAMPLE_NAMES = ("system", "atom", "center_type")

#: Header entries that must agree before a run may add chunks to an existing store.
IDENTITY = ("format_version", "lodekit_version", "recipe", "species", "inputs", "chunk_size")

#: Target size of one zarr chunk of a values array (bytes): small enough to stream.
_ZARR_CHUNK_BYTES = 8 * 2**20

_INCOMPLETE = ".incomplete"

#: What to do about a damaged chunk (a rerun of featurize also recomputes it).
_CHUNK_ADVICE = "delete that directory and run featurize again"


def _leaves(tree, prefix: str = "") -> dict:
    """A nested JSON value as {"blocks[0].expansion.cutoff": value, ...}, so that a
    difference between two recipes can be named key by key."""
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(tree, list) and any(isinstance(v, (dict, list)) for v in tree):
        out = {}
        for index, value in enumerate(tree):
            out.update(_leaves(value, f"{prefix}[{index}]"))
        return out
    return {prefix: tree}


class StoreError(LodekitError):
    """A feature store is missing, invalid, incomplete, in use, or of another dataset."""


@contextlib.contextmanager
def run_lock(path):
    """Hold the run lock of the store at ``path`` (which need not exist yet).

    The lock is an exclusive ``flock`` on the file ``<path>.lock`` beside the store: a new
    store appears by an atomic rename, so a lock inside it could not guard its creation. The
    kernel releases the lock when its holder exits or is killed, so no stale lock survives;
    the file itself stays (removing it would let a late opener lock a file no one else sees).
    The holder writes its pid into the file, to name it to the others.

    Raises
    ------
    StoreError
        If another process holds the lock (naming its pid).
    """
    path = Path(path)
    where = f"`store` {str(path)!r}"
    lock = path.parent / f"{path.name}.lock"
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on Windows: no protection
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise StoreError(
            f"{where}: its lock file {str(lock)!r} cannot be opened ({err.strerror})"
        ) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "unknown"
            raise StoreError(
                f"{where} is being written by another run (pid {holder}): wait for it to "
                "finish, or write to another store"
            ) from None
        # fixed width, written over the last holder's pid in one call: never read half
        os.pwrite(handle, f"{os.getpid():<20}\n".encode(), 0)
        yield
    finally:
        os.close(handle)


class FeatureStore:
    """An existing feature store, opened for reading (and, via :meth:`writer`, writing).

    Parameters
    ----------
    path : str or path-like
        The store directory.

    Attributes
    ----------
    header : dict
        The root attributes (see the module docstring).
    properties : ndarray of int64, shape (n_features, k)
    n_atoms : ndarray of int64, shape (n_structures,)
    """

    def __init__(self, path):
        self.path = Path(path)
        self._where = f"`store` {str(path)!r}"
        zarr = _zarr()
        if not self.path.exists():
            raise StoreError(f"{self._where} does not exist")
        if not self.path.is_dir():
            raise StoreError(f"{self._where} is a file, not a lodekit feature store")
        try:
            root = zarr.open_group(store=str(self.path), mode="r")
            header = dict(root.attrs)
        except Exception:  # zarr raises several types for a directory that is no group
            raise StoreError(f"{self._where} is not a lodekit feature store") from None
        if header.get("format") != FORMAT:
            raise StoreError(f"{self._where} is not a lodekit feature store")
        self.header = verify_header(header, None, SPEC, self._where, StoreError)
        try:
            self.properties = np.asarray(_read_array(self.path / "properties"))
            self.n_atoms = np.asarray(_read_array(self.path / "n_atoms"))
        except Exception:
            raise StoreError(f"{self._where} lacks its properties or n_atoms arrays") from None
        arrays = {"properties": self.properties, "n_atoms": self.n_atoms}
        verify_arrays(self.header, arrays, self._where, StoreError, _REGENERATE)
        if self.n_atoms.shape != (self.n_structures,) or self.properties.shape[0] != (
            self.n_features
        ):
            raise StoreError(f"{self._where}: arrays do not match the header (tampered?)")
        # first row of every structure, for the sample checks
        self._offsets = np.concatenate([[0], np.cumsum(self.n_atoms)])

    # ---------------------------------------------------------------- creation
    @classmethod
    def create(
        cls,
        path,
        *,
        recipe: dict,
        species,
        inputs: list,
        n_atoms,
        chunk_size: int,
        properties,
        property_names,
    ) -> FeatureStore:
        """Create a new store with its header and no chunk.

        ``path`` must not exist (or be an empty directory). The store is built in a
        temporary directory beside ``path`` and renamed, so a crash leaves no half store.

        Parameters
        ----------
        recipe : dict
            The featurisation recipe (:meth:`lodekit.features.Recipe.to_dict`).
        species : sequence of int
        inputs : list of dict
            ``{"name", "n_frames", "sha256"}`` per input
            (:attr:`lodekit.batch.StructureSource.records`).
        n_atoms : array of int, shape (n_structures,)
        chunk_size : int
            Structures per chunk.
        properties : array of int, shape (n_features, k)
        property_names : sequence of str, length k
        """
        zarr = _zarr()
        path = Path(path)
        where = f"`store` {str(path)!r}"
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise StoreError(f"{where} exists and is not a lodekit feature store")
        n_atoms = np.asarray(n_atoms, dtype=np.int64)
        properties = np.asarray(properties, dtype=np.int64)
        payload = {
            "recipe": recipe,
            "species": [int(z) for z in species],
            "property_names": list(property_names),
            "sample_names": list(SAMPLE_NAMES),
            "n_features": int(properties.shape[0]),
            "inputs": inputs,
            "n_structures": len(n_atoms),
            "n_environments": int(n_atoms.sum()),
            "chunk_size": int(chunk_size),
            "n_chunks": -(-len(n_atoms) // int(chunk_size)),
            "units": {"positions": "angstrom", "values": "expansion coefficients (products)"},
        }
        header = seal(
            FORMAT, FORMAT_VERSION, payload, {"properties": properties, "n_atoms": n_atoms}
        )

        def build(tmp: Path) -> None:
            root = zarr.open_group(store=str(tmp), mode="w")
            _write_array(tmp / "properties", properties)
            _write_array(tmp / "n_atoms", n_atoms)
            zarr.open_group(store=str(tmp / "chunks"), mode="w")
            root.attrs.update(header)

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_directory(path, build)
        return cls(path)

    def check_matches(self, **expected) -> None:
        """Raise :class:`StoreError` unless the header agrees with ``expected``.

        Keys are header entries (see :data:`IDENTITY`); inputs are compared by frame count
        and fingerprint, not by name, so a moved file still matches.
        """
        for key, value in expected.items():
            mine = self.header.get(key)
            if key == "inputs":
                mine = [(r.get("n_frames"), r.get("sha256")) for r in mine or []]
                value = [(r["n_frames"], r["sha256"]) for r in value]
            if mine == value:
                continue
            if key == "recipe":
                theirs, now = _leaves(mine), _leaves(value)
                differ = {
                    k: (theirs.get(k), now.get(k))
                    for k in sorted(set(theirs) | set(now))
                    if theirs.get(k) != now.get(k)
                }
                detail = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in differ.items())
                what = f"a different recipe ({detail})"
            elif key == "inputs":
                detail = (
                    f"{len(mine)} input(s), {sum(m[0] for m in mine)} structures there; "
                    f"{len(value)} input(s), {sum(v[0] for v in value)} structures now"
                )
                if [m[0] for m in mine] == [v[0] for v in value]:
                    detail += (
                        ", with different contents (positions, cell, periodicity or the "
                        "per-atom weights the recipe reads)"
                    )
                what = f"other structures ({detail})"
            elif key == "chunk_size":
                raise StoreError(
                    f"{self._where} was written in chunks of {mine} structures, not {value}: "
                    "leave the chunk size out to resume it"
                )
            else:
                what = f"{key} {describe(mine)} (now {describe(value)})"
            raise StoreError(
                f"{self._where} holds features of {what}: refusing to mix them; write to a new "
                "store or delete this one"
            )

    # ---------------------------------------------------------------- description
    @property
    def recipe(self) -> dict:
        """The recipe the features were computed with (``Recipe.from_dict`` rebuilds it)."""
        return self.header["recipe"]

    @property
    def species(self) -> list:
        return list(self.header["species"])

    @property
    def inputs(self) -> list:
        return list(self.header["inputs"])

    @property
    def n_structures(self) -> int:
        return int(self.header["n_structures"])

    @property
    def n_features(self) -> int:
        return int(self.header["n_features"])

    @property
    def chunk_size(self) -> int:
        return int(self.header["chunk_size"])

    @property
    def n_chunks(self) -> int:
        return int(self.header["n_chunks"])

    @property
    def property_names(self) -> tuple:
        return tuple(self.header["property_names"])

    def chunk_structures(self, index: int) -> range:
        """System indices of the structures of chunk ``index``."""
        start = index * self.chunk_size
        return range(start, min(start + self.chunk_size, self.n_structures))

    def _chunk_dir(self, index: int) -> Path:
        width = max(6, len(str(self.n_chunks - 1)))
        return self.path / "chunks" / f"{index:0{width}d}"

    def finished_chunks(self) -> list[int]:
        """Indices of the finished chunks, sorted.

        A chunk directory only appears complete (renamed into place); as a second guard,
        against stores copied by tools that are not atomic, a directory counts only if its
        record (the metadata file holding the digests) is there and names it.
        """
        try:
            names = os.listdir(self.path / "chunks")
        except FileNotFoundError:
            return []
        done = {int(n) for n in names if n.isdigit() and int(n) < self.n_chunks}
        return sorted(i for i in done if _record(self._chunk_dir(i)).get("chunk") == i)

    def damaged_chunks(self) -> dict[int, str]:
        """The finished chunks that fail verification (record, digests of both arrays,
        samples), each with the reason: ``{index: message}``. Reads every finished chunk."""
        damaged = {}
        for index in self.finished_chunks():
            try:
                self.read_chunk(index)
            except StoreError as err:  # the reason, less the advice (the caller acts)
                reason = str(err)
                for glue in (": ", "; "):
                    reason = reason.replace(glue + _CHUNK_ADVICE, "")
                damaged[index] = reason
        return damaged

    def missing_chunks(self) -> list[int]:
        """Indices of the chunks not written yet, sorted."""
        done = set(self.finished_chunks())
        return [i for i in range(self.n_chunks) if i not in done]

    @property
    def complete(self) -> bool:
        return not self.missing_chunks()

    def __repr__(self) -> str:
        return (
            f"FeatureStore({str(self.path)!r}, {self.n_structures} structures, "
            f"{self.header['n_environments']} environments x {self.n_features} features, "
            f"{len(self.finished_chunks())}/{self.n_chunks} chunks)"
        )

    # ---------------------------------------------------------------- writing
    @contextlib.contextmanager
    def writer(self):
        """Hold the store's write lock; clears chunks left half-written by a killed run.

        The lock is an exclusive ``flock`` on the store directory itself (released by the
        kernel when the process dies, so a killed run never leaves a stale lock). It cannot
        guard the creation of the store: :func:`featurize` holds :func:`run_lock` as well.

        Raises :class:`StoreError` if another process holds the lock.
        """
        handle = os.open(self.path, os.O_RDONLY)
        try:
            try:
                import fcntl

                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # pragma: no cover - no flock on Windows: no protection
                pass
            except OSError:
                raise StoreError(
                    f"{self._where} is being written by another process (its lock is held)"
                ) from None
            shutil.rmtree(self.path / _INCOMPLETE, ignore_errors=True)
            try:
                yield self
            finally:
                # what is left there was never finished; removing it keeps the directory a
                # clean zarr hierarchy
                shutil.rmtree(self.path / _INCOMPLETE, ignore_errors=True)
        finally:
            os.close(handle)

    def write_chunk(self, index: int, values: np.ndarray, samples: np.ndarray) -> None:
        """Write chunk ``index`` atomically (call inside :meth:`writer`).

        Parameters
        ----------
        values : ndarray, shape (n_rows, n_features)
            Features of every atom of the chunk's structures, in order.
        samples : ndarray of int, shape (n_rows, 3)
            (system, atom, center_type), system counted in the whole dataset.
        """
        zarr = _zarr()
        values = np.ascontiguousarray(values, dtype="<f8")
        samples = np.ascontiguousarray(samples, dtype="<i8")
        self._check_chunk(index, values, samples)
        payload = {
            "chunk": index,
            "first_structure": self.chunk_structures(index).start,
            "stop_structure": self.chunk_structures(index).stop,
            "n_rows": len(values),
        }
        record = seal(CHUNK_FORMAT, FORMAT_VERSION, payload, {"values": values, "samples": samples})

        def build(tmp: Path) -> None:
            group = zarr.open_group(store=str(tmp), mode="w")
            _write_array(tmp / "values", values)
            _write_array(tmp / "samples", samples)
            group.attrs.update(record)

        incomplete = self.path / _INCOMPLETE
        incomplete.mkdir(exist_ok=True)
        # replace: only a chunk the caller chose to recompute exists already
        atomic_directory(self._chunk_dir(index), build, workspace=incomplete, replace=True)

    def _check_chunk(self, index: int, values, samples) -> None:
        """The samples must be every atom of the chunk's structures, once, in order."""
        if not 0 <= index < self.n_chunks:
            raise StoreError(f"`index` is {index} but the store has {self.n_chunks} chunks")
        structures = self.chunk_structures(index)
        rows = self._offsets[structures.stop] - self._offsets[structures.start]
        counts = self.n_atoms[structures.start : structures.stop]
        expected_system = np.repeat(np.arange(structures.start, structures.stop), counts)
        expected_atom = np.arange(rows) - np.repeat(
            self._offsets[structures.start : structures.stop] - self._offsets[structures.start],
            counts,
        )
        ok = (
            values.shape == (rows, self.n_features)
            and samples.shape == (rows, 3)
            and np.array_equal(samples[:, 0], expected_system)
            and np.array_equal(samples[:, 1], expected_atom)
        )
        if not ok:
            raise StoreError(
                f"{self._where}, chunk {index}: got values {values.shape} and samples "
                f"{samples.shape}, expected ({rows}, {self.n_features}) with one row per atom "
                f"of structures {structures.start}..{structures.stop - 1}"
            )

    # ---------------------------------------------------------------- reading
    def read_chunk(self, index: int, *, verify: bool = True) -> Features:
        """Features of one finished chunk.

        Parameters
        ----------
        verify : bool
            Check both arrays against the SHA-256 digests of the chunk record.
        """
        zarr = _zarr()
        directory = self._chunk_dir(index)
        where = f"{self._where}, chunk {index} ({directory.name})"
        if not directory.is_dir():
            raise StoreError(f"{where} has not been computed")
        try:
            record = dict(zarr.open_group(store=str(directory), mode="r").attrs)
            values = np.asarray(_read_array(directory / "values"))
            samples = np.asarray(_read_array(directory / "samples"))
        except Exception as err:
            raise StoreError(
                f"{where} cannot be read ({type(err).__name__}): {_CHUNK_ADVICE}"
            ) from None
        again = _CHUNK_ADVICE
        spec = {
            "kind": CHUNK_FORMAT,
            "version": FORMAT_VERSION,
            "payload": _RECORD_ENTRIES,
            "regenerate": again,
        }
        arrays = {"values": values, "samples": samples} if verify else None
        verify_header(record, arrays, spec, where, StoreError)
        if record.get("chunk") != index or record.get("n_rows") != len(values):
            raise StoreError(f"{where} does not match its record (corrupt or tampered): {again}")
        self._check_chunk(index, values, samples)
        return self._features(values, samples)

    def _features(self, values, samples) -> Features:
        return Features(
            values=values,
            samples=samples,
            properties=self.properties,
            sample_names=SAMPLE_NAMES,
            property_names=self.property_names,
            metadata={
                "recipe": self.recipe,
                "species": self.species,
                "store": str(self.path),
            },
        )

    def iter_chunks(self, *, allow_missing: bool = False, verify: bool = True):
        """(chunk index, Features) of the finished chunks in dataset order, one at a time."""
        chunks = self._readable_chunks(allow_missing)
        for index in chunks:
            yield index, self.read_chunk(index, verify=verify)

    def require_complete(self) -> None:
        """Raise :class:`StoreError`, naming the missing chunks, unless all are written."""
        self._readable_chunks(allow_missing=False)

    def _readable_chunks(self, allow_missing: bool) -> list[int]:
        missing = self.missing_chunks()
        if missing and not allow_missing:
            first = ", ".join(str(i) for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise StoreError(
                f"{self._where} is incomplete: {len(missing)} of {self.n_chunks} chunks are "
                f"missing ({first}); run featurize again to finish it, or read with "
                "allow_missing=True"
            )
        missing = set(missing)
        return [i for i in range(self.n_chunks) if i not in missing]

    def load(self, *, allow_missing: bool = False, verify: bool = True) -> Features:
        """All features, concatenated in dataset order.

        Parameters
        ----------
        allow_missing : bool
            Return the finished chunks only instead of refusing an incomplete store (the
            ``system`` sample column still counts structures in the whole dataset).
        verify : bool
            Check every chunk against its SHA-256 digests.

        Returns
        -------
        Features
            values (n_environments, n_features) float64; samples (system, atom,
            center_type); properties and property names; metadata with the ``recipe`` and
            ``species``.
        """
        chunks = self._readable_chunks(allow_missing)
        rows = [
            int(
                self._offsets[self.chunk_structures(i).stop]
                - self._offsets[self.chunk_structures(i).start]
            )
            for i in chunks
        ]
        values = np.empty((sum(rows), self.n_features))
        samples = np.empty((sum(rows), 3), dtype=np.int64)
        start = 0
        for index, n in zip(chunks, rows, strict=True):
            chunk = self.read_chunk(index, verify=verify)
            values[start : start + n] = chunk.values
            samples[start : start + n] = chunk.samples
            start += n
        return self._features(values, samples)


def load_features(path, *, allow_missing: bool = False, verify: bool = True) -> Features:
    """All features of the store at ``path`` in dataset order (see :meth:`FeatureStore.load`)."""
    return FeatureStore(path).load(allow_missing=allow_missing, verify=verify)


# -------------------------------------------------------------------- helpers
def _zarr():
    try:
        import zarr
    except ImportError as err:  # pragma: no cover - zarr is a core dependency
        raise ImportError("feature stores need zarr: pip install zarr") from err
    return zarr


def _write_array(path: Path, array: np.ndarray) -> None:
    """One zarr array at ``path``, in row chunks of about 8 MiB."""
    zarr = _zarr()
    row_bytes = max(1, array.itemsize * int(np.prod(array.shape[1:])))
    rows = max(1, min(len(array), _ZARR_CHUNK_BYTES // row_bytes))
    target = zarr.open_array(
        store=str(path),
        mode="w",
        shape=array.shape,
        dtype=array.dtype,
        chunks=(rows, *array.shape[1:]),
        **_compression(zarr),
    )
    if array.size:
        target[...] = array


def _compression(zarr) -> dict:
    """zstd at level 1: features compress to about 3/4 at level 1 as at the default level,
    in half the time (the single writer's time bounds the throughput of a parallel run)."""
    if int(zarr.__version__.split(".")[0]) >= 3:
        return {
            "codecs": [
                {"name": "bytes", "configuration": {"endian": "little"}},
                {"name": "zstd", "configuration": {"level": 1, "checksum": False}},
            ]
        }
    from numcodecs import Zstd  # pragma: no cover - zarr 2 (Python 3.10)

    return {"compressor": Zstd(level=1)}  # pragma: no cover


def _read_array(path: Path) -> np.ndarray:
    return _zarr().open_array(store=str(path), mode="r")[...]


def _record(directory: Path) -> dict:
    """The attributes of a chunk group read straight from its metadata file ({} if none):
    cheaper than opening it with zarr, for stores of many chunks."""
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):  # zarr 3, zarr 2
        try:
            data = json.loads((directory / name).read_text())
        except (OSError, ValueError):
            continue
        data = data.get(key, {}) if key else data
        if isinstance(data, dict) and data.get("format") == CHUNK_FORMAT:
            return data
    return {}
