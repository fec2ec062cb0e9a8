"""Checks and conversions between torch tensors and the numpy arrays of the core."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InputError, describe

__all__ = ["as_numbers", "as_numpy", "check_coefficients", "checked_species", "float64_tensor"]


def as_numpy(tensor: torch.Tensor) -> np.ndarray:
    """The values of ``tensor`` as a numpy array on the CPU (a view when already there)."""
    return tensor.detach().cpu().numpy()


def as_numbers(types):
    """Atomic numbers or symbols as numpy or a sequence (tensors are converted)."""
    if isinstance(types, torch.Tensor):
        return types.detach().cpu().numpy()
    return types


def float64_tensor(name: str, value, shape: tuple) -> torch.Tensor:
    """``value`` if it is a float64 tensor of ``shape``, else an :class:`InputError`."""
    if not isinstance(value, torch.Tensor):
        raise InputError(f"`{name}` is {describe(value)}; expected a torch.Tensor of shape {shape}")
    if value.dtype != torch.float64:
        raise InputError(
            f"`{name}` has dtype {value.dtype}; expected torch.float64 (lodekit computes in "
            "double precision: convert with .double())"
        )
    if tuple(value.shape) != shape:
        raise InputError(f"`{name}` has shape {tuple(value.shape)}; expected {shape}")
    return value


def checked_species(species) -> np.ndarray:
    """``species`` as a non-empty, sorted int64 array of distinct atomic numbers."""
    array = np.asarray(as_numbers(species))
    if (
        array.ndim != 1
        or len(array) == 0
        or not np.issubdtype(array.dtype, np.integer)
        or np.any(np.diff(array) <= 0)
        or array.min() < 1
    ):
        raise InputError(
            f"`species` is {describe(species)}; expected a non-empty, sorted list of distinct "
            "atomic numbers"
        )
    return array.astype(np.int64)


def check_coefficients(name: str, value) -> torch.Tensor:
    """``value`` if it is a float64 coefficient tensor (n, n_species, (L+1)^2, n_radial)."""
    if not isinstance(value, torch.Tensor) or value.ndim != 4:
        raise InputError(
            f"`{name}` is {describe(value)}; expected a torch.Tensor of shape (n_centres, "
            "n_species, (max_angular + 1)^2, n_radial) (the output of lodekit.torch.expansion)"
        )
    if value.dtype != torch.float64:
        raise InputError(f"`{name}` has dtype {value.dtype}; expected torch.float64")
    n_lm = value.shape[2]
    if math.isqrt(n_lm) ** 2 != n_lm:
        raise InputError(
            f"`{name}` has {n_lm} (l, m) entries on axis 2; expected (max_angular + 1)^2"
        )
    return value
