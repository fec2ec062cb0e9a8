"""One header format for every lodekit file: JSON, sealed by a checksum over itself and the arrays.

A header is a JSON object::

    {"format": "lodekit-model", "format_version": 2, "lodekit_version": "...",
     ...payload...,
     "arrays": {name: digest of the array, ...},
     "checksum": sha256 of the canonical JSON of everything above}

The canonical JSON sorts keys and has no spaces, so the checksum does not depend on how the
header was laid out on disk. Because the array digests are inside the checksummed header,
one checksum covers the whole file: an edited header value (a recipe's smearing, a model
parameter), an edited array byte, an added or removed entry are all detected. The checksum
guards against accidents and edits, not against an attacker (who can recompute it); that is
why readers still refuse entries they do not know and never unpickle.
"""

from __future__ import annotations

import hashlib
import json
import zipfile

import numpy as np

from ..errors import LodekitError

__all__ = ["ArchiveError", "digest", "read_npz", "seal", "verify", "verify_arrays", "write_npz"]


class ArchiveError(LodekitError):
    """A file is not a valid lodekit archive (wrong format or version, truncated, altered)."""


def digest(array: np.ndarray) -> str:
    """SHA-256 (hex) of an array's type, shape and bytes in C order.

    Type and shape are part of it, so the same bytes read as another type or shape differ.
    """
    array = np.asarray(array)
    hasher = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    hasher.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)
    return hasher.hexdigest()


#: Header entries of every format, written by :func:`seal`
_SEALING = ("format", "format_version", "lodekit_version", "arrays", "checksum")


def _canonical(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _checksum(header: dict) -> str:
    unsealed = {key: value for key, value in header.items() if key != "checksum"}
    return hashlib.sha256(_canonical(unsealed)).hexdigest()


def seal(kind: str, version: int, payload: dict, arrays: dict) -> dict:
    """The header of a ``kind`` file of format ``version``: ``payload``, array digests, checksum.

    Parameters
    ----------
    payload : dict
        JSON-serialisable entries (tuples become lists, as they will be read back).
    arrays : dict of str to ndarray
        Every array stored beside the header.

    Returns
    -------
    dict
        The header to store, as it will be read back (a JSON round trip).
    """
    from .._version import __version__

    header = {
        **payload,
        "format": kind,
        "format_version": version,
        "lodekit_version": __version__,
        "arrays": {name: digest(value) for name, value in sorted(arrays.items())},
    }
    # written and read as JSON: checksum what a reader will see
    header = json.loads(json.dumps(header))
    header["checksum"] = _checksum(header)
    return header


def verify(header, arrays: dict | None, spec: dict, where: str, error: type) -> dict:
    """Check a header read from a file (and its arrays, unless None); return it.

    Parameters
    ----------
    header : object
        The parsed JSON.
    arrays : dict of str to ndarray, or None
        The arrays read beside it; None checks the header alone (arrays verified later).
    spec : dict
        ``kind`` (format name), ``version``, ``payload`` (the format's header entries besides
        those of :func:`seal`: any other entry is refused) and ``regenerate`` (how to write
        the file again, for the messages).
    where : str
        The file, as error messages name it.
    error : type
        The exception raised.
    """
    kind, version = spec["kind"], spec["version"]
    if not isinstance(header, dict) or header.get("format") != kind:
        raise error(f"{where} is not a {kind} archive")
    found = header.get("format_version")
    if found != version:
        raise error(
            f"{where} is a {kind} file of format version {found!r} (written by lodekit "
            f"{header.get('lodekit_version', '?')}); this lodekit reads version {version} "
            f"only, whose header is checksummed: {spec['regenerate']}"
        )
    if header.get("checksum") != _checksum(header) or not isinstance(header.get("arrays"), dict):
        raise error(
            f"{where}: the header does not match its checksum: the file was modified after it "
            f"was written; {spec['regenerate']}"
        )
    known = set(spec["payload"]) | set(_SEALING)
    for name in sorted(set(header) - known, key=str):
        raise error(f"{where}: unknown header entry {name!r}; refusing the file")
    for name in sorted(known - set(header)):
        raise error(f"{where}: the header lacks {name!r}; {spec['regenerate']}")
    if arrays is not None:
        verify_arrays(header, arrays, where, error, spec["regenerate"])
    return header


def verify_arrays(header: dict, arrays: dict, where: str, error: type, regenerate: str) -> None:
    """Every array named by ``header["arrays"]`` present, with its digest; no other array.

    Raises ``error`` naming ``where``, the array, and ``regenerate`` (what to do).
    """
    expected = header["arrays"]
    for name in sorted(set(arrays) - set(expected)):
        raise error(f"{where}: array {name!r} is not in the header (added after writing)")
    for name in sorted(expected):
        if name not in arrays:
            raise error(f"{where}: array {name!r} is missing (truncated?); {regenerate}")
        if digest(arrays[name]) != expected[name]:
            raise error(
                f"{where}: checksum mismatch for {name!r}: the file was modified; {regenerate}"
            )


def write_npz(path, header: dict, arrays: dict):
    """Write ``arrays`` and the sealed ``header`` (as a uint8 array named ``header``) to an
    uncompressed ``.npz`` at ``path``, atomically. Returns the path."""
    from ._atomic import atomic_write

    if "header" in arrays:
        raise LodekitError("an array may not be called 'header'")
    encoded = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    return atomic_write(path, lambda stream: np.savez(stream, **arrays, header=encoded))


#: First bytes of a zip file (a local file header, or the end record of an empty zip).
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


def read_npz(path, spec: dict, where: str, error: type) -> tuple[dict, dict]:
    """The verified header and the arrays of an ``.npz`` written by :func:`write_npz`.

    Never unpickles. Raises ``error`` naming ``where`` when the file is missing, not an npz,
    has no header, is of another kind or version, or does not match its checksums.
    """
    try:
        # open the file ourselves: np.load leaks its handle when the zip is truncated
        with open(path, "rb") as stream:
            # np.load takes any other file for a pickle, and would blame pickling
            if stream.read(4) not in _ZIP_SIGNATURES:
                raise error(
                    f"{where} is not a readable .npz archive (no zip signature): not a "
                    f"{spec['kind']} file"
                )
            stream.seek(0)
            with np.load(stream, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise error(f"{where} does not exist") from None
    except IsADirectoryError:
        raise error(f"{where} is a directory, not a {spec['kind']} file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise error(f"{where} is not a readable .npz archive: {err}") from None
    try:
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (KeyError, ValueError, UnicodeDecodeError):
        raise error(f"{where} has no valid lodekit header") from None
    return verify(header, arrays, spec, where, error), arrays
