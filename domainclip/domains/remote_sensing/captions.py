"""``domainclip prepare remote_sensing captions``: a public caption set, read in its own layout, into shards.

RSICD, UCM-Captions, Sydney-Captions and RSITMD ship a Karpathy-format caption file and an image
folder (:mod:`~domainclip.domains.remote_sensing.datasets.captions`). :func:`prepare_captions` writes
one shard folder per split, ``<out>/<split>/<dataset>-NNNNNN.tar``, each sample holding the image,
every caption of the image under its language (``text = {"en": [...]}``, copies kept: the
``translate`` command adds languages beside it, and the decoder chooses among them while training)
and its provenance in ``meta``. An image the caption file names but the folder lacks, or one that
cannot be read, is skipped and counted; a caption file in another layout stops the command with one
line naming the file and the layout expected.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

from domainclip.core.data.corrupt import CorruptSampleError
from domainclip.core.data.writer import FIXED_MTIME, ShardWriter, resize_shorter_side
from domainclip.core.errors import InputError, NothingWrittenError
from domainclip.core.io import safe_key
from domainclip.core.options import PositiveInt, Range, entry_point
from domainclip.domains.remote_sensing.datasets.captions import (
    CAPTION_DATASETS,
    KarpathyCaptions,
    detect_caption_dataset,
    read_caption_image,
)

__all__ = ["CaptionDataset", "CaptionSplit", "prepare_captions", "resize_shorter_side"]

#: ``--dataset`` values: a caption set's layout, or ``auto`` to tell it from the folder.
CaptionDataset = Literal["auto", "rsicd", "ucm_captions", "sydney_captions", "rsitmd", "synthetic"]
#: The splits of a Karpathy caption file.
CaptionSplit = Literal["train", "val", "test"]
#: Duplicate image names in one split (after making them shard keys).
DUPLICATE_NAME = "duplicate_name"
_SAME_FORMAT = {"jpg": (".jpg", ".jpeg"), "png": (".png",), "webp": (".webp",)}


def _key(filename: str) -> str:
    """A shard key from an image file name: its stem made safe (:func:`~domainclip.core.io.safe_key`)."""
    return safe_key(Path(filename).stem) or "image"


@entry_point
def prepare_captions(
    out: Path,
    data: Path,
    *,
    dataset: CaptionDataset = "auto",
    splits: tuple[CaptionSplit, ...] = ("train", "val", "test"),
    image_size: Annotated[int, Range(16)] | None = None,
    image_format: Literal["jpg", "png", "webp"] = "jpg",
    max_count: PositiveInt = 1000,
    progress: bool = True,
) -> dict[str, Any]:
    """Write a public caption set (RSICD, UCM-Captions, Sydney-Captions, RSITMD) to shards keeping every caption.

    Each sample: ``image``, ``text`` = ``{"en": [every caption, in file order, copies kept]}`` and
    ``meta`` (dataset, filename, split, image id, sentence ids, caption and distinct-caption counts,
    original size, licence). Images already in ``image_format`` and not resized keep their bytes.

    Args:
        out: output folder; one sub-folder of shards per split (out/train, out/val, out/test).
        data: the dataset folder as its release unpacks (e.g. RSICD_images/ and dataset_rsicd.json).
        dataset: its layout: rsicd, ucm_captions, sydney_captions, rsitmd, or auto to tell it from the folder.
        splits: the splits to write.
        image_size: resize every image so that its shorter side has this many pixels (default: keep the size).
        image_format: image format in the shards.
        max_count: samples per shard.
        progress: show a progress bar.

    Returns:
        ``{"out", "data", "dataset", "caption_file", "splits": {split: {"images", "captions",
        "distinct_captions", "shards"}}, "images_by_distinct_captions": {count: images}, "blank_captions",
        "skipped": {reason: count}, "skipped_examples": {reason: detail}}``.

    Raises:
        DatasetNotFoundError: ``data`` is not a folder of the layout (what it must hold is named).
        CaptionLayoutError: the caption file is not in the Karpathy layout.
        InputError: the caption file has no image of the splits asked for.
        NothingWrittenError: every image was skipped (counted by reason).
    """
    from tqdm.auto import tqdm

    cls = detect_caption_dataset(data) if dataset == "auto" else CAPTION_DATASETS[dataset]
    source: KarpathyCaptions = cls(data, split=None)
    chosen = [i for i, record in enumerate(source.records) if record.split in splits]
    if not chosen:
        present = ", ".join(sorted({r.split for r in source.records}))
        raise InputError(f"{source.caption_file} has no image of split {', '.join(splits)} (its splits: {present})")
    writers: dict[str, ShardWriter] = {}
    stats = {split: Counter() for split in splits}
    by_distinct: Counter[int] = Counter()
    skipped: Counter[str] = Counter()
    examples: dict[str, str] = {}
    keys: dict[str, set[str]] = {split: set() for split in splits}
    try:
        for index in tqdm(chosen, disable=not progress, unit="image", desc=f"{cls.name} captions"):
            record = source.records[index]
            key = _key(record.filename)
            if key in keys[record.split]:
                skipped[DUPLICATE_NAME] += 1
                examples.setdefault(DUPLICATE_NAME, f"{record.filename} ({record.split}) is named twice")
                continue
            path = source.image_path(index)
            try:
                image = read_caption_image(path)
            except CorruptSampleError as e:
                skipped[e.reason] += 1
                examples.setdefault(e.reason, e.detail)
                continue
            keys[record.split].add(key)
            meta = {**source.meta(index), "size": list(image.size)}
            if image_size is not None:
                image = resize_shorter_side(image, image_size)
            keep_bytes = image.size == tuple(meta["size"]) and path.suffix.lower() in _SAME_FORMAT[image_format]
            sample = {"__key__": key, "text": {"en": list(record.captions)}, "meta": meta,
                      **({image_format: path.read_bytes()} if keep_bytes else {"image": image})}
            if record.split not in writers:
                writers[record.split] = ShardWriter(out / record.split, prefix=cls.name, max_count=max_count,
                                                    image_format=image_format, mtime=FIXED_MTIME)
            writers[record.split].write(sample)
            counts = stats[record.split]
            counts["images"] += 1
            counts["captions"] += len(record.captions)
            counts["distinct_captions"] += meta["distinct_captions"]
            counts["blank_captions"] += record.blank
            by_distinct[meta["distinct_captions"]] += 1
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for writer in writers.values():
        writer.close()
    if not writers:
        raise NothingWrittenError.from_counts(
            f"remote_sensing/captions ({cls.name})", "image-caption pairs",
            f"{len(chosen)} images of {source.caption_file}", skipped, examples,
        )
    return {
        "out": str(out),
        "data": str(data),
        "dataset": cls.name,
        "caption_file": str(source.caption_file),
        "splits": {split: {"images": stats[split]["images"], "captions": stats[split]["captions"],
                           "distinct_captions": stats[split]["distinct_captions"],
                           "shards": [p.name for p in writers[split].written] if split in writers else []}
                   for split in splits},
        "images_by_distinct_captions": {str(k): by_distinct[k] for k in sorted(by_distinct)},
        "blank_captions": sum(stats[split]["blank_captions"] for split in splits),
        "skipped": dict(sorted(skipped.items())),
        "skipped_examples": dict(sorted(examples.items())),
    }

