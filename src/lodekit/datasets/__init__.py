"""Data: generators (point charges with Ewald energies) and loaders of the paper's data."""

from .ewald import COULOMB_CONSTANT, ewald_energy
from .point_charges import random_point_charges

__all__ = ["COULOMB_CONSTANT", "ewald_energy", "random_point_charges"]
