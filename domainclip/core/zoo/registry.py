"""The zoo's registry: one :class:`ZooEntry` per published checkpoint, read from the domains' ``zoo.yaml``.

Each domain lists the published models of its field in a YAML file it declares
(``DomainSpec.zoo = "package.module:zoo.yaml"``); the core reads them without importing the domain's
code, so ``domainclip zoo`` lists every model whether or not its extra is installed. An entry::

    - name: PathGen-CLIP
      description: ViT-B/16 CLIP trained on PathGen-1.6M plus public pathology pairs
      paper: "PathGen-1.6M: ... (Sun et al., ICLR 2025)"
      homepage: https://github.com/PathGen-1-6M/PathGen-1.6M
      format: open_clip_state_dict          # a converter (domainclip.core.zoo.formats)
      arch: ViT-B-16                        # the architecture it maps to
      overrides: {}                         # create_model overrides (quick_gelu, text_cfg, ...)
      sources:
        - role: weights                     # "weights", or "text" for a Hugging Face text tower's files
          hub: jamesjjiang/PathGen-CLIP     # or url: per file
          revision: 0123...                 # pinned commit; null: recorded on first download
          files:
            - {name: pathgenclip.pt, size: 599000000, sha256: ab12...}
      preprocess: {size: 224, mean: [...], std: [...], interpolation: bicubic}
      tokenizer: open_clip BPE (CLIP)
      context_length: 77
      licence: CC BY-NC-SA 4.0 (weights)
      gated: false
      templates: ["a histopathology image of {c}"]

A source or file whose revision / sha256 is ``null`` has not been pinned by a maintainer; the first
download records what it got in the lock file (:mod:`domainclip.core.zoo.fetch`) and later loads are
checked against that. :func:`register_zoo_entry` adds entries at run time (tests, notebooks, a
lab's private models).
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from domainclip.core.errors import InputError
from domainclip.core.plugins import UnknownNameError

__all__ = [
    "ROLES",
    "ZOO_PREFIX",
    "ZooEntry",
    "ZooFile",
    "ZooSource",
    "get_zoo_entry",
    "list_zoo",
    "parse_zoo_entry",
    "register_zoo_entry",
    "unregister_zoo_entry",
]

#: Prefix of a zoo name wherever a model spec is accepted (``--model zoo:PathGen-CLIP``).
ZOO_PREFIX = "zoo:"
#: Source roles: the checkpoint itself, and a Hugging Face text tower's config and tokenizer files.
ROLES = ("weights", "text")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class ZooFile:
    """One file of a source.

    Args:
        name: the file's path inside the hub repo, or the name a URL download is saved under.
        url: where to download it from, for URL sources (``None`` for hub files).
        size: size in bytes; ``None`` when not pinned.
        sha256: hex digest; ``None`` when not pinned (recorded on first download).
    """

    name: str
    url: str | None = None
    size: int | None = None
    sha256: str | None = None

    @property
    def pinned(self) -> bool:
        """Whether the registry fixes this file's content (a sha256)."""
        return self.sha256 is not None


@dataclass(frozen=True)
class ZooSource:
    """Where a group of files comes from: a Hugging Face Hub repo at a revision, or URLs.

    Args:
        role: ``"weights"`` (the checkpoint) or ``"text"`` (a Hugging Face text tower's ``config.json``
            and tokenizer files, when the checkpoint does not carry them).
        files: the files to fetch.
        hub: ``org/name`` on the Hugging Face Hub (``None`` for URL files).
        revision: the pinned commit of ``hub`` (40 hex digits); ``None`` when not pinned.
    """

    role: str
    files: tuple[ZooFile, ...]
    hub: str | None = None
    revision: str | None = None

    def describe(self) -> str:
        """One line: ``hf-hub:org/name@rev: a, b`` or the URLs."""
        if self.hub is not None:
            return f"hf-hub:{self.hub}@{self.revision or 'main (unpinned)'}: {', '.join(f.name for f in self.files)}"
        return ", ".join(f.url or f.name for f in self.files)


