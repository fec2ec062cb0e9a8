"""Checks for hyperparameters: each error names the argument, its value and the rule."""

from __future__ import annotations

import math
import numbers

from .errors import InputError, describe


def positive_float(name: str, value) -> float:
    out = finite_float(name, value)
    if out <= 0:
        raise InputError(f"`{name}` is {describe(value)} but must be positive")
    return out


def finite_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"`{name}` is {describe(value)} but must be a real number")
    out = float(value)
    if not math.isfinite(out):
        raise InputError(f"`{name}` is {describe(value)} but must be finite")
    return out


def int_in_range(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"`{name}` is {describe(value)} but must be an integer")
    out = int(value)
    if out < low or (high is not None and out > high):
        rule = f">= {low}" if high is None else f"between {low} and {high}"
        raise InputError(f"`{name}` is {out} but must be {rule}")
    return out


def choice(name: str, value, options) -> str:
    if value not in options:
        raise InputError(f"`{name}` is {describe(value)} but must be one of {list(options)}")
    return value
