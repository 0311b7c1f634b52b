"""Fetching a zoo entry's files once, checking them, and finding them offline.

Where each file of an entry is looked for, in order:

1. the user's zoo folder (``zoo_dir`` argument, else ``DOMAINCLIP_ZOO_DIR``):
   ``<zoo_dir>/<entry name>/<file name>`` for the weights, ``<zoo_dir>/<entry name>/text/<file name>``
   for a text tower's files. Files a user downloaded by hand (gated repos, institutional mirrors,
   machines without network) go there;
2. hub sources: the standard Hugging Face cache (``cache_dir``, ``HF_HUB_CACHE``, ``HF_HOME/hub``),
   downloaded there at the pinned revision when online (``huggingface_hub.hf_hub_download``);
3. URL sources: domainclip's download cache ``<HF_HOME>/domainclip/zoo/<entry name>/`` (or
   ``DOMAINCLIP_ZOO_CACHE``), downloaded once, atomically (a partial download never has the final name).

Every file is checked against the registry's size and sha256; a mismatch is a
:class:`~domainclip.core.hub.ModelFileError` naming the file, what was expected and what was found.
A file the registry does not pin (``sha256: null``) is pinned on first use: its sha256, size and
the hub revision resolved are recorded in the lock file (``zoo-lock.json`` in the download cache)
and every later load is checked against that record, so a file that changes is noticed. Hashes of
files already checked are remembered by (path, size, mtime), so a multi-gigabyte checkpoint is
hashed once. Offline (``HF_HUB_OFFLINE=1``) with a file missing, the error is one line naming what
to download and where to put it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from domainclip.core.errors import InputNotFoundError
from domainclip.core.hub import HubNotFoundError, ModelFileError, hf_cache_dir, hf_offline
from domainclip.core.io import atomic_output, atomic_write_text
from domainclip.core.zoo.registry import ZooEntry, ZooFile, ZooSource

__all__ = [
    "LOCK_NAME",
    "ZooFileError",
    "fetch_entry",
    "file_sha256",
    "file_sha256_cached",
    "lock_file",
    "url_cache_dir",
    "user_file_path",
    "user_zoo_dir",
]

logger = logging.getLogger(__name__)

LOCK_NAME = "zoo-lock.json"
_CHUNK = 1 << 20


class ZooFileError(ModelFileError):
    """A zoo file differs from its pin (size or sha256), or from what was recorded on first download."""


def user_zoo_dir(zoo_dir: str | Path | None = None) -> Path | None:
    """The user's zoo folder: ``zoo_dir``, else ``DOMAINCLIP_ZOO_DIR``, else None."""
    if zoo_dir is not None:
        return Path(zoo_dir).expanduser()
    env = os.environ.get("DOMAINCLIP_ZOO_DIR")
    return Path(env).expanduser() if env else None


def url_cache_dir() -> Path:
    """Where URL downloads are kept: ``DOMAINCLIP_ZOO_CACHE``, else ``<HF_HOME>/domainclip/zoo``."""
    env = os.environ.get("DOMAINCLIP_ZOO_CACHE")
    if env:
        return Path(env).expanduser()
    from huggingface_hub import constants

    home = os.environ.get("HF_HOME") or constants.HF_HOME
    return Path(home).expanduser() / "domainclip" / "zoo"


def lock_file() -> Path:
    """The lock file recording what unpinned files were on first download."""
    return url_cache_dir() / LOCK_NAME


def user_file_path(root: Path, entry: ZooEntry, role: str, file: ZooFile) -> Path:
    """Where a file sits in a user zoo folder (``root``): ``<root>/<name>/[text/]<file>``."""
    folder = root / entry.name if role == "weights" else root / entry.name / role
    return folder / file.name


# ----------------------------------------------------------------------------------------------------
# hashing and the lock file
# ----------------------------------------------------------------------------------------------------


def file_sha256(path: str | Path) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_sha256_cached(path: str | Path) -> str:
    """The sha256 of a file, from the lock file's record of files already hashed when it is unchanged."""
    path = Path(path)
    key = _stat_key(path)
    with _locked_lock_file() as data:
        digest = data["hashed"].get(key)
        if digest is None:
            digest = data["hashed"][key] = file_sha256(path)
    return digest


