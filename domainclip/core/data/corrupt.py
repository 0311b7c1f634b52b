"""Corrupt-sample policy: per-reason accounting, examples, and the too-many-corrupt error.

Decoding errors are caught one sample at a time and counted by *reason* (``bad_image``,
``bad_json``, ``bad_text``, ``bad_label``, ``missing_key:<key>``, ``bad_shard``); nothing else is
dropped. A decode function signals a reason by raising :class:`CorruptSampleError`. When the share
of corrupt samples passes the loader's ``max_corrupt_fraction``, the loader raises
:class:`TooManyCorruptSamplesError`, whose message lists the counts by reason and one example
(shard URL and sample key) for each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from domainclip.core.errors import DomainClipError

__all__ = [
    "BAD_IMAGE",
    "BAD_JSON",
    "BAD_LABEL",
    "BAD_SHARD",
    "BAD_TEXT",
    "BAD_VIDEO",
    "CorruptSampleError",
    "CorruptTally",
    "TooManyCorruptSamplesError",
    "missing_key",
]

#: An image that cannot be decoded (truncated, not an image, wrong array layout), or one whose header
#: declares more pixels than the decoder's ``max_image_pixels`` (refused before decoding).
BAD_IMAGE = "bad_image"
#: A ``.json`` / ``.text.json`` / ``.label.json`` member that is not valid JSON of the expected type.
BAD_JSON = "bad_json"
#: A caption that is not UTF-8, is empty, or has an unusable structure.
BAD_TEXT = "bad_text"
#: A ``.cls`` member that is not an integer.
BAD_LABEL = "bad_label"
#: A video member (``.mp4``, ``.webm``, ... or ``.frames.npy``) that cannot be decoded.
BAD_VIDEO = "bad_video"
#: A shard that cannot be opened or is truncated/invalid; the samples read before the damage are kept.
BAD_SHARD = "bad_shard"


def missing_key(key: str) -> str:
    """Reason string for a sample that lacks the required canonical ``key``."""
    return f"missing_key:{key}"


class CorruptSampleError(ValueError):
    """Raised by a decode function for a sample that must be skipped and counted.

    Args:
        reason: short machine-readable reason (``"bad_image"``, ``"missing_key:text"``, ...).
        detail: human-readable detail (the underlying error message).

    """

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # keep the two-argument constructor picklable
        return (type(self), (self.reason, self.detail))


class TooManyCorruptSamplesError(DomainClipError, RuntimeError):
    """The share of corrupt samples passed ``max_corrupt_fraction``.

    The constructor takes the full message as its only positional argument, so the error survives
    being re-raised from a DataLoader worker process.

    Args:
        message: the report (counts by reason, an example URL/key per reason).
        counts: corrupt counts by reason, when known.

    """

    def __init__(self, message: str, counts: Mapping[str, int] | None = None):
        super().__init__(message)
        self.counts = dict(counts or {})

    def __reduce__(self) -> tuple[type, tuple[str, dict[str, int]]]:  # keep the counts across processes
        return (type(self), (str(self), self.counts))


@dataclass
class CorruptTally:
    """Counts of good and corrupt samples by reason, with one example per reason.

    Used in two places: inside each data worker (where :meth:`take_delta` hands the counts
    accumulated since the previous batch to the main process) and in the loader (where
    :meth:`merge` aggregates them).

    Attributes:
        good: samples decoded successfully.
        counts: corrupt events by reason.
        examples: reason -> ``"<url> key=<key>: <detail>"`` for the first event seen.

    """

    good: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    _delta_good: int = 0
    _delta_counts: dict[str, int] = field(default_factory=dict)
    _delta_examples: dict[str, str] = field(default_factory=dict)

    # ----------------------------------------------------------------- recording
    def add(self, reason: str, url: str | None, key: str | None, detail: str) -> None:
        """Record one corrupt event (a sample, or a damaged shard)."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self._delta_counts[reason] = self._delta_counts.get(reason, 0) + 1
        if reason not in self.examples:
            example = _format_example(url, key, detail)
            self.examples[reason] = example
            self._delta_examples[reason] = example

    def add_good(self, n: int = 1) -> None:
        """Record ``n`` successfully decoded samples."""
        self.good += n
        self._delta_good += n

    def absorb(self, other: CorruptTally) -> None:
        """Record everything ``other`` recorded (its good count, corrupt counts and examples)."""
        self.add_good(other.good)
        for reason, n in other.counts.items():
            self.counts[reason] = self.counts.get(reason, 0) + n
            self._delta_counts[reason] = self._delta_counts.get(reason, 0) + n
            if reason not in self.examples and reason in other.examples:
                self.examples[reason] = other.examples[reason]
                self._delta_examples[reason] = other.examples[reason]

    def take_delta(self) -> dict:
        """Return and clear what was recorded since the last call (sent along with a batch)."""
        delta = {
            "good": self._delta_good,
            "counts": dict(self._delta_counts),
            "examples": dict(self._delta_examples),
        }
        self.discard_delta()
        return delta

    def discard_delta(self) -> None:
        """Forget what was recorded since the last :meth:`take_delta` (used after a resume skip)."""
        self._delta_good = 0
        self._delta_counts = {}
        self._delta_examples = {}

    def merge(self, delta: Mapping) -> None:
        """Add a delta produced by :meth:`take_delta` in a worker."""
        self.good += int(delta.get("good", 0))
        for reason, n in delta.get("counts", {}).items():
            self.counts[reason] = self.counts.get(reason, 0) + int(n)
        for reason, example in delta.get("examples", {}).items():
            self.examples.setdefault(reason, example)

    # ----------------------------------------------------------------- queries
    @property
    def corrupt(self) -> int:
        """Total corrupt events."""
        return sum(self.counts.values())

    def fraction(self) -> float:
        """``corrupt / (corrupt + good)``, 0 when nothing was seen."""
        total = self.corrupt + self.good
        return self.corrupt / total if total else 0.0

    def exceeds(self, max_fraction: float, min_seen: int) -> bool:
        """Whether the corrupt share passes ``max_fraction`` once ``min_seen`` events were seen."""
        return self.corrupt + self.good >= min_seen and self.fraction() > max_fraction

    def report(self, header: str | None = None) -> str:
        """Return a readable summary: totals, then one line per reason with its example."""
        total = self.corrupt + self.good
        lines = [
            header
            or f"{self.corrupt} corrupt of {total} samples ({100.0 * self.fraction():.2f}%), {self.good} good"
        ]
        for reason in sorted(self.counts):
            example = self.examples.get(reason)
            suffix = f" (e.g. {example})" if example else ""
            lines.append(f"  {reason}: {self.counts[reason]}{suffix}")
        return "\n".join(lines)

    def error(self, max_fraction: float) -> TooManyCorruptSamplesError:
        """Build the :class:`TooManyCorruptSamplesError` describing the current counts."""
        total = self.corrupt + self.good
        header = (
            f"too many corrupt samples: {self.corrupt} of {total} "
            f"({100.0 * self.fraction():.2f}%) exceed max_corrupt_fraction={max_fraction}. "
            "Counts by reason, with an example shard and key:"
        )
        return TooManyCorruptSamplesError(self.report(header), self.counts)


def _format_example(url: str | None, key: str | None, detail: str) -> str:
    where = url or "<unknown url>"
    if key is not None:
        where += f" key={key}"
    detail = " ".join(str(detail).split())
    if len(detail) > 200:
        detail = detail[:197] + "..."
    return f"{where}: {detail}" if detail else where
