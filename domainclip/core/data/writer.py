"""Write canonical samples to WebDataset tar shards, atomically.

Each shard is written by :class:`webdataset.TarWriter` to a hidden temporary file in the output
folder, unique to the writer, and renamed (``os.replace``) to ``<name>.tar`` when it is closed, so a
shard on disk is either complete or absent. On close, ``<prefix>-index.json`` lists the shards of
this writer, their sample counts, and whether the writer finished (``"complete"``).

Canonical keys (see :mod:`domainclip.core.data.keys`) are encoded to file suffixes:

============  ==========================================  ================================
key           value                                       member
============  ==========================================  ================================
``image``     PIL image, HxW[xC] uint8 array, CHW tensor  ``.jpg`` / ``.png`` / ``.webp``
``text``      ``str`` / ``list`` or ``dict``              ``.txt`` / ``.text.json``
``label``     ``int`` / ``list``                          ``.cls`` / ``.label.json``
``level``     ``str`` / ``list``                          ``.level.txt`` / ``.level.json``
``meta``      ``dict``                                    ``.json``
``views``     (V,C,H,W) array or tensor                   ``.views.npy``
``video``     (T,C,H,W) array or tensor                   ``.frames.npy``
============  ==========================================  ================================

Any other key is an explicit suffix: ``bytes`` are stored as they are (``{"mp4": b"..."}``), other
values are encoded by webdataset's handler for that extension (``{"views.npy": array}``,
``{"extra.json": {...}}``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import webdataset
from PIL import Image
from webdataset.writer import default_handlers, encode_based_on_extension1

from domainclip.core.data import keys as K
from domainclip.core.errors import InputError, OutputExistsError
from domainclip.core.io import atomic_write_text, new_file_mode
from domainclip.core.plugins import UnknownNameError

__all__ = [
    "FIXED_MTIME",
    "IMAGE_ENCODERS",
    "ShardWriter",
    "encode_sample",
    "index_path",
    "read_index",
    "resize_shorter_side",
    "split_range",
    "write_generated",
    "write_json_atomic",
    "write_shards",
]

_TAR_BLOCK = 512
#: Member modification time for byte-reproducible shards (generated data, prepared datasets).
FIXED_MTIME = 1_700_000_000


# --------------------------------------------------------------------------- image encoding
def _to_pil(image: Any) -> Image.Image:
    """Convert a PIL image, an HxW[xC] uint8 array or a CHW tensor/array to a PIL image."""
    if isinstance(image, Image.Image):
        return image
    array = image
    if hasattr(array, "detach"):  # torch.Tensor: CHW, float in [0, 1] or uint8
        array = array.detach().cpu()
        if array.ndim != 3 or array.shape[0] not in (1, 3, 4):
            raise ValueError(f"image tensor must be (C, H, W) with C in 1, 3, 4; got {tuple(array.shape)}")
        array = array.permute(1, 2, 0).numpy()
    array = np.asarray(array)
    if array.dtype.kind == "f":
        lo, hi = float(array.min(initial=0.0)), float(array.max(initial=0.0))
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(
                f"float image values must lie in [0, 1] (got [{lo:.3g}, {hi:.3g}]); "
                "pass the image before normalisation"
            )
        array = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    if array.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8 or float in [0, 1]; got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"image array must be HxW or HxWxC with C in 1, 3, 4; got {array.shape}")
    return Image.fromarray(array)


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    """``image`` scaled (bicubic) so that its shorter side is ``size`` pixels, keeping its aspect ratio.

    For prepare commands that store images at the size training reads them (``--size``/``--image-size``);
    an image already of that size is returned as it is.

    Args:
        image: the image.
        size: the shorter side wanted, in pixels.
    """
    width, height = image.size
    scale = size / min(width, height)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image if target == image.size else image.resize(target, Image.Resampling.BICUBIC)


def _encode_jpeg(image: Image.Image, quality: int) -> bytes:
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _encode_png(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _encode_webp(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="WEBP", quality=quality)
    return buf.getvalue()


#: Image format name -> encoder ``(PIL image, quality) -> bytes``; the name is the member suffix.
IMAGE_ENCODERS: dict[str, Callable[[Image.Image, int], bytes]] = {
    "jpg": _encode_jpeg,
    "png": _encode_png,
    "webp": _encode_webp,
}


# --------------------------------------------------------------------------- sample encoding
def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _array_npy(value: Any) -> bytes:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    buf = io.BytesIO()
    np.save(buf, np.asarray(value), allow_pickle=False)
    return buf.getvalue()


def _encode_image(value: Any, image_format: str, quality: int) -> dict[str, bytes]:
    return {image_format: IMAGE_ENCODERS[image_format](_to_pil(value), quality)}


def _encode_text(value: Any) -> dict[str, bytes]:
    if isinstance(value, str):
        return {"txt": value.encode("utf-8")}
    if isinstance(value, list | tuple | dict):
        return {"text.json": _json_bytes(list(value) if isinstance(value, tuple) else value)}
    raise TypeError(f"'text' must be str, list[str] or dict[str, str]; got {type(value).__name__}")


def _encode_label(value: Any) -> dict[str, bytes]:
    if isinstance(value, bool):
        raise TypeError("'label' must be an int or a list of ints, not bool")
    if isinstance(value, int | np.integer):
        return {"cls": str(int(value)).encode("ascii")}
    if hasattr(value, "tolist"):
        value = value.tolist()
        if isinstance(value, int):
            return {"cls": str(value).encode("ascii")}
    if isinstance(value, list | tuple):
        return {"label.json": _json_bytes(list(value))}
    raise TypeError(f"'label' must be an int or a list; got {type(value).__name__}")


def _encode_level(value: Any) -> dict[str, bytes]:
    if isinstance(value, str):
        return {"level.txt": value.encode("utf-8")}
    if isinstance(value, list | tuple):
        return {"level.json": _json_bytes(list(value))}
    raise TypeError(f"'level' must be str or list[str]; got {type(value).__name__}")


def _encode_meta(value: Any) -> dict[str, bytes]:
    if not isinstance(value, Mapping):
        raise TypeError(f"'meta' must be a dict; got {type(value).__name__}")
    return {"json": _json_bytes(dict(value))}


def _encode_array_as(suffix: str, key: str) -> Callable[[Any], dict[str, bytes]]:
    def encode(value: Any) -> dict[str, bytes]:
        if isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(
                f"{key!r} given as bytes: store encoded {key} under an explicit suffix key "
                f"(e.g. {{'mp4': data}}); {key!r} itself takes an array or tensor (stored as .{suffix})"
            )
        return {suffix: _array_npy(value)}

    return encode


#: Canonical key -> encoder ``value -> {suffix: bytes}`` (image is handled separately: it needs the format).
_CANONICAL_ENCODERS: dict[str, Callable[[Any], dict[str, bytes]]] = {
    K.TEXT: _encode_text,
    K.LABEL: _encode_label,
    K.LEVEL: _encode_level,
    K.META: _encode_meta,
    K.VIEWS: _encode_array_as("views.npy", K.VIEWS),
    K.VIDEO: _encode_array_as("frames.npy", K.VIDEO),
}


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"__key__ must be a non-empty str; got {key!r}")
    base = key.rsplit("/", 1)[-1]
    if "." in base or not base:
        raise ValueError(
            f"__key__ {key!r}: the part after the last '/' must be non-empty and contain no '.' "
            "(webdataset splits member names at the first dot)"
        )
    if key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"__key__ {key!r} must be a relative name without '..'")
    return key


def encode_sample(
    sample: Mapping[str, Any], image_format: str = "jpg", quality: int = 95
) -> dict[str, bytes]:
    """Encode one canonical sample to ``{suffix: bytes}`` (``__key__`` excluded).

    Args:
        sample: canonical keys (``image``, ``text``, ...) and/or explicit suffix keys.
        image_format: suffix/format for ``image`` (a key of :data:`IMAGE_ENCODERS`).
        quality: JPEG/WebP quality.

    Returns:
        suffix -> encoded member bytes.

    Raises:
        ValueError/TypeError: a value cannot be encoded, or two keys map to the same suffix.

    """
    if image_format not in IMAGE_ENCODERS:
        raise UnknownNameError("image format", image_format, list(IMAGE_ENCODERS))
    out: dict[str, bytes] = {}

    def put(key: str, members: Mapping[str, bytes]) -> None:
        for suffix, data in members.items():
            if suffix in out:
                raise ValueError(f"sample key {key!r} maps to member suffix .{suffix}, which is already set")
            out[suffix] = bytes(data)

    for key, value in sample.items():
        if key.startswith("__"):
            continue  # __key__ and other reserved fields
        if value is None:
            continue
        if key == K.IMAGE:
            put(key, _encode_image(value, image_format, quality))
        elif key in _CANONICAL_ENCODERS:
            put(key, _CANONICAL_ENCODERS[key](value))
        else:
            suffix = key.lower()
            if suffix.startswith(".") or not suffix:
                raise ValueError(f"explicit suffix key {key!r} must not be empty or start with '.'")
            if isinstance(value, bytes | bytearray | memoryview):
                data = bytes(value)
            elif isinstance(value, str):
                data = value.encode("utf-8")
            else:
                if hasattr(value, "detach") and suffix.endswith("npy"):
                    value = value.detach().cpu().numpy()
                try:
                    data = encode_based_on_extension1(value, suffix, default_handlers)
                except ValueError as e:
                    raise ValueError(
                        f"cannot encode key {key!r} ({type(value).__name__}): {e}; pass bytes for this suffix"
                    ) from e
            put(key, {suffix: data})
    if not out:
        raise ValueError(f"sample has nothing to write (keys: {sorted(sample)})")
    return out


def _tar_bytes(members: Mapping[str, bytes]) -> int:
    """Bytes the members take in a tar: a header block plus data padded to 512 bytes, each."""
    return sum(_TAR_BLOCK + _TAR_BLOCK * math.ceil(len(data) / _TAR_BLOCK) for data in members.values())


# --------------------------------------------------------------------------- atomic helpers
def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file in the same folder."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def index_path(out_dir: str | os.PathLike, prefix: str = "shard") -> Path:
    """Path of the shard index written by :class:`ShardWriter`."""
    return Path(out_dir) / f"{prefix}-index.json"


def read_index(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``<prefix>-index.json`` written by :class:`ShardWriter`.

    Args:
        path: the index file, or the shard folder (then ``shard-index.json`` is read).

    Returns:
        ``{"prefix", "shards": [{"name", "count", "size"}], "num_samples", "complete"}``.

    """
    path = Path(path)
    if path.is_dir():
        path = index_path(path)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"shard index {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"shard index {path} is not valid JSON: {e}") from None
    if not isinstance(index, dict) or not isinstance(index.get("shards"), list):
        raise ValueError(f"shard index {path} has no 'shards' list")
    return index


