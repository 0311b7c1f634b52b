"""A reusable matplotlib drawing surface and the rendering styles the engine samples.

Speed comes from reuse: one :class:`DiagramCanvas` per process keeps a single ``Figure`` with an
Agg canvas and a bare full-figure ``Axes``; each diagram removes the previous artists instead of
building a new figure (building figures and axis tick machinery dominates matplotlib's cost).
Shapes, curves, grids, axes, tick marks and symbols are matplotlib artists rendered by Agg; text
labels (vertex letters, lengths, tick labels) are typeset afterwards with Pillow's FreeType renderer
using the same font files matplotlib ships (DejaVu, STIX), because matplotlib's own text layout costs
about 1 ms per label while Pillow's costs about 0.1 ms.

Every drawing call takes data coordinates; sizes given in pixels (``*_px``) are converted with the
current axis scale, so marks look the same at every image size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "DPI",
    "FONTS",
    "SAFE_GLYPHS",
    "Style",
    "sample_style",
    "DiagramCanvas",
    "Tick",
    "draw_coordinate_plane",
]

#: Figure resolution; image size in pixels is ``figure inches * DPI``.
DPI = 100

#: Fonts labels are set in: name -> (matplotlib family, style, weight). All ship with matplotlib.
FONTS: dict[str, tuple[str, str, str]] = {
    "dejavu_sans": ("DejaVu Sans", "normal", "normal"),
    "dejavu_sans_oblique": ("DejaVu Sans", "oblique", "normal"),
    "dejavu_sans_bold": ("DejaVu Sans", "normal", "bold"),
    "dejavu_serif": ("DejaVu Serif", "normal", "normal"),
    "dejavu_serif_italic": ("DejaVu Serif", "italic", "normal"),
    "dejavu_sans_mono": ("DejaVu Sans Mono", "normal", "normal"),
    "stix": ("STIXGeneral", "normal", "normal"),
    "stix_italic": ("STIXGeneral", "italic", "normal"),
}

#: The non-ASCII characters labels may contain; every font in :data:`FONTS` has glyphs for them.
SAFE_GLYPHS = "−π°²³·"

_LINE_COLORS = ("#000000", "#000000", "#000000", "#1f3b73", "#7a1f1f", "#1f5f2a", "#333333", "#4b2c6f")
_ACCENT_COLORS = ("#c0392b", "#1f5fbf", "#2e8b57", "#8e44ad", "#d35400")
_CURVE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#000000", "#ff7f0e", "#17becf")
_FILL_COLORS = ("#dbe8f7", "#fde9c9", "#e3f2df", "#f3dff0", "#eeeeee", "#fff6bf")
_BACKGROUNDS = ("#fbfaf5", "#f4f7fb", "#fffdf0", "#f7f7f7", "#eef5ee")
_GRID_PROBABILITY = {"plane_geometry": 0.15, "analytic_geometry": 0.75, "function_plot": 0.6}


@dataclass(frozen=True)
class Style:
    """How one diagram is rendered; sampled per diagram by :func:`sample_style`.

    Args:
        size: image side in pixels (images are square).
        line_width: stroke width of main lines, in points.
        line_color: colour of shapes and axes.
        accent_color: colour of marks (angle arcs, right-angle marks, auxiliary lines).
        curve_color: colour of function graphs and analytic curves.
        fill_color: light fill for closed shapes, or ``None``.
        background: figure background colour.
        text_color: colour of labels.
        font: key of :data:`FONTS`.
        font_px: label font size in pixels.
        label_offset: distance of point labels from their point, in pixels.
        grid: whether a background grid is drawn.
        text_stroke: whether labels get a halo in the background colour (readable over lines).
    """

    size: int
    line_width: float
    line_color: str
    accent_color: str
    curve_color: str
    fill_color: str | None
    background: str
    text_color: str
    font: str
    font_px: int
    label_offset: float
    grid: bool
    text_stroke: bool

    def to_meta(self) -> dict[str, Any]:
        """The style as JSON-serialisable metadata."""
        return asdict(self)


def sample_style(rng: np.random.Generator, size: int, family: str) -> Style:
    """Draw a rendering style: line widths, colours, font, label placement and grid.

    Args:
        rng: the diagram's generator (the style is part of what the seed determines).
        size: image side in pixels.
        family: diagram family; sets how often a background grid is drawn.
    """
    scale = size / 336.0
    line_color = str(rng.choice(_LINE_COLORS))
    accent = line_color if rng.random() < 0.5 else str(rng.choice(_ACCENT_COLORS))
    fill = str(rng.choice(_FILL_COLORS)) if rng.random() < 0.35 else None
    background = "#ffffff" if rng.random() < 0.65 else str(rng.choice(_BACKGROUNDS))
    text_color = line_color if rng.random() < 0.8 else str(rng.choice(_ACCENT_COLORS))
    return Style(
        size=int(size),
        line_width=round(float(rng.uniform(1.0, 2.6)) * max(scale, 0.7), 2),
        line_color=line_color,
        accent_color=accent,
        curve_color=str(rng.choice(_CURVE_COLORS)),
        fill_color=fill,
        background=background,
        text_color=text_color,
        font=str(rng.choice(list(FONTS))),
        font_px=max(9, int(round(rng.uniform(11.0, 16.0) * scale))),
        label_offset=float(rng.uniform(0.8, 1.4)),
        grid=bool(rng.random() < _GRID_PROBABILITY.get(family, 0.3)),
        text_stroke=bool(rng.random() < 0.5),
    )


@functools.cache
def font_path(name: str) -> str:
    """File of a :data:`FONTS` entry, found through matplotlib's font manager."""
    from matplotlib import font_manager

    family, style, weight = FONTS[name]
    props = font_manager.FontProperties(family=family, style=style, weight=weight)
    return font_manager.findfont(props, fallback_to_default=False)


