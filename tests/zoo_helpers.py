"""Zoo entries over local files, for tests: no network, real fetch/verify/convert paths.

``local_zoo_entry`` lays files out in a user zoo folder (``<zoo_dir>/<name>/...``, where
:func:`domainclip.core.zoo.fetch.fetch_entry` looks first) and pins them with their real size and
sha256; ``write_hub_snapshot`` writes a Hugging Face cache snapshot, as ``hf_hub_download`` leaves it,
for entries with hub sources read offline.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from domainclip.core.zoo.fetch import user_file_path
from domainclip.core.zoo.registry import ZooEntry, ZooFile, ZooSource

_DEFAULTS: dict[str, Any] = {
    "domain": "core",
    "description": "a test model",
    "paper": "none",
    "homepage": "https://example.org",
    "licence": "MIT",
    "sources": (),
}


def _bytes(content: Path | bytes | str) -> bytes:
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf-8")
    return Path(content).read_bytes()


def local_zoo_entry(
    base: ZooEntry | Mapping[str, Any],
    zoo_dir: Path,
    files: Mapping[str, Mapping[str, Path | bytes | str]],
    *,
    name: str | None = None,
    pin: bool = True,
) -> ZooEntry:
    """An entry whose files sit in ``zoo_dir`` (copied there), pinned with their size and sha256.

    Args:
        base: an entry (e.g. a real one, to test its format) or the fields of one (``name``,
            ``format``, ``arch``, ...; the rest get harmless defaults).
        zoo_dir: the user zoo folder to pass as ``zoo_dir=`` (or ``DOMAINCLIP_ZOO_DIR``).
        files: ``{role: {file name: path, bytes or text}}``; roles ``"weights"`` and ``"text"``.
        name: the entry's name (default: the base's).
        pin: record size and sha256 (``False`` leaves them null, to test first-use pinning).
    """
    entry = base if isinstance(base, ZooEntry) else ZooEntry(**{**_DEFAULTS, **dict(base)})
    entry = dataclasses.replace(entry, name=name or entry.name)
    sources = []
    for role, members in files.items():
        zoo_files = []
        for file_name, content in members.items():
            data = _bytes(content)
            stub = ZooFile(name=file_name)
            path = user_file_path(Path(zoo_dir), entry, role, stub)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            zoo_files.append(ZooFile(
                name=file_name, url=f"https://example.org/{entry.name}/{file_name}",
                size=len(data) if pin else None, sha256=hashlib.sha256(data).hexdigest() if pin else None,
            ))
        sources.append(ZooSource(role=role, files=tuple(zoo_files)))
    return entry.with_sources(sources)


def write_hub_snapshot(cache: Path, repo: str, revision: str, files: Mapping[str, Path | bytes | str]) -> Path:
    """Write a Hugging Face cache snapshot of ``repo`` at ``revision`` (``refs/main`` points at it).

    Returns:
        The snapshot folder.
    """
    repo_dir = Path(cache) / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / revision
    for file_name, content in files.items():
        path = snapshot / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_bytes(content))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return snapshot


def hub_entry(base: ZooEntry | Mapping[str, Any], repo: str, revision: str | None,
              files: Mapping[str, Path | bytes | str], *, pin: bool = True) -> ZooEntry:
    """An entry whose weights come from hub repo ``repo`` (pinned to ``revision``), pinned by content."""
    entry = base if isinstance(base, ZooEntry) else ZooEntry(**{**_DEFAULTS, **dict(base)})
    zoo_files = []
    for file_name, content in files.items():
        data = _bytes(content)
        zoo_files.append(ZooFile(name=file_name, size=len(data) if pin else None,
                                 sha256=hashlib.sha256(data).hexdigest() if pin else None))
    return entry.with_sources([ZooSource(role="weights", hub=repo, revision=revision, files=tuple(zoo_files))])