@dataclass(frozen=True)
class ZooEntry:
    """A published checkpoint: where it is, what format it has, what it maps to and under which licence.

    Args:
        name: the zoo name (``zoo:NAME``).
        domain: the domain whose ``zoo.yaml`` lists it.
        description: one line.
        paper: the paper's title, authors and venue.
        homepage: the project's page or code.
        format: the native format's converter (:func:`~domainclip.core.zoo.formats.get_format`).
        arch: the architecture it maps to (a registered name), or ``None`` when the checkpoint is an
            open_clip hub folder that carries its own config.
        overrides: :func:`~domainclip.core.models.create_model` overrides for ``arch``.
        sources: the files to fetch, by role.
        preprocess: image preprocessing the authors used (size, mean, std, interpolation, resize_mode).
        tokenizer: the tokenizer, in words.
        context_length: text context length in tokens.
        licence: the weights' licence as published.
        gated: the hub asks users to accept terms before downloading (log in with ``hf auth login``).
        templates: the prompt templates the authors published (``{c}`` is the class name).
        notes: anything a user should know (resolution, video pooling, known differences).
    """

    name: str
    domain: str
    description: str
    paper: str
    homepage: str
    format: str
    arch: str | None
    sources: tuple[ZooSource, ...]
    licence: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    preprocess: Mapping[str, Any] = field(default_factory=dict)
    tokenizer: str = ""
    context_length: int | None = None
    gated: bool = False
    templates: tuple[str, ...] = ()
    notes: str = ""

    @property
    def spec(self) -> str:
        """``zoo:NAME``."""
        return f"{ZOO_PREFIX}{self.name}"

    def source(self, role: str) -> ZooSource | None:
        """The source of a role, or None."""
        return next((s for s in self.sources if s.role == role), None)

    @property
    def pinned(self) -> bool:
        """Whether every hub source has a revision and every file a sha256."""
        return all((s.hub is None or s.revision is not None) and all(f.pinned for f in s.files) for s in self.sources)

    def with_sources(self, sources: Sequence[ZooSource]) -> ZooEntry:
        """A copy with other sources (tests point an entry at local files)."""
        return replace(self, sources=tuple(sources))


# ----------------------------------------------------------------------------------------------------
# parsing
# ----------------------------------------------------------------------------------------------------

_ENTRY_KEYS = {
    "name", "description", "paper", "homepage", "format", "arch", "overrides", "sources", "preprocess",
    "tokenizer", "context_length", "licence", "gated", "templates", "notes",
}
_REQUIRED = ("name", "description", "paper", "homepage", "format", "sources", "licence")
_SOURCE_KEYS = {"role", "hub", "revision", "files"}
_FILE_KEYS = {"name", "url", "size", "sha256"}


def _unknown(keys: Mapping[str, Any], known: set[str], where: str) -> None:
    extra = sorted(set(keys) - known)
    if extra:
        raise InputError(f"{where}: unknown key(s) {', '.join(extra)} (known: {', '.join(sorted(known))})")


