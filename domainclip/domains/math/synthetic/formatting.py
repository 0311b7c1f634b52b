"""How numbers, coordinates and expressions are written, identically in images and captions.

Captions use ASCII minus signs and ``^`` for powers; image labels use the typographic minus and
superscripts (``label=True``). Both come from the same value, so what a caption states is what the
image shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

__all__ = [
    "format_number",
    "is_round",
    "format_pi",
    "format_x",
    "format_point",
    "format_fraction",
    "format_polynomial",
    "format_signed_constant",
    "format_list",
]

_MINUS = "−"
_SUPERSCRIPT = {2: "²", 3: "³"}


def is_round(value: float, digits: int = 2) -> bool:
    """Whether ``value`` is written exactly with ``digits`` decimals."""
    return abs(value - round(value, digits)) < 1e-9


def format_number(value: float, digits: int = 2, *, label: bool = False) -> str:
    """Round to ``digits`` decimals and drop trailing zeros: ``2``, ``-0.5``, ``3.14``."""
    r = round(float(value), digits)
    if abs(r) < 0.5 * 10.0**-digits:
        r = 0.0
    text = str(int(r)) if r == int(r) else f"{r:.{digits}f}".rstrip("0").rstrip(".")
    return text.replace("-", _MINUS) if label else text


def format_pi(value: float, *, label: bool = False, max_denominator: int = 8) -> str | None:
    """Write ``value`` as a rational multiple of pi (``3π/2``, ``-π``), or ``None`` if it is not one."""
    k = value / math.pi
    for q in (1, 2, 3, 4, 6, 8):
        if q > max_denominator:
            break
        p = round(k * q)
        if abs(k * q - p) < 1e-9:
            frac = Fraction(p, q)
            if frac == 0:
                return "0"
            num, den = abs(frac.numerator), frac.denominator
            body = ("π" if num == 1 else f"{num}π") + ("" if den == 1 else f"/{den}")
            sign = (_MINUS if label else "-") if frac < 0 else ""
            return sign + body
    return None


def format_x(value: float, *, pi: bool = False, label: bool = False, digits: int = 2) -> str:
    """An x value: a multiple of pi when ``pi`` and exact, otherwise a rounded decimal."""
    if pi:
        text = format_pi(value, label=label)
        if text is not None:
            return text
    return format_number(value, digits, label=label)


def format_point(x: float, y: float, *, label: bool = False, digits: int = 2) -> str:
    """A coordinate pair ``(x, y)``."""
    return f"({format_number(x, digits, label=label)}, {format_number(y, digits, label=label)})"


def format_fraction(value: Fraction | float, *, label: bool = False) -> str:
    """An exact rational as ``3/4`` or ``-2``; floats are written as rounded decimals."""
    if isinstance(value, Fraction):
        text = str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
        return text.replace("-", _MINUS) if label else text
    return format_number(value, label=label)


def _power(var: str, n: int, label: bool) -> str:
    if n == 0:
        return ""
    if n == 1:
        return var
    if label and n in _SUPERSCRIPT:
        return var + _SUPERSCRIPT[n]
    return f"{var}^{n}"


def format_polynomial(coefficients: Sequence[float], *, var: str = "x", label: bool = False) -> str:
    """A polynomial from its coefficients, highest power first: ``0.5x^3 - 2x + 1``."""
    degree = len(coefficients) - 1
    terms: list[tuple[bool, str]] = []
    for i, c in enumerate(coefficients):
        power = degree - i
        if abs(c) < 1e-12:
            continue
        magnitude = format_number(abs(c), 3)
        body = _power(var, power, label)
        if body and magnitude == "1":
            magnitude = ""
        terms.append((c < 0, magnitude + body))
    if not terms:
        return "0"
    minus = _MINUS if label else "-"
    out = (minus if terms[0][0] else "") + terms[0][1]
    for negative, text in terms[1:]:
        out += f" {minus if negative else '+'} {text}"
    return out


def format_signed_constant(value: float, *, label: bool = False) -> str:
    """A trailing ``+ c`` / ``- c`` term, or ``""`` for zero."""
    if abs(value) < 1e-12:
        return ""
    minus = _MINUS if label else "-"
    return f" {minus if value < 0 else '+'} {format_number(abs(value), 3)}"


def format_list(items: Sequence[str], conjunction: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c`` (``conjunction`` is language-specific)."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"
