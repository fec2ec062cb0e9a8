"""Monomial radial basis of LODE (Huguenin-Dumittan et al., J. Phys. Chem. Lett. 14, 9612 (2023)).

Primitive functions r^(l + 2n), n = 0..max_radial, on [0, radius] and zero beyond: the radial
dependence of the Taylor expansion of a smooth field around the centre. For each l they are
normalised on [0, radius] with weight r^2 and then Löwdin orthonormalised, as featomic 0.6's
``Monomials`` basis (whose Gram matrix featomic integrates numerically; here it is exact).

With x = r / radius and a_m = 2l + 4m + 3, the normalised primitives are
radius^(-3/2) sqrt(a_m) x^(l+2m), their overlap is S_nm = 2 sqrt(a_n a_m) / (a_n + a_m), and

    R_nl(r) = radius^(-3/2) sum_m C^l_nm x^(l + 2m),    C^l = S^(-1/2) diag(sqrt(a)).

Integrals with the field or a Gaussian have no convenient closed form on [0, radius]; they are
evaluated by composite Gauss-Legendre quadrature, exact for the polynomial part and with panels
that resolve the oscillations or the Gaussian (~1e-15 relative).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.special import ive, roots_legendre, spherical_jn

from ...density import real_space
from ...errors import InputError
from .base import RadialBasis

__all__ = ["MonomialBasis"]

#: Size of the multipole terms that may be neglected, relative to the first.
_SERIES_TOLERANCE = 1e-17

#: Smallest eigenvalue of the overlap of the normalised monomials accepted (featomic's rule):
#: below it round-off dominates the orthonormalised functions.
MIN_OVERLAP_EIGENVALUE = 1e-12

#: Most quadrature panels on [0, radius] (a few per smearing): about a second of work.
MAX_PANELS = 1e5


def _overlap(max_radial: int, l: int) -> np.ndarray:
    a = 2.0 * l + 4.0 * np.arange(max_radial + 1) + 3.0
    return 2.0 * np.sqrt(np.outer(a, a)) / np.add.outer(a, a), a


@cache
def _coefficients(max_radial: int, l: int) -> np.ndarray:
    """C^l, shape (max_radial + 1, max_radial + 1): R_nl = radius^(-3/2) sum_m C_nm x^(l+2m)."""
    overlap, a = _overlap(max_radial, l)
    eigval, eigvec = np.linalg.eigh(overlap)
    return ((eigvec / np.sqrt(eigval)) @ eigvec.T) * np.sqrt(a)[None, :]


def _panels(n_panels: int, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on [0, 1]."""
    x, w = roots_legendre(n_nodes)
    edges = np.linspace(0.0, 1.0, n_panels + 1)
    half = 0.5 * np.diff(edges)[:, None]
    nodes = half * (x[None, :] + 1.0) + edges[:-1, None]
    return nodes.ravel(), (half * w[None, :]).ravel()


