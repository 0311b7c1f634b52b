"""Multi-view rendering throughput: Mitsuba 3 (chosen) vs trimesh ray casting with embreex vs VTK off-screen.

Usage::

    python -m bench.bench_multiview_render [--views 8] [--size 224] [--samples 16] [--generated 8]
                                           [--repeats 2] [--out FILE.json]

Meshes: the real scanned, textured ``fuze.obj`` of ``../shared/data/multiview`` (1000 faces, a
1024 px texture whose file name has a space) and ``--generated`` meshes from the plugin's own
generator (``generate_meshes``: OBJ + texture, PLY with vertex colours, GLB). Each renderer draws
``--views`` views of ``--size`` px per mesh from the same :func:`sphere_poses`, in one process:

* ``mitsuba``: :class:`~domainclip.domains.multiview.render.MeshRenderer` (``scalar_rgb``, direct
  lighting from a sun and a uniform sky, ``--samples`` stratified samples per pixel, filtered
  textures, one scene per mesh with the camera moved through ``mi.traverse``), one render thread;
* ``trimesh_embree``: ``scene.camera_rays`` + ``RayMeshIntersector.intersects_id`` (embreex),
  2 x 2 rays per pixel, nearest-texel UV lookup or vertex colour, Lambert + ambient shading with no
  shadows: the least shading that still shows a shape;
* ``vtk``: a pyvista ``Plotter(off_screen=True)`` with the texture or vertex colours and smooth
  shading, ``screenshot`` per view. VTK's pip wheel draws through the system's EGL/Mesa libraries
  (``libEGL``, ``swrast_dri``); the result records which render window it got.

Views per second are counted from the first view to the last of a mesh (scene set-up included),
per CPU second (``time.process_time``: all threads of the process, so "per core" for a renderer that
starts threads of its own) and per wall second; medians over ``--repeats`` interleaved runs.
Nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO_ROOT, RESULTS_DIR, load_average, machine_info, markdown_table, median, write_result

__all__ = ["RENDERERS", "main", "render_mitsuba", "render_trimesh_embree", "render_vtk"]

FUZE = REPO_ROOT.parent / "shared" / "data" / "multiview" / "fuze.obj"


def render_mitsuba(mesh: Any, poses: list[Any], size: int, samples: int) -> list[np.ndarray]:
    """Mitsuba ``scalar_rgb`` through the plugin's renderer, one render thread."""
    import drjit as dr

    from domainclip.domains.multiview.render import MeshRenderer

    dr.set_thread_count(1)
    renderer = MeshRenderer(mesh, size, samples)
    return [renderer.render(p) for p in poses]


