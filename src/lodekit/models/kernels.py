"""Kernels on atom-centred features and their structure-additive sums."""

from __future__ import annotations

import numpy as np

__all__ = ["normalize_rows", "polynomial_kernel"]


def normalize_rows(x: np.ndarray, blocks: list[slice]) -> np.ndarray:
    """Each block of columns of each row divided by its Euclidean norm (zero rows stay 0)."""
    out = np.array(x, dtype=np.float64, copy=True)
    for block in blocks:
        norms = np.linalg.norm(out[:, block], axis=1, keepdims=True)
        out[:, block] /= np.where(norms > 0, norms, 1.0)
    return out


def polynomial_kernel(
    x: np.ndarray, y: np.ndarray, zeta: float, blocks: list[slice], weights: np.ndarray
) -> np.ndarray:
    """k(x, y) = (sum_b w_b x_b · y_b)^zeta, shape (n_x, n_y).

    With one block and unit weight this is the usual (x · y)^zeta of normalised features; with a
    SOAP and a LODE block it is the paper's (k_SOAP + k_LODE)^zeta.
    """
    linear = np.zeros((x.shape[0], y.shape[0]))
    for block, weight in zip(blocks, weights, strict=True):
        linear += weight * (x[:, block] @ y[:, block].T)
    return linear**zeta
