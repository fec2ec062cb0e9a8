"""Data: generators (point charges with Ewald energies) and loaders of the paper's data."""

from .ewald import COULOMB_CONSTANT, ewald_energy
from .loaders import default_data_dir, load_dielectric_water, load_ssi_dimers
from .point_charges import random_point_charges

__all__ = [
    "COULOMB_CONSTANT",
    "default_data_dir",
    "ewald_energy",
    "load_dielectric_water",
    "load_ssi_dimers",
    "random_point_charges",
]
