"""One object seen from every side: the zero-shot prediction of each view, placed on its viewing sphere.

Omniview-Tuning (OVT; Ruan et al., ECCV 2024) asks that an object keep its class, and its
embedding, from any viewpoint. :func:`view_predictions` shows how far a model is from that on one
object::

    result = view_predictions("fuze.obj", "runs/ovt", ["bottle", "can", "mug"], label="bottle", up_axis="z")
    fig = plot_view_predictions(result)

The object may be a mesh file, rendered here from cameras on a sphere around it with the domain's
renderer (:class:`~.render.MeshRenderer`, poses from :func:`~.camera.sphere_poses`); an object
sample of rendered or imported shards (:func:`read_object` finds one by its id; its views and
poses are read with :func:`~.views.decode_views` and :func:`~.views.read_meta`); or the user's own
images, with their camera poses where known. Each view is embedded on its own with the model's
image encoder (as the ``multiview/viewpoint`` suite does), classified zero-shot among ``classes``,
and compared with the object's mean view embedding. :func:`plot_view_predictions` places the views
on an azimuth-elevation chart of the viewing sphere and shows their thumbnails.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.core.explore import ModelLike, class_colours, resolve_model
from domainclip.core.options import PositiveInt
from domainclip.domains.multiview.camera import UpAxis
from domainclip.domains.multiview.views import ViewPose

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["ViewPredictions", "plot_view_predictions", "read_object", "view_predictions"]

#: Views rendered from a mesh when ``views`` is not given.
DEFAULT_VIEWS = 12
#: Largest side of the thumbnails a result keeps (the views are embedded at their full size).
THUMBNAIL_SIZE = 224
#: A view's pose as the caller may give it: a :class:`ViewPose`, its JSON dict, or ``(azimuth, elevation)``.
PoseLike = ViewPose | Mapping[str, Any] | tuple[float, float] | None
#: An image as the caller may give it: a PIL image, an ``HxWx3`` uint8 array, or an image file.
ImageLike = Image.Image | np.ndarray | str | os.PathLike


@dataclass(frozen=True, eq=False)
class ViewPredictions:
    """The zero-shot prediction and similarities of every view of one object.

    Args:
        object_id: the object's name (the mesh file's stem, the sample's ``object_id``, or the caller's).
        classes: the class names, in column order.
        label: the object's true class, when known.
        azimuth: ``(V,)`` camera azimuth of each view in degrees (NaN where the view has no pose).
        elevation: ``(V,)`` camera elevation in degrees (NaN where unknown).
        cosine: ``(V, C)`` cosine of each view's embedding to each class's text embedding.
        probabilities: ``(V, C)`` class probabilities, ``softmax(logit_scale * cosine)``.
        predicted: ``(V,)`` index of each view's predicted class.
        true_similarity: ``(V,)`` cosine of each view to the true class's text embedding (``None`` without a label).
        consistency: ``(V,)`` cosine of each view to the object's mean view embedding (the mean of the
            normalised view embeddings, normalised): 1 for a view the model embeds like the others.
        images: the views as ``HxWx3`` uint8 thumbnails (at most :data:`THUMBNAIL_SIZE` on a side).
        poses: each view's pose as stored in the shard meta (``{}`` where unknown).
        model: the model's spec (what it was loaded from; ``"<in memory>"`` for a model built in memory).
        logit_scale: the model's temperature used for the probabilities.
    """

    object_id: str
    classes: list[str]
    label: str | None
    azimuth: np.ndarray
    elevation: np.ndarray
    cosine: np.ndarray
    probabilities: np.ndarray
    predicted: np.ndarray
    true_similarity: np.ndarray | None
    consistency: np.ndarray
    images: list[np.ndarray] = field(repr=False)
    poses: list[dict[str, Any]] = field(repr=False)
    model: str = "<in memory>"
    logit_scale: float = 100.0

    @property
    def num_views(self) -> int:
        """Number of views."""
        return int(self.predicted.shape[0])

    @property
    def predicted_classes(self) -> list[str]:
        """Each view's predicted class name."""
        return [self.classes[int(k)] for k in self.predicted]

    @property
    def right(self) -> np.ndarray | None:
        """``(V,)`` whether each view is predicted as the true class (``None`` without a label)."""
        if self.label is None:
            return None
        return self.predicted == self.classes.index(self.label)

    @property
    def accuracy(self) -> float | None:
        """Fraction of views predicted as the true class (``None`` without a label)."""
        right = self.right
        return None if right is None else float(right.mean())

    @property
    def consistent(self) -> bool:
        """Whether every view gets the same prediction (right or wrong): OVT's per-object consistency."""
        return len(set(self.predicted.tolist())) == 1

    @property
    def worst_view(self) -> int:
        """The view the model finds hardest.

        With a label, the one whose true-class cosine trails the best other class the most (as the
        viewpoint suite picks it); without, the one least like the mean view.
        """
        if self.label is None:
            return int(np.argmin(self.consistency))
        true = self.classes.index(self.label)
        others = np.delete(self.cosine, true, axis=1)
        margin = self.cosine[:, true] - (others.max(axis=1) if others.shape[1] else 0.0)
        return int(np.argmin(margin))

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per view, for a table (``pandas.DataFrame(result.to_rows())``).

        Keys: ``view``, ``azimuth``, ``elevation``, ``predicted``, ``probability`` (of the prediction),
        ``cosine_predicted``, ``cosine_true``, ``right``, ``consistency`` and every class's probability
        ``p_<class>``.
        """
        rows = []
        for i in range(self.num_views):
            k = int(self.predicted[i])
            row: dict[str, Any] = {
                "view": i,
                "azimuth": None if math.isnan(self.azimuth[i]) else float(self.azimuth[i]),
                "elevation": None if math.isnan(self.elevation[i]) else float(self.elevation[i]),
                "predicted": self.classes[k],
                "probability": float(self.probabilities[i, k]),
                "cosine_predicted": float(self.cosine[i, k]),
                "cosine_true": None if self.true_similarity is None else float(self.true_similarity[i]),
                "right": None if self.label is None else bool(self.right[i]),  # type: ignore[index]
                "consistency": float(self.consistency[i]),
            }
            row.update({f"p_{name}": float(self.probabilities[i, c]) for c, name in enumerate(self.classes)})
            rows.append(row)
        return rows

    def write_csv(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_rows` as a CSV file (atomically); returns its path.

        Args:
            path: the CSV file to write.
        """
        from domainclip.core.io import atomic_write_text

        rows = self.to_rows()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
        atomic_write_text(Path(path), buf.getvalue())
        return Path(path)