def _colours_at(mesh: Any, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """sRGB 0..1 colour of the mesh at ``points`` on ``faces``: nearest texel, vertex colour or grey."""
    import trimesh

    visual = mesh.visual
    if visual.kind == "texture":
        material = visual.material
        image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        if image is not None and visual.uv is not None:
            texture = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
            bary = trimesh.triangles.points_to_barycentric(mesh.triangles[faces], points)
            uv = np.einsum("nk,nkj->nj", bary, np.asarray(visual.uv)[mesh.faces[faces]])
            h, w = texture.shape[:2]
            x = np.clip((uv[:, 0] % 1.0 * w).astype(int), 0, w - 1)
            y = np.clip(((1 - uv[:, 1] % 1.0) * h).astype(int), 0, h - 1)
            return texture[y, x]
    if visual.kind == "vertex":
        colours = np.asarray(visual.vertex_colors)[:, :3].astype(np.float32) / 255
        bary = trimesh.triangles.points_to_barycentric(mesh.triangles[faces], points)
        return np.einsum("nk,nkj->nj", bary, colours[mesh.faces[faces]])
    if visual.kind == "face":
        return np.asarray(visual.face_colors)[faces, :3].astype(np.float32) / 255
    return np.full((len(faces), 3), 0.7, np.float32)


def render_trimesh_embree(mesh: Any, poses: list[Any], size: int, samples: int) -> list[np.ndarray]:
    """trimesh camera rays intersected by embreex, 2 x 2 rays per pixel, Lambert + ambient shading."""
    from domainclip.domains.multiview.camera import _direction

    scene = mesh.scene()
    scale = 2
    scene.camera.resolution = (size * scale, size * scale)
    intersector = mesh.ray  # embreex's RayMeshIntersector when embreex is installed
    out = []
    for pose in poses:
        scene.camera.fov = (pose.fov, pose.fov)
        scene.camera_transform = np.asarray(pose.camera_to_world)
        origins, directions, pixels = scene.camera_rays()
        faces, rays, points = intersector.intersects_id(origins, directions, multiple_hits=False,
                                                        return_locations=True)
        colours = _colours_at(mesh, faces, points)
        light = _direction(pose.light["azimuth"], pose.light["elevation"])
        normals = mesh.face_normals[faces]
        lambert = np.abs(normals @ light)  # two-sided
        shade = np.clip(pose.light["ambient"] + 0.35 * pose.light["intensity"] * lambert, 0, 1.6)
        image = np.empty((size * scale, size * scale, 3), np.float32)
        image[:] = np.asarray(pose.background, np.float32) / 255
        hit = pixels[rays]
        image[size * scale - 1 - hit[:, 1], hit[:, 0]] = np.clip(colours * shade[:, None], 0, 1)
        out.append((image.reshape(size, scale, size, scale, 3).mean(axis=(1, 3)) * 255).round().astype(np.uint8))
    return out


def render_vtk(mesh: Any, poses: list[Any], size: int, samples: int) -> list[np.ndarray]:
    """pyvista/VTK off-screen rendering (EGL or OSMesa from the system), smooth shading."""
    import pyvista as pv

    plotter = pv.Plotter(off_screen=True, window_size=(size, size))
    poly = pv.wrap(mesh)
    kwargs: dict[str, Any] = {"smooth_shading": True}
    visual = mesh.visual
    image = getattr(getattr(visual, "material", None), "baseColorTexture", None) or getattr(
        getattr(visual, "material", None), "image", None)
    if visual.kind == "texture" and image is not None:
        poly.active_texture_coordinates = np.asarray(visual.uv, np.float32)
        kwargs["texture"] = pv.Texture(np.asarray(image.convert("RGB")))
    elif visual.kind == "vertex":
        poly.point_data["rgb"] = np.asarray(visual.vertex_colors)[:, :3]
        kwargs.update(scalars="rgb", rgb=True)
    plotter.add_mesh(poly, **kwargs)
    out = []
    for pose in poses:
        plotter.set_background(np.asarray(pose.background) / 255)
        matrix = np.asarray(pose.camera_to_world)
        plotter.camera_position = [tuple(matrix[:3, 3]), (0.0, 0.0, 0.0), tuple(matrix[:3, 1])]
        plotter.camera.view_angle = pose.fov
        plotter.render()
        out.append(np.asarray(plotter.screenshot(return_img=True))[..., :3].copy())
    render_vtk.window = plotter.render_window.GetClassName()  # type: ignore[attr-defined]
    plotter.close()
    return out


RENDERERS = {"mitsuba": render_mitsuba, "trimesh_embree": render_trimesh_embree, "vtk": render_vtk}


def _timed(name: str, mesh: Any, poses: list[Any], size: int, samples: int) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    images = RENDERERS[name](mesh, poses, size, samples)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"views": len(images), "seconds": round(wall, 4), "cpu_seconds": round(cpu, 4),
            "views_per_s": len(images) / wall, "views_per_cpu_s": len(images) / max(cpu, 1e-9), "images": images}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a markdown table and write the JSON result (and a contact sheet PNG)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=8, help="views per mesh")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--samples", type=int, default=16, help="Mitsuba samples per pixel")
    parser.add_argument("--generated", type=int, default=8, help="generated meshes (one of each category first)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per renderer and mesh set")
    parser.add_argument("--renderers", nargs="+", choices=list(RENDERERS), default=list(RENDERERS))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "multiview_render.json")
    args = parser.parse_args(argv)

    from PIL import Image

    from domainclip.domains.multiview.camera import normalise_mesh, sphere_poses
    from domainclip.domains.multiview.render import load_mesh
    from domainclip.domains.multiview.synthetic.meshes import generate_meshes

    runs: list[dict[str, Any]] = []
    sheets: dict[str, list[np.ndarray]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-mv-render-") as tmp:
        sets: dict[str, list[Any]] = {}
        if FUZE.is_file():
            sets["fuze.obj (scanned, textured, 1000 faces)"] = [normalise_mesh(load_mesh(FUZE), "z")]
        if args.generated:
            generate_meshes(Path(tmp) / "meshes", args.generated, seed=0, progress=False)
            paths = sorted(p for p in (Path(tmp) / "meshes").rglob("*") if p.suffix in (".obj", ".ply", ".glb"))
            meshes = [normalise_mesh(load_mesh(p)) for p in paths]
            faces = sum(len(m.faces) for m in meshes) / len(meshes)
            sets[f"{len(meshes)} generated meshes (obj/ply/glb, mean {faces:.0f} faces)"] = meshes
        poses = sphere_poses(args.views, seed=0, background=(255, 255))
        for name in args.renderers:  # warm-up: imports, library start-up
            RENDERERS[name](next(iter(sets.values()))[0], poses[:1], 32, 1)
        for repeat in range(args.repeats):
            order = args.renderers[repeat % len(args.renderers):] + args.renderers[: repeat % len(args.renderers)]
            for label, meshes in sets.items():
                for name in order:
                    load = load_average()
                    parts = [_timed(name, mesh, poses, args.size, args.samples) for mesh in meshes]
                    views = sum(p["views"] for p in parts)
                    wall, cpu = sum(p["seconds"] for p in parts), sum(p["cpu_seconds"] for p in parts)
                    if repeat == 0:
                        sheets.setdefault(name, []).extend(parts[0]["images"][:4])
                    runs.append({"renderer": name, "meshes": label, "repeat": repeat, "views": views,
                                 "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
                                 "views_per_s": round(views / wall, 3), "views_per_cpu_s": round(views / cpu, 3),
                                 "load_before": load})
                    print(f"  repeat {repeat} {name:<15} {label[:40]:<40} {views} views {views / wall:6.2f}/s, "
                          f"{views / cpu:6.2f}/CPU s (load {load})", flush=True)

    rows, summary = [], []
    for label in sets:
        for name in args.renderers:
            mine = [r for r in runs if r["renderer"] == name and r["meshes"] == label]
            per_cpu, per_wall = median([r["views_per_cpu_s"] for r in mine]), median([r["views_per_s"] for r in mine])
            rows.append([label, name, per_cpu, per_wall])
            summary.append({"benchmark": "multiview_render", "measurement": f"{label}: {name}, {args.size} px, views "
                            f"per CPU second", "domainclip": round(per_cpu, 2) if name == "mitsuba" else None,
                            "reference": None if name == "mitsuba" else round(per_cpu, 2), "reference_name": name,
                            "ratio": None, "goal": None, "met": None, "views_per_wall_s": round(per_wall, 2)})
    sheet_path = args.out.with_suffix(".png")
    sheet = np.concatenate([np.concatenate(images, axis=1) for images in sheets.values()], axis=0)
    sheet_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(sheet_path)
    import mitsuba
    import trimesh

    result = {
        "benchmark": "multiview rendering: views per CPU second of mitsuba scalar_rgb, trimesh+embreex, VTK off-screen",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "versions": {"mitsuba": mitsuba.__version__, "trimesh": trimesh.__version__,
                     "vtk_window": getattr(render_vtk, "window", None)},
        "contact_sheet": sheet_path.name, "rows_of_sheet": list(sheets),
        "summary": summary, "runs": runs, "machine": machine_info(), "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "threads_env": os.environ.get("OMP_NUM_THREADS"),
    }
    print(markdown_table(["meshes", "renderer", "views / CPU s", "views / s (wall)"], rows))
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
