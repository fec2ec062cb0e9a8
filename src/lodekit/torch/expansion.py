"""The two expansions as one ``torch.autograd.Function``: coefficients from positions, cell
and per-atom weights, gradients through the calculators' vector-Jacobian products.

Layout of the coefficients: one tensor (n_atoms, n_species, (max_angular + 1)^2, n_radial),
the per-l arrays of :class:`lodekit.expansion.Expansion` concatenated along the third axis
(index l^2 + l + m for m = -l..l), so that ``out[:, :, l*l:(l+1)**2]`` is
``Expansion.values[l]``; :func:`split_by_l` gives the per-l views. The species channels are
``species`` (default: the species present), zeros for a species without atoms.

Cell gradient. The calculators' VJP gives g = dE/dr (n_atoms, 3) and s = dE/d eps (3, 3),
the derivative under the homogeneous strain r -> (1 + eps) r, h_i -> (1 + eps) h_i of
positions and cell rows h_i. Differentiating E(r(eps), H(eps)) at eps = 0:

    s_ab = sum_j g_ja r_jb + sum_i D_ia H_ib,     D = dE/dH,

so D^T H = s - g^T r, D = H^{-T} (s - g^T r)^T. The r here are the positions as given:
the calculators wrap atoms into the cell (r' = r + N H, N integer), which shifts the s of
the wrapped positions by g^T N H and dE/dH at fixed r by N^T g; the two cancel. A slab
depends on its two periodic rows only: D^T H_p = s - g^T r is solved with the right inverse
of H_p (2 x 3), and the non-periodic row gets zero. A molecule's energy does not depend on
the cell (zero gradient).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .. import _validation as check
from ..errors import InputError, describe
from ..expansion import LodeSphericalExpansion, SphericalExpansion
from ..features.channels import channel_places
from ..systems import System
from ._tensors import as_numbers, as_numpy, checked_species, float64_tensor
from .kspace import lode_coefficients, plan_torch_kspace

__all__ = ["ExpansionLayer", "cell_gradient", "expansion", "split_by_l"]

CALCULATOR_TYPES = (SphericalExpansion, LodeSphericalExpansion)

#: Values of ``kspace`` (:func:`expansion`).
KSPACE_PATHS = ("auto", "numpy", "torch")


def cell_gradient(
    gradient: np.ndarray, strain: np.ndarray, positions: np.ndarray, cell: np.ndarray, pbc
) -> np.ndarray:
    """dE/dH (3, 3) from dE/dr and dE/d eps (see the module docstring).

    Parameters
    ----------
    gradient : ndarray, shape (n_atoms, 3)
        dE/dr, energy per Å.
    strain : ndarray, shape (3, 3)
        dE/d eps_ab for r -> (1 + eps) r of positions and cell, energy units.
    positions : ndarray, shape (n_atoms, 3)
        The positions the gradient was taken at, as given (unwrapped), Å.
    cell : ndarray, shape (3, 3)
        Lattice vectors as rows, Å.
    pbc : tuple of 3 bool
        All True (bulk) or two True (slab); a molecule has no cell gradient.

    Returns
    -------
    ndarray, shape (3, 3)
        dE/dH_ia (energy per Å), zero in the rows of non-periodic axes.
    """
    moment = strain - gradient.T @ positions
    periodic = [axis for axis in range(3) if pbc[axis]]
    out = np.zeros((3, 3))
    if not periodic:
        return out
    rows = cell[periodic]
    # D_p^T H_p = moment; H_p H_p^+ = 1 (H_p has full row rank, checked by System)
    out[periodic] = (moment @ np.linalg.pinv(rows)).T
    return out


def _channel_layout(calculator, own, exponents, species):
    """(index of each of the calculator's channels ``own`` among the output channels, or
    None when they are the output channels; the number of output channels)."""
    # several LODE exponents repeat the species once per exponent (channels per
    # (exponent, species), docs/conventions.md), each exponent widened alike; the single
    # channel of species_channels=False is labelled 0, whatever `species` says
    if species is None or not calculator.species_channels:
        present = np.unique(own)
    else:
        present = species
    missing = np.setdiff1d(own, present)
    if len(missing):
        raise InputError(
            f"`types` contain species {missing.tolist()} that are not in `species` "
            f"{present.tolist()}"
        )
    return channel_places(present, own, exponents)


def _torch_kspace(calculator, positions, cell, weights, numbers, pbc, species, forced: bool):
    """The coefficients by the torch k-space path (:mod:`lodekit.torch.kspace`), or None
    when it cannot compute this structure and was not forced (an InputError when forced)."""
    w = None if weights is None else as_numpy(weights).copy()
    system = System(as_numpy(positions).copy(), numbers, as_numpy(cell).copy(), pbc=pbc, weights=w)
    terms, refusal = plan_torch_kspace(calculator, system)
    if refusal is not None:
        if forced:
            raise InputError(f"`kspace` is 'torch' but {refusal}")
        return None
    values, own = lode_coefficients(calculator, system, positions, cell, weights, terms)
    where, n_channels = _channel_layout(calculator, own, None, species)
    if where is None:
        return values
    wide = values.new_zeros((values.shape[0], n_channels, *values.shape[2:]))
    return wide.index_copy(1, torch.from_numpy(where).to(values.device), values)


class _Expansion(torch.autograd.Function):
    """Coefficients (n_atoms, n_species, lm, n) of ``calculator``; see :func:`expansion`."""

    @staticmethod
    def forward(ctx, positions, cell, weights, calculator, numbers, pbc, species):
        r = as_numpy(positions).copy()
        h = as_numpy(cell).copy()
        w = None if weights is None else as_numpy(weights).copy()
        system = System(r, numbers, h, pbc=pbc, weights=w)
        result = calculator.compute(system)
        where, n_channels = _channel_layout(
            calculator, result.neighbor_types, result.exponents, species
        )
        flat = np.concatenate(result.values, axis=2)
        if where is None:
            where = np.arange(len(result.neighbor_types))
        else:
            wide = np.zeros((flat.shape[0], n_channels, *flat.shape[2:]))
            wide[:, where] = flat
            flat = wide
        ctx.calculator = calculator
        ctx.system = system
        ctx.positions = r
        ctx.cell = h
        ctx.where = where
        return torch.from_numpy(flat).to(positions.device)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        want_positions, want_cell, want_weights = ctx.needs_input_grad[:3]
        if not (want_positions or want_cell or want_weights):
            return (None,) * 7
        calculator, system = ctx.calculator, ctx.system
        upstream = as_numpy(grad)[:, ctx.where]
        upstream = [upstream[:, :, l * l : (l + 1) ** 2] for l in range(calculator.max_angular + 1)]
        # dE/dw costs about one more evaluation: only when asked for
        result = calculator.vector_jacobian_product(system, upstream, with_weights=want_weights)
        gradient, strain = result["positions"][0], result["strain"][0]
        device = grad.device
        grad_positions = torch.from_numpy(gradient).to(device) if want_positions else None
        grad_cell = None
        if want_cell:
            by_cell = cell_gradient(gradient, strain, ctx.positions, ctx.cell, system.pbc)
            grad_cell = torch.from_numpy(by_cell).to(device)
        grad_weights = None
        if want_weights:
            grad_weights = torch.from_numpy(np.asarray(result["weights"][0])).to(device)
        return grad_positions, grad_cell, grad_weights, None, None, None, None


def expansion(
    calculator, positions, cell, types, pbc=True, *, species=None, weights=None, kspace="auto"
):
    """Expansion coefficients of every atom as a differentiable torch tensor.

    Parameters
    ----------
    calculator : SphericalExpansion or LodeSphericalExpansion
        Any hyperparameters, k-space method included (direct, range-separated, NUFFT).
    positions : torch.Tensor, float64, shape (n_atoms, 3)
        Cartesian positions, Å.
    cell : torch.Tensor, float64, shape (3, 3), or None
        Lattice vectors as rows, Å. None (zeros) for a molecule.
    types : sequence or tensor of int, length n_atoms
        Atomic numbers (or element symbols).
    pbc : bool or sequence of 3 bool
        As :class:`lodekit.System`: bulk, slab (two axes) or molecule.
    species : sequence of int, optional
        Sorted atomic numbers of the neighbour channels, a superset of those in ``types``
        (default: the species present). Give the training species so that structures
        lacking one still have the same layout. Ignored by a calculator with
        ``species_channels=False``: its output has one channel (all atoms, label 0).
    weights : torch.Tensor, float64, shape (n_atoms,), optional
        Per-atom weights of the densities (e.g. charges in e), as ``System(weights=)``
        (docs/conventions.md, "Per-atom weights"); None: every weight 1 (the unweighted
        code). With ``species_channels=False`` and p = 1 the coefficients expand the
        electrostatic potential of these charges.
    kspace : {"auto", "numpy", "torch"}
        Who computes a bulk LODE structure's coefficients: "numpy", the calculator (tensors
        on another device are copied to the CPU and back); "torch", the torch k-space path
        of :mod:`lodekit.torch.kspace` on the tensors' device (direct k-space sum of one
        exponent, no range separation; anything else is an InputError); "auto" (default),
        "torch" where it applies and the tensors are on a device other than the CPU, else
        "numpy". The two give the same numbers (to rounding).

    Returns
    -------
    torch.Tensor, float64, shape (n_atoms, n_species, (max_angular + 1)^2, n_radial)
        (n_exponents x n_species channels, exponent-major, for a LODE calculator with several
        exponents; n_species is 1 for ``species_channels=False``). ``out[:, :, l*l:(l+1)**2]``
        equals ``calculator.compute(...).values[l]`` (module docstring), on the device of
        ``positions``.

    Notes
    -----
    Differentiable once with respect to ``positions``, ``cell`` (periodic: the cell
    gradient follows from the strain derivative; molecule: zero) and ``weights`` (the
    ``"weights"`` part of the vector-Jacobian product, computed only when ``weights``
    requires a gradient). The backward pass is ``calculator.vector_jacobian_product``; it
    cannot itself be differentiated (a second derivative raises ``RuntimeError``). On the
    torch k-space path (``kspace``) the backward pass is torch autograd and a small Function
    for the cell: second derivatives with respect to positions and weights work there, not
    through the cell (:mod:`lodekit.torch.kspace`).
    """
    if not isinstance(calculator, CALCULATOR_TYPES):
        raise InputError(
            f"`calculator` is {describe(calculator)}; expected a SphericalExpansion or a "
            "LodeSphericalExpansion"
        )
    if not isinstance(positions, torch.Tensor) or positions.ndim != 2:
        raise InputError(
            f"`positions` is {describe(positions)}; expected a torch.Tensor of shape (n_atoms, 3)"
        )
    positions = float64_tensor("positions", positions, (positions.shape[0], 3))
    if weights is not None:
        weights = float64_tensor("weights", weights, (positions.shape[0],))
    if cell is None:
        cell = torch.zeros((3, 3), dtype=torch.float64, device=positions.device)
    cell = float64_tensor("cell", cell, (3, 3))
    if species is not None:
        species = checked_species(species)
    kspace = check.choice("kspace", kspace, KSPACE_PATHS)
    numbers = as_numbers(types)
    if kspace == "torch" or (kspace == "auto" and positions.device.type != "cpu"):
        out = _torch_kspace(
            calculator, positions, cell, weights, numbers, pbc, species, kspace == "torch"
        )
        if out is not None:
            return out
    return _Expansion.apply(positions, cell, weights, calculator, numbers, pbc, species)


def split_by_l(coefficients: torch.Tensor, max_angular: int | None = None) -> list[torch.Tensor]:
    """Per-l views (n, n_species, 2l+1, n_radial) of a coefficient tensor of :func:`expansion`."""
    n_lm = coefficients.shape[2]
    top = math.isqrt(n_lm) - 1
    if (top + 1) ** 2 != n_lm:
        raise InputError(
            f"`coefficients` has {n_lm} (l, m) entries on axis 2; expected (max_angular + 1)^2"
        )
    if max_angular is None:
        max_angular = top
    check.int_in_range("max_angular", max_angular, 0, top)
    return [coefficients[:, :, l * l : (l + 1) ** 2] for l in range(max_angular + 1)]


class ExpansionLayer(torch.nn.Module):
    """:func:`expansion` of one calculator as a module (no trainable parameters).

    Parameters
    ----------
    calculator : SphericalExpansion or LodeSphericalExpansion
    species : sequence of int, optional
        Neighbour channels (see :func:`expansion`).
    kspace : {"auto", "numpy", "torch"}
        Who computes bulk LODE structures (see :func:`expansion`).
    """

    def __init__(self, calculator, species=None, kspace="auto"):
        super().__init__()
        if not isinstance(calculator, CALCULATOR_TYPES):
            raise InputError(
                f"`calculator` is {describe(calculator)}; expected a SphericalExpansion or a "
                "LodeSphericalExpansion"
            )
        self.calculator = calculator
        self.species = None if species is None else checked_species(species)
        self.kspace = check.choice("kspace", kspace, KSPACE_PATHS)

    def forward(self, positions, cell, types, pbc=True, weights=None):
        """Coefficients (n_atoms, n_species, (max_angular+1)^2, n_radial); see :func:`expansion`."""
        return expansion(
            self.calculator,
            positions,
            cell,
            types,
            pbc,
            species=self.species,
            weights=weights,
            kspace=self.kspace,
        )

    def extra_repr(self) -> str:
        return f"{self.calculator!r}, species={self.species}, kspace={self.kspace!r}"