# ---------------------------------------------------------------------------------------------- inputs
def read_object(shards: str | os.PathLike | Sequence[str], object_id: str) -> dict[str, Any]:
    """The raw sample of one object in multi-view shards (``domainclip prepare multiview render`` or ``import``).

    The shards are read in order, one sample at a time, until the object is found.

    Args:
        shards: a shard folder, file, glob or brace pattern.
        object_id: the object's sample key or its meta ``object_id``.

    Raises:
        InputNotFoundError: ``shards`` names no shard.
        InputError: no object of that id in the shards (the message names a few that are there).
    """
    from domainclip.core.data.corrupt import CorruptTally
    from domainclip.core.data.reader import expand_urls, iter_shard
    from domainclip.domains.multiview.views import read_meta

    tally = CorruptTally()
    seen: list[str] = []
    urls = expand_urls(shards)
    for url in urls:
        for raw in iter_shard(url, tally):
            key = str(raw.get("__key__", ""))
            if key == object_id:
                return raw
            try:
                meta_id = read_meta(raw).get("object_id")
            except ValueError:
                meta_id = None
            if meta_id == object_id:
                return raw
            if len(seen) < 5:
                seen.append(str(meta_id or key))
    damaged = f"; {tally.counts.get('bad_shard', 0)} shard(s) could not be read" if tally.counts else ""
    raise InputError(f"no object {object_id!r} in {len(urls)} shard(s) of {shards}{damaged}; objects there "
                     f"include {', '.join(seen) or 'none'}")


def _pose(pose: PoseLike, index: int) -> dict[str, Any]:
    """A caller's pose as the JSON dict of :class:`ViewPose` (``{}`` for ``None``)."""
    if pose is None:
        return {}
    if isinstance(pose, ViewPose):
        return pose.to_json()
    if isinstance(pose, Mapping):
        return dict(pose)
    if isinstance(pose, tuple | list) and len(pose) == 2:
        return {"index": index, "azimuth": float(pose[0]), "elevation": float(pose[1])}
    raise InputError(f"view {index}: a pose is a ViewPose, its dict or (azimuth, elevation); got {pose!r}")


