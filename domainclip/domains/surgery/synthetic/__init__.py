r"""Synthetic laparoscopic-cholecystectomy-like procedures: videos, Cholec80-style annotations, narration.

The surgery domain trains SurgCLIP-style video-text models on hierarchical clip-caption pairs
(SurgLaVi's three levels: ``phase`` the coarsest, ``step``, and ``task`` the finest, a few seconds of
one narrated action). This generator makes small procedures with that structure and the public
Cholec80 on-disk layout, so the CPU-quick recipe and the tests have real signal without downloads.

Each procedure follows the 7 Cholec80 phases in order (:data:`PHASES`; some skipped or shortened),
split into 2-3 :data:`STEPS`, narrated with :data:`NARRATION` sentences (the ``task`` level) and now
and then a :data:`FILLER` remark SurgLaVi's text filter drops (:mod:`.vocabulary`, :mod:`.truth`).
The pictures (:mod:`.scene`, :mod:`.instruments`, :mod:`.render`) show the anatomy of each phase and
the 7 Cholec80 tools (:data:`TOOLS`), present per :data:`PHASE_TOOL_PROBS` in blocks of
:data:`TOOL_PERIOD` frames, exactly the rows of the tool annotation file.

**Files** (layout ``"cholec80"``, each written atomically)::

    out/videos/<video_id>.mp4                       H.264, encoded frame by frame
    out/phase_annotations/<video_id>-phase.txt      "Frame\tPhase", one row per frame
    out/tool_annotations/<video_id>-tool.txt        "Frame\tGrasper\t...\tSpecimenBag", every 25 frames
    out/transcripts/<video_id>.srt                  the timed narration
    out/levels.csv                                  video_id,start,end,level,text,is_descriptive,
                                                    is_surgical_content
    out/synthetic-summary.json                      what was generated

``levels.csv`` is read by :func:`domainclip.domains.surgery.levels.read_level_table`. Everything a
video contains depends only on its seed; memory does not grow with the video length (frames are
rendered from precomputed scene canvases and encoded one at a time).

:func:`generate_procedures` is the ``domainclip prepare surgery synthetic`` command; the timeline
comes from :mod:`.vocabulary` and :mod:`.truth`, the annotation files from :mod:`.annotations`.
"""

from domainclip.domains.surgery.synthetic.annotations import LAYOUTS, write_levels_csv
from domainclip.domains.surgery.synthetic.procedures import generate_procedure, generate_procedures
from domainclip.domains.surgery.synthetic.render import render_frames
from domainclip.domains.surgery.synthetic.truth import (
    NarrationLine,
    PhaseSpan,
    ProcedureTruth,
    StepSpan,
    plan_procedure,
    video_id_for,
)
from domainclip.domains.surgery.synthetic.vocabulary import (
    FILLER,
    LEVELS_CSV_FIELDS,
    NARRATION,
    PHASE_CAPTIONS,
    PHASE_TOOL_PROBS,
    PHASES,
    STEPS,
    TOOL_PERIOD,
    TOOLS,
)

__all__ = [
    "FILLER",
    "LAYOUTS",
    "LEVELS_CSV_FIELDS",
    "NARRATION",
    "PHASES",
    "PHASE_CAPTIONS",
    "PHASE_TOOL_PROBS",
    "STEPS",
    "TOOLS",
    "TOOL_PERIOD",
    "NarrationLine",
    "PhaseSpan",
    "ProcedureTruth",
    "StepSpan",
    "generate_procedure",
    "generate_procedures",
    "plan_procedure",
    "render_frames",
    "video_id_for",
    "write_levels_csv",
]
