"""Held-out shards for evaluation, read by every suite the same way (on the core's shard reader)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from domainclip.core.data import keys
from domainclip.core.data.corrupt import CorruptSampleError, CorruptTally
from domainclip.core.data.decode import SampleDecoder, collate_samples
from domainclip.core.data.reader import expand_urls, iter_shard
from domainclip.core.errors import DatasetNotFoundError, DomainClipError, InputError
from domainclip.core.eval.features import embed_loader

__all__ = [
    "HeldOutShards",
    "ImageTextDecoder",
    "decodable_batches",
    "embed_decodable",
    "shard_images",
    "warn_skipped",
]


class ImageTextDecoder:
    """Held-out raw sample -> ``{"image", "text", "__url__", "__key__"}`` only (its other members dropped).

    Args:
        preprocess: the model's evaluation transform.
        text_choice: the caption of a sample with several (``first``, or ``all`` for the list).
        text_map: applied to the decoded text (e.g. captions by language); ``None`` keeps it.
    """

    def __init__(
        self,
        preprocess: Callable[[Any], Tensor],
        text_choice: str = "first",
        text_map: Callable[[Any], Any] | None = None,
    ):
        self.decode = SampleDecoder(preprocess, required=(keys.IMAGE, keys.TEXT), text_choice=text_choice)
        self.text_map = text_map

    def __call__(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Decode one raw sample; raises :class:`CorruptSampleError` for unusable ones."""
        sample = self.decode(raw)
        text = sample[keys.TEXT] if self.text_map is None else self.text_map(sample[keys.TEXT])
        return {keys.IMAGE: sample[keys.IMAGE], keys.TEXT: text, keys.URL: sample.get(keys.URL, ""),
                keys.KEY: sample.get(keys.KEY, "")}


class HeldOutShards(IterableDataset):
    """The decoded samples of held-out shards, each once, in shard order (DataLoader workers share the shards).

    A sample ``decode`` refuses for a reason in ``skip`` is left out and counted; any other refused
    sample, or a damaged shard, raises :class:`~domainclip.core.errors.InputError` after the pass.

    Args:
        data: shard folder, glob or brace pattern (see :func:`~domainclip.core.data.reader.expand_urls`).
        decode: raw sample -> sample; raises :class:`~domainclip.core.data.corrupt.CorruptSampleError`.
        suite: the suite's name, for messages.
        expected: what ``data`` should hold, for the not-found message.
        skip: refusal reasons (``"bad_image"``, ...) that leave a sample out.

    Attributes:
        tally: good and refused samples of the last pass read in the main process (``num_workers=0``).

    Raises:
        DatasetNotFoundError: ``data`` names no shard.

    """

    def __init__(
        self,
        data: str | Path,
        decode: Callable[[Mapping[str, Any]], dict[str, Any]],
        *,
        suite: str,
        expected: str,
        skip: Collection[str] = (),
    ):
        super().__init__()
        try:
            self.urls = expand_urls(str(data))
        except FileNotFoundError as e:
            raise DatasetNotFoundError(f"{suite}: dataset not found at {data}: {e}; expected {expected}") from None
        self.data, self.decode, self.suite, self.skip = data, decode, suite, frozenset(skip)
        self.tally = CorruptTally()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Yield the decoded samples of this process's shards."""
        info = get_worker_info()
        tally = CorruptTally()
        if info is None:
            self.tally = tally
        for url in self.urls if info is None else self.urls[info.id :: info.num_workers]:
            for raw in iter_shard(url, tally):
                try:
                    sample = self.decode(raw)
                except CorruptSampleError as e:
                    tally.add(e.reason, url, raw.get(keys.KEY), e.detail)
                    continue
                tally.add_good()
                yield sample
        if set(tally.counts) - self.skip:
            raise InputError(f"{self.suite}: unusable samples in the held-out shards under {self.data}\n"
                             + tally.report())


def decodable_batches(dataset: Any, batch_size: int, tally: CorruptTally,
                      convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
    """Collated batches of a map-style dataset's decodable items, for a suite that reads a benchmark folder.

    An item whose reading raises :class:`CorruptSampleError` is counted in ``tally`` (with its file,
    ``dataset.samples[index][0]``, when the dataset lists its samples) and skipped; the others are
    counted as good.

    Args:
        dataset: indexable with ``len`` (e.g. a :class:`~domainclip.core.data.labelled.LabelledImages`).
        batch_size: items per batch.
        tally: where the skipped and good items are counted.
        convert: turns an item into what goes into the batch (default: the item as it is).
    """
    samples = getattr(dataset, "samples", None)
    batch = []
    for index in range(len(dataset)):
        try:
            item = dataset[index]
        except CorruptSampleError as e:
            tally.add(e.reason, samples[index][0] if samples is not None else str(index), None, e.detail)
            continue
        tally.add_good()
        batch.append(item if convert is None else convert(item))
        if len(batch) == batch_size:
            yield collate_samples(batch)
            batch = []
    if batch:
        yield collate_samples(batch)


def warn_skipped(suite: str, tally: CorruptTally) -> int:
    """Warn (one line on stderr) about the samples ``tally`` counts as refused; returns how many.

    Args:
        suite: the suite's name, first in the message.
        tally: what the suite's reading counted.
    """
    if tally.corrupt:
        counts = ", ".join(f"{reason}: {n}" for reason, n in sorted(tally.counts.items()))
        warnings.warn(f"{suite}: skipped {tally.corrupt} sample(s) that cannot be decoded "
                      f"({counts}; e.g. {tally.examples[min(tally.counts)]})", stacklevel=2)
    return tally.corrupt


def embed_decodable(model: torch.nn.Module, batches: Iterable[Mapping[str, Any]], device: str, keep: tuple[str, ...],
                    tally: Callable[[], CorruptTally], nothing: str) -> dict[str, Any]:
    """:func:`~domainclip.core.eval.features.embed_loader`; ``InputError`` (``nothing`` and the counts) if none decoded.

    Args:
        model: the CLIP model.
        batches: the batches of the decodable samples.
        device: where the model runs.
        keep: batch keys returned beside the features.
        tally: the counts of the pass (a callable: :class:`HeldOutShards` starts a tally per pass).
        nothing: the message when every sample was refused.
    """
    try:
        return embed_loader(model, batches, device, keep=keep)
    except DomainClipError:  # the reader's own one-line errors (an InputError is a ValueError)
        raise
    except ValueError:  # embed_loader: no batch
        if tally().good == 0:
            raise InputError(f"{nothing}\n{tally().report()}") from None
        raise


def shard_images(data: str | Path, wanted: Collection[tuple[str, str]]) -> dict[tuple[str, str], Tensor]:
    """The untransformed images (``(3, H, W)`` uint8) of the samples ``(url, key)`` in ``wanted``: a second pass.

    Args:
        data: shard folder, glob or brace pattern, as given to :class:`HeldOutShards`.
        wanted: ``(__url__, __key__)`` of the samples whose images are drawn.
    """
    decode, found = SampleDecoder(required=(keys.IMAGE,)), {}
    image_members = set(keys.SHARD_SUFFIXES[keys.IMAGE])
    for url in expand_urls(str(data)):
        for raw in iter_shard(url, CorruptTally()):
            if (url, raw.get(keys.KEY)) in wanted:
                image_only = {k: v for k, v in raw.items() if k in image_members or k.startswith("__")}
                found[(url, raw[keys.KEY])] = decode(image_only)[keys.IMAGE]
    return found
