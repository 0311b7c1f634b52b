import io
import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from domainclip.core.plugins import UnknownNameError
from domainclip.domains.math.labels import DIAGRAM_TYPE_FAMILY, DIAGRAM_TYPES, FAMILIES, FUNCTION_FAMILIES
from domainclip.domains.math.synthetic import (
    EngineConfig,
    generate_diagrams,
    get_diagram_type,
    list_diagram_types,
    render_diagram,
)
from domainclip.domains.math.synthetic.canvas import FONTS, SAFE_GLYPHS, DiagramCanvas, font_path, sample_style
from domainclip.domains.math.synthetic.captions import LANGUAGES, TEMPLATES, compose_caption, render_fact
from domainclip.domains.math.synthetic.engine import last_drawn_labels
from domainclip.domains.math.synthetic.functions import analyse_function
from domainclip.domains.math.synthetic.registry import Fact


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- rendering
@pytest.mark.parametrize("name", DIAGRAM_TYPES)
def test_every_diagram_type_renders(name):
    sample = render_diagram(name, seed=1, index=0, image_size=224)
    image = sample["image"]
    assert image.mode == "RGB" and image.size == (224, 224)
    pixels = np.asarray(image).astype(int)
    background = pixels[0, 0]
    ink = np.abs(pixels - background).sum(axis=2) > 120
    assert ink.mean() > 0.005, "diagram is (nearly) blank"
    assert sample["label"] == DIAGRAM_TYPES.index(name)
    meta = sample["meta"]
    assert meta["diagram_type"] == name and meta["family"] == DIAGRAM_TYPE_FAMILY[name]
    assert meta["image_size"] == [224, 224] and meta["licence"] == "CC0-1.0"
    assert isinstance(sample["text"], str) and len(sample["text"]) > 20 and sample["text"].endswith(".")
    assert "." not in sample["__key__"]
    json.dumps(meta)  # plain JSON types only


def test_registry_matches_the_label_space():
    assert list_diagram_types() == list(DIAGRAM_TYPES)
    assert len(DIAGRAM_TYPES) >= 12
    for family in FAMILIES:
        assert list_diagram_types(family), family
    with pytest.raises(UnknownNameError, match="Did you mean: right_triangle"):
        get_diagram_type("rigth_triangle")


# ----------------------------------------------------------------------------- determinism
def test_same_seed_and_index_give_identical_png_bytes():
    first = list(generate_diagrams(6, seed=7))
    tail = list(generate_diagrams(3, seed=7, start=3))  # a worker taking indices 3..5
    assert [png(s["image"]) for s in first[3:]] == [png(s["image"]) for s in tail]
    assert [s["text"] for s in first[3:]] == [s["text"] for s in tail]
    assert [s["meta"] for s in first[3:]] == [s["meta"] for s in tail]
    list(generate_diagrams(4, seed=99, image_size=(320, 384)))  # reuse the canvas in between
    again = next(generate_diagrams(1, seed=7, start=4))
    assert png(again["image"]) == png(first[4]["image"]) and again["__key__"] == first[4]["__key__"]
    other = next(generate_diagrams(1, seed=8, start=4))
    assert png(other["image"]) != png(first[4]["image"])


def test_english_caption_does_not_depend_on_other_languages():
    en = [s["text"] for s in generate_diagrams(5, seed=3)]
    both = [s["text"] for s in generate_diagrams(5, seed=3, languages=("en", "zh"))]
    assert [b["en"] for b in both] == en
    assert all(re.search(r"[\u4e00-\u9fff]", b["zh"]) for b in both)


def test_several_captions_per_diagram_keep_the_first_and_state_the_type():
    one = list(generate_diagrams(6, seed=11))
    three = list(generate_diagrams(6, seed=11, captions=3))
    for a, b in zip(one, three):
        assert png(a["image"]) == png(b["image"])
        assert isinstance(b["text"], list) and len(b["text"]) == 3 and b["text"][0] == a["text"]
        assert len(set(b["text"])) >= 2  # other fact subsets and templates
    both = next(generate_diagrams(1, seed=11, captions=2, languages=("en", "zh")))
    assert set(both) >= {"text"} and len(both["text"]["en"]) == 2 and len(both["text"]["zh"]) == 2
    with pytest.raises(ValueError, match="captions per diagram"):
        next(generate_diagrams(1, captions=0))


