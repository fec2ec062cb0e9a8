"""Spherical expansions: the result container and the public calculators."""

from .lode import LodeSphericalExpansion
from .result import Expansion
from .soap import SphericalExpansion

__all__ = ["Expansion", "LodeSphericalExpansion", "SphericalExpansion"]
