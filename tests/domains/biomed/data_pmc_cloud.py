"""A mini PMC Cloud Service bucket in the real layout, and a local HTTP server for it with failure switches.

The layout is NCBI's (https://pmc.ncbi.nlm.nih.gov/tools/pmcaws/, "Updated Structure of the PMC
Article Datasets on AWS"): one prefix per article version ``PMCx.v/`` holding ``PMCx.v.xml``,
``PMCx.v.txt``, ``PMCx.v.json`` and the media files as the publisher named them; the same JSON
records under ``metadata/``; the daily S3 inventory under ``inventory-reports/pmc-oa-opendata/
metadata/`` (a ``manifest.json`` naming gzipped CSV files of bucket, metadata key, date, ETag).
Records carry the documented fields, with S3 URLs holding each object's MD5.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
from PIL import Image

BUCKET = "pmc-oa-opendata"
INVENTORY = f"inventory-reports/{BUCKET}/metadata"
INVENTORY_DATE = "2026-02-23T01-00Z"
FIRST_ID = 9000001

LICENSES = ("CC BY", "CC0", "CC BY-NC", None)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _png(seed: int, size: int = 24) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(seed: int, size: int = 24) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = np.stack([(xx * 9 + seed) % 255, (yy * 7) % 255, np.full((size, size), int(rng.integers(255)))], -1)
    buffer = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def jats(pmcid: str, title: str, figures: list[tuple[str, str, str]], licence: str | None, supplement: str) -> bytes:
    """A small JATS article with one ``<fig>`` per (id, href without extension, caption) and a supplement."""
    licence_xml = (
        f'<permissions><license license-type="open-access"><license-p>{licence}</license-p></license></permissions>'
        if licence
        else ""
    )
    figs = "".join(
        f'<fig id="{fid}"><label>Figure {i + 1}</label><caption><title>{cap}.</title>'
        f"<p>Panel detail for {cap.lower()}.</p></caption>"
        f'<graphic xlink:href="{href}"/></fig>'
        for i, (fid, href, cap) in enumerate(figures)
    )
    cites = " ".join(f'<xref ref-type="fig" rid="{fid}">Figure {i + 1}</xref>' for i, (fid, _, _) in enumerate(figures))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE article PUBLIC "-//NLM//DTD JATS (Z39.96) Journal Archiving and Interchange DTD v1.3 20210610//EN"'
        ' "JATS-archivearticle1-3.dtd">\n'
        '<article xmlns:xlink="http://www.w3.org/1999/xlink" article-type="research-article">'
        "<front><journal-meta><journal-title-group><journal-title>Journal of Tests</journal-title>"
        "</journal-title-group></journal-meta><article-meta>"
        f'<article-id pub-id-type="pmc">{pmcid}</article-id>'
        f'<article-id pub-id-type="doi">10.0000/test.{pmcid.lower()}</article-id>'
        f"<title-group><article-title>{title}</article-title></title-group>"
        "<pub-date><year>2025</year></pub-date>"
        f"{licence_xml}</article-meta></front>"
        f"<body><sec><title>Results</title><p>As shown in {cites}, the results hold.</p>{figs}</sec>"
        f'<supplementary-material id="S1"><media xlink:href="{supplement}"/></supplementary-material></body>'
        "</article>"
    ).encode()


def write_bucket(root: Path, n: int = 6) -> dict[str, dict]:
    """Write ``n`` article versions (plus a second version of the first) into ``root`` in the bucket's layout.

    Returns:
        ``{key: {"xml": bytes, "media": {name: bytes} (images only), "supplementary": [names],
        "metadata": dict}}`` in inventory order; the keys are ``PMCx.v``.
    """
    root = Path(root)
    truth: dict[str, dict] = {}
    keys = [f"PMC{FIRST_ID + i}.1" for i in range(n)]
    keys.insert(1, f"PMC{FIRST_ID}.2")  # a second version of the first article
    for index, key in enumerate(keys):
        pmcid, version = key.split(".")
        folder = root / key
        folder.mkdir(parents=True)
        licence = LICENSES[index % len(LICENSES)]
        stem = f"jt-{pmcid[3:]}-v{version}"
        figures = [(f"F{j + 1}", f"{stem}.g00{j + 1}", f"Test figure {j + 1} of {key}") for j in range(1 + index % 3)]
        media = {}
        for j, (_, href, _) in enumerate(figures):
            media[f"{href}.png" if j % 2 == 0 else f"{href}.jpg"] = (
                _png(index * 10 + j, 16 + 4 * index) if j % 2 == 0 else _jpeg(index * 10 + j)
            )
        # a supplement the XML names and an image it does not: neither is fetched
        supplementary = {
            f"{stem}.s001.xlsx": b"PK\x03\x04 not fetched " + key.encode(),
            f"{stem}.thumbnail.png": _png(1000 + index, 8),
        }
        xml = jats(pmcid, f"Article {key}", figures, licence, f"{stem}.s001.xlsx")
        text = f"Article {key}\n".encode()
        (folder / f"{key}.xml").write_bytes(xml)
        (folder / f"{key}.txt").write_bytes(text)
        for name, data in {**media, **supplementary}.items():
            (folder / name).write_bytes(data)

        def url(name: str, data: bytes, key: str = key) -> str:
            return f"s3://{BUCKET}/{key}/{name}?md5={_md5(data)}"

        record = {
            "pmcid": pmcid,
            "version": int(version),
            "pmid": 40000000 + index,
            "doi": f"10.0000/test.{pmcid.lower()}",
            "mid": None,
            "title": f"Article {key}",
            "citation": f"J Tests. 2025;{index}:e{index}",
            "is_pmc_openaccess": True,
            "is_manuscript": False,
            "is_historical_ocr": False,
            "is_retracted": False,
            "license_code": licence,
            "xml_url": url(f"{key}.xml", xml),
            "text_url": url(f"{key}.txt", text),
            "media_urls": [url(name, data) for name, data in {**media, **supplementary}.items()],
        }
        write_record(root, key, record)
        truth[key] = {"xml": xml, "media": media, "supplementary": sorted(supplementary), "metadata": record}
    write_inventory(root, list(truth))
    return truth


def write_record(root: Path, key: str, record: dict) -> None:
    """Write an article version's JSON record in its folder and under ``metadata/``."""
    data = json.dumps(record).encode()
    (root / key / f"{key}.json").write_bytes(data)
    (root / "metadata").mkdir(exist_ok=True)
    (root / "metadata" / f"{key}.json").write_bytes(data)


