"""Articles from the PMC Cloud Service (the PMC Open Access subset on AWS), over HTTP(S) or from a mounted bucket.

The layout read here is the one NCBI documents in "Accessing PMC Article Datasets Using Amazon Web
Services" (https://pmc.ncbi.nlm.nih.gov/tools/pmcaws/, section "Updated Structure of the PMC Article
Datasets on AWS"; the bucket's own ``README.txt`` points there). Since April 2026 the old
``oa_comm/``, ``oa_noncomm/`` bulk folders live under ``deprecated/`` and go away in August 2026;
the bucket is organised by article version::

    s3://pmc-oa-opendata/                        https://pmc-oa-opendata.s3.amazonaws.com/
    |-- PMC10009416.1/                           one prefix per article version (PMCID.version)
    |   |-- PMC10009416.1.xml                    JATS XML
    |   |-- PMC10009416.1.txt                    plain text (not read here)
    |   |-- PMC10009416.1.pdf                    article PDF, where permitted (not read here)
    |   |-- PMC10009416.1.json                   the JSON metadata record
    |   |-- NPR2-43-85-g001.jpg                  media and supplementary files, as the publisher named them
    |   `-- NPR2-43-85-s001.xlsx
    |-- metadata/
    |   `-- PMC10009416.1.json                   the same JSON record, collected under one prefix
    `-- inventory-reports/pmc-oa-opendata/metadata/
        |-- 2026-02-23T01-00Z/manifest.json      daily S3 inventory: {"files": [{"key": ".../data/<uuid>.csv.gz"}]}
        `-- data/<uuid>.csv.gz                   rows "pmc-oa-opendata","metadata/PMC8267076.1.json",<modified>,<etag>

The JSON record holds ``pmcid``, ``version``, ``pmid``, ``doi``, ``mid``, ``title``, ``citation``,
``is_pmc_openaccess``, ``is_manuscript``, ``is_historical_ocr``, ``is_retracted``, ``license_code``
(``"CC BY"``, ``"CC BY-NC"``, ..., ``"TDM"`` or null) and the S3 URLs ``xml_url``, ``text_url``,
``pdf_url`` and ``media_urls`` (a list), each carrying the object's MD5 as a ``?md5=`` parameter,
e.g. ``s3://pmc-oa-opendata/PMC12855588.1/gr1.jpg?md5=39209b...``.

What :func:`iter_pmc_cloud` does with it, and where the documentation leaves a choice:

- The record is read from the article folder (``PMCx.v/PMCx.v.json``) and, where that object is
  missing, from ``metadata/PMCx.v.json``: NCBI documents both as the same object.
- The XML comes from ``xml_url`` (or ``PMCx.v/PMCx.v.xml`` when the record lacks it); the media
  files from ``media_urls``. Only the image files (:data:`IMAGE_SUFFIXES`) that the XML names
  (an ``href``, with or without the extension, as :mod:`.sources` reads local packages) are
  fetched: the figures are what the ETL needs, and supplementary files (videos, spreadsheets,
  PDFs) can be gigabytes, which would break the bound on memory. The ``.txt`` and ``.pdf`` are
  never fetched, and an object over :data:`~.sources.MAX_MEMBER_BYTES` skips its article
  (``too_large``).
- Every object URL in a record must name a file directly in the article's own folder; it is
  fetched from the location the user gave (never from the host or bucket the record names), and
  its bytes are checked against the record's MD5 where one is given. A record pointing elsewhere
  (``..``, another folder, a ``file:`` URL) makes the article a ``bad_listing`` skip.
- Listings: a text file of articles, one a line (``PMCx.v``, ``PMCx.v/``, ``metadata/PMCx.v.json``
  as in the inventory, ``PMCx.v/PMCx.v.xml`` and the like, or a bare ``PMCx``/number as eSearch
  gives, resolved to the article's latest version by S3's ListObjectsV2 on the ``PMCx.`` prefix
  (a folder glob for a mounted bucket), as the documentation's eSearch-S3 pipeline does); an S3
  inventory CSV (plain or ``.csv.gz``); or an inventory ``manifest.json``, whose data files are
  read from the bucket (checked against the manifest's MD5) before the first article. Without a
  listing, a mounted bucket is listed by its article folders. The inventory lags the bucket by up
  to a day, so an article removed since is a ``missing_file`` skip.
- Every record is yielded whatever its ``is_pmc_openaccess``, ``is_retracted`` or ``license_code``:
  the licence filter belongs to the command that reads the records (``prepare biomed figures``).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
import re
import tempfile
import threading
from collections import deque
from collections.abc import Container, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.domains.biomed.sources import (
    MAX_MEMBER_BYTES,
    MEDIA_PREFERENCE,
    ArticleRecord,
    SkippedArticle,
    referenced_names,
)

__all__ = ["IMAGE_SUFFIXES", "PMC_BUCKET", "PMC_BUCKET_URL", "iter_pmc_cloud", "resolve_location"]

#: the PMC Article Datasets bucket and its public HTTPS endpoint
PMC_BUCKET = "pmc-oa-opendata"
PMC_BUCKET_URL = f"https://{PMC_BUCKET}.s3.amazonaws.com/"

#: media files fetched for an article (the figure formats the figures step reads); other files stay in the bucket
IMAGE_SUFFIXES = frozenset(MEDIA_PREFERENCE)

_ARTICLE = re.compile(r"PMC\d+\.\d+")
_BARE_ID = re.compile(r"(?:PMC)?(\d+)")
_NAME = re.compile(r"[^/\\\x00-\x1f]+")
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 1 << 16
_MAX_RETRY_AFTER = 120.0  # seconds: the longest wait a server's Retry-After (S3's 503 SlowDown) gets


class _FetchError(Exception):
    """An object could not be had: ``reason`` is the skip code, ``detail`` the one-line report."""

    def __init__(self, reason: str, detail: str, retry_after: float = 0.0) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.retry_after = reason, detail, retry_after


@dataclass(frozen=True)
class _Entry:
    """One listing entry: an article key (``PMCx.v``), a bare PMCID to resolve, or a refused line."""

    key: str
    origin: str
    bare: bool = False
    refused: str | None = None


# --------------------------------------------------------------------------------------------- locations


def resolve_location(location: str) -> str | Path:
    """The base URL (ending in ``/``) or the existing local folder that ``location`` names.

    Args:
        location: an ``http(s)://`` base URL, an ``s3://bucket[/prefix]`` URL (mapped to the bucket's
            public HTTPS endpoint, ``s3://pmc-oa-opendata`` to ``https://pmc-oa-opendata.s3.amazonaws.com/``)
            or a local folder (a mounted bucket).

    Raises:
        InputError: a URL of another scheme, or an s3 URL without a bucket.
        InputNotFoundError: a local path that is not an existing folder.
    """
    text = str(location).strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.netloc:
            raise InputError(f"PMC Cloud location {text!r}: the URL has no host")
        return text if text.endswith("/") else text + "/"
    if scheme == "s3":
        if not parts.netloc:
            raise InputError(f"PMC Cloud location {text!r}: an s3 URL must name a bucket (s3://{PMC_BUCKET})")
        prefix = parts.path.strip("/")
        return f"https://{parts.netloc}.s3.amazonaws.com/" + (quote(prefix) + "/" if prefix else "")
    if len(scheme) > 1:  # a one-letter "scheme" is a Windows drive
        raise InputError(
            f"PMC Cloud location {text!r}: only http(s):// and s3:// URLs or a local folder are read, not {scheme}:"
        )
    path = Path(text).expanduser()
    if not path.is_dir():
        raise InputNotFoundError(
            f"PMC Cloud location {text!r} is neither an http(s)/s3 URL nor an existing folder (a mounted bucket)"
        )
    return path


def _member(article: str, url: Any) -> tuple[str, str | None]:
    """The file name and MD5 of an object URL from ``article``'s record, refusing any outside its folder."""
    if not isinstance(url, str) or not url:
        raise _FetchError("bad_listing", f"{article}: the metadata record names an object by {url!r}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("s3", "http", "https"):
        path = unquote(parts.path).lstrip("/")
    elif not scheme:
        path = unquote(parts.path)
    else:
        raise _FetchError("bad_listing", f"{article}: the metadata record names {url!r}, not an object of the bucket")
    if path.startswith(f"{article}/"):
        path = path[len(article) + 1 :]
    if not _NAME.fullmatch(path) or path in (".", ".."):
        raise _FetchError("bad_listing", f"{article}: the metadata record names {url!r}, outside the article folder")
    md5 = parse_qs(parts.query).get("md5", [None])[0]
    return path, md5


def _check_md5(data: bytes, md5: str | None, what: str) -> None:
    if md5 and hashlib.md5(data, usedforsecurity=False).hexdigest() != md5.lower():
        raise _FetchError("checksum", f"{what}: the bytes do not match the expected MD5")


class _LocalBucket:
    """A mounted bucket: keys are paths under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._resolved = root.resolve()

    def origin(self, key: str) -> str:
        return str(self.root / key)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self._resolved):
            raise _FetchError("bad_listing", f"{key}: the key leads outside the bucket folder")
        return path

    def get(self, key: str, md5: str | None = None) -> bytes:
        path = self._path(key)
        try:
            if path.stat().st_size > MAX_MEMBER_BYTES:
                raise _FetchError("too_large", f"{self.origin(key)}: larger than {MAX_MEMBER_BYTES >> 20} MiB")
            data = path.read_bytes()
        except FileNotFoundError:
            raise _FetchError("missing_file", f"{self.origin(key)}: no such file") from None
        except PermissionError:
            raise _FetchError("forbidden", f"{self.origin(key)}: permission denied") from None
        except IsADirectoryError:
            raise _FetchError("missing_file", f"{self.origin(key)}: a folder, not a file") from None
        except OSError as error:
            raise _FetchError("unreadable", f"{self.origin(key)}: {error.strerror or error}") from None
        _check_md5(data, md5, self.origin(key))
        return data

    def download(self, key: str, sink: IO[bytes], md5: str | None = None) -> None:
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with open(self._path(key), "rb") as file:
                while chunk := file.read(_CHUNK):
                    digest.update(chunk)
                    sink.write(chunk)
        except FileNotFoundError:
            raise _FetchError("missing_file", f"{self.origin(key)}: no such file") from None
        except OSError as error:
            raise _FetchError("unreadable", f"{self.origin(key)}: {error.strerror or error}") from None
        if md5 and digest.hexdigest() != md5.lower():
            raise _FetchError("checksum", f"{self.origin(key)}: the bytes do not match the expected MD5")

    def versions(self, pmcid: str) -> list[str]:
        return [p.name for p in self.root.glob(f"{pmcid}.*") if _ARTICLE.fullmatch(p.name) and p.is_dir()]

    def articles(self) -> Iterator[str]:
        names = (p.name for p in self.root.iterdir() if _ARTICLE.fullmatch(p.name) and p.is_dir())
        yield from sorted(names, key=_version_order)


class _HttpBucket:
    """A bucket served over HTTP(S): GETs with retries, backoff with jitter and integrity checks."""

    def __init__(self, base: str, *, retries: int, backoff: float, timeout: float) -> None:
        self.base = base
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def origin(self, key: str) -> str:
        return self.base + quote(key)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = "domainclip-biomed (PMC Cloud Service reader)"
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: half the step fixed, half drawn at random.

        A server's ``Retry-After`` (429, 503) lengthens the wait, up to two minutes.
        """
        step = self.backoff * 2 ** (attempt - 1)
        return step / 2 + random.uniform(0, step / 2)

    def _request(self, url: str, sink: IO[bytes] | None, md5: str | None) -> bytes:
        """One GET with every transient failure retried; the body, or written to ``sink``."""
        last: _FetchError | None = None
        tried = 0
        for attempt in range(self.retries + 1):
            wait = max(self._delay(attempt), min(last.retry_after, _MAX_RETRY_AFTER)) if last else 0.0
            if attempt and self._stopped.wait(wait):
                break
            tried += 1
            try:
                return self._attempt(url, sink, md5)
            except _FetchError as error:
                if error.reason not in ("network", "checksum"):
                    raise
                last = error
        assert last is not None
        raise _FetchError(last.reason, f"{last.detail} (after {tried} attempts)")

    def _attempt(self, url: str, sink: IO[bytes] | None, md5: str | None) -> bytes:
        try:
            with self._session().get(url, timeout=self.timeout, stream=True) as response:
                status = response.status_code
                if status in (404, 410):
                    raise _FetchError("missing_file", f"{url}: HTTP {status}, no such object")
                if status in (401, 403):
                    raise _FetchError("forbidden", f"{url}: HTTP {status}, access denied")
                if status in _TRANSIENT_STATUS or status >= 500:
                    after = response.headers.get("Retry-After", "")
                    raise _FetchError("network", f"{url}: HTTP {status}", float(after) if after.isdigit() else 0.0)
                if status != 200:
                    raise _FetchError("http_error", f"{url}: HTTP {status}")
                expected = response.headers.get("Content-Length")
                encoded = response.headers.get("Content-Encoding", "identity") != "identity"
                limit = MAX_MEMBER_BYTES if sink is None else None
                too_large = _FetchError("too_large", f"{url}: larger than {MAX_MEMBER_BYTES >> 20} MiB")
                if limit and expected is not None and expected.isdigit() and int(expected) > limit:
                    raise too_large
                digest = hashlib.md5(usedforsecurity=False)
                size, chunks = 0, []
                if sink is not None:
                    sink.seek(0)
                    sink.truncate()
                for chunk in response.iter_content(_CHUNK):
                    if self._stopped.is_set():
                        raise _FetchError("network", f"{url}: stopped before the end of the body")
                    size += len(chunk)
                    if limit and size > limit:
                        raise too_large
                    digest.update(chunk)
                    if sink is None:
                        chunks.append(chunk)
                    else:
                        sink.write(chunk)
        except requests.RequestException as error:
            raise _FetchError("network", f"{url}: {type(error).__name__}: {_first_line(error)}") from None
        if expected is not None and not encoded and expected.isdigit() and size != int(expected):
            raise _FetchError("network", f"{url}: truncated body, {size} of {expected} bytes")
        if md5 and digest.hexdigest() != md5.lower():
            raise _FetchError("checksum", f"{url}: the bytes do not match the expected MD5")
        return b"".join(chunks)

    def get(self, key: str, md5: str | None = None) -> bytes:
        return self._request(self.origin(key), None, md5)

    def download(self, key: str, sink: IO[bytes], md5: str | None = None) -> None:
        self._request(self.origin(key), sink, md5)

    def download_url(self, url: str, sink: IO[bytes]) -> None:
        self._request(url, sink, None)

    def versions(self, pmcid: str) -> list[str]:
        """The versions of ``pmcid`` held by the bucket, by S3's ListObjectsV2 (prefix ``PMCx.``, delimiter ``/``)."""
        from lxml import etree

        query = f"?list-type=2&delimiter=%2F&prefix={quote(pmcid + '.')}"
        body = self._request(self.base + query, None, None)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        try:
            root = etree.fromstring(body, parser)
        except etree.XMLSyntaxError as error:
            raise _FetchError("missing_file", f"{self.base}: no S3 listing of {pmcid}'s versions ({error})") from None
        prefixes = (el.text or "" for el in root.iter("{*}Prefix") if el.getparent().tag.endswith("CommonPrefixes"))
        return [p.rstrip("/") for p in prefixes if _ARTICLE.fullmatch(p.rstrip("/"))]

    def stop(self) -> None:
        """Make requests in other threads give up at their next chunk or retry (the consumer has gone)."""
        self._stopped.set()

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [""])[0][:300]


