"""Jacobian-vector products (forward, tangent passes) of the features: tangents of features
from tangents of expansions.

A tangent of an expansion is, per l, an array (n_centres, n_tangents, n_species, 2l+1,
n_radial): the derivative of every coefficient along n_tangents directions (e.g. the 3 n_atoms
Cartesian displacements, from ``compute(..., gradients=["positions"])``). The functions below
return the derivative of the features along the same directions, (n_centres, n_tangents,
n_features), in the column order of the forward functions. Kernel models need this per
environment (the energy is not linear in the features); linear models and potentials use the
cheaper vector-Jacobian products of :mod:`lodekit.features.vjp`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import InputError
from ..expansion import Expansion
from .equivariants import equivariant_product
from .invariants import species_pairs

__all__ = [
    "by_center_type_forward",
    "equivariant_product_forward",
    "lode_nu1_forward",
    "power_spectrum_forward",
]


def _check_tangent(expansion: Expansion, tangent, name: str) -> list[np.ndarray]:
    if not isinstance(tangent, (list, tuple)) or len(tangent) != len(expansion.values):
        raise InputError(f"`{name}` must be a list of {len(expansion.values)} arrays (one per l)")
    out = []
    for l, (values, t) in enumerate(zip(expansion.values, tangent, strict=True)):
        t = np.asarray(t, dtype=np.float64)
        if t.ndim != 5 or t.shape[0] != values.shape[0] or t.shape[2:] != values.shape[1:]:
            raise InputError(
                f"`{name}[{l}]` has shape {t.shape}; expected (n_centres, n_tangents) + "
                f"{values.shape[1:]}"
            )
        out.append(t)
    return out


def lode_nu1_forward(expansion: Expansion, tangent) -> np.ndarray:
    """Tangent of :func:`~lodekit.features.lode_nu1`: the l = 0 coefficients,
    (n_centres, n_tangents, n_species x n_radial)."""
    tangent = _check_tangent(expansion, tangent, "tangent")
    t0 = tangent[0][:, :, :, 0, :]
    return t0.reshape(t0.shape[0], t0.shape[1], -1)


def power_spectrum_forward(
    a: Expansion, tangent_a, b: Expansion | None = None, tangent_b=None, *, distinct_pairs=None
) -> np.ndarray:
    """Tangent of :func:`~lodekit.features.power_spectrum` (a, b): P is bilinear, so
    dP = P(dA, B) + P(A, dB), with the same factors f_l and column order.

    Parameters
    ----------
    a, b : Expansion
        As for ``power_spectrum``; ``b`` None means ``a`` itself (and then ``tangent_b`` is
        ``tangent_a``).
    tangent_a, tangent_b : list of ndarray
        Per l, (n_centres, n_tangents, n_species, 2l+1, n_radial).

    Returns
    -------
    ndarray, shape (n_centres, n_tangents, n_features)
    """
    symmetric = b is None
    other = a if b is None else b
    if distinct_pairs is None:
        distinct_pairs = symmetric
    tangent_a = _check_tangent(a, tangent_a, "tangent_a")
    tangent_b = tangent_a if symmetric else _check_tangent(other, tangent_b, "tangent_b")
    if tangent_a[0].shape[1] != tangent_b[0].shape[1]:
        raise InputError("`tangent_a` and `tangent_b` must have the same number of tangents")
    types_a, types_b = a.neighbor_types, other.neighbor_types
    pairs = species_pairs(types_a, types_b, distinct_pairs)
    n_centres, n_tangents = len(a), tangent_a[0].shape[1]
    blocks = []
    for l in range(a.max_angular + 1):
        va, vb, ta, tb = a.values[l], other.values[l], tangent_a[l], tangent_b[l]
        factor = (-1) ** l / np.sqrt(2 * l + 1)
        for i, j in pairs:
            scale = factor
            if distinct_pairs and i != j:
                scale = scale * np.sqrt(2.0)
            # d/dt sum_m A[c, i, m, n] B[c, j, m, k]
            block = np.einsum("ctmn,cmk->ctnk", ta[:, :, i], vb[:, j]) + np.einsum(
                "cmn,ctmk->ctnk", va[:, i], tb[:, :, j]
            )
            blocks.append(scale * block.reshape(n_centres, n_tangents, -1))
    return np.concatenate(blocks, axis=2)


def by_center_type_forward(tangent: np.ndarray, center_types: np.ndarray, types) -> np.ndarray:
    """Tangent of :meth:`Features.by_center_type`: each row's tangent in its species' block.

    Parameters
    ----------
    tangent : ndarray, shape (n_samples, n_tangents, n_features)
    center_types : ndarray of int, shape (n_samples,)
    types : sequence of int

    Returns
    -------
    ndarray, shape (n_samples, n_tangents, len(types) x n_features)
    """
    types = np.asarray(types, dtype=np.int64)
    tangent = np.asarray(tangent, dtype=np.float64)
    which = np.searchsorted(types, center_types)
    out = np.zeros((tangent.shape[0], tangent.shape[1], len(types), tangent.shape[2]))
    out[np.arange(len(tangent)), :, which] = tangent
    return out.reshape(tangent.shape[0], tangent.shape[1], -1)


def _rows_repeated(expansion: Expansion, values: list[np.ndarray], n_tangents: int) -> Expansion:
    """An expansion with every centre repeated n_tangents times and the given values."""
    return replace(
        expansion,
        values=values,
        samples=np.repeat(expansion.samples, n_tangents, axis=0),
        has_neighbors=None,
        gradients={},
    )


def equivariant_product_forward(
    a: Expansion, tangent_a, b: Expansion | None = None, tangent_b=None, *, o3_lambda, o3_sigma=1
) -> np.ndarray:
    """Tangent of :func:`~lodekit.features.equivariant_product`: T is bilinear in (A, B), so
    dT = T(dA, B) + T(A, dB), evaluated on centres repeated once per tangent direction.

    Returns
    -------
    ndarray, shape (n_centres, n_tangents, 2 lambda + 1, n_features)
    """
    symmetric = b is None
    other = a if b is None else b
    tangent_a = _check_tangent(a, tangent_a, "tangent_a")
    tangent_b = tangent_a if symmetric else _check_tangent(other, tangent_b, "tangent_b")
    n_centres, n_tangents = len(a), tangent_a[0].shape[1]
    if tangent_b[0].shape[1] != n_tangents:
        raise InputError("`tangent_a` and `tangent_b` must have the same number of tangents")

    def flat(tangent):
        return [t.reshape(n_centres * n_tangents, *t.shape[2:]) for t in tangent]

    def repeated(expansion):
        return [np.repeat(v, n_tangents, axis=0) for v in expansion.values]

    da = _rows_repeated(a, flat(tangent_a), n_tangents)
    db = _rows_repeated(other, flat(tangent_b), n_tangents)
    plain_a = _rows_repeated(a, repeated(a), n_tangents)
    plain_b = _rows_repeated(other, repeated(other), n_tangents)
    options = dict(o3_lambda=o3_lambda, o3_sigma=o3_sigma)
    out = (
        equivariant_product(da, plain_b, **options).values
        + equivariant_product(plain_a, db, **options).values
    )
    return out.reshape(n_centres, n_tangents, *out.shape[1:])
