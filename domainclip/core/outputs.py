"""Output folders a command owns while it writes them: locked, checked, recorded, cleaned up.

Every command that writes a folder (``prepare``, ``train``, ``demo``, ``eval``) opens it through
:class:`OutputFolder`, which gives four promises:

- **One writer.** An exclusive lock (a POSIX record lock, ``fcntl.lockf``, on ``.domainclip.lock``
  inside the folder) is held while the command runs; a second command on the same folder stops at
  once with one line naming the holder's pid. The kernel drops the lock when its process ends,
  ``kill -9`` included; forked children (DataLoader workers) do not inherit it, so a killed
  command's lingering workers never keep its folder locked.
- **Nothing of the user's is lost.** A folder that already holds entries is refused, unless
  ``overwrite`` is given; even then only domainclip's own entries (those the manifest says a
  domainclip command wrote) are removed. A folder holding files domainclip did not write is
  refused outright where the command must own the whole folder (a prepared dataset).
- **Partial is never whole.** A manifest (``.domainclip-output.json``) says which command wrote the
  folder, with which arguments, and whether it finished (``"complete"``); it is written with
  ``complete: false`` before anything else and set to ``true`` only after the command returned.
  Readers use an output only when :func:`read_manifest` says it is complete (see
  :func:`require_complete`).
- **A failure leaves nothing behind.** When the command raises, the entries it created are removed
  (the whole folder when it created the folder) and the original error propagates; a caller may
  keep a partial output on purpose (a training run with checkpoints, to resume).

Granularity is the folder's top-level entries: a shard file, a ``checkpoints/`` folder. Entries that
appear in an unfinished output (one whose command was killed) are taken to be that command's.

Within one process the folders nest: a command that already holds a folder (``demo``) may call
another that opens it again (``train``); the inner one then neither locks nor checks nor records,
and the outer one answers for the folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from domainclip.core.errors import InputError, OutputError, OutputExistsError, OutputInUseError
from domainclip.core.io import atomic_write_text

__all__ = [
    "LOCK_NAME",
    "MANIFEST_NAME",
    "OutputFolder",
    "read_manifest",
    "require_complete",
    "same_arguments",
]

#: Lock file inside every output folder.
LOCK_NAME = ".domainclip.lock"
#: Manifest inside every output folder.
MANIFEST_NAME = ".domainclip-output.json"
_RESERVED = frozenset({LOCK_NAME, MANIFEST_NAME})
_MANIFEST_VERSION = 1
#: folders this process holds (resolved path -> the outermost OutputFolder)
_HELD: dict[Path, OutputFolder] = {}


def _entries(folder: Path) -> set[str]:
    """Top-level entry names of ``folder`` other than the lock and manifest."""
    return set(os.listdir(folder)) - _RESERVED


def _listing(names: Iterable[str], limit: int = 3) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of an output folder, or ``None`` when it has none (or an unreadable one)."""
    path = Path(folder) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("kind"), str) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def same_arguments(manifest: Mapping[str, Any], command: str, args: Mapping[str, Any]) -> bool:
    """Whether a manifest records ``command`` run with ``args`` (compared as JSON values)."""
    return manifest.get("command") == command and manifest.get("args") == _jsonable(args)


def require_complete(folder: str | os.PathLike, what: str = "") -> None:
    """Refuse a folder that an unfinished domainclip command wrote (killed, or still running).

    A folder without a manifest (shards from elsewhere) passes; so does a complete one. For shard
    folders written by :class:`~domainclip.core.data.writer.ShardWriter` alone, every
    ``*-index.json`` must also say ``"complete": true``.

    Raises:
        InputError: naming the folder, the command that wrote it and how to rebuild it.
    """
    folder = Path(folder)
    label = f"{what} " if what else ""
    manifest = read_manifest(folder)
    if manifest is not None and not manifest.get("complete"):
        command = manifest.get("command") or manifest.get("kind")
        raise InputError(
            f"{label}{folder} was written by an unfinished `{command}` (pid {manifest.get('pid')}, killed or "
            "still running): rerun it with --overwrite, or let the recipe's prepare step rebuild it"
        )
    if manifest is None and folder.is_dir():
        for index in sorted(folder.glob("*-index.json")):
            try:
                complete = json.loads(index.read_text(encoding="utf-8")).get("complete", True)
            except (OSError, ValueError, AttributeError):
                raise InputError(f"{label}shard index {index} is not valid JSON") from None
            if complete is False:
                raise InputError(
                    f"{label}{folder}: shard index {index.name} says the writer did not finish; rewrite the shards"
                )


