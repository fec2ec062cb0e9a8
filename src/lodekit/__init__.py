"""lodekit: long-distance equivariant (LODE) features for atomistic machine learning."""

from .errors import InputError, LodekitError
from .expansion import Expansion, LodeSphericalExpansion, SphericalExpansion
from .parallel import featurize
from .potential import LodePotential
from .store import FeatureStore, load_features
from .systems import System

__version__ = "0.1.0.dev0"

__all__ = [
    "Expansion",
    "FeatureStore",
    "InputError",
    "LodePotential",
    "LodeSphericalExpansion",
    "LodekitError",
    "SphericalExpansion",
    "System",
    "__version__",
    "featurize",
    "load_features",
]
