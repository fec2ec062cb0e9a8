"""Feature Jacobians stored by (environment, atom) row: the input of force training.

The features of an environment depend on the atoms its expansions see: for a cutoff
expansion (SOAP) only the neighbours within the cutoff and the centre. A dense Jacobian
(environments x atoms x 3 x features) is mostly zeros there; :class:`SparseJacobian` keeps
only the rows that can be non-zero (all of them for LODE).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from ..errors import InputError

__all__ = ["SparseJacobian"]


@dataclass(frozen=True, eq=False)
class SparseJacobian:
    """d x_i / d r_j of the features x_i of every environment i, on the (i, j) rows that can
    be non-zero.

    Attributes
    ----------
    keys : ndarray of int64, shape (n_rows, 2)
        (environment, atom), distinct; environments are rows of the structure's features.
    values : ndarray, shape (n_rows, 3, n_features)
        d x[environment, f] / d r[atom, xyz] (feature units per Å).
    n_environments, n_atoms : int
    strain : ndarray, shape (n_environments, 3, 3, n_features), or None
        d x_i / d eps_ab (periodic structures), when asked for.
    """

    keys: np.ndarray
    values: np.ndarray
    n_environments: int
    n_atoms: int
    strain: np.ndarray | None = None

    def __post_init__(self):
        keys = np.asarray(self.keys)
        values = np.asarray(self.values, dtype=np.float64)
        if keys.ndim != 2 or keys.shape[1] != 2 or not np.issubdtype(keys.dtype, np.integer):
            raise InputError(f"`keys` has shape {keys.shape}; expected integer (n_rows, 2)")
        if values.ndim != 3 or values.shape[:2] != (len(keys), 3):
            raise InputError(
                f"`values` has shape {values.shape}; expected ({len(keys)}, 3, n_features)"
            )
        if len(keys) and (
            keys.min() < 0
            or keys[:, 0].max() >= self.n_environments
            or keys[:, 1].max() >= self.n_atoms
        ):
            raise InputError(
                f"`keys` hold (environment, atom) pairs outside {self.n_environments} "
                f"environments x {self.n_atoms} atoms"
            )
        if self.strain is not None:
            strain = np.asarray(self.strain, dtype=np.float64)
            expected = (self.n_environments, 3, 3, values.shape[2])
            if strain.shape != expected:
                raise InputError(f"`strain` has shape {strain.shape}; expected {expected}")
            object.__setattr__(self, "strain", strain)
        object.__setattr__(self, "keys", keys.astype(np.int64, copy=False))
        object.__setattr__(self, "values", values)

    @property
    def n_features(self) -> int:
        return self.values.shape[2]

    @classmethod
    def from_dense(cls, dense, strain=None) -> SparseJacobian:
        """From a dense (n_environments, n_atoms, 3, n_features) Jacobian: every row kept."""
        dense = np.asarray(dense, dtype=np.float64)
        if dense.ndim != 4 or dense.shape[2] != 3:
            raise InputError(
                f"`dense` has shape {dense.shape}; expected (n_environments, n_atoms, 3, "
                "n_features)"
            )
        n_env, n_atoms = dense.shape[:2]
        env, atom = np.meshgrid(np.arange(n_env), np.arange(n_atoms), indexing="ij")
        keys = np.column_stack([env.ravel(), atom.ravel()])
        return cls(keys, dense.reshape(n_env * n_atoms, 3, -1), n_env, n_atoms, strain)

    def to_dense(self) -> np.ndarray:
        """(n_environments, n_atoms, 3, n_features), zeros off the rows."""
        out = np.zeros((self.n_environments, self.n_atoms, 3, self.n_features))
        out[self.keys[:, 0], self.keys[:, 1]] = self.values
        return out

    def summed(self) -> np.ndarray:
        """d(sum_i x_i)/d r_j, shape (n_atoms, 3, n_features): the derivative rows of a linear
        model (``StructureRidge.fit(..., feature_derivatives=)``)."""
        return (self._by_atom() @ self.values.reshape(len(self.keys), -1)).reshape(
            self.n_atoms, 3, self.n_features
        )

    def _by_atom(self):
        """The (n_atoms, n_rows) matrix that sums rows into their atom."""
        return scipy.sparse.csr_matrix(
            (np.ones(len(self.keys)), (self.keys[:, 1], np.arange(len(self.keys)))),
            shape=(self.n_atoms, len(self.keys)),
        )

    def with_strain_rows(self, factor: float = 1.0, *, positions: bool = True) -> SparseJacobian:
        """The strain derivatives as three more "atoms" after the real ones: row
        (i, n_atoms + a) holds ``factor`` x d x_i / d eps_ab over b (the xyz axis), the layout of
        force training's virial rows. Without ``positions``, only those three.

        Raises
        ------
        InputError
            If the Jacobian has no strain part.
        """
        if self.strain is None:
            raise InputError("this SparseJacobian has no strain part: ask for strain=True")
        first = self.n_atoms if positions else 0
        env, a = np.meshgrid(np.arange(self.n_environments), np.arange(3), indexing="ij")
        keys = np.column_stack([env.ravel(), first + a.ravel()])
        values = factor * self.strain.reshape(self.n_environments * 3, 3, self.n_features)
        if positions:
            keys = np.concatenate([self.keys, keys])
            values = np.concatenate([self.values, values])
        return SparseJacobian(keys, values, self.n_environments, first + 3)
