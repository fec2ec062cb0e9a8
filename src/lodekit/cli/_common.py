"""What the sub-commands share: one way to read a structure, text or recipe file, to check an
output path, to name options in the library's messages, and a Dask client.

Each reader turns every way a file can be wrong (missing, a folder, empty, binary, truncated,
another kind of file) into one :class:`~lodekit.errors.LodekitError` naming the option.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import LodekitError

#: Seconds to keep trying to reach a ``--scheduler`` before giving up.
SCHEDULER_TIMEOUT = 10.0


def read_text(path: str, option: str) -> str:
    """The text of the JSON file given to ``option``."""
    try:
        return Path(path).read_text()
    except OSError as err:
        raise LodekitError(f"`{option}` {path!r} cannot be read: {err.strerror}") from None
    except UnicodeDecodeError:
        raise LodekitError(f"`{option}` {path!r} is not a text (JSON) file") from None


def read_recipe(path):
    """The featurisation recipe of ``--recipe FILE`` (None: the default recipe)."""
    from ..features.recipe import Recipe

    if path is None:
        return Recipe.coerce(None)
    text = read_text(path, "--recipe")
    try:
        return Recipe.from_json(text)
    except LodekitError as err:
        raise LodekitError(f"`--recipe` {path!r}: {err}") from None


def read_structures(path, option: str) -> list:
    """Every frame (ase.Atoms) of the structure file given to ``option``."""
    from ..batch.dataset import read_frames

    return read_frames(path, argument=option)


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


def output_folder(value: str, what: str) -> Path:
    """``--out`` of a folder made by the command: none or a folder there, its parent exists.

    As for :func:`output_file`, a missing parent is refused rather than made: a mistyped path
    should not grow a tree of folders.
    """
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise LodekitError(f"`--out` {value!r} is a file; expected the path of {what}")
    if not path.absolute().parent.is_dir():
        raise LodekitError(
            f"`--out` {value!r}: the directory {str(path.parent)!r} does not exist "
            "(or is not a directory)"
        )
    return path


def read_potential(path: str):
    """The :class:`~lodekit.interatomic.LodePotential` of the potential file ``MODEL``."""
    from ..interatomic import load_potential
    from ..persistence import ModelFileError

    try:
        return load_potential(path)
    except ModelFileError as err:
        raise renamed(err, f"model file {path!r}", f"`MODEL` {path!r}") from None


def check_species(potential, atoms, path: str, frame: int, option: str) -> None:
    """Refuse frame ``frame`` of ``path`` if it holds a species the potential was not trained
    on: its features would have channels the model never saw."""
    from ase.data import chemical_symbols

    if potential.species is None:
        return
    unknown = sorted(set(atoms.numbers.tolist()) - set(potential.species.tolist()))
    if unknown:
        names = ", ".join(f"{chemical_symbols[z]} (Z={z})" for z in unknown)
        known = ", ".join(chemical_symbols[z] for z in potential.species.tolist())
        raise LodekitError(
            f"`{option}` {path!r} frame {frame} holds species the potential does not know: "
            f"{names}; it was trained on {known}"
        )


def renamed(err: LodekitError, old: str, new: str) -> LodekitError:
    """The library names its arguments; the command line names its own options."""
    return LodekitError(str(err).replace(old, new, 1))


def options_named(err: LodekitError, names: dict[str, str]) -> LodekitError:
    """``err`` with each library argument ``name`` of ``names`` shown as its option."""
    text = str(err)
    for name, option in names.items():
        text = text.replace(f"`{name}`", f"`{option}`")
    return LodekitError(text)


def positive(value, option: str) -> None:
    """Refuse a count option below 1 (None: the option was not given)."""
    if value is not None and value < 1:
        raise LodekitError(f"`{option}` is {value} but must be a positive integer")
