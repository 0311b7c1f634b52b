"""Argparse types for the numbers command-line options take: a bad value is refused before any work.

Each type returns the parsed value, or raises :class:`argparse.ArgumentTypeError` with the rule the
value breaks, which argparse prints as one error line naming the option (exit code 2).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

__all__ = [
    "bounded",
    "jpeg_quality",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "unit_fraction",
]


def bounded(kind: type[int] | type[float], rule: str, ok: Callable[[float], bool]) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)`` when it is a finite number that ``ok`` accepts.

    Args:
        kind: ``int`` or ``float``.
        rule: what a valid value is, for the message (``"an integer >= 1"``).
        ok: the check.
    """

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}; got {text!r}")
        return value

    parse.__name__ = rule  # argparse names the type in some messages
    return parse


#: An integer >= 1 (a size, a count, a number of workers).
positive_int = bounded(int, "an integer >= 1", lambda v: v >= 1)
#: An integer >= 0.
non_negative_int = bounded(int, "an integer >= 0", lambda v: v >= 0)
#: A finite number > 0 (microns per pixel, seconds).
positive_float = bounded(float, "a number > 0", lambda v: v > 0)
#: A finite number >= 0.
non_negative_float = bounded(float, "a number >= 0", lambda v: v >= 0)
#: A number in [0, 1].
unit_fraction = bounded(float, "a number in [0, 1]", lambda v: 0 <= v <= 1)
#: A JPEG/WebP quality, an integer in [1, 100].
jpeg_quality = bounded(int, "an integer in [1, 100]", lambda v: 1 <= v <= 100)
