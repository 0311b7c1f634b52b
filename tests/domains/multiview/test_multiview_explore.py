"""Per-view zero-shot predictions of one object on its viewing sphere (domainclip.domains.multiview.explore).

A lookup model makes every number known: its image embedding is the one-hot of the class colour nearest
(in RGB direction) the mean colour of a view's non-white pixels, its text embedding the one-hot of the
class a prompt names, so predictions, probabilities (logit scale 10), cosines to the true class and to
the object's mean view follow by hand. Meshes are rendered with the
domain's renderer: a box whose four sides have four class colours is predicted by the side the camera
faces (azimuth 0 looks at +Z, 90 at +X), and the real textured bottle (fuze.obj) is a red bottle from the
side, a purple cap from above and a grey disc from below.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.core.explore import class_colours
from domainclip.domains.multiview.captions import category_text
from domainclip.domains.multiview.explore import (
    ViewPredictions,
    plot_view_predictions,
    read_object,
    view_predictions,
)

_spec = importlib.util.spec_from_file_location("mv_explore_fixtures", Path(__file__).with_name("data_evals.py"))
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)

NAMES = list(fixture.PALETTE)  # can, cone, coffee_mug, box
SCALE = 10.0
#: P(class) of a view whose cosine is 1 to that class and 0 to the three others.
P_ONE_HOT = math.exp(SCALE) / (math.exp(SCALE) + 3)


class Lookup(torch.nn.Module):
    """Image: one-hot of the class colour nearest the mean non-white colour; text: one-hot of the class named."""

    def __init__(self, palette: dict[str, tuple[int, int, int]]):
        super().__init__()
        self.names = list(palette)
        self.colours = F.normalize(torch.tensor(list(palette.values()), dtype=torch.float32), dim=1)
        self.patterns = [re.compile(rf"\b{re.escape(category_text(n))}\b") for n in self.names]
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(SCALE)))
        self.texts: list[str] = []

    def encode_image(self, images, normalize=True):
        pixels = images.float().permute(0, 2, 3, 1).reshape(images.shape[0], -1, 3)
        seen = (pixels.min(dim=-1).values < 235).float()[..., None]  # the white background is left out
        mean = (pixels * seen).sum(dim=1) / seen.sum(dim=1).clamp_min(1)
        return F.one_hot((F.normalize(mean, dim=-1) @ self.colours.T).argmax(dim=-1), len(self.names)).float()

    def encode_text(self, tokens, normalize=True):
        rows = []
        for i in tokens[:, 0].tolist():
            (named,) = [k for k, p in enumerate(self.patterns) if p.search(self.texts[i])]
            rows.append(F.one_hot(torch.tensor(named), len(self.names)).float())
        return torch.stack(rows)

    def tokenizer(self, texts):
        start = len(self.texts)
        self.texts.extend(texts)
        return torch.arange(start, start + len(texts))[:, None]


def raw_pixels(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)


def lookup(palette=fixture.PALETTE):
    net = Lookup(palette)
    return net, raw_pixels, net.tokenizer


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return fixture.write_view_shards(tmp_path_factory.mktemp("views") / "heldout")


# ---------------------------------------------------------------------------------------------- values
def test_a_shard_object_by_hand(shards):
    raw = read_object(shards, "B")  # shows can, can, cone, can; true category can; poses in its meta
    result = view_predictions(raw, lookup(), NAMES, progress=False)
    assert result.object_id == "B" and result.label == "can" and result.classes == NAMES
    assert result.predicted_classes == ["can", "can", "cone", "can"]
    np.testing.assert_allclose(result.azimuth, [10, 100, 190, 280])
    np.testing.assert_allclose(result.elevation, [10, 10, 40, 40])
    np.testing.assert_allclose(result.cosine, np.eye(4)[[0, 0, 1, 0]], atol=1e-6)
    np.testing.assert_allclose(result.true_similarity, [1, 1, 0, 1], atol=1e-6)
    # mean of three can one-hots and one cone one-hot: (3, 1, 0, 0) / sqrt(10)
    np.testing.assert_allclose(result.consistency, np.array([3, 3, 1, 3]) / math.sqrt(10), rtol=1e-5)
    np.testing.assert_allclose(result.probabilities[[0, 1, 3], 0], P_ONE_HOT, rtol=1e-5)
    np.testing.assert_allclose(result.probabilities[2, 1], P_ONE_HOT, rtol=1e-5)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1, rtol=1e-5)
    assert result.logit_scale == pytest.approx(SCALE)
    assert result.accuracy == 0.75 and not result.consistent and result.worst_view == 2
    assert result.right.tolist() == [True, True, False, True]
    # the views come back as they are stored (lossless PNG, smaller than a thumbnail)
    np.testing.assert_array_equal(result.images[2], fixture.solid_view(fixture.PALETTE["cone"], seed=100 * 1 + 2))


def test_read_object_by_meta_id_or_key_and_a_consistent_object(shards):
    assert read_object(shards, "obj_D")["__key__"] == read_object(shards, "D")["__key__"] == "obj_D"
    result = view_predictions(read_object(shards, "D"), lookup(), NAMES, progress=False)  # coffee_mug seen as cone
    assert result.label == "coffee_mug" and result.predicted_classes == ["cone"] * 4
    assert result.consistent and result.accuracy == 0.0
    np.testing.assert_allclose(result.consistency, 1, rtol=1e-6)
    np.testing.assert_allclose(result.true_similarity, 0, atol=1e-6)
    # a label given overrides the meta's; classes without the meta's category leave the label unset
    assert view_predictions(read_object(shards, "D"), lookup(), NAMES, label="cone", progress=False).accuracy == 1
    unlabelled = view_predictions(read_object(shards, "D"), lookup(), ["can", "cone"], progress=False)
    assert unlabelled.label is None and unlabelled.true_similarity is None and unlabelled.right is None
    assert unlabelled.worst_view in range(4)


def test_images_with_their_poses_and_custom_templates():
    colours = ["box", "box", "coffee_mug"]
    images = [fixture.solid_view(fixture.PALETTE[c], seed=i) for i, c in enumerate(colours)]
    images[1] = Image.fromarray(images[1])  # arrays and PIL images mix
    templates = ["a photo of a {}.", lambda c: f"{category_text(c)}, seen from the side"]
    result = view_predictions(images, lookup(), NAMES, label="box", views=[(0.0, 30.0), None, {"azimuth": 90}],
                              templates=templates, object_id="mine", batch_size=2, progress=False)
    assert result.object_id == "mine" and result.predicted_classes == colours
    np.testing.assert_allclose(result.azimuth, [0.0, np.nan, 90.0])
    np.testing.assert_allclose(result.elevation, [30.0, np.nan, np.nan])
    rows = result.to_rows()
    assert rows[1]["azimuth"] is None and rows[2]["predicted"] == "coffee_mug" and rows[2]["right"] is False
    assert rows[0]["p_box"] == pytest.approx(P_ONE_HOT, rel=1e-5) and rows[0]["cosine_true"] == pytest.approx(1)


def test_images_from_files(tmp_path):
    paths = []
    for i, name in enumerate(["cone", "can"]):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(fixture.solid_view(fixture.PALETTE[name], seed=i)).save(paths[-1])
    result = view_predictions(paths, lookup(), NAMES, progress=False)
    assert result.predicted_classes == ["cone", "can"] and result.label is None
    written = result.write_csv(tmp_path / "views.csv").read_text().splitlines()
    assert written[0].startswith("view,azimuth,elevation,predicted,probability") and written[2].startswith("1,,,can,")


# ---------------------------------------------------------------------------------------------- rendered meshes
def _four_coloured_box(path: Path) -> Path:
    """A cube whose +Z, +X, -Z, -X sides are can, cone, coffee_mug and box; top and bottom grey (PLY)."""
    trimesh = pytest.importorskip("trimesh")
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    sides = {(0, 0, 1): "can", (1, 0, 0): "cone", (0, 0, -1): "coffee_mug", (-1, 0, 0): "box"}
    colours = []
    for normal in np.round(box.face_normals).astype(int):
        name = sides.get(tuple(normal.tolist()))
        colours.append([*(fixture.PALETTE[name] if name else (128, 128, 128)), 255])
    box.visual.face_colors = np.array(colours, dtype=np.uint8)
    box.export(path)
    return path


def test_a_mesh_is_rendered_and_each_view_is_the_side_it_faces(tmp_path):
    pytest.importorskip("mitsuba")
    from domainclip.domains.multiview.camera import sphere_poses

    path = _four_coloured_box(tmp_path / "cube.ply")
    # seed 1 puts the four cameras within 13 degrees of the sides' centres: 193, 281, 5, 87
    result = view_predictions(path, lookup(), NAMES, views=4, elevation=(0.0, 0.0), seed=1, size=32, samples=4,
                              progress=False)
    expected = sphere_poses(4, seed=1, elevation=(0.0, 0.0), light_jitter=0.0)
    np.testing.assert_allclose(result.azimuth, [p.azimuth for p in expected])
    np.testing.assert_allclose(result.elevation, 0.0)
    assert result.object_id == "cube" and result.label is None
    assert result.predicted_classes == ["coffee_mug", "box", "can", "cone"]
    assert result.poses[0]["camera_to_world"] == expected[0].camera_to_world
    assert result.images[0].shape == (32, 32, 3)
    # the same poses given as poses render the same views
    again = view_predictions(path, lookup(), NAMES, views=expected[:2], size=32, samples=4, progress=False)
    np.testing.assert_array_equal(again.images[1], result.images[1])


@pytest.mark.real_data
def test_the_real_textured_bottle_is_a_bottle_from_the_side_a_cap_from_above(shared_data):
    pytest.importorskip("mitsuba")
    from domainclip.domains.multiview.camera import _direction, look_at
    from domainclip.domains.multiview.views import ViewPose

    palette = {"bottle": (150, 70, 80), "can": (100, 60, 130), "coin": (128, 128, 128)}  # label, cap, base
    sides = [(0, 0), (90, 0), (180, 10), (270, -10), (0, 85), (0, -85)]
    poses = [ViewPose(i, azimuth=az, elevation=el, distance=3.0, fov=40.0,
                      camera_to_world=look_at(3.0 * _direction(az, el)).tolist()) for i, (az, el) in enumerate(sides)]
    result = view_predictions(shared_data / "multiview" / "fuze.obj", lookup(palette), list(palette), label="bottle",
                              views=poses, up_axis="z", size=48, samples=4, progress=False)
    # mean colours: the label pinkish red, the cap purple, the base grey: from above a can's lid, from below a coin
    assert result.predicted_classes == ["bottle"] * 4 + ["can", "coin"]
    assert result.accuracy == pytest.approx(4 / 6) and result.worst_view == 4  # the first of the two worst
    # mean view embedding (4, 1, 1) / sqrt(18): the side views are close to it, top and bottom far
    np.testing.assert_allclose(result.consistency, np.array([4, 4, 4, 4, 1, 1]) / math.sqrt(18), rtol=1e-5)
    np.testing.assert_allclose(result.true_similarity, [1, 1, 1, 1, 0, 0], atol=1e-6)


# ---------------------------------------------------------------------------------------------- picture
def test_the_picture_places_and_colours_every_view(shards, tmp_path):
    import matplotlib.pyplot as plt

    result = view_predictions(read_object(shards, "E"), lookup(), NAMES, progress=False)  # mug, can, cone, mug
    fig = plot_view_predictions(result)
    polar = next(ax for ax in fig.axes if ax.name == "polar")
    points = [c for c in polar.collections if len(c.get_offsets())]
    assert len(points) == 4
    colours = class_colours(len(NAMES))
    for i, collection in enumerate(points):
        theta, r = collection.get_offsets()[0]
        assert theta == pytest.approx(np.deg2rad(result.azimuth[i])) and r == pytest.approx(90 - result.elevation[i])
        np.testing.assert_allclose(collection.get_facecolor()[0][:3], colours[int(result.predicted[i])])
    # right views (0 and 3) are dots, wrong ones crosses, bigger where the true class is closer
    sizes = [c.get_sizes()[0] for c in points]
    assert sizes[0] == sizes[3] > sizes[1] == sizes[2]
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert len(titles) == 4 and titles[1].startswith("#1 az 100° el 10°\ncan 1.00")
    assert "true class coffee_mug, 2/4 right" in fig.get_suptitle()
    fig.savefig(tmp_path / "e.png")
    plt.close(fig)

    fig = plt.figure()
    polar = fig.add_subplot(projection="polar")
    assert plot_view_predictions(result, ax=polar) is fig and len(fig.axes) == 1  # the sphere chart alone
    assert [c.get_offsets()[0][1] for c in polar.collections] == pytest.approx(90 - result.elevation)
    plt.close(fig)

    fig, ax = plt.subplots()
    assert plot_view_predictions(result, ax=ax) is fig and ax.get_xlabel() == "azimuth (degrees)"
    assert [tuple(c.get_offsets()[0]) for c in ax.collections] == list(zip(result.azimuth, result.elevation))
    plt.close(fig)


def test_the_picture_of_views_without_poses_and_many_views():
    import matplotlib.pyplot as plt

    images = [fixture.solid_view(fixture.PALETTE[NAMES[i % 4]], seed=i) for i in range(30)]
    result = view_predictions(images, lookup(), NAMES, progress=False)
    fig = plot_view_predictions(result, max_thumbnails=8)
    polar = next(ax for ax in fig.axes if ax.name == "polar")
    assert "no view has a camera pose" in " ".join(t.get_text() for t in polar.texts)
    shown = [ax.get_title().split()[0] for ax in fig.axes if ax.images]
    assert shown == ["#0", "#4", "#8", "#12", "#17", "#21", "#25", "#29"]
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- user errors
def test_user_errors(tmp_path, shards):
    model = lookup()
    images = [fixture.solid_view(fixture.PALETTE["can"], seed=0)]
    with pytest.raises(InputError, match="classes is empty"):
        view_predictions(images, model, [], progress=False)
    with pytest.raises(InputError, match="twice"):
        view_predictions(images, model, ["can", "can"], progress=False)
    with pytest.raises(InputError, match="label 'bottle' is not one of the classes"):
        view_predictions(images, model, NAMES, label="bottle", progress=False)
    with pytest.raises(InputError, match="no '\\{\\}'"):
        view_predictions(images, model, NAMES, templates=["a photo"], progress=False)
    with pytest.raises(InputError, match="2 poses for 1 images"):
        view_predictions(images, model, NAMES, views=[(0, 0), (1, 1)], progress=False)
    with pytest.raises(InputError, match="the list of views is empty"):
        view_predictions([], model, NAMES, progress=False)
    with pytest.raises(InputNotFoundError, match="does not exist"):
        view_predictions([tmp_path / "nope.png"], model, NAMES, progress=False)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot be read as an image"):
        view_predictions([tmp_path / "bad.png"], model, NAMES, progress=False)
    with pytest.raises(InputError, match="leave views out"):
        view_predictions(read_object(shards, "A"), model, NAMES, views=3, progress=False)
    with pytest.raises(InputError, match="no object 'Z'.*include obj_A|no object 'Z'.*include A"):
        read_object(shards, "Z")
    with pytest.raises(InputNotFoundError):
        read_object(tmp_path / "no-shards", "A")


def test_a_damaged_view_or_sample_is_one_line(tmp_path):
    root = fixture.write_view_shards(tmp_path / "bad", corrupt={"B": 1})
    with pytest.raises(InputError, match="object obj_B: view 1: bad_image"):
        view_predictions(read_object(root, "B"), lookup(), NAMES, progress=False)
    with pytest.raises(InputError, match="missing_key:views"):
        view_predictions({"__key__": "x", "json": b"{}"}, lookup(), NAMES, progress=False)


def test_mesh_errors(tmp_path):
    pytest.importorskip("trimesh")
    from domainclip.domains.multiview.render import MeshError

    with pytest.raises(InputNotFoundError, match="does not exist"):
        view_predictions(tmp_path / "gone.obj", lookup(), NAMES, progress=False)
    (tmp_path / "broken.ply").write_bytes(b"ply\nformat nonsense\n")
    with pytest.raises(MeshError, match="cannot be loaded as a mesh") as caught:
        view_predictions(tmp_path / "broken.ply", lookup(), NAMES, progress=False)
    assert isinstance(caught.value, InputError) and caught.value.reason == "unreadable"
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="is not a mesh file"):
        view_predictions(tmp_path / "notes.txt", lookup(), NAMES, progress=False)
    cube = _four_coloured_box(tmp_path / "cube.ply")
    with pytest.raises(InputError, match="views must be at least 1"):
        view_predictions(cube, lookup(), NAMES, views=0, progress=False)
    with pytest.raises(InputError, match="needs camera_to_world and fov"):
        view_predictions(cube, lookup(), NAMES, views=[(0.0, 10.0)], progress=False)
    with pytest.raises(InputError, match="size must be 8 to 2048"):
        view_predictions(cube, lookup(), NAMES, size=4, progress=False)


def test_the_result_is_data():
    result = view_predictions([fixture.solid_view(fixture.PALETTE["can"], seed=0)], lookup(), NAMES, progress=False)
    assert isinstance(result, ViewPredictions) and result.num_views == 1 and result.consistent
    with pytest.raises(AttributeError):
        result.label = "can"  # frozen
