"""The one registry of k-space backends: a new backend is a module and one line here."""

from __future__ import annotations

from .base import KspaceBackend
from .direct import DirectBackend
from .nufft import NufftBackend

__all__ = ["KSPACE_BACKENDS", "available_methods"]

#: Every way of evaluating the k-space sum, by the name ``kspace_method`` takes. The planner
#: costs each available one; the order breaks ties (the first wins).
KSPACE_BACKENDS: dict[str, KspaceBackend] = {
    "direct": DirectBackend(),
    "nufft": NufftBackend(),
}


def available_methods() -> tuple[str, ...]:
    """Names of the backends that can run in this environment, in registry order."""
    return tuple(name for name, backend in KSPACE_BACKENDS.items() if backend.available())
