"""lambda-equivariant products of two expansions (math.md §6)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..expansion.result import Expansion
from .clebsch_gordan import real_clebsch_gordan
from .invariants import _check_same_centres
from .result import Features

__all__ = ["equivariant_product"]


def equivariant_product(
    a: Expansion, b: Expansion | None = None, *, o3_lambda: int, o3_sigma: int = 1
) -> Features:
    """T^lambda_mu = sum_{m m'} <l m; l' m' | lambda mu> A^a_{nlm} B^{a'}_{n'l'm'}.

    Every (l, l') with |l - l'| <= lambda <= l + l' and parity (-1)^(l + l' + lambda) equal to
    ``o3_sigma`` contributes; the coefficients are the real Clebsch-Gordan coefficients of
    the expansions' spherical harmonics, so T rotates with the real Wigner-D matrix of order
    lambda (and picks up (-1)^lambda o3_sigma under inversion).

    Parameters
    ----------
    a, b : Expansion
        Expansions of the same centres; ``b`` defaults to ``a``.
    o3_lambda : int
        Angular order of the result (0 <= lambda <= max_angular_a + max_angular_b).
    o3_sigma : {1, -1}
        1 for proper tensors (l + l' + lambda even), -1 for pseudo-tensors.

    Returns
    -------
    Features
        values (n_centres, 2 lambda + 1, n_features); properties (l_1, l_2, neighbor_1_type,
        n_1, neighbor_2_type, n_2).
    """
    b = a if b is None else b
    _check_same_centres(a, b)
    if o3_sigma not in (1, -1):
        raise InputError(f"`o3_sigma` is {o3_sigma!r} but must be 1 or -1")
    if not 0 <= o3_lambda <= a.max_angular + b.max_angular:
        raise InputError(
            f"`o3_lambda` is {o3_lambda} but must be between 0 and "
            f"{a.max_angular + b.max_angular} for these expansions"
        )
    pairs = [
        (l1, l2)
        for l1 in range(len(a.values))
        for l2 in range(len(b.values))
        if abs(l1 - l2) <= o3_lambda <= l1 + l2 and (-1) ** (l1 + l2 + o3_lambda) == o3_sigma
    ]
    if not pairs:
        raise InputError(f"no (l_1, l_2) pair gives o3_lambda={o3_lambda} with o3_sigma={o3_sigma}")
    # every (l1, l2) block has the same (sa, n1, sb, n2) columns
    sa, n1, sb, n2 = (
        grid.ravel()
        for grid in np.meshgrid(
            a.neighbor_types,
            np.arange(a.n_radial),
            b.neighbor_types,
            np.arange(b.n_radial),
            indexing="ij",
        )
    )
    width = sa.size
    # Filled in place: a list of blocks joined by np.concatenate holds the result twice,
    # which for a dataset (1000 water frames, lambda = 2: 2.7 GB) doubles the peak memory.
    values = np.empty((len(a), 2 * o3_lambda + 1, len(pairs) * width))
    props = []
    for index, (l1, l2) in enumerate(pairs):
        cg = real_clebsch_gordan(l1, l2, o3_lambda)
        # (i, sa, m1, n1), (i, sb, m2, n2) -> (i, mu, sa, n1, sb, n2)
        product = np.einsum("iamn,ibkp,mkq->iqanbp", a.values[l1], b.values[l2], cg, optimize=True)
        values[:, :, index * width : (index + 1) * width] = product.reshape(
            len(a), 2 * o3_lambda + 1, -1
        )
        props.append(np.stack([np.full(width, l1), np.full(width, l2), sa, n1, sb, n2], axis=1))
    return Features(
        values=values,
        samples=a.samples.copy(),
        properties=np.concatenate(props).astype(np.int64),
        property_names=("l_1", "l_2", "neighbor_1_type", "n_1", "neighbor_2_type", "n_2"),
        o3_lambda=o3_lambda,
        o3_sigma=o3_sigma,
        metadata={"kind": "equivariant_product", "hypers_1": a.hypers, "hypers_2": b.hypers},
    )
