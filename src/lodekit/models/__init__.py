"""Models on features: arrays in, arrays out (a model never sees a structure)."""

from .equivariant_kernel import EquivariantKernelRidge
from .jacobians import SparseJacobian
from .kernel_ridge import AdditiveKernelRidge
from .kernels import polynomial_kernel
from .linear import StructureRidge
from .tensors import (
    EquivariantRidge,
    SymmetricTensorRegression,
    cartesian_to_spherical,
    spherical_to_cartesian,
)

__all__ = [
    "AdditiveKernelRidge",
    "EquivariantKernelRidge",
    "EquivariantRidge",
    "SparseJacobian",
    "StructureRidge",
    "SymmetricTensorRegression",
    "cartesian_to_spherical",
    "polynomial_kernel",
    "spherical_to_cartesian",
]