def test_every_function_caption_names_its_family():
    words = {
        "polynomial": "polynomial",
        "sine": "sine",
        "cosine": "cosine",
        "tangent": "tangent",
        "exponential": "exponential",
        "logarithm": "logarithmic",
        "absolute_value": "absolute value",
    }
    plots = list(generate_diagrams(40, seed=6, families=["function_plot"], captions=3))
    for sample in plots:
        word = words[sample["meta"]["function_family"]]
        for text in sample["text"]:
            assert word in text.split(". ")[0].lower(), text


def test_every_conic_caption_names_its_shape():
    words = {"coordinate_circle": "circle", "coordinate_ellipse": "ellipse", "coordinate_parabola": "parabola"}
    seen = set()
    for sample in generate_diagrams(60, seed=3, families=["analytic_geometry"], captions=4):
        word = words.get(sample["meta"]["diagram_type"])
        if word is None:
            continue
        seen.add(word)
        for text in sample["text"]:
            assert word in text.split(". ")[0].lower(), text
    assert seen == set(words.values())


def test_required_facts_come_right_after_the_introduction():
    facts = [Fact("circle_intro", {"centre": "O"}, required=True)]
    facts += [Fact("radius_plain", {"val": "3"}), Fact("circle_area", {"val": "28.27"}), Fact("grid")]
    facts += [Fact("tangent", {"line": "PT", "point": "T", "external": "P"}, required=True)]
    facts += [Fact("chord", {"seg": "AB"}, required=True)]
    orders = set()
    for seed in range(40):
        captions, stated = compose_caption(facts, np.random.default_rng(seed), ("en", "zh"))
        kinds = [f["kind"] for f in stated]
        assert kinds[0] == "circle_intro" and set(kinds[1:3]) == {"tangent", "chord"}, kinds
        assert captions["en"].count(". ") == len(kinds) - 1  # one sentence per stated fact, in that order
        orders.add(tuple(kinds))
    assert len(orders) > 3  # both groups are still shuffled, and optional facts come and go


def test_introductions_with_an_equation_are_also_written_as_name_then_equation():
    words = {"sine": "sine", "cosine": "cosine", "tangent": "tangent", "exponential": "exponential"}
    forms = {"whole": 0, "name_then_equation": 0, "name_only": 0}
    for sample in generate_diagrams(80, seed=4, families=["function_plot"], captions=4):
        family = sample["meta"]["function_family"]
        expression = sample["meta"]["expression"]
        for text in sample["text"]:
            first, second = (text.split(". ") + [""])[:2]
            if expression in first:
                forms["whole"] += 1
                continue
            # naming sentence: the family, no formula; the formula, if stated, is the very next sentence
            if family in words:
                assert words[family] in first.lower(), text
            assert "=" not in first, text
            if expression in text:
                assert expression in second, text
                forms["name_then_equation"] += 1
            else:
                forms["name_only"] += 1
    # about half whole; the other half names the family, with the equation kept like an optional fact
    assert forms["whole"] > 100 and forms["name_then_equation"] > 30 and forms["name_only"] > 30, forms
    facts = [Fact("line_intro", {"eq": "y = 2x + 1"}, required=True), Fact("slope", {"val": "2"})]
    kinds = {
        tuple(f["kind"] for f in compose_caption(facts, np.random.default_rng(s), ("en", "zh"))[1][:2])
        for s in range(60)
    }
    assert ("line_intro_named", "line_intro_equation") in kinds and any(k[0] == "line_intro" for k in kinds)
    assert any(k[0] == "line_intro_named" and "line_intro_equation" not in k for k in kinds)
    # an introduction without an equation has no split form and is always stated as itself
    facts = [Fact("circle_intro", {"centre": "O"}, required=True)]
    assert all(compose_caption(facts, np.random.default_rng(s))[1][0]["kind"] == "circle_intro" for s in range(30))


