"""Speech-to-text for narrated surgical videos: a transcriber interface, a registry, and a folder runner.

SurgLaVi transcribes the narration of surgical videos with Whisper before cutting it into
procedural units. A :class:`Transcriber` is any callable ``media_path -> list[Segment]``;
:data:`TRANSCRIBERS` maps names to factories:

* ``"faster-whisper"``: :class:`FasterWhisperTranscriber`, Whisper through the ``faster-whisper``
  package (CTranslate2), installed by ``pip install "domainclip[asr]"``;
* ``"transcript-file"``: :class:`TranscriptFileTranscriber`, which reads a transcript that already
  exists next to the video (or in given folders), for users who have transcripts already.

:func:`transcribe_folder` runs a transcriber over videos and writes ``<stem>.srt`` files
atomically, skipping the ones already written and counting failures by reason without stopping; a
run where every video failed raises :class:`~domainclip.core.errors.NothingWrittenError`.
``domainclip prepare surgery transcribe`` (:func:`transcribe_videos`) is its command.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from domainclip.core.errors import InputNotFoundError, NothingWrittenError
from domainclip.core.options import entry_point
from domainclip.core.plugins import UnknownNameError, require
from domainclip.core.prepare import resumable
from domainclip.domains.surgery.transcripts import (
    TRANSCRIPT_SUFFIXES,
    Segment,
    TranscriptError,
    read_transcript,
    write_srt,
)

__all__ = [
    "TRANSCRIBERS",
    "FasterWhisperTranscriber",
    "TranscriptFileTranscriber",
    "Transcriber",
    "get_transcriber",
    "register_transcriber",
    "transcribe_folder",
    "transcribe_videos",
]


@runtime_checkable
class Transcriber(Protocol):
    """Turns the speech of a video (or audio) file into timed text segments."""

    def __call__(self, media_path: str | Path) -> list[Segment]:
        """Transcribe ``media_path``; returns segments in time order."""
        ...


#: Transcriber name -> factory taking the transcriber's options as keywords.
TRANSCRIBERS: dict[str, Callable[..., Transcriber]] = {}


def register_transcriber(name: str) -> Callable[[Callable[..., Transcriber]], Callable[..., Transcriber]]:
    """Decorator registering a transcriber factory (usually a class) in :data:`TRANSCRIBERS`."""

    def decorator(factory: Callable[..., Transcriber]) -> Callable[..., Transcriber]:
        if name in TRANSCRIBERS:
            raise ValueError(f"transcriber {name!r} is already registered")
        TRANSCRIBERS[name] = factory
        return factory

    return decorator


def get_transcriber(name: str, **options: Any) -> Transcriber:
    """Build the transcriber registered as ``name`` with ``options``.

    Raises:
        UnknownNameError: no such transcriber (close names listed).
        MissingExtraError: its optional dependency is not installed.

    """
    if name not in TRANSCRIBERS:
        raise UnknownNameError("transcriber", name, list(TRANSCRIBERS))
    return TRANSCRIBERS[name](**options)


@register_transcriber("faster-whisper")
class FasterWhisperTranscriber:
    """Whisper speech recognition with ``faster-whisper`` (CTranslate2); audio is read from the video.

    The model is loaded on first use (``faster_whisper.WhisperModel`` fetches ``model_size`` from the
    Hugging Face hub unless it is a local folder of converted weights).

    Args:
        model_size: Whisper size (``"tiny"``, ``"base"``, ``"small"``, ``"medium"``, ``"large-v3"``,
            ...) or a folder of CTranslate2 weights.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        compute_type: CTranslate2 quantisation (``"default"``, ``"int8"``, ``"float16"``, ...).
        language: spoken language code (None: detected per file).
        beam_size: beam search width.
        vad_filter: skip silence with Silero VAD before decoding (fewer hallucinated segments).
        download_root: where model files are cached.

    Raises:
        MissingExtraError: ``faster-whisper`` is not installed.

    """

    def __init__(
        self,
        model_size: str = "base",
        device: str = "auto",
        compute_type: str = "default",
        *,
        language: str | None = None,
        beam_size: int = 5,
        vad_filter: bool = True,
        download_root: str | None = None,
    ):
        self._module = require("faster_whisper", "asr", "transcribing audio")
        self.model_size = model_size
        self.device = device
        self.compute_type = compute_type
        self.language = language
        self.beam_size = beam_size
        self.vad_filter = vad_filter
        self.download_root = download_root
        self._model: Any = None

    def __call__(self, media_path: str | Path) -> list[Segment]:
        """Transcribe the speech of ``media_path``."""
        if self._model is None:
            self._model = self._module.WhisperModel(
                self.model_size, device=self.device, compute_type=self.compute_type, download_root=self.download_root
            )
        pieces, _info = self._model.transcribe(
            str(media_path), language=self.language, beam_size=self.beam_size, vad_filter=self.vad_filter
        )
        segments = []
        for piece in pieces:  # a generator: decoding happens while iterating
            text = " ".join(str(piece.text).split())
            if text and piece.end >= piece.start:
                segments.append(Segment(float(piece.start), float(piece.end), text))
        return segments


@register_transcriber("transcript-file")
class TranscriptFileTranscriber:
    """Read an existing transcript instead of transcribing: ``<stem><suffix>`` near the video.

    Args:
        search_dirs: folders searched after the video's own folder.
        suffixes: transcript suffixes tried, in order (default: every readable one).

    """

    def __init__(self, search_dirs: Sequence[str | Path] = (), suffixes: Sequence[str] = TRANSCRIPT_SUFFIXES):
        unknown = [s for s in suffixes if s not in TRANSCRIPT_SUFFIXES]
        if unknown:
            raise UnknownNameError("transcript suffix", unknown[0], list(TRANSCRIPT_SUFFIXES))
        self.search_dirs = tuple(Path(d) for d in search_dirs)
        self.suffixes = tuple(suffixes)

    def find(self, media_path: str | Path) -> Path | None:
        """The transcript file of ``media_path``, or None."""
        media = Path(media_path)
        for folder in (media.parent, *self.search_dirs):
            for suffix in self.suffixes:
                candidate = folder / f"{media.stem}{suffix}"
                if candidate.is_file() and candidate != media:
                    return candidate
        return None

    def __call__(self, media_path: str | Path) -> list[Segment]:
        """Segments of the transcript found for ``media_path``.

        Raises:
            InputNotFoundError: no transcript, naming the folders and names looked for (a
                ``FileNotFoundError``).

        """
        found = self.find(media_path)
        if found is None:
            media = Path(media_path)
            folders = ", ".join(str(d) for d in (media.parent, *self.search_dirs))
            names = ", ".join(f"{media.stem}{s}" for s in self.suffixes)
            raise InputNotFoundError(f"{media}: no transcript ({names}) in {folders}")
        return read_transcript(found)


#: Failure reasons of :func:`transcribe_folder`: the transcriber found no transcript or audio
#: (``FileNotFoundError``), the video cannot be decoded, a transcript it read is malformed, or
#: anything else the transcriber raised.
NO_TRANSCRIPT, DECODE_ERROR, BAD_TRANSCRIPT, TRANSCRIBER_ERROR = (
    "no_transcript", "decode_error", "bad_transcript", "transcriber_error",
)


def _failure_reason(error: BaseException) -> str:
    from domainclip.domains.surgery.video import VideoDecodeError

    if isinstance(error, VideoDecodeError):
        return DECODE_ERROR
    if isinstance(error, TranscriptError):
        return BAD_TRANSCRIPT
    if isinstance(error, FileNotFoundError):
        return NO_TRANSCRIPT
    return TRANSCRIBER_ERROR


def transcribe_folder(
    videos: str | Path | Iterable[str | Path],
    out_dir: str | Path,
    transcriber: Transcriber,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Transcribe videos into ``out_dir/<stem>.srt`` (atomic writes), going on past failures.

    Args:
        videos: video files and/or folders (searched recursively for video files).
        out_dir: folder for the ``.srt`` files (created).
        transcriber: the :class:`Transcriber` to run.
        overwrite: transcribe again videos whose ``.srt`` exists (default: skip them).
        progress: show a progress bar.

    Returns:
        ``{"out_dir", "written": [srt paths], "segments": {stem: count}, "skipped_existing": [srt paths],
        "failed": [{"video", "reason", "error"}], "failed_by_reason": {reason: count}}``; reasons are
        ``no_transcript``, ``decode_error``, ``bad_transcript`` and ``transcriber_error``.

    Raises:
        NothingWrittenError: every video failed (none written, none there already); the message
            counts the failures by reason, with an example each.

    """
    from tqdm.auto import tqdm

    from domainclip.domains.surgery.clips import find_videos

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    existing: list[str] = []
    failed: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    examples: dict[str, str] = {}
    paths = find_videos(videos)
    for video in tqdm(paths, disable=not progress, unit="video", desc="transcribing"):
        target = out / f"{video.stem}.srt"
        if target.exists() and not overwrite:
            existing.append(str(target))
            continue
        try:
            segments = [s for s in transcriber(video) if s.text.strip()]
            write_srt(segments, target)
        except Exception as e:  # one bad video (decode error, model error) must not stop the folder
            reason = _failure_reason(e)
            failed.append({"video": str(video), "reason": reason, "error": f"{type(e).__name__}: {e}"})
            examples.setdefault(reason, str(e) if str(video) in str(e) else f"{video}: {e}")
            continue
        written.append(str(target))
        counts[video.stem] = len(segments)
    by_reason = Counter(item["reason"] for item in failed)
    if failed and not written and not existing:

        inputs = f"{len(paths)} video{'' if len(paths) == 1 else 's'}"
        raise NothingWrittenError.from_counts("surgery/transcribe", "transcripts", inputs, by_reason, examples)
    return {"out_dir": str(out), "written": written, "segments": counts, "skipped_existing": existing,
            "failed": failed, "failed_by_reason": dict(sorted(by_reason.items()))}  # fmt: skip


