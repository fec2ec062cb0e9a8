"""Which neighbour channel each atom's density feeds, and with which weight.

By default an atom feeds the channel of its species with weight 1. A structure's per-atom
weights (:attr:`lodekit.System.weights`) scale every atom's density; with
``species_channels=False`` every atom feeds one channel, labelled :data:`ALL_ATOMS`
(docs/conventions.md). The coefficients are linear in the weights, so d c / d w_j is the
contribution of atom j with unit weight: :meth:`Channels.atoms` gives the channels that
compute exactly those contributions, one channel per atom of a chosen set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ALL_ATOMS", "Channels"]

#: Neighbour-type label of the single channel of ``species_channels=False``: no element has
#: atomic number 0, so it cannot be mistaken for a species channel.
ALL_ATOMS = 0


@dataclass(frozen=True, eq=False)
class Channels:
    """The channel and weight of every atom of one structure.

    Attributes
    ----------
    index : ndarray of int, shape (n_atoms,)
        Channel (0..count-1) of every atom.
    count : int
        Number of channels.
    weights : ndarray, shape (n_atoms,), or None
        Weight of every atom's density; None when all are 1 (the unweighted code path).
    planned : int
        The number of channels the calculator's plan is costed for: the plan (k-space cutoff,
        split, backend) of a structure stays the same when its coefficients are split into
        per-atom channels for derivatives with respect to the weights.
    derivative : bool
        Channels of :meth:`atoms`, for d c / d w: an approximate k-space backend (the NUFFT)
        is replaced by the exact direct sum, as for the dense position Jacobian (its cost
        grows with the channels, and d c / d w is a dense Jacobian too).
    """

    index: np.ndarray
    count: int
    weights: np.ndarray | None
    planned: int
    derivative: bool = False

    @classmethod
    def of(cls, system, neighbor_types: np.ndarray, species_channels: bool = True) -> Channels:
        """The channels of ``system`` for the calculator's ``neighbor_types``."""
        if species_channels:
            index = np.searchsorted(neighbor_types, system.numbers)
        else:
            index = np.zeros(len(system), dtype=np.int64)
        return cls(index, len(neighbor_types), system.weights, len(neighbor_types))

    def weight_of(self, atoms: np.ndarray) -> np.ndarray | None:
        """Weights of ``atoms`` (None when all weights are 1)."""
        return None if self.weights is None else self.weights[atoms]

    def atoms(self, chosen: np.ndarray) -> Channels:
        """One unit-weight channel per atom of ``chosen`` (in its order); every other atom
        has weight 0. The coefficients in these channels are d c / d w_j of the atoms."""
        n_atoms = len(self.index)
        index = np.zeros(n_atoms, dtype=np.int64)
        index[chosen] = np.arange(len(chosen))
        weights = np.zeros(n_atoms)
        weights[chosen] = 1.0
        return Channels(index, len(chosen), weights, self.planned, derivative=True)
