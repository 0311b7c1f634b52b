"""Mesh loading, camera poses and the Mitsuba renderer of the multi-view domain, on fuze.obj and small meshes."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("mitsuba")

from domainclip.core.errors import InputError, NothingWrittenError  # noqa: E402
from domainclip.domains.multiview.camera import look_at, normalise_mesh, sphere_poses  # noqa: E402
from domainclip.domains.multiview.render import (  # noqa: E402
    MISSING_TEXTURE,
    NO_FACES,
    UNREADABLE,
    MeshError,
    load_mesh,
    missing_textures,
    render_meshes,
    render_views,
)
from domainclip.domains.multiview.views import ViewPose, decode_views  # noqa: E402

FUZE = "multiview/fuze.obj"


@pytest.fixture
def fuze(shared_data: Path) -> Path:
    return shared_data / FUZE


def _coloured_box(path: Path, rgb: tuple[int, int, int], extents=(1.0, 2.0, 0.5)) -> Path:
    """A box with every vertex of colour ``rgb``, written as PLY (vertex colours) or GLB."""
    box = trimesh.creation.box(extents=extents)
    box.visual.vertex_colors = np.tile([*rgb, 255], (len(box.vertices), 1)).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    box.export(path)
    return path


def _textured_glb(path: Path, rgb: tuple[int, int, int]) -> Path:
    """A UV-textured box in a GLB whose texture is one colour."""
    from PIL import Image

    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    uv = np.random.default_rng(0).uniform(0.1, 0.9, (len(box.vertices), 2))
    image = Image.new("RGB", (16, 16), rgb)
    box.visual = trimesh.visual.TextureVisuals(uv=uv, image=image)
    path.parent.mkdir(parents=True, exist_ok=True)
    box.export(path)
    return path


def _centre(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return image[h // 2 - 2 : h // 2 + 2, w // 2 - 2 : w // 2 + 2].reshape(-1, 3).mean(axis=0)


# --------------------------------------------------------------------------- camera
def test_sphere_poses_cameras_on_the_sphere_looking_at_the_centre():
    poses = sphere_poses(6, seed=3, elevation=(10.0, 30.0), azimuth_jitter=5.0, distance=2.5, fov=35.0)
    assert [p.index for p in poses] == list(range(6))
    assert poses == sphere_poses(6, seed=3, elevation=(10.0, 30.0), azimuth_jitter=5.0, distance=2.5, fov=35.0)
    assert poses != sphere_poses(6, seed=4, elevation=(10.0, 30.0), azimuth_jitter=5.0, distance=2.5, fov=35.0)
    azimuths = np.array([p.azimuth for p in poses])
    gaps = np.diff(np.unwrap(np.radians(azimuths)))
    assert np.all(np.abs(np.degrees(gaps) - 60.0) <= 10.0 + 1e-6)  # evenly spaced, each moved by at most 5
    for p in poses:
        assert 10.0 <= p.elevation <= 30.0 and p.fov == 35.0
        pose = np.asarray(p.camera_to_world)
        rotation, eye = pose[:3, :3], pose[:3, 3]
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
        assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-6)
        assert np.linalg.norm(eye) == pytest.approx(2.5, abs=1e-6)
        np.testing.assert_allclose(-rotation[:, 2], -eye / np.linalg.norm(eye), atol=1e-6)  # looks at the origin
        assert np.degrees(np.arcsin(eye[1] / 2.5)) == pytest.approx(p.elevation, abs=1e-3)
        assert rotation[1, 1] > 0  # image up is world up
        assert set(p.light) == {"azimuth", "elevation", "intensity", "ambient"}
        assert 20 <= p.light["elevation"] <= 70 and 1.5 <= p.light["intensity"] <= 2.5
        assert p.background == [255, 255, 255]
    assert json.loads(json.dumps(poses[0].to_json()))["camera_to_world"] == poses[0].camera_to_world


def test_sphere_poses_default_distance_frames_the_unit_sphere_and_checks_options():
    (pose,) = sphere_poses(1, fov=60.0, background=(10, 20))
    assert pose.distance == pytest.approx(1.05 / np.sin(np.radians(30.0)), abs=1e-5)
    assert 10 <= pose.background[0] <= 20 and len(set(pose.background)) == 1
    for bad in ({"elevation": (40.0, 10.0)}, {"distance": 0.9}, {"fov": 0.0}, {"background": (0, 300)}):
        with pytest.raises(InputError):
            sphere_poses(3, **bad)


def test_look_at_straight_down_is_still_a_rotation():
    pose = look_at((0.0, 3.0, 0.0))
    np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(pose[:3, 2], [0.0, 1.0, 0.0], atol=1e-9)  # -Z looks down


def test_normalise_mesh_centres_scales_and_turns_z_up():
    box = trimesh.creation.box(extents=(2.0, 4.0, 8.0))
    box.apply_translation([5.0, -3.0, 1.0])
    out = normalise_mesh(box, "z")
    np.testing.assert_allclose(out.bounds.mean(axis=0), 0.0, atol=1e-9)
    assert np.linalg.norm(out.vertices, axis=1).max() == pytest.approx(1.0)
    extents = out.extents
    assert extents[1] == pytest.approx(extents.max())  # the long Z side now stands along +Y
    np.testing.assert_allclose(normalise_mesh(out).vertices, out.vertices, atol=1e-9)
    np.testing.assert_allclose(box.bounds.mean(axis=0), [5.0, -3.0, 1.0])  # the argument is not changed


# --------------------------------------------------------------------------- loading
@pytest.mark.real_data
def test_load_mesh_reads_the_textured_obj_whose_texture_name_has_a_space(fuze: Path):
    mesh = load_mesh(fuze)
    assert len(mesh.faces) == 1000 and mesh.visual.kind == "texture"
    assert mesh.visual.material.image.size == (1024, 1024)
    assert missing_textures(fuze) == []


@pytest.mark.real_data
def test_load_mesh_names_a_missing_texture_or_material_file(fuze: Path, tmp_path: Path):
    shutil.copy(fuze, tmp_path / "fuze.obj")
    with pytest.raises(MeshError, match=r"fuze\.obj: .*mtllib \./fuze\.obj\.mtl") as missing_mtl:
        load_mesh(tmp_path / "fuze.obj")
    assert missing_mtl.value.reason == MISSING_TEXTURE
    shutil.copy(fuze.with_name("fuze.obj.mtl"), tmp_path / "fuze.obj.mtl")
    with pytest.raises(MeshError, match=r"map_Kd fuze uv\.jpg") as missing_jpg:
        load_mesh(tmp_path / "fuze.obj")
    assert missing_jpg.value.reason == MISSING_TEXTURE and "\n" not in str(missing_jpg.value)
    (tmp_path / "fuze.obj.mtl").write_text("newmtl m\nmap_Kd -s 1 1 1 fuze uv.jpg\n")
    shutil.copy(fuze.with_name("fuze uv.jpg"), tmp_path / "fuze uv.jpg")
    assert missing_textures(tmp_path / "fuze.obj") == []  # options before a name with a space


def test_load_mesh_unreadable_and_faceless_files(tmp_path: Path):
    garbage = tmp_path / "broken.glb"
    garbage.write_bytes(b"glTF\x02\x00\x00\x00garbage that is not a binary glTF")
    with pytest.raises(MeshError, match="broken.glb: cannot be loaded") as unreadable:
        load_mesh(garbage)
    assert unreadable.value.reason == UNREADABLE
    cloud = tmp_path / "cloud.ply"
    trimesh.PointCloud(np.random.default_rng(0).normal(size=(20, 3))).export(cloud)
    with pytest.raises(MeshError, match="cloud.ply: holds no faces") as faceless:
        load_mesh(cloud)
    assert faceless.value.reason == NO_FACES


# --------------------------------------------------------------------------- rendering
@pytest.mark.real_data
def test_render_views_of_fuze_show_the_red_bottle_on_the_pose_background(fuze: Path):
    poses = sphere_poses(2, seed=0, elevation=(0.0, 10.0), background=(200, 200))
    views = render_views(load_mesh(fuze), poses, 48, samples=4, up_axis="z")
    assert len(views) == 2
    for image in views:
        assert image.shape == (48, 48, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image[0, 0], [200, 200, 200])  # a corner: background
        centre = _centre(image)
        assert centre[0] > centre[1] + 40 and centre[0] > centre[2]  # the label is red-pink
        upright = np.abs(image.astype(int) - 200).sum(axis=2) > 30
        rows, cols = np.nonzero(upright)
        assert np.ptp(rows) > 1.8 * np.ptp(cols)  # a bottle standing up (z-up file turned to +Y up)


def test_render_views_vertex_colours_textures_and_same_pixels_for_any_thread_count(tmp_path: Path):
    import drjit as dr

    ply = load_mesh(_coloured_box(tmp_path / "box.ply", (20, 200, 40)))
    glb = load_mesh(_textured_glb(tmp_path / "box.glb", (30, 60, 220)))
    assert ply.visual.kind == "vertex" and glb.visual.kind == "texture"
    poses = sphere_poses(2, seed=1, background=(255, 255))
    green = render_views(ply, poses, 32, samples=4)
    blue = render_views(glb, poses, 32, samples=4)
    for image in green:
        r, g, b = _centre(image)
        assert g > r + 60 and g > b + 60
    for image in blue:
        r, g, b = _centre(image)
        assert b > r + 60 and b > g + 40
    before = dr.thread_count()
    try:
        dr.set_thread_count(1)
        again = render_views(ply, poses, 32, samples=4)
    finally:
        dr.set_thread_count(before)
    for a, b in zip(green, again, strict=True):
        np.testing.assert_array_equal(a, b)
    # a pose with a different background only changes the pixels off the object
    grey = ViewPose(**{**poses[0].__dict__, "background": [0, 0, 0]})
    (dark,) = render_views(ply, [grey], 32, samples=4)
    np.testing.assert_array_equal(dark[0, 0], [0, 0, 0])
    np.testing.assert_array_equal(_centre(dark), _centre(green[0]))


# --------------------------------------------------------------------------- the command
def _read_samples(out: Path) -> list[dict[str, bytes]]:
    samples: dict[str, dict[str, bytes]] = {}
    for shard in sorted(out.glob("views-*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                key, suffix = member.name.split(".", 1)
                samples.setdefault(key, {"__key__": key})[suffix] = tar.extractfile(member).read()
    return list(samples.values())


def test_render_meshes_writes_one_sample_per_object_and_skips_bad_meshes(tmp_path: Path):
    pytest.importorskip("domainclip.domains.multiview.captions")
    meshes = tmp_path / "meshes"
    _coloured_box(meshes / "plank" / "plank_0001.ply", (200, 40, 40), extents=(2.0, 0.2, 0.6))
    _textured_glb(meshes / "cube" / "cube_0001.glb", (40, 40, 200))
    (meshes / "cube" / "broken.obj").write_text("mtllib gone.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    out = tmp_path / "out"
    summary = render_meshes(out, [str(meshes)], views=3, size=32, samples=2, captions_per_object=2, progress=False)
    assert summary["num_objects"] == 2 and summary["num_views"] == 6
    assert summary["skipped_by_reason"] == {MISSING_TEXTURE: 1}
    assert "broken.obj" in summary["skipped"][0]["error"]
    assert json.loads((out / "categories.json").read_text()) == ["cube", "plank"]
    samples = _read_samples(out)
    assert [s["__key__"] for s in samples] == ["cube_cube_0001", "plank_plank_0001"]
    for sample, label in zip(samples, (0, 1), strict=True):
        meta = json.loads(sample["json"])
        assert meta["category"] == ["cube", "plank"][label] and int(sample["cls"]) == label
        assert meta["num_views"] == 3 and len(meta["views"]) == 3 and meta["caption_source"] == "template"
        assert meta["views"][1]["index"] == 1 and len(meta["views"][1]["camera_to_world"]) == 4
        captions = json.loads(sample["text.json"])
        assert len(captions) == 2 and all(meta["category"] in c for c in captions)
        views = decode_views(sample)
        assert len(views) == 3 and views[0].size == (32, 32)
    # the same bytes with two worker processes
    again = tmp_path / "again"
    render_meshes(again, [str(meshes)], views=3, size=32, samples=2, captions_per_object=2, workers=2, progress=False)
    assert (again / "views-000000.tar").read_bytes() == (out / "views-000000.tar").read_bytes()


def test_render_meshes_nothing_written_counts_reasons(tmp_path: Path):
    (tmp_path / "m" / "a").mkdir(parents=True)
    (tmp_path / "m" / "a" / "x.stl").write_bytes(b"not an stl at all")
    trimesh.PointCloud(np.ones((4, 3)) * np.arange(4)[:, None]).export(tmp_path / "m" / "a" / "y.ply")
    with pytest.raises(NothingWrittenError, match=r"multiview/render wrote no objects from 2 meshes: "):
        render_meshes(tmp_path / "out", [str(tmp_path / "m")], views=1, size=16, samples=1, progress=False)
    summary = json.loads((tmp_path / "out" / "render-summary.json").read_text())
    assert sum(summary["skipped_by_reason"].values()) == 2 and NO_FACES in summary["skipped_by_reason"]


def test_render_meshes_checks_options_before_work(tmp_path: Path):
    with pytest.raises(InputError, match="elevation"):
        render_meshes(tmp_path / "o", [str(tmp_path)], elevation=(30.0, 10.0), progress=False)


def test_render_meshes_reads_the_generators_metadata(tmp_path: Path):
    """Categories, licences and caption attributes come from metadata.jsonl (the generator's, Objaverse-style)."""
    from domainclip.domains.multiview.synthetic.meshes import generate_meshes

    generate_meshes(tmp_path / "meshes", 3, seed=4, progress=False)
    records = [json.loads(line) for line in (tmp_path / "meshes" / "metadata.jsonl").read_text().splitlines()]
    # the folder names say nothing here: every mesh moves into one folder, so only the table can tell
    flat = tmp_path / "flat" / "misc"
    flat.mkdir(parents=True)
    table = []
    for record in records:
        for name in record["files"]:
            shutil.copy(tmp_path / "meshes" / name, flat / Path(name).name)
        table.append({**record, "path": f"misc/{Path(record['path']).name}", "license": "CC-BY-4.0"})
    metadata = tmp_path / "flat" / "objects.jsonl"
    metadata.write_text("".join(json.dumps(r) + "\n" for r in table))
    out = tmp_path / "out"
    render_meshes(out, [str(flat)], metadata=metadata, views=2, size=16, samples=1, captions_per_object=15,
                  progress=False)
    samples = {json.loads(s["json"])["object_id"]: s for s in _read_samples(out)}
    assert len(samples) == 3
    for record in records:
        sample = samples[f"{record['category']}_{Path(record['path']).stem}"]
        meta = json.loads(sample["json"])
        assert meta["category"] == record["category"] and meta["license"] == "CC-BY-4.0"
        captions = json.loads(sample["text.json"])
        assert all(record["category"] in c for c in captions)
        assert any(record["attributes"]["colour"] in c for c in captions)  # the colour templates were used
