"""Expansion archives: plain ``.npz`` arrays plus a JSON header, written atomically.

Nothing is ever unpickled: archives are read with ``allow_pickle=False`` and every array is
checked for the shape and type that the header announces, so a corrupt, truncated or
tampered file raises :class:`ArchiveError` instead of producing wrong numbers.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import InputError, LodekitError
from .expansion.result import GRADIENT_PARAMETERS, Expansion, Gradient

__all__ = [
    "ArchiveError",
    "atomic_write",
    "check_output_file",
    "load_expansion",
    "read_archive",
    "save_expansion",
]

FORMAT = "lodekit-expansion"
FORMAT_VERSION = 1


class ArchiveError(LodekitError):
    """A file is not a valid lodekit archive (wrong format, truncated, tampered)."""


def check_output_file(path: str | os.PathLike, name: str = "path", what: str = "a file") -> Path:
    """``path`` as a :class:`~pathlib.Path` if a file can be written there, else InputError.

    It must not be a folder, and its folder must exist; ``name`` is the argument named in the
    error (``"--out"`` on the command line), ``what`` the kind of file expected.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"`{name}` {str(path)!r} is a directory; expected the path of {what}")
    if not path.absolute().parent.is_dir():
        raise InputError(
            f"`{name}` {str(path)!r}: the directory {str(path.parent)!r} does not exist "
            "(or is not a directory)"
        )
    return path


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(file_object)`` on a temporary file, then rename it over ``path``.

    A crash midway leaves any previous file at ``path`` untouched.
    """
    path = check_output_file(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_expansion(path: str | os.PathLike, expansion: Expansion) -> Path:
    """Write ``expansion`` to ``path`` (``.npz``) atomically."""
    from ._version import __version__

    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lodekit_version": __version__,
        "hypers": expansion.hypers,
        "info": expansion.info,
        "max_angular": expansion.max_angular,
        "n_radial": expansion.n_radial,
        "n_samples": len(expansion),
        "units": {"positions": "angstrom"},
        "gradients": sorted(expansion.gradients),
    }
    arrays = {f"values_l{l}": v for l, v in enumerate(expansion.values)}
    for name, gradient in expansion.gradients.items():
        arrays[f"gradient_{name}_samples"] = gradient.samples
        if gradient.atom_types is not None:
            arrays[f"gradient_{name}_atom_types"] = gradient.atom_types
        for l, v in enumerate(gradient.values):
            arrays[f"gradient_{name}_l{l}"] = v
    arrays["samples"] = expansion.samples
    arrays["neighbor_types"] = expansion.neighbor_types
    if expansion.has_neighbors is not None:
        arrays["has_neighbors"] = expansion.has_neighbors
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    return atomic_write(path, lambda stream: np.savez(stream, **arrays))


def read_archive(path, kind: str, version: int, where: str, error: type) -> tuple[dict, dict]:
    """Arrays and JSON header of a lodekit ``.npz`` archive, never unpickling.

    Raises ``error`` naming ``where`` when the file is missing, not an npz, has no header, or
    is another kind or version of archive.
    """
    try:
        # open the file ourselves: np.load leaks its handle when the zip is truncated
        with open(path, "rb") as stream, np.load(stream, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise error(f"{where} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise error(f"{where} is not a readable .npz archive: {err}") from None
    try:
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (KeyError, ValueError, UnicodeDecodeError):
        raise error(f"{where} has no valid lodekit header") from None
    if not isinstance(header, dict) or header.get("format") != kind:
        raise error(f"{where} is not a {kind} archive")
    if header.get("format_version") != version:
        raise error(
            f"{where} has format version {header.get('format_version')!r}; this lodekit "
            f"reads version {version}"
        )
    return arrays, header


def load_expansion(path: str | os.PathLike) -> Expansion:
    """Read an archive written by :func:`save_expansion`."""
    arrays, header = read_archive(
        path, FORMAT, FORMAT_VERSION, f"`path` {str(path)!r}", ArchiveError
    )
    try:
        n, max_l, n_rad = header["n_samples"], header["max_angular"], header["n_radial"]
        values = [arrays.pop(f"values_l{l}") for l in range(max_l + 1)]
        samples, types = arrays.pop("samples"), arrays.pop("neighbor_types")
    except KeyError as err:
        raise ArchiveError(f"`path` {str(path)!r} lacks {err}: truncated or tampered") from None
    has_neighbors = arrays.pop("has_neighbors", None)
    n_types = len(types)
    gradients = _load_gradients(arrays, header, n, n_types, max_l, n_rad, str(path))
    expected = [(n, n_types, 2 * l + 1, n_rad) for l in range(max_l + 1)]
    ok = (
        [v.shape for v in values] == expected
        and all(v.dtype == np.float64 for v in values)
        and samples.shape == (n, 3)
        and samples.dtype.kind == "i"
        and types.ndim == 1
        and (has_neighbors is None or has_neighbors.shape == (n, n_types))
        and not arrays
    )
    if not ok:
        raise ArchiveError(
            f"`path` {str(path)!r}: arrays do not match the header (shapes or types changed)"
        )
    return Expansion(
        values=values,
        samples=samples,
        neighbor_types=types,
        hypers=header["hypers"],
        has_neighbors=has_neighbors,
        info=header.get("info", {}),
        gradients=gradients,
    )


def _load_gradients(arrays, header, n, n_types, max_l, n_rad, path) -> dict:
    """The :class:`Gradient` entries of an archive, shapes checked against the header."""
    names = header.get("gradients", [])
    if not isinstance(names, list) or not set(names) <= set(GRADIENT_PARAMETERS):
        raise ArchiveError(f"`path` {path!r}: unknown gradients {names!r} in the header")
    out = {}
    for name in names:
        try:
            samples = arrays.pop(f"gradient_{name}_samples")
            values = [arrays.pop(f"gradient_{name}_l{l}") for l in range(max_l + 1)]
        except KeyError as err:
            raise ArchiveError(f"`path` {path!r} lacks {err}: truncated or tampered") from None
        atom_types = arrays.pop(f"gradient_{name}_atom_types", None)
        rows = len(samples)
        if name == "positions":
            ok = samples.ndim == 2 and samples.shape[1] == 3 and atom_types is not None
            ok = ok and atom_types.shape == (rows,) and (rows == 0 or samples[:, 0].max() < n)
            lead = (rows, 3)
        else:
            ok = samples.shape == (n, 1) and atom_types is None
            lead = (n, 3, 3)
        ok = ok and samples.dtype.kind == "i"
        ok = ok and [v.shape for v in values] == [
            (*lead, n_types, 2 * l + 1, n_rad) for l in range(max_l + 1)
        ]
        if not ok:
            raise ArchiveError(
                f"`path` {path!r}: the {name} gradient arrays do not match the header"
            )
        out[name] = Gradient(samples=samples, values=values, atom_types=atom_types)
    return out
