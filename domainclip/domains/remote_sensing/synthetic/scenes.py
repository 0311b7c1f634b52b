"""Generated scenes: one georeferenced four-band GeoTIFF with five captions each, and the ``synthetic`` command.

:func:`make_scene` draws scene ``index`` of the set ``seed``: its class is ``CLASSES[index % 10]``,
its split is drawn for its block of ten scenes ``(seed, index // 10)``, everything else is drawn
from generators seeded by ``(seed, index)``, so any number of workers writes the same bytes.
:func:`generate_scenes` writes a set in the layouts the domain's real commands read (see
:mod:`~domainclip.domains.remote_sensing.synthetic`).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np

from domainclip.core.errors import InputError
from domainclip.core.io import atomic_write_bytes, atomic_write_text
from domainclip.core.options import NonNegativeInt, PositiveFloat, PositiveInt, Range, UnitFloat, entry_point
from domainclip.core.parallel import map_unordered
from domainclip.core.plugins import require
from domainclip.domains.remote_sensing.synthetic.canvas import BANDS, HAZE, SIDE, Canvas
from domainclip.domains.remote_sensing.synthetic.captions import describe
from domainclip.domains.remote_sensing.synthetic.landcover import LAND_COVER

__all__ = ["CLASSES", "GENERATOR", "LICENCE", "NODATA", "REFLECTANCE_SCALE", "Scene", "generate_scenes",
           "make_scene", "tokenize"]

#: Generator name and version, recorded in summaries.
GENERATOR = "domainclip.domains.remote_sensing.synthetic/1"
#: Licence of the generated data.
LICENCE = "CC0-1.0"
#: Land-cover classes in label order (scene ``i`` is of class ``CLASSES[i % len(CLASSES)]``).
CLASSES: tuple[str, ...] = tuple(LAND_COVER)
#: Digital number of a reflectance of 1 (Sentinel-2 L2A's quantification value).
REFLECTANCE_SCALE = 10000
#: The files' nodata value (valid pixels are at least 1).
NODATA = 0
#: Canvas samples per pixel side.
SUPERSAMPLE = 2
#: UTM zones (northern hemisphere, WGS 84) scenes are placed in: EPSG 32629 to 32637, Europe.
UTM_ZONES = (29, 38)
#: Scenes written per worker task.
CHUNK = 50
#: The files a set holds, relative to its folder.
CAPTION_FILE, IMAGE_FOLDER, SCENE_FOLDER = "dataset_synthetic.json", "images", "scenes"
TRANSLATION_FILE, TRUTH_FILE, SUMMARY_FILE = "translations.json", "scenes.json", "synthetic-summary.json"


@dataclass
class Scene:
    """One generated scene with everything known about it.

    Args:
        index: its number in the set.
        name: its class, one of :data:`CLASSES`.
        split: ``train``, ``val`` or ``test``.
        pixels: ``(4, H, W)`` uint16 reflectance times :data:`REFLECTANCE_SCALE` (1 to 10000), bands
            :data:`BANDS`, :data:`NODATA` outside the swath.
        crs: its coordinate reference system (``"EPSG:326NN"``).
        transform: the affine pixel-to-map transform, ``(a, b, c, d, e, f)`` in metres.
        facts: what its painter drew (the captions are built from them).
        captions: five captions, each ``{language: sentence}``.
        cloudy: whether clouds were drawn over it.
        nodata_fraction: share of its pixels outside the swath.
    """

    index: int
    name: str
    split: str
    pixels: np.ndarray
    crs: str
    transform: tuple[float, ...]
    facts: dict[str, Any]
    captions: list[dict[str, str]]
    cloudy: bool
    nodata_fraction: float

    @property
    def filename(self) -> str:
        """``<class>_<index, 6 digits>.tif``, as RSICD names its images."""
        return f"{self.name}_{self.index:06d}.tif"

    def record(self) -> dict[str, Any]:
        """The scene without its pixels, as JSON (``scenes.json``)."""
        a, _, c, _, e, f = self.transform
        height, width = self.pixels.shape[1:]
        return {"index": self.index, "filename": self.filename, "class": self.name, "split": self.split,
                "crs": self.crs, "transform": list(self.transform),
                "bounds": [c, f + e * height, c + a * width, f], "cloudy": self.cloudy,
                "nodata_fraction": self.nodata_fraction, "facts": self.facts, "captions": self.captions}


def tokenize(sentence: str) -> list[str]:
    """The Karpathy-format ``tokens`` of a sentence: lower-case words and numbers, punctuation dropped."""
    return re.findall(r"[a-z0-9]+", sentence.lower())


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """The generator of one stream of scene ``index`` (0 drawing, 1 captions, 3 location; 2: the split of a block)."""
    return np.random.default_rng([int(seed), int(index), stream])


def _atmosphere(c: Canvas, cloud_fraction: float) -> bool:
    """Illumination, haze and (for a ``cloud_fraction`` of scenes) clouds with their shadows; True if cloudy."""
    rng = c.rng
    haze = float(rng.uniform(0.0, 0.25))
    c.image[:] = c.image * np.float32(rng.uniform(0.7, 1.3) * (1 - haze)) + haze * HAZE
    if rng.random() >= cloud_fraction:
        return False
    field = c.noise(6) + 0.35 * c.noise(1.5)
    threshold = np.quantile(field, 1 - float(rng.uniform(0.05, 0.25)))
    core = np.clip((field - threshold) / 1.2, 0, 1) ** 0.8
    alpha = np.minimum(core * float(rng.uniform(0.75, 0.95)) + 0.2 * np.clip((field - threshold) / 0.6 + 1, 0, 1), 1)
    shift = rng.integers(2, 6, 2) * SUPERSAMPLE * rng.choice([-1, 1], 2)
    shadow = np.roll(alpha, tuple(int(s) for s in shift), axis=(0, 1))
    c.image *= (1 - 0.5 * shadow)[..., None]
    c.image[:] = c.image * (1 - alpha[..., None]) + alpha[..., None] * c.spectrum("cloud")
    return True


def _swath_edge(pixels: np.ndarray, rng: np.random.Generator) -> None:
    """Set the pixels beyond a straight swath edge, 5-20 % of the scene, to :data:`NODATA`."""
    size = pixels.shape[1]
    y, x = np.mgrid[:size, :size]
    angle = float(rng.uniform(0, 2 * np.pi))
    along = x * np.cos(angle) + y * np.sin(angle)
    pixels[:, along > np.quantile(along, 1 - float(rng.uniform(0.05, 0.2)))] = NODATA


def make_scene(
    seed: int,
    index: int,
    *,
    size: int = 64,
    gsd: float = 10.0,
    cloud_fraction: float = 0.15,
    nodata_fraction: float = 0.1,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    languages: tuple[str, ...] = ("pt", "es"),
) -> Scene:
    """Draw scene ``index`` of the set ``seed``: pixels, georeferencing, facts, captions and split.

    Args:
        seed: the set's seed.
        index: the scene's number; its class is ``CLASSES[index % len(CLASSES)]``.
        size: side in pixels.
        gsd: ground sampling distance in metres (the transform's pixel size).
        cloud_fraction: chance that clouds are drawn over the scene.
        nodata_fraction: chance that a swath edge leaves part of it without data.
        val_fraction: chance that it is in the ``val`` split (drawn once for the ten scenes
            ``10k .. 10k + 9``, one of each class, so every split holds the classes equally).
        test_fraction: chance that it is in the ``test`` split (drawn likewise).
        languages: caption languages beside English.
    """
    name = CLASSES[index % len(CLASSES)]
    canvas = Canvas(size * SUPERSAMPLE, _rng(seed, index, 0))
    facts = LAND_COVER[name](canvas)
    cloudy = _atmosphere(canvas, cloud_fraction)
    rng = canvas.rng
    image = canvas.image.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, len(BANDS)).mean(axis=(1, 3))
    image = image + rng.normal(0.0, 0.003, image.shape)
    pixels = np.clip(np.rint(image * REFLECTANCE_SCALE), 1, REFLECTANCE_SCALE).astype(np.uint16).transpose(2, 0, 1)
    pixels = np.ascontiguousarray(pixels)
    if rng.random() < nodata_fraction:
        _swath_edge(pixels, rng)
    draw = _rng(seed, index // len(CLASSES), 2).random()  # one draw per ten scenes: the splits stay balanced
    split = "test" if draw < test_fraction else "val" if draw < test_fraction + val_fraction else "train"
    where = _rng(seed, index, 3)
    zone = int(where.integers(*UTM_ZONES))
    extent = size * gsd
    east = round(float(where.uniform(200_000, 800_000 - extent)) / gsd) * gsd
    north = round(float(where.uniform(3_500_000, 6_500_000)) / gsd) * gsd
    return Scene(index=index, name=name, split=split, pixels=pixels, crs=f"EPSG:{32600 + zone}",
                 transform=(float(gsd), 0.0, float(east), 0.0, -float(gsd), float(north)), facts=facts,
                 captions=describe(name, facts, _rng(seed, index, 1), cloudy=cloudy, languages=languages),
                 cloudy=cloudy, nodata_fraction=round(float(np.mean(pixels[0] == NODATA)), 4))


def _write_chunk(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Draw and write scenes ``start`` to ``stop`` (worker task); return their records."""
    from domainclip.domains.remote_sensing.raster import write_geotiff

    out = Path(job["out"])
    records = []
    for index in range(job["start"], job["stop"]):
        scene = make_scene(job["seed"], index, **job["options"])
        path = write_geotiff(out / IMAGE_FOLDER / scene.filename, scene.pixels, crs=scene.crs,
                             transform=scene.transform, nodata=NODATA, tile=None)
        if scene.split == "test":
            atomic_write_bytes(out / SCENE_FOLDER / scene.name / scene.filename, path.read_bytes())
        records.append(scene.record())
    return records


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1) + "\n"


