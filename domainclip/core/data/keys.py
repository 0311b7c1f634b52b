"""The sample key vocabulary shared by every shard, dataset adapter and transform.

A sample is a plain ``dict``. In a WebDataset shard each key is stored as the file suffix of the
same name (``000042.jpg``, ``000042.txt``, ``000042.json``); after decoding, samples carry the
canonical keys below.
"""

from __future__ import annotations

#: One image, ``(C, H, W)`` float tensor after the image transform.
IMAGE = "image"
#: A clip of frames, ``(T, C, H, W)``.
VIDEO = "video"
#: Several views of one object, ``(V, C, H, W)``.
VIEWS = "views"
#: One caption (``str``), several captions (``list[str]``) or per-language captions (``dict[str, str]``).
TEXT = "text"
#: An integer class label or a list of labels (multi-label).
LABEL = "label"
#: Hierarchy level of the caption(s), e.g. ``"phase"``/``"step"``/``"task"``; ``list`` when ``text`` is.
LEVEL = "level"
#: Provenance: source file, coordinates, timestamps, mpp, licence, generator parameters.
META = "meta"
#: WebDataset's own sample key (``__key__``) and source URL (``__url__``).
KEY = "__key__"
URL = "__url__"

SAMPLE_KEYS: tuple[str, ...] = (IMAGE, VIDEO, VIEWS, TEXT, LABEL, LEVEL, META)

#: File suffixes accepted for each canonical key when reading shards, in order of preference.
SHARD_SUFFIXES: dict[str, tuple[str, ...]] = {
    IMAGE: ("jpg", "jpeg", "png", "webp", "tif", "tiff", "npy"),
    VIDEO: ("mp4", "avi", "webm", "mkv", "frames.npy"),
    VIEWS: ("views.npy",),
    TEXT: ("txt", "text.json"),
    LABEL: ("cls", "label.json"),
    LEVEL: ("level.txt", "level.json"),
    META: ("json",),
}