def _parse_file(raw: Any, where: str, hub: str | None) -> ZooFile:
    if not isinstance(raw, Mapping):
        raise InputError(f"{where}: a file must be a mapping with name, size, sha256 (and url without hub)")
    _unknown(raw, _FILE_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not name or name.startswith("/") or ".." in name.split("/"):
        raise InputError(f"{where}: 'name' must be a relative file path inside the repo, got {name!r}")
    url = raw.get("url")
    if hub is None and not (isinstance(url, str) and url.startswith("https://")):
        raise InputError(f"{where}: a file of a source without 'hub' needs an https:// 'url'")
    if hub is not None and url is not None:
        raise InputError(f"{where}: a hub file takes no 'url' (it is fetched from the hub repo)")
    size, sha = raw.get("size"), raw.get("sha256")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InputError(f"{where}: 'size' must be a byte count or null, got {size!r}")
    if sha is not None and not (isinstance(sha, str) and _SHA256.match(sha)):
        raise InputError(f"{where}: 'sha256' must be 64 lowercase hex digits or null, got {sha!r}")
    return ZooFile(name=name, url=url, size=size, sha256=sha)


def _parse_source(raw: Any, where: str) -> ZooSource:
    if not isinstance(raw, Mapping):
        raise InputError(f"{where}: a source must be a mapping with role, hub/revision and files")
    _unknown(raw, _SOURCE_KEYS, where)
    role = raw.get("role", "weights")
    if role not in ROLES:
        raise InputError(f"{where}: role must be one of {', '.join(ROLES)}, got {role!r}")
    hub, revision = raw.get("hub"), raw.get("revision")
    if hub is not None and not (isinstance(hub, str) and re.match(r"^[\w.\-]+/[\w.\-]+$", hub)):
        raise InputError(f"{where}: 'hub' must be org/name, got {hub!r}")
    if revision is not None and (hub is None or not (isinstance(revision, str) and _COMMIT.match(revision))):
        raise InputError(f"{where}: 'revision' must be a 40-hex commit of the hub repo, got {revision!r}")
    files = raw.get("files")
    if not isinstance(files, list) or not files:
        raise InputError(f"{where}: 'files' must be a non-empty list")
    return ZooSource(role=role, hub=hub, revision=revision,
                     files=tuple(_parse_file(f, f"{where} file {i}", hub) for i, f in enumerate(files)))


def parse_zoo_entry(raw: Mapping[str, Any], *, domain: str, where: str = "zoo entry") -> ZooEntry:
    """Check and build one entry from its YAML mapping.

    Raises:
        InputError: one line naming ``where`` and the key that is wrong.
    """
    if not isinstance(raw, Mapping):
        raise InputError(f"{where}: an entry must be a mapping")
    where = f"{where} {raw.get('name')!r}" if raw.get("name") else where
    _unknown(raw, _ENTRY_KEYS, where)
    missing = [k for k in _REQUIRED if raw.get(k) in (None, "", [])]
    if missing:
        raise InputError(f"{where}: missing {', '.join(missing)}")
    if not _NAME.match(str(raw["name"])):
        raise InputError(f"{where}: name may hold letters, digits and . _ + - only")
    sources = tuple(_parse_source(s, f"{where} source {i}") for i, s in enumerate(raw["sources"]))
    if not any(s.role == "weights" for s in sources):
        raise InputError(f"{where}: needs a source with role 'weights'")
    for key in ("overrides", "preprocess"):
        if not isinstance(raw.get(key) or {}, Mapping):
            raise InputError(f"{where}: {key!r} must be a mapping")
    templates = raw.get("templates") or []
    if not isinstance(templates, list) or not all(isinstance(t, str) and "{c}" in t for t in templates):
        raise InputError(f"{where}: 'templates' must be a list of strings holding {{c}} for the class name")
    context_length = raw.get("context_length")
    if context_length is not None and (not isinstance(context_length, int) or context_length < 1):
        raise InputError(f"{where}: 'context_length' must be a positive integer")
    return ZooEntry(
        name=str(raw["name"]), domain=domain, description=str(raw["description"]).strip(),
        paper=str(raw["paper"]).strip(), homepage=str(raw["homepage"]), format=str(raw["format"]),
        arch=raw.get("arch"), sources=sources, licence=str(raw["licence"]),
        overrides=dict(raw.get("overrides") or {}), preprocess=dict(raw.get("preprocess") or {}),
        tokenizer=str(raw.get("tokenizer") or ""), context_length=context_length, gated=bool(raw.get("gated", False)),
        templates=tuple(templates), notes=" ".join(str(raw.get("notes") or "").split()),
    )


# ----------------------------------------------------------------------------------------------------
# the registry
# ----------------------------------------------------------------------------------------------------

_RUNTIME: dict[str, ZooEntry] = {}


@functools.lru_cache(maxsize=1)
def _declared_entries() -> dict[str, ZooEntry]:
    """Entries of every domain's ``zoo.yaml`` (read once)."""
    from domainclip.core.plugins import get_domain, list_domains

    entries: dict[str, ZooEntry] = {}
    for domain in list_domains():
        target = getattr(get_domain(domain), "zoo", None)
        if not target:
            continue
        package, _, resource = target.partition(":")
        text = importlib.resources.files(package).joinpath(resource).read_text(encoding="utf-8")
        raw = yaml.safe_load(text) or []
        if not isinstance(raw, list):
            raise ValueError(f"{target}: the zoo file must hold a list of entries")
        for i, item in enumerate(raw):
            entry = parse_zoo_entry(item, domain=domain, where=f"{target} entry {i}")
            if entry.name in entries:
                other = entries[entry.name].domain
                raise ValueError(f"{target}: zoo name {entry.name!r} is also listed by domain {other}")
            entries[entry.name] = entry
    return entries


def _all_entries() -> dict[str, ZooEntry]:
    return {**_declared_entries(), **_RUNTIME}


def register_zoo_entry(entry: ZooEntry, *, overwrite: bool = False) -> ZooEntry:
    """Add an entry at run time (tests, notebooks, a lab's own checkpoints); ``zoo:NAME`` then loads it."""
    if not overwrite and entry.name in _all_entries():
        raise ValueError(f"zoo entry {entry.name!r} already exists; pass overwrite=True to replace it")
    _RUNTIME[entry.name] = entry
    return entry


def unregister_zoo_entry(name: str) -> None:
    """Remove an entry added with :func:`register_zoo_entry` (declared entries stay)."""
    _RUNTIME.pop(name, None)


def list_zoo(domain: str | None = None) -> list[ZooEntry]:
    """The zoo's entries, sorted by domain then name, optionally of one domain."""
    entries = [e for e in _all_entries().values() if domain is None or e.domain == domain]
    return sorted(entries, key=lambda e: (e.domain, e.name.lower()))


def get_zoo_entry(name: str) -> ZooEntry:
    """The entry of a zoo name (``zoo:`` prefix optional).

    Raises:
        UnknownNameError: no such entry (the message lists close names).
    """
    key = name[len(ZOO_PREFIX):] if name.startswith(ZOO_PREFIX) else name
    entries = _all_entries()
    if key in entries:
        return entries[key]
    folded = {n.lower(): n for n in entries}
    if key.lower() in folded:
        return entries[folded[key.lower()]]
    raise UnknownNameError("zoo model", key, sorted(entries))
