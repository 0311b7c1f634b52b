"""Geometry3K: real high-school geometry problems with diagrams and formal-language annotations."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from domainclip.core.data.corrupt import BAD_IMAGE, CorruptSampleError
from domainclip.core.errors import DatasetNotFoundError
from domainclip.core.plugins import UnknownNameError
from domainclip.domains.math.labels import GEOMETRY3K_SHAPES

__all__ = ["Geometry3K", "DatasetNotFoundError", "primary_shape", "problem_caption", "shape_types"]

#: Files every problem folder holds (the adapter reads these; others such as img_problem.png are ignored).
EXPECTED_FILES: tuple[str, ...] = ("img_diagram.png", "data.json", "logic_form.json")

_EXPECTED = "expected <id>/img_diagram.png, data.json, logic_form.json"

_CIRCLE_PREDICATES = ("Circle(", "Arc(", "PointLiesOnCircle(", "Sector(")
_POLYGON_PREDICATES = ("Pentagon(", "Hexagon(", "Heptagon(", "Octagon(", "Polygon(", "Regular(")
_QUAD_PREDICATES = ("Quadrilateral(", "Parallelogram(", "Rectangle(", "Square(", "Rhombus(", "Trapezoid(", "Kite(")
_CIRCLE_WORDS = re.compile(r"\bcircles?\b|\barcs?\b|\bchords?\b|\bradius\b|\bdiameter\b|\\odot|⊙")
_POLYGON_WORDS = re.compile(r"\b(pentagon|hexagon|heptagon|octagon|polygon|regular)s?\b")
_QUAD_WORDS = re.compile(r"\b(quadrilateral|parallelogram|rectangle|rhombus|trapezoid|trapezium|kite)s?\b")
_TRIANGLE_WORDS = re.compile(r"\btriangles?\b|\\triangle|△")


def _forms(logic_form: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for key in ("text_logic_form", "dissolved_text_logic_form", "diagram_logic_form"):
        value = logic_form.get(key) or []
        parts.extend(str(v) for v in value)
    return "\n".join(parts)


def _split_line(name: str, points: set[str]) -> tuple[str, str] | None:
    for i in range(1, len(name)):
        if name[:i] in points and name[i:] in points:
            return name[:i], name[i:]
    return None


def _has_triangle(logic_form: Mapping[str, Any]) -> bool:
    """Whether three annotated line instances close a non-degenerate triangle."""
    positions = logic_form.get("point_positions") or {}
    if not isinstance(positions, Mapping):
        return False
    points = set(positions)
    edges: set[frozenset[str]] = set()
    for line in logic_form.get("line_instances") or []:
        pair = _split_line(str(line), points)
        if pair is not None and pair[0] != pair[1]:
            edges.add(frozenset(pair))
    adjacent: dict[str, set[str]] = {}
    for edge in edges:
        a, b = tuple(edge)
        adjacent.setdefault(a, set()).add(b)
        adjacent.setdefault(b, set()).add(a)
    for a in adjacent:
        for b in adjacent[a]:
            for c in adjacent[a] & adjacent.get(b, set()):
                (xa, ya), (xb, yb), (xc, yc) = (positions[p] for p in (a, b, c))
                area = abs((xb - xa) * (yc - ya) - (xc - xa) * (yb - ya)) / 2
                longest = max(
                    (xb - xa) ** 2 + (yb - ya) ** 2, (xc - xa) ** 2 + (yc - ya) ** 2, (xc - xb) ** 2 + (yc - yb) ** 2
                )
                if longest > 0 and area / longest > 0.05:  # not three points on one line
                    return True
    return False


def shape_types(logic_form: Mapping[str, Any], problem_text: str = "") -> list[str]:
    r"""Every coarse shape a problem involves, by documented rules, in :data:`GEOMETRY3K_SHAPES` order.

    Rules (a shape is present when any of its rules fires):

    * ``circle``: ``circle_instances`` has a non-empty entry; a logic form uses ``Circle(``, ``Arc(``,
      ``PointLiesOnCircle(`` or ``Sector(``; or the text says circle, arc, chord, radius, diameter
      or ``\\odot``.
    * ``polygon``: a logic form uses ``Pentagon(``, ``Hexagon(``, ``Heptagon(``, ``Octagon(``,
      ``Polygon(`` or ``Regular(``; or the text names one of them.
    * ``quadrilateral``: a logic form uses ``Quadrilateral(``, ``Parallelogram(``, ``Rectangle(``,
      ``Square(``, ``Rhombus(``, ``Trapezoid(`` or ``Kite(``; or the text names one (``square`` is
      not a text keyword: it appears in "square units").
    * ``triangle``: a logic form uses ``Triangle(``; the text says triangle or ``\\triangle``; or
      three ``line_instances`` close a triangle whose ``point_positions`` are not collinear.
    * ``line``: none of the above.
    """
    forms = _forms(logic_form)
    text = problem_text.lower()
    found: set[str] = set()
    circles = [c for c in (logic_form.get("circle_instances") or []) if str(c).strip()]
    if circles or any(p in forms for p in _CIRCLE_PREDICATES) or _CIRCLE_WORDS.search(text):
        found.add("circle")
    if any(p in forms for p in _POLYGON_PREDICATES) or _POLYGON_WORDS.search(text):
        found.add("polygon")
    if any(p in forms for p in _QUAD_PREDICATES) or _QUAD_WORDS.search(text):
        found.add("quadrilateral")
    if "Triangle(" in forms or _TRIANGLE_WORDS.search(text) or _has_triangle(logic_form):
        found.add("triangle")
    if not found:
        found.add("line")
    return [s for s in GEOMETRY3K_SHAPES if s in found]


#: Which shape names a problem when it involves several: the first present in this order.
SHAPE_PRIORITY: tuple[str, ...] = ("circle", "polygon", "quadrilateral", "triangle", "line")


def primary_shape(shapes: list[str]) -> str:
    """The single label of a problem: the first of :data:`SHAPE_PRIORITY` among its shapes."""
    for shape in SHAPE_PRIORITY:
        if shape in shapes:
            return shape
    raise ValueError(f"no known shape among {shapes}; known: {', '.join(SHAPE_PRIORITY)}")


def problem_caption(problem_text: str, logic_form: Mapping[str, Any]) -> str:
    """The text that stands for a problem in diagram retrieval: its problem text, then its logic forms.

    Real problem texts repeat ("Find x.", "Find y.", "Find the area of the figure."), so the text
    alone cannot name one diagram. The annotated logic forms say what the diagram shows (which
    points lie on which lines, lengths and angle measures) and what the text adds; they follow the
    text, diagram forms first (a text encoder that truncates keeps the diagram's facts longest),
    each form once, separated by ``"; "``.

    Args:
        problem_text: the problem's ``problem_text``.
        logic_form: the problem's ``logic_form.json`` (or the sample's ``meta["logic_form"]``):
            ``diagram_logic_form`` and ``text_logic_form`` are read.

    Returns:
        ``"<problem text> <form>; <form>; ..."``, or the problem text alone when it has no forms.
    """
    forms: list[str] = []
    for key in ("diagram_logic_form", "text_logic_form"):
        for form in logic_form.get(key) or []:
            form = " ".join(str(form).split())
            if form and form not in forms:
                forms.append(form)
    text = " ".join(problem_text.split())
    return f"{text} {'; '.join(forms)}" if forms else text


def _problem_id(folder: Path) -> tuple[int, str]:
    return (int(folder.name), folder.name) if folder.name.isdigit() else (1 << 62, folder.name)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(value).__name__}")
    return value


def _require(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    if key not in data:
        raise ValueError(f"{path} has no {key!r} field (fields: {', '.join(sorted(data))})")
    if not isinstance(data[key], kind):
        raise ValueError(f"{path}: {key!r} must be {getattr(kind, '__name__', kind)}, got {type(data[key]).__name__}")
    return data[key]


class Geometry3K(Dataset):
    """Geometry3K geometry problems (Inter-GPS), as dict samples for evaluation.

    Geometry3K holds 3,002 multiple-choice high-school geometry problems from two textbooks,
    each with its diagram and dense formal-language annotation (logic forms). Splits: train 2,101
    (ids 0-2100), val 300 (2101-2400), test 601 (2401-3001).

    Dataset format (as unzipped by the Inter-GPS repository's ``data/unzip_data.sh``)::

        root/
          train/ val/ test/
            <id>/
              img_diagram.png      the diagram (read)
              data.json            problem_text, choices, answer (letter), id, problem_type_graph,
                                   problem_type_goal, compact_text, annotat_text, source, ... (read)
              logic_form.json      text_logic_form, dissolved_text_logic_form, diagram_logic_form,
                                   line_instances, point_positions, circle_instances (read)
              img_problem.png, img_diagram_point.png, ...  (ignored)

    Classes: :data:`~domainclip.domains.math.labels.GEOMETRY3K_SHAPES` (``line``, ``triangle``,
    ``quadrilateral``, ``polygon``, ``circle``), derived from the logic forms and the problem text
    by :func:`shape_types` and :func:`primary_shape` (circle > polygon > quadrilateral > triangle >
    line); the annotated ``problem_type_graph`` is kept in ``meta``.

    Samples: ``{"image": PIL RGB, "text": problem text, "label": shape index, "meta": {"id",
    "split", "folder", "choices", "answer", "answer_text", "problem_type_graph",
    "problem_type_goal", "shape_types", "logic_form", "source", "dataset", "licence"}}``.
    A diagram that cannot be decoded raises
    :class:`~domainclip.core.data.corrupt.CorruptSampleError` (reason ``bad_image``, naming the
    file), so a caller can skip and count it; :func:`problem_caption` builds a retrieval caption.

    Licence: MIT (Inter-GPS repository, which distributes the data).

    Citation::

        @inproceedings{lu2021inter,
          title = {Inter-GPS: Interpretable Geometry Problem Solving with Formal Language and Symbolic Reasoning},
          author = {Lu, Pan and Gong, Ran and Jiang, Shibiao and Qiu, Liang and Huang, Siyuan and
                    Liang, Xiaodan and Zhu, Song-Chun},
          booktitle = {ACL-IJCNLP},
          year = {2021}
        }

    Args:
        root: folder holding ``train/``, ``val/``, ``test/``; or, with ``split=None``, a folder of
            problem folders.
        split: ``"train"``, ``"val"``, ``"test"`` or ``None``.
        transforms: applied to each sample dict (e.g. a dictionary image transform).

    Raises:
        DatasetNotFoundError: the split folder is missing or empty, or a problem folder lacks one
            of :data:`EXPECTED_FILES`.
    """

    splits: tuple[str, ...] = ("train", "val", "test")
    classes: tuple[str, ...] = GEOMETRY3K_SHAPES
    licence = "MIT"

    def __init__(
        self,
        root: str | Path,
        split: str | None = "test",
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if split is not None and split not in self.splits:
            raise UnknownNameError("Geometry3K split", split, list(self.splits))
        self.root = Path(root)
        self.split = split
        self.transforms = transforms
        folder = self.root / split if split is not None else self.root
        if not folder.is_dir():
            raise DatasetNotFoundError(f"dataset not found at {folder}: {_EXPECTED}")
        problems = sorted((p for p in folder.iterdir() if p.is_dir()), key=_problem_id)
        if not problems:
            raise DatasetNotFoundError(f"dataset not found at {folder}: no problem folders; {_EXPECTED}")
        for problem in problems:
            missing = [name for name in EXPECTED_FILES if not (problem / name).is_file()]
            if missing:
                lacks = ", ".join(missing)
                raise DatasetNotFoundError(
                    f"dataset not found at {folder}: problem folder {problem.name} lacks {lacks}; {_EXPECTED}"
                )
        self.folder = folder
        self.problems = problems

    def __len__(self) -> int:
        """Number of problems in the split."""
        return len(self.problems)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Problem ``index``: its diagram, problem text, derived shape label and metadata."""
        folder = self.problems[index]
        data_path, logic_path = folder / "data.json", folder / "logic_form.json"
        data, logic = _read_json(data_path), _read_json(logic_path)
        text = _require(data, "problem_text", str, data_path)
        choices = _require(data, "choices", list, data_path)
        answer = _require(data, "answer", str, data_path)
        for key in ("text_logic_form", "diagram_logic_form", "line_instances", "point_positions"):
            _require(logic, key, (list, dict), logic_path)
        shapes = shape_types(logic, text)
        position = ord(answer.strip().upper()[:1] or "?") - ord("A")
        diagram = folder / "img_diagram.png"
        try:
            with Image.open(diagram) as img:
                image = img.convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise CorruptSampleError(BAD_IMAGE, f"{diagram}: {type(e).__name__}: {e}") from e
        sample: dict[str, Any] = {
            "image": image,
            "text": text,
            "label": self.classes.index(primary_shape(shapes)),
            "meta": {
                "dataset": "geometry3k",
                "id": data.get("id", folder.name),
                "split": self.split,
                "folder": str(folder),
                "choices": choices,
                "answer": answer,
                "answer_text": choices[position] if 0 <= position < len(choices) else None,
                "problem_type_graph": data.get("problem_type_graph", []),
                "problem_type_goal": data.get("problem_type_goal", []),
                "shape_types": shapes,
                "logic_form": {k: logic.get(k) for k in ("text_logic_form", "diagram_logic_form", "circle_instances")},
                "source": data.get("source"),
                "licence": self.licence,
            },
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def plot(self, sample: Mapping[str, Any], show_titles: bool = True, suptitle: str | None = None) -> Any:
        """Show a sample's diagram with its shape label and (wrapped) problem text.

        Args:
            sample: a sample from :meth:`__getitem__` (before tensor transforms).
            show_titles: write the label and the problem text above the diagram.
            suptitle: figure title.

        Returns:
            The matplotlib ``Figure``.
        """
        import textwrap

        from matplotlib.figure import Figure

        fig = Figure(figsize=(4.5, 5.2))
        ax = fig.add_subplot()
        ax.imshow(sample["image"])
        ax.set_axis_off()
        if show_titles:
            label = sample.get("label")
            name = self.classes[label] if isinstance(label, int) else "?"
            ax.set_title(f"{name}\n" + textwrap.fill(str(sample.get("text", "")), 60), fontsize=8)
        if suptitle is not None:
            fig.suptitle(suptitle)
        return fig