def test_some_captions_are_brief():
    facts = [Fact("circle_intro", {"centre": "O"}, required=True), Fact("chord", {"seg": "AB"}, required=True)]
    facts += [Fact("radius_plain", {"val": "3"}), Fact("circle_area", {"val": "28.27"}), Fact("grid")]
    facts += [Fact("diameter", {"seg": "CD", "centre": "O"}), Fact("radius_val", {"seg": "OA", "val": "3"})]
    lengths = [len(compose_caption(facts, np.random.default_rng(s))[1]) for s in range(400)]
    brief = lengths.count(2) / len(lengths)  # the introduction and the chord, nothing else
    # BRIEF_CAPTION_PROBABILITY of 0.25, plus the odd full draw that keeps none of the five
    assert 0.2 < brief < 0.4, brief
    assert max(lengths) == 7 and len(set(lengths)) == 6


def test_family_selection_and_proportions():
    only = list(generate_diagrams(8, seed=2, families=["analytic_geometry"]))
    assert {s["meta"]["family"] for s in only} == {"analytic_geometry"}
    funcs = list(generate_diagrams(6, seed=2, proportions={"function_plot": 1.0}))
    assert {s["meta"]["family"] for s in funcs} == {"function_plot"}
    config = EngineConfig.create(0)
    counts = {f: 0 for f in FAMILIES}
    for i in range(3000):
        rng = np.random.default_rng([0, i])
        counts[config.families[int(rng.choice(len(config.families), p=config.weights))]] += 1
    assert abs(counts["plane_geometry"] / 3000 - 0.5) < 0.04


def test_bad_options_raise_clear_errors():
    with pytest.raises(UnknownNameError, match="Did you mean: function_plot"):
        EngineConfig.create(0, families=["function_plots"])
    with pytest.raises(ValueError, match="image_size"):
        EngineConfig.create(0, image_size=(400, 200))
    with pytest.raises(ValueError, match="seed"):
        EngineConfig.create(-1)
    with pytest.raises(UnknownNameError, match="caption language"):
        EngineConfig.create(0, languages=["fr"])


# ----------------------------------------------------------------------------- captions
def test_template_pools_cover_the_same_facts_in_every_language():
    assert set(LANGUAGES) == set(TEMPLATES)
    kinds = {lang: set(TEMPLATES[lang]) for lang in LANGUAGES}
    assert kinds["en"] == kinds["zh"]
    assert all(len(pool) >= 2 for pool in TEMPLATES["en"].values())


@pytest.mark.parametrize("family", FAMILIES)
def test_every_fact_renders_with_every_template(family):
    canvas = DiagramCanvas()
    for name in list_diagram_types(family):
        kind = get_diagram_type(name)
        for seed in range(3):
            rng = np.random.default_rng([seed, 11])
            diagram = kind.build(rng, canvas, sample_style(rng, 224, family))
            for fact in diagram.facts:
                for lang in LANGUAGES:
                    pool = TEMPLATES[lang][fact.kind]
                    for k in range(len(pool)):
                        text = render_fact(fact, lang, (k + 0.5) / len(pool))
                        assert "{" not in text and "}" not in text and text.strip(), (fact, lang, k)


# ----------------------------------------------------------------------------- function plots
def f_eval(family, c, x):
    x = np.asarray(x, dtype=float)
    if family == "polynomial":
        return np.polyval(c["coeffs"], x)
    if family == "sine":
        return c["a"] * np.sin(c["b"] * x) + c["d"]
    if family == "cosine":
        return c["a"] * np.cos(c["b"] * x) + c["d"]
    if family == "tangent":
        return c["a"] * np.tan(c["b"] * x) + c["d"]
    if family == "exponential":
        return c["a"] * c["base"] ** x + c["d"]
    if family == "logarithm":
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(x > c["h"], c["a"] * np.log(np.abs(x - c["h"])) / np.log(c["base"]) + c["d"], np.nan)
    if family == "absolute_value":
        return c["a"] * np.abs(x - c["h"]) + c["k"]
    raise AssertionError(family)


def parse_x(text):
    m = re.fullmatch(r"(-?)(\d*)π(?:/(\d+))?", text)
    if m:
        return (-1 if m.group(1) else 1) * int(m.group(2) or 1) * math.pi / int(m.group(3) or 1)
    return float(text)


def parse_point(text):
    x, y = text.strip("()").split(", ")
    return parse_x(x), float(y)