# --------------------------------------------------------------------------- writer
class ShardWriter:
    """Write samples to numbered tar shards, rolling over by count or size; atomic per shard.

    Shards are named ``<prefix>-000000.tar``, ``<prefix>-000001.tar``, ... starting at
    ``start_index``. Each is written to a hidden temporary file unique to this writer
    (``.<name>.<pid>-<random>.tmp``) and renamed when complete, so readers, crashed runs and other
    writers never see a partial ``.tar``. Use as a context manager: on a clean exit the open shard
    is finished and ``<prefix>-index.json`` is written with ``"complete": true``; if the block
    raises, the open shard's temporary file is deleted, the index lists only the completed shards
    with ``"complete": false``, and the block's error propagates (a failure while cleaning up, such
    as a full disk, never hides it). The index lists exactly the shards of this writer: a folder
    that already holds an index for ``prefix`` is refused unless ``overwrite``, which first deletes
    that index and the shards it lists.

    Args:
        out_dir: output folder (created if missing).
        prefix: shard name prefix.
        max_count: most samples per shard.
        max_size: most bytes per shard (tar headers and padding included; a single sample larger
            than this gets a shard of its own).
        image_format: format of ``image`` values, a key of :data:`IMAGE_ENCODERS` (``"jpg"``, ``"png"``).
        start_index: number of the first shard.
        quality: JPEG/WebP quality.
        mtime: member modification time in whole seconds (fix it for byte-reproducible shards;
            default: when the shard is opened).
        overwrite: replace an earlier index for ``prefix`` and the shards it lists.

    Raises:
        OutputExistsError: ``out_dir`` already holds ``<prefix>-index.json`` and ``overwrite`` is false.

    Example:
        >>> with ShardWriter(tmp_dir, max_count=1000, image_format="png") as w:  # doctest: +SKIP
        ...     w.write({"image": array, "text": "a cat", "meta": {"source": "x.svs"}})

    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        prefix: str = "shard",
        max_count: int = 10_000,
        max_size: int = 1 << 30,
        image_format: str = "jpg",
        start_index: int = 0,
        quality: int = 95,
        mtime: int | None = None,
        overwrite: bool = False,
    ):
        if image_format not in IMAGE_ENCODERS:
            raise UnknownNameError("image format", image_format, list(IMAGE_ENCODERS))
        if max_count < 1:
            raise InputError(f"max_count must be >= 1; got {max_count}")
        if max_size < 1:
            raise InputError(f"max_size must be >= 1; got {max_size}")
        if start_index < 0:
            raise InputError(f"start_index must be >= 0; got {start_index}")
        if not prefix or "/" in prefix or os.sep in prefix:
            raise InputError(f"prefix must be a plain file-name prefix; got {prefix!r}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self._claim_index(overwrite)
        self.max_count = max_count
        self.max_size = max_size
        self.image_format = image_format
        self.quality = quality
        self.mtime = mtime
        self._next_index = start_index
        self._shards: list[dict[str, Any]] = []
        self._tar: webdataset.TarWriter | None = None
        self._file: Any = None
        self._tmp: Path | None = None
        self._final: Path | None = None
        self._count = 0
        self._size = 0
        self._total = 0
        self._closed = False

    # ------------------------------------------------------------- context manager
    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # ------------------------------------------------------------- properties
    @property
    def written(self) -> list[Path]:
        """Paths of the completed shards, in order."""
        return [self.out_dir / s["name"] for s in self._shards]

    @property
    def num_samples(self) -> int:
        """Samples written so far (the open shard included)."""
        return self._total

    def shard_name(self, index: int) -> str:
        """File name of shard number ``index``."""
        return f"{self.prefix}-{index:06d}.tar"

    # ------------------------------------------------------------- writing
    def write(self, sample: Mapping[str, Any]) -> None:
        """Encode and append one sample; rolls to a new shard at ``max_count`` / ``max_size``.

        Args:
            sample: canonical keys and/or explicit suffix keys; ``__key__`` is optional (default:
                the zero-padded running sample number of this writer).

        """
        if self._closed:
            raise RuntimeError(f"ShardWriter for {self.out_dir} is closed")
        key = sample.get(K.KEY)
        key = _check_key(key) if key is not None else f"{self._total:09d}"
        try:
            members = encode_sample(sample, self.image_format, self.quality)
        except (ValueError, TypeError) as e:
            raise type(e)(f"sample {key!r} for {self.out_dir}: {e}") from e
        size = _tar_bytes(members)
        if self._tar is not None and (
            self._count >= self.max_count or (self._count > 0 and self._size + size > self.max_size)
        ):
            self._finish_shard()
        if self._tar is None:
            self._open_shard()
        assert self._tar is not None
        self._tar.write({K.KEY: key, **members})
        self._count += 1
        self._size += size
        self._total += 1

    def close(self) -> None:
        """Finish the open shard and write the index; idempotent."""
        if self._closed:
            return
        self._finish_shard()
        self._closed = True
        self._write_index(complete=True)

    def abort(self) -> None:
        """Drop the open shard (its temporary file is deleted) and index the completed ones.

        Never raises: it runs while another error is on its way out. When even the index cannot
        be written (a full disk), the completed shards stay without one, which readers that
        check indexes treat as unfinished.
        """
        if self._closed:
            return
        self._closed = True
        self._discard_shard()
        with contextlib.suppress(OSError):
            self._write_index(complete=False)

    # ------------------------------------------------------------- internals
    def _claim_index(self, overwrite: bool) -> None:
        """Refuse, or with ``overwrite`` clear, an earlier index of this prefix and its shards."""
        path = index_path(self.out_dir, self.prefix)
        if not path.exists():
            return
        if not overwrite:
            raise OutputExistsError(
                f"{self.out_dir} already holds shards of prefix {self.prefix!r} ({path.name}); "
                "write into a new folder, or pass overwrite=True to replace them"
            )
        try:
            old = read_index(path)["shards"]
        except ValueError:
            old = []
        for entry in old:
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name.startswith(f"{self.prefix}-") and "/" not in name:
                (self.out_dir / name).unlink(missing_ok=True)
        path.unlink()

    def _open_shard(self) -> None:
        name = self.shard_name(self._next_index)
        self._final = self.out_dir / name
        self._tmp = self.out_dir / f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        self._file = open(self._tmp, "xb")  # noqa: SIM115 - closed in _finish_shard/_discard_shard
        # an integer mtime keeps members in plain ustar headers (a float adds a PAX header per member)
        mtime = int(time.time()) if self.mtime is None else int(self.mtime)
        self._tar = webdataset.TarWriter(self._file, encoder=False, mtime=mtime)
        self._count = 0
        self._size = 0

    def _finish_shard(self) -> None:
        if self._tar is None:
            return
        assert self._tmp is not None and self._final is not None
        try:
            self._tar.close()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.chmod(self._tmp, new_file_mode())
            os.replace(self._tmp, self._final)
        except BaseException:
            self._discard_shard()
            raise
        self._shards.append(
            {"name": self._final.name, "count": self._count, "size": self._final.stat().st_size}
        )
        self._next_index += 1
        self._tar = None
        self._file = None

    def _discard_shard(self) -> None:
        """Drop the open shard; never raises (it runs while another error is on its way out)."""
        if self._tar is not None:
            with contextlib.suppress(Exception):  # end the tar stream so it does not write on collection
                self._tar.close()
        if self._file is not None:
            with contextlib.suppress(Exception):  # closing flushes, which fails again on a full disk
                self._file.close()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink(missing_ok=True)
        self._tar = None
        self._file = None

    def _write_index(self, complete: bool) -> None:
        shards = sorted(self._shards, key=lambda s: s["name"])
        write_json_atomic(
            index_path(self.out_dir, self.prefix),
            {
                "prefix": self.prefix,
                "image_format": self.image_format,
                "complete": complete,
                "num_samples": sum(int(s["count"]) for s in shards),
                "shards": shards,
            },
        )


def write_shards(
    samples: Iterable[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    *,
    prefix: str = "shard",
    max_count: int = 10_000,
    max_size: int = 1 << 30,
    image_format: str = "jpg",
    start_index: int = 0,
    quality: int = 95,
    progress: bool = True,
    total: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write an iterable of canonical samples to shards, with a tqdm progress bar.

    Args:
        samples: canonical sample dicts (consumed lazily; memory does not grow with their number).
        out_dir: output folder.
        prefix: shard name prefix (see :class:`ShardWriter`).
        max_count: most samples per shard.
        max_size: most bytes per shard.
        image_format: ``"jpg"``, ``"png"`` or ``"webp"``.
        start_index: number of the first shard.
        quality: JPEG/WebP quality.
        progress: show a progress bar.
        total: number of samples for the bar (default: ``len(samples)`` when it has one).
        overwrite: replace an earlier index of ``prefix`` in ``out_dir`` and its shards.

    Returns:
        ``{"out_dir", "index", "shards": [names], "num_shards", "num_samples"}``.

    """
    from tqdm.auto import tqdm

    if total is None and hasattr(samples, "__len__"):
        total = len(samples)  # type: ignore[arg-type]
    with ShardWriter(
        out_dir,
        prefix=prefix,
        max_count=max_count,
        max_size=max_size,
        image_format=image_format,
        start_index=start_index,
        quality=quality,
        overwrite=overwrite,
    ) as writer:
        for sample in tqdm(
            samples, total=total, disable=not progress, unit="sample", desc=f"{prefix} shards"
        ):
            writer.write(sample)
    return {
        "out_dir": str(writer.out_dir),
        "index": str(index_path(writer.out_dir, prefix)),
        "shards": [p.name for p in writer.written],
        "num_shards": len(writer.written),
        "num_samples": writer.num_samples,
    }


