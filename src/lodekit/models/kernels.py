"""Kernels on atom-centred features and their structure-additive sums."""

from __future__ import annotations

import numpy as np

__all__ = ["equivariant_kernel", "normalize_equivariant", "normalize_rows", "polynomial_kernel"]


def normalize_rows(x: np.ndarray, blocks: list[slice], skip=frozenset()) -> np.ndarray:
    """Each block of columns of each row divided by its Euclidean norm (zero rows stay 0);
    blocks whose index is in ``skip`` are left as they are."""
    out = np.array(x, dtype=np.float64, copy=True)
    for index, block in enumerate(blocks):
        if index in skip:
            continue
        norms = np.linalg.norm(out[:, block], axis=1, keepdims=True)
        out[:, block] /= np.where(norms > 0, norms, 1.0)
    return out


def polynomial_kernel(
    x: np.ndarray,
    y: np.ndarray,
    zeta: float,
    blocks: list[slice],
    weights: np.ndarray,
    linear: frozenset = frozenset(),
) -> np.ndarray:
    """k(x, y) = (sum_{b not linear} w_b x_b · y_b)^zeta + sum_{b linear} w_b x_b · y_b.

    With one block and unit weight this is the usual (x · y)^zeta of normalised features; with a
    SOAP and a LODE block it is the paper's (k_SOAP + k_LODE)^zeta, and with the LODE block
    marked linear it is k_SOAP^zeta + a linear LODE model ("SOAP + linear LODE nu = 1").
    """
    inner = np.zeros((x.shape[0], y.shape[0]))
    outer = np.zeros_like(inner)
    for index, (block, weight) in enumerate(zip(blocks, weights, strict=True)):
        target = outer if index in linear else inner
        target += weight * (x[:, block] @ y[:, block].T)
    if len(linear) == len(blocks):
        return outer
    return inner**zeta + outer


def normalize_equivariant(t: np.ndarray) -> np.ndarray:
    """lambda-features t (n, 2 lambda + 1, q) divided by sqrt |t_i t_i^T|_F per environment.

    The Frobenius norm of the (2 lambda + 1)^2 self-product is rotation invariant, so the
    scaled features still rotate with the Wigner-D matrices, and the linear lambda-kernel of an
    environment with itself, t̂_i t̂_i^T, has unit Frobenius norm. Zero environments stay 0.
    """
    norms = np.sqrt(np.linalg.norm(np.einsum("imq,inq->imn", t, t), axis=(1, 2)))
    return t / np.where(norms > 0, norms, 1.0)[:, None, None]


def equivariant_kernel(
    t_a: np.ndarray, x_a: np.ndarray, t_b: np.ndarray, x_b: np.ndarray, zeta: int
) -> np.ndarray:
    """Symmetry-adapted kernel k^lambda_{mu nu}(i, j) = (t_i t_j^T)_{mu nu} (x_i · x_j)^(zeta-1).

    The first factor is the linear lambda-kernel, which rotates as D(R_i) k D(R_j)^T; the
    invariant factor makes the model non-linear without breaking that (Grisafi et al., Phys.
    Rev. Lett. 120, 036002, 2018). For integer zeta >= 1 it is a product of positive
    semi-definite kernels, hence one itself.

    Parameters
    ----------
    t_a, t_b : ndarray, shapes (n_a, 2 lambda + 1, q) and (n_b, 2 lambda + 1, q)
        lambda-features (normalised by the caller).
    x_a, x_b : ndarray, shapes (n_a, p) and (n_b, p)
        Invariant features of the same environments (normalised by the caller).
    zeta : int

    Returns
    -------
    ndarray, shape (n_a, 2 lambda + 1, n_b, 2 lambda + 1)
    """
    (n_a, width, q), n_b = t_a.shape, t_b.shape[0]
    k = (t_a.reshape(-1, q) @ t_b.reshape(-1, q).T).reshape(n_a, width, n_b, width)
    if zeta != 1:
        k *= ((x_a @ x_b.T) ** (zeta - 1))[:, None, :, None]
    return k
