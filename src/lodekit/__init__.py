"""lodekit: long-distance equivariant (LODE) features for atomistic machine learning."""

from ._version import __version__
from .batch import FeatureStore, featurize, load_features
from .errors import InputError, LodekitError
from .expansion import Expansion, LodeSphericalExpansion, SphericalExpansion
from .features import Recipe
from .interatomic import LodePotential
from .persistence import load_model, save_model
from .systems import System

__all__ = [
    "Expansion",
    "FeatureStore",
    "InputError",
    "LodePotential",
    "LodeSphericalExpansion",
    "LodekitError",
    "Recipe",
    "SphericalExpansion",
    "System",
    "__version__",
    "featurize",
    "load_features",
    "load_model",
    "save_model",
]
