"""Features built from expansions: invariants, lambda-equivariants, normalisation."""

from .clebsch_gordan import real_clebsch_gordan
from .equivariants import equivariant_product
from .invariants import lode_nu1, power_spectrum, power_spectrum_size
from .normalize import normalize
from .result import Features

__all__ = [
    "Features",
    "equivariant_product",
    "lode_nu1",
    "normalize",
    "power_spectrum",
    "power_spectrum_size",
    "real_clebsch_gordan",
]