# --------------------------------------------------------------------------- generated data
def split_range(n: int, parts: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into ``parts`` contiguous ``(start, stop)`` ranges of near-equal size."""
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    base, extra = divmod(n, parts)
    ranges, start = [], 0
    for k in range(parts):
        stop = start + base + (1 if k < extra else 0)
        ranges.append((start, stop))
        start = stop
    return ranges


def _write_range(
    make_sample: Callable[[int], Mapping[str, Any]],
    start: int,
    stop: int,
    out_dir: str,
    options: Mapping[str, Any],
    count_by: Sequence[str],
    report: Callable[[int], Any] | None,
) -> dict[str, Any]:
    """Write samples ``start..stop-1`` to shards of one prefix; ``report(k)`` counts progress."""
    counts: dict[str, Counter[str]] = {key: Counter() for key in count_by}
    pending = 0
    began, cpu = time.perf_counter(), time.process_time()
    with ShardWriter(out_dir, **options) as writer:
        for index in range(start, stop):
            sample = make_sample(index)
            writer.write(sample)
            for key in count_by:
                counts[key][str(sample.get(K.META, {}).get(key))] += 1
            pending += 1
            if report is not None and (pending == 32 or index == stop - 1):
                report(pending)
                pending = 0
    return {
        "prefix": options["prefix"],
        "range": [start, stop],
        "seconds": round(time.perf_counter() - began, 3),
        "cpu_seconds": round(time.process_time() - cpu, 3),
        "shards": [p.name for p in writer.written],
        "index": index_path(out_dir, options["prefix"]).name,
        "num_samples": writer.num_samples,
        "counts": {key: dict(c) for key, c in counts.items()},
    }


def write_generated(
    make_sample: Callable[[int], Mapping[str, Any]],
    n: int,
    out_dir: str | os.PathLike,
    *,
    prefix: str = "shard",
    workers: int = 1,
    max_count: int = 10_000,
    image_format: str = "jpg",
    mtime: int | None = FIXED_MTIME,
    count_by: Sequence[str] = (),
    progress: bool = True,
    desc: str = "samples",
) -> dict[str, Any]:
    """Write generated samples ``0 .. n-1`` (sample ``i`` is ``make_sample(i)``) to shards, in parallel.

    Worker ``k`` of ``workers`` processes writes the ``k``-th contiguous range of indices to its own
    shards and index (``<prefix>-wKK-NNNNNN.tar``; ``<prefix>-NNNNNN.tar`` with one worker), so when
    sample ``i`` depends only on ``i`` the set of samples is the same for any number of workers, and
    with the default fixed member time the shards are byte-for-byte reproducible.

    Args:
        make_sample: index -> canonical sample dict (``image``, ``text``, ``meta``, ... or explicit
            suffix keys such as ``{"png": bytes}``); picklable (a module-level function, or a
            :func:`functools.partial` of one) when ``workers`` > 1.
        n: number of samples.
        out_dir: output folder.
        prefix: shard name prefix.
        workers: processes (see :func:`domainclip.core.parallel.run_workers`).
        max_count: most samples per shard.
        image_format: format of ``image`` values (see :class:`ShardWriter`).
        mtime: tar member time (``None``: when each shard is opened).
        count_by: ``meta`` keys whose values are counted (e.g. the class of each sample).
        progress: show a progress bar.
        desc: the progress bar's label.

    Returns:
        ``{"num_samples", "num_shards", "shards", "indexes", "counts": {key: {value: count}},
        "seconds", "samples_per_second", "workers_detail"}``.
    """
    from tqdm.auto import tqdm

    from domainclip.core.parallel import run_workers, shared_add

    workers = max(1, min(workers, n))
    prefixes = [prefix] if workers == 1 else [f"{prefix}-w{k:02d}" for k in range(workers)]
    options = {"max_count": max_count, "image_format": image_format, "mtime": mtime}
    jobs = [
        (make_sample, a, b, os.fspath(out_dir), {**options, "prefix": p}, tuple(count_by))
        for (a, b), p in zip(split_range(n, workers), prefixes)
    ]
    began = time.perf_counter()
    with tqdm(total=n, disable=not progress, unit="sample", desc=desc) as bar:
        if workers == 1:
            results = [_write_range(*jobs[0], bar.update)]
        else:
            results = run_workers([(_write_range, (*job, functools.partial(shared_add, 0))) for job in jobs], bar)
    seconds = time.perf_counter() - began
    counts: dict[str, Counter[str]] = {key: Counter() for key in count_by}
    for result in results:
        for key, values in result["counts"].items():
            counts[key].update(values)
    return {
        "num_samples": sum(r["num_samples"] for r in results),
        "num_shards": sum(len(r["shards"]) for r in results),
        "shards": [s for r in results for s in r["shards"]],
        "indexes": [r["index"] for r in results],
        "counts": {key: dict(sorted(c.items())) for key, c in counts.items()},
        "seconds": round(seconds, 3),
        "samples_per_second": round(n / seconds, 2) if seconds > 0 else None,
        "workers_detail": [{k: r[k] for k in ("prefix", "range", "num_samples", "seconds", "cpu_seconds")}
                           for r in results],
    }