@contextlib.contextmanager
def _locked_lock_file() -> Iterator[dict[str, Any]]:
    """Read-modify-write the lock file under an exclusive lock (one process at a time)."""
    path = lock_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    guard = path.with_name(path.name + ".lock")
    with open(guard, "a+") as g:
        fcntl.lockf(g.fileno(), fcntl.LOCK_EX)
        try:
            try:
                data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
            except (json.JSONDecodeError, UnicodeDecodeError):
                logger.warning("%s is not valid JSON: starting a new one", path)
                data = {}
            data.setdefault("pins", {})
            data.setdefault("hashed", {})
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        finally:
            fcntl.lockf(g.fileno(), fcntl.LOCK_UN)


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _verify(path: Path, entry: ZooEntry, source: ZooSource, file: ZooFile, revision: str | None) -> str:
    """Check a local file against its pin, or pin it on first use; returns its sha256."""
    what = f"zoo:{entry.name} file {file.name}"
    size = path.stat().st_size
    if file.size is not None and size != file.size:
        raise ZooFileError(
            f"{what} at {path} has {size} bytes, the registry pins {file.size}: an incomplete or different download; "
            "delete it and fetch again"
        )
    key = _stat_key(path)
    with _locked_lock_file() as data:
        digest = data["hashed"].get(key)
        if digest is None:
            digest = file_sha256(path)
            data["hashed"] = {k: v for k, v in data["hashed"].items() if not k.startswith(f"{path.resolve()}|")}
            data["hashed"][key] = digest
        if file.sha256 is not None:
            if digest != file.sha256:
                raise ZooFileError(
                    f"{what} at {path} has sha256 {digest}, the registry pins {file.sha256}: a corrupt or different "
                    "file; delete it and fetch again"
                )
            return digest
        pin_key = f"{entry.name}/{source.role}/{file.name}"
        record = data["pins"].get(pin_key)
        if record is None:
            data["pins"][pin_key] = {"sha256": digest, "size": size, "revision": revision,
                                     "source": source.hub or file.url}
            logger.warning("%s is not pinned in the registry: recorded sha256 %s (%d bytes) in %s", what, digest,
                           size, lock_file())
        elif record["sha256"] != digest:
            raise ZooFileError(
                f"{what} at {path} has sha256 {digest}, but {record['sha256']} was recorded when it was first "
                f"downloaded ({lock_file()}): the file changed; delete the entry from the lock file only if you "
                "trust the new one"
            )
    return digest


# ----------------------------------------------------------------------------------------------------
# fetching
# ----------------------------------------------------------------------------------------------------


def _source_folder(path: Path, name: str) -> Path:
    """The folder a file named ``name`` (maybe with sub-folders) sits in at ``path``."""
    return path.parents[len(Path(name).parts) - 1]


def _missing_message(entry: ZooEntry, source: ZooSource, file: ZooFile, user_root: Path | None, why: str) -> str:
    where = user_file_path(user_root or Path("$DOMAINCLIP_ZOO_DIR"), entry, source.role, file)
    origin = (f"https://huggingface.co/{source.hub}/blob/{source.revision or 'main'}/{file.name}" if source.hub
              else file.url)
    gated = " (gated: accept its terms on the hub first)" if entry.gated else ""
    return (f"zoo:{entry.name}: {file.name} {why}; download it from {origin}{gated} and put it at {where}, "
            "or run `domainclip zoo fetch` with network access")


def _fetch_hub_file(entry: ZooEntry, source: ZooSource, file: ZooFile, cache_dir: str | Path | None,
                    user_root: Path | None) -> tuple[Path, str | None]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cache = hf_cache_dir(cache_dir)
    offline = hf_offline()
    try:
        path = Path(hf_hub_download(source.hub, file.name, revision=source.revision, cache_dir=str(cache),
                                    local_files_only=offline))
    except GatedRepoError as e:
        raise HubNotFoundError(
            f"zoo:{entry.name}: hf-hub:{source.hub} is gated; accept its terms at https://huggingface.co/{source.hub} "
            f"and log in (`hf auth login`), or put the file at "
            f"{user_file_path(user_root or Path('$DOMAINCLIP_ZOO_DIR'), entry, source.role, file)}"
        ) from e
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:  # before EntryNotFoundError: a subclass
        why = (f"is not in the Hugging Face cache {cache} (offline)" if offline
               else f"could not be downloaded ({type(e).__name__})")
        raise HubNotFoundError(_missing_message(entry, source, file, user_root, why)) from e
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as e:
        raise HubNotFoundError(
            f"zoo:{entry.name}: hf-hub:{source.hub}@{source.revision or 'main'} has no {file.name} "
            f"({type(e).__name__}); the registry entry may be out of date"
        ) from e
    except (HfHubHTTPError, OSError) as e:
        why = f"could not be downloaded ({type(e).__name__})"
        raise HubNotFoundError(_missing_message(entry, source, file, user_root, why)) from e
    revision = path.parent.name if path.parent.parent.name == "snapshots" else None
    if len(Path(file.name).parts) > 1:
        revision = _source_folder(path, file.name).name
    return path, revision


