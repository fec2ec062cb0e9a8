"""Atomic writes of files and directories: a crash leaves the old content or the new, never half.

Modes: the temporary file is created with ``os.open(..., 0o666)`` and the temporary directory
with ``os.mkdir`` (0o777), so the kernel applies the process umask exactly as for a file
written with ``open()``: umask 022 gives 0644, umask 002 gives 0664. The umask is never read
or changed (changing it to read it races with other threads).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from ..errors import InputError

__all__ = ["atomic_directory", "atomic_write", "check_output_file", "fsync_dir", "fsync_tree"]


def check_output_file(path: str | os.PathLike, name: str = "path", what: str = "a file") -> Path:
    """``path`` as a :class:`~pathlib.Path` if a file can be written there, else InputError.

    It must not be a folder, and its folder must exist; ``name`` is the argument named in the
    error (``"--out"`` on the command line), ``what`` the kind of file expected.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"`{name}` {str(path)!r} is a directory; expected the path of {what}")
    if not path.absolute().parent.is_dir():
        raise InputError(
            f"`{name}` {str(path)!r}: the directory {str(path.parent)!r} does not exist "
            "(or is not a directory)"
        )
    return path


def _temporary_name(final: Path, kind: str) -> Path:
    return final.parent / f".{final.name}.{kind}-{uuid.uuid4().hex[:12]}.tmp"


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(binary_stream)`` on a temporary file beside ``path``, then rename it over.

    The bytes are flushed to disk (fsync) before the rename and the folder after it, so a
    crash or power cut leaves either the previous file at ``path`` or the complete new one.
    The new file's mode is ``0o666 & ~umask``, as for ``open(path, "w")``.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = check_output_file(path)
    while True:
        tmp = _temporary_name(path, "writing")
        try:
            handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # pragma: no cover - a 48-bit random name taken
            continue
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.absolute().parent)
    return path


def atomic_directory(final: str | os.PathLike, build, *, workspace=None, replace=False) -> Path:
    """Call ``build(folder)`` on a new empty folder, flush it to disk, rename it to ``final``.

    Parameters
    ----------
    final : path-like
        Where the folder appears once complete. It must not exist or be an empty folder,
        unless ``replace`` (then an existing ``final`` is deleted just before the rename).
    build : callable
        Fills the folder it is given (files created with the umask's modes).
    workspace : path-like, optional
        Folder for the temporary one (default: ``final``'s folder); it must be on the same
        file system as ``final``.

    Returns
    -------
    pathlib.Path
        ``final``.
    """
    final = Path(final)
    workspace = Path(workspace) if workspace is not None else final.parent
    tmp = _temporary_name(workspace / final.name, "building")
    os.mkdir(tmp)
    try:
        build(tmp)
        fsync_tree(tmp)
        if replace and final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(final.parent)
    return final


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk."""
    if os.name != "posix":  # pragma: no cover - directories cannot be opened elsewhere
        return
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def fsync_tree(path: Path) -> None:
    """Flush every file and folder under ``path`` to disk: a folder is renamed into place only
    once its bytes are durable, so a power cut cannot leave a "finished" empty one."""
    for root, _, files in os.walk(path):
        for name in files:
            handle = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(handle)
            finally:
                os.close(handle)
        fsync_dir(Path(root))