def _karpathy(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The caption file in RSICD's layout (English sentences)."""
    images = []
    for r in records:
        ids = [r["index"] * 5 + k for k in range(len(r["captions"]))]
        images.append({"filename": r["filename"], "imgid": r["index"], "split": r["split"], "sentids": ids,
                       "sentences": [{"tokens": tokenize(c["en"]), "raw": c["en"], "imgid": r["index"], "sentid": i}
                                     for i, c in zip(ids, r["captions"])]})
    return {"images": images, "dataset": "synthetic"}


def _translations(records: list[dict[str, Any]], languages: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``{language: {English sentence: translation}}`` of every caption, sorted."""
    table: dict[str, dict[str, str]] = {lang: {} for lang in languages}
    for r in records:
        for caption in r["captions"]:
            for lang in languages:
                known = table[lang].setdefault(caption["en"], caption[lang])
                if known != caption[lang]:  # one English sentence, two translations: a template bug
                    raise RuntimeError(f"{caption['en']!r} has two {lang} translations: {known!r}, {caption[lang]!r}")
    return {lang: dict(sorted(pairs.items())) for lang, pairs in table.items()}


@entry_point
def generate_scenes(
    out: Path,
    n: PositiveInt = 2000,
    *,
    seed: NonNegativeInt = 0,
    workers: PositiveInt = 1,
    progress: bool = True,
    size: Annotated[int, Range(32, 512)] = 64,
    gsd: PositiveFloat = 10.0,
    languages: tuple[Literal["pt", "es"], ...] = ("pt", "es"),
    val_fraction: UnitFloat = 0.1,
    test_fraction: UnitFloat = 0.1,
    cloud_fraction: UnitFloat = 0.15,
    nodata_fraction: UnitFloat = 0.1,
) -> dict[str, Any]:
    """Generate land-cover scenes as four-band GeoTIFFs with captions in English, Portuguese and Spanish.

    Writes ``n`` scenes of 10 classes (:data:`CLASSES`, in turn) into ``out``: the GeoTIFFs under
    ``images/`` with ``dataset_synthetic.json`` (five English captions each, RSICD's Karpathy
    layout, train/val/test splits), ``translations.json`` (``{language: {English: translation}}``),
    the test scenes again in a folder per class (``scenes/<class>/<class>_NNNNNN.tif``),
    ``scenes.json`` (every scene's class, split, georeferencing, facts and captions) and
    ``synthetic-summary.json``. Scene ``i`` depends only on ``(seed, i)`` and the options, so any
    number of workers writes the same bytes.

    Args:
        out: output folder.
        n: number of scenes.
        seed: set seed (held-out sets use another).
        workers: worker processes.
        progress: show a progress bar.
        size: scene side in pixels.
        gsd: ground sampling distance in metres per pixel.
        languages: caption languages beside English (pt, es).
        val_fraction: share of scenes in the val split.
        test_fraction: share of scenes in the test split (these are also written to scenes/).
        cloud_fraction: share of scenes with clouds and cloud shadows.
        nodata_fraction: share of scenes with a nodata border (a swath edge over 5 to 20 per cent of the scene).

    Returns:
        The summary (also ``synthetic-summary.json``, without ``out``): counts per class and split,
        held-out scenes per class, cloudy and nodata scenes, captions per language, options,
        generator and licence; and ``seconds`` and ``scenes_per_second``.

    Raises:
        InputError: ``val_fraction + test_fraction`` is above 1.
        MissingExtraError: rasterio is not installed.
    """
    from tqdm.auto import tqdm

    require("rasterio", "remote-sensing", "writing GeoTIFF scenes")
    if val_fraction + test_fraction > 1:
        raise InputError(f"val_fraction + test_fraction must be at most 1; got {val_fraction} + {test_fraction}")
    languages = tuple(dict.fromkeys(languages))
    options = {"size": size, "gsd": gsd, "cloud_fraction": cloud_fraction, "nodata_fraction": nodata_fraction,
               "val_fraction": val_fraction, "test_fraction": test_fraction, "languages": languages}
    jobs = [{"out": str(out), "seed": seed, "start": start, "stop": min(start + CHUNK, n), "options": options}
            for start in range(0, n, CHUNK)]
    began = time.perf_counter()
    records: list[dict[str, Any]] = []
    with tqdm(total=n, disable=not progress, unit="scene", desc="synthetic scenes") as bar:
        for _, chunk in map_unordered(_write_chunk, jobs, workers):
            records.extend(chunk)
            bar.update(len(chunk))
    records.sort(key=lambda r: r["index"])
    atomic_write_text(out / CAPTION_FILE, json.dumps(_karpathy(records)) + "\n")
    atomic_write_text(out / TRANSLATION_FILE, _json(_translations(records, languages)))
    atomic_write_text(out / TRUTH_FILE, _json(records))
    by_class = Counter(r["class"] for r in records)
    held_out = Counter(r["class"] for r in records if r["split"] == "test")
    summary: dict[str, Any] = {
        "n": n,
        "seed": seed,
        "classes": list(CLASSES),
        "counts_by_class": {c: by_class[c] for c in CLASSES},
        "counts_by_split": {s: sum(r["split"] == s for r in records) for s in ("train", "val", "test")},
        "held_out_by_class": {c: held_out[c] for c in CLASSES},
        "cloudy": sum(r["cloudy"] for r in records),
        "with_nodata": sum(r["nodata_fraction"] > 0 for r in records),
        "captions": {lang: 5 * n for lang in ("en", *languages)},
        "distinct_captions": {lang: len({c[lang] for r in records for c in r["captions"]})
                              for lang in ("en", *languages)},
        "size": size,
        "gsd": gsd,
        "bands": list(BANDS),
        "dtype": "uint16",
        "reflectance_scale": REFLECTANCE_SCALE,
        "nodata": NODATA,
        "crs": f"WGS 84 / UTM zones {UTM_ZONES[0]}N-{UTM_ZONES[1] - 1}N (EPSG:326{UTM_ZONES[0]}-326{UTM_ZONES[1] - 1})",
        "scene_extent_m": size * gsd,
        "scene_units": SIDE,
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
        "files": {"caption_file": CAPTION_FILE, "images": f"{IMAGE_FOLDER}/", "translations": TRANSLATION_FILE,
                  "held_out": f"{SCENE_FOLDER}/<class>/", "truth": TRUTH_FILE},
        "generator": GENERATOR,
        "licence": LICENCE,
    }
    atomic_write_text(out / SUMMARY_FILE, _json(summary))
    seconds = time.perf_counter() - began
    return {"out": str(out), **summary, "summary": str(out / SUMMARY_FILE), "seconds": round(seconds, 3),
            "scenes_per_second": round(n / seconds, 1) if seconds > 0 else None}
