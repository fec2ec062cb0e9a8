"""A recipe's features as a ``torch.nn.Module``: structures in, per-atom columns out."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..features.recipe import Recipe, as_species
from ._tensors import as_numbers
from .expansion import expansion
from .features import features

__all__ = ["FeatureLayer"]


class FeatureLayer(torch.nn.Module):
    """Per-atom features of a :class:`~lodekit.features.Recipe`, differentiable in positions
    and cell.

    Every distinct calculator of the recipe is expanded once (:func:`lodekit.torch.expansion`),
    every block's kind applied to its expansions (:func:`lodekit.torch.features`), a block
    with ``center_types`` split into one copy of its columns per centre species, and the
    blocks concatenated: the columns of :meth:`Recipe.compute(structure, species)
    <lodekit.features.Recipe.compute>`, in its order (:meth:`Recipe.properties` names them).
    No trainable parameters: put a model on top.

    Parameters
    ----------
    recipe : Recipe, dict or JSON str
    species : sequence of int
        Sorted atomic numbers of the neighbour channels (the training set's species), a
        superset of the species of every structure given to :meth:`forward`.

    Notes
    -----
    First derivatives only: the backward passes are the numpy vector-Jacobian products of
    the kinds and calculators, and differentiating them again raises ``RuntimeError``.
    """

    def __init__(self, recipe, species):
        super().__init__()
        self.recipe = Recipe.coerce(recipe)
        self.species = as_species(species)
        keys = [c.to_json() for c in self.recipe.calculators]
        self._uses = [
            tuple(keys.index(c.to_json()) for c in block.calculators)
            for block in self.recipe.blocks
        ]
        self.n_columns = sum(self.recipe.widths(self.species))

    def expansions(self, positions, cell, types, pbc=True) -> list[torch.Tensor]:
        """Coefficients of every distinct calculator (``recipe.calculators``), channels
        ``species``: a list of (n_atoms, n_species, (L+1)^2, n_radial) tensors."""
        return [
            expansion(calculator, positions, cell, types, pbc, species=self.species)
            for calculator in self.recipe.calculators
        ]

    def forward(self, positions, cell, types, pbc=True) -> torch.Tensor:
        """Feature columns of every atom.

        Parameters
        ----------
        positions : torch.Tensor, float64, shape (n_atoms, 3)
            Å.
        cell : torch.Tensor, float64, shape (3, 3), or None
            Lattice vectors as rows, Å (None for a molecule).
        types : sequence or tensor of int, length n_atoms
            Atomic numbers.
        pbc : bool or sequence of 3 bool

        Returns
        -------
        torch.Tensor, float64, shape (n_atoms, n_columns)
        """
        numbers = np.asarray(as_numbers(types))
        coefficients = self.expansions(positions, cell, numbers, pbc)
        blocks = []
        for block, uses in zip(self.recipe.blocks, self._uses, strict=True):
            inputs = [coefficients[i] for i in uses]
            columns = features(block.kind.name, *inputs, species=self.species, **block.options)
            if block.center_types is not None:
                columns = _by_center_type(columns, numbers, block.center_types)
            blocks.append(columns)
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)

    def extra_repr(self) -> str:
        return f"{len(self.recipe.blocks)} block(s), species={self.species.tolist()}"


def _by_center_type(columns: torch.Tensor, numbers: np.ndarray, center_types) -> torch.Tensor:
    """:meth:`lodekit.features.Features.by_center_type` on a tensor: one copy of the columns
    per centre species, zero except in the centre's own."""
    types = np.asarray(center_types, dtype=np.int64)
    outside = np.setdiff1d(numbers, types)
    if len(outside):
        raise InputError(
            f"`types` contain centre species {outside.tolist()} outside the center_types "
            f"{types.tolist()} of a recipe block"
        )
    which = torch.from_numpy(np.searchsorted(types, numbers)).to(columns.device)
    mask = torch.nn.functional.one_hot(which, len(types)).to(columns.dtype)
    return (mask[:, :, None] * columns[:, None, :]).reshape(len(columns), -1)
