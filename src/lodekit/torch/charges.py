"""A learned-charge long-range model: per-atom charges from local SOAP invariants weight a
p = 1 LODE expansion, whose invariants enter a short-range network with the SOAP ones.

Model, for the atoms i of one isolated molecule or cluster of total charge Q (e):

- x_i: the SOAP power spectrum of atom i (:class:`lodekit.torch.FeatureLayer` on a one-block
  recipe), standardised with the training set's column means and spreads, and a one-hot of
  the atom's species;
- q~_i = MLP_q(x_i), shifted by a constant so that the charges sum to Q exactly:
  q_i = q~_i + (Q - sum_j q~_j) / n_atoms;
- V_i: the l = 0 coefficients (nu = 1 invariants) of the LODE p = 1 expansion of the charge
  density sum_j q_j g(r - r_j), one channel for all atoms (``species_channels=False``): the
  expansion of the electrostatic potential of the charges around atom i;
- E = sum_i MLP_E(x_i, V_i / s, q_i V_i / s) (eV; s a fixed per-radial-function scale), the
  product q_i V_i giving the network the charge-potential products that make up a Coulomb
  energy; with ``linear_electrostatics``, plus sum_i q_i (w . V_i / s), w learned. Forces
  F = -dE/dr by autograd. Everything in float64.

Training on forces needs the derivative of the forces with respect to the network's
parameters: a second derivative through the expansions, which the autograd Functions of
:mod:`lodekit.torch` do not provide (first derivatives only). Training therefore uses the
first-order Taylor expansion of the geometry-dependent quantities about each training
structure, computed once with the numpy calculators:

- SOAP: x_i(r + d) = x_i + sum_k (dx_i/dr_k) d_k, from the recipe's sparse feature Jacobian;
- LODE: the coefficients are linear in the charges, c_i = sum_j U_ij q_j, and for an isolated
  structure U_ij depends on r_i - r_j only (j != i; U_ii is the centre's own term, constant),
  so U_ij(r + d) = U_ij + J_ij (d_j - d_i) with J_ij = dc_i/dr_j of the unit-charge expansion
  (``compute(gradients=["positions", "weights"])``).

The energy as a function of the displacement d (zero) has the exact value and the exact
first derivative, so F = -dE/dd at d = 0 is exactly the model's force, and it is an ordinary
torch expression of the parameters: ``torch.autograd.grad(..., create_graph=True)`` gives the
force loss its gradient. :meth:`LearnedChargeModel.forward` (prediction, the ASE calculator)
runs the lodekit.torch layer on positions instead: the same numbers
(tests/test_learned_charges.py), gradients to the positions through the expansions'
vector-Jacobian products, including dE/dq of the weighted LODE expansion.

Limits: isolated structures only (``pbc`` all False: the SSI dimers); training structures
are held in memory with their Jacobians (small molecules: about 1 MB each).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar

import ase
import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from ..errors import InputError, describe
from ..expansion import LodeSphericalExpansion
from ..features.recipe import Recipe, as_species
from ..systems import System
from .expansion import expansion
from .features import nu1
from .layer import FeatureLayer

__all__ = [
    "DEFAULT_LODE",
    "DEFAULT_SOAP",
    "LearnedChargeCalculator",
    "LearnedChargeModel",
    "PreparedStructures",
    "dimer_training_set",
    "train_learned_charges",
]

#: SOAP of the charge and energy networks: the SSI models' cutoff and smearing
#: (recipes/paper/dimers/soap.json), a smaller basis (its Jacobian is kept per training
#: structure)
DEFAULT_SOAP = {
    "cutoff": 3.0,
    "smearing": 0.3,
    "max_radial": 2,
    "max_angular": 2,
    "cutoff_width": 0.5,
}
#: LODE p = 1 of the charges: the paper's smearing and radius, l = 0 only (nu = 1 invariants)
DEFAULT_LODE = {"smearing": 1.0, "exponent": 1, "radius": 3.0, "max_radial": 3, "max_angular": 0}


def _mlp(n_in: int, hidden: tuple) -> torch.nn.Sequential:
    """Linear layers with SiLU between (smooth: forces and their parameter gradients exist)."""
    layers, width = [], n_in
    for size in hidden:
        layers += [torch.nn.Linear(width, size, dtype=torch.float64), torch.nn.SiLU()]
        width = size
    layers.append(torch.nn.Linear(width, 1, dtype=torch.float64))
    return torch.nn.Sequential(*layers)


def _check_isolated(atoms, where: str) -> None:
    if any(atoms.pbc):
        raise InputError(
            f"`{where}` has pbc {list(atoms.pbc)}; the learned-charge model handles isolated "
            "structures only (pbc all False)"
        )


@dataclass
class PreparedStructures:
    """Training structures with the Taylor data of the module docstring, as torch tensors.

    Atoms of all structures are concatenated; ``structure`` maps each to its structure.
    Built by :meth:`LearnedChargeModel.prepare`.

    Attributes
    ----------
    soap : (n_atoms, n_soap) raw SOAP columns; ``jac_env``, ``jac_atom`` (n_rows,) and
        ``jac_values`` (n_rows, 3, n_soap): d soap[env] / d r[atom] on the rows that can be
        non-zero.
    pair_i, pair_j : (n_pairs,) atom pairs of one structure (i == j included: the centre's
        own term); ``pair_u`` (n_pairs, n_radial) U_ij, ``pair_jac`` (n_pairs, 3, n_radial)
        J_ij (zero for i == j).
    types : (n_atoms,) index of every atom's species in the model's species.
    structure : (n_atoms,) structure of every atom; ``charge`` (n_structures,) total charge, e.
    energy : (n_structures,) eV, or None; ``forces`` (n_atoms, 3) eV/Å, or None.
    """

    soap: torch.Tensor
    jac_env: torch.Tensor
    jac_atom: torch.Tensor
    jac_values: torch.Tensor
    pair_i: torch.Tensor
    pair_j: torch.Tensor
    pair_u: torch.Tensor
    pair_jac: torch.Tensor
    types: torch.Tensor
    structure: torch.Tensor
    charge: torch.Tensor
    energy: torch.Tensor | None
    forces: torch.Tensor | None
    first_atom: np.ndarray  # (n_structures + 1,) atom offsets
    first_row: np.ndarray  # (n_structures + 1,) Jacobian row offsets
    first_pair: np.ndarray  # (n_structures + 1,) pair offsets

    def __len__(self) -> int:
        return len(self.charge)

    def subset(self, chosen) -> PreparedStructures:
        """The structures ``chosen`` (indices), renumbered in that order."""
        chosen = np.asarray(chosen, dtype=np.int64)
        atoms = np.concatenate(
            [np.arange(self.first_atom[s], self.first_atom[s + 1]) for s in chosen]
        )
        rows = np.concatenate([np.arange(self.first_row[s], self.first_row[s + 1]) for s in chosen])
        pairs = np.concatenate(
            [np.arange(self.first_pair[s], self.first_pair[s + 1]) for s in chosen]
        )
        n_atoms = np.diff(self.first_atom)[chosen]
        # old atom index -> new atom index
        renumber = np.full(self.first_atom[-1], -1, dtype=np.int64)
        renumber[atoms] = np.arange(len(atoms))
        renumber = torch.from_numpy(renumber)
        structure = torch.from_numpy(np.repeat(np.arange(len(chosen)), n_atoms))
        take = torch.from_numpy
        return PreparedStructures(
            soap=self.soap[take(atoms)],
            jac_env=renumber[self.jac_env[take(rows)]],
            jac_atom=renumber[self.jac_atom[take(rows)]],
            jac_values=self.jac_values[take(rows)],
            pair_i=renumber[self.pair_i[take(pairs)]],
            pair_j=renumber[self.pair_j[take(pairs)]],
            pair_u=self.pair_u[take(pairs)],
            pair_jac=self.pair_jac[take(pairs)],
            types=self.types[take(atoms)],
            structure=structure,
            charge=self.charge[take(chosen)],
            energy=None if self.energy is None else self.energy[take(chosen)],
            forces=None if self.forces is None else self.forces[take(atoms)],
            first_atom=np.concatenate([[0], np.cumsum(n_atoms)]),
            first_row=np.concatenate([[0], np.cumsum(np.diff(self.first_row)[chosen])]),
            first_pair=np.concatenate([[0], np.cumsum(np.diff(self.first_pair)[chosen])]),
        )


class LearnedChargeModel(torch.nn.Module):
    """Learned charges -> LODE p = 1 -> short-range energy network (module docstring).

    Parameters
    ----------
    species : sequence of int
        Sorted atomic numbers the model handles (the training set's).
    soap : dict, optional
        Hyperparameters of the :class:`~lodekit.SphericalExpansion` (default
        :data:`DEFAULT_SOAP`).
    lode : dict, optional
        Hyperparameters of the :class:`~lodekit.LodeSphericalExpansion`; ``exponent`` must be 1
        and ``species_channels`` is set to False (default :data:`DEFAULT_LODE`). Only its
        l = 0 coefficients are used.
    charge_hidden, energy_hidden : tuple of int
        Hidden layer widths of the charge and energy networks.
    linear_electrostatics : bool
        Add a term linear in the charge-potential products, sum_i q_i (w . V_i / s) with
        learned w (one weight per radial function, zero at the start): the form of a Coulomb
        energy, which then need not be learnt by the network and carries over to charge
        states seen rarely in training.
    seed : int
        Seed of the parameters' initialisation.

    Notes
    -----
    The standardisation of the inputs (:meth:`set_scales`, done by
    :func:`train_learned_charges` from the training set) is part of the model's state.
    """

    def __init__(
        self,
        species,
        soap=None,
        lode=None,
        charge_hidden=(16,),
        energy_hidden=(32, 32),
        linear_electrostatics: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        self.species = as_species(species)
        self.soap_hypers = dict(DEFAULT_SOAP if soap is None else soap)
        lode = dict(DEFAULT_LODE if lode is None else lode)
        if lode.get("exponent", 1) != 1:
            raise InputError(
                f"`lode` has exponent {lode['exponent']!r}; the charges' potential needs exponent 1"
            )
        lode.pop("species_channels", None)
        self.lode_hypers = lode
        self.charge_hidden = tuple(int(h) for h in charge_hidden)
        self.energy_hidden = tuple(int(h) for h in energy_hidden)
        self.linear_electrostatics = bool(linear_electrostatics)
        self.seed = int(seed)
        self.recipe = Recipe.from_dict(
            {
                "blocks": [
                    {
                        "kind": "power_spectrum",
                        "expansion": {"calculator": "spherical_expansion", **self.soap_hypers},
                    }
                ]
            }
        )
        self.soap_layer = FeatureLayer(self.recipe, self.species)
        self.lode = LodeSphericalExpansion(**lode, species_channels=False)
        n_soap = self.soap_layer.n_columns
        n_types = len(self.species)
        self.n_radial = self.lode.max_radial + 1
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)
        self.charge_net = _mlp(n_soap + n_types, self.charge_hidden)
        self.energy_net = _mlp(n_soap + n_types + 2 * self.n_radial, self.energy_hidden)
        if self.linear_electrostatics:
            self.electrostatic_weights = torch.nn.Parameter(
                torch.zeros(self.n_radial, dtype=torch.float64)
            )
        torch.random.set_rng_state(generator_state)
        self.register_buffer("soap_mean", torch.zeros(n_soap, dtype=torch.float64))
        self.register_buffer("soap_scale", torch.ones(n_soap, dtype=torch.float64))
        self.register_buffer("potential_scale", torch.ones(self.n_radial, dtype=torch.float64))

    # ------------------------------------------------------------------ the model's maths
    def _inputs(self, soap: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        onehot = torch.nn.functional.one_hot(types, len(self.species)).to(soap.dtype)
        return torch.cat([(soap - self.soap_mean) / self.soap_scale, onehot], dim=1)

    def _charges(self, inputs, structure, total_charge) -> torch.Tensor:
        raw = self.charge_net(inputs).squeeze(-1)
        n = len(total_charge)
        sums = torch.zeros(n, dtype=raw.dtype).index_add(0, structure, raw)
        counts = torch.zeros(n, dtype=raw.dtype).index_add(0, structure, torch.ones_like(raw))
        return raw + ((total_charge - sums) / counts)[structure]

    def _atom_energies(self, inputs, potential, charges) -> torch.Tensor:
        v = potential / self.potential_scale
        products = charges[:, None] * v
        out = self.energy_net(torch.cat([inputs, v, products], dim=1)).squeeze(-1)
        if self.linear_electrostatics:
            out = out + products @ self.electrostatic_weights
        return out

    def _types(self, numbers) -> torch.Tensor:
        numbers = np.asarray(numbers)
        outside = np.setdiff1d(numbers, self.species)
        if len(outside):
            raise InputError(
                f"`types` contain species {outside.tolist()} the model was not built for "
                f"(species {self.species.tolist()})"
            )
        return torch.from_numpy(np.searchsorted(self.species, numbers))

    # ------------------------------------------------------------------ prediction
    def forward(self, positions: torch.Tensor, types, total_charge: float = 0.0):
        """Energy and charges of one isolated structure, through the lodekit.torch layer.

        Parameters
        ----------
        positions : torch.Tensor, float64, shape (n_atoms, 3)
            Å; give ``requires_grad=True`` and differentiate the energy for the forces.
        types : sequence of int, length n_atoms
            Atomic numbers, among the model's species.
        total_charge : float
            Total charge of the structure, e.

        Returns
        -------
        energy : torch.Tensor, shape ()
            eV.
        charges : torch.Tensor, shape (n_atoms,)
            The learned charges, e; they sum to ``total_charge``.
        """
        numbers = np.asarray(types)
        index = self._types(numbers)
        soap = self.soap_layer(positions, None, numbers, False)
        inputs = self._inputs(soap, index)
        structure = torch.zeros(len(numbers), dtype=torch.int64)
        charge = torch.tensor([float(total_charge)], dtype=torch.float64)
        charges = self._charges(inputs, structure, charge)
        coefficients = expansion(self.lode, positions, None, numbers, False, weights=charges)
        potential = nu1(coefficients)
        return self._atom_energies(inputs, potential, charges).sum(), charges

    def predict(self, atoms: ase.Atoms, total_charge: float = 0.0) -> dict:
        """``energy`` (eV), ``forces`` (n_atoms, 3, eV/Å) and ``charges`` (n_atoms, e) of
        one isolated structure, as numpy."""
        _check_isolated(atoms, "atoms")
        positions = torch.tensor(atoms.positions, dtype=torch.float64, requires_grad=True)
        energy, charges = self(positions, atoms.numbers, total_charge)
        (gradient,) = torch.autograd.grad(energy, positions)
        return {
            "energy": energy.item(),
            "forces": -gradient.numpy(),
            "charges": charges.detach().numpy(),
        }

    # ------------------------------------------------------------------ training
    def prepare(self, structures, charges, energies=None, forces=None) -> PreparedStructures:
        """The Taylor data of ``structures`` (module docstring), computed once for training.

        Parameters
        ----------
        structures : list of ase.Atoms
            Isolated structures (pbc all False).
        charges : array_like, shape (n_structures,)
            Total charge of every structure, e.
        energies : array_like, shape (n_structures,), optional
            Reference energies, eV.
        forces : list of array_like (n_atoms_s, 3), optional
            Reference forces, eV/Å.
        """
        charges = np.asarray(charges, dtype=np.float64)
        if charges.shape != (len(structures),):
            raise InputError(
                f"`charges` has shape {charges.shape}; expected one total charge per structure "
                f"({len(structures)})"
            )
        soap, keys, values, types, pairs_i, pairs_j, pair_u, pair_jac = ([] for _ in range(8))
        first_atom, first_row, first_pair = [0], [0], [0]
        for index, atoms in enumerate(structures):
            _check_isolated(atoms, f"structures[{index}]")
            n = len(atoms)
            offset = first_atom[-1]
            types.append(self._types(atoms.numbers).numpy())
            system = System(atoms.positions, atoms.numbers)
            expanded = self.recipe.expand(system, self.species, gradients=["positions"])
            soap.append(self.recipe.forward(expanded).values)
            k, v = self.recipe.sparse_jvp(expanded)
            keys.append(k + offset)
            values.append(v)
            result = self.lode.compute(system, gradients=["positions", "weights"])
            u = np.zeros((n, n, self.n_radial))
            by_weight = result.gradients["weights"]
            u[by_weight.samples[:, 0], by_weight.samples[:, 2]] = by_weight.values[0][:, 0, 0]
            jac = np.zeros((n, n, 3, self.n_radial))
            by_position = result.gradients["positions"]
            jac[by_position.samples[:, 0], by_position.samples[:, 2]] = by_position.values[0][
                :, :, 0, 0
            ]
            # the diagonal rows hold -sum_k J_ik (translation invariance), not a pair term
            jac[np.arange(n), np.arange(n)] = 0.0
            i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
            pairs_i.append(i.ravel() + offset)
            pairs_j.append(j.ravel() + offset)
            pair_u.append(u.reshape(n * n, -1))
            pair_jac.append(jac.reshape(n * n, 3, -1))
            first_atom.append(offset + n)
            first_row.append(first_row[-1] + len(k))
            first_pair.append(first_pair[-1] + n * n)
        n_atoms = np.diff(first_atom)
        energy = None
        if energies is not None:
            energy = torch.tensor(np.asarray(energies, dtype=np.float64).reshape(len(structures)))
        force = None
        if forces is not None:
            force = torch.from_numpy(
                np.concatenate([np.asarray(f, float).reshape(-1, 3) for f in forces])
            )
            if force.shape[0] != first_atom[-1]:
                raise InputError(
                    f"`forces` hold {force.shape[0]} atoms; the structures have {first_atom[-1]}"
                )
        keys = np.concatenate(keys)
        return PreparedStructures(
            soap=torch.from_numpy(np.concatenate(soap)),
            jac_env=torch.from_numpy(keys[:, 0].astype(np.int64)),
            jac_atom=torch.from_numpy(keys[:, 1].astype(np.int64)),
            jac_values=torch.from_numpy(np.concatenate(values)),
            pair_i=torch.from_numpy(np.concatenate(pairs_i)),
            pair_j=torch.from_numpy(np.concatenate(pairs_j)),
            pair_u=torch.from_numpy(np.concatenate(pair_u)),
            pair_jac=torch.from_numpy(np.concatenate(pair_jac)),
            types=torch.from_numpy(np.concatenate(types)),
            structure=torch.from_numpy(np.repeat(np.arange(len(structures)), n_atoms)),
            charge=torch.from_numpy(charges),
            energy=energy,
            forces=force,
            first_atom=np.asarray(first_atom),
            first_row=np.asarray(first_row),
            first_pair=np.asarray(first_pair),
        )

    def set_scales(self, data: PreparedStructures) -> None:
        """Standardisation from training structures: SOAP column means and spreads (1 where
        a column is constant), and the potential's scale (per radial function, the RMS
        potential of unit charges)."""
        with torch.no_grad():
            mean = data.soap.mean(dim=0)
            spread = data.soap.std(dim=0)
            self.soap_mean.copy_(mean)
            self.soap_scale.copy_(
                torch.where(spread > 1e-12 * spread.max().clamp_min(1e-300), spread, 1.0)
            )
            unit = torch.zeros((len(data.soap), self.n_radial), dtype=torch.float64)
            unit.index_add_(0, data.pair_i, data.pair_u)
            rms = unit.square().mean(dim=0).sqrt()
            self.potential_scale.copy_(torch.where(rms > 0, rms, 1.0))

    def energies_and_forces(self, data: PreparedStructures, *, forces: bool = True):
        """Energies (n_structures,) eV, forces (n_atoms, 3) eV/Å (None if not ``forces``) and
        charges (n_atoms,) e of prepared structures, by the Taylor form (module docstring):
        differentiable with respect to the parameters, forces included."""
        n_atoms = len(data.soap)
        shift = torch.zeros((n_atoms, 3), dtype=torch.float64, requires_grad=forces)
        soap = data.soap
        if forces:
            moved = torch.einsum("rcf,rc->rf", data.jac_values, shift[data.jac_atom])
            soap = soap + torch.zeros_like(soap).index_add(0, data.jac_env, moved)
        inputs = self._inputs(soap, data.types)
        charges = self._charges(inputs, data.structure, data.charge)
        u = data.pair_u
        if forces:
            step = shift[data.pair_j] - shift[data.pair_i]
            u = u + torch.einsum("pcn,pc->pn", data.pair_jac, step)
        potential = torch.zeros((n_atoms, self.n_radial), dtype=torch.float64).index_add(
            0, data.pair_i, u * charges[data.pair_j, None]
        )
        atom_energies = self._atom_energies(inputs, potential, charges)
        energies = torch.zeros(len(data), dtype=torch.float64).index_add(
            0, data.structure, atom_energies
        )
        out_forces = None
        if forces:
            (gradient,) = torch.autograd.grad(energies.sum(), shift, create_graph=True)
            out_forces = -gradient
        return energies, out_forces, charges

    # ------------------------------------------------------------------ files
    def config(self) -> dict:
        """The constructor's arguments (JSON-serialisable)."""
        return {
            "species": self.species.tolist(),
            "soap": self.soap_hypers,
            "lode": self.lode_hypers,
            "charge_hidden": list(self.charge_hidden),
            "energy_hidden": list(self.energy_hidden),
            "linear_electrostatics": self.linear_electrostatics,
            "seed": self.seed,
        }

    def save(self, path) -> None:
        """Write the configuration and parameters to ``path`` (``torch.save``)."""
        torch.save({"config": self.config(), "state": self.state_dict()}, path)

    @classmethod
    def load(cls, path) -> LearnedChargeModel:
        """A model written by :meth:`save`."""
        stored = torch.load(path, weights_only=True)
        model = cls(**stored["config"])
        model.load_state_dict(stored["state"])
        return model


