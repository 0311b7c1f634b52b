"""Generated object meshes in three file formats, and the ``synthetic`` command that writes them.

:func:`make_object` draws object ``index`` of the set ``seed``: its category is
``categories[index % len(categories)]``, its proportions, yaw, colours and surface pattern come
from a generator seeded by ``(seed, index)``, and its file format cycles per category, so any
number of workers writes the same bytes. Colours and patterns are drawn from one palette
(:data:`PALETTE`, :data:`PATTERNS`) for every category: only the shape tells the category.

Each object is written as one of:

* ``obj``: Wavefront OBJ with its MTL and a PNG texture (``<id>.obj``, ``<id>.mtl``, ``<id>.png``),
  UVs from a box projection of each face;
* ``ply``: binary PLY with per-vertex colours (the same pattern, sampled at the vertices of a finer
  mesh);
* ``glb``: binary glTF with the PNG texture embedded.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np

from domainclip.core.io import atomic_output, atomic_write_bytes, atomic_write_text
from domainclip.core.options import NonNegativeInt, PositiveInt, Range, entry_point
from domainclip.core.parallel import map_unordered
from domainclip.core.plugins import require
from domainclip.domains.multiview.synthetic.shapes import CATEGORIES, build_parts

__all__ = [
    "FORMATS",
    "GENERATOR",
    "LICENCE",
    "METADATA_FILE",
    "PALETTE",
    "PATTERNS",
    "SOURCE",
    "SUMMARY_FILE",
    "GeneratedObject",
    "generate_meshes",
    "make_object",
    "make_texture",
]

#: Generator name and version, recorded in the metadata.
GENERATOR = "domainclip.domains.multiview.synthetic/1"
#: Licence of the generated meshes.
LICENCE = "CC0-1.0"
#: The ``source`` of every generated object in the metadata.
SOURCE = "domainclip generator"
#: File formats, in the order objects of one category cycle through them.
FORMATS: tuple[str, ...] = ("obj", "ply", "glb")
#: The colours every category draws from (name -> sRGB).
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (200, 45, 40),
    "orange": (230, 130, 30),
    "yellow": (225, 200, 40),
    "green": (60, 160, 70),
    "teal": (40, 150, 150),
    "blue": (45, 85, 200),
    "purple": (130, 60, 170),
    "pink": (225, 120, 160),
    "brown": (125, 80, 45),
    "grey": (135, 135, 135),
    "white": (235, 235, 230),
}
#: Surface patterns every category draws from.
PATTERNS: tuple[str, ...] = ("plain", "striped", "checked", "dotted", "speckled")
#: Objects written per worker task.
CHUNK = 20
#: Longest edge of the PLY meshes (vertex colours need vertices to show a pattern), in object units.
PLY_EDGE = 0.15
#: The files a set holds besides the meshes.
METADATA_FILE, SUMMARY_FILE = "metadata.jsonl", "synthetic-summary.json"


@dataclass
class GeneratedObject:
    """One generated object with everything known about it.

    Args:
        index: its number in the set.
        category: its category.
        object_id: ``<category>_<index, 6 digits>``, its file name without suffix.
        file_format: ``obj``, ``ply`` or ``glb``.
        mesh: the object as one textured ``trimesh.Trimesh`` (+Y up, on ``y = 0``).
        texture: the RGB texture image (``(S, S, 3)`` uint8).
        attributes: the words a caption may use: ``colour``, ``second_colour``, ``pattern``.
        params: the drawn proportions and yaw.
    """

    index: int
    category: str
    object_id: str
    file_format: str
    mesh: Any
    texture: np.ndarray
    attributes: dict[str, str] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """Where the mesh file goes, relative to the set's folder: ``<category>/<object_id>.<format>``."""
        return f"{self.category}/{self.object_id}.{self.file_format}"