def _scaled_in(l: int, z: np.ndarray) -> np.ndarray:
    """e^(-z) i_l(z) for z >= 0, finite everywhere (i_l the modified spherical Bessel)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(0.5 * np.pi / z) * ive(l + 0.5, z)
    return np.where(z == 0, float(l == 0), out)


class MonomialBasis(RadialBasis):
    """Orthonormalised monomials r^(l+2n) on [0, ``radius``], one set per angular channel.

    Parameters
    ----------
    max_radial : int
        Largest n; there are ``max_radial + 1`` functions for every l.
    radius : float
        Support of the functions, Å (they vanish beyond it).
    """

    name = "monomials"

    def check_smearing(self, smearing: float) -> None:
        # the quadratures use a few panels per smearing on [0, radius]
        panels = 4.0 * self.radius / smearing
        if panels > MAX_PANELS:
            raise InputError(
                f"`smearing` is {smearing} Å but the monomial basis of radius {self.radius} Å "
                f"would need {panels:.3g} quadrature panels (more than {MAX_PANELS:g}): "
                f"smearing must be at least {4.0 * self.radius / MAX_PANELS:.3g} Å"
            )

    def check(self, max_angular: int) -> None:
        for l in range(max_angular + 1):
            smallest = np.linalg.eigvalsh(_overlap(self.max_radial, l)[0]).min()
            if smallest < MIN_OVERLAP_EIGENVALUE:
                raise InputError(
                    f"`max_radial` is {self.max_radial} but the monomial basis cannot be "
                    f"orthonormalised for l = {l} (overlap eigenvalue {smallest:.2g} < "
                    f"{MIN_OVERLAP_EIGENVALUE:g}): use a smaller max_radial or max_angular"
                )

    def coefficients(self, max_angular: int) -> np.ndarray:
        """C^l for l = 0..max_angular, shape (max_angular + 1, size, size), dimensionless."""
        return np.stack([_coefficients(self.max_radial, l) for l in range(max_angular + 1)])

    def _powers(self, l: int, extra: int) -> np.ndarray:
        return l + 2 * np.arange(self.size) + extra

    def _nodes(self, max_angular: int, n_panels: int) -> tuple[np.ndarray, np.ndarray]:
        # enough nodes per panel to integrate x^(2 + l + 2n + 1) exactly on its own
        return _panels(n_panels, max(32, (max_angular + 2 * self.size + 4) // 2 + 8))

    # ------------------------------------------------------------------ RadialBasis
    @property
    def decay_width(self) -> float:
        return self.radius

    def functions(self, r: np.ndarray, max_angular: int) -> np.ndarray:
        r = np.asarray(r, dtype=np.float64)
        x = r / self.radius
        out = np.empty((*r.shape, max_angular + 1, self.size))
        for l, c in enumerate(self.coefficients(max_angular)):
            out[..., l, :] = (x[..., None] ** self._powers(l, 0)) @ c.T
        out[r > self.radius] = 0.0
        return out * self.radius**-1.5

    def _kspace(self, k: np.ndarray, max_angular: int, derivative: bool) -> np.ndarray:
        k = np.asarray(k, dtype=np.float64)
        q_max = float(k.max(initial=0.0)) * self.radius
        # one panel per half period of j_l(q x): 32+ nodes integrate it to round-off
        x, w = self._nodes(max_angular, max(4, int(np.ceil(q_max / np.pi))))
        qx = np.multiply.outer(k * self.radius, x)
        out = np.empty((len(k), max_angular + 1, self.size))
        for l, c in enumerate(self.coefficients(max_angular)):
            extra = 3 if derivative else 2
            polynomial = (w[:, None] * x[:, None] ** self._powers(l, extra)) @ c.T
            out[:, l, :] = spherical_jn(l, qx, derivative=derivative) @ polynomial
        # ∫ r^2 R_nl j_l(k r) dr = radius^(3/2) ∫ x^2 ... dx; d/dk brings one more r
        return out * self.radius ** (2.5 if derivative else 1.5)

    def kspace_integral(self, k: np.ndarray, max_angular: int) -> np.ndarray:
        return self._kspace(k, max_angular, derivative=False)

    def kspace_integral_derivative(self, k: np.ndarray, max_angular: int) -> np.ndarray:
        return self._kspace(k, max_angular, derivative=True)

    def _gaussian(self, d, max_angular: int, smearing: float, derivative: bool) -> np.ndarray:
        """J_nl(d) or dJ_nl/dd by quadrature over r in [0, radius] (math.md §5):
        J = 4 pi (pi s^2)^(-3/4) ∫ r^2 R_nl(r) exp(-(r - d)^2 / (2 s^2)) e^(-z) i_l(z) dr,
        z = r d / s^2; d/dd of the integrand's kernel is exp(...) [(l/d - d/s^2) e^-z i_l(z)
        + (r/s^2) e^-z i_(l+1)(z)] (DLMF 10.51.5)."""
        d = np.asarray(d, dtype=np.float64)
        sig2 = smearing * smearing
        x, w = self._nodes(max_angular, max(4, int(np.ceil(2.0 * self.radius / smearing))))
        r = x * self.radius
        z = np.multiply.outer(d, r) / sig2
        gauss = np.exp(-((r[None, :] - d[:, None]) ** 2) / (2 * sig2))
        norm = 4 * np.pi * (np.pi * sig2) ** -0.75 * self.radius**1.5
        out = np.empty((len(d), max_angular + 1, self.size))
        for l, c in enumerate(self.coefficients(max_angular)):
            polynomial = (w[:, None] * x[:, None] ** self._powers(l, 2)) @ c.T
            kernel = _scaled_in(l, z)
            if derivative:
                # l/d e^-z i_l(z) = (r / s^2) (l / z) e^-z i_l(z), which is r/(3 s^2) at z = 0
                # for l = 1 and 0 for the others
                with np.errstate(divide="ignore", invalid="ignore"):
                    l_over = np.where(z == 0, float(l == 1) / 3.0, l * kernel / z)
                kernel = (r[None, :] / sig2) * (l_over + _scaled_in(l + 1, z)) - (
                    d[:, None] / sig2
                ) * kernel
            out[:, l, :] = (gauss * kernel) @ polynomial
        return norm * out

    def gaussian_integral(self, d: np.ndarray, max_angular: int, smearing: float) -> np.ndarray:
        return self._gaussian(d, max_angular, smearing, derivative=False)

    def gaussian_integral_derivative(
        self, d: np.ndarray, max_angular: int, smearing: float
    ) -> np.ndarray:
        return self._gaussian(d, max_angular, smearing, derivative=True)

    def moments(self, max_order: int, max_angular: int) -> np.ndarray:
        # ∫_0^radius r^(2+k) R_nl dr = radius^(3/2 + k) sum_m C_nm / (3 + k + l + 2m)
        k = np.arange(max_order + 1, dtype=np.float64)
        out = np.empty((max_order + 1, max_angular + 1, self.size))
        for l, c in enumerate(self.coefficients(max_angular)):
            out[:, l, :] = (1.0 / np.add.outer(k, self._powers(l, 3))) @ c.T
        return out * (self.radius ** (1.5 + k))[:, None, None]

    def centre_moment(self, smearing: float, exponent: int) -> np.ndarray:
        # g_p is smooth on the scale of the smearing: a few panels per smearing
        x, w = self._nodes(0, max(4, int(np.ceil(4.0 * self.radius / smearing))))
        field = real_space(x * self.radius, smearing, exponent)
        polynomial = (w * field)[:, None] * x[:, None] ** self._powers(0, 2)
        return self.radius**1.5 * (polynomial.sum(axis=0) @ _coefficients(self.max_radial, 0).T)

    def far_field(self, smearing: float) -> tuple[float, int]:
        # Past d_switch the support (r <= radius) is 8 sigma from the atom, where the smeared
        # field is 1/r^p to exp(-32); the series converges there like (radius / d)^k, and
        # d >= 1.5 radius bounds its length
        d_switch = max(self.radius + 8.0 * smearing, 1.5 * self.radius)
        n_terms = np.log(_SERIES_TOLERANCE) / np.log(self.radius / d_switch)
        return d_switch, int(np.clip(np.ceil(n_terms), 10, 150))
