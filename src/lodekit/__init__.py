"""lodekit: long-distance equivariant (LODE) features for atomistic machine learning."""

from .errors import InputError, LodekitError
from .expansion import Expansion, LodeSphericalExpansion, SphericalExpansion
from .potential import LodePotential
from .systems import System

__version__ = "0.1.0.dev0"

__all__ = [
    "Expansion",
    "InputError",
    "LodePotential",
    "LodeSphericalExpansion",
    "LodekitError",
    "SphericalExpansion",
    "System",
    "__version__",
]
