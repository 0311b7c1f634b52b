"""Cameras on a viewing sphere around an object, and the object's normalised frame they are placed in.

Every rendered view is taken in the object's *normalised frame*: the mesh is moved so that the
centre of its bounding box is the origin, turned so that its up axis is +Y, and scaled so that its
bounding sphere about that centre has radius 1. A camera at ``distance`` > 1 is then outside the
object for any mesh, and a vertical field of view ``fov`` frames the whole object when
``distance >= 1 / sin(fov / 2)`` (3.0 at the default 40 degrees: :func:`framing_distance`).

:func:`sphere_poses` draws one object's views: azimuths evenly spaced around the up axis from a
random start, each jittered; elevations drawn uniformly in a range; a light per view (a sun whose
direction, strength and ambient share are drawn around the camera) and a background grey per view.
Everything is a pure function of its arguments (a seeded :class:`numpy.random.Generator`), so the
same seed gives the same poses on every machine. Poses are :class:`~.views.ViewPose` (OpenGL
convention: the camera looks down its -Z axis with +Y up), stored in the shard meta as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from domainclip.core.errors import InputError
from domainclip.domains.multiview.views import ViewPose

if TYPE_CHECKING:
    import trimesh

__all__ = ["UpAxis", "framing_distance", "look_at", "normalise_mesh", "sphere_poses"]

#: The axis a mesh file treats as up: +Y (glTF, most OBJ exports, ModelNet after alignment) or +Z (CAD, scans).
UpAxis = Literal["y", "z"]

#: Turns a +Z-up mesh into the +Y-up frame (a -90 degree turn about X: +Z -> +Y, +Y -> -Z).
_Z_UP_TO_Y_UP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def framing_distance(fov: float, margin: float = 1.0) -> float:
    """The camera distance at which a unit bounding sphere just fills a vertical field of view of ``fov`` degrees.

    Args:
        fov: vertical field of view in degrees.
        margin: multiplies the distance (``1.1`` leaves 10 % around the sphere).
    """
    return margin / math.sin(math.radians(fov) / 2)


def normalise_mesh(mesh: trimesh.Trimesh, up_axis: UpAxis = "y") -> trimesh.Trimesh:
    """A copy of ``mesh`` in the normalised frame: bounding-box centre at the origin, +Y up, bounding-sphere radius 1.

    Idempotent: a mesh already in the frame comes back unchanged (up to rounding). Textures,
    vertex colours and face colours are kept (they are per vertex or per face, not per position).

    Args:
        mesh: the loaded mesh (:func:`~.render.load_mesh`).
        up_axis: the axis the file treats as up; ``"z"`` turns the mesh so that +Z becomes +Y.

    Raises:
        InputError: the mesh has no extent (all its vertices in one point).
    """
    out = mesh.copy()
    if up_axis == "z":
        out.apply_transform(_Z_UP_TO_Y_UP)
    centre = out.bounds.mean(axis=0)
    radius = float(np.linalg.norm(out.vertices - centre, axis=1).max()) if len(out.vertices) else 0.0
    if not radius > 0 or not math.isfinite(radius):
        raise InputError(f"the mesh has no extent (its vertices span {radius} units); nothing to see")
    out.apply_translation(-centre)
    out.apply_scale(1.0 / radius)
    return out


def look_at(eye: Sequence[float], target: Sequence[float] = (0.0, 0.0, 0.0), up: Sequence[float] = (0.0, 1.0, 0.0)
            ) -> np.ndarray:
    """The 4x4 camera-to-world pose of a camera at ``eye`` looking at ``target`` (OpenGL: looks down -Z, +Y up).

    When the view direction is parallel to ``up`` (a camera straight above or below), the camera's
    up is the world's -Z (from above) or +Z (from below), so the pose is still a rotation.

    Args:
        eye: camera position.
        target: the point it looks at.
        up: the world direction that appears upward in the image.

    Raises:
        ValueError: ``eye`` equals ``target``.
    """
    eye_, target_, up_ = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    forward = target_ - eye_
    norm = np.linalg.norm(forward)
    if norm == 0:
        raise ValueError("look_at: the camera is at the point it looks at")
    forward /= norm
    right = np.cross(forward, up_)
    if np.linalg.norm(right) < 1e-9:
        up_ = np.array([0.0, 0.0, -1.0 if forward @ up_ < 0 else 1.0])
        right = np.cross(forward, up_)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, true_up, -forward, eye_
    return pose


def _direction(azimuth: float, elevation: float) -> np.ndarray:
    """The unit vector ``azimuth`` degrees around +Y (0: +Z, 90: +X), ``elevation`` degrees above the XZ plane."""
    az, el = math.radians(azimuth), math.radians(elevation)
    return np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])


def sphere_poses(
    n: int,
    *,
    seed: int = 0,
    elevation: tuple[float, float] = (-10.0, 40.0),
    azimuth_jitter: float = 10.0,
    distance: float | None = None,
    fov: float = 40.0,
    light_jitter: float = 0.25,
    background: tuple[int, int] = (255, 255),
) -> list[ViewPose]:
    """``n`` cameras on a sphere around the normalised object, each with its light and background.

    Azimuths are evenly spaced, ``360 / n`` degrees apart from a start drawn in ``[0, 360)``, and
    each moves by up to ``azimuth_jitter`` degrees; elevations are drawn uniformly in ``elevation``.
    Every camera looks at the origin at ``distance``. The light of a view (``ViewPose.light``) is a
    sun ``azimuth`` degrees around the up axis and ``elevation`` degrees high (drawn within 60
    degrees of the camera's azimuth, between 20 and 70 degrees up, so the visible side is lit),
    with ``intensity`` (the sun's irradiance) and ``ambient`` (a uniform sky's radiance) drawn
    within ``light_jitter`` of 2.0 and 0.45, relatively. The background is a grey level drawn in
    ``background`` (RGB, all three equal).

    Args:
        n: number of views.
        seed: seed of every random draw (same seed, same poses).
        elevation: lowest and highest camera elevation in degrees, within [-90, 90].
        azimuth_jitter: largest change of each evenly spaced azimuth, in degrees.
        distance: camera distance from the centre in bounding-sphere radii (default:
            :func:`framing_distance` of ``fov`` with a 5 % margin).
        fov: vertical field of view in degrees.
        light_jitter: relative spread of the light's strength and ambient share (0: the same light
            strength in every view; its direction still follows the camera).
        background: lowest and highest background grey level (0-255).

    Returns:
        The poses, ``index`` 0 to ``n - 1``.

    Raises:
        InputError: a range out of order or out of bounds, a camera inside the object, a field of
            view outside (0, 180).
    """
    if n < 1:
        raise InputError(f"views must be at least 1; got {n}")
    low, high = (float(e) for e in elevation)
    if not -90 <= low <= high <= 90:
        raise InputError(f"elevation must be (low, high) degrees with -90 <= low <= high <= 90; got {list(elevation)}")
    if not 0 < fov < 180:
        raise InputError(f"fov must be between 0 and 180 degrees; got {fov}")
    if azimuth_jitter < 0 or not 0 <= light_jitter < 1:
        raise InputError(
            f"azimuth_jitter must be >= 0 and light_jitter in [0, 1); got {azimuth_jitter}, {light_jitter}")
    grey_low, grey_high = (int(b) for b in background)
    if not 0 <= grey_low <= grey_high <= 255:
        raise InputError(f"background must be (low, high) grey levels in 0..255; got {list(background)}")
    distance = framing_distance(fov, 1.05) if distance is None else float(distance)
    if not distance > 1:
        raise InputError(f"distance must be above 1 (the object's bounding-sphere radius); got {distance}")

    rng = np.random.default_rng(seed)
    start = rng.uniform(0.0, 360.0)
    poses = []
    for i in range(n):
        azimuth = (start + 360.0 * i / n + rng.uniform(-azimuth_jitter, azimuth_jitter)) % 360.0
        elev = rng.uniform(low, high) if high > low else low
        light_azimuth = (azimuth + rng.uniform(-60.0, 60.0)) % 360.0
        light_elevation = rng.uniform(20.0, 70.0)
        intensity = 2.0 * (1 + rng.uniform(-light_jitter, light_jitter))
        ambient = 0.45 * (1 + rng.uniform(-light_jitter, light_jitter))
        grey = int(rng.integers(grey_low, grey_high + 1))
        eye = distance * _direction(azimuth, elev)
        poses.append(ViewPose(
            index=i, azimuth=round(azimuth, 4), elevation=round(elev, 4), distance=round(distance, 6), fov=float(fov),
            camera_to_world=[[round(float(x), 8) for x in row] for row in look_at(eye)],
            light={"azimuth": round(light_azimuth, 4), "elevation": round(light_elevation, 4),
                   "intensity": round(intensity, 6), "ambient": round(ambient, 6)},
            background=[grey, grey, grey],
        ))
    return poses