def _version_order(key: str) -> tuple[int, int]:
    number, version = key[3:].split(".")
    return int(number), int(version)


# --------------------------------------------------------------------------------------------- listings


def _entry(text: str, origin: str) -> _Entry | None:
    """The article a listing line (or an inventory key) names; None for a blank or comment line."""
    line = text.strip()
    if not line or line.startswith("#"):
        return None
    shown = line[:200]
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", line):
        return _Entry(shown, origin, refused=f"{origin}: {shown!r} is a URL; a listing names articles of the bucket")
    if line.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", line):
        return _Entry(shown, origin, refused=f"{origin}: {shown!r} leads outside the bucket folder")
    for pattern in (r"(PMC\d+\.\d+)/?", r"metadata/(PMC\d+\.\d+)\.json", r"(PMC\d+\.\d+)/\1\.(?:json|xml|txt|pdf)"):
        if match := re.fullmatch(pattern, line):
            return _Entry(match.group(1), origin)
    if match := _BARE_ID.fullmatch(line):
        return _Entry(f"PMC{match.group(1)}", origin, bare=True)
    return _Entry(shown, origin, refused=f"{origin}: {shown!r} is not a PMC article (PMCID.version)")


def _text_lines(path: Path, name: str) -> Iterator[str]:
    """The lines of a listing file, read lazily; gzip-compressed files are read through gzip.

    A byte sequence that is not UTF-8 is replaced, so its line is refused as not an article rather
    than stopping the run; a damaged gzip stream stops it with an :class:`InputError`.
    """
    with ExitStack() as stack:
        raw = stack.enter_context(open(path, "rb"))
        if raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            raw = stack.enter_context(gzip.open(raw))
        else:
            raw.seek(0)
        text = stack.enter_context(io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline=""))
        try:
            yield from text
        except (OSError, EOFError) as error:
            raise InputError(f"listing {name}: a damaged gzip file ({error})") from None


