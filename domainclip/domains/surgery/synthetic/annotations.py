"""Annotation files of generated procedures: the Cholec80 phase and tool files, and ``levels.csv``."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path

from domainclip.core.io import atomic_write_text
from domainclip.domains.surgery.synthetic.truth import ProcedureTruth
from domainclip.domains.surgery.synthetic.vocabulary import LEVELS_CSV_FIELDS, TOOL_PERIOD, TOOLS

__all__ = ["LAYOUTS", "write_levels_csv"]


def _write_cholec80(out_dir: Path, truth: ProcedureTruth) -> dict[str, Path]:
    """Cholec80 layout: ``videos/<id>.mp4``, ``phase_annotations/<id>-phase.txt``, ``tool_annotations/<id>-tool.txt``.

    Writes the two annotation files and returns their paths and the path the video goes to.
    """
    vid = truth.video_id
    phase_path = out_dir / "phase_annotations" / f"{vid}-phase.txt"
    tool_path = out_dir / "tool_annotations" / f"{vid}-tool.txt"
    lines = ["Frame\tPhase"]
    for span in truth.phases:
        lines.extend(f"{f}\t{span.phase}" for f in range(span.start_frame, span.end_frame))
    atomic_write_text(phase_path, "\n".join(lines) + "\n")
    lines = ["Frame\t" + "\t".join(TOOLS)]
    lines.extend(f"{k * TOOL_PERIOD}\t" + "\t".join(map(str, row)) for k, row in enumerate(truth.tool_schedule))
    atomic_write_text(tool_path, "\n".join(lines) + "\n")
    return {"video": out_dir / "videos" / f"{vid}.mp4", "phase": phase_path, "tool": tool_path}


#: On-disk layouts: name -> ``(frame rate the layout's annotations assume, writer of the annotation
#: files returning their paths)``; ``video`` is where the MP4 goes. Cholec80 annotates one phase row
#: per frame and one tool row per second at 25 fps, and its readers rely on that rate.
LAYOUTS: dict[str, tuple[float, Callable[[Path, ProcedureTruth], dict[str, Path]]]] = {
    "cholec80": (25.0, _write_cholec80),
}


def write_levels_csv(path: str | Path, truths: Sequence[ProcedureTruth]) -> Path:
    """Write ``levels.csv`` (:data:`LEVELS_CSV_FIELDS`) for all ``truths`` in one atomic write.

    Read it back with :func:`domainclip.domains.surgery.levels.read_level_table`.
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LEVELS_CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for truth in truths:
        for row in truth.level_rows():
            writer.writerow({**row, "start": f"{row['start']:.3f}", "end": f"{row['end']:.3f}"})
    return atomic_write_text(path, buf.getvalue())
