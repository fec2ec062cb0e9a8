"""Kernels on atom-centred features and their structure-additive sums."""

from __future__ import annotations

import numpy as np

__all__ = ["normalize_rows", "polynomial_kernel"]


def normalize_rows(x: np.ndarray, blocks: list[slice], skip=frozenset()) -> np.ndarray:
    """Each block of columns of each row divided by its Euclidean norm (zero rows stay 0);
    blocks whose index is in ``skip`` are left as they are."""
    out = np.array(x, dtype=np.float64, copy=True)
    for index, block in enumerate(blocks):
        if index in skip:
            continue
        norms = np.linalg.norm(out[:, block], axis=1, keepdims=True)
        out[:, block] /= np.where(norms > 0, norms, 1.0)
    return out


def polynomial_kernel(
    x: np.ndarray,
    y: np.ndarray,
    zeta: float,
    blocks: list[slice],
    weights: np.ndarray,
    linear: frozenset = frozenset(),
) -> np.ndarray:
    """k(x, y) = (sum_{b not linear} w_b x_b · y_b)^zeta + sum_{b linear} w_b x_b · y_b.

    With one block and unit weight this is the usual (x · y)^zeta of normalised features; with a
    SOAP and a LODE block it is the paper's (k_SOAP + k_LODE)^zeta, and with the LODE block
    marked linear it is k_SOAP^zeta + a linear LODE model ("SOAP + linear LODE nu = 1").
    """
    inner = np.zeros((x.shape[0], y.shape[0]))
    outer = np.zeros_like(inner)
    for index, (block, weight) in enumerate(zip(blocks, weights, strict=True)):
        target = outer if index in linear else inner
        target += weight * (x[:, block] @ y[:, block].T)
    if len(linear) == len(blocks):
        return outer
    return inner**zeta + outer
