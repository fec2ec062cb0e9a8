"""Model files: ``.npz`` arrays + a sealed JSON header with class, parameters and metadata.

Only plain numbers and arrays are stored and loading never unpickles. The header's checksum
covers the parameters, the metadata (the feature recipe) and every array, so a file changed
after writing raises :class:`ModelFileError`. Beyond the checksum, which anyone can
recompute, a loader only ever sets what the model class declares: its constructor
parameters and its list of fitted attributes (``_fitted_attributes``); any other entry
(an attribute ``predict``, ``__class__``, a parameter the class does not take) is refused.
A fitted array added to a class after files were written is also listed in the class's
``_fitted_later``: a file without it loads with an empty array there.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import LodekitError
from .header import ArchiveError, read_npz, seal, write_npz

__all__ = ["ModelFileError", "load_model", "save_model"]

FORMAT = "lodekit-model"
#: 2: one checksum over the whole header (version 1 checked the fitted arrays only)
FORMAT_VERSION = 2
SPEC = {
    "kind": FORMAT,
    "version": FORMAT_VERSION,
    "payload": ("model", "metadata"),
    "regenerate": "fit the model again and save it (save_model, `lodekit fit`)",
}


def _model_classes() -> dict:
    """The classes a model file may hold, by name. Imported when a model is saved or loaded:
    ``import lodekit`` must not load scikit-learn, whose OpenMP runtime slows the small BLAS
    products of the expansions when it shares the cores with OpenBLAS's threads (about 2x on
    nacl64 with 2 threads, benchmarks/RESULTS.md)."""
    from ..models import (
        AdditiveKernelRidge,
        EquivariantKernelRidge,
        EquivariantRidge,
        StructureRidge,
        SymmetricTensorRegression,
    )

    return {
        cls.__name__: cls
        for cls in (
            AdditiveKernelRidge,
            StructureRidge,
            EquivariantRidge,
            EquivariantKernelRidge,
            SymmetricTensorRegression,
        )
    }


class ModelFileError(ArchiveError):
    """A model file is not a valid lodekit model archive."""


def _collect(model, prefix: str, arrays: dict) -> dict:
    """Header entry of a fitted model; its arrays go to ``arrays`` under ``prefix``."""
    from sklearn.base import BaseEstimator

    cls = type(model)
    if _model_classes().get(cls.__name__) is not cls:
        raise LodekitError(f"cannot save {cls.__name__}: not a lodekit model")
    declared = cls._fitted_attributes
    undeclared = [
        name
        for name in vars(model)
        if name.endswith("_") and not name.startswith("_") and name != "metadata_"
        if name not in declared
    ]
    if undeclared:
        raise LodekitError(f"cannot save {cls.__name__}: unknown fitted attributes {undeclared}")
    entry = {"class": cls.__name__, "params": model.get_params(deep=False), "fitted": {}}
    for name in declared:
        if not hasattr(model, name):
            raise LodekitError(f"cannot save {cls.__name__}: it is not fitted (no {name})")
        value = getattr(model, name)
        if isinstance(value, BaseEstimator):
            entry["fitted"][name] = {"model": _collect(value, f"{prefix}{name}.", arrays)}
        elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            arrays[f"{prefix}{name}"] = value
            entry["fitted"][name] = {"array": f"{prefix}{name}"}
        elif isinstance(value, (int, float, np.integer, np.floating)):
            entry["fitted"][name] = {"scalar": value.item() if hasattr(value, "item") else value}
        else:
            raise LodekitError(f"cannot save fitted attribute {name} of type {type(value)}")
    return entry


def save_model(path: str | os.PathLike, model, metadata: dict | None = None) -> Path:
    """Write a fitted lodekit model to ``path`` (.npz) atomically.

    Parameters
    ----------
    path : path-like
        The file; its mode is ``0o666 & ~umask`` (:func:`lodekit.persistence.atomic_write`).
    model : fitted lodekit estimator
    metadata : dict, optional
        JSON-serialisable (training set, the feature recipe, units...), stored beside the
        parameters, covered by the checksum, returned as :func:`load_model`'s ``.metadata_``.
    """
    if not hasattr(model, "n_features_in_"):
        raise LodekitError(f"`model` {type(model).__name__} is not fitted")
    arrays: dict = {}
    payload = {"model": _collect(model, "", arrays), "metadata": metadata or {}}
    return write_npz(path, seal(FORMAT, FORMAT_VERSION, payload, arrays), arrays)


def _build(entry, arrays: dict, where: str, name: str = "model"):
    """The model described by header entry ``entry`` (``name`` in messages)."""
    if not isinstance(entry, dict) or set(entry) != {"class", "params", "fitted"}:
        raise ModelFileError(f"{where}: invalid description of {name}")
    cls = _model_classes().get(entry["class"]) if isinstance(entry["class"], str) else None
    if cls is None:
        raise ModelFileError(f"{where}: {name} has unknown class {entry['class']!r}")
    params, fitted = entry["params"], entry["fitted"]
    if not isinstance(params, dict) or not isinstance(fitted, dict):
        raise ModelFileError(f"{where}: invalid description of {name}")
    for key in params:
        if key not in cls._get_param_names():
            raise ModelFileError(f"{where}: {cls.__name__} takes no parameter {key!r}")
    model = cls(**params)
    for key in fitted:
        if key not in cls._fitted_attributes:
            raise ModelFileError(
                f"{where}: {key!r} is not a fitted attribute of {cls.__name__}; refusing to set it"
            )
    later = getattr(cls, "_fitted_later", ())
    for key in cls._fitted_attributes:
        if key not in fitted and key in later:
            setattr(model, key, np.zeros(0))
            continue
        if key not in fitted:
            raise ModelFileError(f"{where}: {name} lacks its fitted attribute {key!r}")
        setattr(model, key, _value(fitted[key], arrays, where, f"{name}.{key}"))
    if hasattr(model, "_restore"):
        try:
            model._restore()
        except LodekitError as err:
            raise ModelFileError(f"{where}: inconsistent model ({err})") from None
    return model


def _value(item, arrays: dict, where: str, name: str):
    """One fitted attribute: a sub-model, an array of numbers, or a number."""
    kind = next(iter(item)) if isinstance(item, dict) and len(item) == 1 else None
    if kind == "model":
        return _build(item["model"], arrays, where, name)
    if kind == "array" and isinstance(item["array"], str) and item["array"] in arrays:
        value = arrays[item["array"]]
        if value.dtype.kind in "biuf":
            return value
    if kind == "scalar":
        value = item["scalar"]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    raise ModelFileError(f"{where}: invalid entry for {name}")


def load_model(path: str | os.PathLike):
    """Read a model written by :func:`save_model`; raises :class:`ModelFileError` if invalid.

    Refused: another format or version, a header or array that does not match the checksum,
    an array or fitted attribute that the model class does not declare.
    """
    where = f"model file {str(path)!r}"
    header, arrays = read_npz(path, SPEC, where, ModelFileError)
    model = _build(header.get("model"), arrays, where)
    used = _array_names(header["model"])
    for name in sorted(set(arrays) - used):
        raise ModelFileError(f"{where}: array {name!r} belongs to no fitted attribute")
    metadata = header.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{where}: invalid metadata")
    model.metadata_ = metadata
    return model


def _array_names(entry: dict) -> set:
    names = set()
    for item in entry["fitted"].values():
        if "model" in item:
            names |= _array_names(item["model"])
        elif "array" in item:
            names.add(item["array"])
    return names