def _inventory_rows(path: Path, name: str) -> Iterator[_Entry]:
    """Articles of an S3 inventory CSV: rows of bucket, metadata key, modified date and ETag."""
    rows = csv.reader(_text_lines(path, name))
    for number, row in enumerate(rows, 1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < 2 or (not row[1].startswith("metadata/") and not _ARTICLE.match(row[1])):
            if number == 1:
                raise InputError(
                    f"listing {name}: not an S3 inventory CSV of the PMC Cloud Service "
                    f'(rows like "{PMC_BUCKET}","metadata/PMC8267076.1.json",<date>,<etag>)'
                )
        entry = _entry(row[1] if len(row) > 1 else row[0], f"{name}:{number}")
        if entry is not None:
            yield entry


def _manifest_keys(path: Path, name: str) -> list[tuple[str, str | None]]:
    """The inventory data files a manifest names, with the MD5 it gives for each."""
    try:
        manifest = json.loads(path.read_bytes())
        files = [(str(file["key"]), file.get("MD5checksum")) for file in manifest["files"]]
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(
            f"listing {name}: a .json listing must be an S3 inventory manifest with files[].key ({error})"
        ) from None
    for key, _ in files:
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", key) or key.startswith("/") or ".." in key.split("/"):
            raise InputError(f"listing {name}: the inventory file key {key!r} is not a key of the bucket")
    return files


def _listing_kind(path: Path, name: str) -> str:
    """``manifest``, ``inventory`` or ``text``, from the file name and its first bytes."""
    with open(path, "rb") as file:
        head = file.read(4096)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path) as file:
                head = file.read(4096)
        except (OSError, EOFError) as error:
            raise InputError(f"listing {name}: a damaged gzip file ({error})") from None
    binary = head.decode("utf-8", errors="replace").count("\ufffd") > len(head) // 20  # mostly not text
    if binary or b"\x00" in head:
        raise InputError(f"listing {name}: a binary file, not a listing in a known format")
    stripped = head.lstrip()
    lower = name.lower().split("?")[0]
    if lower.endswith(".json") or stripped.startswith((b"{", b"[")):
        return "manifest"
    if lower.endswith((".csv", ".csv.gz")) or stripped.startswith(b'"'):
        return "inventory"
    return "text"


