"""Every code path of the expansion calculators, each with hyperparameters that take it.

The gradient tests (finite differences of positions and strain, Jacobian against
vector-Jacobian product) are parametrised over :func:`code_paths`. The list is generated
from the options the calculators accept (exponents, cutoff functions, evaluation methods),
so a new option appears here, and in the tests, without anyone remembering to add it; a
test also checks that every calculator class is listed in :data:`CALCULATORS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..density import SUPPORTED_EXPONENTS
from ..systems import BOUNDARIES
from .kspace import KSPACE_BACKENDS
from .lode import LodeSphericalExpansion
from .plan import PERIODIC_METHODS
from .soap import CUTOFF_FUNCTIONS, SphericalExpansion

__all__ = ["BOUNDARIES", "CALCULATORS", "CodePath", "code_paths"]

#: The public calculators, by name.
CALCULATORS = {
    SphericalExpansion.name: SphericalExpansion,
    LodeSphericalExpansion.name: LodeSphericalExpansion,
}

#: Values of ``spline_accuracy`` of the density expansion: exact and tabulated radial integrals.
SPLINE_MODES = (None, 1e-10)


@dataclass(frozen=True)
class CodePath:
    """One way a calculator evaluates a structure.

    Attributes
    ----------
    name : str
        Readable identifier, used as a test id.
    calculator : str
        Key of :data:`CALCULATORS`.
    hypers : dict
        Keyword arguments of the calculator.
    boundary : {"periodic", "slab", "molecule"}
    method : str
        For LODE, the evaluation method the structure must get ("kspace", "range_separated",
        "molecule"); "pairs" for the density expansion.
    kspace : str
        For periodic LODE, the backend that must evaluate the k-space part (a key of
        :data:`~lodekit.expansion.kspace.KSPACE_BACKENDS`; for slabs, of its largest tier).
    """

    name: str
    calculator: str
    hypers: dict = field(hash=False)
    boundary: str
    method: str
    kspace: str = "direct"

    def build(self):
        return CALCULATORS[self.calculator](**self.hypers)


def code_paths() -> list[CodePath]:
    """All code paths, small enough hyperparameters for finite-difference tests."""
    paths = []
    for cutoff_function in CUTOFF_FUNCTIONS:
        for spline in SPLINE_MODES:
            # a slab differs from bulk by its neighbour list only: one radial setting for it
            first = (cutoff_function, spline) == (CUTOFF_FUNCTIONS[0], SPLINE_MODES[0])
            for boundary in BOUNDARIES if first else ("periodic", "molecule"):
                hypers = dict(
                    cutoff=3.5,
                    smearing=0.4,
                    max_radial=3,
                    max_angular=3,
                    cutoff_function=cutoff_function,
                    cutoff_width=0.8,
                    spline_accuracy=spline,
                    center_atom_weight=0.7,
                )
                name = f"soap-{cutoff_function}-spline{spline}-{boundary}"
                paths.append(CodePath(name, SphericalExpansion.name, hypers, boundary, "pairs"))
    # the radial basis only changes the radial integrals, not which pairs are found: bulk and
    # molecule suffice
    for boundary in ("periodic", "molecule"):
        hypers = dict(
            cutoff=3.5,
            smearing=0.4,
            max_radial=3,
            max_angular=3,
            cutoff_width=0.8,
            center_atom_weight=0.7,
            radial_basis="monomials",
        )
        name = f"soap-monomials-{boundary}"
        paths.append(CodePath(name, SphericalExpansion.name, hypers, boundary, "pairs"))
    for exponent in SUPPORTED_EXPONENTS:
        for method in (*PERIODIC_METHODS, "molecule"):
            boundary = "molecule" if method == "molecule" else "periodic"
            paths.append(
                CodePath(
                    f"lode-p{exponent}-{method}",
                    LodeSphericalExpansion.name,
                    _lode_hypers(exponent, method),
                    boundary,
                    method,
                )
            )
        for method in PERIODIC_METHODS:
            paths.append(
                CodePath(
                    f"lode-p{exponent}-{method}-slab",
                    LodeSphericalExpansion.name,
                    _lode_hypers(exponent, method, slab=True),
                    "slab",
                    method,
                )
            )
    # every other k-space backend, forced (small cells would get the direct sum)
    for backend in KSPACE_BACKENDS:
        if backend == "direct":
            continue
        for exponent in (1, 4):
            for method in PERIODIC_METHODS:
                paths.append(
                    CodePath(
                        f"lode-p{exponent}-{method}-{backend}",
                        LodeSphericalExpansion.name,
                        dict(_lode_hypers(exponent, method), kspace_method=backend),
                        "periodic",
                        method,
                        kspace=backend,
                    )
                )
        # with a forced backend, the planner splits the field of the test slab
        paths.append(
            CodePath(
                f"lode-p1-range_separated-{backend}-slab",
                LodeSphericalExpansion.name,
                dict(_lode_hypers(1, "kspace", slab=True), kspace_method=backend),
                "slab",
                "range_separated",
                kspace=backend,
            )
        )
    # the monomial radial basis: its own integrals on the k-space, range-separated and
    # molecule paths
    for exponent in (1, 4):
        for method in (*PERIODIC_METHODS, "molecule"):
            boundary = "molecule" if method == "molecule" else "periodic"
            paths.append(
                CodePath(
                    f"lode-p{exponent}-{method}-monomials",
                    LodeSphericalExpansion.name,
                    dict(_lode_hypers(exponent, method), radial_basis="monomials"),
                    boundary,
                    method,
                )
            )
    return paths


def _lode_hypers(exponent: int, method: str, slab: bool = False) -> dict:
    """LODE hyperparameters that make the test structures take ``method`` (slabs are always
    computed to an ``accuracy``)."""
    base = dict(exponent=exponent, max_radial=2, max_angular=3, radius=3.0)
    # slabs: finite differences see the stretched cells' discretisation at the level of the
    # accuracy under out-of-plane strain (docs/conventions.md), hence tight accuracies
    if method == "kspace" and slab:
        return dict(base, smearing=0.9, accuracy=1e-9, center_atom_weight=0.5)
    if method == "range_separated" and slab:
        return dict(base, smearing=0.3, accuracy=1e-8)
    if method == "kspace":
        return dict(base, smearing=0.9, k_cutoff=4.0, center_atom_weight=0.5)
    if method == "range_separated":
        # a sharp smearing and a tight accuracy make the split worthwhile
        return dict(base, smearing=0.3, accuracy=1e-6)
    return dict(base, smearing=0.6)
