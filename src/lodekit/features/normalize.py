"""Per-centre normalisation used before non-linear kernels (math.md §6)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .result import Features

__all__ = ["normalize"]


def normalize(features: Features) -> Features:
    """Divide each sample by its norm.

    lambda = 0: the Euclidean norm of the feature vector. lambda > 0: the square root of the
    Frobenius norm of the (2 lambda + 1)^2 self-product sum_q T_mu,q T_nu,q, which is
    rotation invariant. Samples whose norm is zero are left at zero.
    """
    values = features.values
    if features.o3_lambda == 0 and values.ndim == 2:
        norms = np.linalg.norm(values, axis=1)
        shape = (-1, 1)
    else:
        self_product = np.einsum("imq,inq->imn", values, values)
        norms = np.sqrt(np.linalg.norm(self_product, axis=(1, 2)))
        shape = (-1, 1, 1)
    safe = np.where(norms > 0, norms, 1.0).reshape(shape)
    return replace(features, values=values / safe)
