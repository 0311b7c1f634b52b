"""Caption templates (English and Chinese) and the composer that turns diagram facts into captions.

A diagram builder states :class:`~domainclip.domains.math.synthetic.registry.Fact` objects; the
composer keeps the introduction and the required facts, keeps each other fact with a per-caption
probability, shuffles them, and writes each with a template drawn from its pool. Facts are the
same in every language and the random draws do not depend on which languages are requested, so
the English caption of a sample is identical whether or not the Chinese one is also made.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from domainclip.core.plugins import UnknownNameError
from domainclip.domains.math.synthetic.registry import Fact

__all__ = [
    "BRIEF_CAPTION_PROBABILITY",
    "LANGUAGES",
    "NAMED_INTRO_PROBABILITY",
    "TEMPLATES",
    "VOCABULARY",
    "compose_caption",
    "render_fact",
]

#: Caption languages.
LANGUAGES: tuple[str, ...] = ("en", "zh")

#: Language -> fact kind -> template pool. ``{x_w}`` is a translated word, ``{a_x_w}`` the same with
#: its article; ``{rel}`` is ``=`` or ``≈`` and ``{about}`` ``about `` or nothing, for approximate values.
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        # ---- plane geometry
        "tri_intro": (
            "The diagram shows {a_kind_w} triangle {name}.",
            "{A_kind_w} triangle {name} is drawn.",
            "A geometry figure of {a_kind_w} triangle {name}.",
            "Triangle {name} is {a_kind_w} triangle.",
        ),
        "tri_angle_kind": ("{name} is {a_kind_w} triangle.", "Triangle {name} is {kind_w}-angled."),
        "obtuse_angle_at": ("The angle at {vertex} is obtuse.", "Angle {vertex} is greater than 90°."),
        "side_length": (
            "{seg} {rel} {val}.",
            "The length of {seg} is {about}{val}.",
            "Side {seg} measures {about}{val}.",
        ),
        "segment_length": (
            "{seg} {rel} {val}.",
            "The length of {seg} is {about}{val}.",
            "Segment {seg} is {about}{val} long.",
        ),
        "angle_value": (
            "∠{angle} {rel} {val}°.",
            "Angle {vertex} measures {about}{val}°.",
            "The angle at {vertex} is {about}{val} degrees.",
        ),
        "right_angle_at": (
            "The angle at {vertex} is a right angle.",
            "∠{angle} = 90°.",
            "There is a right angle at {vertex}.",
        ),
        "right_mark": ("A small square marks the right angle at {vertex}.", "A right-angle mark is drawn at {vertex}."),
        "hypotenuse": ("{seg} is the hypotenuse.", "The hypotenuse is {seg}."),
        "all_sides_equal": ("All sides of {name} are equal.", "{name} has sides of equal length."),
        "all_angles_60": ("Each angle of {name} is 60°.", "All three angles measure 60 degrees."),
        "equal_sides": (
            "{seg1} = {seg2}.",
            "Sides {seg1} and {seg2} are equal.",
            "{seg1} and {seg2} have the same length.",
        ),
        "base_angles_equal": ("∠{v1} = ∠{v2}.", "The base angles at {v1} and {v2} are equal."),
        "equal_marks": ("Tick marks show the equal sides.", "Equal sides are marked with ticks."),
        "altitude": (
            "{seg} is the altitude from {seg_first} to {base}, meeting it at {foot}.",
            "The height {seg} is perpendicular to {base}.",
        ),
        "quad_intro": (
            "The diagram shows {a_kind_w} {name}.",
            "Quadrilateral {name} is {a_kind_w}.",
            "{A_kind_w} {name} is drawn.",
            "A geometry figure of {a_kind_w} {name}.",
        ),
        "trapezoid_kind": ("{name} is {a_kind_w} trapezoid.", "It is {a_kind_w} trapezoid."),
        "all_right_angles": ("All four angles of {name} are right angles.", "Every angle of {name} measures 90°."),
        "parallel": ("{seg1} is parallel to {seg2}.", "{seg1} ∥ {seg2}.", "Sides {seg1} and {seg2} are parallel."),
        "parallel_marks": ("Arrow marks show the parallel sides.", "Parallel sides carry arrow marks."),
        "diagonals": ("The diagonals {d1} and {d2} are drawn.", "Diagonals {d1} and {d2} are shown."),
        "diagonals_equal": ("The diagonals {d1} and {d2} are equal in length.", "{d1} = {d2}."),
        "diagonals_perpendicular": ("The diagonals {d1} and {d2} are perpendicular.", "{d1} ⊥ {d2}."),
        "diagonals_bisect": ("The diagonals bisect each other.", "{d1} and {d2} cut each other in half."),
        "perimeter": ("The perimeter of {name} is {about}{val}.", "{name} has perimeter {about}{val}."),
        "area": ("The area of {name} is {about}{val}.", "{name} has an area of {about}{val} square units."),
        "regpoly_intro": (
            "The diagram shows a regular {shape_w} {name}.",
            "A regular {shape_w} {name} with {n} equal sides.",
            "Regular {shape_w} {name} is drawn.",
        ),
        "interior_angle": (
            "Each interior angle is {about}{val}°.",
            "Every interior angle measures {about}{val} degrees.",
        ),
        "angle_sum": ("The interior angles of {name} add up to {val}°.", "The angle sum is {val} degrees."),
        "exterior_angle": ("Each exterior angle is {about}{val}°.", "The exterior angles measure {about}{val}° each."),
        "centre_radius": (
            "{centre} is the centre and {seg} {rel} {val} is a circumradius.",
            "The distance from the centre {centre} to each vertex is {about}{val}.",
        ),
        "circle_intro": (
            "The diagram shows a circle with centre {centre}.",
            "A circle centred at {centre}.",
            "Circle {centre} is drawn.",
        ),
        "diameter": (
            "{seg} is a diameter through {centre}.",
            "The segment {seg} passes through the centre {centre}, so it is a diameter.",
        ),
        "chord": ("{seg} is a chord of the circle.", "A chord {seg} is drawn."),
        "radius_val": (
            "The radius {seg} is {val}.",
            "{seg} = {val} is a radius.",
            "The circle has radius {val}, shown by {seg}.",
        ),
        "radius_plain": ("The radius is {val}.", "The circle has radius {val}."),
        "perp_bisect": (
            "{perp} is perpendicular to {chord}, so {foot} is the midpoint of {chord}.",
            "{perp} ⊥ {chord} at {foot}, which bisects the chord.",
        ),
        "centre_distance": ("The chord is {about}{val} from the centre ({seg} {rel} {val}).", "{seg} {rel} {val}."),
        "chord_length": ("The chord {seg} has length {about}{val}.", "{seg} {rel} {val}."),
        "second_chord": ("A second chord {seg} has length {about}{val}.", "Another chord {seg} {rel} {val} is drawn."),
        "tangent": (
            "{line} is tangent to the circle at {point}.",
            "The line through {external} touches the circle at {point}.",
            "A tangent from {external} meets the circle at {point}.",
        ),
        "radius_perp": ("The radius {radius} is perpendicular to the tangent {tangent}.", "{radius} ⊥ {tangent}."),
        "two_tangents": (
            "The two tangent segments {seg1} and {seg2} are equal.",
            "{seg1} = {seg2}, two tangents from one point.",
        ),
        "inscribed_intro": (
            "The diagram shows {a_shape_w} {name} inscribed in a circle with centre {centre}.",
            "{A_shape_w} {name} is inscribed in circle {centre}.",
            "All vertices of {shape_w} {name} lie on a circle.",
        ),
        "inscribed_intro_plain": (
            "The diagram shows {a_shape_w} {name} inscribed in a circle.",
            "{A_shape_w} {name} is inscribed in a circle.",
            "All vertices of {shape_w} {name} lie on a circle.",
        ),
        "thales": (
            "{diam} is a diameter, so ∠{angle} is a right angle.",
            "Since {diam} is a diameter, the angle at {vertex} is 90°.",
        ),
        "cyclic_opposite": ("Opposite angles {v1} and {v2} add up to 180°.", "∠{v1} + ∠{v2} = 180°."),
        # ---- analytic geometry
        "grid": ("A square grid is drawn in the background.", "The coordinate grid is shown.", "Grid lines are drawn."),
        "points_intro": (
            "The coordinate plane shows {n} points {names}.",
            "Points {names} are plotted on a coordinate plane.",
            "The diagram shows {n} points {names} on a coordinate plane.",
        ),
        "point_coords": ("{name} is at {pt}.", "Point {name} has coordinates {pt}.", "{name}{pt}."),
        "on_axis": ("{name} lies on the {axis_w}.", "Point {name} is on the {axis_w}."),
        "quadrant": ("{name} lies in the {q_w} quadrant.", "Point {name} is in the {q_w} quadrant."),
        "segment_drawn": ("Segment {seg} is drawn.", "The points are joined by segment {seg}."),
        "midpoint_named": ("{name} is the midpoint of {seg}, at {pt}.", "The midpoint {name} of {seg} is {pt}."),
        "midpoint": ("The midpoint of {seg} is {pt}.", "{seg} has midpoint {pt}."),
        "distance": ("The distance {seg} is {about}{val}.", "{seg} {rel} {val}."),
        "line_intro": (
            "The graph of the line {eq} on a coordinate plane.",
            "A straight line with equation {eq}.",
            "The line {eq} is drawn.",
            "The diagram shows the line {eq} on a coordinate plane.",
        ),
        "line_intro_named": (
            "A straight line on a coordinate plane.",
            "The diagram shows a straight line on a coordinate plane.",
            "A line is drawn on a coordinate grid.",
            "The graph of a straight line.",
        ),
        "line_intro_equation": ("Its equation is {eq}.", "The line is {eq}."),
        "through_named": ("It passes through {p}{pt1} and {q}{pt2}.", "Points {p}{pt1} and {q}{pt2} lie on the line."),
        "through": ("The line passes through {pt1} and {pt2}.", "It goes through the points {pt1} and {pt2}."),
        "line_dir": ("The line is {dir_w}.", "It is a {dir_w} line."),
        "slope": ("Its slope is {val}.", "The slope is {val}."),
        "slope_undefined": ("Its slope is undefined.", "The line has no slope."),
        "y_int": ("The y-intercept is {val}.", "It crosses the y-axis at y = {val}."),
        "x_int": ("The x-intercept is {val}.", "It crosses the x-axis at x = {val}."),
        "second_line": ("A second line {eq} is also drawn.", "The line {eq} is drawn too."),
        "lines_parallel": ("The lines {eq1} and {eq2} are parallel.", "The two lines never meet: they are parallel."),
        "lines_perpendicular": ("The lines {eq1} and {eq2} are perpendicular.", "The two lines meet at a right angle."),
        "lines_intersect": ("The lines intersect at {pt}.", "The two lines cross at {pt}."),
        "circle_eq": (
            "The circle {eq} on a coordinate plane.",
            "A circle with equation {eq}.",
            "The graph of the circle {eq}.",
            "The diagram shows the circle {eq}.",
        ),
        "circle_eq_named": (
            "A circle on a coordinate plane.",
            "The diagram shows a circle on a coordinate plane.",
            "The graph of a circle on a coordinate grid.",
        ),
        "circle_eq_equation": ("Its equation is {eq}.", "The circle is {eq}."),
        "centre_at": ("Its centre {name} is at {pt}.", "The centre {name} has coordinates {pt}."),
        "centre_at_plain": ("Its centre is at {pt}.", "The centre is {pt}."),
        "axis_no_cross": ("It does not meet the {axis_w}.", "The curve does not cross the {axis_w}."),
        "axis_tangent": ("It touches the {axis_w} at {pt}.", "The {axis_w} is tangent to it at {pt}."),
        "axis_crossings": (
            "It crosses the {axis_w} at {about}{pts}.",
            "Its intersections with the {axis_w} are {about}{pts}.",
        ),
        "through_origin": ("It passes through the origin.", "The origin lies on it."),
        "circle_area": ("Its area is about {val}.", "The enclosed area is approximately {val}."),
        "ellipse_eq": (
            "The ellipse {eq} on a coordinate plane.",
            "An ellipse with equation {eq}.",
            "The graph of the ellipse {eq}.",
            "The diagram shows the ellipse {eq}.",
        ),
        "ellipse_eq_named": (
            "An ellipse on a coordinate plane.",
            "The diagram shows an ellipse on a coordinate plane.",
            "The graph of an ellipse on a coordinate grid.",
        ),
        "ellipse_eq_equation": ("Its equation is {eq}.", "The ellipse is {eq}."),
        "major_axis": ("The major axis is {dir_w} with length {val}.", "Its {dir_w} major axis has length {val}."),
        "minor_axis": ("The minor axis has length {val}.", "Its minor axis is {val} long."),
        "foci": ("The foci are at {about}{pts}.", "Its foci lie at {about}{pts}."),
        "eccentricity": ("The eccentricity is {about}{val}.", "It has eccentricity {about}{val}."),
        "foci_marked": ("The foci {n1} and {n2} are marked.", "Points {n1} and {n2} mark the foci."),
        "parabola_eq": (
            "The parabola {eq} on a coordinate plane.",
            "A parabola with equation {eq}.",
            "The graph of the parabola {eq}.",
            "The diagram shows the parabola {eq}.",
        ),
        "parabola_eq_named": (
            "A parabola on a coordinate plane.",
            "The diagram shows a parabola on a coordinate plane.",
            "The graph of a parabola on a coordinate grid.",
        ),
        "parabola_eq_equation": ("Its equation is {eq}.", "The parabola is {eq}."),
        "vertex_at": ("Its vertex is at {pt}.", "The vertex is {pt}."),
        "vertex_at_named": ("Its vertex {name} is at {pt}.", "The vertex {name} is {pt}."),
        "opens": ("It opens {dir_w}.", "The parabola opens {dir_w}."),
        "focus_at": ("The focus is at {pt}.", "Its focus is {pt}."),
        "directrix": ("The directrix is {eq}.", "Its directrix is the line {eq}."),
        "symmetry_axis": ("The axis of symmetry is {eq}.", "It is symmetric about {eq}."),
        "x_crossings": ("It crosses the x-axis at x {rel} {xs}.", "Its x-intercepts are {about}{xs}."),
        "focus_directrix_drawn": (
            "The focus F and the dashed directrix are drawn.",
            "The focus is marked F and the directrix is dashed.",
        ),
        "rect_intro": (
            "Rectangle {name} on a coordinate grid.",
            "The coordinate plane shows rectangle {name}.",
            "A rectangle {name} is drawn on grid paper.",
            "The diagram shows rectangle {name} on a coordinate grid.",
        ),
        "vertex_coords": ("{name} is at {pt}.", "Vertex {name} has coordinates {pt}."),
        "rect_dims": ("Its sides are {about}{w} and {about}{h} long.", "The rectangle is {about}{w} by {about}{h}."),
        "rect_centre": ("Its centre is at {pt}.", "The diagonals meet at {pt}."),
        "diagonal_len": ("Each diagonal has length {about}{val}.", "The diagonals are {about}{val} long."),
        "axis_aligned": ("The sides of {name} are parallel to the axes.", "{name} is aligned with the axes."),
        # ---- function plots
        "func_intro": (
            "The graph of {a_family_w} function {expr}.",
            "A plot of {expr}, {a_family_w} function.",
            "The {family_w} function {expr} is plotted.",
            "{A_family_w} function: {expr}.",
            "The diagram shows the graph of {a_family_w} function {expr}.",
            "A figure of the {family_w} function {expr}.",
        ),
        "func_intro_named": (
            "The graph of {a_family_w} function.",
            "A plot of {a_family_w} function.",
            "The diagram shows the graph of {a_family_w} function.",
            "A figure of {a_family_w} function on a coordinate plane.",
            "{A_family_w} function is plotted on coordinate axes.",
        ),
        "func_intro_equation": ("The function is {expr}.", "Its equation is {expr}.", "The curve is {expr}."),
        "func_range": (
            "It is shown for x from {x0} to {x1}.",
            "The plotted range is {x0} ≤ x ≤ {x1}.",
            "The x-axis runs from {x0} to {x1}.",
        ),
        "func_no_zeros": ("It has no zeros in the plotted range.", "The graph does not cross the x-axis here."),
        "func_zero_one": ("Its only zero in this range is x = {x}.", "The graph crosses the x-axis at x = {x}."),
        "func_zeros": (
            "It has {n} zeros in the plotted range: x = {xs}.",
            "The zeros shown are x = {xs}.",
            "The graph meets the x-axis at x = {xs}.",
        ),
        "func_max_one": ("It has a local maximum at {pt}.", "A local maximum is at {pt}."),
        "func_max_many": ("It has {n} local maxima: {pts}.", "Local maxima are at {pts}."),
        "func_min_one": ("It has a local minimum at {pt}.", "A local minimum is at {pt}."),
        "func_min_many": ("It has {n} local minima: {pts}.", "Local minima are at {pts}."),
        "func_no_extrema": ("It has no local extrema.", "There is no turning point."),
        "func_vasym": (
            "Vertical asymptotes: {eqs}.",
            "It has vertical asymptotes at {eqs}.",
            "The graph approaches the vertical asymptotes {eqs}.",
        ),
        "func_vasym_one": ("It has the vertical asymptote {eq}.", "The vertical line {eq} is an asymptote."),
        "func_hasym": ("It has the horizontal asymptote {eq}.", "The horizontal line {eq} is an asymptote."),
        "func_yint": ("The y-intercept is {about}{y}.", "It crosses the y-axis at y {rel} {y}."),
        "func_period": ("Its period is {val}.", "The function repeats every {val}."),
        "func_amplitude": ("Its amplitude is {val}.", "The amplitude is {val}."),
        "func_monotonic": ("The function is {dir_w}.", "It is {dir_w} over its whole domain."),
        "func_domain": ("It is defined for x > {h}.", "Its domain is x > {h}."),
    },
    "zh": {
        "tri_intro": ("图中是一个{kind_w}三角形{name}。", "{kind_w}三角形{name}。"),
        "tri_angle_kind": ("三角形{name}是{kind_w}三角形。",),
        "obtuse_angle_at": ("{vertex}处的角是钝角。",),
        "side_length": ("{seg}{rel}{val}。", "边{seg}的长度{rel}{val}。"),
        "segment_length": ("{seg}{rel}{val}。", "线段{seg}的长度{rel}{val}。"),
        "angle_value": ("∠{angle}{rel}{val}°。", "角{vertex}{rel}{val}°。"),
        "right_angle_at": ("{vertex}处是直角。", "∠{angle}=90°。"),
        "right_mark": ("{vertex}处画有直角符号。",),
        "hypotenuse": ("{seg}是斜边。",),
        "all_sides_equal": ("{name}的各边相等。",),
        "all_angles_60": ("{name}的每个角都是60°。",),
        "equal_sides": ("{seg1}={seg2}。", "边{seg1}与{seg2}相等。"),
        "base_angles_equal": ("∠{v1}=∠{v2}。", "底角{v1}与{v2}相等。"),
        "equal_marks": ("相等的边用短线标出。",),
        "altitude": ("{seg}是{base}上的高，垂足为{foot}。",),
        "quad_intro": ("图中是{kind_w}{name}。", "四边形{name}是{kind_w}。"),
        "trapezoid_kind": ("{name}是{kind_w}梯形。",),
        "all_right_angles": ("{name}的四个角都是直角。",),
        "parallel": ("{seg1}∥{seg2}。", "{seg1}与{seg2}平行。"),
        "parallel_marks": ("平行的边用箭头标出。",),
        "diagonals": ("画出了对角线{d1}和{d2}。",),
        "diagonals_equal": ("对角线{d1}与{d2}相等。",),
        "diagonals_perpendicular": ("对角线{d1}⊥{d2}。",),
        "diagonals_bisect": ("对角线互相平分。",),
        "perimeter": ("{name}的周长{rel}{val}。",),
        "area": ("{name}的面积{rel}{val}。",),
        "regpoly_intro": ("图中是正{shape_w}{name}。", "正{shape_w}{name}有{n}条相等的边。"),
        "interior_angle": ("每个内角{rel}{val}°。",),
        "angle_sum": ("{name}的内角和为{val}°。",),
        "exterior_angle": ("每个外角{rel}{val}°。",),
        "centre_radius": ("{centre}是中心，{seg}{rel}{val}。",),
        "circle_intro": ("图中是以{centre}为圆心的圆。", "圆{centre}。"),
        "diameter": ("{seg}经过圆心{centre}，是直径。",),
        "chord": ("{seg}是圆的一条弦。",),
        "radius_val": ("半径{seg}={val}。",),
        "radius_plain": ("圆的半径为{val}。",),
        "perp_bisect": ("{perp}⊥{chord}，所以{foot}是{chord}的中点。",),
        "centre_distance": ("弦到圆心的距离{seg}{rel}{val}。",),
        "chord_length": ("弦{seg}的长度{rel}{val}。",),
        "second_chord": ("另一条弦{seg}{rel}{val}。",),
        "tangent": ("{line}与圆相切于点{point}。", "过点{external}的切线与圆相切于{point}。"),
        "radius_perp": ("半径{radius}⊥切线{tangent}。",),
        "two_tangents": ("两条切线段{seg1}={seg2}。",),
        "inscribed_intro": ("{shape_w}{name}内接于以{centre}为圆心的圆。", "图中{shape_w}{name}的顶点都在圆上。"),
        "inscribed_intro_plain": ("{shape_w}{name}内接于圆。", "图中{shape_w}{name}的顶点都在圆上。"),
        "thales": ("{diam}是直径，所以∠{angle}是直角。",),
        "cyclic_opposite": ("对角{v1}与{v2}之和为180°。",),
        "grid": ("背景中画有方格网。", "图中显示坐标网格。"),
        "points_intro": ("坐标平面上有{n}个点{names}。", "图中是坐标平面上的{n}个点{names}。"),
        "point_coords": ("点{name}的坐标是{pt}。", "{name}{pt}。"),
        "on_axis": ("点{name}在{axis_w}上。",),
        "quadrant": ("点{name}在第{q_w}象限。",),
        "segment_drawn": ("画出了线段{seg}。",),
        "midpoint_named": ("{name}是{seg}的中点，坐标为{pt}。",),
        "midpoint": ("{seg}的中点是{pt}。",),
        "distance": ("{seg}的长度{rel}{val}。",),
        "line_intro": ("坐标平面上的直线{eq}。", "直线{eq}的图像。", "图中是直线{eq}。"),
        "line_intro_named": ("坐标平面上的一条直线。", "图中是坐标平面上的一条直线。"),
        "line_intro_equation": ("直线方程为{eq}。", "这条直线是{eq}。"),
        "through_named": ("直线经过{p}{pt1}和{q}{pt2}。",),
        "through": ("直线经过点{pt1}和{pt2}。",),
        "line_dir": ("这条直线是{dir_w}的。",),
        "slope": ("斜率为{val}。",),
        "slope_undefined": ("斜率不存在。",),
        "y_int": ("y轴截距为{val}。",),
        "x_int": ("x轴截距为{val}。",),
        "second_line": ("还画出了直线{eq}。",),
        "lines_parallel": ("直线{eq1}与{eq2}平行。",),
        "lines_perpendicular": ("直线{eq1}与{eq2}互相垂直。",),
        "lines_intersect": ("两直线交于{pt}。",),
        "circle_eq": ("坐标平面上的圆{eq}。", "方程为{eq}的圆。", "图中是圆{eq}。"),
        "circle_eq_named": ("坐标平面上的一个圆。", "图中是坐标平面上的一个圆。"),
        "circle_eq_equation": ("圆的方程为{eq}。", "这个圆是{eq}。"),
        "centre_at": ("圆心{name}的坐标是{pt}。",),
        "centre_at_plain": ("中心在{pt}。",),
        "axis_no_cross": ("它与{axis_w}没有交点。",),
        "axis_tangent": ("它与{axis_w}相切于{pt}。",),
        "axis_crossings": ("它与{axis_w}的交点{rel}{pts}。",),
        "through_origin": ("它经过原点。",),
        "circle_area": ("面积约为{val}。",),
        "ellipse_eq": ("坐标平面上的椭圆{eq}。", "方程为{eq}的椭圆。", "图中是椭圆{eq}。"),
        "ellipse_eq_named": ("坐标平面上的一个椭圆。", "图中是坐标平面上的一个椭圆。"),
        "ellipse_eq_equation": ("椭圆的方程为{eq}。", "这个椭圆是{eq}。"),
        "major_axis": ("长轴是{dir_w}的，长度为{val}。",),
        "minor_axis": ("短轴长度为{val}。",),
        "foci": ("焦点{rel}{pts}。",),
        "eccentricity": ("离心率{rel}{val}。",),
        "foci_marked": ("图中标出了焦点{n1}和{n2}。",),
        "parabola_eq": ("坐标平面上的抛物线{eq}。", "方程为{eq}的抛物线。", "图中是抛物线{eq}。"),
        "parabola_eq_named": ("坐标平面上的一条抛物线。", "图中是坐标平面上的一条抛物线。"),
        "parabola_eq_equation": ("抛物线的方程为{eq}。", "这条抛物线是{eq}。"),
        "vertex_at": ("顶点是{pt}。",),
        "vertex_at_named": ("顶点{name}是{pt}。",),
        "opens": ("抛物线开口{dir_w}。",),
        "focus_at": ("焦点是{pt}。",),
        "directrix": ("准线是{eq}。",),
        "symmetry_axis": ("对称轴是{eq}。",),
        "x_crossings": ("它与x轴交于x{rel}{xs}。",),
        "focus_directrix_drawn": ("图中画出了焦点F和虚线准线。",),
        "rect_intro": ("坐标网格上的矩形{name}。", "图中是坐标网格上的矩形{name}。"),
        "vertex_coords": ("顶点{name}的坐标是{pt}。",),
        "rect_dims": ("两边长分别{rel}{w}和{h}。",),
        "rect_centre": ("对角线交于{pt}。",),
        "diagonal_len": ("对角线长{rel}{val}。",),
        "axis_aligned": ("{name}的边与坐标轴平行。",),
        "func_intro": (
            "{family_w}函数{expr}的图像。",
            "{family_w}函数：{expr}。",
            "图中是{family_w}函数{expr}的图像。",
        ),
        "func_intro_named": (
            "{family_w}函数的图像。",
            "图中是一个{family_w}函数的图像。",
            "坐标系中画出了{family_w}函数的图像。",
        ),
        "func_intro_equation": ("函数为{expr}。", "解析式是{expr}。"),
        "func_range": ("x的范围是{x0}到{x1}。",),
        "func_no_zeros": ("在所画范围内没有零点。",),
        "func_zero_one": ("唯一的零点是x={x}。",),
        "func_zeros": ("在所画范围内有{n}个零点：x={xs}。",),
        "func_max_one": ("在{pt}处取得极大值。",),
        "func_max_many": ("极大值点为{pts}。",),
        "func_min_one": ("在{pt}处取得极小值。",),
        "func_min_many": ("极小值点为{pts}。",),
        "func_no_extrema": ("没有极值点。",),
        "func_vasym": ("竖直渐近线为{eqs}。",),
        "func_vasym_one": ("竖直渐近线为{eq}。",),
        "func_hasym": ("水平渐近线为{eq}。",),
        "func_yint": ("y轴截距{rel}{y}。",),
        "func_period": ("周期为{val}。",),
        "func_amplitude": ("振幅为{val}。",),
        "func_monotonic": ("函数单调{dir_w}。",),
        "func_domain": ("定义域为x>{h}。",),
    },
}

#: Language -> word key -> word.
VOCABULARY: dict[str, dict[str, str]] = {
    "en": {
        "equilateral": "equilateral",
        "isosceles": "isosceles",
        "right": "right",
        "scalene": "scalene",
        "acute": "acute",
        "obtuse": "obtuse",
        "square": "square",
        "rectangle": "rectangle",
        "parallelogram": "parallelogram",
        "rhombus": "rhombus",
        "trapezoid": "trapezoid",
        "kite": "kite",
        "triangle": "triangle",
        "quadrilateral": "quadrilateral",
        "pentagon": "pentagon",
        "hexagon": "hexagon",
        "heptagon": "heptagon",
        "octagon": "octagon",
        "first": "first",
        "second": "second",
        "third": "third",
        "fourth": "fourth",
        "x-axis": "x-axis",
        "y-axis": "y-axis",
        "rising": "rising",
        "falling": "falling",
        "horizontal": "horizontal",
        "vertical": "vertical",
        "open_up": "upward",
        "open_down": "downward",
        "open_left": "to the left",
        "open_right": "to the right",
        "increasing": "increasing",
        "decreasing": "decreasing",
        "polynomial": "polynomial",
        "sine": "sine",
        "cosine": "cosine",
        "tangent": "tangent",
        "exponential": "exponential",
        "logarithm": "logarithmic",
        "absolute_value": "absolute value",
    },
    "zh": {
        "equilateral": "等边",
        "isosceles": "等腰",
        "right": "直角",
        "scalene": "不等边",
        "acute": "锐角",
        "obtuse": "钝角",
        "square": "正方形",
        "rectangle": "矩形",
        "parallelogram": "平行四边形",
        "rhombus": "菱形",
        "trapezoid": "梯形",
        "kite": "筝形",
        "triangle": "三角形",
        "quadrilateral": "四边形",
        "pentagon": "五边形",
        "hexagon": "六边形",
        "heptagon": "七边形",
        "octagon": "八边形",
        "first": "一",
        "second": "二",
        "third": "三",
        "fourth": "四",
        "x-axis": "x轴",
        "y-axis": "y轴",
        "rising": "上升",
        "falling": "下降",
        "horizontal": "水平",
        "vertical": "竖直",
        "open_up": "向上",
        "open_down": "向下",
        "open_left": "向左",
        "open_right": "向右",
        "increasing": "递增",
        "decreasing": "递减",
        "polynomial": "多项式",
        "sine": "正弦",
        "cosine": "余弦",
        "tangent": "正切",
        "exponential": "指数",
        "logarithm": "对数",
        "absolute_value": "绝对值",
    },
}

#: How often an introduction with an equation is written as a naming sentence (its ``{kind}_named``
#: pool), followed by an equation sentence (``{kind}_equation``) kept like an optional fact.
NAMED_INTRO_PROBABILITY = 0.5

#: How often a caption is brief: the introduction and the required facts, no optional fact.
BRIEF_CAPTION_PROBABILITY = 0.25

_ABOUT = {"en": "about ", "zh": "约"}
_LIST = {"en": (", ", " and "), "zh": ("、", "和")}
_JOIN = {"en": " ", "zh": ""}


def _with_article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _join_list(items: list[str], language: str) -> str:
    sep, last = _LIST[language]
    if len(items) <= 1:
        return "".join(items)
    return sep.join(items[:-1]) + last + items[-1]


def render_fact(fact: Fact, language: str, draw: float) -> str:
    """Write one fact in ``language`` with the template that ``draw`` (in ``[0, 1)``) selects."""
    if language not in TEMPLATES:
        raise UnknownNameError("caption language", language, list(TEMPLATES))
    pool = TEMPLATES[language].get(fact.kind)
    if not pool:
        raise UnknownNameError(f"caption fact kind for language {language!r}", fact.kind, list(TEMPLATES[language]))
    words = VOCABULARY[language]
    mapping: dict[str, str] = {}
    for key, value in fact.values.items():
        if key.endswith("_w"):
            word = words[str(value)]
            with_article = _with_article(word) if language == "en" else word
            mapping[key] = word
            mapping["a_" + key] = with_article
            mapping["A_" + key] = with_article[:1].upper() + with_article[1:]
        elif key == "approx":
            mapping["rel"] = "≈" if value else "="
            mapping["about"] = _ABOUT[language] if value else ""
        elif isinstance(value, (list, tuple)):
            mapping[key] = _join_list([str(v) for v in value], language)
        else:
            mapping[key] = str(value)
    if "seg" in mapping:
        mapping["seg_first"] = mapping["seg"][:1]
    template = pool[min(int(draw * len(pool)), len(pool) - 1)]
    try:
        text = template.format(**mapping)
    except KeyError as e:
        raise KeyError(
            f"caption template {template!r} ({language}, {fact.kind}) needs {e} but the fact has {sorted(mapping)}"
        ) from e
    return text[:1].upper() + text[1:] if language == "en" else text


def compose_caption(
    facts: list[Fact], rng: np.random.Generator, languages: tuple[str, ...] = ("en",)
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Build captions from a diagram's facts.

    The first fact (the introduction) and required facts are always stated; every other fact is
    kept with a probability drawn per caption (0 to 0.9, or 0 for one caption in
    :data:`BRIEF_CAPTION_PROBABILITY`), so captions range from terse to full.
    The introduction comes first, then the required facts, then the optional ones, each group in
    random order: what makes the diagram its type (the chord, the tangent, the plotted range) is
    never pushed past the point where a short text tower truncates the caption.

    An introduction that carries an equation (function plots, lines and conics) is, with probability
    :data:`NAMED_INTRO_PROBABILITY`, split in two: a sentence that names what is drawn ("The graph of
    a tangent function.") and one that gives its equation ("Its equation is y = tan(2x)."), kept like
    an optional fact. Without it every such caption states the formula, and a text tower learns the
    shape from the formula ("tan(") rather than from its name, which is all a zero-shot prompt has;
    "tangent" then means the tangent line of a circle figure.

    Returns:
        ``({language: caption}, stated facts as ``{"kind", "values"}`` in caption order)``.
    """
    intro, rest = facts[0], facts[1:]
    keep = 0.0 if rng.random() < BRIEF_CAPTION_PROBABILITY else float(rng.uniform(0.0, 0.9))
    kept = [f for f in rest if (rng.random() < keep) or f.required]
    required = [f for f in kept if f.required]
    optional = [f for f in kept if not f.required]
    lead = [intro]
    named, with_equation = rng.random(), rng.random()
    if named < NAMED_INTRO_PROBABILITY and f"{intro.kind}_named" in TEMPLATES["en"]:
        lead = [Fact(f"{intro.kind}_named", intro.values)]
        if with_equation < keep:
            lead.append(Fact(f"{intro.kind}_equation", intro.values))
    chosen = lead + [group[int(i)] for group in (required, optional) for i in rng.permutation(len(group))]
    draws = rng.random(len(chosen))
    captions = {
        lang: _JOIN[lang].join(render_fact(f, lang, float(d)) for f, d in zip(chosen, draws)) for lang in languages
    }
    stated = [{"kind": f.kind, "values": _plain(f.values)} for f in chosen]
    return captions, stated


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}