def _angle(pose: Mapping[str, Any], name: str) -> float:
    value = pose.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return float("nan")


def _as_image(image: ImageLike, index: int) -> Image.Image:
    """A caller's view as an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise InputError(f"view {index}: an image array must be HxW or HxWx3 uint8; got {image.dtype} "
                             f"{image.shape}")
        return Image.fromarray(image).convert("RGB")
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise InputNotFoundError(f"view {index}: image {path} does not exist")
        try:
            with Image.open(path) as opened:
                return opened.convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise InputError(f"view {index}: {path} cannot be read as an image: {e}") from None
    raise InputError(f"view {index}: an image is a PIL image, a uint8 array or an image file; "
                     f"got {type(image).__name__}")


def _mesh_views(
    path: Path, views: int | Sequence[PoseLike] | None, *, size: int, samples: int, elevation: tuple[float, float],
    up_axis: UpAxis, seed: int,
) -> tuple[int, Iterator[tuple[Image.Image, dict[str, Any]]]]:
    """Render a mesh from its poses, one view at a time (the domain's renderer, white background, no light jitter)."""
    from domainclip.domains.multiview.camera import normalise_mesh, sphere_poses
    from domainclip.domains.multiview.render import MeshRenderer, load_mesh

    mesh = load_mesh(path)  # InputNotFoundError, MeshError: one line each
    if views is None or isinstance(views, int):
        count = DEFAULT_VIEWS if views is None else int(views)
        poses = sphere_poses(count, seed=seed, elevation=elevation, light_jitter=0.0, background=(255, 255))
    else:
        poses = []
        for i, given in enumerate(views):
            pose = given if isinstance(given, ViewPose) else None
            if isinstance(given, Mapping):
                known = {k: v for k, v in given.items() if k in ViewPose.__dataclass_fields__}
                pose = ViewPose(**{"index": i, **known})
            if pose is None or pose.camera_to_world is None or pose.fov is None:
                raise InputError(f"view {i}: a pose to render a mesh from needs camera_to_world and fov "
                                 "(sphere_poses makes them); pass views=N to render N views around the mesh")
            poses.append(pose)
        if not poses:
            raise InputError("views is an empty list of poses: nothing to render")
    renderer = MeshRenderer(normalise_mesh(mesh, up_axis), size, samples)
    return len(poses), ((Image.fromarray(renderer.render(p)), p.to_json()) for p in poses)


def _sample_views(raw: Mapping[str, Any]) -> tuple[int, Iterator[tuple[Image.Image, dict[str, Any]]], dict]:
    """The views and poses of a multi-view shard sample."""
    from domainclip.core.data.corrupt import CorruptSampleError
    from domainclip.domains.multiview.views import decode_views, read_meta, view_members

    key = raw.get("__key__", "?")
    try:
        meta = read_meta(raw)
        count = len(view_members(raw))
        if not count:
            decode_views(raw)  # raises the one-line "no view member" error
    except CorruptSampleError as e:
        raise InputError(f"object {key}: {e}") from None
    poses = meta.get("views")
    poses = poses if isinstance(poses, list) and len(poses) == count else [{}] * count

    def decoded() -> Iterator[tuple[Image.Image, dict[str, Any]]]:
        for i in range(count):
            try:
                (image,) = decode_views(raw, indices=[i])
            except CorruptSampleError as e:
                raise InputError(f"object {key}: view {i}: {e}") from None
            pose = poses[i] if isinstance(poses[i], Mapping) else {}
            yield image.convert("RGB") if isinstance(image, Image.Image) else Image.fromarray(image), dict(pose)

    return count, decoded(), meta


def _templates(templates: Sequence[str | Callable[[str], str]] | None) -> list[Callable[[str], str]]:
    """The prompts as callables: the domain's zero-shot prompts by default, else ``"...{}..."`` strings or callables."""
    from domainclip.domains.multiview.captions import ZERO_SHOT_PROMPTS, category_text

    if templates is None:
        return list(ZERO_SHOT_PROMPTS)
    if isinstance(templates, str) or not templates:
        raise InputError("templates must be a non-empty list of prompts such as 'a 3D render of a {}.'")
    out: list[Callable[[str], str]] = []
    for t in templates:
        if callable(t):
            out.append(t)
        elif isinstance(t, str) and "{}" in t:
            out.append(lambda c, t=t: t.format(category_text(c)))
        else:
            raise InputError(f"template {t!r} has no '{{}}' where the class name goes")
    return out


def _thumbnail(image: Image.Image) -> np.ndarray:
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    return np.asarray(thumb, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------- compute
def view_predictions(
    obj: str | os.PathLike | Mapping[str, Any] | Sequence[ImageLike],
    model: ModelLike,
    classes: Sequence[str],
    *,
    label: str | None = None,
    views: int | Sequence[PoseLike] | None = None,
    templates: Sequence[str | Callable[[str], str]] | None = None,
    size: int = 224,
    samples: PositiveInt = 16,
    elevation: tuple[float, float] = (-10.0, 40.0),
    up_axis: UpAxis = "y",
    seed: int = 0,
    object_id: str | None = None,
    batch_size: PositiveInt = 32,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> ViewPredictions:
    """Classify every view of one object zero-shot and measure how alike the model embeds its views.

    Args:
        obj: a mesh file (``.obj`` with its MTL and textures, ``.ply``, ``.glb``, ``.gltf``, ``.off``,
            ``.stl``), rendered here; a multi-view shard sample (:func:`read_object`), whose views and
            stored poses are used; or a list of images (PIL images, uint8 arrays or image files).
        model: any model spelling (:func:`~domainclip.core.explore.resolve_model`): a run or hub folder,
            ``hf-hub:...``, ``zoo:NAME``, an architecture name, a ``load_model`` tuple or a ``LoadedModel``.
        classes: the class names the views are classified among.
        label: the object's true class (one of ``classes``); a shard sample's meta ``category`` by default
            when it is one of ``classes``.
        views: for a mesh, the number of views rendered from cameras on a sphere around it (default
            :data:`DEFAULT_VIEWS`) or the poses to render from (:class:`ViewPose` with ``camera_to_world`` and
            ``fov``, as :func:`~.camera.sphere_poses` makes); for a list of images, one pose per image
            (a ``ViewPose``, its dict or ``(azimuth, elevation)``; ``None`` where unknown); for a sample,
            nothing (its poses are in its meta).
        templates: the prompts, ``"a photo of a {}."`` strings or ``class -> prompt`` callables, averaged per
            class (default: the domain's zero-shot prompts, as the ``multiview/viewpoint`` suite uses).
        size: side of the rendered views in pixels (a mesh only).
        samples: renderer samples per pixel (a mesh only).
        elevation: lowest and highest camera elevation in degrees of the rendered views (a mesh only).
        up_axis: the axis the mesh file treats as up (``z`` for most scans and CAD files).
        seed: seed of the rendered camera poses.
        object_id: the name shown for the object (default: the mesh's file stem or the sample's id).
        batch_size: views per forward pass.
        device: where the model runs.
        progress: show a progress bar.

    Returns:
        The per-view predictions and similarities, with the views' thumbnails.

    Raises:
        InputError: empty or repeated classes, a label that is not a class, a mesh that cannot be
            loaded (:class:`~.render.MeshError`), an unreadable image or sample, poses that do not match
            the views.
        InputNotFoundError: a mesh or image file that does not exist.
    """
    from tqdm.auto import tqdm

    classes = [str(c) for c in classes] if not isinstance(classes, str) else []
    if not classes:
        raise InputError("classes is empty: name at least one class to classify the views among")
    if len(set(classes)) != len(classes):
        raise InputError(f"classes names a class twice: {classes}")
    if not 8 <= size <= 2048 or batch_size < 1 or samples < 1:
        raise InputError(f"size must be 8 to 2048 pixels, batch_size and samples at least 1; got {size}, "
                         f"{batch_size}, {samples}")
    prompts = _templates(templates)
    meta: dict[str, Any] = {}
    if isinstance(obj, str | os.PathLike):
        from domainclip.domains.multiview.render import MESH_SUFFIXES

        path = Path(obj)
        if path.suffix.lower() not in MESH_SUFFIXES:
            raise InputError(f"{path} is not a mesh file ({' '.join(MESH_SUFFIXES)}); for a rendered object in "
                             "shards pass read_object(shards, object_id)")
        count, stream = _mesh_views(path, views, size=size, samples=samples, elevation=elevation, up_axis=up_axis,
                                    seed=seed)
        name = object_id or path.stem
    elif isinstance(obj, Mapping):
        if views is not None:
            raise InputError("a shard sample brings its own views and poses: leave views out")
        count, stream, meta = _sample_views(obj)
        name = object_id or str(meta.get("object_id") or obj.get("__key__", "object"))
        if label is None and meta.get("category") in classes:
            label = str(meta["category"])
    elif isinstance(obj, Sequence):
        images = list(obj)
        if not images:
            raise InputError("the list of views is empty")
        if views is not None and (isinstance(views, int) or len(views) != len(images)):
            raise InputError(f"views must give one pose per image ({len(images)}); got {views!r}"
                             if isinstance(views, int) else
                             f"views gives {len(views)} poses for {len(images)} images")
        poses = [_pose(p, i) for i, p in enumerate(views)] if views is not None else [{}] * len(images)
        count = len(images)
        stream = ((_as_image(im, i), pose) for i, (im, pose) in enumerate(zip(images, poses, strict=True)))
        name = object_id or "object"
    else:
        raise InputError(f"obj must be a mesh file, a shard sample or a list of images; got {type(obj).__name__}")
    if label is not None and label not in classes:
        raise InputError(f"label {label!r} is not one of the classes ({', '.join(classes)})")

    loaded = resolve_model(model, device=device)
    weights = loaded.text_classifier({c: [p(c) for p in prompts] for c in classes})  # (D, C)
    embeddings, thumbs, pose_list, batch = [], [], [], []
    with tqdm(total=count, disable=not progress, unit="view", desc=f"views of {name}") as bar:
        for image, pose in stream:
            batch.append(image)
            thumbs.append(_thumbnail(image))
            pose_list.append(pose)
            if len(batch) == batch_size:
                embeddings.append(loaded.encode_images(batch))
                batch = []
            bar.update(1)
        if batch:
            embeddings.append(loaded.encode_images(batch))
    features = torch.cat(embeddings).float()  # (V, D), normalised
    cosine = features @ weights.float()
    scale = loaded.logit_scale
    probabilities = torch.softmax(scale * cosine, dim=1)
    mean = features.mean(dim=0)
    mean = mean / mean.norm().clamp_min(1e-12)
    source = getattr(loaded.model, "domainclip_source", None)
    spec = str(source["spec"]) if loaded.spec == "<in memory>" and isinstance(source, Mapping) and source.get(
        "spec") else loaded.spec
    return ViewPredictions(
        object_id=name,
        classes=classes,
        label=label,
        azimuth=np.array([_angle(p, "azimuth") for p in pose_list]),
        elevation=np.array([_angle(p, "elevation") for p in pose_list]),
        cosine=cosine.numpy(),
        probabilities=probabilities.numpy(),
        predicted=cosine.argmax(dim=1).numpy(),
        true_similarity=None if label is None else cosine[:, classes.index(label)].numpy(),
        consistency=(features @ mean).numpy(),
        images=thumbs,
        poses=pose_list,
        model=spec,
        logit_scale=scale,
    )


# ---------------------------------------------------------------------------------------------- picture
def _marker_sizes(similarity: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Marker areas from 40 to 400 points^2 by similarity, over the object's own range (returned with it)."""
    low, high = float(np.min(similarity)), float(np.max(similarity))
    span = high - low
    scaled = (similarity - low) / span if span > 1e-9 else np.full_like(similarity, 0.5)
    return 40.0 + 360.0 * scaled, low, high


def _sphere_chart(result: ViewPredictions, ax: Axes) -> None:
    """The views on the viewing sphere, colour = predicted class, size = similarity, X = wrong.

    A polar axis gets the sphere seen from above (azimuth around, elevation inward), a plain one an
    azimuth x elevation chart.
    """
    from matplotlib.lines import Line2D

    colours = class_colours(len(result.classes))
    similarity = result.true_similarity if result.true_similarity is not None else result.cosine.max(axis=1)
    sizes, low, high = _marker_sizes(similarity)
    posed = np.isfinite(result.azimuth) & np.isfinite(result.elevation)
    polar = getattr(ax, "name", "") == "polar"
    right = result.right
    if polar:
        ax.set_theta_zero_location("N")
        ax.set_theta_direction(-1)
        x = np.deg2rad(result.azimuth)
        y = 90.0 - result.elevation  # 0 = straight above, 90 = the equator, 180 = straight below
        outer = max(100.0, float(np.nanmax(y[posed])) + 12.0) if posed.any() else 100.0
        ax.set_ylim(0.0, outer)
        ticks = [r for r in (0.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0) if r <= outer]
        ax.set_yticks(ticks)
        ax.set_yticklabels([f"{90 - r:.0f}°" for r in ticks], fontsize=7)
        ax.set_rlabel_position(200)
        theta = np.linspace(0, 2 * np.pi, 200)
        ax.plot(theta, np.full_like(theta, 90.0), color="0.5", lw=0.8, ls="--", zorder=1)
        ax.set_title("views on the viewing sphere (from above)\nangle = azimuth, rings = elevation", fontsize=9)
    else:
        x, y = result.azimuth, result.elevation
        ax.set_xlim(-5, 365)
        ax.set_xticks(np.arange(0, 361, 45))
        ax.set_xlabel("azimuth (degrees)")
        ax.set_ylabel("elevation (degrees)")
        ax.axhline(0.0, color="0.5", lw=0.8, ls="--", zorder=1)
        ax.grid(alpha=0.3)
        ax.set_title("views by camera azimuth and elevation", fontsize=9)
    for i in np.flatnonzero(posed):
        wrong = right is not None and not right[i]
        ax.scatter(x[i], y[i], s=sizes[i], color=colours[int(result.predicted[i])], marker="X" if wrong else "o",
                   edgecolors="black", linewidths=0.8, zorder=3)
        ax.annotate(str(i), (x[i], y[i]), textcoords="offset points", xytext=(7, 5), fontsize=7, zorder=4)
    if not posed.any():
        ax.text(0.5, 0.5, "no view has a camera pose:\nsee the thumbnails", transform=ax.transAxes,
                ha="center", va="center", fontsize=9)
    elif not posed.all():
        ax.text(0.5, -0.12, f"{int((~posed).sum())} view(s) without a pose: only in the thumbnails",
                transform=ax.transAxes, ha="center", fontsize=7)
    shown = sorted({int(k) for k in result.predicted[posed]} | (
        {result.classes.index(result.label)} if result.label is not None else set()))
    handles = [Line2D([], [], marker="o", ls="", color=colours[k], markeredgecolor="black",
                      label=result.classes[k] + (" (true)" if result.classes[k] == result.label else ""))
               for k in shown]
    what = "cos to true class" if result.true_similarity is not None else "cos to predicted class"
    for value, area in ((low, 40.0), (high, 400.0)) if high - low > 1e-9 else ((low, 220.0),):
        handles.append(Line2D([], [], marker="o", ls="", color="0.8", markeredgecolor="black",
                              markersize=math.sqrt(area), label=f"{what} {value:.2f}"))
    if right is not None and (~right).any():
        handles.append(Line2D([], [], marker="X", ls="", color="0.8", markeredgecolor="black", label="wrong view"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.08, 1.0), frameon=False,
              title="predicted class", title_fontsize=8, labelspacing=1.0)


def _bars(result: ViewPredictions, ax: Axes) -> None:
    """Per view: the probability of the true (or predicted) class as a bar, the cosine to the mean view as a dot."""
    colours = class_colours(len(result.classes))
    index = np.arange(result.num_views)
    if result.label is not None:
        p = result.probabilities[:, result.classes.index(result.label)]
        what = f"P({result.label})"
    else:
        p = result.probabilities[index, result.predicted]
        what = "P(predicted)"
    bars = ax.bar(index, p, color=[colours[int(k)] for k in result.predicted], edgecolor="black", linewidth=0.5,
                  label=f"{what} (bar colour = predicted class)")
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel(what, fontsize=8)
    ax.set_xticks(index)
    ax.set_xlabel("view", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(axis="y", alpha=0.3)
    # the cosines to the mean view sit close to 1 for most models: their own axis, labelled, shows how they differ
    twin = ax.twinx()
    (line,) = twin.plot(index, result.consistency, "k.-", lw=0.8, ms=7, label="cos to mean view embedding (right axis)")
    low = float(result.consistency.min())
    twin.set_ylim(low - max(0.02, 0.25 * (1.0 - low)), 1.0 + max(0.005, 0.05 * (1.0 - low)))
    twin.set_ylabel("cos to mean view", fontsize=8)
    twin.tick_params(labelsize=7)
    ax.legend(handles=[bars, line], fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=1,
              frameon=False)


def _title(result: ViewPredictions) -> str:
    parts = [f"{result.object_id}: {result.num_views} views"]
    if result.label is not None:
        parts.append(f"true class {result.label}, {int(result.right.sum())}/{result.num_views} right")  # type: ignore[union-attr]
    parts.append("all views agree" if result.consistent else
                 f"{len(set(result.predicted.tolist()))} different predictions")
    parts.append(f"mean cos to mean view {float(result.consistency.mean()):.3f}")
    return "; ".join(parts) + f"\nmodel: {result.model}"


def plot_view_predictions(
    result: ViewPredictions, *, ax: Axes | None = None, max_thumbnails: PositiveInt = 12, thumbnail_columns: int = 6,
) -> Figure:
    """The views of one object on its viewing sphere, a per-view chart and a strip of thumbnails.

    The sphere chart is polar, seen from above the object: the angle is the camera's azimuth, the
    rings its elevation (the centre is straight above, the dashed ring the equator). Each view's
    marker is coloured by its predicted class (:func:`~domainclip.core.explore.class_colours`), sized
    by its cosine to the true class's text embedding (to the predicted class's without a label), and
    an X where the prediction is wrong; the number is the view's index. The per-view chart gives the
    probability of the true class (bars) and each view's cosine to the object's mean view
    embedding (dots). The thumbnails carry their index, pose and prediction, framed in the class colour.

    Args:
        result: what :func:`view_predictions` returned.
        ax: draw only the sphere chart into this axis (polar: the view from above; a plain axis: an
            azimuth x elevation chart) and return its figure.
        max_thumbnails: most thumbnails shown (evenly spaced views when the object has more).
        thumbnail_columns: thumbnails per row.

    Returns:
        The figure (not shown: the caller displays or saves it).
    """
    import matplotlib.pyplot as plt

    if ax is not None:
        _sphere_chart(result, ax)
        return ax.figure  # type: ignore[return-value]
    colours = class_colours(len(result.classes))
    shown = (np.arange(result.num_views) if result.num_views <= max_thumbnails
             else np.unique(np.linspace(0, result.num_views - 1, max_thumbnails).round().astype(int)))
    ncols = max(1, min(thumbnail_columns, len(shown)))
    nrows = (len(shown) + ncols - 1) // ncols
    fig = plt.figure(figsize=(12.0, 4.6 + 2.0 * nrows), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[4.6, 2.0 * nrows])
    sphere = top.add_subplot(1, 2, 1, projection="polar")
    _sphere_chart(result, sphere)
    _bars(result, top.add_subplot(1, 2, 2))
    axes = bottom.subplots(nrows, ncols, squeeze=False)
    for cell, axis in enumerate(axes.flat):
        axis.set_xticks([])
        axis.set_yticks([])
        if cell >= len(shown):
            axis.axis("off")
            continue
        i = int(shown[cell])
        k = int(result.predicted[i])
        axis.imshow(result.images[i])
        for spine in axis.spines.values():
            spine.set_edgecolor(colours[k])
            spine.set_linewidth(3)
        where = (f"az {result.azimuth[i]:.0f}° el {result.elevation[i]:.0f}°"
                 if np.isfinite(result.azimuth[i]) and np.isfinite(result.elevation[i]) else "pose unknown")
        mark = "" if result.right is None else (" ✓" if result.right[i] else " ✗")
        axis.set_title(f"#{i} {where}\n{result.classes[k]} {result.probabilities[i, k]:.2f}{mark}", fontsize=7)
    if len(shown) < result.num_views:
        bottom.suptitle(f"{len(shown)} of {result.num_views} views", fontsize=8)
    fig.suptitle(_title(result), fontsize=10)
    return fig
