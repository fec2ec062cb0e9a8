"""Exceptions raised by lodekit.

Every user mistake is reported as a :class:`LodekitError` subclass whose message names the
argument, the offending value and the rule it breaks.
"""

from __future__ import annotations


class LodekitError(Exception):
    """Base class of every error raised on purpose by lodekit."""


class InputError(LodekitError, ValueError):
    """An argument given by the user is invalid (wrong value, shape or type)."""


def describe(value, limit: int = 60) -> str:
    """Short, single-line representation of ``value`` for error messages."""
    text = repr(value).replace("\n", " ")
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text
