"""Figure painters: one function per figure type, drawing a small image and returning what it drew.

Every painter takes a seeded :class:`numpy.random.Generator`, a width and a height and returns
``(image, facts)``: an RGB :class:`PIL.Image.Image` of that size and a dict of what a caption may
say about it (``subject``, the kind of figure within its type, plus its details: the stain, the
organ, the chart kind, the protein names). :data:`PAINTERS` maps each figure type of
:mod:`~domainclip.domains.biomed.taxonomy` to its painter. Charts are drawn by matplotlib (Agg, one
reused figure per process, fixed rc settings); everything else by PIL and numpy. Text is drawn with
the DejaVu fonts matplotlib ships, so the same arguments give the same pixels on any machine with
the same library versions.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = ["PAINTERS", "Painter", "font", "jitter", "paint"]

#: A painter: ``(rng, width, height) -> (RGB image, facts)``.
Painter = Callable[[np.random.Generator, int, int], tuple[Image.Image, dict[str, Any]]]

Facts = dict[str, Any]


def _pick(rng: np.random.Generator, items: tuple[Any, ...] | list[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


@functools.lru_cache(maxsize=64)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans (bold) at ``size`` pixels, from matplotlib's bundled fonts.

    Args:
        size: the font size in pixels.
        bold: the bold face.
    """
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cell: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a coarse random grid upsampled bilinearly to ``height x width``."""
    coarse = rng.random((max(2, height // cell + 2), max(2, width // cell + 2))).astype(np.float32)
    image = Image.fromarray(coarse, mode="F").resize((width, height), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32)


def _blur(mask: Image.Image, radius: float) -> np.ndarray:
    return np.asarray(mask.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0


def _to_image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), mode="RGB")


def _scale_bar(image: Image.Image, rng: np.random.Generator, colour: tuple[int, int, int]) -> str:
    """Draw a scale bar in the lower right corner; return its length as caption text."""
    w, h = image.size
    draw = ImageDraw.Draw(image)
    length = int(w * rng.uniform(0.15, 0.25))
    y = h - max(6, h // 20)
    draw.rectangle([w - length - 8, y - 2, w - 8, y + 1], fill=colour)
    return f"{_pick(rng, (10, 20, 50, 100, 200))} \u00b5m"


# --------------------------------------------------------------------------------------------------- charts

_CHART_VARIABLES = (
    ("relative mRNA expression", "fold change"),
    ("tumour volume", "mm\u00b3"),
    ("body weight", "g"),
    ("serum IL-6", "pg/mL"),
    ("cell viability", "%"),
    ("plasma glucose", "mmol/L"),
    ("luciferase activity", "RLU"),
    ("colony number", "count"),
)
_GROUPS = ("Control", "Vehicle", "siRNA", "Drug A", "Drug B", "WT", "KO", "Low dose", "High dose", "Sham")
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#7f7f7f", "#000000", "#17becf")
_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 7,
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.2,
    "xtick.labelsize": 6,
    "ytick.labelsize": 6,
    "legend.fontsize": 6,
    "legend.frameon": False,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "text.antialiased": True,
    "path.simplify": True,
}
_DPI = 100


@functools.lru_cache(maxsize=1)
def _chart_figure() -> Any:
    """The one matplotlib figure this process draws charts on (Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def _bar(ax: Any, rng: np.random.Generator, facts: Facts) -> None:
    k = int(rng.integers(2, 6))
    groups = list(rng.choice(_GROUPS, size=k, replace=False))
    means = rng.uniform(0.5, 3.0, k)
    errors = means * rng.uniform(0.05, 0.25, k)
    colours = [_PALETTE[i % len(_PALETTE)] for i in range(k)] if rng.random() < 0.6 else ["#7f7f7f"] * k
    ax.bar(range(k), means, yerr=errors, color=colours, capsize=2, width=0.65, edgecolor="black", linewidth=0.5)
    ax.set_xticks(range(k), groups, rotation=30 if k > 3 else 0)
    top = float((means + errors).max())
    for i in range(1, k):
        if rng.random() < 0.4:
            ax.text(i, means[i] + errors[i] + 0.05 * top, _pick(rng, ("*", "**", "***", "ns")), ha="center")
    ax.set_ylim(0, top * 1.25)
    facts.update(groups=groups)


def _line(ax: Any, rng: np.random.Generator, facts: Facts) -> None:
    points = int(rng.integers(5, 10))
    x = np.arange(points) * _pick(rng, (1, 2, 4, 6, 12))
    k = int(rng.integers(2, 4))
    groups = list(rng.choice(_GROUPS, size=k, replace=False))
    for i in range(k):
        y = np.cumsum(rng.normal(rng.uniform(-0.3, 0.6), 0.3, points)) + 3
        ax.errorbar(x, y, yerr=rng.uniform(0.1, 0.4, points), marker=_pick(rng, ("o", "s", "^")), markersize=3,
                    capsize=1.5, color=_PALETTE[i], label=groups[i])
    ax.legend(loc="best")
    ax.set_xlabel(_pick(rng, ("Time (h)", "Days", "Weeks after treatment", "Time (min)")))
    facts.update(groups=groups)


def _scatter(ax: Any, rng: np.random.Generator, facts: Facts) -> None:
    m = int(rng.integers(25, 120))
    x = rng.normal(0, 1, m)
    slope = float(rng.uniform(-1.2, 1.2))
    y = slope * x + rng.normal(0, 0.6, m)
    ax.scatter(x, y, s=6, color=_pick(rng, _PALETTE), alpha=0.8, linewidths=0)
    fit = np.polyfit(x, y, 1)
    xs = np.array([x.min(), x.max()])
    ax.plot(xs, np.polyval(fit, xs), color="black", linewidth=1)
    r = float(np.corrcoef(x, y)[0, 1])
    ax.text(0.05, 0.92, f"r = {r:.2f}", transform=ax.transAxes)
    ax.set_xlabel(_pick(rng, ("Age (years)", "BMI (kg/m\u00b2)", "log2 expression", "Baseline score")))
    facts.update(r=round(r, 2), points=m)


def _box(ax: Any, rng: np.random.Generator, facts: Facts) -> None:
    k = int(rng.integers(2, 5))
    groups = list(rng.choice(_GROUPS, size=k, replace=False))
    data = [rng.normal(rng.uniform(1, 4), rng.uniform(0.3, 1.0), int(rng.integers(10, 40))) for _ in range(k)]
    ax.boxplot(data, widths=0.5, showfliers=False)
    for i, values in enumerate(data):
        ax.scatter(i + 1 + rng.uniform(-0.12, 0.12, len(values)), values, s=3, color=_PALETTE[i], zorder=3)
    ax.set_xticks(range(1, k + 1), groups)
    facts.update(groups=groups)


def _survival(ax: Any, rng: np.random.Generator, facts: Facts) -> None:
    k = int(rng.integers(2, 4))
    groups = list(rng.choice(("High expression", "Low expression", "Treated", "Placebo", "Stage I-II",
                              "Stage III-IV"), size=k, replace=False))
    for i in range(k):
        m = int(rng.integers(20, 60))
        times = np.sort(rng.exponential(rng.uniform(15, 60), m))
        events = rng.random(m) < 0.75
        at_risk = m - np.arange(m)
        survival = np.cumprod(np.where(events, 1 - 1 / at_risk, 1.0))
        ax.step(np.r_[0, times], np.r_[1, survival], where="post", color=_PALETTE[i], label=groups[i])
        ax.plot(times[~events], survival[~events], "|", color=_PALETTE[i], markersize=4)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(_pick(rng, ("Months", "Time (months)", "Days", "Follow-up (years)")))
    ax.set_ylabel(_pick(rng, ("Survival probability", "Overall survival", "Disease-free survival")))
    p = float(rng.choice([0.001, 0.004, 0.01, 0.03, 0.12, 0.35]))
    ax.text(0.55, 0.9, f"log-rank p = {p}", transform=ax.transAxes)
    ax.legend(loc="lower left")
    facts.update(groups=groups, p=p)


_CHART_KINDS: dict[str, Callable[[Any, np.random.Generator, Facts], None]] = {
    "bar chart": _bar,
    "line plot": _line,
    "scatter plot": _scatter,
    "box plot": _box,
    "survival curve": _survival,
}


def paint_chart(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, Facts]:
    """A bar, line, scatter, box or Kaplan-Meier chart drawn with matplotlib."""
    import matplotlib

    kind = _pick(rng, tuple(_CHART_KINDS))
    variable, unit = _pick(rng, _CHART_VARIABLES)
    facts: Facts = {"subject": kind, "variable": variable}
    with matplotlib.rc_context(_RC):
        figure = _chart_figure()
        figure.clear()
        figure.set_size_inches(width / _DPI, height / _DPI)
        left, bottom = rng.uniform(0.13, 0.24), rng.uniform(0.14, 0.24)
        ax = figure.add_axes((left, bottom, 1 - left - rng.uniform(0.02, 0.08), 1 - bottom - rng.uniform(0.03, 0.12)))
        ax.locator_params(nbins=4)
        style = _pick(rng, ("plain", "plain", "grey panel", "boxed", "grid"))
        if style == "grey panel":  # the ggplot2 look
            ax.set_facecolor("#EBEBEB")
            ax.grid(color="white", linewidth=0.8)
            for spine in ax.spines.values():
                spine.set_visible(False)
        elif style == "boxed":
            ax.spines["top"].set_visible(True)
            ax.spines["right"].set_visible(True)
        elif style == "grid":
            ax.grid(axis="y", color="#cccccc", linewidth=0.5)
        ax.set_axisbelow(True)
        facts["style"] = style
        _CHART_KINDS[kind](ax, rng, facts)
        if kind != "survival curve":
            ax.set_ylabel(f"{variable.capitalize()} ({unit})" if len(variable) < 18 else unit)
        figure.canvas.draw()
        pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    return Image.fromarray(pixels, mode="RGB"), facts


# ----------------------------------------------------------------------------------------------- microscopy

_FLUORESCENCE_STAINS = (
    ("DAPI", "phalloidin"), ("DAPI", "GFP"), ("Hoechst", "anti-tubulin"), ("DAPI", "Ki-67"), ("DAPI", "LC3"),
)
_TISSUES = ("liver", "kidney", "lung", "colon", "skin", "breast tumour", "lymph node", "brain cortex", "heart")
_IHC_MARKERS = ("Ki-67", "CD3", "CD68", "p53", "HER2", "PD-L1", "cytokeratin")


def _nuclei(rng: np.random.Generator, width: int, height: int, count: int, radius: float,
            scale: float = 1.0) -> tuple[Image.Image, list[tuple[float, float, float, float]]]:
    """A mask of ``count`` filled ellipses (nuclei) and their centres and radii."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    cells = []
    for _ in range(count):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        rx = radius * rng.uniform(0.7, 1.3) * scale
        ry = rx * rng.uniform(0.6, 1.0)
        draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=int(rng.integers(150, 256)))
        cells.append((x, y, rx, ry))
    return mask, cells


def _fluorescence(rng: np.random.Generator, w: int, h: int, facts: Facts) -> Image.Image:
    count = int(rng.integers(12, 45))
    radius = min(w, h) * rng.uniform(0.025, 0.05)
    nuclei_mask, cells = _nuclei(rng, w, h, count, radius)
    cyto = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(cyto)
    for x, y, rx, _ in cells:
        r = rx * rng.uniform(1.8, 3.0)
        draw.ellipse([x - r, y - r * rng.uniform(0.6, 1.0), x + r, y + r], fill=int(rng.integers(60, 200)))
    nuclei = _blur(nuclei_mask, 1.2)
    cytoplasm = _blur(cyto, 3.0) * (0.6 + 0.8 * _smooth_noise(rng, w, h, 6))
    colour = _pick(rng, ((0.0, 1.0, 0.0), (1.0, 0.1, 0.1), (1.0, 0.0, 1.0), (1.0, 0.8, 0.0)))
    rgb = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        rgb[..., c] = 235 * cytoplasm * colour[c]
    rgb[..., 2] += 255 * nuclei
    rgb += rng.normal(0, 6, rgb.shape).astype(np.float32)
    image = _to_image(rgb)
    nuclear, other = _pick(rng, _FLUORESCENCE_STAINS)
    facts.update(stain=f"{nuclear} (blue) and {other}", nuclear_stain=nuclear, marker=other,
                 colour={(0.0, 1.0, 0.0): "green", (1.0, 0.1, 0.1): "red", (1.0, 0.0, 1.0): "magenta",
                         (1.0, 0.8, 0.0): "yellow"}[colour],
                 cell_line=_pick(rng, ("HeLa", "HEK293T", "MCF-7", "A549", "primary fibroblasts", "HUVEC")))
    facts["scale_bar"] = _scale_bar(image, rng, (255, 255, 255))
    return image


def _brightfield(rng: np.random.Generator, w: int, h: int, facts: Facts, ihc: bool) -> Image.Image:
    tissue = _smooth_noise(rng, w, h, 24)
    texture = _smooth_noise(rng, w, h, 4)
    if ihc:
        background = np.array([236, 230, 222], np.float32)
        matrix = np.array([205, 190, 185], np.float32)
        nucleus = np.array([95, 95, 150], np.float32)
    else:
        background = np.array([245, 235, 240], np.float32)
        matrix = np.array([228, 140, 180], np.float32) + rng.uniform(-15, 15, 3).astype(np.float32)
        nucleus = np.array([80, 45, 125], np.float32)
    amount = np.clip((tissue - 0.25) * 2.5, 0, 1)[..., None] * (0.65 + 0.35 * texture[..., None])
    rgb = background * (1 - amount) + matrix * amount
    count = int(w * h / rng.uniform(250, 600))
    mask, cells = _nuclei(rng, w, h, count, min(w, h) * rng.uniform(0.012, 0.022))
    nuclei = _blur(mask, 0.8)[..., None] * np.clip(amount * 1.6, 0, 1)
    rgb = rgb * (1 - nuclei) + nucleus * nuclei
    if ihc:
        positive = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(positive)
        share = rng.uniform(0.15, 0.6)
        for x, y, rx, _ in cells:
            if rng.random() < share:
                r = rx * rng.uniform(1.0, 2.2)
                draw.ellipse([x - r, y - r, x + r, y + r], fill=int(rng.integers(120, 230)))
        brown = _blur(positive, 1.0)[..., None] * np.clip(amount * 1.6, 0, 1)
        rgb = rgb * (1 - brown) + np.array([130, 80, 35], np.float32) * brown
        facts.update(stain=f"{_pick(rng, _IHC_MARKERS)} immunohistochemistry (DAB)", positive_share=round(share, 2))
    else:
        facts.update(stain="haematoxylin and eosin (H&E)")
    rgb += rng.normal(0, 4, rgb.shape).astype(np.float32)
    image = _to_image(rgb)
    facts.update(tissue=_pick(rng, _TISSUES), magnification=_pick(rng, ("x10", "x20", "x40", "x100")))
    facts["scale_bar"] = _scale_bar(image, rng, (0, 0, 0))
    return image


def _electron(rng: np.random.Generator, w: int, h: int, facts: Facts) -> Image.Image:
    grey = 150 + 40 * _smooth_noise(rng, w, h, 20) + 25 * _smooth_noise(rng, w, h, 3)
    image = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8), mode="L")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 10))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(8, 26), rng.uniform(5, 14)
        draw.ellipse([x - rx, y - ry, x + rx, y + ry], outline=int(rng.integers(30, 70)), width=2,
                     fill=int(rng.integers(90, 130)))
        for k in range(int(rx // 4)):  # cristae of a mitochondrion
            cx = x - rx + 4 + 4 * k
            draw.line([cx, y - ry * 0.7, cx + rng.uniform(-2, 2), y + ry * 0.7], fill=60, width=1)
    for _ in range(int(rng.integers(1, 3))):  # membranes
        y0 = rng.uniform(0, h)
        period = rng.uniform(25, 60)
        points = [(x, y0 + 8 * math.sin(x / period)) for x in range(0, w + 4, 4)]
        draw.line(points, fill=40, width=2)
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(0.7)), np.float32)
    pixels = pixels + rng.normal(0, 9, pixels.shape)
    out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L").convert("RGB")
    facts.update(stain="uranyl acetate and lead citrate", organelle=_pick(rng, ("mitochondria", "membranes",
                                                                               "autophagosomes")),
                 tissue=_pick(rng, _TISSUES))
    facts["scale_bar"] = _scale_bar(out, rng, (0, 0, 0)).replace("\u00b5m", "nm")
    return out


def paint_microscopy(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, Facts]:
    """Fluorescence cells on black, H&E or IHC (DAB) tissue, or a grey electron micrograph."""
    subject = _pick(rng, ("fluorescence", "fluorescence", "H&E", "IHC", "electron"))
    facts: Facts = {"subject": subject}
    if subject == "fluorescence":
        image = _fluorescence(rng, width, height, facts)
    elif subject == "electron":
        image = _electron(rng, width, height, facts)
    else:
        image = _brightfield(rng, width, height, facts, ihc=subject == "IHC")
    return image, facts


# ----------------------------------------------------------------------------------------- clinical imaging


def jitter(
    image: Image.Image,
    rng: np.random.Generator,
    fill: int | tuple[int, ...],
    *,
    zoom: tuple[float, float] = (0.8, 1.25),
    shift: float = 0.12,
    angle: float = 8.0,
) -> Image.Image:
    """Zoom, shift and rotate ``image`` about its centre by random amounts (what is uncovered takes ``fill``).

    Templated drawings (a chest, an abdomen, a flowchart) differ between figures this way, as scans
    of two patients or two published layouts do, so that unrelated figures are not near duplicates.

    Args:
        image: the picture.
        rng: the generator the amounts are drawn from.
        fill: colour of uncovered pixels.
        zoom: range of the scale factor.
        shift: largest shift as a share of each side.
        angle: largest rotation in degrees.
    """
    w, h = image.size
    z = float(rng.uniform(*zoom))
    theta = math.radians(float(rng.uniform(-angle, angle)))
    tx, ty = float(rng.uniform(-shift, shift)) * w, float(rng.uniform(-shift, shift)) * h
    cos, sin = math.cos(theta) / z, math.sin(theta) / z
    cx, cy = w / 2, h / 2
    matrix = (cos, sin, cx - cos * (cx + tx) - sin * (cy + ty), -sin, cos, cy + sin * (cx + tx) - cos * (cy + ty))
    return image.transform((w, h), Image.AFFINE, matrix, resample=Image.BILINEAR, fillcolor=fill)


def _grey(pixels: np.ndarray, rng: np.random.Generator, noise: float, blur: float = 1.0) -> Image.Image:
    """Finish a drawn scan: pose (zoom, shift, rotation), window and gamma, uneven exposure, blur and noise."""
    image = jitter(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L"), rng, 0)
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    h, w = image.height, image.width
    values = np.asarray(image, np.float32) / 255
    values = values ** float(rng.uniform(0.7, 1.4))  # window and gamma differ between scanners and exports
    ramp = np.linspace(-1, 1, w, dtype=np.float32)[None, :] * rng.uniform(-0.2, 0.2) \
        + np.linspace(-1, 1, h, dtype=np.float32)[:, None] * rng.uniform(-0.2, 0.2)
    values = values * float(rng.uniform(0.75, 1.25)) * (1 + ramp) * 255 + float(rng.uniform(-25, 25))
    values += rng.normal(0, noise, (h, w))
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), mode="L").convert("RGB")


def _chest_xray(rng: np.random.Generator, w: int, h: int, facts: Facts) -> Image.Image:
    image = Image.new("L", (w, h), int(rng.integers(5, 25)))
    draw = ImageDraw.Draw(image)
    top, bottom = rng.uniform(0.12, 0.24) * h, rng.uniform(0.8, 0.95) * h
    draw.ellipse([-0.05 * w, top - 0.05 * h, 1.05 * w, 1.3 * h], fill=int(rng.integers(105, 135)))  # soft tissue
    half = rng.uniform(0.12, 0.19) * w
    for side in (-1, 1):  # lung fields
        cx = w / 2 + side * w * rng.uniform(0.17, 0.24)
        draw.ellipse([cx - half * rng.uniform(0.85, 1.15), top + rng.uniform(0, 0.05) * h, cx + half,
                      bottom - rng.uniform(0, 0.08) * h], fill=int(rng.integers(30, 65)))
    spine = rng.uniform(0.04, 0.06) * w
    draw.rectangle([w / 2 - spine, 0.1 * h, w / 2 + spine, h], fill=int(rng.integers(160, 205)))  # spine, mediastinum
    heart = rng.uniform(0.1, 0.16) * w
    hx, hy = w / 2 + rng.uniform(0.02, 0.08) * w, rng.uniform(0.62, 0.72) * h
    draw.ellipse([hx - heart, hy - heart * 0.9, hx + heart, hy + heart * 0.9], fill=int(rng.integers(145, 185)))
    ribs = int(rng.integers(6, 11))
    for k in range(ribs):  # ribs
        y = top + (k + 0.3) * (bottom - top) / ribs
        for side in (-1, 1):
            x0 = w / 2 if side > 0 else 0.1 * w
            draw.arc([x0, y, x0 + 0.4 * w, y + rng.uniform(0.08, 0.14) * h], 180 if side > 0 else 0,
                     360 if side > 0 else 180, fill=int(rng.integers(75, 110)), width=max(2, h // 80))
    draw.line([0.15 * w, top, 0.45 * w, top + 0.04 * h], fill=190, width=max(2, h // 60))  # clavicles
    draw.line([0.55 * w, top + 0.04 * h, 0.85 * w, top], fill=190, width=max(2, h // 60))
    for _ in range(int(rng.integers(0, 3))):  # opacities
        x, y = rng.uniform(0.25, 0.75) * w, rng.uniform(0.35, 0.75) * h
        r = rng.uniform(0.03, 0.09) * w
        draw.ellipse([x - r, y - r * 0.8, x + r, y + r * 0.8], fill=int(rng.integers(110, 160)))
    draw.text((rng.uniform(0.03, 0.85) * w, 0.04 * h), _pick(rng, ("R", "L", "PA")), fill=230,
              font=font(max(9, h // 16), True))
    facts.update(modality="X-ray", organ="chest", view=_pick(rng, ("posteroanterior", "anteroposterior")),
                 finding=_pick(rng, ("consolidation in the right lower lobe", "bilateral infiltrates",
                                     "a pleural effusion", "no acute abnormality", "a nodular opacity")))
    return _grey(np.asarray(image, np.float32), rng, 5, blur=2.0)


def _ct(rng: np.random.Generator, w: int, h: int, facts: Facts) -> Image.Image:
    image = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(image)
    bw, bh = rng.uniform(0.36, 0.46) * w, rng.uniform(0.26, 0.36) * h  # body half-axes
    cy = rng.uniform(0.48, 0.56) * h
    draw.ellipse([w / 2 - bw, cy - bh, w / 2 + bw, cy + bh], fill=int(rng.integers(60, 95)))  # fat
    fat = rng.uniform(0.03, 0.08)
    draw.ellipse([w / 2 - bw * (1 - fat), cy - bh * (1 - fat), w / 2 + bw * (1 - fat), cy + bh * (1 - fat)],
                 fill=int(rng.integers(95, 125)))  # muscle and organs
    lx, ly, lr = rng.uniform(0.25, 0.4) * w, cy - rng.uniform(0.0, 0.12) * h, rng.uniform(0.1, 0.2) * w
    draw.ellipse([lx - lr, ly - lr * 0.9, lx + lr, ly + lr * 0.9], fill=int(rng.integers(120, 150)))  # liver
    for side in (-1, 1):
        x = w / 2 + side * rng.uniform(0.15, 0.24) * w
        y = cy + rng.uniform(0.05, 0.14) * h
        draw.ellipse([x - 0.05 * w, y - 0.07 * h, x + 0.05 * w, y + 0.07 * h], fill=int(rng.integers(135, 170)))
    draw.ellipse([0.44 * w, 0.62 * h, 0.56 * w, 0.76 * h], fill=235)  # vertebral body
    draw.ellipse([0.475 * w, 0.5 * h, 0.525 * w, 0.56 * h], fill=200)  # aorta, contrast
    for _ in range(int(rng.integers(2, 6))):  # bowel gas
        x, y = rng.uniform(0.45, 0.8) * w, rng.uniform(0.3, 0.55) * h
        r = rng.uniform(0.02, 0.05) * w
        draw.ellipse([x - r, y - r, x + r, y + r], fill=10)
    draw.arc([0.05 * w, 0.8 * h, 0.95 * w, 1.0 * h], 200, 340, fill=120, width=2)  # table
    facts.update(modality="CT", organ=_pick(rng, ("abdomen", "upper abdomen", "liver and kidneys")),
                 view="axial", finding=_pick(rng, ("a hypodense hepatic lesion", "renal cysts", "no free fluid",
                                                   "a retroperitoneal mass")))
    return _grey(np.asarray(image, np.float32), rng, 7, blur=1.0)


def _mri(rng: np.random.Generator, w: int, h: int, facts: Facts) -> Image.Image:
    image = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(image)
    hw, hh = rng.uniform(0.28, 0.4) * w, rng.uniform(0.36, 0.46) * h  # head half-axes
    for k, fill in enumerate((int(rng.integers(170, 210)), 20, int(rng.integers(95, 120)))):  # scalp, skull, brain
        m = 1 - 0.05 * k
        draw.ellipse([w / 2 - hw * m, h / 2 - hh * m, w / 2 + hw * m, h / 2 + hh * m], fill=fill)
    pixels = np.asarray(image, np.float32).copy()
    folds = _smooth_noise(rng, w, h, 5)
    brain = pixels > 80
    pixels[brain & (folds > 0.62)] += 60  # cortex folds, CSF
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")
    draw = ImageDraw.Draw(image)
    for side in (-1, 1):  # lateral ventricles
        x = w / 2 + side * 0.05 * w
        draw.ellipse([x - 0.035 * w, 0.35 * h, x + 0.035 * w, 0.62 * h], fill=230)
    if rng.random() < 0.6:  # a lesion
        x, y = rng.uniform(0.3, 0.7) * w, rng.uniform(0.25, 0.75) * h
        r = rng.uniform(0.04, 0.09) * w
        draw.ellipse([x - r, y - r, x + r, y + r], fill=int(rng.integers(190, 250)))
    facts.update(modality="MRI", organ="brain", view="axial",
                 sequence=_pick(rng, ("T2-weighted", "FLAIR", "T1-weighted contrast-enhanced")),
                 finding=_pick(rng, ("a hyperintense lesion", "periventricular white matter changes",
                                     "a ring-enhancing mass", "no abnormality")))
    return _grey(np.asarray(image, np.float32), rng, 6, blur=1.2)


def _ultrasound(rng: np.random.Generator, w: int, h: int, facts: Facts) -> Image.Image:
    sector = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(sector)
    spread = float(rng.uniform(22, 40))
    draw.pieslice([-0.4 * w, -0.85 * h, 1.4 * w, rng.uniform(0.85, 1.1) * h], 90 - spread, 90 + spread, fill=255)
    speckle = rng.exponential(1.0, (h, w)).astype(np.float32)
    speckle = np.asarray(Image.fromarray(np.clip(speckle * 60, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(0.8)), np.float32)
    depth = np.linspace(1.2, 0.5, h, dtype=np.float32)[:, None]
    pixels = speckle * depth * (0.7 + 0.6 * _smooth_noise(rng, w, h, 30))
    x, y = rng.uniform(0.35, 0.65) * w, rng.uniform(0.4, 0.7) * h
    rx, ry = rng.uniform(0.07, 0.15) * w, rng.uniform(0.05, 0.1) * h
    yy, xx = np.mgrid[:h, :w]
    pixels[((xx - x) / rx) ** 2 + ((yy - y) / ry) ** 2 < 1] *= 0.15  # an anechoic structure
    pixels *= np.asarray(sector, np.float32) / 255
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")
    draw = ImageDraw.Draw(image)
    for k in range(1, 6):  # depth marks
        draw.line([w - 6, k * h / 6, w - 2, k * h / 6], fill=200)
    draw.text((4, 3), f"{_pick(rng, (3.5, 5, 7.5))} MHz", fill=200, font=font(max(8, h // 22)))
    facts.update(modality="ultrasound", organ=_pick(rng, ("liver", "thyroid", "kidney", "gallbladder", "uterus")),
                 view=_pick(rng, ("longitudinal", "transverse")),
                 finding=_pick(rng, ("an anechoic cyst", "a hypoechoic nodule", "a dilated duct")))
    return jitter(image, rng, 0, zoom=(0.85, 1.2), shift=0.1, angle=4.0).convert("RGB")


_CLINICAL: dict[str, Callable[[np.random.Generator, int, int, Facts], Image.Image]] = {
    "chest X-ray": _chest_xray, "CT": _ct, "MRI": _mri, "ultrasound": _ultrasound,
}


def paint_clinical_imaging(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, Facts]:
    """A chest radiograph, an axial abdominal CT slice, an axial brain MRI or an ultrasound sector."""
    subject = _pick(rng, tuple(_CLINICAL))
    facts: Facts = {"subject": subject}
    return _CLINICAL[subject](rng, width, height, facts), facts


# ------------------------------------------------------------------------------------------------ gels, blots

_PROTEINS = (("p-ERK", 42), ("ERK", 44), ("p53", 53), ("GAPDH", 37), ("\u03b2-actin", 42), ("Bcl-2", 26),
             ("cleaved caspase-3", 17), ("LC3-II", 14), ("HIF-1\u03b1", 120), ("\u03b1-tubulin", 50), ("AKT", 60))


def _band(rgb: np.ndarray, x0: float, x1: float, y: float, thick: float, strength: float, colour: np.ndarray,
          on_dark: bool) -> None:
    h = rgb.shape[0]
    ys = np.arange(h, dtype=np.float32)
    profile = np.exp(-0.5 * ((ys - y) / max(thick, 0.8)) ** 2)[:, None] * strength
    a, b = int(max(0, x0)), int(min(rgb.shape[1], x1))
    xs = np.linspace(-1, 1, max(1, b - a), dtype=np.float32)
    across = np.clip(1.3 - np.abs(xs) ** 4, 0, 1)[None, :]
    alpha = np.clip(profile * across, 0, 1)[..., None]
    if on_dark:
        rgb[:, a:b] = rgb[:, a:b] + alpha * colour
    else:
        rgb[:, a:b] = rgb[:, a:b] * (1 - alpha) + alpha * colour


def _western(rng: np.random.Generator, w: int, h: int, facts: Facts) -> Image.Image:
    lanes = int(rng.integers(4, 9))
    rows = int(rng.integers(2, 4))
    proteins = [_PROTEINS[i] for i in rng.choice(len(_PROTEINS), size=rows, replace=False)]
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    left, right, top = int(w * 0.3), int(w * 0.95), int(h * 0.16)
    strip = (h - top - 6) / rows
    f = font(max(8, min(12, h // 18)))
    lane_w = (right - left) / lanes
    treatment = rng.random(lanes) < 0.5
    for lane in range(lanes):
        draw.text((left + lane * lane_w + lane_w / 2 - 3, top - 14), "+" if treatment[lane] else "\u2013",
                  fill="black", font=f)
    for r, (name, kda) in enumerate(proteins):
        y0 = int(top + r * strip + 3)
        y1 = int(top + (r + 1) * strip - 3)
        tone = float(rng.uniform(215, 240))
        panel = np.full((y1 - y0, right - left, 3), tone, np.float32)
        panel += 12 * (_smooth_noise(rng, right - left, y1 - y0, 12)[..., None] - 0.5)
        for lane in range(lanes):
            strength = rng.uniform(0.3, 1.0) if name not in ("GAPDH", "\u03b2-actin", "\u03b1-tubulin") else 0.9
            _band(panel, lane * lane_w + 2, (lane + 1) * lane_w - 2, panel.shape[0] / 2 + rng.normal(0, 0.7),
                  panel.shape[0] * rng.uniform(0.08, 0.14), strength, np.array([25, 25, 25], np.float32), False)
        panel += rng.normal(0, 3, panel.shape)
        image.paste(_to_image(panel), (left, y0))
        draw.rectangle([left, y0, right - 1, y1 - 1], outline=(120, 120, 120))
        draw.text((4, (y0 + y1) / 2 - 6), name, fill="black", font=f)
        draw.text((right - left + left + 1, (y0 + y1) / 2 - 6), "", fill="black", font=f)
        facts.setdefault("kda", []).append(kda)
    facts.update(proteins=[p for p, _ in proteins], lanes=lanes, assay="western blot")
    return image


def _agarose(rng: np.random.Generator, w: int, h: int, facts: Facts) -> Image.Image:
    lanes = int(rng.integers(5, 12))
    rgb = np.full((h, w, 3), 12, np.float32) + 10 * _smooth_noise(rng, w, h, 20)[..., None]
    lane_w = w / (lanes + 0.5)
    colour = np.array([235, 235, 235], np.float32) if rng.random() < 0.6 else np.array([255, 150, 200], np.float32)
    top = 0.1 * h
    for lane in range(lanes):
        x0 = 0.25 * lane_w + lane * lane_w + 2
        x1 = x0 + lane_w - 4
        rgb[int(top - 4):int(top), int(x0):int(x1)] = 60  # well
        if lane == 0:
            for k in range(8):  # the ladder
                _band(rgb, x0, x1, top + (0.08 + 0.1 * k) * h, 1.2, 0.6, colour, True)
        else:
            for _ in range(int(rng.integers(0, 3))):
                _band(rgb, x0, x1, top + rng.uniform(0.15, 0.8) * h, rng.uniform(1.2, 2.5), rng.uniform(0.4, 1.0),
                      colour, True)
    rgb += rng.normal(0, 4, rgb.shape)
    image = _to_image(rgb)
    facts.update(assay="agarose gel", stain=_pick(rng, ("ethidium bromide", "SYBR Safe", "GelRed")), lanes=lanes,
                 product=_pick(rng, ("PCR products", "RT-PCR products", "genotyping PCR", "plasmid digests")))
    return image


def _coomassie(rng: np.random.Generator, w: int, h: int, facts: Facts) -> Image.Image:
    lanes = int(rng.integers(4, 10))
    rgb = np.full((h, w, 3), (228, 232, 240), np.float32) + 8 * _smooth_noise(rng, w, h, 16)[..., None]
    lane_w = w / (lanes + 0.5)
    blue = np.array([35, 45, 140], np.float32)
    for lane in range(lanes):
        x0 = 0.25 * lane_w + lane * lane_w + 2
        x1 = x0 + lane_w - 4
        count = 7 if lane == 0 else int(rng.integers(3, 12))
        for k in range(count):
            y = (0.1 + 0.11 * k) * h if lane == 0 else rng.uniform(0.08, 0.92) * h
            _band(rgb, x0, x1, y, rng.uniform(1.0, 2.5), rng.uniform(0.2, 0.8), blue, False)
    rgb += rng.normal(0, 3, rgb.shape)
    facts.update(assay="SDS-PAGE", stain="Coomassie blue", lanes=lanes,
                 product=_pick(rng, ("purified recombinant protein", "cell lysates", "fractions of the purification")))
    return _to_image(rgb)


def paint_gel_blot(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, Facts]:
    """A western blot (grey bands on strips, protein names), an agarose gel on black or a Coomassie gel."""
    subject = _pick(rng, ("western blot", "western blot", "agarose gel", "SDS-PAGE"))
    facts: Facts = {"subject": subject}
    painter = {"western blot": _western, "agarose gel": _agarose, "SDS-PAGE": _coomassie}[subject]
    fill = {"western blot": (255, 255, 255), "agarose gel": (12, 12, 12), "SDS-PAGE": (228, 232, 240)}[subject]
    return jitter(painter(rng, width, height, facts), rng, fill, zoom=(0.8, 1.0), shift=0.08, angle=2.0), facts


# --------------------------------------------------------------------------------------------------- diagrams

_FLOW_STEPS = ("Assessed for eligibility", "Randomised", "Allocated to intervention", "Allocated to control",
               "Lost to follow-up", "Analysed", "Screened", "Enrolled", "Baseline visit", "Follow-up")
_PATHWAY = (("EGFR", "RAS", "RAF", "MEK", "ERK"), ("TNF", "TNFR1", "IKK", "NF-\u03baB"),
            ("Insulin", "IR", "PI3K", "AKT", "mTOR"), ("Wnt", "Frizzled", "\u03b2-catenin", "TCF"),
            ("LPS", "TLR4", "MyD88", "IRAK", "NF-\u03baB"))
_FILLS = ((198, 219, 239), (253, 208, 162), (199, 233, 192), (218, 218, 235), (255, 255, 204), (240, 240, 240))


def _arrow(draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], width: int,
           head: float, inhibit: bool = False) -> None:
    draw.line([start, end], fill="black", width=width)
    angle = math.atan2(end[1] - start[1], end[0] - start[0])
    if inhibit:
        dx, dy = -math.sin(angle) * head, math.cos(angle) * head
        draw.line([(end[0] - dx, end[1] - dy), (end[0] + dx, end[1] + dy)], fill="black", width=width + 1)
        return
    left = (end[0] - head * math.cos(angle - 0.45), end[1] - head * math.sin(angle - 0.45))
    right = (end[0] - head * math.cos(angle + 0.45), end[1] - head * math.sin(angle + 0.45))
    draw.polygon([end, left, right], fill="black")


def _box_text(draw: ImageDraw.ImageDraw, box: list[float], text: str, f: ImageFont.FreeTypeFont,
              fill: tuple[int, int, int], rounded: bool) -> None:
    if rounded:
        draw.rounded_rectangle(box, radius=6, fill=fill, outline="black", width=1)
    else:
        draw.rectangle(box, fill=fill, outline="black", width=1)
    draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), text, fill="black", font=f, anchor="mm")


def _flowchart(rng: np.random.Generator, w: int, h: int, facts: Facts) -> Image.Image:
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    steps = int(rng.integers(3, 6))
    f = font(max(7, min(11, w // 30)))
    fill = _pick(rng, _FILLS)
    names = [str(s) for s in rng.choice(_FLOW_STEPS, size=steps, replace=False)]
    box_h = h / (steps * 1.6)
    counts = np.sort(rng.integers(20, 600, steps))[::-1]
    left, width = rng.uniform(0.03, 0.18), rng.uniform(0.4, 0.52)
    centres = []
    for k in range(steps):
        y0 = h * 0.04 + k * box_h * 1.6
        box = [w * left, y0, w * (left + width), y0 + box_h]
        _box_text(draw, box, f"{names[k]} (n = {counts[k]})", f, fill, rng.random() < 0.4)
        centres.append(((box[0] + box[2]) / 2, box[1], box[3]))
        if rng.random() < 0.4 and k < steps - 1:  # an exclusion box
            side = [w * (left + width + 0.06), y0 + box_h * 0.9, w * 0.99, y0 + box_h * 1.5]
            _box_text(draw, side, f"Excluded (n = {int(rng.integers(2, 40))})", f, (255, 255, 255), False)
            _arrow(draw, (w * (left + width / 2), y0 + box_h * 1.2), (side[0], y0 + box_h * 1.2), 1, 5)
    for (x, _, bottom), (_, top, _) in zip(centres, centres[1:]):
        _arrow(draw, (x, bottom), (x, top), 1, 6)
    facts.update(steps=names, study=_pick(rng, ("randomised controlled trial", "cohort study",
                                               "retrospective case series", "screening programme")))
    return jitter(image, rng, (255, 255, 255), zoom=(0.8, 1.0), shift=0.08, angle=0.0)


def _pathway(rng: np.random.Generator, w: int, h: int, facts: Facts) -> Image.Image:
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    nodes = list(_pick(rng, _PATHWAY))
    f = font(max(8, min(12, w // 24)), bold=rng.random() < 0.5)
    if rng.random() < 0.5:  # a membrane band
        band = rng.uniform(0.1, 0.3)
        draw.rectangle([0, h * band, w, h * (band + 0.06)], fill=(250, 225, 150))
    positions = []
    centre, swing = rng.uniform(0.35, 0.6), rng.uniform(0.05, 0.22)
    phase = int(rng.integers(2))
    for k, _ in enumerate(nodes):
        x = w * (centre + swing * (1 if (k + phase) % 2 else -1)) + rng.uniform(-0.05, 0.05) * w
        y = h * (0.1 + 0.8 * k / max(1, len(nodes) - 1))
        positions.append((x, y))
    rx, ry = w * 0.14, h * 0.06
    for (x0, y0), (x1, y1) in zip(positions, positions[1:]):
        d = math.hypot(x1 - x0, y1 - y0) or 1
        _arrow(draw, (x0 + (x1 - x0) * ry * 1.1 / d, y0 + (y1 - y0) * ry * 1.1 / d),
               (x1 - (x1 - x0) * ry * 1.3 / d, y1 - (y1 - y0) * ry * 1.3 / d), 2, 7)
    for (x, y), name in zip(positions, nodes):
        fill = _pick(rng, _FILLS)
        if rng.random() < 0.5:
            draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=fill, outline="black", width=1)
            draw.text((x, y), name, fill="black", font=f, anchor="mm")
        else:
            _box_text(draw, [x - rx, y - ry, x + rx, y + ry], name, f, fill, True)
    drug = _pick(rng, ("inhibitor", "compound 7", "siRNA", "antibody"))
    tx, ty = positions[1]
    _arrow(draw, (min(w - 4, tx + rx + w * 0.2), ty), (tx + rx + 2, ty), 2, 6, inhibit=True)
    draw.text((min(w - 4, tx + rx + w * 0.2), ty - 14), drug, fill=(180, 0, 0), font=f, anchor="rm")
    facts.update(nodes=nodes, inhibitor=drug)
    return jitter(image, rng, (255, 255, 255), zoom=(0.8, 1.0), shift=0.08, angle=0.0)


def _timeline(rng: np.random.Generator, w: int, h: int, facts: Facts) -> Image.Image:
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    f = font(max(7, min(11, w // 30)))
    y = h * rng.uniform(0.45, 0.8)
    _arrow(draw, (w * 0.04, y), (w * 0.96, y), 2, 8)
    visits = int(rng.integers(3, 6))
    labels = ["Baseline"] + [f"{_pick(rng, ('Week', 'Day', 'Month'))} {int(v)}"
                             for v in np.sort(rng.choice(np.arange(1, 53), visits - 1, replace=False))]
    for k, label in enumerate(labels):
        x = w * (0.1 + 0.8 * k / max(1, visits - 1))
        draw.line([x, y - 8, x, y + 8], fill="black", width=2)
        draw.text((x, y - 14 if k % 2 else y + 14), label, fill="black", font=f, anchor="ms" if k % 2 else "mt")
    fill = _pick(rng, _FILLS)
    x0, x1 = rng.uniform(0.05, 0.4), rng.uniform(0.6, 0.95)
    top = rng.uniform(0.05, max(0.06, y / h - 0.35))
    _box_text(draw, [w * x0, h * top, w * x1, h * (top + 0.16)], _pick(rng, ("Treatment period", "Intervention",
                                                                              "Dosing: 10 mg/kg daily")), f, fill, True)
    for _ in range(int(rng.integers(0, 3))):  # sampling marks
        x = w * rng.uniform(0.1, 0.9)
        draw.polygon([(x, y + 22), (x - 5, y + 32), (x + 5, y + 32)], fill=_pick(rng, ((200, 0, 0), (0, 90, 200))))
    facts.update(visits=labels)
    return jitter(image, rng, (255, 255, 255), zoom=(0.8, 1.0), shift=0.08, angle=0.0)


def paint_diagram(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, Facts]:
    """A flowchart of a study, a signalling pathway of boxed nodes and arrows, or a study timeline."""
    subject = _pick(rng, ("flowchart", "pathway", "pathway", "timeline"))
    facts: Facts = {"subject": subject}
    painter = {"flowchart": _flowchart, "pathway": _pathway, "timeline": _timeline}[subject]
    return painter(rng, width, height, facts), facts


# ---------------------------------------------------------------------------------------- chemical structures

_SUBSTITUENTS = ("OH", "O", "N", "NH\u2082", "Cl", "F", "Br", "OMe", "COOH", "S", "CH\u2083", "NO\u2082")


def _molecule(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, bond: float,
              width: int, f: ImageFont.FreeTypeFont) -> int:
    """Draw a skeletal formula centred on ``(cx, cy)``: fused or linked hexagons and chains; return rings drawn."""
    rings = int(rng.integers(1, 4))
    half = bond * math.sqrt(3) / 2  # centre to edge of a hexagon with a vertex on top
    steps = [2 * half if rng.random() < 0.6 else 2 * half + bond for _ in range(rings - 1)]
    x = cx - sum(steps) / 2
    centres = [x]
    for step in steps:
        x += step
        centres.append(x)
    vertices: list[tuple[float, float, float]] = []  # x, y, and the x of the ring's centre
    for k, x in enumerate(centres):
        angles = [math.pi / 2 + math.pi * j / 3 for j in range(6)]  # a vertex on top: neighbours share an edge
        corners = [(x + bond * math.cos(a), cy + bond * math.sin(a)) for a in angles]
        aromatic = rng.random() < 0.7
        for j in range(6):
            a, b = corners[j], corners[(j + 1) % 6]
            draw.line([a, b], fill="black", width=width)
            if aromatic and j % 2 == 0:  # inner double bond
                s = 0.72
                draw.line([(x + (a[0] - x) * s, cy + (a[1] - cy) * s), (x + (b[0] - x) * s, cy + (b[1] - cy) * s)],
                          fill="black", width=width)
        vertices.extend((px, py, x) for px, py in corners)
        if k < rings - 1 and steps[k] > 2 * half + 1:  # a bond to the next ring, vertex to vertex
            draw.line([(x + half, cy - bond / 2), (x + half + bond, cy - bond / 2)], fill="black", width=width)
    outer = [v for v in vertices if abs(v[0] - v[2]) > 1 or abs(v[1] - cy) > bond * 0.9]
    for _ in range(int(rng.integers(1, 4))):  # substituents: a short zigzag chain ending in a heteroatom
        px, py, rx = outer[int(rng.integers(len(outer)))]
        dx, dy = px - rx, py - cy
        norm = math.hypot(dx, dy) or 1
        dx, dy = dx / norm, dy / norm
        for step in range(int(rng.integers(1, 3))):
            turn = 0.52 if step % 2 else -0.52
            nx = px + bond * (dx * math.cos(turn) - dy * math.sin(turn))
            ny = py + bond * (dx * math.sin(turn) + dy * math.cos(turn))
            draw.line([(px, py), (nx, ny)], fill="black", width=width)
            px, py = nx, ny
        label = _pick(rng, _SUBSTITUENTS)
        box = draw.textbbox((px, py), label, font=f, anchor="mm")
        draw.rectangle(box, fill="white")
        draw.text((px, py), label, fill=(200, 0, 0) if label.startswith("O") else "black", font=f, anchor="mm")
    return rings


def paint_chemical_structure(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, Facts]:
    """Skeletal formulae: hexagon rings with double bonds, chains and atom labels, numbered compounds."""
    scale = 3
    image = Image.new("RGB", (width * scale, height * scale), "white")
    draw = ImageDraw.Draw(image)
    count = int(rng.integers(1, 3)) if width > 240 else 1
    bond = min(width / (count * 7.5), height / 6.5) * scale
    f = font(int(bond * 0.5), bold=True)
    label_font = font(int(max(bond * 0.55, 9 * scale)))
    rings = []
    numbers = []
    for k in range(count):
        cx = width * scale * (k + 0.5) / count
        rings.append(_molecule(draw, rng, cx, height * scale * 0.45, bond, max(2, scale), f))
        numbers.append(int(rng.integers(1, 30)))
        draw.text((cx, height * scale * 0.93), str(numbers[-1]), fill="black", font=label_font, anchor="mm")
    if count == 2 and rng.random() < 0.5:  # a reaction arrow
        _arrow(draw, (width * scale * 0.45, height * scale * 0.82), (width * scale * 0.55, height * scale * 0.82),
               scale * 2, bond * 0.3)
    image = jitter(image.resize((width, height), Image.LANCZOS), rng, (255, 255, 255), zoom=(0.85, 1.05),
                   shift=0.12, angle=0.0)
    subject = _pick(rng, ("compound", "inhibitor", "ligand", "natural product", "derivative"))
    return image, {"subject": "skeletal formula", "compounds": numbers, "rings": rings, "kind": subject}


# ------------------------------------------------------------------------------------------------------ tables

_ROWS = (("Age, years", "{:.1f} \u00b1 {:.1f}"), ("Male sex, n (%)", "{:.0f} ({:.0f})"), ("BMI, kg/m\u00b2",
         "{:.1f} \u00b1 {:.1f}"), ("HbA1c, %", "{:.1f} \u00b1 {:.1f}"), ("Smokers, n (%)", "{:.0f} ({:.0f})"),
         ("CRP, mg/L", "{:.1f} ({:.1f})"), ("Tumour size, cm", "{:.1f} \u00b1 {:.1f}"),
         ("Follow-up, months", "{:.0f} ({:.0f})"), ("eGFR, mL/min", "{:.0f} \u00b1 {:.0f}"),
         ("Stage III-IV, n (%)", "{:.0f} ({:.0f})"))


def paint_table(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, Facts]:
    """A table rendered as an image: header, rows of values with p values, horizontal rules."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    columns = int(rng.integers(1, 3)) if width < 260 else int(rng.integers(2, 4))
    headers = ["Variable", *[str(g) for g in rng.choice(_GROUPS, size=columns, replace=False)], "p value"]
    row_count = int(min(len(_ROWS), max(3, height // 26)))
    rows = [_ROWS[i] for i in rng.choice(len(_ROWS), size=row_count, replace=False)]
    cells = [[name, *[pattern.format(rng.uniform(1, 80), rng.uniform(1, 20)) for _ in range(columns)],
              _pick(rng, ("<0.001", "0.02", "0.04", "0.12", "0.38", "0.71"))] for name, pattern in rows]
    line_h = (height - 10) / (row_count + 1.4)
    for size in range(int(min(12, line_h * 0.6)), 5, -1):  # the largest font whose columns fit the width
        f, fb = font(size), font(size, bold=True)
        widths = [max(fb.getlength(headers[c]), *(f.getlength(r[c]) for r in cells)) + 6 for c in range(len(headers))]
        if sum(widths) <= width - 6:
            break
    spare = (width - 6 - sum(widths)) / len(widths)
    xs = [4.0]
    for w in widths[:-1]:
        xs.append(xs[-1] + w + max(0.0, spare))
    shaded = rng.random() < 0.4
    draw.line([2, 4, width - 2, 4], fill="black", width=2)
    for k, text in enumerate(headers):
        draw.text((xs[k], 6 + line_h * 0.2), text, fill="black", font=fb)
    draw.line([2, 6 + line_h, width - 2, 6 + line_h], fill="black", width=1)
    for r, row in enumerate(cells):
        y = 8 + line_h * (r + 1)
        if shaded and r % 2:
            draw.rectangle([2, y, width - 2, y + line_h - 1], fill=(235, 235, 235))
        for c, text in enumerate(row):
            draw.text((xs[c], y + line_h * 0.15), text, fill="black", font=f)
    draw.line([2, 8 + line_h * (row_count + 1), width - 2, 8 + line_h * (row_count + 1)], fill="black", width=2)
    subject = _pick(rng, ("baseline characteristics", "clinical characteristics", "univariate analysis",
                          "laboratory findings"))
    return image, {"subject": subject, "columns": headers, "rows": [name for name, _ in rows]}


# ------------------------------------------------------------------------------------------------ photographs

_SKIN = ((224, 172, 140), (198, 140, 105), (160, 110, 80), (240, 200, 170), (120, 80, 60))


def _ruler(image: Image.Image, rng: np.random.Generator) -> None:
    w, h = image.size
    draw = ImageDraw.Draw(image)
    top = int(h * rng.uniform(0.84, 0.9))
    draw.rectangle([0, top, w, h], fill=_pick(rng, ((245, 245, 235), (250, 230, 120), (235, 235, 245))))
    step = max(4, w // 30)
    f = font(max(7, h // 30))
    for k, x in enumerate(range(2, w, step)):
        draw.line([x, top, x, top + (h - top) * (0.6 if k % 5 == 0 else 0.3)], fill="black", width=1)
        if k % 10 == 0:
            draw.text((x + 1, h - 2), str(k // 10), fill="black", font=f, anchor="lb")


def _irregular_blob(rng: np.random.Generator, cx: float, cy: float, radius: float) -> list[tuple[float, float]]:
    points = []
    harmonics = rng.normal(0, 0.12, 5)
    phases = rng.uniform(0, 2 * np.pi, 5)
    for t in np.linspace(0, 2 * np.pi, 48, endpoint=False):
        r = radius * (1 + sum(a * math.sin((k + 2) * t + p) for k, (a, p) in enumerate(zip(harmonics, phases))))
        points.append((cx + r * math.cos(t), cy + r * math.sin(t)))
    return points


def paint_photograph(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, Facts]:
    """A clinical photograph of a skin lesion or a gross specimen on a drape, with a ruler."""
    subject = _pick(rng, ("skin lesion", "gross specimen"))
    w, h = width, height
    if subject == "skin lesion":
        base = np.array(_pick(rng, _SKIN), np.float32)
        lesion = np.array(_pick(rng, ((90, 50, 35), (150, 60, 60), (60, 40, 40), (170, 90, 80))), np.float32)
        site = _pick(rng, ("forearm", "back", "cheek", "lower leg", "scalp", "hand"))
    else:
        base = np.array(_pick(rng, ((40, 90, 140), (40, 120, 100), (70, 110, 160))), np.float32)
        lesion = np.array(_pick(rng, ((175, 85, 80), (200, 150, 120), (150, 60, 70))), np.float32)
        site = _pick(rng, ("kidney", "colon", "uterus", "thyroid", "spleen", "lung lobe"))
    light = 0.8 + 0.35 * _smooth_noise(rng, w, h, 60)
    rgb = base * light[..., None] + 10 * (_smooth_noise(rng, w, h, 3)[..., None] - 0.5)
    mask = Image.new("L", (w, h), 0)
    radius = min(w, h) * (rng.uniform(0.12, 0.25) if subject == "skin lesion" else rng.uniform(0.25, 0.38))
    ImageDraw.Draw(mask).polygon(_irregular_blob(rng, w * rng.uniform(0.4, 0.6), h * rng.uniform(0.35, 0.5), radius),
                                 fill=255)
    alpha = _blur(mask, 2.5)[..., None]
    inner = lesion * (0.75 + 0.5 * _smooth_noise(rng, w, h, 8))[..., None]
    rgb = rgb * (1 - alpha) + inner * alpha
    if subject == "gross specimen":  # glare
        rgb += 60 * np.clip(_smooth_noise(rng, w, h, 10) - 0.8, 0, 1)[..., None] * 5 * alpha
    yy, xx = np.mgrid[:h, :w]
    vignette = 1 - 0.25 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2) * 4
    rgb = rgb * vignette[..., None].astype(np.float32) + rng.normal(0, 3, rgb.shape)
    image = _to_image(rgb)
    _ruler(image, rng)
    return image, {"subject": subject, "site": site, "size_mm": int(rng.integers(4, 60))}


#: Figure type name -> painter.
PAINTERS: dict[str, Painter] = {
    "clinical_imaging": paint_clinical_imaging,
    "microscopy": paint_microscopy,
    "gel_blot": paint_gel_blot,
    "chart": paint_chart,
    "diagram": paint_diagram,
    "chemical_structure": paint_chemical_structure,
    "table": paint_table,
    "photograph": paint_photograph,
}


def paint(figure_type: str, rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, Facts]:
    """Draw one image of ``figure_type`` (a name of :data:`PAINTERS`).

    Args:
        figure_type: a taxonomy name.
        rng: the generator every random choice is drawn from.
        width: image width in pixels.
        height: image height in pixels.
    """
    image, facts = PAINTERS[figure_type](rng, int(width), int(height))
    if image.size != (width, height) or image.mode != "RGB":
        raise RuntimeError(f"painter {figure_type} drew {image.mode} {image.size}, not RGB {(width, height)}")
    return image, facts
