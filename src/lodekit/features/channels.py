"""Where an expansion's neighbour channels go among the channels of a species list."""

from __future__ import annotations

import numpy as np

from ..expansion.channels import ALL_ATOMS

__all__ = ["channel_places"]


def channel_places(species, types, exponents=None) -> tuple[np.ndarray | None, int]:
    """(index of every channel (``types``, ``exponents``) among the channels of ``species``,
    their number): one per species, or for several LODE exponents one per (exponent,
    species), exponent-major (docs/conventions.md). The index is None when the channels are
    already those of ``species``, or are the single all-atoms channel of
    ``species_channels=False`` (label :data:`~lodekit.expansion.channels.ALL_ATOMS`)."""
    species = np.asarray(species)
    types = np.asarray(types)
    if len(types) and np.all(types == ALL_ATOMS):
        # one all-atoms channel (per exponent): not a species channel, nothing to place
        return None, len(types)
    if exponents is None:
        if np.array_equal(types, species):
            return None, len(species)
        return np.searchsorted(species, types), len(species)
    order = list(dict.fromkeys(np.asarray(exponents).tolist()))
    which = np.array([order.index(p) for p in np.asarray(exponents).tolist()], dtype=np.int64)
    return which * len(species) + np.searchsorted(species, types), len(order) * len(species)