def check_function_meta(meta):
    family, c = meta["function_family"], meta["coefficients"]
    x0, x1 = meta["x_range"]
    f = lambda x: f_eval(family, c, x)  # noqa: E731
    for z in meta["zeros"]:
        assert x0 - 1e-9 <= z <= x1 + 1e-9
        assert abs(float(f(z))) < 1e-7, (meta["expression"], z)
    h = 1e-6
    for e in meta["extrema"]:
        x, y, kind = e["x"], e["y"], e["kind"]
        assert x0 < x < x1 and abs(float(f(x)) - y) < 1e-9
        if family != "absolute_value":
            slope = (float(f(x + h)) - float(f(x - h))) / (2 * h)
            assert abs(slope) < 1e-4, (meta["expression"], x, slope)
        d = 1e-3 * (x1 - x0)
        side = [float(f(x - d)), float(f(x + d))]
        assert all(v < y for v in side) if kind == "max" else all(v > y for v in side), (meta["expression"], e)
    vertical, horizontal = meta["asymptotes"]["vertical"], meta["asymptotes"]["horizontal"]
    if family == "tangent":
        b = c["b"]
        expected = [(math.pi / 2 + k * math.pi) / b for k in range(-20, 21)]
        expected = [v for v in expected if x0 < v < x1]
        assert np.allclose(sorted(vertical), expected)
        assert all(abs(math.cos(b * v)) < 1e-9 for v in vertical)
    elif family == "logarithm":
        assert vertical == ([c["h"]] if x0 <= c["h"] < x1 else [])
    else:
        assert vertical == []
    assert horizontal == ([c["d"]] if family == "exponential" else [])
    # completeness: every sign change of f (away from asymptotes) is a stated zero
    xs = np.linspace(x0, x1, 4001)
    ys = f(xs)
    for j in np.where(np.sign(ys[:-1]) * np.sign(ys[1:]) < 0)[0]:
        if family == "tangent" and (abs(ys[j]) > 5 or abs(ys[j + 1]) > 5):
            continue
        assert any(abs(xs[j] - z) <= (x1 - x0) / 2000 for z in meta["zeros"]), (meta["expression"], xs[j])
    if family in ("polynomial", "sine", "cosine"):
        slopes = np.diff(ys)
        for j in np.where(np.sign(slopes[:-1]) * np.sign(slopes[1:]) < 0)[0]:
            assert any(abs(xs[j + 1] - e["x"]) <= (x1 - x0) / 1000 for e in meta["extrema"]), (
                meta["expression"],
                xs[j + 1],
            )


@pytest.mark.parametrize("family", FUNCTION_FAMILIES)
def test_function_analysis_is_correct(family):
    for i in range(60):
        fa = analyse_function(family, np.random.default_rng([5, i]))
        meta = {
            "function_family": family,
            "coefficients": fa.coefficients,
            "x_range": list(fa.x_range),
            "zeros": fa.zeros,
            "expression": fa.expression,
            "extrema": [{"x": x, "y": y, "kind": k} for x, y, k in fa.extrema],
            "asymptotes": {"vertical": fa.vertical_asymptotes, "horizontal": fa.horizontal_asymptotes},
        }
        check_function_meta(meta)


@pytest.mark.parametrize("family", FUNCTION_FAMILIES)
def test_function_captions_state_what_meta_computes(family):
    for i in range(8):
        sample = render_diagram(f"{family}_plot", seed=2, index=i, image_size=224)
        meta = sample["meta"]
        assert meta["function_family"] == family and meta["shape"] == "function_graph"
        check_function_meta(meta)
        kinds = [f["kind"] for f in meta["caption_facts"]]
        # the expression is stated unless the caption only names the family (a named intro without its equation)
        assert (meta["expression"] in sample["text"]) == (kinds[0] == "func_intro" or "func_intro_equation" in kinds)
        assert family.replace("_", " ")[:5] in sample["text"].split(". ")[0].lower()
        for fact in meta["caption_facts"]:
            v = fact["values"]
            if fact["kind"] == "func_zeros":
                assert np.allclose([parse_x(x) for x in v["xs"]], meta["zeros"], atol=0.006)
            elif fact["kind"] == "func_zero_one":
                assert len(meta["zeros"]) == 1 and abs(parse_x(v["x"]) - meta["zeros"][0]) < 0.006
            elif fact["kind"] == "func_no_zeros":
                assert meta["zeros"] == []
            elif fact["kind"] in ("func_max_one", "func_min_one"):
                x, y = parse_point(v["pt"])
                kind = fact["kind"][5:8]
                assert any(
                    abs(x - e["x"]) < 0.006 and abs(y - e["y"]) < 0.006 and e["kind"] == kind for e in meta["extrema"]
                )
            elif fact["kind"] == "func_range":
                assert np.allclose([parse_x(v["x0"]), parse_x(v["x1"])], meta["x_range"], atol=0.006)
            elif fact["kind"] == "func_hasym":
                assert float(v["eq"].split("= ")[1]) == meta["asymptotes"]["horizontal"][0]


