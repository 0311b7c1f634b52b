"""Streaming WebDataset reader: sharding by rank and worker, weighted mixing, shuffling, exact resume.

The stream of one *logical worker* (one of ``W = max(1, num_workers)`` per rank) is::

    sources --(shard split by slot, epoch-seeded shard order)--> shards of every epoch, in turn
            --(k = shard_interleave shards open at once, one sample from each in turn)--> raw samples
            --(weighted choice of a source per raw sample)--> mixed raw stream
            --(seeded shuffle buffer, raw samples)--> post-shuffle stream   <- position counts here
            --(decode; CorruptSampleError counted by reason)--> batches (collate)

Reading ``k`` shards at once is what makes shards written in topic order (BIOMEDICA writes its
shards cluster by cluster) give batches of many topics: with one shard at a time, a shard larger
than the shuffle buffer fills the buffer with one topic, and each batch comes from one worker
(``bench/bench_shard_mixing.py`` measures it). Several shards in flight per worker, under the sample
buffer, is how webdataset pipelines mix at scale; it costs ``k`` open streams, never
memory in proportion to a shard.

Everything is seeded from ``seed`` and the slot (``rank * W + logical_worker``), so a logical
worker's stream depends only on the arguments. The position of the whole loader is, per logical
worker, the number of raw samples taken from its post-shuffle stream, plus the number of batches
yielded; :meth:`StreamingLoader.load_state_dict` fast-forwards each logical worker by reading and
shuffling (never decoding) that many raw samples, so the resumed stream is bit-identical.

Decoding runs with the Python/numpy/torch global RNGs seeded per sample from (seed, source, url,
key, epoch), so random augmentations are reproducible and survive a resume. A damaged shard is
counted (``bad_shard``) when the reader meets it, which is ahead of the shuffle buffer.

Shard URLs are of two kinds, told apart by type, never by looking at the string again: a local
file (a plain ``str``: every path a folder listing or a glob found, and every existing path the
user named) is opened with :func:`open`; a URL the user wrote with a scheme (a :class:`ShardUrl`:
``hf://``, ``http(s)://``, ``pipe:cmd``) goes through :func:`webdataset.gopen`. A file named
``pipe:rm -rf ~.tar`` is therefore read as a file, and ``pipe:`` URLs are refused unless the loader
is built with ``allow_pipe=True``; webdataset's ``WDS_SECURE=1`` is honoured, never lifted.
Samples are grouped from tar members by the rules of :func:`webdataset.tariterators.group_by_keys`. Tar
members are read by this module's own parser so that a truncated tar is detected (``tarfile``
alone ends a truncated stream silently) and counted as ``bad_shard``.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import hashlib
import itertools
import lzma
import math
import os
import pickle
import random
import re
import struct
import tarfile
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import braceexpand
import numpy as np
import torch
import webdataset.utils
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.gopen import gopen, gopen_schemes

from domainclip.core.data import keys as K
from domainclip.core.data.corrupt import BAD_SHARD, CorruptSampleError, CorruptTally, TooManyCorruptSamplesError
from domainclip.core.data.decode import EPOCH, SOURCE, collate_samples, derive_rng
from domainclip.core.errors import DomainClipError, InputError, InputNotFoundError

__all__ = [
    "POSITION",
    "CORRUPT",
    "ShardUrl",
    "Source",
    "StreamingDataset",
    "StreamingLoader",
    "build_loader",
    "expand_urls",
    "iter_shard",
    "open_url",
]

#: Reserved batch key: ``[logical_worker, raw samples taken]``; removed by the loader.
POSITION = "__position__"
#: Reserved batch key: corrupt/good counts since the previous batch of that worker; removed by the loader.
CORRUPT = "__corrupt__"
#: Reserved batch key on the end-of-stream marker of a finite stream (carries no samples).
_FINAL = "__final__"
#: Reserved batch key: a user error raised in a DataLoader worker, re-raised as it is by the loader.
_ERROR = "__error__"
#: how ranks share the data: by shard (scalable) or by sample of one global stream (exact 1-process equivalence)
SPLITS = ("shard", "sample")

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+):")
_SHARD_EXTENSIONS = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_BLOCK = 512
_STATE_VERSION = 1
#: bytes read from a shard stream at a time (members are sliced from these chunks)
_CHUNK = 1 << 20


# =========================================================================== URLs
def _scheme(url: str) -> str | None:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else None


class ShardUrl(str):
    """A shard URL the user wrote with a scheme (``hf://``, ``http(s)://``, ``pipe:cmd``).

    Only :func:`expand_urls` makes these, from the specs it is given; :func:`open_url` opens them
    through :func:`webdataset.gopen`. Every other string is a local file path and is opened as a
    file, so a name found on disk can never be taken for a command, and a ``ShardUrl`` that
    becomes a plain ``str`` (e.g. after string operations) fails closed: it is opened as a file.
    """

    __slots__ = ()


def _refuse_pipe(url: str, spec: str, allow_pipe: bool) -> None:
    """Raise unless a ``pipe:`` URL may run: ``allow_pipe`` is set and ``WDS_SECURE`` is not."""
    what = f"shard URL {url!r}" + ("" if url == spec else f" (from {spec!r})")
    if not allow_pipe:
        raise InputError(
            f"{what} is a shell command (pipe:), which is not run unless you set data.allow_pipe: true in "
            "the recipe (allow_pipe=True for build_loader)"
        )
    if getattr(webdataset.utils, "enforce_security", False):
        raise InputError(
            f"{what} is a shell command (pipe:), which WDS_SECURE=1 forbids; unset WDS_SECURE or list the "
            "shards as files"
        )


def _shard_files(folder: str) -> list[str]:
    """The shard files in ``folder``, sorted (local paths: plain strings)."""
    found = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(_SHARD_EXTENSIONS))
    if not found:
        raise InputNotFoundError(f"shard folder {folder} holds no {'/'.join(_SHARD_EXTENSIONS)} files")
    return found


def expand_urls(urls: str | os.PathLike | Sequence[str], *, allow_pipe: bool = False) -> list[str]:
    """Expand shard specs into a list of shard URLs, in order.

    Each entry is brace-expanded (``shard-{000000..000009}.tar``). Local entries may also be globs
    (``/data/*.tar``) or folders (all ``*.tar``/``*.tar.gz``/... inside, sorted), and must exist;
    ``file:`` URLs are local entries. What this finds on disk is returned as plain ``str`` paths,
    which :func:`open_url` opens as files whatever their names look like. Entries with another
    scheme (``hf://``, ``http://``, ``pipe:``) are returned as :class:`ShardUrl`; ``pipe:``
    commands only with ``allow_pipe`` and without webdataset's ``WDS_SECURE=1``.

    Args:
        urls: one spec or a list of specs, as the user wrote them.
        allow_pipe: let ``pipe:`` entries through (they run a shell command per shard).

    Returns:
        Local file paths (``str``) and user-written URLs (:class:`ShardUrl`), in order.

    Raises:
        InputNotFoundError: a local shard, glob or folder matches nothing (a ``FileNotFoundError``).
        InputError: a ``pipe:`` entry without ``allow_pipe`` or under ``WDS_SECURE=1``, or no URLs
            at all (a ``ValueError``).

    """
    specs = [urls] if isinstance(urls, str | os.PathLike) else list(urls)
    out: list[str] = []
    for spec in specs:
        spec_text = os.fspath(spec)
        for url in braceexpand.braceexpand(spec_text):
            scheme = _scheme(url)
            if scheme is not None and scheme != "file":
                if scheme == "pipe":
                    _refuse_pipe(url, spec_text, allow_pipe)
                out.append(ShardUrl(url))
                continue
            path = urlparse(url).path if scheme == "file" else url
            if os.path.isdir(path):
                out.extend(_shard_files(path))
            elif glob.has_magic(path):
                found = sorted(glob.glob(path))
                if not found:
                    raise InputNotFoundError(f"shard pattern {path!r} matches no files")
                out.extend(found)
            elif os.path.exists(path):
                out.append(path)
            else:
                raise InputNotFoundError(f"shard {path} does not exist (from {spec_text!r})")
    if not out:
        raise InputError(f"no shard URLs in {urls!r}")
    return out


def open_url(url: str) -> Any:
    """Open one shard for reading.

    A plain ``str`` is a local file and is opened with :func:`open`, never through a scheme
    dispatch. A :class:`ShardUrl` goes through :func:`webdataset.gopen.gopen`, which honours
    ``WDS_SECURE``; ``hf://`` URLs with webdataset versions that have no ``hf`` handler (0.2.x)
    are streamed through :class:`huggingface_hub.HfFileSystem`.

    Args:
        url: a path or :class:`ShardUrl` from :func:`expand_urls`.

    Returns:
        A binary file object.

    """
    if not isinstance(url, ShardUrl):
        return open(url, "rb")
    if _scheme(url) == "hf" and "hf" not in gopen_schemes:
        from huggingface_hub import HfFileSystem

        return HfFileSystem().open(url, "rb")
    return gopen(url, "rb")


# =========================================================================== tar reading
class _HeadReplay:
    """Read-only stream that first returns ``head`` (bytes already read to sniff a magic number)."""

    def __init__(self, fileobj: Any, head: bytes):
        self._f = fileobj
        self._head = head
        if hasattr(fileobj, "read1"):  # only where the stream has it (see _TarBuffer)
            self.read1 = self._read1

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._f.read(size)
        if size is None or size < 0:
            data, self._head = self._head + self._f.read(), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        if len(data) < size:
            data += self._f.read(size - len(data))
        return data

    def _read1(self, size: int = -1) -> bytes:
        """Return what is at hand, up to ``size`` bytes (at most one read of the underlying stream)."""
        if self._head:
            data, self._head = (self._head, b"") if size is None or size < 0 else (self._head[:size], self._head[size:])
            return data
        return self._f.read1(size)


def _uncompressed(fileobj: Any) -> Any:
    """Wrap a stream in a decompressor when it starts with a gzip/bzip2/xz magic number."""
    head = fileobj.read(6) or b""
    stream = _HeadReplay(fileobj, head)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if head.startswith(b"BZh"):
        return bz2.BZ2File(stream)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(stream)
    return stream


class TruncatedShardError(tarfile.ReadError):
    """The tar stream ended without its end-of-archive block (truncated or garbled)."""


_ZERO_BLOCK = bytes(_BLOCK)
_SIGNED_HEADER = struct.Struct("148b8x356b")
#: tar member types (``tarfile``'s constants as bytes): regular files, and the headers that modify the next member
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_PAX = tarfile.XHDTYPE
_PAX_GLOBAL = tarfile.XGLTYPE
_GNU_LONGNAME = tarfile.GNUTYPE_LONGNAME
_MODIFIERS = (_PAX, _PAX_GLOBAL, _GNU_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_GNU_TYPES = tarfile.GNU_TYPES
_SKIP_META = re.compile(r"__[^/]*__($|/)")  # webdataset's skip_meta rule
_KEY_SUFFIX = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext


def _read_exact(stream: Any, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at the end of the stream (some streams return short reads)."""
    data = stream.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = stream.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _field_str(field: bytes) -> str:
    end = field.find(b"\0")
    return (field if end < 0 else field[:end]).decode("utf-8", "surrogateescape")


def _field_int(field: bytes) -> int:
    if field[:1] in (b"\x80", b"\xff"):  # GNU base-256 (sizes of 8 GiB and more)
        return tarfile.nti(field)
    digits = field.replace(b"\0", b" ").strip()
    return int(digits, 8) if digits else 0


class _TarBuffer:
    """A tar stream read in large chunks; blocks and member data are sliced from the chunk in memory.

    Reading a shard of small members with one ``read`` per header, per member and per padding
    costs three Python-level calls per member; reading up to ``_CHUNK`` bytes at a time (``read1``:
    what the stream has at hand) and slicing costs one slice per member (the member's bytes are
    copied once, as ``read`` would). A member larger than a chunk is read directly, so memory stays
    one chunk plus the member being read, never the shard.
    """

    __slots__ = ("buf", "pos", "base", "stream", "read_some")

    def __init__(self, stream: Any):
        self.stream = stream
        # read1 returns what is at hand, so a streamed shard is parsed as its bytes arrive instead of
        # waiting for a whole chunk; a stream without it (webdataset's Pipe for http/pipe: URLs) is
        # read exactly as far as the parser needs, never ahead
        self.read_some = getattr(stream, "read1", None)
        self.buf = b""
        self.pos = 0  # next unread byte of buf
        self.base = 0  # stream offset of buf[0]

    @property
    def offset(self) -> int:
        """Stream offset of the next unread byte."""
        return self.base + self.pos

    def fill(self, need: int) -> int:
        """Make at least ``need`` unread bytes available unless the stream ends first; return how many are."""
        left = len(self.buf) - self.pos
        if left >= need:
            return left
        parts = [self.buf[self.pos :]] if left else []
        while left < need:
            more = self.read_some(max(_CHUNK, need - left)) if self.read_some else self.stream.read(need - left)
            if not more:
                break
            parts.append(more)
            left += len(more)
        self.base += self.pos
        self.buf = parts[0] if len(parts) == 1 else b"".join(parts)
        self.pos = 0
        return left

    def member(self, size: int, name: str) -> bytes:
        """Read a member's ``size`` bytes and the padding to the next block; raise if the stream ends first."""
        padding = -size % _BLOCK
        pos = self.pos
        left = len(self.buf) - pos
        if left >= size + padding:  # the common case: all of it in the chunk
            self.pos = pos + size + padding
            return self.buf[pos : pos + size]
        if left < size and size > _CHUNK:  # a large member: read directly (one copy), not through the chunk
            head = self.buf[pos:]
            self.base += len(self.buf)
            self.buf, self.pos = b"", 0
            rest = _read_exact(self.stream, size - left)
            self.base += len(rest)
            data = head + rest if head else rest
        else:
            got = self.fill(size)
            data = self.buf[self.pos : self.pos + min(size, got)]
            self.pos += len(data)
        if len(data) < size:
            raise TruncatedShardError(f"member {name} is truncated ({len(data)} of {size} bytes)")
        if padding:
            if self.fill(padding) < padding:
                raise TruncatedShardError(f"member {name} is truncated (the padding after its data is missing)")
            self.pos += padding
        return data


def _pax_records(data: bytes, offset: int) -> dict[str, str]:
    """Parse a PAX extended header (records ``"<length> <keyword>=<value>"`` ending in a newline)."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TruncatedShardError(f"invalid PAX header before offset {offset}") from None
        if space < 0 or length <= 0:
            raise TruncatedShardError(f"invalid PAX header before offset {offset}")
        keyword, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        records[keyword.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _tar_members(fileobj: Any) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, data)`` for each regular member; raise :class:`TruncatedShardError` if the tar is damaged.

    Reads the tar stream (ustar, GNU long names and PAX ``path``/``size`` records, as written by
    webdataset and tarfile) in chunks through :class:`_TarBuffer`, with the member filtering of
    :func:`webdataset.tariterators.tar_file_iterator`. Unlike ``tarfile`` (which stops quietly at
    a truncated or garbled header), a stream that does not end with a zero block, a member whose
    data is cut short, or a header with a bad checksum raises. ``tarfile``'s stream mode parses
    every header field and copies each member through two buffer layers; this reader parses only
    the fields it needs (``bench/bench_loader.py``, ``bench/bench_shard_peers.py``).
    """
    tar = _TarBuffer(_uncompressed(fileobj))
    global_pax: dict[str, str] = {}
    pending: dict[str, str] = {}  # from a PAX or GNU long-name header, for the next member

    at = 0  # stream offset of the header being read

    def damaged(why: str) -> TruncatedShardError:
        return TruncatedShardError(
            f"tar stream has no valid header or end-of-archive block at offset {at} ({why}; truncated or damaged)"
        )

    while True:
        left = tar.fill(_BLOCK)
        at = tar.offset
        if left < _BLOCK:
            raise damaged(f"{left} bytes left")
        pos = tar.pos
        header = tar.buf[pos : pos + _BLOCK]
        if header == _ZERO_BLOCK:
            return
        try:
            checksum = _field_int(header[148:156])
            size = _field_int(header[124:136])
        except ValueError:
            raise damaged("not a tar header") from None
        unsigned = sum(header) - sum(header[148:156]) + 256
        if checksum != unsigned and checksum != sum(_SIGNED_HEADER.unpack(header)) + 256:
            raise damaged("bad header checksum")
        tar.pos = pos + _BLOCK
        kind = header[156:157]
        name = _field_str(header[0:100])
        if kind in _MODIFIERS:  # headers that describe the next member
            data = tar.member(size, f"{kind!r} header at offset {at}")
            if kind == _PAX:
                pending.update(_pax_records(data, tar.offset))
            elif kind == _PAX_GLOBAL:
                global_pax.update(_pax_records(data, tar.offset))
            elif kind == _GNU_LONGNAME:
                pending["path"] = _field_str(data)
            continue
        if header[257:262] == b"ustar" and kind not in _GNU_TYPES:
            prefix = _field_str(header[345:500])
            if prefix:
                name = f"{prefix}/{name}"
        if pending or global_pax:
            extended = {**global_pax, **pending} if global_pax else pending
            pending = {}
            name = extended.get("path", name)
            if "size" in extended:
                try:
                    size = int(extended["size"])
                except ValueError:
                    raise damaged(f"PAX size {extended['size']!r} of {name} is not a number") from None
        data = tar.member(size, name)
        if kind not in _REGULAR or (kind == tarfile.AREGTYPE and name.endswith("/")):
            continue  # directories, links, devices, GNU sparse files
        if name.startswith("__") and _SKIP_META.match(name):
            continue
        yield name, data


def _iter_members(fileobj: Any, url: str) -> Iterator[dict[str, Any]]:
    """Yield ``{"fname", "data", "__url__"}`` for each regular member (:func:`_tar_members` as dicts)."""
    for name, data in _tar_members(fileobj):
        yield {"fname": name, "data": data, "__url__": url}


def iter_shard(url: str, tally: CorruptTally) -> Iterator[dict[str, Any]]:
    """Yield the raw samples (``__key__``, ``__url__``, suffix -> bytes) of one shard.

    A shard that cannot be opened or is damaged is counted once as ``bad_shard`` in ``tally``;
    the samples read before the damage are kept, the one being assembled when it was found is
    dropped (it may be incomplete).

    Args:
        url: a local path (opened as a file) or a :class:`ShardUrl`, as :func:`expand_urls` returns them.
        tally: where a damaged shard is counted.

    """
    try:
        stream = open_url(url)
    except Exception as e:  # any opener failure (missing file, failing command, network)
        tally.add(BAD_SHARD, url, None, f"cannot open: {type(e).__name__}: {e}")
        return
    errors: list[BaseException] = []
    source = str(url)  # samples carry a plain str
    current: dict[str, Any] | None = None  # the sample being assembled
    dropped: str | None = None
    finished = False
    try:
        # members are grouped into samples as webdataset.tariterators.group_by_keys does (key and
        # lower-cased suffix from base_plus_ext, a repeated suffix is an error, a sample with a
        # truthy __bad__ is left out), fused with the tar parser to save a dict and two generator
        # steps per member
        try:
            for fname, data in _tar_members(stream):
                match = _KEY_SUFFIX.match(fname)
                if match is None:
                    continue
                prefix, suffix = match.group(1), match.group(2).lower()
                if current is None or prefix != current[K.KEY]:
                    if current is not None and not current.get("__bad__", False):
                        yield current
                    current = {K.KEY: prefix, K.URL: source}
                if suffix in current:
                    raise ValueError(f"{fname}: duplicate file name in tar file {suffix} {current.keys()}")
                current[suffix] = data
        except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as e:
            errors.append(e)
        if current is not None and not current.get("__bad__", False):
            if errors:  # the sample being assembled when the damage was found
                dropped = current[K.KEY]
            else:
                yield current
        finished = True
    finally:
        try:
            stream.close()
        except Exception as e:  # a pipe command's non-zero exit status shows up on close
            if finished and not errors:
                errors.append(e)
    if errors:
        e = errors[0]
        detail = f"{type(e).__name__}: {e}"
        if dropped is not None:
            detail += f" (dropped the incomplete sample {dropped})"
        tally.add(BAD_SHARD, url, dropped, detail)


# =========================================================================== sources
@dataclass(frozen=True)
class Source:
    """One data source of a mixture.

    Args:
        urls: shard spec(s): brace patterns, local paths/globs/folders, ``hf://datasets/org/name/path.tar``,
            ``http(s)://``, and ``pipe:cmd`` when the loader allows it (see :func:`expand_urls`).
        weight: relative probability of drawing the next raw sample from this source.
        resampled: draw shards with replacement (an endless stream without epochs).
        name: label stored in each sample's ``__source__`` (default ``source<i>``).

    """

    urls: str | os.PathLike | list[str]
    weight: float = 1.0
    resampled: bool = False
    name: str | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.weight, int | float) and math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(
                f"Source weight must be a finite number > 0; got {self.weight!r} for {self.urls!r}"
            )


def _read_shard(url: str, tally: CorruptTally, seen: CorruptTally) -> Iterator[dict[str, Any]]:
    """:func:`iter_shard`, recording the shard's corrupt events in ``tally`` and in ``seen`` (per source)."""
    shard_tally = CorruptTally()
    yield from iter_shard(url, shard_tally)
    tally.absorb(shard_tally)
    seen.absorb(shard_tally)


def _starved(name: str, where: str, seen: CorruptTally, tried: str) -> DomainClipError:
    """The error for a source that gave no samples: corrupt counts by reason, or empty shards."""
    if seen.corrupt:
        header = (
            f"source {name!r} gave {where}no samples in {tried}: its shards are damaged or unreadable "
            f"({seen.corrupt} corrupt). Counts by reason, with an example shard:"
        )
        return TooManyCorruptSamplesError(seen.report(header), seen.counts)
    return InputError(f"source {name!r} gave {where}no samples in {tried}: its shards hold no samples")


def _interleaved(shards: Iterator[Iterator[dict[str, Any]]], k: int) -> Iterator[dict[str, Any]]:
    """Read up to ``k`` shard streams at once, one sample from each in turn (round robin).

    ``shards`` yields lazy per-shard sample iterators (nothing is opened before their first
    ``next``); a shard that ends is replaced by the next one at its place in the rotation, read
    from on its next turn (so shards that end at once, e.g. damaged ones, end in sequence order),
    so at most ``k`` shards are open at any time and memory stays that of ``k`` open streams. With
    ``k == 1`` this is the shards read one after the other.
    """
    if k <= 1:
        for shard in shards:
            yield from shard
        return
    open_: list[Iterator[dict[str, Any]]] = list(itertools.islice(shards, k))
    i = 0
    while open_:
        i %= len(open_)
        try:
            sample = next(open_[i])
        except StopIteration:
            replacement = next(shards, None)
            if replacement is None:
                del open_[i]
            else:  # takes the ended shard's place and is first read on its next turn
                open_[i] = replacement
                i += 1
            continue
        i += 1
        yield sample


def _source_stream(
    index: int,
    name: str,
    source: Source,
    shards: list[str],
    *,
    seed: int,
    rank: int,
    logical: int,
    slot: int,
    slots: int,
    epochs: int | None,
    shuffle_shards: bool,
    interleave: int,
    tally: CorruptTally,
) -> Iterator[dict[str, Any]]:
    """Raw samples of one source for one slot (endless unless ``epochs`` is set).

    The slot's shards of every epoch (or the resampled draws) form one sequence, read
    ``interleave`` at a time by :func:`_interleaved`, across epoch boundaries, so the last shards of
    an epoch are mixed with the first of the next rather than read alone.

    Raises:
        TooManyCorruptSamplesError: an endless stream found only damaged shards in a full pass
            (or in many resampled draws); the message names the source and counts by reason.
        InputError: the same, with shards that are valid but hold no samples.

    """
    where = f"slot {slot} of {slots} (rank {rank}, logical worker {logical}) " if slots > 1 else ""
    seen = CorruptTally()  # this source's shard events, for the message

    def tag(sample: dict[str, Any], epoch: int) -> dict[str, Any]:
        sample[EPOCH] = epoch
        sample[SOURCE] = name
        return sample

    if source.resampled:
        rng = derive_rng(seed, "resample", index, rank, logical)
        limit = max(100, 2 * len(shards))
        empty_draws = 0  # shards drawn since any shard last gave a sample

        def drawn(url: str, draw: int) -> Iterator[dict[str, Any]]:
            nonlocal empty_draws
            produced = 0
            for sample in _read_shard(url, tally, seen):
                produced += 1
                empty_draws = 0
                yield tag(sample, draw)
            if not produced:
                empty_draws += 1
                if empty_draws >= limit:
                    tried = f"{empty_draws} shard draws in a row from its {len(shards)} shard(s)"
                    raise _starved(name, where, seen, tried)

        def draws() -> Iterator[Iterator[dict[str, Any]]]:
            for draw in itertools.count():
                yield drawn(shards[rng.randrange(len(shards))], draw)

        yield from _interleaved(draws(), interleave)
        return

    def epoch_order(epoch: int) -> list[str]:
        order = list(shards)
        if shuffle_shards:
            derive_rng(seed, "epoch", index, epoch).shuffle(order)
        return order

    # per epoch: [shards not finished yet, samples this slot kept]; an endless stream whose epoch
    # ends with nothing kept is starved (each epoch's entry is dropped when its last shard ends)
    passes: dict[int, list[int]] = {}
    shared_read = len(shards) < slots  # every slot reads every shard and keeps every slots-th sample
    position = 0  # shared_read: samples of the one sequence every slot reads

    def finished(epoch: int) -> None:
        left_kept = passes[epoch]
        left_kept[0] -= 1
        if left_kept[0] == 0:
            del passes[epoch]
            if left_kept[1] == 0 and epochs is None:
                raise _starved(name, where, seen, f"a full pass over its {len(shards)} shard(s)")

    def own_shard(url: str, epoch: int) -> Iterator[dict[str, Any]]:
        for sample in _read_shard(url, tally, seen):
            passes[epoch][1] += 1
            yield tag(sample, epoch)
        finished(epoch)

    def shared_shard(url: str, epoch: int) -> Iterator[dict[str, Any]]:
        # a damaged shard is counted once, by the slot that would have received the next sample
        shard_tally = CorruptTally()
        for sample in iter_shard(url, shard_tally):
            yield tag(sample, epoch)
        seen.absorb(shard_tally)
        if position % slots == slot:
            tally.absorb(shard_tally)
        finished(epoch)

    def sequence() -> Iterator[Iterator[dict[str, Any]]]:
        epoch = 0
        while epochs is None or epoch < epochs:
            mine = epoch_order(epoch) if shared_read else epoch_order(epoch)[slot::slots]
            passes[epoch] = [len(mine), 0]
            for url in mine:
                yield (shared_shard if shared_read else own_shard)(url, epoch)
            epoch += 1

    stream = _interleaved(sequence(), interleave)
    if not shared_read:
        yield from stream
        return
    for sample in stream:
        # every slot reads every sample: an epoch is starved only when its shards hold none. (Counting
        # the samples this slot keeps would not do: with shard streams of several epochs interleaved,
        # a slot may keep samples of alternate epochs only, and still sees every sample.)
        passes[sample[EPOCH]][1] += 1
        if position % slots == slot:
            position += 1
            yield sample
        else:
            position += 1


def _mixed(
    streams: list[Iterator[dict[str, Any]]], weights: list[float], rng: random.Random
) -> Iterator[dict]:
    """Per raw sample, draw a source with probability proportional to its weight."""
    if len(streams) == 1:
        yield from streams[0]
        return
    active = list(range(len(streams)))
    while active:
        total = sum(weights[i] for i in active)
        x = rng.random() * total
        chosen = active[-1]
        for i in active:
            x -= weights[i]
            if x < 0:
                chosen = i
                break
        try:
            yield next(streams[chosen])
        except StopIteration:
            active.remove(chosen)


def _shuffled(stream: Iterator[dict[str, Any]], size: int, rng: random.Random) -> Iterator[dict]:
    """Seeded shuffle buffer over raw samples (holds at most ``size`` of them)."""
    if size <= 1:
        yield from stream
        return
    buffer: list[dict[str, Any]] = []
    for sample in stream:
        buffer.append(sample)
        if len(buffer) < size:
            continue
        k = rng.randrange(len(buffer))
        buffer[k], buffer[-1] = buffer[-1], buffer[k]
        yield buffer.pop()
    while buffer:
        k = rng.randrange(len(buffer))
        buffer[k], buffer[-1] = buffer[-1], buffer[k]
        yield buffer.pop()


def _seed_globals(seed_value: int) -> None:
    """Seed the Python, numpy and torch (CPU) global RNGs, which augmentations draw from."""
    random.seed(seed_value)
    np.random.seed(seed_value % (1 << 32))
    torch.default_generator.manual_seed(seed_value)


class _GlobalRngGuard:
    """Keeps the caller's global RNG states intact while decoding runs in the main process.

    Decoding reseeds the global RNGs per sample; in the main process (``num_workers=0``) the
    states are saved when the data generator resumes and restored before it yields, so the
    training loop's own random numbers do not depend on the data. Worker processes skip this.
    """

    def __init__(self, active: bool):
        self.active = active
        self._states: tuple[Any, Any, Any] | None = None

    def save(self) -> None:
        if self.active:
            self._states = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())

    def restore(self) -> None:
        if self.active and self._states is not None:
            py_state, np_state, torch_state = self._states
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.random.set_rng_state(torch_state)
            self._states = None


# =========================================================================== dataset
class StreamingDataset(IterableDataset):
    """An ``IterableDataset`` of collated batches for one rank; see the module docstring.

    Normally built by :func:`build_loader` and iterated through :class:`StreamingLoader`, which
    owns the ``DataLoader`` and the position bookkeeping. Each item is a collated batch (a dict)
    that also carries the reserved keys :data:`POSITION` and :data:`CORRUPT`.

    Args: see :func:`build_loader`.
    """

    def __init__(
        self,
        sources: Source | Sequence[Source],
        decode: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        batch_size: int,
        num_workers: int = 0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle_buffer: int = 1000,
        collate: Callable[[list[dict[str, Any]]], Any] | None = None,
        epochs: int | None = None,
        drop_last: bool | None = None,
        max_corrupt_fraction: float = 0.01,
        corrupt_check_after: int = 100,
        split: str = "shard",
        allow_pipe: bool = False,
        shard_interleave: int = 1,
    ):
        super().__init__()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
        self.split = split
        sources = [sources] if isinstance(sources, Source) else list(sources)
        if not sources:
            raise ValueError("build_loader needs at least one Source")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0; got {num_workers}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size; got rank={rank}, world_size={world_size}")
        if epochs is not None and epochs < 1:
            raise ValueError(f"epochs must be None (endless) or >= 1; got {epochs}")
        if epochs is not None and any(s.resampled for s in sources):
            raise ValueError("resampled sources are endless; use epochs=None with them")
        if not isinstance(shard_interleave, int) or shard_interleave < 1:
            raise ValueError(f"shard_interleave must be an int >= 1; got {shard_interleave!r}")
        if not 0.0 <= max_corrupt_fraction:
            raise ValueError(f"max_corrupt_fraction must be >= 0; got {max_corrupt_fraction}")
        self.sources = sources
        self.names = [s.name or f"source{i}" for i, s in enumerate(sources)]
        self.allow_pipe = allow_pipe
        self.shards = [expand_urls(s.urls, allow_pipe=allow_pipe) for s in sources]
        self.decode = decode
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle_buffer = shuffle_buffer
        self.shard_interleave = shard_interleave
        self.collate = collate or collate_samples
        self.epochs = epochs
        self.drop_last = (epochs is None) if drop_last is None else drop_last
        self.max_corrupt_fraction = max_corrupt_fraction
        self.corrupt_check_after = corrupt_check_after
        self.rotation = 0
        self.skip = [0] * self.logical_workers
        self._fingerprint: int | None = None
        self._seed_rng = random.Random()  # reseeded per sample by _decode_seed

    @property
    def logical_workers(self) -> int:
        """``W = max(1, num_workers)``."""
        return max(1, self.num_workers)

    @property
    def interleave(self) -> int:
        """Shards each logical worker reads at once per source (1 when shuffling is off)."""
        return self.shard_interleave if self.shuffle_buffer > 1 else 1

    @property
    def finite(self) -> bool:
        """Whether the stream ends (``epochs`` set)."""
        return self.epochs is not None

    def fingerprint(self) -> int:
        """Return a checksum of the arguments that determine the stream (stored in the loader state)."""
        if self._fingerprint is not None:
            return self._fingerprint
        parts = (
            self.batch_size,
            self.num_workers,
            self.seed,
            self.rank,
            self.world_size,
            self.shuffle_buffer,
            self.epochs,
            self.split,
            [(n, s.weight, s.resampled, tuple(u)) for n, s, u in zip(self.names, self.sources, self.shards)],
        )
        if self.interleave > 1:  # streams read one shard at a time keep the checksum they had before the option
            parts += (("shard_interleave", self.interleave),)
        self._fingerprint = zlib.crc32(repr(parts).encode("utf-8"))
        return self._fingerprint

    def set_position(self, rotation: int, skip: Sequence[int]) -> None:
        """Start the next iteration at ``rotation``; logical worker r skips ``skip[r]`` raw samples."""
        if len(skip) != self.logical_workers:
            raise ValueError(f"need {self.logical_workers} skip counts, got {len(skip)}")
        self.rotation = int(rotation) % self.logical_workers
        self.skip = [int(s) for s in skip]

    # ------------------------------------------------------------------ streams
    def raw_stream(self, logical: int, tally: CorruptTally) -> Iterator[dict[str, Any]]:
        """Return the post-shuffle raw sample stream of one logical worker (what positions count)."""
        W = self.logical_workers
        # "sample" split: every rank builds the one-process stream and keeps every world_size-th
        # sample of it after shuffling, so the union of the ranks' batches k is batch k of a
        # one-process run with the same global batch (at the cost of reading everything everywhere)
        rank, world = (0, 1) if self.split == "sample" else (self.rank, self.world_size)
        slots = world * W
        slot = rank * W + logical
        streams = [
            _source_stream(
                i,
                self.names[i],
                source,
                self.shards[i],
                seed=self.seed,
                rank=rank,
                logical=logical,
                slot=slot,
                slots=slots,
                epochs=self.epochs,
                shuffle_shards=self.shuffle_buffer > 1,
                interleave=self.interleave,
                tally=tally,
            )
            for i, source in enumerate(self.sources)
        ]
        mixed = _mixed(streams, [s.weight for s in self.sources], derive_rng(self.seed, "mix", rank, logical))
        stream = _shuffled(mixed, self.shuffle_buffer, derive_rng(self.seed, "shuffle", rank, logical))
        if self.split == "sample" and self.world_size > 1:
            stream = itertools.islice(stream, self.rank, None, self.world_size)
        return stream

    def _decode_seed(self, raw: Mapping[str, Any]) -> int:
        """``derive_rng(seed, "decode", source, url, key, epoch).getrandbits(63)``, with one reused generator.

        The same digest and the same Mersenne Twister seeding as :func:`derive_rng`, without
        building a ``random.Random`` per sample.
        """
        parts = (self.seed, "decode", raw.get(SOURCE), raw.get(K.URL), raw.get(K.KEY), raw.get(EPOCH))
        digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
        self._seed_rng.seed(int.from_bytes(digest, "little"))
        return self._seed_rng.getrandbits(63)

    def _emit(self, batch: list[dict[str, Any]], logical: int, taken: int, tally: CorruptTally) -> dict:
        collated = self.collate(batch)
        if not isinstance(collated, dict):
            raise TypeError(
                f"collate must return a dict (the loader adds {POSITION}/{CORRUPT} to it); "
                f"got {type(collated).__name__}"
            )
        collated[POSITION] = [logical, taken]
        collated[CORRUPT] = tally.take_delta()
        return collated

    def iter_logical(self, logical: int, skip: int = 0) -> Iterator[dict[str, Any]]:
        """Batches of logical worker ``logical``, after skipping ``skip`` raw samples undecoded."""
        tally = CorruptTally()
        stream = self.raw_stream(logical, tally)
        taken = 0
        for _ in range(skip):
            try:
                next(stream)
            except StopIteration:
                break
            taken += 1
        tally.discard_delta()  # events while skipping were counted before the state was saved
        tally.counts.clear()
        tally.examples.clear()
        batch: list[dict[str, Any]] = []
        corrupt_run = 0
        starving_limit = max(self.corrupt_check_after, 10 * self.batch_size)
        guard = _GlobalRngGuard(active=get_worker_info() is None)
        guard.save()
        try:
            for raw in stream:
                taken += 1
                try:
                    _seed_globals(self._decode_seed(raw))
                    sample = self.decode(raw)
                except CorruptSampleError as e:
                    tally.add(e.reason, raw.get(K.URL), raw.get(K.KEY), e.detail)
                    corrupt_run += 1
                    if corrupt_run >= starving_limit and self.max_corrupt_fraction < 1.0:
                        raise tally.error(self.max_corrupt_fraction) from None
                    continue
                except Exception as e:
                    e.add_note(f"while decoding sample {raw.get(K.KEY)!r} of {raw.get(K.URL)}")
                    raise
                corrupt_run = 0
                tally.add_good()
                batch.append(sample)
                if len(batch) == self.batch_size:
                    collated = self._emit(batch, logical, taken, tally)
                    batch = []
                    guard.restore()
                    yield collated
                    guard.save()
            if batch and not self.drop_last:
                collated = self._emit(batch, logical, taken, tally)
                guard.restore()
                yield collated
        finally:
            guard.restore()
        yield {_FINAL: True, POSITION: [logical, taken], CORRUPT: tally.take_delta()}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        physical = info.id if info is not None else 0
        if info is not None and info.num_workers != self.logical_workers:
            raise RuntimeError(
                f"StreamingDataset was built for num_workers={self.num_workers} but runs in a DataLoader "
                f"with {info.num_workers} workers; build it with the DataLoader's worker count"
            )
        logical = (physical + self.rotation) % self.logical_workers
        if info is None:
            yield from self.iter_logical(logical, self.skip[logical])
            return
        try:
            yield from self.iter_logical(logical, self.skip[logical])
        except DomainClipError as e:
            # torch re-raises a worker's exception as type(e)(message + the worker's traceback);
            # a user error travels as an item instead and the loader raises it as it was
            if not _survives_pickle(e):
                raise
            yield {_ERROR: e}


# =========================================================================== loader
def _identity(batch: Any) -> Any:
    return batch


def _survives_pickle(error: BaseException) -> bool:
    """Whether ``error`` can be sent from a worker process and rebuilt as the same type."""
    try:
        return type(pickle.loads(pickle.dumps(error))) is type(error)
    except Exception:  # any failure to rebuild it: let torch send it its own way
        return False


class StreamingLoader:
    """Iterates batches from a :class:`StreamingDataset` through a torch ``DataLoader``.

    Keeps the exact position (batches yielded, raw samples taken per logical worker) and the
    corrupt-sample counts; :meth:`state_dict` / :meth:`load_state_dict` save and restore them.
    Every ``iter()`` continues from the current position; a finite stream that ran to its end
    starts over on the next ``iter()``.

    Args:
        dataset: the dataset (its ``num_workers`` is the DataLoader's).
        pin_memory, prefetch_factor, multiprocessing_context, timeout: passed to ``DataLoader``.

    """

    def __init__(
        self,
        dataset: StreamingDataset,
        *,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
        multiprocessing_context: str | None = None,
        timeout: float = 0,
    ):
        self.dataset = dataset
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.multiprocessing_context = multiprocessing_context
        self.timeout = timeout
        self._batches = 0
        self._positions = [0] * dataset.logical_workers
        self._samples_seen = 0
        self._tally = CorruptTally()

    # ------------------------------------------------------------------ iteration
    def _dataloader(self) -> DataLoader:
        kwargs: dict[str, Any] = {}
        if self.dataset.num_workers > 0:
            kwargs["prefetch_factor"] = self.prefetch_factor
            kwargs["multiprocessing_context"] = self.multiprocessing_context
            kwargs["timeout"] = self.timeout
        # a private generator: DataLoader draws its workers' base seed from it instead of the
        # global RNG, so starting an iterator (e.g. after a resume) leaves the training RNG alone
        generator = torch.Generator().manual_seed(self.dataset.seed)
        return DataLoader(
            self.dataset,
            batch_size=None,
            generator=generator,
            num_workers=self.dataset.num_workers,
            collate_fn=_identity,
            pin_memory=self.pin_memory,
            persistent_workers=False,
            **kwargs,
        )

    def __iter__(self) -> Iterator[Any]:
        W = self.dataset.logical_workers
        self.dataset.set_position(self._batches % W, self._positions)
        for item in self._dataloader():
            if _ERROR in item:
                raise item[_ERROR]
            logical, taken = (int(v) for v in item.pop(POSITION))
            delta = item.pop(CORRUPT)
            self._samples_seen += taken - self._positions[logical]
            self._positions[logical] = taken
            self._tally.merge(delta)
            if item.pop(_FINAL, False):
                continue
            self._batches += 1
            if self._tally.exceeds(self.dataset.max_corrupt_fraction, self.dataset.corrupt_check_after):
                raise self._tally.error(self.dataset.max_corrupt_fraction)
            yield item
        # only a finite stream gets here
        if self._tally.exceeds(self.dataset.max_corrupt_fraction, 1):
            raise self._tally.error(self.dataset.max_corrupt_fraction)
        self._batches = 0
        self._positions = [0] * W

    # ------------------------------------------------------------------ accounting
    @property
    def batches(self) -> int:
        """Batches yielded since the start of the stream (or of the current finite pass)."""
        return self._batches

    @property
    def samples_seen(self) -> int:
        """Raw samples taken from the post-shuffle streams (good and corrupt), over the loader's life."""
        return self._samples_seen

    @property
    def good_samples(self) -> int:
        """Samples decoded successfully."""
        return self._tally.good

    def corrupt_counts(self) -> dict[str, int]:
        """Corrupt events by reason (``bad_image``, ``missing_key:text``, ``bad_shard``, ...)."""
        return dict(sorted(self._tally.counts.items()))

    def corrupt_report(self) -> str:
        """Readable summary of good/corrupt counts by reason, with an example URL/key per reason."""
        return self._tally.report()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Return the position after the last yielded batch and the counts so far (ints only)."""
        return {
            "version": _STATE_VERSION,
            "fingerprint": self.dataset.fingerprint(),
            "num_workers": self.dataset.logical_workers,
            "batches": self._batches,
            "positions": list(self._positions),
            "samples_seen": self._samples_seen,
            "good": self._tally.good,
            "corrupt": dict(self._tally.counts),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict`) on the next ``iter()``.

        Raises:
            ValueError: the state is malformed or was saved with a different number of workers.

        """
        try:
            version = int(state["version"])
            positions = [int(p) for p in state["positions"]]
            batches = int(state["batches"])
            workers = int(state["num_workers"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a StreamingLoader state: {e!r}") from None
        if version != _STATE_VERSION:
            raise ValueError(
                f"StreamingLoader state version {version} is not supported (expected {_STATE_VERSION})"
            )
        W = self.dataset.logical_workers
        if workers != W or len(positions) != W:
            raise ValueError(
                f"the state was saved with num_workers={workers} but this loader has "
                f"{self.dataset.num_workers}; an exact resume needs the same number of workers"
            )
        if int(state.get("fingerprint", self.dataset.fingerprint())) != self.dataset.fingerprint():
            warnings.warn(
                "resuming a data stream with different arguments (sources, seed, batch size, rank or "
                "world size); the continued stream is not the one the state was saved from",
                stacklevel=2,
            )
        self._batches = batches
        self._positions = positions
        self._samples_seen = int(state.get("samples_seen", sum(positions)))
        self._tally = CorruptTally(
            good=int(state.get("good", 0)),
            counts={str(k): int(v) for k, v in dict(state.get("corrupt", {})).items()},
        )


def build_loader(
    sources: Source | Sequence[Source],
    decode: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    batch_size: int,
    num_workers: int = 0,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    shuffle_buffer: int = 1000,
    collate: Callable[[list[dict[str, Any]]], Any] | None = None,
    max_corrupt_fraction: float = 0.01,
    drop_last: bool | None = None,
    epochs: int | None = None,
    corrupt_check_after: int = 100,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
    multiprocessing_context: str | None = None,
    split: str = "shard",
    allow_pipe: bool = False,
    shard_interleave: int = 1,
) -> StreamingLoader:
    """Build a deterministic, exactly resumable streaming loader over WebDataset shards.

    Args:
        sources: one or several :class:`Source`; several are mixed per raw sample by weight.
        decode: raw sample (``__key__``, ``__url__``, ``__epoch__``, ``__source__``, suffix ->
            bytes) -> decoded sample dict, e.g. :class:`~domainclip.core.data.decode.SampleDecoder`;
            raises :class:`~domainclip.core.data.corrupt.CorruptSampleError` for samples to skip.
            It runs with Python/numpy/torch global RNGs seeded from (seed, source, url, key,
            epoch), so random augmentations are reproducible and survive a resume; it must not
            depend on other state.
        batch_size: decoded samples per batch.
        num_workers: DataLoader worker processes (0: in the main process).
        seed: seed of shard order, mixing, shuffling and decoding.
        rank: this process's rank; each rank sees a disjoint part of every non-resampled epoch.
        world_size: number of ranks.
        shuffle_buffer: raw samples held by the shuffle buffer; 0 or 1 disables shuffling of
            samples, of the shard order and shard interleaving.
        shard_interleave: shards each logical worker reads at once per source, one sample from
            each in turn, before the shuffle buffer (recipe ``data.shard_interleave``). Shards
            written in topic order (one cluster after another) then give batches of several
            topics even when a shard holds more samples than the buffer; memory grows by ``k``
            open shard streams (for URLs, ``k`` downloads in flight), never by shard size.
            ``1`` (the default here, which keeps the streams and saved positions of earlier
            versions) reads one shard after the other; recipes default to 8.
        collate: list of decoded samples -> batch dict (default
            :func:`~domainclip.core.data.decode.collate_samples`).
        max_corrupt_fraction: raise :class:`~domainclip.core.data.corrupt.TooManyCorruptSamplesError`
            when corrupt / (corrupt + good) passes this (checked once ``corrupt_check_after`` samples
            were seen, and at the end of a finite stream).
        drop_last: drop a finite stream's last partial batch per worker (default: keep it).
        epochs: ``None`` for an endless stream (training); ``1`` for one pass (evaluation).
        corrupt_check_after: samples seen before the corrupt share is checked.
        split: ``"shard"`` (each rank reads its own shards) or ``"sample"`` (every rank reads the
            one-process stream and keeps every world_size-th sample after shuffling).
        pin_memory: passed to the torch ``DataLoader``.
        prefetch_factor: passed to the torch ``DataLoader`` (batches prefetched per worker).
        multiprocessing_context: passed to the torch ``DataLoader`` (``"fork"``, ``"spawn"``).
        allow_pipe: let sources list ``pipe:cmd`` URLs, which run a shell command per shard
            (recipe ``data.allow_pipe``); without it such a URL raises
            :class:`~domainclip.core.errors.InputError` here, before anything is read.

    Returns:
        A :class:`StreamingLoader`.

    Raises:
        InputError: a ``pipe:`` URL without ``allow_pipe`` (or under ``WDS_SECURE=1``).
        InputNotFoundError: a local shard, glob or folder matches nothing.

    """
    dataset = StreamingDataset(
        sources,
        decode,
        batch_size=batch_size,
        num_workers=num_workers,
        seed=seed,
        rank=rank,
        world_size=world_size,
        shuffle_buffer=shuffle_buffer,
        collate=collate,
        epochs=epochs,
        drop_last=drop_last,
        max_corrupt_fraction=max_corrupt_fraction,
        corrupt_check_after=corrupt_check_after,
        split=split,
        allow_pipe=allow_pipe,
        shard_interleave=shard_interleave,
    )
    return StreamingLoader(
        dataset,
        pin_memory=pin_memory,
        prefetch_factor=prefetch_factor,
        multiprocessing_context=multiprocessing_context,
    )
