"""Model archives: ``.npz`` arrays + a JSON header with parameters, version and checksums.

Only plain numbers and arrays are stored; loading never unpickles. Every array carries a
SHA-256 checksum in the header, so a file changed after writing is detected.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

from ..errors import LodekitError
from .equivariant_kernel import EquivariantKernelRidge
from .kernel_ridge import AdditiveKernelRidge
from .linear import StructureRidge
from .tensors import EquivariantRidge, SymmetricTensorRegression

__all__ = ["ModelFileError", "load_model", "save_model"]

FORMAT = "lodekit-model"
FORMAT_VERSION = 1
MODELS = {
    cls.__name__: cls
    for cls in (
        AdditiveKernelRidge,
        StructureRidge,
        EquivariantRidge,
        EquivariantKernelRidge,
        SymmetricTensorRegression,
    )
}


class ModelFileError(LodekitError):
    """A model file is not a valid lodekit model archive."""


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _collect(model, prefix: str, arrays: dict) -> dict:
    """Header entry of a fitted model; its arrays go to ``arrays`` under ``prefix``."""
    if type(model).__name__ not in MODELS:
        raise LodekitError(f"cannot save {type(model).__name__}: not a lodekit model")
    entry = {"class": type(model).__name__, "params": model.get_params(deep=False), "fitted": {}}
    for name, value in vars(model).items():
        if not name.endswith("_") or name.startswith("_") or name == "metadata_":
            continue
        if isinstance(value, BaseEstimator):
            entry["fitted"][name] = {"model": _collect(value, f"{prefix}{name}.", arrays)}
        elif isinstance(value, np.ndarray):
            key = f"{prefix}{name}"
            arrays[key] = value
            entry["fitted"][name] = {"array": key, "sha256": _digest(value)}
        elif isinstance(value, (int, float, np.integer, np.floating)):
            entry["fitted"][name] = {"scalar": value.item() if hasattr(value, "item") else value}
        else:
            raise LodekitError(f"cannot save fitted attribute {name} of type {type(value)}")
    return entry


def save_model(path: str | os.PathLike, model, metadata: dict | None = None) -> Path:
    """Write a fitted lodekit model to ``path`` (.npz) atomically.

    ``metadata`` (JSON-serialisable: training set, hyperparameters of the features, units...)
    is stored beside the parameters and returned by :func:`load_model`'s ``.metadata_``.
    """
    from .._version import __version__
    from ..io import atomic_write

    if not hasattr(model, "n_features_in_"):
        raise LodekitError(f"`model` {type(model).__name__} is not fitted")
    arrays: dict = {}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lodekit_version": __version__,
        "model": _collect(model, "", arrays),
        "metadata": metadata or {},
    }
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    return atomic_write(path, lambda stream: np.savez(stream, **arrays))


def _build(entry, arrays: dict, where: str):
    try:
        cls = MODELS[entry["class"]]
        model = cls(**entry["params"])
        fitted = entry["fitted"]
    except (KeyError, TypeError) as err:
        raise ModelFileError(f"{where}: invalid model description ({err})") from None
    for name, item in fitted.items():
        if "model" in item:
            value = _build(item["model"], arrays, where)
        elif "array" in item:
            if item["array"] not in arrays:
                raise ModelFileError(f"{where}: array {item['array']!r} is missing (truncated?)")
            value = arrays[item["array"]]
            if _digest(value) != item.get("sha256"):
                raise ModelFileError(
                    f"{where}: checksum mismatch for {item['array']!r}: the file was modified"
                )
        elif "scalar" in item:
            value = item["scalar"]
        else:
            raise ModelFileError(f"{where}: invalid entry for {name!r}")
        setattr(model, name, value)
    if hasattr(model, "_restore"):
        try:
            model._restore()
        except LodekitError as err:
            raise ModelFileError(f"{where}: inconsistent model ({err})") from None
    return model


def load_model(path: str | os.PathLike):
    """Read a model written by :func:`save_model`; raises :class:`ModelFileError` if invalid."""
    from ..io import read_archive

    where = f"model file {str(path)!r}"
    arrays, header = read_archive(path, FORMAT, FORMAT_VERSION, where, ModelFileError)
    model = _build(header.get("model", {}), arrays, where)
    model.metadata_ = header.get("metadata", {})
    return model
