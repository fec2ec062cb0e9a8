"""Data: generators (point charges with Ewald energies, a rigid-ion NaCl model), the exact
slab (2-D) Ewald sum and loaders of the paper's data."""

from .ewald import COULOMB_CONSTANT, ewald, ewald_energy
from .loaders import default_data_dir, load_dielectric_water, load_ssi_dimers
from .point_charges import random_point_charges
from .rigid_ion import born_mayer_energy, rigid_ion, rigid_ion_energy, rigid_ion_nacl
from .slab_ewald import slab_ewald

__all__ = [
    "COULOMB_CONSTANT",
    "born_mayer_energy",
    "default_data_dir",
    "ewald",
    "ewald_energy",
    "load_dielectric_water",
    "load_ssi_dimers",
    "random_point_charges",
    "rigid_ion",
    "rigid_ion_energy",
    "rigid_ion_nacl",
    "slab_ewald",
]
