"""Radial bases behind the expansions: the :class:`RadialBasis` protocol and its registry.

Adding a basis = one module implementing :class:`RadialBasis` + one line in
:data:`RADIAL_BASES`; the calculators select it with their ``radial_basis`` hyperparameter.
"""

from __future__ import annotations

from .base import RadialBasis
from .gto import GtoBasis
from .monomials import MonomialBasis

__all__ = ["RADIAL_BASES", "GtoBasis", "MonomialBasis", "RadialBasis"]

#: The radial bases, by the name the calculators' ``radial_basis`` hyperparameter takes.
RADIAL_BASES: dict[str, type[RadialBasis]] = {
    GtoBasis.name: GtoBasis,
    MonomialBasis.name: MonomialBasis,
}
