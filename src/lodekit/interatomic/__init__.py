"""Interatomic potentials: a trained model on expansion features -> energy, forces, stress."""

from .ase_calculator import LodekitCalculator
from .files import load_potential, save_potential
from .potential import LodePotential

__all__ = ["LodePotential", "LodekitCalculator", "load_potential", "save_potential"]
