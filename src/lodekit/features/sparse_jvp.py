"""Sparse position Jacobians of the features: the chain rule on the expansions' sparse
Jacobians, row by (centre, atom) pair.

A coefficient of centre i depends only on the atoms j its expansion sees (the neighbours
within the cutoff and i itself for SOAP, every atom for LODE), and so do the features of i.
An expansion's position Jacobian is stored on those (centre, atom) rows
(:class:`~lodekit.expansion.Gradient`); the functions below carry that layout through the
feature products: a feature of a bilinear kind P(A, B) has

    d P[i] / d r_j = P(dA[i, j], B[i]) + P(A[i], dB[i, j]),

each term computed on the rows of its own expansion (one batched matrix product over rows
per l for the power spectrum), and the two summed on the union of the rows. Nothing is
formed over all (centre, atom) pairs unless an expansion has them all (LODE).

Every function returns ``(keys, values)``: keys (n_rows, 2) int64, (centre row, atom),
distinct; values (n_rows, 3, n_columns), d x[centre, column] / d r[atom, xyz], in the column
order of the forward function.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np

from ..errors import InputError
from ..expansion import Expansion
from .channels import channel_places
from .equivariants import equivariant_product
from .invariants import species_pairs

__all__ = [
    "RowTangent",
    "by_center_type_rows",
    "equivariant_product_rows",
    "lode_nu1_rows",
    "merge_rows",
    "place_columns",
    "power_spectrum_rows",
    "row_tangent",
]


@dataclass(frozen=True, eq=False)
class RowTangent:
    """d c / d r of one expansion on the (centre, atom) rows where it can be non-zero.

    Attributes
    ----------
    keys : ndarray of int64, shape (n_rows, 2)
        (centre row of the expansion, atom), distinct.
    values : list of ndarray
        Per l, (n_rows, 3, n_species, 2l+1, n_radial): coefficient units per Å.
    """

    keys: np.ndarray
    values: list

    def __len__(self) -> int:
        return len(self.keys)


def row_tangent(expansion: Expansion, species=None, own=None, exponents=None) -> RowTangent:
    """The position Jacobian of ``expansion`` (computed with ``gradients=["positions"]``) as a
    :class:`RowTangent`, its channels ``own`` (default: the expansion's ``neighbor_types``)
    placed at their entries of ``species`` (default: ``own``; zeros for the others).

    A recipe widens an expansion's values to its species list but not its Jacobian: pass the
    calculator's own channels (:attr:`Expanded.neighbor_types`) as ``own``, and for a LODE
    calculator with several exponents the exponent of each (:attr:`Expanded.exponents`) as
    ``exponents`` (channels per (exponent, species), exponent-major).
    """
    gradient = expansion.gradients.get("positions")
    if gradient is None:
        raise InputError(
            "`expansion` has no position Jacobian: compute it with gradients=['positions']"
        )
    keys = np.ascontiguousarray(gradient.samples[:, [0, 2]], dtype=np.int64)
    if own is None:
        own, exponents = expansion.neighbor_types, expansion.exponents
    own = np.asarray(own)
    values = list(gradient.values)
    where = None
    if species is not None:
        where, n_channels = channel_places(species, own, exponents)
    if where is not None:
        wide = []
        for v in values:
            out = np.zeros((v.shape[0], 3, n_channels, *v.shape[3:]))
            out[:, :, where] = v
            wide.append(out)
        values = wide
    return RowTangent(keys, values)


def merge_rows(parts) -> tuple[np.ndarray, np.ndarray]:
    """Sum of several ``(keys, values)`` of the same columns on the union of their rows."""
    parts = [(k, v) for k, v in parts]
    if len(parts) == 1 or all(np.array_equal(parts[0][0], k) for k, _ in parts[1:]):
        return parts[0][0], sum((v for _, v in parts[1:]), parts[0][1])
    keys, inverse = np.unique(np.concatenate([k for k, _ in parts]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    out = np.zeros((len(keys), *parts[0][1].shape[1:]))
    start = 0
    for k, v in parts:
        # rows are distinct within a part: a plain fancy-index add is a scatter-add
        out[inverse[start : start + len(k)]] += v
        start += len(k)
    return keys.astype(np.int64), out


def place_columns(parts, widths) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of columns ``parts`` (each ``(keys, values)``, values (rows, 3, width)) side by
    side on the union of their rows: (keys, values (n_rows, 3, sum(widths)))."""
    parts = list(parts)
    if len(parts) == 1:
        return parts[0]
    all_keys = np.concatenate([k for k, _ in parts])
    keys, inverse = np.unique(all_keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    out = np.zeros((len(keys), 3, int(sum(widths))))
    start = column = 0
    for (k, v), width in zip(parts, widths, strict=True):
        out[inverse[start : start + len(k)], :, column : column + width] = v
        start += len(k)
        column += width
    return keys.astype(np.int64), out


def lode_nu1_rows(expansion: Expansion, tangent: RowTangent) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the Jacobian of :func:`~lodekit.features.lode_nu1`: its l = 0 coefficients,
    values (n_rows, 3, n_species x n_radial)."""
    t0 = tangent.values[0][:, :, :, 0, :]
    return tangent.keys, t0.reshape(len(tangent), 3, -1)


#: Bytes of one chunk's product T (rows x 3 x (species n)^2): small enough to stay in cache
#: while its columns are gathered (measured on the 48-atom molecule of
#: benchmarks/bench_sparse_jacobian.py: 20 ms against 38 ms for all rows at once).
_CHUNK_BYTES = 1 << 19


def _pair_columns(types_a, types_b, n_a: int, n_b: int, distinct_pairs: bool, swapped: bool):
    """Where the power spectrum's columns of one l sit in T[a, n, b, k] (flattened), and
    their scales: (index (width,), scale (width,)). ``swapped``: in T[b, k, a, n] instead."""
    s_a, s_b = len(types_a), len(types_b)
    n, k = (grid.ravel() for grid in np.meshgrid(np.arange(n_a), np.arange(n_b), indexing="ij"))
    index, scale = [], []
    for i, j in species_pairs(types_a, types_b, distinct_pairs):
        if swapped:
            index.append(((j * n_b + k) * s_a + i) * n_a + n)
        else:
            index.append(((i * n_a + n) * s_b + j) * n_b + k)
        root = np.sqrt(2.0) if distinct_pairs and i != j else 1.0
        scale.append(np.full(n.size, root))
    return np.concatenate(index), np.concatenate(scale)


def _m_last(values: list) -> list:
    """Per l, the tangent d[r, x, a, m, n] as the matrix ((r x a n), m): m contiguous, so
    that the product over m reads it without a copy per l.

    When the per-l arrays are the l slices of one (rows, 3, species, (L+1)^2, n) array (as
    :func:`~lodekit.expansion.result.split_gradient_by_l` makes them), that array is
    transposed once: the per-l transposed copies cost 8 ms on the 48-atom molecule of
    benchmarks/bench_sparse_jacobian.py, the single one 1 ms.
    """
    first = values[0]
    base = first.base
    n_lm = len(values) ** 2
    whole = (
        isinstance(base, np.ndarray)
        and base.ndim == 5
        and base.shape == (*first.shape[:3], n_lm, first.shape[4])
        and all(
            v.strides == base.strides
            and v.__array_interface__["data"][0]
            == base.__array_interface__["data"][0] + l * l * base.strides[3]
            for l, v in enumerate(values)
        )
    )
    if whole:
        flat = np.ascontiguousarray(base.transpose(0, 1, 2, 4, 3)).reshape(-1, n_lm)
        return [flat[:, l * l : (l + 1) ** 2] for l in range(len(values))]
    return [
        np.ascontiguousarray(v.reshape(-1, v.shape[3], v.shape[4]).transpose(0, 2, 1)).reshape(
            -1, v.shape[3]
        )
        for v in values
    ]


def _rows_product(tangent: RowTangent, other: list, columns, swapped=None) -> np.ndarray:
    """Per row r = (centre c, atom) and l, T[r, x, a, n, b, k] = sum_m d[r, x, a, m, n]
    other[c, b, m, k], gathered into the power spectrum's columns: f_l scale (T[index]
    (+ T[swapped])).

    Rows are taken in chunks whose T stays in cache while its columns are gathered. Within
    a chunk, the rows of one centre share ``other[c]``: one matrix product per run of equal
    centres, ((rows 3 a n) x m) @ (m x (b k)), instead of one per row.

    Returns
    -------
    ndarray, shape (n_rows, 3, n_features)
    """
    index, scale = columns
    n_rows, width = len(tangent), len(index)
    out = np.empty((n_rows, 3, len(other) * width))
    _, _, s_a, _, n_a = tangent.values[0].shape
    s_b, n_b = other[0].shape[1], other[0].shape[3]
    # (centres, m, (b k)), with f_l = (-1)^l / sqrt(2l + 1) folded in
    right = [
        ((-1) ** l / np.sqrt(2 * l + 1))
        * o.transpose(0, 2, 1, 3).reshape(len(o), 2 * l + 1, s_b * n_b)
        for l, o in enumerate(other)
    ]
    left = _m_last(tangent.values)
    per_row = 3 * s_a * n_a  # rows of the product per tangent row
    chunk = max(1, min(n_rows, _CHUNK_BYTES // (8 * per_row * s_b * n_b)))
    # buffers reused by every chunk and l: T, and its gathered columns
    product = np.empty((chunk * per_row, s_b * n_b))
    gathered = np.empty((3 * chunk, width))
    extra = np.empty_like(gathered) if swapped is not None else None
    flat_out = out.reshape(3 * n_rows, -1)
    centres = tangent.keys[:, 0]
    for start in range(0, n_rows, chunk):
        stop = min(start + chunk, n_rows)
        n = stop - start
        here = centres[start:stop]
        runs = [0, *(np.flatnonzero(here[1:] != here[:-1]) + 1).tolist(), n]
        t = product[: n * per_row]
        t_rows = t.reshape(3 * n, -1)
        g = gathered[: 3 * n]
        block = flat_out[3 * start : 3 * stop]
        for l, lhs in enumerate(left):
            for begin, end in pairwise(runs):
                np.matmul(
                    lhs[(start + begin) * per_row : (start + end) * per_row],
                    right[l][here[begin]],
                    out=t[begin * per_row : end * per_row],
                )
            # take with an out array and mode "clip" (the indices are in range) gathers
            # without the temporaries of fancy indexing
            np.take(t_rows, index, axis=1, out=g, mode="clip")
            if swapped is not None:
                e = extra[: 3 * n]
                np.take(t_rows, swapped, axis=1, out=e, mode="clip")
                g += e
            np.multiply(g, scale, out=block[:, l * width : (l + 1) * width])
    return out


def power_spectrum_rows(
    a: Expansion,
    tangent_a: RowTangent,
    b: Expansion | None = None,
    tangent_b: RowTangent | None = None,
    *,
    distinct_pairs=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the Jacobian of :func:`~lodekit.features.power_spectrum` (a, b), by the chain
    rule dP = P(dA, B) + P(A, dB) on the rows of each expansion.

    For P(A, A) both terms come from one product T = sum_m dA A: the second is T with its
    (species, n) pairs swapped.

    Returns
    -------
    keys : ndarray of int64, shape (n_rows, 2)
        The union of the rows of ``tangent_a`` and ``tangent_b``.
    values : ndarray, shape (n_rows, 3, n_features)
    """
    symmetric = b is None
    other = a if b is None else b
    if distinct_pairs is None:
        distinct_pairs = symmetric
    layout = (a.neighbor_types, other.neighbor_types, a.n_radial, other.n_radial, distinct_pairs)
    direct = _pair_columns(*layout, swapped=False)
    if symmetric:
        # d(A A) = T + T with its (species, n) pairs swapped, T = sum_m dA A
        swapped = _pair_columns(*layout, swapped=True)[0]
        return tangent_a.keys, _rows_product(tangent_a, a.values, direct, swapped)
    if tangent_b is None:
        raise InputError("`tangent_b` is needed with `b`")
    # P(dA, B) on the rows of A; P(A, dB) on those of B, from T' = sum_m dB A, which holds
    # the column (a, n, b, k) at [b, k, a, n]
    first = _rows_product(tangent_a, other.values, direct)
    second = _rows_product(tangent_b, a.values, _pair_columns(*layout, swapped=True))
    return merge_rows([(tangent_a.keys, first), (tangent_b.keys, second)])


def _row_expansion(expansion: Expansion, values: list) -> Expansion:
    """An expansion whose "centres" are the rows of ``values`` (no metadata to check)."""
    n_rows = len(values[0])
    return replace(
        expansion,
        values=values,
        samples=np.zeros((n_rows, 3), dtype=np.int64),
        has_neighbors=None,
        gradients={},
    )


def equivariant_product_rows(
    a: Expansion,
    tangent_a: RowTangent,
    b: Expansion | None = None,
    tangent_b: RowTangent | None = None,
    *,
    o3_lambda: int,
    o3_sigma: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the Jacobian of :func:`~lodekit.features.equivariant_product`, columns as
    :meth:`~lodekit.features.kinds.Equivariant.columns` lays them out (mu slowest): the
    product evaluated on the (row, xyz) pairs, T(dA, B) on the rows of A and T(A, dB) on
    those of B.

    Returns
    -------
    keys : ndarray of int64, shape (n_rows, 2)
    values : ndarray, shape (n_rows, 3, (2 lambda + 1) x n_features)
    """
    symmetric = b is None
    other = a if b is None else b
    if not symmetric and tangent_b is None:
        raise InputError("`tangent_b` is needed with `b`")
    tangent_b = tangent_a if symmetric else tangent_b
    options = dict(o3_lambda=o3_lambda, o3_sigma=o3_sigma)

    def term(tangent: RowTangent, plain: Expansion, source: Expansion, first: bool):
        n = len(tangent)
        d = _row_expansion(source, [v.reshape(3 * n, *v.shape[2:]) for v in tangent.values])
        gathered = [np.repeat(v[tangent.keys[:, 0]], 3, axis=0) for v in plain.values]
        p = _row_expansion(plain, gathered)
        values = (equivariant_product(d, p, **options) if first else
                  equivariant_product(p, d, **options)).values  # fmt: skip
        return values.reshape(n, 3, -1)

    first = term(tangent_a, other, a, True)
    second = term(tangent_b, a, other, False)
    return merge_rows([(tangent_a.keys, first), (tangent_b.keys, second)])


def by_center_type_rows(values: np.ndarray, center_types: np.ndarray, types) -> np.ndarray:
    """Rows of the Jacobian of :meth:`Features.by_center_type`: each row in the block of its
    centre's species.

    Parameters
    ----------
    values : ndarray, shape (n_rows, 3, n_features)
    center_types : ndarray of int, shape (n_rows,)
        The species of every row's centre.
    types : sequence of int

    Returns
    -------
    ndarray, shape (n_rows, 3, len(types) x n_features)
    """
    types = np.asarray(types, dtype=np.int64)
    which = np.searchsorted(types, center_types)
    n_rows, _, width = values.shape
    out = np.zeros((n_rows, 3, len(types), width))
    for t in range(len(types)):
        rows = which == t
        out[rows, :, t] = values[rows]
    return out.reshape(n_rows, 3, -1)
