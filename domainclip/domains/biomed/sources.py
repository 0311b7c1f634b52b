"""Articles from local files: loose ``.nxml`` folders and legacy PMC OA packages (``.tar.gz``, ``.tgz``, ``.zip``).

An article comes out of a source as an :class:`ArticleRecord` (its XML unparsed and its media files
in memory) or, when it cannot be read, as a :class:`SkippedArticle` with a reason counted by the
batch that reads it. :func:`iter_local_articles` reads

* **loose articles**: a ``.nxml`` file and the files beside it (``PMC1234567/PMC1234567.nxml`` plus
  ``PMC1234567/pone.0046493.g001.jpg``, ...). The record's key is the folder's name when it is a
  PMC id (``PMC`` and digits), else the file's name without ``.nxml``;
* **packages** in the legacy PMC OA layout: one top folder ``PMC<id>/`` holding the ``.nxml`` and
  the media, as ``.tar.gz``/``.tgz`` or ``.zip``. The key is the package's name without its
  suffix. Members are read into memory with :mod:`tarfile` / :mod:`zipfile`, never extracted to
  disk. A package holding a member whose name climbs out (``..``) or is absolute, or a link or
  device, is refused whole (``unsafe_archive``); a truncated or corrupt one is ``bad_archive``;
  one without an ``.nxml`` is ``no_xml``.

Only the media files the XML names are read (any ``href="..."`` value, matched with and without
the file extension, which PMC's XML leaves out): a package's PDFs and supplementary files stay
unread. :func:`resolve_media` finds a figure's file among them.

The PMC Cloud Service source (:mod:`domainclip.domains.biomed.pmc_cloud`) yields the same records.
"""

from __future__ import annotations

import os
import re
import tarfile
import zipfile
import zlib
from collections.abc import Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "ARTICLE_SUFFIXES",
    "BAD_ARCHIVE",
    "MAX_MEMBER_BYTES",
    "MEDIA_PREFERENCE",
    "NO_XML",
    "TOO_LARGE",
    "UNREADABLE",
    "UNSAFE_ARCHIVE",
    "ArticleRecord",
    "SkippedArticle",
    "article_key",
    "find_local_articles",
    "iter_local_articles",
    "read_article",
    "referenced_names",
    "resolve_media",
]

#: The files :func:`find_local_articles` looks for in a folder.
ARTICLE_SUFFIXES = (".nxml", ".tar.gz", ".tgz", ".zip")
#: Skip reasons: a package that cannot be read (truncated, corrupt, not an archive); one with a member
#: that would land outside its folder, or a link or device; no ``.nxml`` (or several) in it; a file
#: that cannot be read; a member larger than :data:`MAX_MEMBER_BYTES`.
BAD_ARCHIVE, UNSAFE_ARCHIVE, NO_XML, UNREADABLE, TOO_LARGE = (
    "bad_archive", "unsafe_archive", "no_xml", "unreadable", "too_large")
