"""Work arrays kept between calls, one set per thread.

On Linux, numpy takes arrays above glibc's mmap threshold (128 KiB to 32 MiB, adaptive)
straight from the kernel and gives them back on free, so every fresh array of a few MiB pays
one page fault per 4 KiB on its first write. On the development VM that cost more than the
arithmetic done on the array (LODE H1 on 192 atoms: 18 ms a call with fresh arrays, 12 ms
with glibc told to keep its memory). The hot loops therefore write into named buffers that
live as long as their thread, as large as the largest request seen.

A buffer is valid until the same name is asked for again on the same thread: names are
prefixed by their module, and no function hands one out as its result.
"""

from __future__ import annotations

import math
import threading

import numpy as np

__all__ = ["scratch"]

_LOCAL = threading.local()


def scratch(name: str, shape: tuple, dtype=np.float64) -> np.ndarray:
    """A work array of ``shape`` and ``dtype``, the same memory on every call from one thread.

    Parameters
    ----------
    name : str
        The buffer's name; two arrays in use at once need two names.
    shape : tuple of int
    dtype : numpy dtype, default float64

    Returns
    -------
    ndarray of ``shape``, uninitialised: a C-contiguous view of the thread's buffer.
    """
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    buffers = getattr(_LOCAL, "buffers", None)
    if buffers is None:
        buffers = _LOCAL.buffers = {}
    key = (name, dtype.str)
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = buffers[key] = np.empty(size, dtype=dtype)
    return buffer[:size].reshape(shape)
