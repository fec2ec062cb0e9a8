"""The periodic k-space sum of LODE: one problem object, backends behind one interface.

:class:`KspaceProblem` holds everything one structure's sum needs; every backend of
:data:`KSPACE_BACKENDS` (a :class:`KspaceBackend`) turns it into coefficients, a
vector-Jacobian product and a dense Jacobian, and estimates its own cost for the planner.
:mod:`.corrections` adds what all backends share: the k = 0 term and the range-separation
remainder.
"""

from .base import KspaceBackend
from .corrections import PeriodicCorrections, Remainder, k_zero_term
from .direct import DirectBackend
from .layout import half_space_kvectors, phase_factors
from .nufft import NufftBackend, nufft_available
from .problem import KspaceProblem, KspaceWorkload
from .registry import KSPACE_BACKENDS, available_methods

__all__ = [
    "KSPACE_BACKENDS",
    "DirectBackend",
    "KspaceBackend",
    "KspaceProblem",
    "KspaceWorkload",
    "NufftBackend",
    "PeriodicCorrections",
    "Remainder",
    "available_methods",
    "half_space_kvectors",
    "k_zero_term",
    "nufft_available",
    "phase_factors",
]
