"""Validation shared by the configs: one message format, naming the field, what was expected and what
was received ("name: expected X, got Y")."""

from __future__ import annotations

import math
import struct
from typing import Any


class ConfigError(ValueError):
    """A config field holds a value it cannot hold; `field` names it (the CLI turns it into a flag)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ConfigTypeError(ConfigError, TypeError):
    """A config field holds a value of the wrong type."""


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """`value` is an int (not a bool) in [low, high]."""
    expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError(name, f"expected {expected}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ConfigError(name, f"expected {expected}, got {value}")


def check_real(
    name: str, value: Any, low: float, high: float, *, open_low: bool, open_high: bool = False
) -> None:
    """`value` is a real number between low and high (each end open or closed), and float32 holds
    it as a normal number (training computes in float32: 1e-50 would be 0 there, 1e39 infinite)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigTypeError(name, f"expected a number, got {value!r}")
    open_high = open_high or high == math.inf  # no float32 number is infinite
    bad_low = value <= low if open_low else value < low
    bad_high = value >= high if open_high else value > high
    interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    if bad_low or bad_high or math.isnan(value):
        raise ConfigError(name, f"expected a number in {interval}, got {value!r}")
    if value != 0 and not F32_TINY <= abs(value) <= F32_MAX:
        raise ConfigError(
            name, f"expected a number float32 can hold ({F32_TINY:g} to {F32_MAX:g}), got {value!r}"
        )
    # Training runs with float32(value): refuse a value that float32 rounds onto an end of the
    # interval it is not on (momentum 0.99999999999 would run as 1.0 yet be recorded as less).
    ran = to_float32(value)
    if ran != value and ran in (low, high):
        raise ConfigError(
            name, f"expected a number in {interval}, got {value!r}, which float32 rounds to {ran!r}"
        )


def to_float32(value: float) -> float:
    """The float32 nearest to `value` (round to nearest even), as a Python float."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """`value` is one of `choices`."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ConfigError(name, f"expected one of {listed}, got {value!r}")


F32_TINY = 1.1754943508222875e-38  # smallest normal float32
F32_MAX = 3.4028234663852886e38
