"""Function plots: polynomial, sine, cosine, tangent, exponential, logarithm and absolute value.

Every fact a caption states is computed, never guessed:

* zeros of polynomials are the real roots of ``numpy.roots`` (polished by Newton steps), of the
  other families the closed-form solutions of ``f(x) = 0``; all are kept only inside the plotted
  range (end points included);
* extrema are the roots of the derivative strictly inside the plotted range where the derivative
  changes sign (the vertex of ``|x|`` where it has a corner);
* asymptotes: ``x = (pi/2 + k pi) / b`` for ``a tan(bx) + d`` inside the range, ``x = h`` for
  ``a log_b(x - h) + d`` when in range, ``y = d`` for ``a b^x + d``.

:func:`evaluate_function` and :func:`derivative_function` evaluate a family from its coefficients,
which generated samples store in ``meta["coefficients"]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from domainclip.core.plugins import UnknownNameError
from domainclip.domains.math.synthetic.canvas import DiagramCanvas, Style, Tick, draw_coordinate_plane
from domainclip.domains.math.synthetic.formatting import (
    format_number,
    format_pi,
    format_point,
    format_polynomial,
    format_signed_constant,
    format_x,
)
from domainclip.domains.math.synthetic.registry import Diagram, Fact, register_diagram

__all__ = ["FunctionAnalysis", "FUNCTION_BUILDERS", "evaluate_function", "derivative_function", "analyse_function"]


@dataclass
class FunctionAnalysis:
    """A function to plot and its computed properties over the plotted range.

    Args:
        family: one of ``labels.FUNCTION_FAMILIES``.
        coefficients: the parameters :func:`evaluate_function` takes.
        expression: caption form, e.g. ``"y = 2sin(3x) + 1"``.
        label: image form (typographic minus, superscripts).
        x_range: plotted x range.
        y_view: visible y range.
        zeros: x of every zero in ``x_range`` (inclusive).
        extrema: ``(x, y, "max" | "min")`` of every local extremum strictly inside ``x_range``.
        vertical_asymptotes: their x inside ``x_range``.
        horizontal_asymptotes: their y.
        domain_min: open lower bound of the domain (logarithms), else ``None``.
        pi_ticks: x ticks and x values are written as multiples of pi.
        extras: family facts: period, amplitude, monotonic direction, y-intercept.
    """

    family: str
    coefficients: dict[str, Any]
    expression: str
    label: str
    x_range: tuple[float, float]
    y_view: tuple[float, float]
    zeros: list[float] = field(default_factory=list)
    extrema: list[tuple[float, float, str]] = field(default_factory=list)
    vertical_asymptotes: list[float] = field(default_factory=list)
    horizontal_asymptotes: list[float] = field(default_factory=list)
    domain_min: float | None = None
    pi_ticks: bool = False
    extras: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- evaluation
def _log(c: dict[str, Any], x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = x - c["h"]
        return np.where(
            inside > 0, c["a"] * np.log(np.where(inside > 0, inside, 1.0)) / math.log(c["base"]) + c["d"], np.nan
        )


_EVALUATORS: dict[str, Callable[[dict[str, Any], np.ndarray], np.ndarray]] = {
    "polynomial": lambda c, x: np.polyval(c["coeffs"], x),
    "sine": lambda c, x: c["a"] * np.sin(c["b"] * x) + c["d"],
    "cosine": lambda c, x: c["a"] * np.cos(c["b"] * x) + c["d"],
    "tangent": lambda c, x: c["a"] * np.tan(c["b"] * x) + c["d"],
    "exponential": lambda c, x: c["a"] * np.power(c["base"], x) + c["d"],
    "logarithm": _log,
    "absolute_value": lambda c, x: c["a"] * np.abs(x - c["h"]) + c["k"],
}

_DERIVATIVES: dict[str, Callable[[dict[str, Any], np.ndarray], np.ndarray]] = {
    "polynomial": lambda c, x: np.polyval(np.polyder(c["coeffs"]), x),
    "sine": lambda c, x: c["a"] * c["b"] * np.cos(c["b"] * x),
    "cosine": lambda c, x: -c["a"] * c["b"] * np.sin(c["b"] * x),
    "tangent": lambda c, x: c["a"] * c["b"] / np.cos(c["b"] * x) ** 2,
    "exponential": lambda c, x: c["a"] * math.log(c["base"]) * np.power(c["base"], x),
    "logarithm": lambda c, x: c["a"] / ((x - c["h"]) * math.log(c["base"])),
    "absolute_value": lambda c, x: c["a"] * np.sign(x - c["h"]),
}


def evaluate_function(family: str, coefficients: dict[str, Any], x: np.ndarray | float) -> np.ndarray:
    """Value of a function family with the given coefficients (``nan`` outside a log's domain)."""
    if family not in _EVALUATORS:
        raise UnknownNameError("function family", family, list(_EVALUATORS))
    return _EVALUATORS[family](coefficients, np.asarray(x, dtype=float))


def derivative_function(family: str, coefficients: dict[str, Any], x: np.ndarray | float) -> np.ndarray:
    """First derivative of a function family (the sign function's one-sided value for ``|x|``)."""
    if family not in _DERIVATIVES:
        raise UnknownNameError("function family", family, list(_DERIVATIVES))
    return _DERIVATIVES[family](coefficients, np.asarray(x, dtype=float))


# ---------------------------------------------------------------------------- helpers
def _in_range(xs: list[float], lo: float, hi: float, *, closed: bool) -> list[float]:
    tol = 1e-9 * max(1.0, abs(lo), abs(hi))
    if closed:
        kept = [x for x in xs if lo - tol <= x <= hi + tol]
    else:
        kept = [x for x in xs if lo + tol < x < hi - tol]
    kept.sort()
    out: list[float] = []
    for x in kept:
        if not out or abs(x - out[-1]) > 1e-7:
            out.append(x)
    return out


def _periodic(base: list[float], step: float, lo: float, hi: float, *, closed: bool = True) -> list[float]:
    """All ``t + k * step`` for ``t`` in ``base`` that fall in the range."""
    xs = []
    for t in base:
        k0 = math.floor((lo - t) / step) - 1
        k1 = math.ceil((hi - t) / step) + 1
        xs.extend(t + k * step for k in range(k0, k1 + 1))
    return _in_range(xs, lo, hi, closed=closed)


def _sign_change_extrema(
    family: str, c: dict[str, Any], critical: list[float], lo: float, hi: float
) -> list[tuple[float, float, str]]:
    out = []
    delta = 1e-4 * (hi - lo)
    for x in _in_range(critical, lo, hi, closed=False):
        left = float(derivative_function(family, c, x - delta))
        right = float(derivative_function(family, c, x + delta))
        if left > 0 > right:
            out.append((x, float(evaluate_function(family, c, x)), "max"))
        elif left < 0 < right:
            out.append((x, float(evaluate_function(family, c, x)), "min"))
    return out


def _choice(rng: np.random.Generator, options: list[Any] | tuple[Any, ...]) -> Any:
    return options[int(rng.integers(len(options)))]


def _view(values: np.ndarray, extra: list[float], cap: float | None = None) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    lo = min([float(finite.min())] + extra) if finite.size else min(extra)
    hi = max([float(finite.max())] + extra) if finite.size else max(extra)
    if cap is not None:
        lo, hi = max(lo, -cap), min(hi, cap)
    pad = 0.08 * max(hi - lo, 1.0)
    return lo - pad, hi + pad


def _coef(value: float, body: str) -> str:
    """``2sin(x)``, ``-sin(x)``, ``0.5sin(x)``."""
    if value == 1:
        return body
    if value == -1:
        return "-" + body
    return format_number(value, 3) + body


def _trig_arg(b: float) -> str:
    if b == 1:
        return "x"
    if b == 0.5:
        return "x/2"
    return f"{format_number(b, 3)}x"


# ---------------------------------------------------------------------------- families
def _real_clusters(values: np.ndarray, tol: float) -> list[float]:
    """Real parts of nearly-real roots, with numerically split multiple roots merged."""
    reals = sorted(float(r.real) for r in values if abs(r.imag) < tol * (1 + abs(r)))
    out: list[list[float]] = []
    for r in reals:
        if out and abs(r - out[-1][-1]) < tol:
            out[-1].append(r)
        else:
            out.append([r])
    return [sum(c) / len(c) for c in out]


def _polynomial(rng: np.random.Generator) -> FunctionAnalysis:
    degree = int(_choice(rng, (2, 2, 3, 3, 4)))
    while True:
        if rng.random() < 0.55:
            roots = sorted(int(r) for r in rng.integers(-3, 4, size=degree))
            lead = _choice(rng, (0.25, 0.5) if degree == 4 else (0.5, 1.0, 1.0, 2.0)) * _choice(rng, (1, -1))
            coeffs = lead * np.poly(roots)
            coeffs[-1] += _choice(rng, (0, 0, 0, 1, -1, 2, -2))
        else:
            lead = _choice(rng, (0.25, 0.5) if degree >= 3 else (0.5, 1.0, 2.0)) * _choice(rng, (1, -1))
            coeffs = np.concatenate([[lead], rng.integers(-4, 5, size=degree).astype(float)])
        coeffs = np.round(coeffs, 6)
        crit = _real_clusters(np.roots(np.polyder(coeffs)), 1e-3)
        real_roots = _real_clusters(np.roots(coeffs), 1e-3)
        points = crit + real_roots + [0.0]
        lo = math.floor(min(points)) - int(rng.integers(1, 3))
        hi = math.ceil(max(points)) + int(rng.integers(1, 3))
        x = np.linspace(lo, hi, 401)
        y = np.polyval(coeffs, x)
        if hi - lo <= 12 and float(np.ptp(y)) <= 60:  # otherwise too steep to read: draw again
            break
    c = {"coeffs": [float(v) for v in coeffs]}
    # zeros: numpy's roots, polished with Newton steps, kept where f really vanishes
    zeros = []
    deriv = np.polyder(coeffs)
    scale = max(1.0, float(np.abs(coeffs).max()))
    for r in np.roots(coeffs):
        if abs(r.imag) > 1e-3 * (1 + abs(r)):
            continue
        z = float(r.real)
        for _ in range(60):
            d = float(np.polyval(deriv, z))
            if d == 0.0:
                break
            step = float(np.polyval(coeffs, z)) / d
            z -= step
            if abs(step) < 1e-15:
                break
        if abs(float(np.polyval(coeffs, z))) < 1e-9 * scale:
            zeros.append(z)
    zeros = _in_range(zeros, lo, hi, closed=True)
    extrema = _sign_change_extrema("polynomial", c, crit, lo, hi)
    return FunctionAnalysis(
        family="polynomial",
        coefficients=c,
        expression="y = " + format_polynomial(coeffs),
        label="y = " + format_polynomial(coeffs, label=True),
        x_range=(float(lo), float(hi)),
        y_view=_view(y, [0.0]),
        zeros=zeros,
        extrema=extrema,
        extras={"degree": degree, "y_intercept": float(coeffs[-1]) if lo <= 0 <= hi else None},
    )


def _trig(rng: np.random.Generator, family: str) -> FunctionAnalysis:
    a = float(_choice(rng, (0.5, 1.0, 1.0, 1.5, 2.0, 3.0)) * _choice(rng, (1, 1, -1)))
    b = float(_choice(rng, (0.5, 1.0, 1.0, 2.0, 3.0)))
    d = float(_choice(rng, (0.0, 0.0, 0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0)))
    if abs(d) > abs(a) and rng.random() < 0.7:
        d = 0.0
    period = 2 * math.pi / b
    lo = -period * float(_choice(rng, (0.25, 0.5, 0.75, 1.0)))
    hi = period * float(_choice(rng, (0.5, 0.75, 1.0, 1.25)))
    c = {"a": a, "b": b, "d": d}
    r = -d / a
    zeros: list[float] = []
    if abs(r) <= 1 + 1e-12:
        r = max(-1.0, min(1.0, r))
        if family == "sine":
            t = math.asin(r)
            base = [t / b, (math.pi - t) / b]
        else:
            t = math.acos(r)
            base = [t / b, -t / b]
        zeros = _periodic(base, period, lo, hi)
    if family == "sine":
        crit = _periodic([math.pi / 2 / b], math.pi / b, lo, hi, closed=False)
    else:
        crit = _periodic([0.0], math.pi / b, lo, hi, closed=False)
    extrema = []
    for x in crit:
        y = float(evaluate_function(family, c, x))
        extrema.append((x, y, "max" if y > d else "min"))
    name = "sin" if family == "sine" else "cos"
    body = f"{name}({_trig_arg(b)})"
    expression = "y = " + _coef(a, body) + format_signed_constant(d)
    return FunctionAnalysis(
        family=family,
        coefficients=c,
        expression=expression,
        label=expression.replace("-", "−"),
        x_range=(lo, hi),
        y_view=_view(np.array([d - abs(a), d + abs(a)]), [0.0]),
        zeros=zeros,
        extrema=extrema,
        pi_ticks=True,
        extras={
            "period": period,
            "amplitude": abs(a),
            "midline": d,
            "y_intercept": float(evaluate_function(family, c, 0.0)),
        },
    )


def _sine(rng: np.random.Generator) -> FunctionAnalysis:
    return _trig(rng, "sine")


def _cosine(rng: np.random.Generator) -> FunctionAnalysis:
    return _trig(rng, "cosine")


def _tangent(rng: np.random.Generator) -> FunctionAnalysis:
    a = float(_choice(rng, (0.5, 1.0, 1.0, 2.0)) * _choice(rng, (1, 1, -1)))
    b = float(_choice(rng, (0.5, 1.0, 1.0, 2.0)))
    d = float(_choice(rng, (0.0, 0.0, 0.0, 1.0, -1.0, 2.0, -2.0)))
    period = math.pi / b
    lo = -period * float(_choice(rng, (0.75, 1.0, 1.25)))
    hi = period * float(_choice(rng, (0.75, 1.0, 1.25)))
    c = {"a": a, "b": b, "d": d}
    zeros = _periodic([math.atan(-d / a) / b], period, lo, hi)
    asymptotes = _periodic([math.pi / 2 / b], period, lo, hi, closed=False)
    span = max(3.0, 2 * abs(a) + abs(d) + 1.0)
    expression = "y = " + _coef(a, f"tan({_trig_arg(b)})") + format_signed_constant(d)
    return FunctionAnalysis(
        family="tangent",
        coefficients=c,
        expression=expression,
        label=expression.replace("-", "−"),
        x_range=(lo, hi),
        y_view=(min(-span, d - span), max(span, d + span)),
        zeros=zeros,
        vertical_asymptotes=asymptotes,
        pi_ticks=True,
        extras={"period": period, "y_intercept": d},
    )


_BASES: dict[str, tuple[float, str]] = {
    "2": (2.0, "2"),
    "3": (3.0, "3"),
    "e": (math.e, "e"),
    "1/2": (0.5, "(1/2)"),
    "1/3": (1.0 / 3.0, "(1/3)"),
}


def _exponential(rng: np.random.Generator) -> FunctionAnalysis:
    key = str(_choice(rng, tuple(_BASES)))
    base, base_text = _BASES[key]
    a = float(_choice(rng, (0.5, 1.0, 1.0, 2.0)) * _choice(rng, (1, 1, -1)))
    d = float(_choice(rng, (0.0, 1.0, -1.0, 2.0, -2.0, -3.0, 3.0)))
    lo = -float(_choice(rng, (2, 3, 4)))
    hi = float(_choice(rng, (2, 3, 4)))
    c = {"a": a, "base": base, "d": d}
    zeros = []
    t = -d / a
    if t > 0:
        zeros = _in_range([math.log(t) / math.log(base)], lo, hi, closed=True)
    body = f"{base_text}^x"
    term = body if a == 1 else ("-" + body if a == -1 else f"{format_number(a, 3)}·{body}")
    expression = "y = " + term + format_signed_constant(d)
    x = np.linspace(lo, hi, 201)
    return FunctionAnalysis(
        family="exponential",
        coefficients={**c, "base_name": key},
        expression=expression,
        label=expression.replace("-", "−"),
        x_range=(lo, hi),
        y_view=_view(evaluate_function("exponential", c, x), [0.0, d], cap=abs(d) + 9.0),
        zeros=zeros,
        horizontal_asymptotes=[d],
        extras={"monotonic": "increasing" if a * math.log(base) > 0 else "decreasing", "y_intercept": a + d},
    )


_LOG_BASES: dict[str, tuple[float, str]] = {
    "e": (math.e, "ln"),
    "2": (2.0, "log_2"),
    "3": (3.0, "log_3"),
    "10": (10.0, "log_10"),
    "1/2": (0.5, "log_(1/2)"),
}


def _logarithm(rng: np.random.Generator) -> FunctionAnalysis:
    key = str(_choice(rng, tuple(_LOG_BASES)))
    base, name = _LOG_BASES[key]
    a = float(_choice(rng, (0.5, 1.0, 1.0, 2.0, 3.0)) * _choice(rng, (1, 1, -1)))
    h = float(_choice(rng, (0, 0, 0, 1, -1, 2, -2)))
    d = float(_choice(rng, (0.0, 0.0, 1.0, -1.0, 2.0)))
    lo = h - float(_choice(rng, (0, 1, 2)))
    hi = h + float(_choice(rng, (5, 6, 8)))
    c = {"a": a, "base": base, "h": h, "d": d}
    zeros = _in_range([h + base ** (-d / a)], lo, hi, closed=True)
    zeros = [z for z in zeros if z > h]
    inner = "x" if h == 0 else f"x{format_signed_constant(-h)}"
    core = f"{name}({inner})"
    term = core if a == 1 else ("-" + core if a == -1 else f"{format_number(a, 3)}{core}")
    expression = "y = " + term + format_signed_constant(d)
    x = np.linspace(h + 1e-3, hi, 201)
    asymptotes = [h] if lo <= h < hi else []
    return FunctionAnalysis(
        family="logarithm",
        coefficients={**c, "base_name": key},
        expression=expression,
        label=expression.replace("-", "−"),
        x_range=(lo, hi),
        y_view=_view(evaluate_function("logarithm", c, x), [0.0], cap=abs(d) + 7.0),
        zeros=zeros,
        vertical_asymptotes=asymptotes,
        domain_min=h,
        extras={
            "monotonic": "increasing" if a / math.log(base) > 0 else "decreasing",
            "y_intercept": float(evaluate_function("logarithm", c, 0.0)) if h < 0 and lo <= 0 <= hi else None,
        },
    )


def _absolute_value(rng: np.random.Generator) -> FunctionAnalysis:
    a = float(_choice(rng, (0.5, 1.0, 1.0, 2.0, 3.0)) * _choice(rng, (1, 1, -1)))
    h = float(rng.integers(-3, 4))
    k = float(rng.integers(-4, 5))
    lo = h - float(_choice(rng, (3, 4, 5)))
    hi = h + float(_choice(rng, (3, 4, 5)))
    c = {"a": a, "h": h, "k": k}
    t = -k / a
    zeros = _in_range([h - t, h + t], lo, hi, closed=True) if t >= 0 else []
    inner = "x" if h == 0 else f"x{format_signed_constant(-h)}"
    core = f"|{inner}|"
    term = core if a == 1 else ("-" + core if a == -1 else f"{format_number(a, 3)}{core}")
    expression = "y = " + term + format_signed_constant(k)
    x = np.linspace(lo, hi, 201)
    return FunctionAnalysis(
        family="absolute_value",
        coefficients=c,
        expression=expression,
        label=expression.replace("-", "−"),
        x_range=(lo, hi),
        y_view=_view(evaluate_function("absolute_value", c, x), [0.0]),
        zeros=zeros,
        extrema=[(h, k, "min" if a > 0 else "max")],
        extras={
            "vertex": (h, k),
            "y_intercept": float(evaluate_function("absolute_value", c, 0.0)) if lo <= 0 <= hi else None,
        },
    )


#: Function family -> builder of a random :class:`FunctionAnalysis`.
FUNCTION_BUILDERS: dict[str, Callable[[np.random.Generator], FunctionAnalysis]] = {
    "polynomial": _polynomial,
    "sine": _sine,
    "cosine": _cosine,
    "tangent": _tangent,
    "exponential": _exponential,
    "logarithm": _logarithm,
    "absolute_value": _absolute_value,
}


def analyse_function(family: str, rng: np.random.Generator) -> FunctionAnalysis:
    """Draw random coefficients for ``family`` and compute its zeros, extrema and asymptotes."""
    if family not in FUNCTION_BUILDERS:
        raise UnknownNameError("function family", family, list(FUNCTION_BUILDERS))
    return FUNCTION_BUILDERS[family](rng)


# ---------------------------------------------------------------------------- drawing
def _nice_step(span: float, max_ticks: int, *, smallest: float = 1.0) -> float:
    for step in (0.25, 0.5, 1, 2, 5, 10, 20, 25, 50, 100):
        if step >= smallest and span / step <= max_ticks:
            return float(step)
    return 10.0 ** math.ceil(math.log10(span / max_ticks))


def _ticks(lo: float, hi: float, step: float, *, pi: bool) -> list[Tick]:
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    values = [k * step for k in range(first, last + 1)]
    every = 1 if len(values) <= 9 else 2
    return [Tick(v, format_x(v, pi=pi, label=True) if (first + i) % every == 0 else "") for i, v in enumerate(values)]


def _curve(analysis: FunctionAnalysis) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = analysis.x_range
    c = analysis.coefficients
    if analysis.family == "tangent":
        cuts = [lo, *analysis.vertical_asymptotes, hi]
        xs, ys = [], []
        for a, b in zip(cuts[:-1], cuts[1:]):
            eps = 1e-4 * (hi - lo)
            x = np.linspace(a + (eps if a != lo else 0.0), b - (eps if b != hi else 0.0), 160)
            xs += [x, [np.nan]]
            ys += [evaluate_function("tangent", c, x), [np.nan]]
        return np.concatenate(xs), np.concatenate(ys)
    if analysis.family == "logarithm":
        h = analysis.domain_min if analysis.domain_min is not None else lo
        start = max(lo, h)
        # geometric spacing resolves the plunge towards the asymptote
        offsets = np.geomspace(1e-4, hi - start, 300) if start == h else np.linspace(0, hi - start, 300)
        x = start + offsets
        return x, evaluate_function("logarithm", c, x)
    x = np.linspace(lo, hi, 400)
    if analysis.family == "absolute_value":
        x = np.union1d(x, [c["h"]])
    return x, evaluate_function(analysis.family, c, x)


def _plot_builder(family: str) -> Callable[[np.random.Generator, DiagramCanvas, Style], Diagram]:
    def build(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
        fa = analyse_function(family, rng)
        lo, hi = fa.x_range
        y0, y1 = fa.y_view
        if fa.pi_ticks:
            quarter = (2 * math.pi / fa.coefficients["b"]) / 4 if family != "tangent" else fa.extras["period"] / 4
            step = quarter if (hi - lo) / quarter <= 12 else 2 * quarter
        else:
            step = _nice_step(hi - lo, 12)
        xticks = _ticks(lo, hi, step, pi=fa.pi_ticks)
        yticks = _ticks(y0, y1, _nice_step(y1 - y0, 10, smallest=0.25), pi=False)
        plane = draw_coordinate_plane(canvas, style, rng, (lo, hi), (y0, y1), xticks, yticks)
        x, y = _curve(fa)
        canvas.line(x, y, color=style.curve_color, width=style.line_width * 1.1, zorder=2.5, clip=((lo, hi), (y0, y1)))
        asym_drawn = bool(rng.random() < 0.7) and bool(fa.vertical_asymptotes or fa.horizontal_asymptotes)
        if asym_drawn:
            for xa in fa.vertical_asymptotes:
                canvas.segment((xa, y0), (xa, y1), dashed=True, width=style.line_width * 0.6, color=style.accent_color)
            for ya in fa.horizontal_asymptotes:
                canvas.segment((lo, ya), (hi, ya), dashed=True, width=style.line_width * 0.6, color=style.accent_color)
        marked = bool(rng.random() < 0.35)
        if marked:
            for z in fa.zeros:
                canvas.dot((z, 0.0), color=style.curve_color)
            for xe, ye, _ in fa.extrema:
                canvas.dot((xe, ye), color=style.curve_color)
        show_expr = bool(rng.random() < 0.6)
        if show_expr:
            right = bool(rng.random() < 0.5)
            xpos = hi if right else lo
            canvas.label(
                (xpos, y1),
                fa.label,
                offset_px=(-6 if right else 6, -4),
                anchor="rt" if right else "lt",
                scale=0.9,
                color=style.curve_color,
            )
        return Diagram(facts=_facts(fa, style), meta=_meta(fa, plane, asym_drawn, marked, show_expr))

    build.__doc__ = f"Draw the graph of a random {family.replace('_', ' ')} function on a coordinate plane."
    return build


def _fx(value: float, fa: FunctionAnalysis) -> str:
    return format_x(value, pi=fa.pi_ticks)


def _facts(fa: FunctionAnalysis, style: Style) -> list[Fact]:
    facts = [Fact("func_intro", {"expr": fa.expression, "family_w": fa.family}, required=True)]
    facts.append(Fact("func_range", {"x0": _fx(fa.x_range[0], fa), "x1": _fx(fa.x_range[1], fa)}, required=True))
    if style.grid:
        facts.append(Fact("grid"))
    if not fa.zeros:
        facts.append(Fact("func_no_zeros"))
    elif len(fa.zeros) == 1:
        facts.append(Fact("func_zero_one", {"x": _fx(fa.zeros[0], fa)}))
    else:
        facts.append(Fact("func_zeros", {"xs": [_fx(z, fa) for z in fa.zeros], "n": str(len(fa.zeros))}))
    for kind in ("max", "min"):
        pts = [_format_point_x(x, y, fa) for x, y, k in fa.extrema if k == kind]
        if len(pts) == 1:
            facts.append(Fact(f"func_{kind}_one", {"pt": pts[0]}))
        elif pts:
            facts.append(Fact(f"func_{kind}_many", {"pts": pts, "n": str(len(pts))}))
    if not fa.extrema and fa.family != "polynomial":
        facts.append(Fact("func_no_extrema"))
    if fa.vertical_asymptotes:
        eqs = [f"x = {_fx(x, fa)}" for x in fa.vertical_asymptotes]
        if len(eqs) == 1:
            facts.append(Fact("func_vasym_one", {"eq": eqs[0]}))
        else:
            facts.append(Fact("func_vasym", {"eqs": eqs}))
    for ya in fa.horizontal_asymptotes:
        facts.append(Fact("func_hasym", {"eq": f"y = {format_number(ya)}"}))
    yi = fa.extras.get("y_intercept")
    if yi is not None and np.isfinite(yi):
        facts.append(Fact("func_yint", {"y": format_number(yi), "approx": not _is_exact(yi)}))
    if "period" in fa.extras:
        facts.append(Fact("func_period", {"val": format_x(fa.extras["period"], pi=True)}))
    if "amplitude" in fa.extras:
        facts.append(Fact("func_amplitude", {"val": format_number(fa.extras["amplitude"])}))
    if "monotonic" in fa.extras:
        facts.append(Fact("func_monotonic", {"dir_w": fa.extras["monotonic"]}))
    if fa.domain_min is not None:
        facts.append(Fact("func_domain", {"h": format_number(fa.domain_min)}))
    return facts


def _format_point_x(x: float, y: float, fa: FunctionAnalysis) -> str:
    """A point whose x may be a multiple of pi: ``(π/2, 3)``."""
    if fa.pi_ticks and format_pi(x) is not None:
        return f"({format_pi(x)}, {format_number(y)})"
    return format_point(x, y)


def _is_exact(v: float) -> bool:
    return abs(v - round(v, 2)) < 1e-9


def _meta(fa: FunctionAnalysis, plane: dict[str, Any], asym_drawn: bool, marked: bool, shown: bool) -> dict[str, Any]:
    return {
        "shape": "function_graph",
        "function_family": fa.family,
        "coefficients": fa.coefficients,
        "expression": fa.expression,
        "x_range": list(fa.x_range),
        "y_view": list(fa.y_view),
        "zeros": fa.zeros,
        "extrema": [{"x": x, "y": y, "kind": k} for x, y, k in fa.extrema],
        "asymptotes": {"vertical": fa.vertical_asymptotes, "horizontal": fa.horizontal_asymptotes},
        "domain_min": fa.domain_min,
        "extras": {k: (list(v) if isinstance(v, tuple) else v) for k, v in fa.extras.items()},
        "drawn": {**plane, "asymptotes": asym_drawn, "marked_points": marked, "expression_label": shown},
    }


for _family in FUNCTION_BUILDERS:
    register_diagram(f"{_family}_plot")(_plot_builder(_family))
