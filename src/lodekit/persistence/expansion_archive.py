"""Expansion archives: plain ``.npz`` arrays plus a sealed JSON header, written atomically.

Nothing is ever unpickled: archives are read with ``allow_pickle=False``; the header's
checksum covers the header and every array (:mod:`lodekit.persistence.header`), and every
array is checked for the shape and type that the header announces, so a corrupt, truncated
or altered file raises :class:`ArchiveError` instead of producing wrong numbers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..expansion.result import GRADIENT_PARAMETERS, Expansion, Gradient
from .header import ArchiveError, read_npz, seal, write_npz

__all__ = ["load_expansion", "save_expansion"]

FORMAT = "lodekit-expansion"
#: 2: the header is sealed by a checksum (version 1 checked the arrays' shapes only)
FORMAT_VERSION = 2
SPEC = {
    "kind": FORMAT,
    "version": FORMAT_VERSION,
    "payload": ("hypers", "info", "max_angular", "n_radial", "n_samples", "units", "gradients"),
    "regenerate": "compute the expansion again and save it (save_expansion, `lodekit expand`)",
}


def save_expansion(path: str | os.PathLike, expansion: Expansion) -> Path:
    """Write ``expansion`` to ``path`` (``.npz``) atomically.

    The file's mode is ``0o666 & ~umask``; see :func:`lodekit.persistence.atomic_write`.
    """
    payload = {
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
    if expansion.exponents is not None:
        arrays["exponents"] = expansion.exponents
    header = seal(FORMAT, FORMAT_VERSION, payload, arrays)
    return write_npz(path, header, arrays)


def load_expansion(path: str | os.PathLike) -> Expansion:
    """Read an archive written by :func:`save_expansion`."""
    header, arrays = read_npz(path, SPEC, f"`path` {str(path)!r}", ArchiveError)
    try:
        n, max_l, n_rad = header["n_samples"], header["max_angular"], header["n_radial"]
        values = [arrays.pop(f"values_l{l}") for l in range(max_l + 1)]
        samples, types = arrays.pop("samples"), arrays.pop("neighbor_types")
    except KeyError as err:
        raise ArchiveError(f"`path` {str(path)!r} lacks {err}: truncated or tampered") from None
    has_neighbors = arrays.pop("has_neighbors", None)
    exponents = arrays.pop("exponents", None)
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
        and (exponents is None or (exponents.shape == (n_types,) and exponents.dtype.kind == "i"))
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
        exponents=exponents,
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
        if name in ("positions", "weights"):
            ok = samples.ndim == 2 and samples.shape[1] == 3 and atom_types is not None
            ok = ok and atom_types.shape == (rows,) and (rows == 0 or samples[:, 0].max() < n)
            lead = (rows, 3) if name == "positions" else (rows,)
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