class OutputFolder:
    """Own an output folder for the length of a ``with`` block (see the module docstring).

    Args:
        path: the folder (created when missing, with its parents).
        kind: what the folder holds: ``"dataset"``, ``"run"``, ``"demo"``, ``"eval"``, ...
        command: the command that writes it (``"math/synthetic"``), recorded in the manifest.
        args: the command's arguments, recorded so a later run can tell whether the output
            matches what it needs (:func:`same_arguments`).
        overwrite: replace what a domainclip command wrote here before (foreign entries are kept,
            or refused when ``allow_foreign`` is false).
        resume: continue an unfinished or finished output of the same ``kind`` and ``command`` (a
            training run); its entries are kept.
        allow_foreign: with ``overwrite``, write beside entries domainclip did not write (a run
            folder may share a folder with the user's notes; a dataset may not).
        keep_on_error: when the block raises, keep what it created if this returns true for the
            folder (a training run that saved a checkpoint); the manifest then stays incomplete.
        flag: the command-line flag that means ``overwrite``, for messages.
        hint: what the user can do when the folder holds an earlier output of this kind (default:
            pass ``flag`` or choose another folder).

    Raises:
        OutputInUseError: another process holds the folder's lock.
        OutputExistsError: the folder holds entries this command must not replace.
        OutputError: the path is a file, or cannot be created or written.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        kind: str,
        command: str = "",
        args: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        resume: bool = False,
        allow_foreign: bool = False,
        keep_on_error: Callable[[Path], bool] | bool = False,
        flag: str = "--overwrite",
        hint: str | None = None,
    ):
        self.path = Path(path)
        self.kind = kind
        self.command = command
        self.args = _jsonable(dict(args or {}))
        self.overwrite = overwrite
        self.resume = resume
        self.allow_foreign = allow_foreign
        self.keep_on_error = keep_on_error
        self.flag = flag
        self.hint = hint or f"pass {flag} to replace it, or choose another folder"
        self.created = False
        self.nested = False
        self._lock_fd: int | None = None
        self._lock_created = False
        self._before: set[str] = set()
        self._foreign: set[str] = set()
        self._previous: dict[str, Any] | None = None
        self._started = 0.0

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> OutputFolder:
        if self.path.resolve() in _HELD:
            self.nested = True
            return self
        self._create()
        self._lock()
        try:
            self._inspect()
            self._started = time.time()
            self._write_manifest(complete=False)
        except BaseException:
            if self._lock_created:  # refused: leave the folder exactly as it was
                (self.path / LOCK_NAME).unlink(missing_ok=True)
            self._unlock()
            raise
        self._key = self.path.resolve()
        _HELD[self._key] = self
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.nested:
            return
        _HELD.pop(self._key, None)
        try:
            if exc_type is None:
                self._write_manifest(complete=True)
            else:
                self._cleanup()
        finally:
            self._unlock()

    # ------------------------------------------------------------------ steps
    def _create(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"output {self.path} is a file, not a folder")
        self.created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create output folder {self.path}: {e.strerror or e}") from None

    def _lock(self) -> None:
        lock_path = self.path / LOCK_NAME
        self._lock_created = not lock_path.exists()
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            self._forget_created()
            raise OutputError(f"output folder {self.path} is not writable: {e.strerror or e}") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                os.close(fd)
                raise
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise OutputInUseError(
                f"output folder {self.path} is in use by another domainclip process (pid {holder}); "
                "wait for it to finish or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._lock_fd = fd

    def _forget_created(self) -> None:
        if self.created:
            with contextlib.suppress(OSError):
                self.path.rmdir()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.lockf(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _inspect(self) -> None:
        """Decide what in the folder is domainclip's, and refuse or clear it as the options say."""
        before = _entries(self.path)
        previous = read_manifest(self.path)
        if previous is None:
            own: set[str] = set()
            foreign = set(before)
        elif previous.get("complete"):
            own = set(previous.get("own", [])) & before
            foreign = before - own
        else:  # killed: everything beside what was there before it started is its own
            foreign = set(previous.get("foreign", [])) & before
            own = before - foreign
        same_output = previous is not None and previous.get("kind") == self.kind and (
            not self.command or previous.get("command") == self.command
        )
        if before and self.resume and same_output:
            self._previous = previous
        elif before and not self.overwrite:
            if own and previous is not None:
                what = f"a {'finished' if previous.get('complete') else 'partial'} {previous.get('kind')} "
                what += f"written by `{previous.get('command') or previous.get('kind')}`"
                what += f" ({_listing(own)})"
                if foreign:
                    what += f", beside {_listing(foreign)}, which domainclip did not write"
                raise OutputExistsError(f"output folder {self.path} already holds {what}; {self.hint}")
            raise OutputExistsError(
                f"output folder {self.path} is not empty: it holds {_listing(foreign)}, which domainclip did not "
                f"write; choose an empty or new folder" + (f" (or pass {self.flag})" if self.allow_foreign else "")
            )
        elif before:  # overwrite
            if foreign and not self.allow_foreign:
                raise OutputExistsError(
                    f"output folder {self.path} holds {_listing(foreign)}, which domainclip did not write; "
                    f"{self.flag} only replaces domainclip's own files: move them or choose another folder"
                )
            for name in own:
                _remove(self.path / name)
        self._foreign = foreign
        self._before = _entries(self.path)

    def _write_manifest(self, complete: bool) -> None:
        now = _entries(self.path)
        own = sorted(now - self._foreign)
        previous_started = (self._previous or {}).get("started")
        manifest = {
            "version": _MANIFEST_VERSION,
            "kind": self.kind,
            "command": self.command,
            "args": self.args,
            "complete": complete,
            "pid": os.getpid(),
            "started": previous_started or self._started,
            "updated": time.time(),
            "own": own,
            "foreign": sorted(self._foreign),
        }
        atomic_write_text(self.path / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")

    def checkpoint(self) -> None:
        """Record the entries written so far (still ``complete: false``); call after a durable step."""
        if not self.nested:
            self._write_manifest(complete=False)

    def _cleanup(self) -> None:
        keep = self.keep_on_error(self.path) if callable(self.keep_on_error) else self.keep_on_error
        if keep and not (_entries(self.path) - self._before):
            keep = False  # nothing new to continue from (e.g. a user mistake found first): leave nothing behind
        if keep:
            with contextlib.suppress(OSError):
                self._write_manifest(complete=False)
            return
        try:
            if self.created and not self._foreign:
                _remove(self.path)
                return
            for name in _entries(self.path) - self._before:
                _remove(self.path / name)
            if self._previous is None and not (_entries(self.path) - self._foreign):
                (self.path / MANIFEST_NAME).unlink(missing_ok=True)
                (self.path / LOCK_NAME).unlink(missing_ok=True)
            else:
                self._write_manifest(complete=bool(self._previous and self._previous.get("complete")))
        except OSError:
            pass  # the original error matters more than a failed cleanup (e.g. on a full disk)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