def _fetch_listing(http: _HttpBucket, listing: str, stack: ExitStack) -> tuple[Path, str]:
    """A local path holding the listing the user named: the file itself, or a temporary copy of a URL."""
    parts = urlsplit(listing)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https", "s3"):
        url = resolve_location(listing).rstrip("/") if scheme == "s3" else listing
        file = stack.enter_context(tempfile.NamedTemporaryFile(prefix="pmc-listing-", suffix=".tmp"))
        try:
            http.download_url(url, file)
        except _FetchError as error:
            if error.reason == "missing_file":
                raise InputNotFoundError(f"listing {listing} does not exist ({error.detail})") from None
            raise InputError(f"listing {listing} could not be fetched: {error.detail}") from None
        file.flush()
        return Path(file.name), listing
    if len(scheme) > 1:
        raise InputError(f"listing {listing!r}: only a local file or an http(s)/s3 URL is read, not {scheme}:")
    path = Path(listing).expanduser()
    if not path.is_file():
        raise InputNotFoundError(f"listing {listing} does not exist (a file naming the articles to fetch)")
    return path, listing


def _listing_entries(source: _LocalBucket | _HttpBucket, listing: str | None, http: _HttpBucket) -> Iterator[_Entry]:
    """The articles a listing names, in its order, read lazily (an inventory of millions stays on disk).

    What the user can get wrong without a request (a missing listing file, one in an unknown format,
    a URL location without a listing) is raised here, before the first article; a listing URL is
    fetched (by ``http``) when the iteration starts.
    """
    if listing is None:
        if isinstance(source, _HttpBucket):
            raise InputError(
                f"PMC Cloud location {source.base}: a URL needs a listing (a text file of PMCID.version lines, "
                "an S3 inventory CSV or its manifest.json); only a mounted bucket folder can be listed without one"
            )
        return (_Entry(key, source.origin(key)) for key in source.articles())
    scheme = urlsplit(listing).scheme.lower()
    if scheme in ("http", "https", "s3"):
        return _remote_listing_entries(source, listing, http)
    path, name = _fetch_listing(http, listing, ExitStack())
    kind = _listing_kind(path, name)
    if kind == "manifest":
        _manifest_keys(path, name)
    elif kind == "inventory":
        next(_inventory_rows(path, name), None)
    return _file_entries(source, path, name, kind)


