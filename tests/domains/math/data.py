"""Write a small Geometry3K fixture in the public dataset's exact layout (seeded, no network).

Layout and fields follow the Inter-GPS release (``data/geometry3k/{train,val,test}/<id>/``):
``img_diagram.png``, ``img_diagram_point.png``, ``img_problem.png``, ``data.json`` (problem_text,
choices, answer, detailed_solution, problem_type_graph, problem_type_goal, source, comment, id,
annot_id, is_standard, compact_choices, precise_value, rough_value, compact_text, annotat_text,
unit, img_width, img_height, data_type, date, system) and ``logic_form.json`` (text_logic_form,
dissolved_text_logic_form, diagram_logic_form, line_instances, point_positions, circle_instances).

Run ``python tests/domains/math/data.py OUT_DIR`` to write one by hand.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

#: Problem kinds the fixture cycles through, with the shape label the adapter must derive.
KINDS: dict[str, str] = {
    "circle": "circle",
    "triangle": "triangle",
    "parallelogram": "quadrilateral",
    "hexagon": "polygon",
    "lines": "line",
}

#: First id of each split in the real dataset.
SPLIT_START = {"train": 0, "val": 2101, "test": 2401}

#: The short, repeated problem texts of the real dataset ("Find x." is the most common), per kind;
#: ``make_geometry3k(generic_texts=True)`` uses them, so only the logic forms tell problems apart.
GENERIC_TEXTS: dict[str, str] = {
    "circle": "Find the radius of \\odot X.",
    "triangle": "Find x.",
    "parallelogram": "Find x.",
    "hexagon": "Find the area of the figure.",
    "lines": "Find y.",
}


def _circle(rng: random.Random) -> dict[str, Any]:
    r = rng.randint(70, 100)
    c = (125.0, 125.0)
    a, b = rng.uniform(0.2, 1.2), rng.uniform(2.0, 3.0)
    pts = {
        "X": list(c),
        "A": [c[0] + r * math.cos(a), c[1] - r * math.sin(a)],
        "B": [c[0] + r * math.cos(b), c[1] - r * math.sin(b)],
    }
    ab = rng.randint(10, 40)
    text = f"In \\odot X, A B = {ab}. Find the radius of \\odot X if the distance from X to A B is {ab // 2}."
    return {
        "text": text,
        "graph": ["Circle"],
        "goal": ["Length"],
        "text_logic_form": ["Circle(X)", f"Equals(LengthOf(Line(A,B)),{ab})", "Find(RadiusOf(Circle(X)))"],
        "diagram_logic_form": [
            "PointLiesOnCircle(A, Circle(X, radius_0_0))",
            "PointLiesOnCircle(B, Circle(X, radius_0_0))",
        ],
        "line_instances": ["AB", "XA"],
        "points": pts,
        "circles": ["X"],
        "draw_circle": (c, r),
    }


def _triangle(rng: random.Random) -> dict[str, Any]:
    pts = {"A": [30.0, 210.0], "B": [220.0, 210.0], "C": [rng.uniform(60, 190), rng.uniform(30, 90)]}
    x = rng.randint(20, 70)
    return {
        "text": f"Find x in the triangle. m \\angle A = {x}.",
        "graph": ["Triangle"],
        "goal": ["Angle"],
        "text_logic_form": [f"Equals(MeasureOf(Angle(C,A,B)),{x})", "Find(x)"],
        "diagram_logic_form": ["Equals(MeasureOf(Angle(A,C,B)),x)"],
        "line_instances": ["AB", "BC", "CA"],
        "points": pts,
        "circles": [""],
    }


def _parallelogram(rng: random.Random) -> dict[str, Any]:
    s = rng.uniform(30, 60)
    pts = {"W": [30.0, 200.0], "X": [170.0, 200.0], "Y": [170.0 + s, 60.0], "Z": [30.0 + s, 60.0]}
    yz = rng.randint(5, 30)
    return {
        "text": f"Use parallelogram W X Y Z to find W X if Y Z = {yz}.",
        "graph": ["Parallelogram"],
        "goal": ["Length"],
        "text_logic_form": ["Parallelogram(W,X,Y,Z)", f"Equals(LengthOf(Line(Y,Z)),{yz})", "Find(LengthOf(Line(W,X)))"],
        "diagram_logic_form": ["Parallel(Line(W,X),Line(Z,Y))"],
        "line_instances": ["WX", "XY", "YZ", "ZW"],
        "points": pts,
        "circles": [""],
    }


def _hexagon(rng: random.Random) -> dict[str, Any]:
    names = "ABCDEF"
    pts = {names[k]: [125 + 90 * math.cos(k * math.pi / 3), 125 + 90 * math.sin(k * math.pi / 3)] for k in range(6)}
    side = rng.randint(3, 12)
    return {
        "text": f"Find the area of the regular hexagon with side {side}.",
        "graph": ["Other"],
        "goal": ["Area"],
        "text_logic_form": [
            "Regular(Hexagon(A,B,C,D,E,F))",
            f"Equals(LengthOf(Line(A,B)),{side})",
            "Find(AreaOf(Hexagon(A,B,C,D,E,F)))",
        ],
        "diagram_logic_form": [],
        "line_instances": ["AB", "BC", "CD", "DE", "EF", "FA"],
        "points": pts,
        "circles": [""],
    }


def _lines(rng: random.Random) -> dict[str, Any]:
    pts = {"A": [20.0, 125.0], "B": [230.0, 125.0], "C": [60.0, 30.0], "D": [190.0, 220.0], "E": [125.0, 125.0]}
    y = rng.randint(20, 160)
    return {
        "text": f"Find y. m \\angle A E C = {y}.",
        "graph": ["Line"],
        "goal": ["Angle"],
        "text_logic_form": [f"Equals(MeasureOf(Angle(A,E,C)),{y})", "Find(y)"],
        "diagram_logic_form": ["PointLiesOnLine(E, Line(A,B))", "PointLiesOnLine(E, Line(C,D))"],
        "line_instances": ["AE", "EB", "CE", "ED", "AB", "CD"],
        "points": pts,
        "circles": [""],
    }


_BUILDERS = {
    "circle": _circle,
    "triangle": _triangle,
    "parallelogram": _parallelogram,
    "hexagon": _hexagon,
    "lines": _lines,
}


def _draw(problem: dict[str, Any], size: tuple[int, int], with_points: bool) -> Image.Image:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    pts = problem["points"]
    for line in problem["line_instances"]:
        a, b = pts[line[0]], pts[line[1]]
        draw.line([tuple(a), tuple(b)], fill="black", width=2)
    if "draw_circle" in problem:
        (cx, cy), r = problem["draw_circle"]
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline="black", width=2)
    for name, (x, y) in pts.items():
        draw.text((x + 4, y - 12), name, fill="black")
        if with_points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill="red")
    return img


def write_problem(
    folder: Path, pid: int, split: str, kind: str, rng: random.Random, generic_text: bool = False
) -> dict[str, Any]:
    """Write one problem folder; returns its data.json content.

    With ``generic_text`` the problem text is the kind's :data:`GENERIC_TEXTS` entry.
    """
    problem = _BUILDERS[kind](rng)
    if generic_text:
        problem["text"] = GENERIC_TEXTS[kind]
    folder.mkdir(parents=True, exist_ok=True)
    size = (250, 250)
    _draw(problem, size, with_points=False).save(folder / "img_diagram.png")
    _draw(problem, size, with_points=True).save(folder / "img_diagram_point.png")
    Image.new("RGB", (400, 60), "white").save(folder / "img_problem.png")
    values = sorted(rng.sample(range(2, 90), 4))
    choices = [str(v) for v in values]
    answer = "ABCD"[rng.randrange(4)]
    data = {
        "problem_text": problem["text"],
        "choices": choices,
        "answer": answer,
        "detailed_solution": " ",
        "problem_type_graph": problem["graph"],
        "problem_type_goal": problem["goal"],
        "source": "textbook1_chapter_1.pdf",
        "comment": "",
        "id": pid,
        "annot_id": f"fixture_{pid}",
        "is_standard": False,
        "compact_choices": choices,
        "precise_value": [float(v) for v in values],
        "rough_value": values,
        "compact_text": problem["text"],
        "annotat_text": problem["text"],
        "unit": "",
        "img_width": size[0],
        "img_height": size[1],
        "data_type": split,
        "date": "Fri Sep 18 22:23:14 2020",
        "system": "linux",
    }
    logic = {
        "text_logic_form": problem["text_logic_form"],
        "dissolved_text_logic_form": problem["text_logic_form"],
        "diagram_logic_form": problem["diagram_logic_form"],
        "line_instances": problem["line_instances"],
        "point_positions": {k: [round(v[0], 1), round(v[1], 1)] for k, v in problem["points"].items()},
        "circle_instances": problem["circles"],
    }
    (folder / "data.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    (folder / "logic_form.json").write_text(json.dumps(logic, indent=2), encoding="utf-8")
    return data


def make_geometry3k(
    root: Path, seed: int = 0, per_split: dict[str, int] | None = None, generic_texts: bool = False
) -> dict[str, list[tuple[int, str]]]:
    """Write ``root/{train,val,test}/<id>/...``; kinds cycle through :data:`KINDS`.

    With ``generic_texts`` every problem text is its kind's short :data:`GENERIC_TEXTS` entry, so
    texts repeat as in the real dataset.

    Returns:
        split -> ``[(id, expected shape label), ...]`` in id order.
    """
    rng = random.Random(seed)
    per_split = per_split or {"train": 5, "val": 2, "test": 5}
    kinds = list(KINDS)
    written: dict[str, list[tuple[int, str]]] = {}
    for split, count in per_split.items():
        written[split] = []
        for k in range(count):
            pid = SPLIT_START[split] + k
            kind = kinds[k % len(kinds)]
            write_problem(Path(root) / split / str(pid), pid, split, kind, rng, generic_texts)
            written[split].append((pid, KINDS[kind]))
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "geometry3k")
    print(json.dumps(make_geometry3k(out), indent=2))