def write_inventory(root: Path, keys: list[str], parts: int = 2) -> Path:
    """The S3 inventory of the metadata records, split over ``parts`` gzipped CSV files; returns the manifest."""
    data_dir = root / INVENTORY / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    files = []
    size = -(-len(keys) // parts)
    for part in range(parts):
        chunk = keys[part * size : (part + 1) * size]
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for key in chunk:
            etag = _md5((root / "metadata" / f"{key}.json").read_bytes())
            writer.writerow([BUCKET, f"metadata/{key}.json", "2026-02-22T09:48:18.000Z", etag])
        name = f"{INVENTORY}/data/{part:08d}-aaaa-bbbb-cccc-dddddddddddd.csv.gz"
        (root / name).write_bytes(gzip.compress(buffer.getvalue().encode(), mtime=0))
        files.append(
            {"key": name, "size": (root / name).stat().st_size, "MD5checksum": _md5((root / name).read_bytes())}
        )
    manifest = root / INVENTORY / INVENTORY_DATE / "manifest.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(
        json.dumps(
            {
                "sourceBucket": BUCKET,
                "destinationBucket": f"arn:aws:s3:::{BUCKET}",
                "version": "2016-11-30",
                "fileFormat": "CSV",
                "fileSchema": "Bucket, Key, LastModifiedDate, ETag",
                "files": files,
            }
        )
    )
    return manifest


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: BucketServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        server = self.server
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        with server.lock:
            server.requests.append(self.path)
            if server.die_after is not None and len(server.requests) > server.die_after:
                server.dead = True
            server.active += 1
            server.max_active = max(server.max_active, server.active)
            fault = server.take_fault(path)
        try:
            if server.delay:
                time.sleep(server.delay)
            if server.dead or fault == "reset":
                self._reset()
                return
            if fault == "slow":
                time.sleep(server.slow_seconds)
            if fault == "slowdown":  # S3's 503 SlowDown with a Retry-After
                self._send(503, b"<Error><Code>SlowDown</Code></Error>", retry_after=2)
                return
            if fault in ("500", "502", "503", "404", "403"):
                self._send(int(fault), b"<Error>injected</Error>")
                return
            query = parse_qs(parts.query)
            if query.get("list-type") == ["2"]:
                self._send(200, server.list_objects(query.get("prefix", [""])[0]), "application/xml")
                return
            file = (server.root / path.lstrip("/")).resolve()
            if not file.is_relative_to(server.root.resolve()) or not file.is_file():
                self._send(404, b"<Error><Code>NoSuchKey</Code></Error>")
                return
            body = file.read_bytes()
            if fault == "truncate":
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self._send(200, body)
        finally:
            with server.lock:
                server.active -= 1

    def _send(
        self, status: int, body: bytes, content_type: str = "application/octet-stream", retry_after: int | None = None
    ) -> None:
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        """Close the connection with a TCP reset, without a response."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class BucketServer(ThreadingHTTPServer):
    """Serves a bucket folder like S3's HTTPS endpoint; records requests and concurrency; injects faults.

    ``fail(path, *kinds)`` queues faults for the next requests of ``path`` (``"500"``, ``"503"``,
    ``"404"``, ``"403"``, ``"reset"``, ``"truncate"``, ``"slow"``, ``"slowdown"``: a 503 with
    Retry-After 2); ``fail_always(path, kind)`` makes every request of it fail; ``dead = True``
    resets every connection (a server gone mid-run), and ``die_after = n`` sets it after the n-th
    request.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root: Path, delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = Path(root)
        self.delay = delay
        self.slow_seconds = 1.0
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.active = 0
        self.max_active = 0
        self.dead = False
        self.die_after: int | None = None
        self._faults: dict[str, deque[str]] = defaultdict(deque)
        self._always: dict[str, str] = {}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def fail(self, path: str, *kinds: str) -> None:
        self._faults["/" + path.lstrip("/")].extend(kinds)

    def fail_always(self, path: str, kind: str) -> None:
        self._always["/" + path.lstrip("/")] = kind

    def take_fault(self, path: str) -> str | None:
        if path in self._always:
            return self._always[path]
        queue = self._faults.get(path)
        return queue.popleft() if queue else None

    def handle_error(self, request: object, client_address: object) -> None:
        """Connections the client (or an injected fault) broke are expected here; anything else is printed."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | OSError):
            super().handle_error(request, client_address)

    def paths(self) -> list[str]:
        """The paths requested so far (without query strings)."""
        with self.lock:
            return [unquote(urlsplit(p).path) for p in self.requests]

    def list_objects(self, prefix: str) -> bytes:
        """S3 ListObjectsV2 with delimiter ``/``: the folders of the bucket root starting with ``prefix``."""
        names = sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name.startswith(prefix))
        prefixes = "".join(f"<CommonPrefixes><Prefix>{name}/</Prefix></CommonPrefixes>" for name in names)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{BUCKET}</Name><Prefix>{prefix}</Prefix><KeyCount>{len(names)}</KeyCount>"
            f"<Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>{prefixes}</ListBucketResult>"
        ).encode()


@contextlib.contextmanager
def serve_bucket(root: Path, delay: float = 0.0) -> Iterator[BucketServer]:
    """Serve ``root`` on 127.0.0.1 from a thread for the duration of the block."""
    server = BucketServer(root, delay)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