def _remote_listing_entries(source: _LocalBucket | _HttpBucket, listing: str, http: _HttpBucket) -> Iterator[_Entry]:
    with ExitStack() as stack:
        path, name = _fetch_listing(http, listing, stack)
        yield from _file_entries(source, path, name, _listing_kind(path, name))


def _file_entries(source: _LocalBucket | _HttpBucket, path: Path, name: str, kind: str) -> Iterator[_Entry]:
    if kind == "text":
        for number, line in enumerate(_text_lines(path, name), 1):
            if (entry := _entry(line, f"{name}:{number}")) is not None:
                yield entry
    elif kind == "inventory":
        yield from _inventory_rows(path, name)
    else:
        with ExitStack() as stack:
            files = []  # every inventory file first, so no listing request fails half-way through a run
            for key, md5 in _manifest_keys(path, name):
                data = stack.enter_context(tempfile.NamedTemporaryFile(prefix="pmc-inventory-", suffix=".csv.gz"))
                try:
                    source.download(key, data, md5 if isinstance(md5, str) else None)
                except _FetchError as error:
                    raise InputError(
                        f"listing {name}: inventory file {key} could not be read: {error.detail}"
                    ) from None
                data.flush()
                files.append((key, Path(data.name)))
            for key, file in files:
                yield from _inventory_rows(file, f"{name}:{key}")


