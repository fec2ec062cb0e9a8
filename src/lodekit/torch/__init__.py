"""lodekit as differentiable PyTorch operations (optional: ``pip install 'lodekit[torch]'``).

The expansions and the invariants are ``torch.autograd.Function``\\ s whose forward pass is
the numpy code of :mod:`lodekit.expansion` and :mod:`lodekit.features` and whose backward
pass is their existing vector-Jacobian products: no derivative is written twice, and a
torch model on lodekit features gets its forces and stress from autograd.

- :func:`expansion`: positions (n_atoms, 3), cell (3, 3) and optional per-atom weights
  (n_atoms,) -> coefficients (n_atoms, n_species, (max_angular + 1)^2, n_radial); gradients
  to positions, cell and weights.
- :func:`nu1`, :func:`power_spectrum`, :func:`rho_x_v` (and :func:`features` for any kind
  of :data:`lodekit.features.kinds.FEATURE_KINDS`): coefficients -> feature columns.
- :class:`ExpansionLayer`, :class:`FeatureLayer`: ``torch.nn.Module``\\ s of the above; the
  second gives a recipe's columns, the same numbers as :meth:`lodekit.features.Recipe.compute`.
- :mod:`lodekit.torch.charges` (imported on its own): a learned-charge long-range model,
  charges from SOAP weighting a p = 1 LODE expansion, trained on energies and forces, with an
  ASE calculator.

- :mod:`lodekit.torch.kspace`: the direct k-space sum of bulk LODE structures in torch
  operations, used by :func:`expansion` for tensors on a GPU (``kspace="auto"``) or on
  request (``kspace="torch"``); the cell-only tables stay numpy's.

Limits: float64 only; first derivatives only (a second backward pass, e.g.
``create_graph=True`` to train on forces through the forces themselves, raises a
``RuntimeError``), except on the torch k-space path at a fixed cell; tensors on a GPU are
copied to the CPU for the numpy code and the results copied back, except for the bulk LODE
structures of the torch k-space path (range separation, the NUFFT, slabs, molecules, several
exponents and SOAP stay on the CPU); one structure per call, every atom a centre.

Threads: the work is numpy's (its BLAS threads, and the calculators' own). On a machine with
few cores, torch's OpenMP threads, which spin for a while after each torch operation, compete
with them and can slow the small torch operations of a model on top to tens of milliseconds;
``torch.set_num_threads(1)`` avoids that (benchmarks/bench_torch_layer.py).
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "lodekit.torch needs PyTorch, which is not installed: pip install 'lodekit[torch]'"
    ) from _err

from .expansion import ExpansionLayer, expansion, split_by_l
from .features import features, nu1, power_spectrum, rho_x_v
from .layer import FeatureLayer

__all__ = [
    "ExpansionLayer",
    "FeatureLayer",
    "expansion",
    "features",
    "nu1",
    "power_spectrum",
    "rho_x_v",
    "split_by_l",
]
