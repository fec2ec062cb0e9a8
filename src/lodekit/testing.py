"""Symmetry helpers for tests, shipped to users: rotations and real Wigner-D matrices.

The Wigner-D matrix of a rotation R is defined here by its action on the real spherical
harmonics of the expansions, Y_l(R r) = D^l(R) Y_l(r), and obtained by least squares from
Y_l evaluated at many directions; it does not use any expansion code.
"""

from __future__ import annotations

import numpy as np

from .basis.spherical_harmonics import real_spherical_harmonics

__all__ = ["assert_equivariant", "random_rotation", "wigner_d_real"]


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed proper rotation matrix (3, 3), from a random unit quaternion."""
    q = rng.normal(size=4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array(
        [
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d],
        ]
    )


def wigner_d_real(rotation: np.ndarray, max_angular: int) -> list[np.ndarray]:
    """Real Wigner-D matrices D^l (2l+1, 2l+1), l = 0..max_angular, for an orthogonal matrix.

    Satisfies Y_l(R r̂) = D^l Y_l(r̂); for an improper R (inversion) D^l includes (-1)^l.
    """
    rng = np.random.default_rng(12345)
    points = rng.normal(size=(4 * (max_angular + 1) ** 2 + 50, 3))
    y = real_spherical_harmonics(points, max_angular)
    y_rot = real_spherical_harmonics(points @ np.asarray(rotation).T, max_angular)
    out = []
    for l in range(max_angular + 1):
        sl = slice(l * l, (l + 1) ** 2)
        solution, *_ = np.linalg.lstsq(y[:, sl], y_rot[:, sl], rcond=None)
        out.append(solution.T)
    return out


def assert_equivariant(original, transformed, rotation: np.ndarray, atol: float) -> None:
    """Check that ``transformed.values[l] = D^l(R) original.values[l]`` for every l.

    Parameters
    ----------
    original, transformed : Expansion
        Expansions of a structure and of its image under ``rotation`` (same atom order).
    rotation : ndarray, shape (3, 3)
    atol : float
        Absolute tolerance.
    """
    wigner = wigner_d_real(rotation, original.max_angular)
    for l, (a, b) in enumerate(zip(original.values, transformed.values, strict=True)):
        expected = np.einsum("mk,iakn->iamn", wigner[l], a)
        np.testing.assert_allclose(b, expected, rtol=0, atol=atol, err_msg=f"l = {l}")
