"""The user-error base class and its common kinds.

Everything a user can get wrong (a recipe key, a missing file, an output folder that holds
someone else's files, a slide without a resolution) raises a subclass of :class:`DomainClipError`.
The ``domainclip`` command prints such an error as one line naming the input and what is wrong and
exits with code 2; any other exception is a bug and keeps its traceback.

The kinds below also derive from the built-in exception a Python caller would expect
(``ValueError``, ``FileNotFoundError``, ...), so ``except FileNotFoundError`` keeps working.
Domains derive their own errors (``SlideError``, ``VideoDecodeError``, ...) from these.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping

__all__ = [
    "DatasetNotFoundError",
    "DomainClipError",
    "InputError",
    "InputNotFoundError",
    "NothingWrittenError",
    "OutputError",
    "OutputExistsError",
    "OutputInUseError",
    "RecipeError",
    "is_environment_error",
]


class DomainClipError(Exception):
    """Base class of every error caused by the user's input, files or environment.

    The message must stand on its own in one line: which input (file, key, flag) and what is wrong.
    """

    #: exit status of the ``domainclip`` command for this error
    exit_code: int = 2


class InputError(DomainClipError, ValueError):
    """A value the user gave (flag, recipe key, file content) is invalid."""


class RecipeError(InputError):
    """A recipe is invalid; the message names the file and the key."""


class InputNotFoundError(DomainClipError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class DatasetNotFoundError(InputNotFoundError):
    """A dataset folder does not hold the files of its public layout; the message says what is expected."""


class OutputError(DomainClipError, OSError):
    """An output path cannot be used (not writable, not a folder, ...)."""


class OutputExistsError(OutputError, FileExistsError):
    """An output folder already holds files this command must not replace."""


class OutputInUseError(OutputError):
    """Another domainclip process is writing the same output folder."""


class NothingWrittenError(DomainClipError):
    """A batch command skipped every input, so it wrote nothing; the message counts the reasons."""

    @classmethod
    def from_counts(
        cls, command: str, what: str, inputs: str, counts: Mapping[str, int], examples: Mapping[str, str]
    ) -> NothingWrittenError:
        """The error of a batch command that wrote nothing: why, counted by reason, with one example each.

        Args:
            command: the command (``"pathology/patches"``).
            what: what it writes (``"patches"``).
            inputs: what it read (``"2 slides"``).
            counts: reason -> inputs skipped (or outputs dropped) for it.
            examples: reason -> an example naming the input and what is wrong with it.

        Returns:
            ``"<command> wrote no <what> from <inputs>: <reason>: <n> (e.g. ...); ..."``, most
            frequent reason first.
        """
        parts = []
        for reason, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            if count:
                example = " ".join(str(examples.get(reason, "")).split())
                example = example if len(example) <= 300 else example[:297] + "..."
                parts.append(f"{reason}: {count}" + (f" (e.g. {example})" if example else ""))
        return cls(f"{command} wrote no {what} from {inputs}: {'; '.join(parts) or 'nothing to read'}")


#: ``OSError`` numbers that describe the user's machine, not a bug: no permission, read-only file
#: system, disk or quota full, name too long.
_ENVIRONMENT_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG}
)


def is_environment_error(error: BaseException) -> bool:
    """Whether ``error`` is an ``OSError`` caused by the machine (permissions, full disk), not a bug."""
    return isinstance(error, OSError) and error.errno in _ENVIRONMENT_ERRNOS