@resumable
@entry_point
def transcribe_videos(
    out: Path,
    videos: list[Path],
    *,
    transcriber: str = "faster-whisper",
    model_size: str = "base",
    device: str = "auto",
    compute_type: str = "default",
    language: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Transcribe the narration of surgical videos into <stem>.srt files (faster-whisper).

    Resumable: run again into the same ``out``, it keeps the ``.srt`` files an earlier run wrote
    and transcribes only the videos without one; ``--overwrite`` (which every prepare command
    takes) removes them first, so every video is transcribed again.

    Args:
        out: folder for the <video stem>.srt transcripts.
        videos: video files and/or folders (searched recursively).
        transcriber: a transcriber of :data:`TRANSCRIBERS` (faster-whisper, transcript-file).
        model_size: Whisper model size or CTranslate2 folder (faster-whisper).
        device: auto, cpu or cuda (faster-whisper).
        compute_type: CTranslate2 compute type, e.g. int8 or float16 (faster-whisper).
        language: spoken language code (default: detected; faster-whisper).
        progress: show a progress bar.

    Returns:
        The summary of :func:`transcribe_folder`.
    """
    options: dict[str, Any] = {}
    if transcriber == "faster-whisper":
        options = {"model_size": model_size, "device": device, "compute_type": compute_type, "language": language}
    return transcribe_folder(videos, out, get_transcriber(transcriber, **options), progress=progress)
