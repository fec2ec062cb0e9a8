"""An ASE calculator around :class:`~lodekit.interatomic.LodePotential` (energy, forces, stress)."""

from __future__ import annotations

from typing import ClassVar

from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from .potential import LodePotential

__all__ = ["LodekitCalculator"]


class LodekitCalculator(Calculator):
    """ASE calculator of a trained lodekit potential.

    Parameters
    ----------
    potential : LodePotential

    Energies in eV, forces in eV/Å, stress in eV/Å^3 (Voigt order xx, yy, zz, yz, xz, xy), as
    ASE expects; molecular dynamics, relaxations and ``atoms.get_stress()`` work unchanged.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, potential: LodePotential, **kwargs):
        super().__init__(**kwargs)
        self.potential = potential

    @classmethod
    def from_file(cls, path, **kwargs) -> LodekitCalculator:
        """The calculator of the potential in ``path`` (written by ``lodekit train`` or
        :meth:`LodePotential.save`)."""
        return cls(LodePotential.from_file(path), **kwargs)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        want_stress = "stress" in properties
        result = self.potential.compute(self.atoms, forces=True, stress=want_stress)
        self.results = {
            "energy": result["energy"],
            "free_energy": result["energy"],
            "forces": result["forces"],
        }
        if want_stress:
            if "stress" not in result:
                # ASE's way of saying so (get_stress() raises it), not a KeyError
                raise PropertyNotImplementedError(
                    "an isolated molecule (pbc all False) has no stress"
                )
            self.results["stress"] = full_3x3_to_voigt_6_stress(result["stress"])