def dimer_training_set(frames, *, with_monomers: bool = True) -> dict:
    """Structures, total charges, binding energies and forces of SSI dimer frames.

    Parameters
    ----------
    frames : list of ase.Atoms
        Frames of ``ssi_dimers_gfn2.extxyz`` (``info``: ``binding_energy``, ``charge_A``,
        ``charge_B``, ``n_A``, ``dimer_index``; array ``binding_forces``).
    with_monomers : bool
        Append the two isolated monomers of every dimer (cut from its first frame) with
        energy 0 and forces 0, as the kernel models of ``lodekit reproduce dimers`` do.

    Returns
    -------
    dict
        ``structures`` (list of ase.Atoms), ``charge`` (n,) e, ``energy`` (n,) eV,
        ``forces`` (list of (n_atoms, 3) eV/Å), ``dimer`` (n,) dimer index, ``is_monomer``
        (n,) bool.
    """
    out = {k: [] for k in ("structures", "charge", "energy", "forces", "dimer", "is_monomer")}
    monomers, seen = [], set()

    def add(atoms, charge, energy, forces, dimer, is_monomer):
        out["structures"].append(atoms)
        out["charge"].append(charge)
        out["energy"].append(energy)
        out["forces"].append(forces)
        out["dimer"].append(dimer)
        out["is_monomer"].append(is_monomer)

    for index, atoms in enumerate(frames):
        info = atoms.info
        try:
            n_a, dimer = int(info["n_A"]), int(info["dimer_index"])
            charges = float(info["charge_A"]), float(info["charge_B"])
            energy = float(info["binding_energy"])
            forces = np.asarray(atoms.arrays["binding_forces"], dtype=np.float64)
        except KeyError as err:
            raise InputError(f"`frames[{index}]` lacks the SSI key {err}") from None
        plain = ase.Atoms(atoms.numbers, atoms.positions, pbc=False)
        add(plain, sum(charges), energy, forces, dimer, False)
        if with_monomers and dimer not in seen:
            seen.add(dimer)
            for part, charge in ((plain[:n_a], charges[0]), (plain[n_a:], charges[1])):
                monomers.append((part, charge, dimer))
    for part, charge, dimer in monomers:
        add(part, charge, 0.0, np.zeros((len(part), 3)), dimer, True)
    for key in ("charge", "energy", "dimer", "is_monomer"):
        out[key] = np.asarray(out[key])
    return out


