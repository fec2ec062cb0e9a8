"""Rotational invariants of spherical expansions (math.md §6)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..expansion.result import Expansion
from .result import Features

__all__ = ["lode_nu1", "power_spectrum", "power_spectrum_size"]


def _check_same_centres(a: Expansion, b: Expansion) -> None:
    if a.samples.shape != b.samples.shape or not np.array_equal(a.samples, b.samples):
        raise InputError(
            "`a` and `b` describe different centres: compute both expansions on the same "
            "structures with the same selected atoms"
        )


def lode_nu1(expansion: Expansion) -> Features:
    """The l = 0 coefficients c^{i,a}_{n00}: "LODE nu = 1" of the paper.

    Returns
    -------
    Features
        values (n_centres, n_species x n_radial); properties (neighbor_type, n). With sharp
        charges and a basis narrower than the closest approach, a linear model in these is a
        fixed point-charge model (Grisafi & Ceriotti 2019, Sec. II).
    """
    values = expansion.values[0][:, :, 0, :]
    n_species, n_radial = values.shape[1:]
    properties = np.stack(
        [
            np.repeat(expansion.neighbor_types, n_radial),
            np.tile(np.arange(n_radial), n_species),
        ],
        axis=1,
    ).astype(np.int64)
    return Features(
        values=values.reshape(len(expansion), -1).copy(),
        samples=expansion.samples.copy(),
        properties=properties,
        property_names=("neighbor_type", "n"),
        metadata={"kind": "lode_nu1", "hypers": expansion.hypers},
    )


def species_pairs(types_a, types_b, distinct_pairs: bool) -> list[tuple[int, int]]:
    """Channel pairs (i, j) of a power spectrum, in its column order; with ``distinct_pairs``
    (one expansion with itself) only i <= j: for sorted species types_a[i] <= types_b[j], and
    for the (exponent, species) channels of a multi-exponent LODE expansion, whose types
    repeat, each unordered pair of channels once."""
    return [
        (i, j)
        for i in range(len(types_a))
        for j in range(len(types_b))
        if not distinct_pairs or i <= j
    ]


def power_spectrum(a: Expansion, b: Expansion | None = None, *, distinct_pairs=None) -> Features:
    """P_{a n a' n' l} = (-1)^l / sqrt(2l+1) sum_m A^a_{nlm} B^{a'}_{n'lm} (featomic's convention).

    Parameters
    ----------
    a : Expansion
    b : Expansion, optional
        Second expansion of the same centres (e.g. rho x V, the multi-scale feature). Default:
        ``a`` itself (SOAP for a density expansion, LODE nu = 2 for a LODE expansion).
    distinct_pairs : bool, optional
        Keep only species pairs a <= a' and scale a < a' by sqrt(2), so that the Euclidean
        norm of the features is that of all ordered pairs (featomic's ``SoapPowerSpectrum``).
        Only meaningful when ``b`` is None (the default there); with ``b`` all ordered pairs
        are kept (featomic's ``clebsch_gordan.PowerSpectrum``).

    Returns
    -------
    Features
        values (n_centres, n_features), properties (l, neighbor_1_type, n_1,
        neighbor_2_type, n_2), l slowest, n_2 fastest.
    """
    symmetric = b is None
    b = a if b is None else b
    if distinct_pairs is None:
        distinct_pairs = symmetric
    if distinct_pairs and not symmetric:
        raise InputError("`distinct_pairs=True` needs a single expansion (`b` is None)")
    _check_same_centres(a, b)
    if a.max_angular != b.max_angular:
        raise InputError(
            f"`a` has max_angular {a.max_angular} but `b` has {b.max_angular}: the power "
            "spectrum pairs equal l"
        )
    types_a, types_b = a.neighbor_types, b.neighbor_types
    pairs = species_pairs(types_a, types_b, distinct_pairs)
    n_a, n_b = a.n_radial, b.n_radial
    blocks, props = [], []
    for l, (va, vb) in enumerate(zip(a.values, b.values, strict=True)):
        factor = (-1) ** l / np.sqrt(2 * l + 1)
        # (centres, species_a, m, n) x (centres, species_b, m, n') -> (c, sa, n, sb, n')
        product = np.einsum("iamn,ibmk->ianbk", va, vb) * factor
        for i, j in pairs:
            block = product[:, i, :, j, :]
            if distinct_pairs and i != j:
                block = block * np.sqrt(2.0)
            blocks.append(block.reshape(len(a), -1))
            n1, n2 = np.meshgrid(np.arange(n_a), np.arange(n_b), indexing="ij")
            props.append(
                np.stack(
                    [
                        np.full(n1.size, l),
                        np.full(n1.size, types_a[i]),
                        n1.ravel(),
                        np.full(n1.size, types_b[j]),
                        n2.ravel(),
                    ],
                    axis=1,
                )
            )
    return Features(
        values=np.concatenate(blocks, axis=1),
        samples=a.samples.copy(),
        properties=np.concatenate(props).astype(np.int64),
        property_names=("l", "neighbor_1_type", "n_1", "neighbor_2_type", "n_2"),
        metadata={
            "kind": "power_spectrum",
            "distinct_pairs": bool(distinct_pairs),
            "hypers_1": a.hypers,
            "hypers_2": b.hypers,
        },
    )


def power_spectrum_size(a: Expansion, b: Expansion | None = None, *, distinct_pairs=None) -> dict:
    """Shape and memory of :func:`power_spectrum` (a, b), without computing it.

    Returns
    -------
    dict
        ``n_samples``, ``n_features`` and ``bytes`` (float64 values).
    """
    symmetric = b is None
    b = a if b is None else b
    if distinct_pairs is None:
        distinct_pairs = symmetric
    n_pairs = sum(
        1
        for i in range(len(a.neighbor_types))
        for j in range(len(b.neighbor_types))
        if not distinct_pairs or i <= j
    )
    n_features = (a.max_angular + 1) * n_pairs * a.n_radial * b.n_radial
    return {"n_samples": len(a), "n_features": n_features, "bytes": 8 * len(a) * n_features}
