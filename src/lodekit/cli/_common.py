"""What the sub-commands share: reading a recipe, checking an output path, a Dask client."""

from __future__ import annotations

from pathlib import Path

from ..errors import LodekitError

#: Seconds to keep trying to reach a ``--scheduler`` before giving up.
SCHEDULER_TIMEOUT = 10.0


def read_recipe(path):
    """The featurisation recipe of ``--recipe FILE`` (None: the default recipe)."""
    from ..features.recipe import Recipe

    if path is None:
        return Recipe.coerce(None)
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise LodekitError(f"`--recipe` {path!r} cannot be read: {err.strerror}") from None
    except UnicodeDecodeError:
        raise LodekitError(f"`--recipe` {path!r} is not a text (JSON) file") from None
    try:
        return Recipe.from_json(text)
    except LodekitError as err:
        raise LodekitError(f"`--recipe` {path!r}: {err}") from None


def connect(address):
    """A dask.distributed client of the scheduler at ``address`` (None: no client)."""
    if address is None:
        return None
    try:
        from distributed import Client
    except ImportError:
        raise LodekitError(
            "`--scheduler` needs dask.distributed: pip install 'lodekit[dask]'"
        ) from None
    try:
        return Client(address, timeout=SCHEDULER_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise LodekitError(f"`--scheduler` {address!r} cannot be reached: {reason}") from None


def output_file(value: str, what: str) -> Path:
    """``--out`` of a file written atomically: its folder must exist, and it is no folder."""
    from ..persistence import check_output_file

    return check_output_file(value, "--out", what)


def renamed(err: LodekitError, old: str, new: str) -> LodekitError:
    """The library names its arguments; the command line names its own options."""
    return LodekitError(str(err).replace(old, new, 1))


def positive(value, option: str) -> None:
    """Refuse a count option below 1 (None: the option was not given)."""
    if value is not None and value < 1:
        raise LodekitError(f"`{option}` is {value} but must be a positive integer")