@functools.lru_cache(maxsize=256)
def _pil_font(path: str, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, px)


@functools.lru_cache(maxsize=8192)
def _text_masks(
    path: str, px: int, text: str, anchor: str, stroke: int
) -> tuple[Image.Image, Image.Image | None, tuple[int, int]]:
    """Coverage masks of a label (and of its halo) and the mask's offset from the anchor point.

    Labels repeat a lot (tick values, vertex letters), so rendered masks are cached and pasted.
    """
    font = _pil_font(path, px)
    left, top, right, bottom = font.getbbox(text, anchor=anchor, stroke_width=stroke)
    size = (max(1, right - left), max(1, bottom - top))
    fill = Image.new("L", size, 0)
    ImageDraw.Draw(fill).text((-left, -top), text, font=font, fill=255, anchor=anchor)
    halo = None
    if stroke:
        halo = Image.new("L", size, 0)
        ImageDraw.Draw(halo).text(
            (-left, -top), text, font=font, fill=255, anchor=anchor, stroke_width=stroke, stroke_fill=255
        )
    return fill, halo, (left, top)


@dataclass(frozen=True)
class _Label:
    xy: tuple[float, float]
    text: str
    offset_px: tuple[float, float]
    anchor: str
    px: int
    color: str


@dataclass(frozen=True)
class Tick:
    """A tick on a coordinate axis: its position and its label (``""`` for no label)."""

    value: float
    label: str