def make_texture(pattern: str, colour: tuple[int, int, int], second: tuple[int, int, int], size: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Draw a ``size`` x ``size`` RGB texture of ``pattern`` in two colours.

    Args:
        pattern: one of :data:`PATTERNS`.
        colour: the main colour.
        second: the pattern's colour.
        size: side in pixels.
        rng: the object's random generator.
    """
    yy, xx = (np.mgrid[:size, :size] + 0.5) / size
    period = float(rng.uniform(0.15, 0.3))
    angle = float(rng.uniform(0, np.pi))
    if pattern == "striped":
        mask = ((xx * np.cos(angle) + yy * np.sin(angle)) / period) % 1 < 0.5
    elif pattern == "checked":
        mask = ((np.floor(xx / period) + np.floor(yy / period)) % 2) == 0
    elif pattern == "dotted":
        fx, fy = (xx / period) % 1 - 0.5, (yy / period) % 1 - 0.5
        mask = fx**2 + fy**2 < 0.09
    elif pattern == "speckled":
        mask = rng.random((size, size)) < 0.3
    else:
        mask = np.zeros((size, size), bool)
    image = np.where(mask[..., None], np.asarray(second, np.float32), np.asarray(colour, np.float32))
    image = image * rng.uniform(0.92, 1.0, (size, size, 1))  # a little grain, the same in every pattern
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _box_uv(points: np.ndarray, normals: np.ndarray, lower: np.ndarray, scale: float) -> np.ndarray:
    """UVs in [0, 1] from projecting each point on the plane across its normal's largest axis."""
    axis = np.argmax(np.abs(normals), axis=1)
    keep = np.array([[1, 2], [0, 2], [0, 1]])[axis]
    rel = (points - lower) / scale
    uv = np.take_along_axis(rel, keep, axis=1)
    return np.clip(uv, 0.0, 1.0)


def _sample(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Texture colours (nearest texel) at UVs, OpenGL convention (v up)."""
    size = texture.shape[0]
    col = np.clip((uv[:, 0] * size).astype(int), 0, size - 1)
    row = np.clip(((1 - uv[:, 1]) * size).astype(int), 0, size - 1)
    return texture[row, col]


def make_object(
    seed: int,
    index: int,
    *,
    categories: tuple[str, ...] = CATEGORIES,
    formats: tuple[str, ...] = FORMATS,
    texture_size: int = 64,
) -> GeneratedObject:
    """Draw object ``index`` of the set ``seed``: its shape, pose, colours, texture and file format.

    Args:
        seed: the set's seed.
        index: the object's number; its category is ``categories[index % len(categories)]``.
        categories: the categories objects cycle through.
        formats: the file formats the objects of one category cycle through.
        texture_size: texture side in pixels.
    """
    import trimesh

    category = categories[index % len(categories)]
    file_format = formats[(index // len(categories)) % len(formats)]
    rng = np.random.default_rng([int(seed), int(index)])
    parts, params = build_parts(category, rng)
    mesh = trimesh.util.concatenate(parts)
    yaw = round(float(rng.uniform(0, 360)), 2)
    mesh.apply_transform(trimesh.transformations.rotation_matrix(np.radians(yaw), [0, 1, 0]))
    names = list(PALETTE)
    first, second = rng.choice(len(names), size=2, replace=False)
    pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
    texture = make_texture(pattern, PALETTE[names[first]], PALETTE[names[second]], texture_size, rng)
    attributes = {"colour": names[first], "second_colour": names[second], "pattern": pattern}
    object_id = f"{category}_{index:06d}"
    return GeneratedObject(index=index, category=category, object_id=object_id, file_format=file_format, mesh=mesh,
                           texture=texture, attributes=attributes, params={**params, "yaw": yaw})


def _textured(obj: GeneratedObject) -> Any:
    """The object with a UV texture: faces unshared so each takes the box projection across its own normal."""
    import trimesh
    from PIL import Image

    mesh = obj.mesh.copy()
    lower, scale = mesh.bounds[0], float(np.max(mesh.extents))
    normals = np.repeat(mesh.face_normals, 3, axis=0)
    mesh.unmerge_vertices()  # vertex 3f + k belongs to face f
    uv = _box_uv(mesh.vertices, normals, lower, scale)
    material = trimesh.visual.material.SimpleMaterial(image=Image.fromarray(obj.texture), name=obj.object_id)
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return mesh


def _coloured(obj: GeneratedObject) -> Any:
    """The object on a finer mesh with the texture sampled at its vertices."""
    import trimesh

    vertices, faces = trimesh.remesh.subdivide_to_size(obj.mesh.vertices, obj.mesh.faces, max_edge=PLY_EDGE)
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    lower, scale = mesh.bounds[0], float(np.max(mesh.extents))
    colours = _sample(obj.texture, _box_uv(mesh.vertices, mesh.vertex_normals, lower, scale))
    rgba = np.column_stack([colours, np.full(len(colours), 255, np.uint8)])
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=rgba)
    return mesh


def _encode(obj: GeneratedObject) -> dict[str, bytes]:
    """The object's files: name -> bytes (the mesh first)."""
    if obj.file_format == "ply":
        return {f"{obj.object_id}.ply": _coloured(obj).export(file_type="ply", encoding="binary")}
    mesh = _textured(obj)
    if obj.file_format == "glb":
        return {f"{obj.object_id}.glb": mesh.export(file_type="glb")}
    from trimesh.exchange.obj import export_obj

    text, files = export_obj(mesh, include_normals=False, return_texture=True, mtl_name=f"{obj.object_id}.mtl",
                             digits=6, header=GENERATOR)
    return {f"{obj.object_id}.obj": text.encode("utf-8"), **dict(sorted(files.items()))}


def _write_chunk(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Draw and write objects ``start`` to ``stop`` (worker task); return their metadata records."""
    out = Path(job["out"])
    records = []
    for index in range(job["start"], job["stop"]):
        obj = make_object(job["seed"], index, **job["options"])
        files = _encode(obj)
        for name, data in files.items():
            atomic_write_bytes(out / obj.category / name, data)
        records.append({
            "path": obj.path,
            "category": obj.category,
            "license": LICENCE,
            "source": SOURCE,
            "object_id": obj.object_id,
            "format": obj.file_format,
            "files": [f"{obj.category}/{name}" for name in files],
            "faces": int(len(obj.mesh.faces)),
            "attributes": obj.attributes,
            "params": obj.params,
            "generator": {"name": GENERATOR, "seed": job["seed"], "index": index},
        })
    return records


@entry_point
def generate_meshes(
    out: Path,
    n: PositiveInt = 500,
    *,
    seed: NonNegativeInt = 0,
    workers: PositiveInt = 1,
    progress: bool = True,
    categories: tuple[Literal[CATEGORIES], ...] = CATEGORIES,  # type: ignore[valid-type]
    formats: tuple[Literal["obj", "ply", "glb"], ...] = FORMATS,
    texture_size: Annotated[int, Range(8, 1024)] = 64,
) -> dict[str, Any]:
    """Generate object meshes of shape categories that look alike from a few viewpoints.

    Writes ``n`` objects into ``out/<category>/<object_id>.<format>`` (the ModelNet / ShapeNet layout
    ``domainclip prepare multiview render`` reads), cycling through ``categories`` and, within a
    category, through ``formats``: OBJ with an MTL and a PNG texture, PLY with vertex colours, GLB
    with an embedded texture. Colours and patterns come from one palette for every category.
    ``metadata.jsonl`` holds one record per object in index order (``path``, ``category``,
    ``license``, ``source``, its colours and pattern, its proportions and the generator's
    parameters) and ``synthetic-summary.json`` the counts and options. Object ``i`` depends only on
    ``(seed, i)`` and the options, so any number of workers writes the same bytes.

    Args:
        out: output folder.
        n: number of objects.
        seed: set seed (held-out sets use another).
        workers: worker processes.
        progress: show a progress bar.
        categories: the categories to generate, in the order objects cycle through them.
        formats: the file formats the objects of each category cycle through.
        texture_size: side of the texture images in pixels.

    Returns:
        The summary (also ``synthetic-summary.json``, without ``out``): objects per category and
        format, faces, options, generator and licence; and ``seconds`` and ``objects_per_second``.

    Raises:
        MissingExtraError: trimesh is not installed.
    """
    from tqdm.auto import tqdm

    require("trimesh", "multiview", "generating meshes")
    categories = tuple(dict.fromkeys(categories))
    formats = tuple(dict.fromkeys(formats))
    options = {"categories": categories, "formats": formats, "texture_size": texture_size}
    jobs = [{"out": str(out), "seed": seed, "start": start, "stop": min(start + CHUNK, n), "options": options}
            for start in range(0, n, CHUNK)]
    began = time.perf_counter()
    by_category: Counter[str] = Counter()
    by_format: Counter[str] = Counter()
    faces = 0
    pending: dict[int, list[dict[str, Any]]] = {}
    following = 0
    with atomic_output(out / METADATA_FILE) as tmp, open(tmp, "w", encoding="utf-8") as lines:
        with tqdm(total=n, disable=not progress, unit="object", desc="synthetic meshes") as bar:
            for job, records in map_unordered(_write_chunk, jobs, workers):
                pending[job] = records
                while following in pending:  # records in index order, holding only chunks that came early
                    for record in pending.pop(following):
                        lines.write(json.dumps(record, sort_keys=True) + "\n")
                        by_category[record["category"]] += 1
                        by_format[record["format"]] += 1
                        faces += record["faces"]
                    following += 1
                bar.update(len(records))
    summary: dict[str, Any] = {
        "n": n,
        "seed": seed,
        "categories": list(categories),
        "counts_by_category": {c: by_category[c] for c in categories},
        "counts_by_format": {f: by_format[f] for f in formats},
        "faces": faces,
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
        "palette": list(PALETTE),
        "patterns": list(PATTERNS),
        "files": {"meshes": "<category>/<object_id>.<format>", "metadata": METADATA_FILE},
        "generator": GENERATOR,
        "license": LICENCE,
        "source": SOURCE,
    }
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    seconds = time.perf_counter() - began
    return {"out": str(out), **summary, "summary": str(out / SUMMARY_FILE), "metadata": str(out / METADATA_FILE),
            "seconds": round(seconds, 3), "objects_per_second": round(n / seconds, 1) if seconds > 0 else None}

