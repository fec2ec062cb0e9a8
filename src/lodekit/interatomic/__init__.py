"""Interatomic potentials: a trained model on expansion features -> energy, forces, stress."""

from .ase_calculator import LodekitCalculator
from .potential import LodePotential

__all__ = ["LodePotential", "LodekitCalculator"]
