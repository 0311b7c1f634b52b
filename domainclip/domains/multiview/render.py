"""Render meshes into multi-view object samples, headless on the CPU with Mitsuba 3.

``domainclip prepare multiview render --meshes meshes/ --out views/ --views 12 --size 224``

Meshes (OBJ with its MTL and textures, PLY with vertex colours, GLB/glTF, OFF, STL) are loaded
with trimesh (:func:`load_mesh`; a scene is concatenated into one mesh, keeping its textures and
colours), moved into the normalised frame (:func:`~.camera.normalise_mesh`) and rendered from
cameras on a sphere around them (:func:`~.camera.sphere_poses`) by :func:`render_views`.

The renderer is Mitsuba 3's ``scalar_rgb`` variant: a pip wheel that runs on any CPU with no
OpenGL, no EGL/OSMesa and no display. It was measured against trimesh ray casting with embreex and
VTK/pyvista off-screen (``bench/bench_multiview_render.py``): VTK is the fastest but its pip wheel
renders through the system's EGL/Mesa libraries (absent on a bare server or container), and
ray casting in trimesh leaves the shading, texture filtering and anti-aliasing to be written here;
Mitsuba gives filtered textures, soft ambient light, sun shadows and anti-aliased edges at a few
views per second per core at 224 px. One Mitsuba scene is built per object; only the camera and
the light change between its views (through ``mi.traverse``). Each view is rendered with the
seed of its index, so the pixels depend only on the mesh and the pose, not on thread or worker
counts.

Output of :func:`render_meshes`, in ``out``: shards ``views-000000.tar``, ... with their index
``views-index.json``, one sample per object in the layout of :mod:`~.views` (members
``000.view.jpg``, ..., ``text.json``, ``cls``, ``json``), ``categories.json`` (the sorted category
list: ``cls`` indexes it) and ``render-summary.json`` (counts, objects skipped by reason with the
error of each, views per second).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np

from domainclip.core.errors import InputError, InputNotFoundError, NothingWrittenError
from domainclip.core.io import find_inputs, read_jsonl, safe_key
from domainclip.core.options import NonNegativeInt, PositiveFloat, PositiveInt, Range, entry_point
from domainclip.domains.multiview.camera import UpAxis, normalise_mesh, sphere_poses
from domainclip.domains.multiview.views import ViewPose, object_sample

if TYPE_CHECKING:
    import trimesh

__all__ = [
    "MESH_SUFFIXES",
    "MISSING_TEXTURE",
    "NO_FACES",
    "UNREADABLE",
    "MeshError",
    "MeshRenderer",
    "load_mesh",
    "missing_textures",
    "render_meshes",
    "render_views",
]

#: File suffixes searched for meshes.
MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".off", ".stl")
#: Why a mesh is skipped: trimesh cannot load it; it has no faces (a point cloud, an empty file);
#: its OBJ names a material file or texture that is not there.
UNREADABLE, NO_FACES, MISSING_TEXTURE = "unreadable", "no_faces", "missing_texture"
#: Largest texture side given to the renderer (larger ones are downsized: a 224-px view samples far less).
MAX_TEXTURE_SIZE = 2048
#: Colour of a mesh with neither texture nor colours (sRGB).
DEFAULT_COLOUR = (180, 180, 180)


class MeshError(InputError):
    """A mesh file that cannot be rendered; the message names the file, ``reason`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# --------------------------------------------------------------------------- loading
_MAP_OPTIONS = re.compile(r"^(?:-(?:blendu|blendv|cc|clamp|imfchan|texres|bm|boost)\s+\S+\s*|"
                          r"-(?:mm)\s+\S+\s+\S+\s*|-(?:o|s|t)\s+\S+(?:\s+[-+0-9.eE]+){0,2}\s*)+")


def _obj_directives(path: Path, keyword: str) -> list[str]:
    """The rest of each line of an OBJ or MTL file that starts with ``keyword`` (file names may hold spaces)."""
    found = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.strip().split(None, 1)
            if len(parts) == 2 and parts[0] == keyword:
                found.append(parts[1].strip())
    return found


def missing_textures(path: str | os.PathLike) -> list[str]:
    """The material files and textures an OBJ names that are not there (trimesh drops them without a word).

    Reads the OBJ's ``mtllib`` lines and, in each material file, the ``map_Kd`` lines (the colour
    texture; its options such as ``-s 1 1 1`` are skipped, and the file name may hold spaces).

    Args:
        path: the OBJ file.

    Returns:
        Each missing file as written in the OBJ or MTL, prefixed with ``mtllib`` or ``map_Kd``.
    """
    path = Path(path)
    missing = []
    for library in _obj_directives(path, "mtllib"):
        mtl = path.parent / library
        if not mtl.is_file():
            missing.append(f"mtllib {library}")
            continue
        for texture in _obj_directives(mtl, "map_Kd"):
            name = _MAP_OPTIONS.sub("", texture).strip()
            if not (mtl.parent / name).is_file() and not (mtl.parent / texture).is_file():
                missing.append(f"map_Kd {name}")
    return missing


def load_mesh(path: str | os.PathLike) -> trimesh.Trimesh:
    """Load a mesh file as one triangle mesh with its textures or colours.

    A file that holds a scene (several parts, as GLB/glTF and OBJ with groups do) is concatenated
    into one mesh in the scene's frame; trimesh packs the parts' textures into one.

    Args:
        path: an OBJ (with its MTL and textures), PLY, GLB/glTF, OFF or STL file.

    Raises:
        InputNotFoundError: the file does not exist.
        MeshError: it cannot be loaded (``unreadable``), holds no faces (``no_faces``), or is an OBJ
            whose material file or ``map_Kd`` texture is missing (``missing_texture``).
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"mesh {path} does not exist")
    if path.suffix.lower() == ".obj":
        missing = missing_textures(path)
        if missing:
            raise MeshError(MISSING_TEXTURE, f"{path}: names files that are not there: {'; '.join(missing)}")
    try:
        loaded = trimesh.load(path, force="mesh", process=False)
    except Exception as e:  # noqa: BLE001 - each format's loader raises its own kinds (ValueError, KeyError, struct.error, ...)
        detail = " ".join(str(e).split()) or type(e).__name__
        raise MeshError(UNREADABLE, f"{path}: cannot be loaded as a mesh: {detail}") from None
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise MeshError(NO_FACES, f"{path}: holds no faces (a point cloud or an empty scene)")
    return loaded


# --------------------------------------------------------------------------- appearance
def _srgb_to_linear(values: np.ndarray) -> np.ndarray:
    c = np.asarray(values, dtype=np.float32) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _linear_to_srgb(values: np.ndarray) -> np.ndarray:
    c = np.clip(values, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


@dataclass
class _Appearance:
    """How a mesh is coloured: a texture with UVs, colours per vertex or per face, or one colour."""

    texture: np.ndarray | None = None  # HxWx3 uint8 sRGB
    uv: np.ndarray | None = None  # (V, 2), v already flipped for Mitsuba
    vertex_colours: np.ndarray | None = None  # (V, 3) linear
    face_colours: np.ndarray | None = None  # (F, 3) linear
    colour: tuple[float, float, float] = tuple(_srgb_to_linear(np.array(DEFAULT_COLOUR)).tolist())  # type: ignore[assignment]


def _material_texture(material: Any) -> tuple[Any, Any]:
    """The colour texture (PIL) and base colour (RGBA 0-255) of a trimesh Simple or PBR material."""
    image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    colour = getattr(material, "baseColorFactor", None)
    if colour is None:
        colour = getattr(material, "diffuse", None) if hasattr(material, "diffuse") else None
    return image, colour


def _appearance(mesh: trimesh.Trimesh) -> _Appearance:
    from PIL import Image

    visual = mesh.visual
    kind = getattr(visual, "kind", None)
    if kind == "texture":
        image, colour = _material_texture(visual.material)
        uv = getattr(visual, "uv", None)
        if image is not None and uv is not None and len(uv) == len(mesh.vertices):
            image = image.convert("RGB")
            if max(image.size) > MAX_TEXTURE_SIZE:
                scale = MAX_TEXTURE_SIZE / max(image.size)
                image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                     Image.Resampling.LANCZOS)
            flipped = np.asarray(uv, dtype=np.float32).copy()
            flipped[:, 1] = 1.0 - flipped[:, 1]  # v = 0 is the image's bottom in OBJ/glTF, its top in Mitsuba
            return _Appearance(texture=np.array(image, dtype=np.uint8, order="C"), uv=flipped)
        if colour is not None:
            return _Appearance(colour=tuple(_srgb_to_linear(np.asarray(colour)[:3]).tolist()))  # type: ignore[arg-type]
        return _Appearance()
    if kind == "vertex":
        return _Appearance(vertex_colours=_srgb_to_linear(np.asarray(visual.vertex_colors)[:, :3]))
    if kind == "face":
        return _Appearance(face_colours=_srgb_to_linear(np.asarray(visual.face_colors)[:, :3]))
    return _Appearance()


# --------------------------------------------------------------------------- the renderer
def _mitsuba() -> Any:
    try:
        import mitsuba as mi
    except ImportError as e:
        raise ImportError("rendering needs mitsuba: pip install 'domainclip[multiview]'") from e
    mi.set_variant("scalar_rgb")
    return mi


class MeshRenderer:
    """One mesh set up in a Mitsuba scene, rendered from any number of poses.

    The scene (mesh, material, lights, camera, film) is built once; :meth:`render` moves the
    camera and the sun and sets the light strengths through ``mi.traverse`` before each view.
    The integrator is ``direct`` (sun shadows and a uniform sky, one bounce: clean at few samples
    per pixel), the sampler ``multijitter`` (stratified: far less noise than independent samples
    at the same count), the reconstruction filter Gaussian. The film keeps an alpha channel; each
    view is composited over its pose's background and converted to sRGB.

    Args:
        mesh: the mesh in the normalised frame (:func:`~.camera.normalise_mesh`).
        size: image side in pixels.
        samples: samples per pixel.
    """

    def __init__(self, mesh: trimesh.Trimesh, size: int, samples: int = 16) -> None:
        mi = _mitsuba()
        self._mi = mi
        self.size = int(size)
        look = _appearance(mesh)
        has_uv = look.uv is not None
        shape = mi.Mesh("object", len(mesh.vertices), len(mesh.faces), has_vertex_normals=False,
                        has_vertex_texcoords=has_uv)
        params = mi.traverse(shape)
        floats, uints = type(params["vertex_positions"]), type(params["faces"])
        params["vertex_positions"] = floats(np.asarray(mesh.vertices, dtype=np.float32).ravel())
        params["faces"] = uints(np.asarray(mesh.faces, dtype=np.uint32).ravel())
        if has_uv:
            params["vertex_texcoords"] = floats(look.uv.ravel())
        params.update()
        if look.texture is not None:
            bitmap = mi.Bitmap(look.texture)  # 8-bit: read as sRGB and turned linear
            reflectance: dict[str, Any] = {"type": "bitmap", "bitmap": bitmap, "filter_type": "bilinear"}
        elif look.vertex_colours is not None:
            shape.add_attribute("vertex_color", 3, floats(look.vertex_colours.ravel()))
            reflectance = {"type": "mesh_attribute", "name": "vertex_color"}
        elif look.face_colours is not None:
            shape.add_attribute("face_color", 3, floats(look.face_colours.ravel()))
            reflectance = {"type": "mesh_attribute", "name": "face_color"}
        else:
            reflectance = {"type": "rgb", "value": list(look.colour)}
        # two-sided: scanned and CAD meshes often have inconsistent winding or open shells
        shape.set_bsdf(mi.load_dict({"type": "twosided", "bsdf": {"type": "diffuse", "reflectance": reflectance}}))
        self._scene = mi.load_dict({
            "type": "scene",
            "integrator": {"type": "direct", "hide_emitters": True},
            "sensor": {"type": "perspective", "id": "sensor", "fov": 40.0, "fov_axis": "y",
                       "film": {"type": "hdrfilm", "width": self.size, "height": self.size, "pixel_format": "rgba",
                                "rfilter": {"type": "gaussian"}},
                       "sampler": {"type": "multijitter", "sample_count": int(samples)}},
            "object": shape,
            "sky": {"type": "constant", "radiance": {"type": "rgb", "value": 0.45}},
            "sun": {"type": "directional", "direction": [0.0, -1.0, 0.0], "irradiance": {"type": "rgb", "value": 2.0}},
        })
        self._params = mi.traverse(self._scene)

    def render(self, pose: ViewPose) -> np.ndarray:
        """The view from ``pose`` as a ``(size, size, 3)`` uint8 sRGB image (rendered with the seed ``pose.index``).

        Args:
            pose: camera (``camera_to_world``, ``fov``), light (``azimuth``, ``elevation``,
                ``intensity``, ``ambient``) and ``background``; missing light or background fields
                take the defaults of :func:`~.camera.sphere_poses` (a sun above the camera, white).
        """
        from domainclip.domains.multiview.camera import _direction

        mi, params = self._mi, self._params
        if pose.camera_to_world is None or pose.fov is None:
            raise ValueError(f"view {pose.index}: a pose to render needs camera_to_world and fov")
        matrix = np.asarray(pose.camera_to_world, dtype=np.float64)
        # Mitsuba's camera looks down +Z with +Y up and +X to the left: flip X and Z of the OpenGL pose
        params["sensor.to_world"] = mi.ScalarTransform4f(matrix @ np.diag([-1.0, 1.0, -1.0, 1.0]))
        params["sensor.x_fov"] = float(pose.fov)  # the film is square: horizontal and vertical fields of view agree
        light = pose.light or {}
        toward_sun = _direction(float(light.get("azimuth", pose.azimuth or 0.0)), float(light.get("elevation", 45.0)))
        params["sun.to_world"] = mi.ScalarTransform4f().look_at(
            origin=[0.0, 0.0, 0.0], target=(-toward_sun).tolist(), up=[0.0, 0.0, 1.0] if abs(toward_sun[1]) > 0.999
            else [0.0, 1.0, 0.0])
        params["sun.irradiance.value"] = float(light.get("intensity", 2.0))
        params["sky.radiance.value"] = float(light.get("ambient", 0.45))
        params.update()
        rgba = np.asarray(mi.render(self._scene, seed=int(pose.index)), dtype=np.float32)
        background = _srgb_to_linear(np.asarray(pose.background if pose.background is not None else (255, 255, 255)))
        alpha = np.clip(rgba[..., 3:4], 0.0, 1.0)
        linear = rgba[..., :3] + (1.0 - alpha) * background  # Mitsuba's RGB is weighted by coverage
        return np.round(_linear_to_srgb(linear) * 255.0).astype(np.uint8)


def render_views(mesh: trimesh.Trimesh, poses: Sequence[ViewPose], size: int, *, samples: int = 16,
                 up_axis: UpAxis = "y") -> list[np.ndarray]:
    """Render a mesh from each pose (the object's normalised frame: :func:`~.camera.normalise_mesh`).

    Args:
        mesh: the mesh as loaded (:func:`load_mesh`); it is normalised here, the argument is not changed.
        poses: where each view is taken (:func:`~.camera.sphere_poses`).
        size: image side in pixels.
        samples: samples per pixel (16 gives clean 64-224 px views).
        up_axis: the axis the mesh treats as up.

    Returns:
        One ``(size, size, 3)`` uint8 RGB image per pose, in order.
    """
    renderer = MeshRenderer(normalise_mesh(mesh, up_axis), size, samples)
    return [renderer.render(pose) for pose in poses]


# --------------------------------------------------------------------------- the command
@dataclass(frozen=True)
class _Job:
    """What every object is rendered with (picklable, for worker processes)."""

    views: int
    size: int
    samples: int
    elevation: tuple[float, float]
    azimuth_jitter: float
    distance: float | None
    fov: float
    light_jitter: float
    background: tuple[int, int]
    up_axis: str
    seed: int
    threads: int


@dataclass(frozen=True)
class _Object:
    """One mesh to render: its file, output key, category and provenance."""

    index: int
    path: str
    key: str
    category: str
    license: str
    source: str
    #: what the caption templates may say (colour, second_colour, pattern), from ``metadata``
    attributes: dict[str, str] = field(default_factory=dict)


def _render_object(job: _Job, item: _Object) -> dict[str, Any]:
    """Render one object's views, or say why it was skipped."""
    import drjit as dr

    _mitsuba()
    dr.set_thread_count(job.threads)
    began = time.perf_counter()
    try:
        mesh = load_mesh(item.path)
        mesh_normalised = normalise_mesh(mesh, job.up_axis)  # type: ignore[arg-type]
    except MeshError as e:
        return {"path": item.path, "key": item.key, "reason": e.reason, "error": str(e)}
    except InputError as e:  # all vertices in one point: nothing to see, like a mesh without faces
        return {"path": item.path, "key": item.key, "reason": NO_FACES, "error": f"{item.path}: {e}"}
    poses = sphere_poses(job.views, seed=job.seed * 1_000_003 + item.index, elevation=job.elevation,
                         azimuth_jitter=job.azimuth_jitter, distance=job.distance, fov=job.fov,
                         light_jitter=job.light_jitter, background=job.background)
    renderer = MeshRenderer(mesh_normalised, job.size, job.samples)
    images = [renderer.render(pose) for pose in poses]
    return {"path": item.path, "key": item.key, "images": images, "poses": [p.to_json() for p in poses],
            "num_faces": len(mesh.faces), "seconds": time.perf_counter() - began}


def _read_metadata(path: Path) -> dict[str, dict[str, Any]]:
    """Mesh path (resolved) -> {category, license, source, attributes} from a CSV or JSON-lines file.

    ``attributes`` (JSON lines: a mapping; CSV: the ``colour``, ``second_colour`` and ``pattern``
    columns) are what the caption templates may say about the object.
    """
    import csv

    if not path.is_file():
        raise InputNotFoundError(f"metadata file {path} does not exist")
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = [record for _, record in read_jsonl(path)]
    table: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(rows, 1):
        if not isinstance(row, Mapping) or not row.get("path"):
            raise InputError(f"{path}: row {number} has no 'path' (columns: path, category, license, source)")
        mesh = Path(str(row["path"]))
        mesh = mesh if mesh.is_absolute() else (path.parent / mesh)
        entry: dict[str, Any] = {k: str(row[k]) for k in ("category", "license", "source") if row.get(k)}
        attributes = row.get("attributes")
        if not isinstance(attributes, Mapping):
            attributes = {k: row[k] for k in ("colour", "second_colour", "pattern") if row.get(k)}
        entry["attributes"] = {k: str(v) for k, v in attributes.items() if k in ("colour", "second_colour", "pattern")}
        table[str(mesh.resolve())] = entry
    return table


def _captions_for(category: str, count: int, seed: int, attributes: Mapping[str, str]) -> list[str]:
    from domainclip.domains.multiview.captions import template_captions

    return list(template_captions(category, n=count, seed=seed, attributes=attributes))


@entry_point
def render_meshes(
    out: Path,
    meshes: list[str],
    *,
    views: PositiveInt = 12,
    size: Annotated[int, Range(8, 2048)] = 224,
    samples: PositiveInt = 16,
    elevation: Annotated[tuple[float, float], Range(-90, 90)] = (-10.0, 40.0),
    azimuth_jitter: Annotated[float, Range(0, 180)] = 10.0,
    distance: PositiveFloat | None = None,
    fov: Annotated[float, Range(1, 179)] = 40.0,
    light_jitter: Annotated[float, Range(0, 0.99)] = 0.25,
    background: Annotated[tuple[int, int], Range(0, 255)] = (255, 255),
    up_axis: UpAxis = "y",
    metadata: Path | None = None,
    license: str = "unknown",  # noqa: A002 - the meta field's name
    captions_per_object: PositiveInt = 5,
    captioner: str | None = None,
    image_format: Literal["jpg", "png", "webp"] = "jpg",
    quality: Annotated[int, Range(1, 100)] = 92,
    max_count: PositiveInt = 1000,
    seed: NonNegativeInt = 0,
    workers: PositiveInt = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Render each mesh from cameras on a sphere around it into one multi-view sample per object.

    Args:
        out: output folder for the shards, categories.json and render-summary.json.
        meshes: mesh files, folders (searched for .obj .ply .glb .gltf .off .stl) or glob patterns; an
            object's category is its file's folder name (``<category>/<object>.obj``) unless ``metadata`` says.
        views: views per object.
        size: image side in pixels.
        samples: samples per pixel of the renderer (16 is clean at 64-224 px).
        elevation: lowest and highest camera elevation in degrees.
        azimuth_jitter: largest change of each evenly spaced camera azimuth, in degrees.
        distance: camera distance in bounding-sphere radii (default: the whole object in view, 5 % margin).
        fov: vertical field of view in degrees.
        light_jitter: relative spread of the light's strength and ambient share between views.
        background: lowest and highest background grey level of a view (each view draws one).
        up_axis: the axis the mesh files treat as up (y: glTF and most OBJ; z: CAD files and scans).
        metadata: CSV or JSON-lines file with columns path (relative to the file), category, license,
            source: per-object categories and licences (Objaverse-style); meshes it does not list keep
            their folder's category.
        license: licence recorded for meshes without one in ``metadata``.
        captions_per_object: captions written per object (category-guided templates).
        captioner: a captioning model (hub id or local folder) whose captions, with the category word
            added where they lack it, are written besides the templates.
        image_format: encoding of the view images.
        quality: JPEG/WebP quality.
        max_count: most objects per shard.
        seed: seed of the camera poses, lights, backgrounds and captions.
        workers: worker processes, each rendering one object at a time (the CPUs are shared out among them).
        progress: show a progress bar.

    Returns:
        The summary (also written to render-summary.json): objects written and skipped by reason
        (``unreadable``, ``no_faces``, ``missing_texture``) with the error of each, categories,
        shards, views per second.

    Raises:
        InputError: an elevation range out of order, a camera inside the object, no mesh files.
        NothingWrittenError: no mesh could be rendered; the message counts the reasons.
    """
    from tqdm.auto import tqdm

    from domainclip.core.data.writer import FIXED_MTIME, ShardWriter, write_json_atomic
    from domainclip.core.parallel import worker_pool

    if not elevation[0] <= elevation[1] or not background[0] <= background[1]:
        raise InputError(f"elevation and background are (low, high) ranges; got {list(elevation)}, {list(background)}")
    # checks the pose options once, before any work: the same errors as every object would give
    sphere_poses(views, elevation=elevation, azimuth_jitter=azimuth_jitter, distance=distance, fov=fov,
                 light_jitter=light_jitter, background=background)
    paths = find_inputs(meshes, MESH_SUFFIXES, what="mesh", key=lambda p: f"{p.parent.name}/{p.stem}")
    table = _read_metadata(Path(metadata)) if metadata is not None else {}
    objects = []
    for index, path in enumerate(paths):
        info = table.get(str(path.resolve()), {})
        category = info.get("category") or path.parent.name
        objects.append(_Object(index=index, path=str(path), key=safe_key(f"{category}_{path.stem}"), category=category,
                               license=info.get("license", license), source=info.get("source", str(path)),
                               attributes=info.get("attributes", {})))
    duplicates = [k for k, n in Counter(o.key for o in objects).items() if n > 1]
    if duplicates:
        raise InputError(f"two meshes would get the same object id {duplicates[0]!r}: rename one")
    categories = sorted({o.category for o in objects})
    job = _Job(views=views, size=size, samples=samples, elevation=(float(elevation[0]), float(elevation[1])),
               azimuth_jitter=azimuth_jitter, distance=distance, fov=fov, light_jitter=light_jitter,
               background=(int(background[0]), int(background[1])), up_axis=up_axis, seed=seed,
               threads=max(1, (os.cpu_count() or 1) // workers))
    caption_model = None
    if captioner is not None:
        from domainclip.domains.multiview.captions import category_guided, make_captioner

        caption_model = category_guided(make_captioner(captioner))
    Path(out).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(out) / "categories.json", categories)

    began = time.perf_counter()
    skipped: list[dict[str, Any]] = []
    written = 0
    render_fn = functools.partial(_render_object, job)
    chunk = max(1, 4 * workers)  # objects in flight: memory holds at most two chunks of objects' views

    def write_chunk(part: list[_Object], results: list[Any]) -> None:
        nonlocal written
        for item, result in zip(part, results, strict=True):  # input order: same bytes for any workers
            if not isinstance(result, dict):  # a future of the pool
                result = result.result()
                bar.update(1)
            if "reason" in result:
                skipped.append(result)
                continue
            captions = _captions_for(item.category, captions_per_object, seed * 1_000_003 + item.index,
                                     item.attributes)
            caption_source = "template"
            if caption_model is not None:
                from PIL import Image

                captions = list(caption_model([Image.fromarray(v) for v in result["images"]], item.category)) + captions
                caption_source = f"captioner:{captioner}"
            meta = {"object_id": item.key, "category": item.category, "source": item.source,
                    "license": item.license, "views": result["poses"], "caption_source": caption_source,
                    "renderer": "mitsuba scalar_rgb", "samples": samples, "up_axis": up_axis,
                    "num_faces": result["num_faces"]}
            writer.write(object_sample(item.key, result["images"], captions, meta,
                                       label=categories.index(item.category), image_format=image_format,
                                       quality=quality))
            written += 1
        bar.set_postfix(written=written, skipped=len(skipped), refresh=False)

    # one pool for the whole job: a spawned worker imports torch, trimesh and mitsuba once, not per chunk
    pool_context = worker_pool(min(workers, len(objects))) if workers > 1 else contextlib.nullcontext()
    with pool_context as pool, ShardWriter(out, prefix="views", max_count=max_count, image_format=image_format,
                                           quality=quality, mtime=FIXED_MTIME) as writer, \
            tqdm(total=len(objects), disable=not progress, unit="object", desc="render") as bar:
        pending: tuple[list[_Object], list[Any]] | None = None
        for start in range(0, len(objects), chunk):
            part = objects[start : start + chunk]
            if pool is not None:  # this chunk renders in the workers while the previous one is written
                results: list[Any] = [pool.submit(render_fn, item) for item in part]
            else:
                results = []
                for item in part:
                    results.append(render_fn(item))
                    bar.update(1)
            if pending is not None:
                write_chunk(*pending)
            pending = (part, results)
        if pending is not None:
            write_chunk(*pending)
    seconds = time.perf_counter() - began
    by_reason = Counter(r["reason"] for r in skipped)
    summary = {
        "out": str(out), **{k: v for k, v in asdict(job).items() if k != "threads"}, "num_meshes": len(objects),
        "num_objects": written, "num_views": written * views, "num_skipped": len(skipped),
        "skipped_by_reason": dict(sorted(by_reason.items())), "skipped": skipped, "categories": categories,
        "shards": [p.name for p in writer.written], "seconds": round(seconds, 3),
        "views_per_second": round(written * views / seconds, 3) if seconds > 0 else None,
    }
    write_json_atomic(Path(out) / "render-summary.json", summary)
    if written == 0:
        examples = {r["reason"]: r["error"] for r in reversed(skipped)}
        raise NothingWrittenError.from_counts("multiview/render", "objects", f"{len(objects)} meshes", by_reason,
                                              examples)
    return summary