# --------------------------------------------------------------------------------------------- articles


def _fetch_article(
    source: _LocalBucket | _HttpBucket, entry: _Entry, skip: Container[str]
) -> ArticleRecord | SkippedArticle | None:
    """Fetch one article's record, XML and images; a skip with its reason when any of them fails."""
    key, origin = entry.key, entry.origin
    try:
        if entry.bare:
            versions = source.versions(key)
            if not versions:
                raise _FetchError("missing_file", f"{entry.origin}: the bucket holds no version of {key}")
            key = max(versions, key=_version_order)
            if key in skip:
                return None
        origin = source.origin(key) + "/"
        metadata = _fetch_metadata(source, key)
        xml_name, xml_md5 = _member(key, metadata.get("xml_url") or f"{key}.xml")
        xml = source.get(f"{key}/{xml_name}", xml_md5)
        references = referenced_names(xml)
        media: dict[str, bytes] = {}
        for url in metadata.get("media_urls") or ():
            name, md5 = _member(key, url)
            stem, suffix = name.rpartition(".")[::2]
            wanted = name in references or stem in references
            if wanted and "." + suffix.lower() in IMAGE_SUFFIXES and name not in media:
                media[name] = source.get(f"{key}/{name}", md5)
        return ArticleRecord(key=key, origin=origin, xml=xml, media=media, metadata=metadata)
    except _FetchError as error:
        return SkippedArticle(key=key, origin=origin, reason=error.reason, detail=error.detail)


