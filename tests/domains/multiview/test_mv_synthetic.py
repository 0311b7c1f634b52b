"""Tests of the synthetic mesh generator (domainclip.domains.multiview.synthetic)."""

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from domainclip.core.errors import InputError
from domainclip.core.options import check_options
from domainclip.domains.multiview.synthetic import (
    AMBIGUOUS_FROM,
    CATEGORIES,
    LICENCE,
    METADATA_FILE,
    PALETTE,
    PATTERNS,
    SOURCE,
    SUMMARY_FILE,
    build_parts,
    generate_meshes,
    make_object,
    make_texture,
)
from domainclip.domains.multiview.synthetic import meshes as meshes_module

trimesh = pytest.importorskip("trimesh")

#: Three categories and three formats: objects 0-2 are OBJ, 3-5 PLY, 6-8 GLB, one of each category.
OPTIONS = {"seed": 5, "categories": ("mug", "table", "can"), "texture_size": 32}
N = 9


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Nine objects written by one process, and again by two workers in chunks of 2 (out of order)."""
    root = tmp_path_factory.mktemp("mv_synthetic")
    one = generate_meshes(root / "one", N, workers=1, progress=False, **OPTIONS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(meshes_module, "CHUNK", 2)
        two = generate_meshes(root / "two", N, workers=2, progress=False, **OPTIONS)
    return root, one, two


def test_same_bytes_for_any_worker_count(generated):
    root, one, two = generated
    first, second = _digests(root / "one"), _digests(root / "two")
    assert first == second
    assert len(first) == 3 * 3 + 3 + 3 + 2  # OBJ+MTL+PNG x3, PLY x3, GLB x3, metadata, summary
    assert one["counts_by_category"] == two["counts_by_category"] == {"mug": 3, "table": 3, "can": 3}
    assert one["counts_by_format"] == {"obj": 3, "ply": 3, "glb": 3}


def test_deterministic_and_seeded():
    a, b = make_object(1, 4), make_object(1, 4)
    assert a.category == CATEGORIES[4] and a.object_id == f"{CATEGORIES[4]}_000004"
    np.testing.assert_array_equal(a.mesh.vertices, b.mesh.vertices)
    np.testing.assert_array_equal(a.texture, b.texture)
    assert a.params == b.params and a.attributes == b.attributes
    c = make_object(2, 4)  # another set: same category, other draws
    assert c.category == a.category and c.params != a.params


def test_metadata_and_layout(generated):
    root, one, _ = generated
    folder = root / "one"
    records = [json.loads(line) for line in (folder / METADATA_FILE).read_text().splitlines()]
    assert [r["generator"]["index"] for r in records] == list(range(N))
    assert [r["path"] for r in records[:4]] == ["mug/mug_000000.obj", "table/table_000001.obj",
                                                "can/can_000002.obj", "mug/mug_000003.ply"]
    assert records[8]["path"] == "can/can_000008.glb"
    assert records[0]["files"] == ["mug/mug_000000.obj", "mug/mug_000000.mtl", "mug/mug_000000.png"]
    for r in records:
        assert r["license"] == LICENCE == "CC0-1.0" and r["source"] == SOURCE
        assert (folder / r["path"]).is_file() and r["path"].split("/")[0] == r["category"]
        assert r["attributes"]["colour"] in PALETTE and r["attributes"]["pattern"] in PATTERNS
        assert r["generator"]["seed"] == 5 and r["faces"] > 0
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    assert summary["n"] == N and summary["license"] == "CC0-1.0"
    assert summary["faces"] == sum(r["faces"] for r in records)
    assert one["metadata"] == str(folder / METADATA_FILE)


def _load(path: Path):
    mesh = trimesh.load(path, force="mesh")
    assert isinstance(mesh, trimesh.Trimesh) and len(mesh.faces) > 0
    return mesh


@pytest.mark.parametrize("index", [0, 6])
def test_textured_formats_load_with_their_texture(generated, index):
    """OBJ (with MTL and PNG) and GLB load back with UVs and exactly the generated texture."""
    root, _, _ = generated
    obj = make_object(OPTIONS["seed"], index, categories=OPTIONS["categories"], texture_size=32)
    mesh = _load(root / "one" / obj.path)
    assert mesh.visual.kind == "texture"
    image = mesh.visual.material.to_simple().image if index == 6 else mesh.visual.material.image
    np.testing.assert_array_equal(np.asarray(image.convert("RGB")), obj.texture)
    uv = np.asarray(mesh.visual.uv)
    assert uv.shape == (len(mesh.vertices), 2) and uv.min() >= 0 and uv.max() <= 1
    np.testing.assert_allclose(mesh.bounds, obj.mesh.bounds, atol=1e-5)
    assert mesh.bounds[0][1] == pytest.approx(0, abs=1e-5)  # resting on the floor, +Y up


def test_ply_loads_with_vertex_colours(generated):
    root, _, _ = generated
    obj = make_object(OPTIONS["seed"], 5, categories=OPTIONS["categories"], texture_size=32)
    assert obj.category == "can" and obj.file_format == "ply"
    mesh = _load(root / "one" / obj.path)
    assert mesh.visual.kind == "vertex"
    colours = {tuple(c) for c in np.asarray(mesh.visual.vertex_colors)[:, :3]}
    texels = {tuple(c) for c in obj.texture.reshape(-1, 3)}
    assert colours <= texels  # every vertex takes a texel of the object's own texture
    np.testing.assert_allclose(mesh.bounds, obj.mesh.bounds, atol=1e-5)
    edges = np.linalg.norm(np.diff(mesh.vertices[mesh.edges_unique], axis=1)[:, 0], axis=1)
    assert edges.max() <= meshes_module.PLY_EDGE + 1e-6  # fine enough for the pattern to show


def test_proportions_tell_categories_apart():
    """A can is taller than wide, a coin flat, a dumbbell long, a mug open at the top."""
    for index in range(3):
        rng = np.random.default_rng(index)
        can = trimesh.util.concatenate(build_parts("can", rng)[0]).extents
        coin = trimesh.util.concatenate(build_parts("coin", rng)[0]).extents
        dumbbell = trimesh.util.concatenate(build_parts("dumbbell", rng)[0]).extents
        assert can[1] / can[0] >= 1.2 and coin[1] / coin[0] <= 0.15
        assert dumbbell[0] / dumbbell[2] >= 1.4 and dumbbell[1] == pytest.approx(dumbbell[2])
    mug_parts, p = build_parts("mug", np.random.default_rng(0))
    wall = mug_parts[0]
    top = wall.vertices[np.isclose(wall.vertices[:, 1], p["height"])]
    radii = np.hypot(top[:, 0], top[:, 2])
    assert radii.min() == pytest.approx(p["radius"] - p["wall"], abs=1e-6)  # a hole, not a lid


def _hull_2d(points: np.ndarray):
    from scipy.spatial import ConvexHull

    return ConvexHull(points)


def test_silhouettes_shared_from_the_ambiguous_viewpoints():
    """From above: can, coin and bottle are the same disc, box and table the same rectangle; from the
    side a cone and a pyramid are both triangles."""
    rng = np.random.default_rng(0)
    for name in ("can", "coin", "bottle"):
        assert "above" in str(AMBIGUOUS_FROM[name].values())
        mesh = trimesh.util.concatenate(build_parts(name, rng)[0])
        hull = _hull_2d(mesh.vertices[:, [0, 2]])  # seen from above: drop the height
        assert hull.volume == pytest.approx(np.pi * 0.25, rel=0.01)  # the disc of radius 0.5
    tops = {}
    for name in ("box", "table"):
        mesh = trimesh.util.concatenate(build_parts(name, rng)[0])
        hull = _hull_2d(mesh.vertices[:, [0, 2]])
        assert len(hull.vertices) == 4 and hull.volume == pytest.approx(np.prod(mesh.extents[[0, 2]]))
        tops[name] = hull
    for name in ("cone", "pyramid"):
        parts, p = build_parts(name, rng)
        side = trimesh.util.concatenate(parts).vertices[:, [0, 1]]  # seen from the side: drop the depth
        hull = _hull_2d(side)
        assert len(hull.vertices) == 3 and side[:, 1].max() == pytest.approx(p["height"])
    cone_top = _hull_2d(trimesh.util.concatenate(build_parts("cone", rng)[0]).vertices[:, [0, 2]])
    pyramid_top = _hull_2d(trimesh.util.concatenate(build_parts("pyramid", rng)[0]).vertices[:, [0, 2]])
    assert len(pyramid_top.vertices) == 4 and len(cone_top.vertices) > 40  # but a square and a disc from above


def test_colour_and_pattern_do_not_give_the_category_away():
    counts = {name: Counter() for name in ("colour", "pattern")}
    per_category = {c: set() for c in CATEGORIES}
    for index in range(400):
        obj = make_object(0, index)
        for name in counts:
            counts[name][(obj.attributes[name], obj.category)] += 1
        per_category[obj.category].add(obj.attributes["colour"])
    for name, values in (("colour", PALETTE), ("pattern", PATTERNS)):
        for value in values:
            by_category = [counts[name][(value, c)] for c in CATEGORIES]
            total = sum(by_category)
            assert total > 0 and max(by_category) / total < 0.3  # no colour or pattern names a category
    assert all(len(colours) >= 8 for colours in per_category.values())


@pytest.mark.parametrize("pattern", PATTERNS)
def test_texture_patterns_use_the_two_colours(pattern):
    red, white = PALETTE["red"], PALETTE["white"]
    image = make_texture(pattern, red, white, 32, np.random.default_rng(0))
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    near_white = (image.astype(int) - np.asarray(white)).__abs__().max(axis=2) <= 20
    share = near_white.mean()
    if pattern == "plain":
        assert share == 0
    else:
        assert 0.1 < share < 0.7
    assert (image <= np.maximum(red, white)).all()  # grain only darkens


def test_options_are_checked_from_the_signature():
    with pytest.raises(InputError, match="categories"):
        check_options(generate_meshes, {"categories": ["can", "teapot"]}, where="recipe", require=False)
    with pytest.raises(InputError, match="formats"):
        check_options(generate_meshes, {"formats": ["stl"]}, where="recipe", require=False)
