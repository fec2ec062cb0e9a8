"""Pure mathematics: radial bases, spherical harmonics, radial integrals."""

from .radial import RADIAL_BASES, GtoBasis, MonomialBasis, RadialBasis
from .spherical_harmonics import real_spherical_harmonics

__all__ = [
    "RADIAL_BASES",
    "GtoBasis",
    "MonomialBasis",
    "RadialBasis",
    "real_spherical_harmonics",
]