#: The largest member read into memory (an XML or a figure); a package with a larger wanted member is skipped.
MAX_MEMBER_BYTES = 256 << 20
#: When a figure's href has no extension and several files match it, the first suffix here wins.
MEDIA_PREFERENCE = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif")
_PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
_HREF = re.compile(rb"""href\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_PMC_FOLDER = re.compile(r"PMC\d+")


@dataclass
class ArticleRecord:
    """One article as read from its source, not yet parsed.

    Args:
        key: its stable id in its source (``"PMC1234567.1"`` in the PMC Cloud: id and version; the
            package or folder name for local files); progress files and ``skip`` use it.
        origin: where it came from (a path or URL), for messages and the report.
        xml: the JATS XML, unparsed.
        media: the article's media files by file name (``"pone.0046493.g001.jpg"``).
        metadata: what the source knows besides the XML (the PMC Cloud JSON record: licence, version, pmid).
    """

    key: str
    origin: str
    xml: bytes
    media: dict[str, bytes]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SkippedArticle:
    """An article a source could not give, and why.

    Args:
        key: its id in its source (as :attr:`ArticleRecord.key`).
        origin: where it was to come from.
        reason: a short code counted in the summary (``"bad_archive"``, ``"no_xml"``, ``"network"``, ...).
        detail: one line for the report.
    """

    key: str
    origin: str
    reason: str
    detail: str


# =========================================================================== names
def _package_stem(name: str) -> str | None:
    lowered = name.lower()
    for suffix in _PACKAGE_SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return None


def article_key(path: Path) -> str:
    """The record key of a local article: a package's name without its suffix, a loose ``.nxml``'s PMC folder or stem.

    Args:
        path: the ``.nxml`` file or the package.
    """
    stem = _package_stem(path.name)
    if stem is not None:
        return stem
    return path.parent.name if _PMC_FOLDER.fullmatch(path.parent.name) else path.stem


def referenced_names(xml: bytes) -> set[str]:
    """The base names of every ``href="..."`` value in the XML (found by a pattern, not by parsing it)."""
    names = set()
    for match in _HREF.finditer(xml):
        value = (match.group(1) or match.group(2) or b"").decode("utf-8", errors="replace").strip()
        if value and "://" not in value:
            names.add(PurePosixPath(value).name)
    return names


def _wanted(name: str, references: set[str]) -> bool:
    """Whether a media file is named by the XML: by its name, or by its name without the extension."""
    if name in references:
        return True
    stem, dot, _ = name.rpartition(".")
    return bool(dot) and stem in references


def resolve_media(href: str, media: Mapping[str, bytes]) -> str | None:
    """The name in ``media`` of the file a ``<graphic xlink:href>`` names.

    The href may hold a folder (only its last part counts) and may omit the extension (PMC's XML
    does); among several files with the same stem, the suffix first in :data:`MEDIA_PREFERENCE` wins.

    Args:
        href: the graphic's href.
        media: the article's media files by name.

    Returns:
        The file's name, or ``None`` when none matches.
    """
    name = PurePosixPath(href.strip()).name
    if name in media:
        return name
    candidates = [m for m in media if m.rpartition(".")[0] == name]
    if not candidates:
        lowered = name.lower()  # case differs between XML and file (rare): last resort
        candidates = [m for m in media if m.lower() == lowered or m.rpartition(".")[0].lower() == lowered]
    if not candidates:
        return None

    def rank(candidate: str) -> tuple[int, str]:
        suffix = "." + candidate.rpartition(".")[2].lower()
        return (MEDIA_PREFERENCE.index(suffix) if suffix in MEDIA_PREFERENCE else len(MEDIA_PREFERENCE), candidate)

    return min(candidates, key=rank)


# =========================================================================== finding inputs
def find_local_articles(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The articles under ``paths``: ``.nxml`` files and packages; folders are searched, glob patterns expanded.

    Args:
        paths: files, folders or glob patterns.

    Returns:
        Each article file once, in the order given (sorted within a folder or pattern).

    Raises:
        InputNotFoundError: a path does not exist, or a pattern matches nothing.
        InputError: nothing was found, or two articles have the same key.
    """
    from domainclip.core.io import find_inputs

    def key(path: Path) -> str:
        return article_key(path)

    found = find_inputs(list(paths), (".nxml", ".gz", ".tgz", ".zip"), what="article", key=key)
    articles = [p for p in found if p.suffix.lower() != ".gz" or p.name.lower().endswith(".tar.gz")]
    if not articles:
        from domainclip.core.errors import InputError

        raise InputError(f"no articles ({', '.join(ARTICLE_SUFFIXES)}) under {', '.join(map(str, paths))}")
    return articles


# =========================================================================== reading
class _Refused(Exception):
    """A package that cannot be used, with its skip reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _check_member(package: Path, name: str, is_link: bool, is_special: bool) -> None:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise _Refused(UNSAFE_ARCHIVE, f"{package}: member {name!r} would land outside the package's folder")
    if is_link:
        raise _Refused(UNSAFE_ARCHIVE, f"{package}: member {name!r} is a link")
    if is_special:
        raise _Refused(UNSAFE_ARCHIVE, f"{package}: member {name!r} is a device or pipe")


def _check_size(package: Path, name: str, size: int) -> None:
    if size > MAX_MEMBER_BYTES:
        raise _Refused(TOO_LARGE, f"{package}: member {name!r} holds {size} bytes, over the "
                                  f"{MAX_MEMBER_BYTES >> 20} MiB read into memory")


def _choose_xml(package: Path, xml_members: list[str]) -> str:
    if not xml_members:
        raise _Refused(NO_XML, f"{package}: no .nxml file in the package")
    if len(xml_members) > 1:
        raise _Refused(NO_XML, f"{package}: {len(xml_members)} .nxml files in one package "
                               f"({', '.join(sorted(xml_members)[:3])}); a package holds one article")
    return xml_members[0]


def _read_tar(path: Path) -> tuple[str, bytes, dict[str, bytes]]:
    """The XML member's name, its bytes and the media files beside it that it names, read in one pass."""
    files: dict[str, bytes] = {}
    with tarfile.open(path, mode="r:*") as tar:
        for member in tar:
            _check_member(path, member.name, member.issym() or member.islnk(),
                          not (member.isfile() or member.isdir()))
            if not member.isfile():
                continue
            name = member.name
            lowered = name.lower()
            if lowered.endswith((".nxml", *MEDIA_PREFERENCE)) or "." not in PurePosixPath(name).name:
                _check_size(path, name, member.size)
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                if len(data) != member.size:
                    raise _Refused(BAD_ARCHIVE, f"{path}: member {name!r} is cut short")
                files[name] = data
    return _split(path, files)


def _read_zip(path: Path) -> tuple[str, bytes, dict[str, bytes]]:
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        for info in infos:
            mode = (info.external_attr >> 16) & 0o170000
            _check_member(path, info.filename, mode == 0o120000, mode not in (0, 0o100000, 0o040000))
        for info in infos:
            if info.is_dir():
                continue
            lowered = info.filename.lower()
            if lowered.endswith((".nxml", *MEDIA_PREFERENCE)):
                _check_size(path, info.filename, info.file_size)
                with archive.open(info) as handle:
                    files[info.filename] = handle.read(MAX_MEMBER_BYTES + 1)
    return _split(path, files)


def _split(path: Path, files: dict[str, bytes]) -> tuple[str, bytes, dict[str, bytes]]:
    """The package's XML and the media beside it that the XML names."""
    xml_name = _choose_xml(path, [n for n in files if n.lower().endswith(".nxml")])
    xml = files.pop(xml_name)
    folder = PurePosixPath(xml_name).parent
    references = referenced_names(xml)
    media = {}
    for name, data in files.items():
        member = PurePosixPath(name)
        if member.parent == folder and _wanted(member.name, references):
            media[member.name] = data
    return xml_name, xml, media


def _read_loose(path: Path) -> tuple[bytes, dict[str, bytes]]:
    xml = path.read_bytes()
    references = referenced_names(xml)
    media = {}
    with os.scandir(path.parent) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name != path.name and entry.is_file() and _wanted(entry.name, references):
                media[entry.name] = Path(entry.path).read_bytes()
    return xml, media


def read_article(path: Path) -> ArticleRecord | SkippedArticle:
    """Read one local article (a loose ``.nxml`` with its media, or a package) into memory.

    Args:
        path: the ``.nxml`` file or the package.

    Returns:
        The record, or why it was skipped (never raises for a damaged or hostile package).
    """
    key = article_key(path)
    origin = str(path)
    try:
        if _package_stem(path.name) is None:
            xml, media = _read_loose(path)
            return ArticleRecord(key=key, origin=origin, xml=xml, media=media)
        reader = _read_zip if path.name.lower().endswith(".zip") else _read_tar
        xml_name, xml, media = reader(path)
        return ArticleRecord(key=key, origin=f"{origin}!{xml_name}", xml=xml, media=media)
    except _Refused as e:
        return SkippedArticle(key, origin, e.reason, str(e))
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError) as e:
        detail = " ".join(str(e).split()) or type(e).__name__
        return SkippedArticle(key, origin, BAD_ARCHIVE, f"{path}: truncated or corrupt package ({detail})")
    # OSError: gzip's "Not a gzipped file"; RuntimeError: an encrypted zip member; zipfile raises
    # NotImplementedError for a compression method it has no codec for (not an unfinished function)
    except (OSError, NotImplementedError, RuntimeError) as e:
        detail = " ".join(str(e).split()) or type(e).__name__
        reason = UNREADABLE if _package_stem(path.name) is None else BAD_ARCHIVE
        return SkippedArticle(key, origin, reason, f"{path}: cannot be read ({detail})")


def iter_local_articles(
    paths: Sequence[str | Path], *, skip: Container[str] = ()
) -> Iterator[ArticleRecord | SkippedArticle]:
    """Read the local articles under ``paths``, one at a time, in order.

    Args:
        paths: ``.nxml`` files, packages (``.tar.gz``, ``.tgz``, ``.zip``), folders holding them, or glob patterns.
        skip: record keys not to read at all (the articles a resumed run has finished).

    Yields:
        A record per article, or a :class:`SkippedArticle` saying why it could not be read.

    Raises:
        InputNotFoundError: a path does not exist, or a pattern matches nothing (before anything is yielded).
        InputError: no article was found, or two articles have the same key.
    """
    for path in find_local_articles(paths):
        if article_key(path) in skip:
            continue
        yield read_article(path)
