"""Atom-centred features: dense values plus sample and property metadata."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError

__all__ = ["Features"]


@dataclass(frozen=True, eq=False)
class Features:
    """Features of a set of atomic environments (or of structures, after a reduction).

    Attributes
    ----------
    values : ndarray
        Shape (n_samples, n_features) for invariants (``o3_lambda == 0``) and
        (n_samples, 2 lambda + 1, n_features) for lambda-equivariants (m = -lambda..lambda).
    samples : ndarray of int64, shape (n_samples, k)
        One row per sample, columns named by ``sample_names``: (system, atom, center_type)
        for atom-centred features, (system,) for structure sums and means.
    properties : ndarray of int64, shape (n_features, j)
        One row per feature, columns named by ``property_names``.
    o3_lambda, o3_sigma : int
        Angular order and parity of the features (invariants: 0 and 1).
    """

    values: np.ndarray
    samples: np.ndarray
    properties: np.ndarray
    sample_names: tuple = ("system", "atom", "center_type")
    property_names: tuple = ()
    o3_lambda: int = 0
    o3_sigma: int = 1
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def n_features(self) -> int:
        return self.values.shape[-1]

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)

    def __repr__(self) -> str:
        return (
            f"Features({len(self)} samples x {self.n_features} features, "
            f"lambda={self.o3_lambda}, sigma={self.o3_sigma}, "
            f"properties={list(self.property_names)}, {self.nbytes / 2**20:.1f} MiB)"
        )

    def _structure_index(self) -> np.ndarray:
        if self.sample_names[:1] != ("system",):
            raise InputError("features have no `system` sample column to reduce over")
        return self.samples[:, 0]

    def structure_sum(self) -> Features:
        """Sum over the atoms of each structure; samples become (system,).

        Structures are numbered 0..max(system); a structure without samples gets zeros.
        """
        return self._reduce(mean=False)

    def structure_mean(self) -> Features:
        """Mean over the atoms of each structure (structures without samples give zeros)."""
        return self._reduce(mean=True)

    def _reduce(self, mean: bool) -> Features:
        system = self._structure_index()
        n = int(system.max()) + 1 if len(system) else 0
        out = np.zeros((n, *self.values.shape[1:]))
        np.add.at(out, system, self.values)
        if mean:
            counts = np.bincount(system, minlength=n).astype(float)
            out /= np.maximum(counts, 1).reshape(-1, *([1] * (out.ndim - 1)))
        return replace(
            self,
            values=out,
            samples=np.arange(n, dtype=np.int64).reshape(-1, 1),
            sample_names=("system",),
        )

    def by_center_type(self, center_types=None) -> Features:
        """One copy of the feature columns per centre species, zero except in the own one.

        A linear model on the result has separate weights for every centre species (as
        featomic's per-``center_type`` blocks). Properties gain a leading ``center_type``.

        Parameters
        ----------
        center_types : sequence of int, optional
            All centre species to make room for (default: those present); give the training
            set's list when transforming new data.
        """
        index = list(self.sample_names).index("center_type")
        types = np.unique(self.samples[:, index]) if center_types is None else center_types
        types = np.asarray(types, dtype=np.int64)
        which = np.searchsorted(types, self.samples[:, index])
        if np.any(types[np.minimum(which, len(types) - 1)] != self.samples[:, index]):
            raise InputError("`center_types` misses some of the centre species present")
        out = np.zeros((len(self), *self.values.shape[1:-1], len(types) * self.n_features))
        for t in range(len(types)):
            rows = which == t
            out[rows, ..., t * self.n_features : (t + 1) * self.n_features] = self.values[rows]
        properties = np.column_stack(
            [np.repeat(types, self.n_features), np.tile(self.properties, (len(types), 1))]
        )
        return replace(
            self,
            values=out,
            properties=properties,
            property_names=("center_type", *self.property_names),
        )

    def select_centers(self, center_type: int) -> Features:
        """Rows whose centre has atomic number ``center_type``."""
        index = list(self.sample_names).index("center_type")
        rows = self.samples[:, index] == center_type
        return replace(self, values=self.values[rows], samples=self.samples[rows])
