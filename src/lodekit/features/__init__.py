"""Features built from expansions: invariants, lambda-equivariants, normalisation, the
registry of feature kinds and recipes."""

from .clebsch_gordan import real_clebsch_gordan
from .equivariants import equivariant_product
from .invariants import lode_nu1, power_spectrum, power_spectrum_size
from .kinds import FEATURE_KINDS, FeatureKind
from .normalize import normalize
from .recipe import DEFAULT_RECIPE, Recipe
from .result import Features

__all__ = [
    "DEFAULT_RECIPE",
    "FEATURE_KINDS",
    "FeatureKind",
    "Features",
    "Recipe",
    "equivariant_product",
    "lode_nu1",
    "normalize",
    "power_spectrum",
    "power_spectrum_size",
    "real_clebsch_gordan",
]