def _fetch_metadata(source: _LocalBucket | _HttpBucket, key: str) -> dict[str, Any]:
    """The JSON record, from the article folder or, where it lacks one, from ``metadata/``."""
    try:
        data = source.get(f"{key}/{key}.json")
    except _FetchError as error:
        if error.reason != "missing_file":
            raise
        data = source.get(f"metadata/{key}.json")
    try:
        metadata = json.loads(data)
    except ValueError as error:
        raise _FetchError("bad_metadata", f"{key}: the metadata record is not JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise _FetchError("bad_metadata", f"{key}: the metadata record is not a JSON object")
    pmcid, version = key.split(".")
    if str(metadata.get("pmcid", pmcid)) != pmcid or str(metadata.get("version", version)) != version:
        raise _FetchError(
            "bad_metadata",
            f"{key}: the metadata record is for {metadata.get('pmcid')}.{metadata.get('version')}, not {key}",
        )
    if not isinstance(metadata.get("media_urls") or [], list):
        raise _FetchError("bad_metadata", f"{key}: media_urls in the metadata record is not a list")
    return metadata


def _done(value: ArticleRecord | SkippedArticle | None) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def iter_pmc_cloud(
    location: str,
    *,
    listing: str | None = None,
    workers: int = 8,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
    skip: Container[str] = (),
    progress: bool = True,
) -> Iterator[ArticleRecord | SkippedArticle]:
    """Fetch the articles a listing names from the PMC Cloud Service, in listing order.

    Each article version (``PMCx.v``) gives its JSON metadata record, its JATS XML and its image
    files (see the module docstring for the layout and its source). Up to ``workers`` articles are
    fetched at once by threads (one request at a time per article, so at most ``workers`` requests
    are open) and yielded in listing order, so memory holds at most ``workers`` articles. Transient
    failures (HTTP 5xx and 429, connection errors, timeouts, a body shorter than its
    Content-Length, bytes that do not match the record's MD5) are retried with exponential backoff
    and jitter; a missing object (404) or a refused one (403) is not. An article that cannot be
    had becomes a :class:`SkippedArticle` (reasons ``missing_file``, ``forbidden``, ``network``,
    ``checksum``, ``http_error``, ``too_large``, ``unreadable``, ``bad_metadata``, ``bad_listing``)
    and the run goes on.

    Args:
        location: the bucket: an ``http(s)://`` base URL, ``s3://pmc-oa-opendata`` (read through its
            public HTTPS endpoint) or a local folder where the bucket is mounted.
        listing: the articles to fetch: a local file or an http(s)/s3 URL holding one article a line
            (``PMCx.v``, ``PMCx.v/``, ``metadata/PMCx.v.json``, or a bare PMCID for its latest
            version), an S3 inventory CSV (``.csv`` or ``.csv.gz``) or an inventory ``manifest.json``.
            None lists a local folder's article folders (a URL location needs a listing).
        workers: articles fetched at the same time.
        retries: further attempts after a transient failure of one request.
        backoff: seconds before the first retry; each further retry waits twice as long (with jitter).
        timeout: seconds to wait for a connection or for the next bytes of a response.
        skip: article keys (``PMCx.v``) neither fetched nor yielded: those a resumed run has finished.
        progress: show a progress bar of the articles fetched.

    Returns:
        An iterator of an :class:`ArticleRecord` per article fetched whole and a
        :class:`SkippedArticle` per article (or listing line) that could not be. What the user can
        get wrong without a request (location, listing file, format) is raised by this call; a
        listing URL is fetched when the iteration starts.

    Raises:
        InputError: an unusable location or listing (wrong scheme, unknown format, unreadable URL).
        InputNotFoundError: a local location or listing file that does not exist.
    """
    if workers < 1 or retries < 0 or backoff < 0 or timeout <= 0:
        raise InputError(
            f"iter_pmc_cloud: workers must be >= 1, retries >= 0, backoff >= 0 and timeout > 0 "
            f"(got {workers}, {retries}, {backoff}, {timeout})"
        )
    root = resolve_location(location)
    http = _HttpBucket("" if isinstance(root, Path) else root, retries=retries, backoff=backoff, timeout=timeout)
    source = _LocalBucket(root) if isinstance(root, Path) else http
    try:
        entries = _listing_entries(source, listing, http)
    except BaseException:
        http.close()
        raise
    return _fetch_in_order(source, entries, workers=workers, skip=skip, progress=progress, http=http)


def _fetch_in_order(
    source: _LocalBucket | _HttpBucket,
    entries: Iterator[_Entry],
    *,
    workers: int,
    skip: Container[str],
    progress: bool,
    http: _HttpBucket,
) -> Iterator[ArticleRecord | SkippedArticle]:
    """Fetch entries with ``workers`` threads, at most ``workers`` articles held, yielding in listing order."""
    from tqdm.auto import tqdm

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pmc-cloud")
    window: deque[Future] = deque()
    skipped = 0
    try:
        with tqdm(disable=not progress, unit="article", desc="PMC Cloud", dynamic_ncols=True) as bar:

            def settle() -> Iterator[ArticleRecord | SkippedArticle]:
                nonlocal skipped
                result = window.popleft().result()
                if result is not None:
                    bar.update(1)
                    if isinstance(result, SkippedArticle):
                        skipped += 1
                        bar.set_postfix(skipped=skipped)
                    yield result

            for entry in entries:
                if entry.refused is not None:
                    window.append(_done(SkippedArticle(entry.key, entry.origin, "bad_listing", entry.refused)))
                elif not entry.bare and entry.key in skip:
                    continue
                else:
                    window.append(pool.submit(_fetch_article, source, entry, skip))
                while len(window) >= workers:
                    yield from settle()
            while window:
                yield from settle()
    finally:
        for future in window:
            future.cancel()
        http.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        close = getattr(entries, "close", None)
        if close is not None:
            close()
        http.close()