class DiagramCanvas:
    """One reusable figure that diagrams are drawn on, in data coordinates.

    Call :meth:`begin` with a style and the data limits, add shapes, then :meth:`render` to get the
    image. The same canvas is reused for every diagram a process draws.
    """

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.transforms import Affine2D

        self._figure_cls, self._agg_cls = Figure, FigureCanvasAgg
        # One figure per image size: resizing a figure rebuilds its Agg renderer every time.
        self._figures: dict[int, tuple[Any, Any]] = {}
        self.figure, self._agg = self._figure_for(336)
        # Artists live on the figure itself (no Axes: no tick machinery, no data-limit updates)
        # and share one data -> pixel transform that :meth:`begin` resets for every diagram.
        self._data = Affine2D()
        self._size = (336, 336)
        self._xlim = (0.0, 1.0)
        self._ylim = (0.0, 1.0)
        self.style: Style | None = None
        self.labels: list[_Label] = []

    def _figure_for(self, size: int) -> tuple[Any, Any]:
        if size not in self._figures:
            figure = self._figure_cls(figsize=(size / DPI, size / DPI), dpi=DPI)
            self._figures[size] = (figure, self._agg_cls(figure))
        return self._figures[size]

    # ------------------------------------------------------------------ setup
    def begin(self, style: Style, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
        """Start a new diagram: clear the previous one, size the figure, set the data limits."""
        self.figure.artists.clear()
        self.figure, self._agg = self._figure_for(style.size)
        self.figure.artists.clear()
        self._size = (style.size, style.size)
        self.figure.patch.set_facecolor(style.background)
        x0, x1 = float(xlim[0]), float(xlim[1])
        y0, y1 = float(ylim[0]), float(ylim[1])
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"empty data limits x={xlim}, y={ylim}")
        self._xlim, self._ylim = (x0, x1), (y0, y1)
        w, h = self._size
        self._data.clear().translate(-x0, -y0).scale(w / (x1 - x0), h / (y1 - y0))
        self.style = style
        self.labels = []

    def _add(self, artist: Any) -> Any:
        artist.set_transform(self._data)
        self.figure.add_artist(artist)
        return artist

    @property
    def _style(self) -> Style:
        if self.style is None:
            raise RuntimeError("DiagramCanvas.begin() must be called before drawing")
        return self.style

    def dx(self, px: float) -> float:
        """Length in x data units of ``px`` pixels."""
        return px * (self._xlim[1] - self._xlim[0]) / self._size[0]

    def dy(self, px: float) -> float:
        """Length in y data units of ``px`` pixels."""
        return px * (self._ylim[1] - self._ylim[0]) / self._size[1]

    # ------------------------------------------------------------------ primitives
    def line(
        self,
        xs: Sequence[float] | np.ndarray,
        ys: Sequence[float] | np.ndarray,
        *,
        width: float | None = None,
        color: str | None = None,
        dashed: bool = False,
        zorder: float = 2,
        clip: tuple[tuple[float, float], tuple[float, float]] | None = None,
        cap: str = "round",
    ) -> None:
        """A polyline through ``(xs, ys)``; NaNs break it (used for asymptotes).

        Args:
            xs: x data coordinates.
            ys: y data coordinates.
            width: stroke width in points (default: the style's line width).
            color: stroke colour (default: the style's line colour).
            dashed: dashed instead of solid.
            zorder: drawing order (higher is on top).
            clip: ``((x0, x1), (y0, y1))``: only the part inside this box is drawn.
            cap: line end style (``"round"``, ``"butt"``).
        """
        from matplotlib.lines import Line2D

        s = self._style
        line = self._add(
            Line2D(
                np.asarray(xs, dtype=float),
                np.asarray(ys, dtype=float),
                linewidth=s.line_width if width is None else width,
                color=s.line_color if color is None else color,
                linestyle=(0, (4, 3)) if dashed else "-",
                solid_capstyle=cap,
                dash_capstyle=cap,
                solid_joinstyle="round",
                zorder=zorder,
            )
        )
        if clip is not None:
            from matplotlib.patches import Rectangle

            (x0, x1), (y0, y1) = clip
            line.set_clip_path(Rectangle((x0, y0), x1 - x0, y1 - y0, transform=self._data))

    def segment(self, p: Sequence[float], q: Sequence[float], **kwargs: Any) -> None:
        """A straight segment from ``p`` to ``q`` (keywords as :meth:`line`)."""
        self.line([p[0], q[0]], [p[1], q[1]], **kwargs)

    def segments(
        self,
        segs: Sequence[tuple[Sequence[float], Sequence[float]]],
        *,
        width: float | None = None,
        color: str | None = None,
        zorder: float = 1,
    ) -> None:
        """Many segments of one width and colour as a single path (grids, tick marks)."""
        if not segs:
            return
        pts = np.full((3 * len(segs), 2), np.nan)
        arr = np.asarray(segs, dtype=float).reshape(len(segs), 2, 2)
        pts[0::3] = arr[:, 0]
        pts[1::3] = arr[:, 1]
        self.line(pts[:, 0], pts[:, 1], width=width, color=color, zorder=zorder, cap="butt")

    def polygon(
        self,
        points: Sequence[Sequence[float]] | np.ndarray,
        *,
        fill: str | None = None,
        width: float | None = None,
        color: str | None = None,
        zorder: float = 2,
    ) -> None:
        """A closed polygon outline, optionally filled."""
        from matplotlib.patches import Polygon

        s = self._style
        self._add(
            Polygon(
                np.asarray(points, dtype=float),
                closed=True,
                facecolor=fill if fill is not None else "none",
                edgecolor=s.line_color if color is None else color,
                linewidth=s.line_width if width is None else width,
                joinstyle="round",
                zorder=zorder,
            )
        )

    def circle(
        self,
        center: Sequence[float],
        radius: float,
        *,
        fill: str | None = None,
        width: float | None = None,
        color: str | None = None,
        zorder: float = 2,
    ) -> None:
        """A circle outline (the axes must have equal scale in x and y)."""
        self.ellipse(center, radius, radius, fill=fill, width=width, color=color, zorder=zorder)

    def ellipse(
        self,
        center: Sequence[float],
        semi_x: float,
        semi_y: float,
        *,
        fill: str | None = None,
        width: float | None = None,
        color: str | None = None,
        zorder: float = 2,
    ) -> None:
        """An axis-aligned ellipse outline with semi-axes ``semi_x`` and ``semi_y``."""
        from matplotlib.patches import Ellipse

        s = self._style
        self._add(
            Ellipse(
                (float(center[0]), float(center[1])),
                2 * semi_x,
                2 * semi_y,
                facecolor=fill if fill is not None else "none",
                edgecolor=s.line_color if color is None else color,
                linewidth=s.line_width if width is None else width,
                zorder=zorder,
            )
        )

    def arc(
        self,
        center: Sequence[float],
        radius: float,
        theta1: float,
        theta2: float,
        *,
        width: float | None = None,
        color: str | None = None,
    ) -> None:
        """A circular arc from ``theta1`` to ``theta2`` degrees, counter-clockwise."""
        from matplotlib.patches import Arc

        s = self._style
        self._add(
            Arc(
                (float(center[0]), float(center[1])),
                2 * radius,
                2 * radius,
                theta1=float(theta1),
                theta2=float(theta2),
                edgecolor=s.accent_color if color is None else color,
                linewidth=(s.line_width * 0.7) if width is None else width,
                zorder=3,
            )
        )

    def dot(self, p: Sequence[float], *, radius_px: float | None = None, color: str | None = None) -> None:
        """A filled point marker."""
        from matplotlib.lines import Line2D

        s = self._style
        r = (2.2 + 0.6 * s.line_width) if radius_px is None else radius_px
        self._add(
            Line2D(
                [float(p[0])],
                [float(p[1])],
                marker="o",
                markersize=2 * r * 72 / DPI,
                markerfacecolor=s.line_color if color is None else color,
                markeredgewidth=0,
                linestyle="none",
                zorder=4,
            )
        )

    def right_angle(
        self, vertex: Sequence[float], d1: Sequence[float], d2: Sequence[float], size_px: float = 10.0
    ) -> None:
        """The small square that marks a right angle at ``vertex`` between directions ``d1``, ``d2``."""
        v = np.asarray(vertex, dtype=float)
        u1 = _unit(d1) * self.dx(size_px)
        u2 = _unit(d2) * self.dx(size_px)
        pts = np.stack([v + u1, v + u1 + u2, v + u2])
        self.line(pts[:, 0], pts[:, 1], width=self._style.line_width * 0.7, color=self._style.accent_color)

    def angle_arc(
        self, vertex: Sequence[float], p: Sequence[float], q: Sequence[float], radius_px: float = 16.0
    ) -> np.ndarray:
        """Arc marking the angle ``p-vertex-q`` (the one under 180 degrees).

        Returns:
            The unit bisector direction, where an angle label goes.
        """
        v = np.asarray(vertex, dtype=float)
        a1 = math.degrees(math.atan2(p[1] - v[1], p[0] - v[0]))
        a2 = math.degrees(math.atan2(q[1] - v[1], q[0] - v[0]))
        if (a2 - a1) % 360.0 > 180.0:
            a1, a2 = a2, a1
        start, sweep = a1, (a2 - a1) % 360.0
        self.arc(v, self.dx(radius_px), start, start + sweep)
        mid = math.radians(start + sweep / 2)
        return np.array([math.cos(mid), math.sin(mid)])

    def hash_marks(self, p: Sequence[float], q: Sequence[float], count: int, size_px: float = 7.0) -> None:
        """``count`` short strokes across the middle of segment ``pq`` (equal-length marks)."""
        p_, q_ = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
        d = _unit(q_ - p_)
        n = np.array([-d[1], d[0]])
        mid = (p_ + q_) / 2
        gap = self.dx(4.0)
        half = self.dx(size_px) / 2
        segs = []
        for k in range(count):
            c = mid + d * gap * (k - (count - 1) / 2)
            segs.append((c - n * half, c + n * half))
        self.segments(segs, width=self._style.line_width * 0.7, color=self._style.line_color, zorder=3)

    def parallel_marks(self, p: Sequence[float], q: Sequence[float], count: int, size_px: float = 7.0) -> None:
        """``count`` chevrons pointing from ``p`` to ``q`` at the middle of ``pq`` (parallel marks)."""
        p_, q_ = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
        d = _unit(q_ - p_)
        n = np.array([-d[1], d[0]])
        mid = (p_ + q_) / 2
        s = self.dx(size_px) / 2
        gap = self.dx(4.0)
        for k in range(count):
            tip = mid + d * (s / 2 + gap * (k - (count - 1) / 2))
            pts = np.stack([tip - d * s + n * s, tip, tip - d * s - n * s])
            self.line(pts[:, 0], pts[:, 1], width=self._style.line_width * 0.7, zorder=3)

    def arrowhead(self, tip: Sequence[float], direction: Sequence[float], size_px: float = 8.0) -> None:
        """A filled triangular arrowhead at ``tip`` pointing along ``direction`` (axes ends)."""
        d = _unit(direction)
        n = np.array([-d[1], d[0]])
        t = np.asarray(tip, dtype=float)
        sx, sy = self.dx(size_px), self.dy(size_px)
        scale = np.array([sx, sy])
        back = t - d * scale
        pts = np.stack([t, back + n * scale * 0.45, back - n * scale * 0.45])
        s = self._style
        self.polygon(pts, fill=s.line_color, color=s.line_color, width=0.5, zorder=3)

    def label(
        self,
        xy: Sequence[float],
        text: str,
        *,
        offset_px: Sequence[float] = (0.0, 0.0),
        anchor: str = "mm",
        scale: float = 1.0,
        color: str | None = None,
    ) -> None:
        """Queue a text label at data point ``xy`` shifted by ``offset_px`` (x right, y up).

        Args:
            xy: anchor point in data coordinates.
            text: the label (ASCII and :data:`SAFE_GLYPHS` only).
            offset_px: shift from ``xy`` in pixels.
            anchor: Pillow text anchor (``"mm"`` centred, ``"lt"`` left-top, ...).
            scale: font size relative to the style's.
            color: text colour (default: the style's text colour).
        """
        s = self._style
        self.labels.append(
            _Label(
                (float(xy[0]), float(xy[1])),
                text,
                (float(offset_px[0]), float(offset_px[1])),
                anchor,
                max(7, int(round(s.font_px * scale))),
                s.text_color if color is None else color,
            )
        )

    def point_label(self, xy: Sequence[float], text: str, direction: Sequence[float], *, scale: float = 1.0) -> None:
        """Label a point on the side given by ``direction`` (e.g. away from a shape's centre)."""
        s = self._style
        d = _unit(direction)
        dist = s.font_px * s.label_offset
        self.label(xy, text, offset_px=(d[0] * dist, d[1] * dist), scale=scale)

    # ------------------------------------------------------------------ output
    def render(self) -> Image.Image:
        """Rasterise the diagram and its labels into an RGB image."""
        s = self._style
        self._agg.draw()
        w, h = self._agg.get_width_height()
        image = Image.frombuffer("RGBA", (w, h), self._agg.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")
        if self.labels:
            path = font_path(s.font)
            background = s.background
            stroke = s.text_stroke
            points = self._data.transform(np.array([lab.xy for lab in self.labels]))
            for lab, (x, y) in zip(self.labels, points):
                fill, halo, (left, top) = _text_masks(
                    path, lab.px, lab.text, lab.anchor, max(1, lab.px // 8) if stroke else 0
                )
                at = (int(round(x + lab.offset_px[0])) + left, int(round(h - y - lab.offset_px[1])) + top)
                if halo is not None:
                    image.paste(background, at, halo)
                image.paste(lab.color, at, fill)
        return image


def _unit(v: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    n = float(np.hypot(a[0], a[1]))
    if n == 0.0:
        raise ValueError("zero-length direction")
    return a / n


def draw_coordinate_plane(
    canvas: DiagramCanvas,
    style: Style,
    rng: np.random.Generator,
    x_view: tuple[float, float],
    y_view: tuple[float, float],
    xticks: Sequence[Tick],
    yticks: Sequence[Tick],
) -> dict[str, Any]:
    """Start a diagram on a coordinate plane: grid, axes with arrows, tick marks and tick labels.

    The axes cross at the origin when it is in view, otherwise they run along the bottom and left
    edges of the view. The canvas limits add a margin for arrows and labels around ``x_view`` and
    ``y_view``.

    Returns:
        What was drawn, for metadata: ``{"grid", "axes_at", "axis_names"}``.
    """
    xs, ys = x_view[1] - x_view[0], y_view[1] - y_view[0]
    at_origin = x_view[0] < 0 < x_view[1] and y_view[0] < 0 < y_view[1]
    pad_lo = 0.06 if at_origin else 0.13
    xlim = (x_view[0] - xs * pad_lo, x_view[1] + xs * 0.07)
    ylim = (y_view[0] - ys * pad_lo, y_view[1] + ys * 0.07)
    canvas.begin(style, xlim, ylim)
    ax0 = 0.0 if x_view[0] < 0 < x_view[1] else x_view[0]
    ay0 = 0.0 if y_view[0] < 0 < y_view[1] else y_view[0]
    grid_color = "#c8c8c8" if style.background == "#ffffff" else "#bdbdbd"
    if style.grid:
        segs = [((t.value, y_view[0]), (t.value, y_view[1])) for t in xticks]
        segs += [((x_view[0], t.value), (x_view[1], t.value)) for t in yticks]
        canvas.segments(segs, width=0.6, color=grid_color, zorder=0.5)
    axis_width = max(0.8, style.line_width * 0.6)
    canvas.segment((x_view[0], ay0), (x_view[1] + xs * 0.04, ay0), width=axis_width, zorder=1.5)
    canvas.segment((ax0, y_view[0]), (ax0, y_view[1] + ys * 0.04), width=axis_width, zorder=1.5)
    canvas.arrowhead((x_view[1] + xs * 0.05, ay0), (1, 0))
    canvas.arrowhead((ax0, y_view[1] + ys * 0.05), (0, 1))
    tick = 4.0
    segs = [((t.value, ay0 - canvas.dy(tick)), (t.value, ay0 + canvas.dy(tick))) for t in xticks]
    segs += [((ax0 - canvas.dx(tick), t.value), (ax0 + canvas.dx(tick), t.value)) for t in yticks]
    canvas.segments(segs, width=axis_width, zorder=1.5)
    small = 0.8
    gap = tick + 2.0
    for t in xticks:
        if t.label and not (at_origin and t.value == 0):
            canvas.label((t.value, ay0), t.label, offset_px=(0, -gap), anchor="mt", scale=small)
    for t in yticks:
        if t.label and not (at_origin and t.value == 0):
            canvas.label((ax0, t.value), t.label, offset_px=(-gap, 0), anchor="rm", scale=small)
    if at_origin and rng.random() < 0.6:
        canvas.label((0, 0), "O" if rng.random() < 0.5 else "0", offset_px=(-gap, -gap), anchor="rt", scale=small)
    names = bool(rng.random() < 0.8)
    if names:
        canvas.label((x_view[1] + xs * 0.05, ay0), "x", offset_px=(-2, 6), anchor="rb", scale=0.9)
        canvas.label((ax0, y_view[1] + ys * 0.05), "y", offset_px=(7, -2), anchor="lt", scale=0.9)
    return {"grid": style.grid, "axes_at": "origin" if at_origin else "edges", "axis_names": names}
