"""Small file helpers shared by the core: atomic writes (complete or absent) and JSON-lines reading."""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_output",
    "check_distinct_ids",
    "find_inputs",
    "atomic_write_bytes",
    "atomic_write_text",
    "new_file_mode",
    "new_folder_mode",
    "read_jsonl",
    "safe_key",
]


@functools.cache
def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def new_file_mode() -> int:
    """Mode of a newly created file under the process umask (``mkstemp`` itself uses 0600)."""
    return 0o666 & ~_umask()


def new_folder_mode() -> int:
    """Mode of a newly created folder under the process umask (``mkdtemp`` itself uses 0700)."""
    return 0o777 & ~_umask()


_file_mode = new_file_mode


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed to ``path``.

    For writers that need a file name (tifffile, PyAV, sqlite): the final file is complete or absent,
    never half-written, and has the ordinary permissions of a new file. On an exception the
    temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, new_file_mode())
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSON-lines file, in order.

    Raises:
        ValueError: naming the file and line of a record that is not a JSON object.
    """
    path = Path(path)
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object per line, got {type(record).__name__}")
        yield lineno, record


def safe_key(text: str) -> str:
    """``text`` with every character but letters, digits, ``-`` and ``_`` as ``_`` (shard keys, output names)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def check_distinct_ids(paths: Iterable[Path], what: str, key: Callable[[Path], str] = lambda p: p.stem) -> None:
    """Refuse two inputs whose outputs would have the same name (``key``, by default the file stem).

    Names that differ only in case are refused too: they collide on case-insensitive file systems.

    Raises:
        InputError: naming both inputs and the shared name (a ``ValueError``).
    """
    from domainclip.core.errors import InputError

    seen: dict[str, Path] = {}
    for path in paths:
        name = key(path)
        other = seen.setdefault(name.casefold(), path)
        if other is not path:
            raise InputError(
                f"{what}s {other} and {path} would both be written as {name!r} (outputs are named by the file name "
                "without its suffix); rename one or run them separately"
            )


def find_inputs(
    specs: str | os.PathLike | Iterable[str | os.PathLike],
    suffixes: Iterable[str],
    *,
    what: str,
    key: Callable[[Path], str] = lambda p: p.stem,
) -> list[Path]:
    """The input files a batch command was given: files, folders (searched recursively) and glob patterns.

    Args:
        specs: one or several paths, folders or patterns.
        suffixes: the file suffixes a folder is searched for (lower case, with the dot).
        what: what the files are (``"slide"``, ``"video"``), for messages.
        key: the name a file's outputs get (see :func:`check_distinct_ids`).

    Returns:
        Each file once, in the order given (sorted within a folder or a pattern).

    Raises:
        InputNotFoundError: a path does not exist, or a pattern matches nothing.
        InputError: nothing was found, or two files would have outputs of the same name.
    """
    from domainclip.core.errors import InputError, InputNotFoundError

    items = [specs] if isinstance(specs, str | os.PathLike) else list(specs)
    allowed = tuple(suffixes)
    found: list[Path] = []
    for item in items:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in allowed)
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise InputNotFoundError(f"no files match {text!r}")
            found += matches
        else:
            raise InputNotFoundError(f"{what} {path} does not exist")
    if not found:
        raise InputError(f"no {what} files ({', '.join(allowed)}) under {', '.join(map(str, items))}")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    check_distinct_ids(unique.values(), what, key)
    return list(unique.values())
