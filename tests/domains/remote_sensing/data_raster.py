"""Generated rasters for the imagery tests: multi-band 16-bit (and 8-bit, float) GeoTIFFs with the truth built in.

Every writer returns the pixels it wrote, so a test can compute what a reader must return. Scenes
are seeded and small; their content makes mistakes visible: each band has its own range, rows
and columns differ (a transposed or shifted read changes values), and a slanted nodata collar
covers the top-left corner like the edge of a rotated satellite scene.

Run ``python tests/domains/remote_sensing/data_raster.py OUT_DIR`` to write one of each by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from domainclip.domains.remote_sensing.raster import write_geotiff

CRS = "EPSG:32633"
#: 10 m pixels, top-left corner at (500000, 6000000) in UTM zone 33N.
TRANSFORM = (10.0, 0.0, 500000.0, 0.0, -10.0, 6000000.0)


def scene_pixels(height: int, width: int, count: int = 4, *, dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    """``(count, height, width)`` pixels: a per-band gradient over rows and columns plus noise, never 0.

    Band ``b`` (0-based) lies around ``1000 * (b + 1)`` for uint16 and ``20 * (b + 1)`` for uint8,
    so bands are told apart by their level; float32 scenes are the uint16 values divided by 10000
    (reflectance).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    base = 1000.0 if dtype != "uint8" else 20.0
    bands = [base * (b + 1) + base * 0.5 * (yy / height) + base * 0.3 * (xx / width)
             + rng.normal(0, base * 0.05, (height, width)) for b in range(count)]
    values = np.clip(np.stack(bands), 1, 255 if dtype == "uint8" else 60000)
    if dtype == "float32":
        return (np.rint(values) / 10000).astype(np.float32)
    return np.rint(values).astype(dtype)


def collar(height: int, width: int, fraction: float = 0.3) -> np.ndarray:
    """A slanted nodata region over the top-left corner: ``x + y < fraction * (width + height)``."""
    yy, xx = np.mgrid[0:height, 0:width]
    return xx + yy < fraction * (width + height)


def write_scene(
    path: Path,
    height: int,
    width: int,
    count: int = 4,
    *,
    dtype: str = "uint16",
    tile: int | None = 64,
    nodata: float | None = 0,
    with_collar: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """Write a scene; the collar holds ``nodata`` (NaN for float32). Returns the pixels written."""
    pixels = scene_pixels(height, width, count, dtype=dtype, seed=seed)
    if with_collar and nodata is not None:
        pixels[:, collar(height, width)] = nodata
    write_geotiff(path, pixels, crs=CRS, transform=TRANSFORM, nodata=nodata, tile=tile)
    return pixels


def write_masked_scene(path: Path, height: int, width: int, count: int = 3, *, seed: int = 0) -> tuple[np.ndarray,
                                                                                                       np.ndarray]:
    """A uint16 scene without a nodata value whose collar is cut out by an internal mask. Returns ``(pixels, mask)``."""
    import rasterio

    pixels = scene_pixels(height, width, count, seed=seed)
    valid = ~collar(height, width)
    profile = {"driver": "GTiff", "count": count, "height": height, "width": width, "dtype": "uint16", "crs": CRS,
               "transform": rasterio.Affine(*TRANSFORM), "tiled": True, "blockxsize": 64, "blockysize": 64}
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
        dst.write_mask(valid.astype(np.uint8) * 255)
    return pixels, valid


def write_all_nodata(path: Path, height: int = 96, width: int = 96) -> Path:
    """A 3-band uint16 scene whose every pixel is its nodata value (0)."""
    write_geotiff(path, np.zeros((3, height, width), np.uint16), crs=CRS, transform=TRANSFORM, nodata=0, tile=32)
    return path


def write_not_a_raster(path: Path) -> Path:
    """A file named like a GeoTIFF that holds text."""
    path.write_text("this is not a GeoTIFF\n", encoding="utf-8")
    return path


def write_damaged(path: Path, height: int = 512, width: int = 512) -> Path:
    """A tiled deflate GeoTIFF whose second half is overwritten with zeros: it opens, but blocks fail to decode."""
    write_scene(path, height, width, 3, tile=64, with_collar=False)
    data = bytearray(path.read_bytes())
    half = len(data) // 2
    data[half:] = bytes(len(data) - half)
    path.write_bytes(bytes(data))
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "rs_rasters")
    out.mkdir(parents=True, exist_ok=True)
    write_scene(out / "scene_u16_tiled.tif", 300, 400)
    write_scene(out / "scene_u16_striped.tif", 300, 400, tile=None)
    write_scene(out / "scene_f32.tif", 200, 200, 3, dtype="float32", nodata=float("nan"))
    write_masked_scene(out / "scene_masked.tif", 200, 200)
    write_all_nodata(out / "all_nodata.tif")
    write_not_a_raster(out / "not_a_raster.tif")
    write_damaged(out / "damaged.tif")
    print(f"wrote rasters into {out}")
