"""Worst-view mining (OVT): view weights, the anchor, worst and random selection, and the mined table."""

from __future__ import annotations

import io
import math
import random

import pytest
import torch

from domainclip.domains.multiview.mining import MinedTable, mine_object, object_anchor, select_views, view_weights


def at_angles(*degrees: float) -> torch.Tensor:
    """Unit 2-D embeddings at the given angles (cosine similarity = cosine of the angle between them)."""
    return torch.tensor([[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in degrees])


def test_view_weight_is_the_mean_cosine_to_the_nearest_other_views():
    e = at_angles(0, 10, 20, 90)
    c = lambda d: math.cos(math.radians(d))  # noqa: E731
    expected = [(c(10) + c(20)) / 2, (c(10) + c(10)) / 2, (c(10) + c(20)) / 2, (c(70) + c(80)) / 2]
    assert view_weights(e, 2).tolist() == pytest.approx(expected, abs=1e-6)
    # every other view counts when there are fewer than neighbours + 1; the scale of an embedding does not matter
    assert view_weights(3 * e, 10).tolist() == pytest.approx([(c(10) + c(20) + c(90)) / 3, (2 * c(10) + c(80)) / 3,
                                                              (c(20) + c(10) + c(70)) / 3, (c(90) + c(80) + c(70)) / 3],
                                                             abs=1e-6)
    assert view_weights(at_angles(30), 5).tolist() == [1.0]
    with pytest.raises(ValueError, match="neighbours must be >= 1"):
        view_weights(e, 0)
    with pytest.raises(ValueError, match=r"\(V, D\)"):
        view_weights(torch.zeros(3), 2)


def test_anchor_is_the_weighted_mean_and_leans_away_from_the_outlier():
    e = at_angles(0, 10, 20, 90)
    w = view_weights(e, 2)
    mean = (w[:, None] * e).sum(0) / w.sum()
    anchor = object_anchor(e, 2)
    torch.testing.assert_close(anchor, mean / mean.norm())
    angle = math.degrees(math.atan2(anchor[1], anchor[0]))
    plain = math.degrees(math.atan2(e[:, 1].sum(), e[:, 0].sum()))
    assert 10 < angle < plain - 5  # the outlier at 90 degrees pulls less than in a plain mean (27.4 degrees)


def test_negative_weights_are_clipped_and_all_zero_weights_count_equally():
    e = at_angles(0, 180, 90)  # with one neighbour each: best cosines 0, 0 and 0
    assert view_weights(e, 1).tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    torch.testing.assert_close(object_anchor(e, 1), torch.tensor([0.0, 1.0]), atol=1e-6, rtol=0)
    e = at_angles(0, 5, 180)  # the opposite view weighs -cos(5) < 0: clipped, it does not push the anchor away
    anchor = object_anchor(e, 1)
    w = view_weights(e, 1).clamp_min(0)
    torch.testing.assert_close(anchor, torch.nn.functional.normalize((w[:, None] * e).sum(0), dim=0))
    assert w[2] == 0 and anchor[1] > 0


def test_worst_views_are_the_least_similar_to_the_anchor_in_order():
    e = at_angles(0, 10, 20, 90, -40, 15)
    anchor = object_anchor(e, 2)
    cos = (e @ anchor).tolist()
    worst = select_views(e, anchor, 3)
    assert worst == sorted(range(6), key=lambda v: cos[v])[:3]
    assert worst[:2] == [3, 4]
    assert select_views(e, anchor, 6) == sorted(range(6), key=lambda v: cos[v])
    selected, mined_anchor = mine_object(e, 2, 2)
    assert selected == [3, 4] and torch.equal(mined_anchor, anchor)
    tied = at_angles(10, -10, 0)  # views 0 and 1 tie: the lower index first
    assert select_views(tied, torch.tensor([1.0, 0.0]), 1) == [0]
    for k in (0, 7):
        with pytest.raises(ValueError, match=r"k must be in \[1, 6\]"):
            select_views(e, anchor, k)


def test_random_views_are_drawn_by_the_seeded_generator():
    e = at_angles(*range(0, 120, 10))
    anchor = object_anchor(e, 5)
    first = select_views(e, anchor, 5, "random", random.Random(3))
    assert first == sorted(random.Random(3).sample(range(12), 5)) and len(set(first)) == 5
    assert select_views(e, anchor, 5, "random", random.Random(3)) == first
    draws = {tuple(select_views(e, anchor, 5, "random", random.Random(s))) for s in range(10)}
    assert len(draws) > 5
    assert first != select_views(e, anchor, 5)  # not the worst views
    with pytest.raises(ValueError, match="needs an rng"):
        select_views(e, anchor, 5, "random")
    with pytest.raises(ValueError, match="selection must be one of"):
        select_views(e, anchor, 5, "best")  # type: ignore[arg-type]


def test_mined_table_looks_up_by_key_and_round_trips_through_a_weights_only_checkpoint():
    rows = [("obj_b", [3, 1], torch.tensor([0.6, 0.8, 0.0])), ("obj_a", [0, 2], torch.tensor([1.0, 0.0, 0.0]))]
    table = MinedTable.from_rows(rows)
    assert table.keys == ["obj_a", "obj_b"] and len(table) == 2 and "obj_b" in table and "obj_c" not in table
    selected, anchor = table.lookup("obj_b")
    assert selected == [3, 1] and anchor.dtype == torch.float32
    torch.testing.assert_close(anchor, torch.tensor([0.6, 0.8, 0.0]), atol=1e-3, rtol=0)  # stored as float16
    assert table.lookup("obj_c") is None
    assert table.nbytes() == 2 * (2 * 2 + 3 * 2)  # k int16 indices and a D float16 anchor per object

    buffer = io.BytesIO()
    torch.save({"model_state": table.state_dict()}, buffer)
    buffer.seek(0)
    back = MinedTable.from_state_dict(torch.load(buffer, weights_only=True)["model_state"])
    assert back.keys == table.keys and torch.equal(back.selected, table.selected)
    assert torch.equal(back.anchors, table.anchors)
    assert len(MinedTable.from_rows([])) == 0 and MinedTable().lookup("x") is None
    with pytest.raises(ValueError, match="one row per key"):
        MinedTable(["a"], torch.zeros(2, 2), torch.zeros(1, 3))
