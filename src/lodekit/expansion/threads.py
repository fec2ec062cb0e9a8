"""Thread pools kept between calls, and a BLAS thread limit that does not re-scan libraries.

Both are per-call costs that decided the time of small structures: a new
``ThreadPoolExecutor`` starts its threads (and their :mod:`~lodekit.expansion.workspace`
buffers) afresh, and ``threadpoolctl.threadpool_limits`` inspects every loaded shared library
on each use, 1.4 ms on the development machine against 15 µs for a kept controller.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread", "thread_pool"]

_POOLS: dict = {}
_LOCK = threading.Lock()
_CONTROLLER: list = []


def thread_pool(purpose: str, n_threads: int) -> ThreadPoolExecutor:
    """The process's pool of ``n_threads`` threads for ``purpose``.

    Nested parallel work must use different purposes: a task waiting on tasks queued behind
    it in its own pool would never finish.
    """
    key = (os.getpid(), purpose, n_threads)  # a forked child gets threads of its own
    with _LOCK:
        if key not in _POOLS:
            _POOLS[key] = ThreadPoolExecutor(n_threads, thread_name_prefix=f"lodekit-{purpose}")
        return _POOLS[key]


def one_blas_thread() -> contextlib.AbstractContextManager:
    """A context in which BLAS runs on one thread (the libraries loaded at first use)."""
    with _LOCK:
        if not _CONTROLLER:
            _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")
