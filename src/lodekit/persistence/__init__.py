"""Everything lodekit writes to disk: one atomic write, one digest, one sealed header format.

- :func:`atomic_write`, :func:`atomic_directory`: temporary file or folder beside the target,
  flushed to disk, renamed over it; modes follow the umask (``0o666 & ~umask``).
- :mod:`~lodekit.persistence.header`: every file's JSON header carries ``format``,
  ``format_version``, ``lodekit_version``, the digests of its arrays and a checksum over
  all of it, verified on reading.
- Expansion archives (:func:`save_expansion`, :func:`load_expansion`), model files
  (:func:`save_model`, :func:`load_model`); feature stores (:mod:`lodekit.batch.store`)
  use the same pieces.
"""

from ._atomic import atomic_directory, atomic_write, check_output_file
from .expansion_archive import load_expansion, save_expansion
from .header import ArchiveError, digest
from .model_archive import ModelFileError, load_model, save_model

__all__ = [
    "ArchiveError",
    "ModelFileError",
    "atomic_directory",
    "atomic_write",
    "check_output_file",
    "digest",
    "load_expansion",
    "load_model",
    "save_expansion",
    "save_model",
]