def _download_url(entry: ZooEntry, source: ZooSource, file: ZooFile, target: Path, user_root: Path | None,
                  progress: bool) -> None:
    """Download ``file.url`` to ``target`` atomically, with a progress bar."""
    if hf_offline():
        raise HubNotFoundError(_missing_message(entry, source, file, user_root,
                                                f"is not in the download cache {target.parent} (offline)"))
    from tqdm.auto import tqdm

    request = urllib.request.Request(file.url, headers={"User-Agent": "domainclip"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response, atomic_output(target) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or file.size
            with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=f"zoo:{entry.name} "
                                              f"{file.name}", disable=not progress) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        raise HubNotFoundError(_missing_message(entry, source, file, user_root,
                                                f"could not be downloaded ({' '.join(str(e).split())})")) from e


def _fetch_source(entry: ZooEntry, source: ZooSource, cache_dir: str | Path | None, user_root: Path | None,
                  progress: bool) -> Path:
    """Local paths of one source's files, all in one folder; each checked. Returns the folder."""
    if user_root is not None:
        paths = [user_file_path(user_root, entry, source.role, f) for f in source.files]
        present = [p.is_file() for p in paths]
        if any(present):
            if not all(present):
                missing = [str(p) for p, ok in zip(paths, present, strict=True) if not ok]
                raise InputNotFoundError(
                    f"zoo:{entry.name}: the zoo folder {user_root} holds some of its {source.role} files but not "
                    f"{', '.join(missing)}"
                )
            for path, file in zip(paths, source.files, strict=True):
                _verify(path, entry, source, file, source.revision)
            return _source_folder(paths[0], source.files[0].name)
    if source.hub is not None:
        folder: Path | None = None
        for file in source.files:
            path, revision = _fetch_hub_file(entry, source, file, cache_dir, user_root)
            _verify(path, entry, source, file, revision)
            here = _source_folder(path, file.name)
            if folder is not None and here != folder:
                raise HubNotFoundError(
                    f"zoo:{entry.name}: the files of hf-hub:{source.hub} resolved to two revisions ({folder.name}, "
                    f"{here.name}); pin a revision in the registry"
                )
            folder = here
        assert folder is not None
        return folder
    root = url_cache_dir() / entry.name / ("" if source.role == "weights" else source.role)
    for file in source.files:
        target = root / file.name
        if not target.is_file():
            _download_url(entry, source, file, target, user_root, progress)
        _verify(target, entry, source, file, None)
    return root


def fetch_entry(
    entry: ZooEntry, *, cache_dir: str | Path | None = None, zoo_dir: str | Path | None = None, progress: bool = True
) -> dict[str, Path]:
    """Make every file of an entry available locally, checked: ``{role: folder holding that source's files}``.

    Args:
        entry: the zoo entry.
        cache_dir: Hugging Face cache folder (default ``HF_HUB_CACHE`` / ``HF_HOME/hub``).
        zoo_dir: the user's zoo folder (default ``DOMAINCLIP_ZOO_DIR``), looked in first.
        progress: show download progress.

    Raises:
        HubNotFoundError: a file is missing offline, cannot be downloaded, or the repo is gated; one
            line naming what to download and where to put it.
        ZooFileError: a file's size or sha256 differs from the registry's pin or from the first download.
    """
    user_root = user_zoo_dir(zoo_dir)
    return {source.role: _fetch_source(entry, source, cache_dir, user_root, progress) for source in entry.sources}