def train_learned_charges(
    model: LearnedChargeModel,
    train: PreparedStructures,
    *,
    epochs: int = 50,
    learning_rate: float = 3e-3,
    final_learning_rate: float | None = None,
    batch_size: int = 32,
    force_weight: float = 1.0,
    weight_decay: float = 0.0,
    seed: int = 0,
    set_scales: bool = True,
    progress=None,
) -> dict:
    """Fit ``model`` to energies and forces with Adam.

    The loss of a batch is the mean squared energy error (eV^2, per structure) plus
    ``force_weight`` times the mean squared force component error ((eV/Å)^2).

    Parameters
    ----------
    model : LearnedChargeModel
    train : PreparedStructures
        From :meth:`LearnedChargeModel.prepare`, with energies and forces.
    epochs, learning_rate, batch_size : int, float, int
        Passes over the data, Adam's step size, structures per step.
    final_learning_rate : float, optional
        Step size of the last epoch, reached by a geometric decay from ``learning_rate``
        (default: constant ``learning_rate``).
    force_weight : float
        Weight of the force term, eV^2 per (eV/Å)^2; 0 trains on energies only.
    weight_decay : float
        Decoupled weight decay of the parameters (AdamW); 0: plain Adam.
    seed : int
        Seed of the batch order.
    set_scales : bool
        Standardise the inputs from ``train`` first (:meth:`LearnedChargeModel.set_scales`).
    progress : callable, optional
        Called after every epoch with (epoch, loss).

    Returns
    -------
    dict
        ``loss``: the mean batch loss of every epoch (the parameters moving during it);
        ``seconds``: the training time.
    """
    if train.energy is None or (train.forces is None and force_weight != 0):
        raise InputError("`train` has no reference energies or forces: prepare it with both")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"`{name}` is {describe(value)}; expected a positive integer")
    if set_scales:
        model.set_scales(train)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    decay = 1.0
    if final_learning_rate is not None and epochs > 1:
        decay = (final_learning_rate / learning_rate) ** (1.0 / (epochs - 1))
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=decay)
    rng = np.random.default_rng(seed)
    n_batches = math.ceil(len(train) / batch_size)
    batches = None
    if n_batches == 1:
        batches = [train]
    losses = []
    start = time.perf_counter()
    for epoch in range(epochs):
        if n_batches > 1:
            order = rng.permutation(len(train))
            batches = [train.subset(part) for part in np.array_split(order, n_batches)]
        total = 0.0
        for batch in batches:
            optimizer.zero_grad()
            # force_weight 0: energies only, without the force pass
            energies, forces, _ = model.energies_and_forces(batch, forces=force_weight != 0)
            loss = (energies - batch.energy).square().mean()
            if forces is not None:
                loss = loss + force_weight * (forces - batch.forces).square().mean()
            loss.backward()
            optimizer.step()
            total += loss.item()
        losses.append(total / len(batches))
        schedule.step()
        if progress is not None:
            progress(epoch, losses[-1])
    return {"loss": losses, "seconds": time.perf_counter() - start}


class LearnedChargeCalculator(Calculator):
    """ASE calculator of a trained :class:`LearnedChargeModel`: energy (eV), forces (eV/Å)
    and the learned ``charges`` (e) of isolated structures.

    Parameters
    ----------
    model : LearnedChargeModel
    charge : float, optional
        Total charge of the structures, e. None: ``atoms.info["charge"]`` when present, else
        the sum of ``atoms.get_initial_charges()`` (0 when none are set).
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "charges"]

    def __init__(self, model: LearnedChargeModel, charge: float | None = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, LearnedChargeModel):
            raise InputError(f"`model` is {describe(model)}; expected a LearnedChargeModel")
        self.model = model
        self.charge = charge

    def _total_charge(self, atoms) -> float:
        if self.charge is not None:
            return float(self.charge)
        if "charge" in atoms.info:
            return float(atoms.info["charge"])
        return float(np.sum(atoms.get_initial_charges()))

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        result = self.model.predict(self.atoms, self._total_charge(self.atoms))
        self.results = {
            "energy": result["energy"],
            "free_energy": result["energy"],
            "forces": result["forces"],
            "charges": result["charges"],
        }
