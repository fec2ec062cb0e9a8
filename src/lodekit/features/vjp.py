"""Vector-Jacobian products (backward passes) of the features: dE/d(features) -> dE/d(expansion
coefficients).

With these, the gradient of a model's output with respect to its features (one row per
environment) becomes an upstream gradient for the expansion's vector-Jacobian product, so that
forces and stress never need the Jacobian of the features or of the expansion.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..expansion import Expansion
from .clebsch_gordan import real_clebsch_gordan
from .invariants import species_pairs

__all__ = [
    "by_center_type_backward",
    "equivariant_product_backward",
    "lode_nu1_backward",
    "power_spectrum_backward",
]


def _check_rows(grad: np.ndarray, n_rows: int, n_features: int, name: str) -> np.ndarray:
    grad = np.asarray(grad, dtype=np.float64)
    if grad.shape != (n_rows, n_features):
        raise InputError(
            f"`{name}` has shape {grad.shape}; expected ({n_rows}, {n_features}) (one row of "
            "feature gradients per environment)"
        )
    return grad


def by_center_type_backward(
    grad: np.ndarray, center_types: np.ndarray, types, n_features: int
) -> np.ndarray:
    """Gradient with respect to the features before :meth:`Features.by_center_type`.

    Parameters
    ----------
    grad : ndarray, shape (n_samples, len(types) x n_features)
    center_types : ndarray of int, shape (n_samples,)
        The centre species of every row.
    types : sequence of int
        The ``center_types`` given to ``by_center_type``.
    n_features : int
        Columns before the split.

    Returns
    -------
    ndarray, shape (n_samples, n_features): each row's own block (the others multiply zeros).
    """
    types = np.asarray(types, dtype=np.int64)
    grad = _check_rows(grad, len(center_types), len(types) * n_features, "grad")
    which = np.searchsorted(types, center_types)
    blocks = grad.reshape(len(grad), len(types), n_features)
    return blocks[np.arange(len(grad)), which]


def lode_nu1_backward(expansion: Expansion, grad: np.ndarray) -> list[np.ndarray]:
    """dE/dc for every l (zeros for l > 0) from dE/d(lode_nu1 features), shape per l as
    ``expansion.values[l]``."""
    n_species, n_radial = len(expansion.neighbor_types), expansion.n_radial
    grad = _check_rows(grad, len(expansion), n_species * n_radial, "grad")
    out = [np.zeros_like(values) for values in expansion.values]
    out[0][:, :, 0, :] = grad.reshape(len(expansion), n_species, n_radial)
    return out


def power_spectrum_backward(
    grad: np.ndarray, a: Expansion, b: Expansion | None = None, *, distinct_pairs=None
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """dE/dA and dE/dB from dE/dP, for P = :func:`~lodekit.features.power_spectrum` (a, b).

    P_{l, s n, s' n'} = f_l sum_m A_{s l m n} B_{s' l m n'} (f_l = (-1)^l / sqrt(2l+1), times
    sqrt 2 for unlike pairs with ``distinct_pairs``), so dE/dA_{s l m n} = f_l sum over the pairs
    (s, s') of sum_n' G_{l, s n, s' n'} B_{s' l m n'}, and symmetrically for B.

    Returns
    -------
    (list per l of dE/dA, list per l of dE/dB); with ``b`` None (a x a) the two contributions
    are added into the first and the second is None.
    """
    symmetric = b is None
    other = a if b is None else b
    if distinct_pairs is None:
        distinct_pairs = symmetric
    types_a, types_b = a.neighbor_types, other.neighbor_types
    pairs = species_pairs(types_a, types_b, distinct_pairs)
    n_a, n_b = a.n_radial, other.n_radial
    n_features = (a.max_angular + 1) * len(pairs) * n_a * n_b
    grad = _check_rows(grad, len(a), n_features, "grad")
    grad_a = [np.zeros_like(v) for v in a.values]
    grad_b = [np.zeros_like(v) for v in other.values]
    column = 0
    for l, (va, vb) in enumerate(zip(a.values, other.values, strict=True)):
        factor = (-1) ** l / np.sqrt(2 * l + 1)
        for i, j in pairs:
            scale = factor
            if distinct_pairs and i != j:
                scale = scale * np.sqrt(2.0)
            g = grad[:, column : column + n_a * n_b].reshape(len(a), n_a, n_b) * scale
            column += n_a * n_b
            # P[c, n, k] = sum_m A[c, i, m, n] B[c, j, m, k]
            grad_a[l][:, i] += np.einsum("cnk,cmk->cmn", g, vb[:, j])
            grad_b[l][:, j] += np.einsum("cnk,cmn->cmk", g, va[:, i])
    if symmetric:
        return [ga + gb for ga, gb in zip(grad_a, grad_b, strict=True)], None
    return grad_a, grad_b


def equivariant_product_backward(
    grad: np.ndarray, a: Expansion, b: Expansion | None = None, *, o3_lambda: int, o3_sigma=1
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """dE/dA and dE/dB from dE/dT, for T = :func:`~lodekit.features.equivariant_product`.

    T[i, mu, (a n b p)] = sum_{m k} C[m, k, mu] A[i, a, m, n] B[i, b, k, p] for every (l_1, l_2)
    block, so dE/dA[i, a, m, n] = sum G[i, mu, a n b p] C[m, k, mu] B[i, b, k, p] (and alike
    for B).

    Parameters
    ----------
    grad : ndarray, shape (n_centres, 2 lambda + 1, n_features)

    Returns
    -------
    (list per l of dE/dA, list per l of dE/dB); with ``b`` None the two are added into the
    first and the second is None.
    """
    symmetric = b is None
    other = a if b is None else b
    grad = np.asarray(grad, dtype=np.float64)
    blocks = [
        (l1, l2)
        for l1 in range(a.max_angular + 1)
        for l2 in range(other.max_angular + 1)
        if abs(l1 - l2) <= o3_lambda <= l1 + l2 and (-1) ** (l1 + l2 + o3_lambda) == o3_sigma
    ]
    width = len(a.neighbor_types) * a.n_radial * len(other.neighbor_types) * other.n_radial
    expected = (len(a), 2 * o3_lambda + 1, len(blocks) * width)
    if grad.shape != expected:
        raise InputError(
            f"`grad` has shape {grad.shape}; expected {expected} (the shape of "
            "equivariant_product(a, b, ...).values)"
        )
    grad_a = [np.zeros_like(v) for v in a.values]
    grad_b = [np.zeros_like(v) for v in other.values]
    shape = (len(a), 2 * o3_lambda + 1, len(a.neighbor_types), a.n_radial)
    shape += (len(other.neighbor_types), other.n_radial)
    for index, (l1, l2) in enumerate(blocks):
        g = grad[:, :, index * width : (index + 1) * width].reshape(shape)
        cg = real_clebsch_gordan(l1, l2, o3_lambda)
        va, vb = a.values[l1], other.values[l2]
        grad_a[l1] += np.einsum("iqanbp,ibkp,mkq->iamn", g, vb, cg, optimize=True)
        grad_b[l2] += np.einsum("iqanbp,iamn,mkq->ibkp", g, va, cg, optimize=True)
    if symmetric:
        return [ga + gb for ga, gb in zip(grad_a, grad_b, strict=True)], None
    return grad_a, grad_b
