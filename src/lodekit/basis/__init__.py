"""Pure mathematics: radial bases, spherical harmonics, radial integrals."""

from .gto import GtoBasis
from .spherical_harmonics import real_spherical_harmonics

__all__ = ["GtoBasis", "real_spherical_harmonics"]
