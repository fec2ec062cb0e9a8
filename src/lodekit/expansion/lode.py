"""The public LODE calculator (math.md §4)."""

from __future__ import annotations

import numpy as np

from .. import _validation as check
from ..basis.gto import GtoBasis
from ..basis.multipoles import MultipoleTail
from ..basis.radial_integrals import kspace_radial_integral
from ..density import (
    SUPPORTED_EXPONENTS,
    fourier_transform,
    fourier_transform_at_zero,
    gto_moment,
)
from ..errors import InputError
from ..systems import System
from ._base import CalculatorBase
from .kspace import lode_kspace_sum
from .realspace import RadialField, molecule_sum
from .result import split_by_l

__all__ = ["LodeSphericalExpansion"]

#: k_cutoff * smearing must reach this: exp(-(k_c sigma)^2 / 2) <= 0.1, i.e. the truncated
#: Fourier sum keeps at least 90 % of the smeared density's spectral weight.
MIN_KCUT_SMEARING = float(np.sqrt(2.0 * np.log(10.0)))

#: Accuracy of the real-space tables relative to their largest value.
TABLE_ACCURACY = 1e-13


class LodeSphericalExpansion(CalculatorBase):
    """LODE: local expansion of the smeared power-law field of every species.

    c^{i,a}_{nlm} = ∫ d^3r R_n(r) Y_lm(r̂) V_a(r_i + r), computed in reciprocal space for
    periodic structures (Grisafi & Ceriotti, J. Chem. Phys. 151, 204105 (2019), eq. 7-9;
    exponents p != 1 as in Huguenin-Dumittan et al., J. Phys. Chem. Lett. 14, 9612 (2023)).
    Results match featomic 0.6's ``LodeSphericalExpansion`` with ``spline_accuracy=None``.

    Parameters
    ----------
    smearing : float
        Gaussian smearing sigma of each atom, Å.
    max_radial : int
        Largest radial index (``max_radial + 1`` GTO functions).
    max_angular : int
        Largest angular channel l.
    radius : float
        GTO basis radius, Å.
    exponent : int, default 1
        Power p of the 1/r^p field, 0..6 (0 is the Gaussian density itself).
    center_atom_weight : float, default 1.0
        Weight w of the centre's own field in its own channel (1 keeps it, 0 removes it).
    k_cutoff : float or None
        Reciprocal-space cutoff, 1/Å; None means 1.2 pi / smearing (featomic's default).
    """

    name = "lode_spherical_expansion"
    _hyper_names = (
        "smearing",
        "exponent",
        "max_radial",
        "max_angular",
        "radius",
        "center_atom_weight",
        "k_cutoff",
    )

    def __init__(
        self,
        *,
        smearing,
        max_radial,
        max_angular,
        radius,
        exponent=1,
        center_atom_weight=1.0,
        k_cutoff=None,
    ):
        self.smearing = check.positive_float("smearing", smearing)
        self.max_radial = check.int_in_range("max_radial", max_radial, 0, 30)
        self.max_angular = check.int_in_range("max_angular", max_angular, 0, 30)
        self.radius = check.positive_float("radius", radius)
        self.exponent = check.int_in_range("exponent", exponent, 0, max(SUPPORTED_EXPONENTS))
        self.center_atom_weight = check.finite_float("center_atom_weight", center_atom_weight)
        if k_cutoff is not None:
            k_cutoff = check.positive_float("k_cutoff", k_cutoff)
            if k_cutoff * self.smearing < MIN_KCUT_SMEARING:
                raise InputError(
                    f"`k_cutoff` is {k_cutoff} but with `smearing` {self.smearing} the product "
                    f"k_cutoff * smearing = {k_cutoff * self.smearing:.3g} must be at least "
                    f"{MIN_KCUT_SMEARING:.3f}: the smearing is too small for this k-cutoff and "
                    "the truncated Fourier sum would be wrong by more than 10 %"
                )
        self.k_cutoff = k_cutoff
        self._basis = GtoBasis(self.max_radial, self.radius)
        self._molecule_field = None

    @property
    def effective_k_cutoff(self) -> float:
        """The k-space cutoff actually used (1/Å)."""
        return self.k_cutoff if self.k_cutoff is not None else 1.2 * np.pi / self.smearing

    @property
    def molecule_field(self) -> RadialField:
        """The tabulated projection used for isolated molecules (built on first use)."""
        if self._molecule_field is None:
            basis, sigma, p = self._basis, self.smearing, self.exponent
            # Past d_switch the basis functions have decayed by exp(-32) where the smeared
            # field still differs from 1/r^p (within 8 sigma of the atom), so the multipole
            # series there is exact to double precision.
            d_switch = 8.0 * (basis.widths.max() + sigma)
            tail = None
            if p >= 1:
                n_terms = int(np.clip((d_switch / basis.widths.max()) ** 2, 10, 150))
                tail = MultipoleTail(basis, self.max_angular, p, n_terms)
            self._molecule_field = RadialField(
                basis,
                self.max_angular,
                lambda k: fourier_transform(k, sigma, p),
                sharpest_width=sigma,
                d_switch=d_switch,
                tail=tail,
                accuracy=TABLE_ACCURACY,
            )
        return self._molecule_field

    def _prepare(self) -> None:
        self._centre_field()

    def _centre_field(self) -> np.ndarray:
        """C_n = sqrt(4 pi) ∫ r^2 R_n g_p dr, the isolated atom's own field (n,)."""
        basis = self._basis
        n = np.arange(basis.size)
        moments = np.exp(basis.log_norms) * gto_moment(
            n, basis.widths, self.smearing, self.exponent
        )
        return np.sqrt(4 * np.pi) * (basis.orthonormalization @ moments)

    def _k_zero_term(self, volume: float, counts: np.ndarray) -> np.ndarray:
        """k = 0 term per species (n_species, n) of math.md §4.1 (zero for 1 <= p <= 3)."""
        g0 = fourier_transform_at_zero(self.smearing, self.exponent)
        if not np.isfinite(g0):
            return np.zeros((len(counts), self._basis.size))
        i0 = kspace_radial_integral(np.zeros(1), self._basis, 0)[0, 0]
        k_zero = (4 * np.pi / volume) * g0 * i0 / np.sqrt(4 * np.pi)
        return counts[:, None] * k_zero[None, :]

    def _compute_system(self, system: System, centres: np.ndarray, neighbor_types: np.ndarray):
        species_index = np.searchsorted(neighbor_types, system.numbers)
        n_species = len(neighbor_types)
        own = species_index[centres]
        if not system.periodic:
            coeffs = molecule_sum(
                system.positions,
                species_index,
                n_species,
                centres,
                self.molecule_field,
                self.max_angular,
                self._basis.size,
            )
            weight = self.center_atom_weight * self._centre_field()
            coeffs[np.arange(len(centres)), own, 0, :] += weight
            return split_by_l(coeffs, self.max_angular), None

        coeffs = lode_kspace_sum(
            system.positions,
            species_index,
            n_species,
            centres,
            system.cell,
            self._basis,
            self.max_angular,
            self.smearing,
            self.exponent,
            self.effective_k_cutoff,
        )
        counts = np.bincount(species_index, minlength=n_species).astype(np.float64)
        coeffs[:, :, 0, :] += self._k_zero_term(system.volume, counts)[None, :, :]
        centre = self._centre_field()
        coeffs[np.arange(len(centres)), own, 0, :] -= (1.0 - self.center_atom_weight) * centre
        return split_by_l(coeffs, self.max_angular), None