# ----------------------------------------------------------------------------- geometry
def _sides_angles(vertices):
    pts = np.array(vertices, dtype=float)
    n = len(pts)
    sides = [float(np.linalg.norm(pts[(i + 1) % n] - pts[i])) for i in range(n)]
    angles = []
    for i in range(n):
        a, b = pts[i - 1] - pts[i], pts[(i + 1) % n] - pts[i]
        angles.append(math.degrees(math.acos(np.clip(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))
    return pts, sides, angles


def _parallel(p, q, r, s):
    u, v = q - p, s - r
    return abs(u[0] * v[1] - u[1] * v[0]) < 1e-6 * np.linalg.norm(u) * np.linalg.norm(v)


@pytest.mark.parametrize("name", ["equilateral_triangle", "isosceles_triangle", "right_triangle", "scalene_triangle"])
def test_triangle_kinds_match_side_lengths_and_angles(name):
    for i in range(10):
        meta = render_diagram(name, seed=4, index=i, image_size=224)["meta"]
        pts, sides, angles = _sides_angles([meta["vertices"][v] for v in meta["labels"][:3]])
        assert abs(sum(angles) - 180) < 1e-6
        s = sorted(sides)
        equal_pairs = sum(abs(s[a] - s[b]) < 1e-6 * s[2] for a, b in ((0, 1), (1, 2), (0, 2)))
        right = any(abs(a - 90) < 1e-6 for a in angles)
        if name == "equilateral_triangle":
            assert equal_pairs == 3
        elif name == "isosceles_triangle":
            assert equal_pairs == 1 and not right
            assert max(s[1] / s[0], s[2] / s[1]) > 1.05  # the third side visibly differs
        elif name == "right_triangle":
            assert right
        else:
            assert equal_pairs == 0 and not right and min(abs(a - 90) for a in angles) >= 5
        assert meta["angle_kind"] == ("right" if right else ("obtuse" if max(angles) > 90 else "acute"))


def test_quadrilateral_kinds_hold_on_the_drawn_vertices():
    for name in ("square", "rectangle", "parallelogram", "rhombus", "trapezoid", "kite"):
        for i in range(6):
            meta = render_diagram(name, seed=6, index=i, image_size=224)["meta"]
            pts, sides, angles = _sides_angles([meta["vertices"][v] for v in meta["labels"][:4]])
            a, b, c, d = pts
            par1, par2 = _parallel(a, b, d, c), _parallel(b, c, a, d)
            all_equal = max(sides) - min(sides) < 1e-6 * max(sides)
            right = all(abs(x - 90) < 1e-6 for x in angles)
            assert meta["quadrilateral_kind"] == name
            if name == "square":
                assert all_equal and right
            elif name == "rectangle":
                assert right and not all_equal
            elif name == "parallelogram":
                assert par1 and par2 and not right and not all_equal
            elif name == "rhombus":
                assert all_equal and not right and par1 and par2
            elif name == "trapezoid":
                assert par1 != par2
            else:
                assert abs(sides[0] - sides[3]) < 1e-6 and abs(sides[1] - sides[2]) < 1e-6 and not all_equal
            if meta["area"] is not None:
                x, y = pts[:, 0], pts[:, 1]
                shoelace = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
                assert abs(shoelace - meta["area"]) < 1e-6 * max(1.0, shoelace)


def test_circle_facts_are_computed():
    for i in range(8):
        chord = render_diagram("circle_chord", seed=8, index=i)["meta"]
        for ch in chord["chords"]:
            assert abs(ch["length"] - 2 * math.sqrt(chord["radius"] ** 2 - ch["distance_from_centre"] ** 2)) < 1e-9
        tangent = render_diagram("circle_tangent", seed=8, index=i)["meta"]
        r, dist, t = tangent["radius"], tangent["external_point_distance"], tangent["tangent_length"]
        assert abs(t * t + r * r - dist * dist) < 1e-9 and dist > r
        inscribed = render_diagram("inscribed_polygon", seed=8, index=i)["meta"]
        for v in inscribed["labels"]:
            if v != "O":
                assert abs(np.linalg.norm(inscribed["vertices"][v]) - inscribed["radius"]) < 1e-9
        if inscribed["inscribed_kind"] == "thales":
            assert any(abs(a - 90) < 1e-9 for a in inscribed["angles"].values())


def test_analytic_facts_are_computed():
    for i in range(10):
        line = render_diagram("coordinate_line", seed=9, index=i)["meta"]
        for entry in line["lines"]:
            for x, y in entry["through"]:
                if entry["slope"] is None:
                    assert x == entry["x_intercept"]
                else:
                    assert abs(entry["slope"] * x + entry["y_intercept"] - y) < 1e-9
        if "intersection" in line:
            x, y = line["intersection"]
            for entry in line["lines"]:
                if entry["slope"] is not None:
                    assert abs(entry["slope"] * x + entry["y_intercept"] - y) < 1e-9
        circle = render_diagram("coordinate_circle", seed=9, index=i)["meta"]
        (h, k), r = circle["centre"], circle["radius"]
        for pts in circle["axis_crossings"].values():
            for x, y in pts:
                assert abs((x - h) ** 2 + (y - k) ** 2 - r * r) < 1e-9
        ellipse = render_diagram("coordinate_ellipse", seed=9, index=i)["meta"]
        a, b = ellipse["semi_axes"]
        (h, k), c = ellipse["centre"], math.sqrt(abs(a * a - b * b))
        assert all(abs(math.dist(f, (h, k)) - c) < 1e-9 for f in ellipse["foci"])
        parabola = render_diagram("coordinate_parabola", seed=9, index=i)["meta"]
        (h, k), a, (fx, fy) = parabola["vertex"], parabola["a"], parabola["focus"]
        directrix = parabola["directrix_value"]
        assert float(parabola["directrix"].split("= ")[1]) == directrix  # written exactly
        for t in (-2.0, 0.5, 3.0):  # points on the curve are as far from the focus as from the directrix
            if parabola["orientation"] == "vertical":
                x, y = h + t, k + a * t * t
                assert abs(math.dist((x, y), (fx, fy)) - abs(y - directrix)) < 1e-9
            else:
                x, y = h + a * t * t, k + t
                assert abs(math.dist((x, y), (fx, fy)) - abs(x - directrix)) < 1e-9


_LETTER_KEYS = {
    "name",
    "seg",
    "seg1",
    "seg2",
    "vertex",
    "angle",
    "foot",
    "chord",
    "perp",
    "diam",
    "line",
    "point",
    "external",
    "radius",
    "tangent",
    "d1",
    "d2",
    "v1",
    "v2",
    "centre",
    "p",
    "q",
    "base",
    "names",
}


def test_caption_letters_are_the_drawn_labels():
    for sample in generate_diagrams(150, seed=12, families=["plane_geometry", "analytic_geometry"]):
        drawn = last_drawn_labels()
        meta = sample["meta"]
        for label in meta["labels"]:
            assert any(t == label or t.startswith(label + "(") for t in drawn), (label, drawn)
        allowed = set("".join(meta["labels"]))
        for fact in meta["caption_facts"]:
            for key, value in fact["values"].items():
                if key in _LETTER_KEYS:
                    letters = set(re.sub(r"[^A-Z]", "", "".join(value) if isinstance(value, list) else value))
                    assert letters <= allowed, (fact, meta["labels"])


def test_labels_use_only_glyphs_every_font_has():
    from matplotlib.ft2font import FT2Font

    for name in FONTS:
        font = FT2Font(font_path(name))
        assert all(font.get_char_index(ord(ch)) for ch in SAFE_GLYPHS), name
    for _ in generate_diagrams(30, seed=13):
        for text in last_drawn_labels():
            assert all(ord(ch) < 128 or ch in SAFE_GLYPHS for ch in text), text
