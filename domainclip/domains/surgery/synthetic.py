r"""Synthetic laparoscopic-cholecystectomy-like procedures: videos, Cholec80-style annotations, narration.

The surgery domain trains SurgCLIP-style video-text models on hierarchical clip-caption pairs
(SurgLaVi's three levels: ``phase`` the coarsest, ``step``, and ``task`` the finest, a few seconds of
one narrated action). This generator makes small procedures with that structure and the public
Cholec80 on-disk layout, so the CPU-quick recipe and the tests have real signal without downloads.

**Procedure.** The 7 Cholec80 phases (:data:`PHASES`) in their fixed order. Some phases may be
skipped (never Calot triangle dissection, clipping and cutting or gallbladder dissection) and any
may be shortened; the order never changes. Every phase is split into 2-3 ordered steps
(:data:`STEPS`), each with its own caption. Inside each step the surgeon narrates: sentences from
the phase's pool (:data:`NARRATION`) follow one another, each with the caption of the action it
names (the ``task`` level); now and then a remark that SurgLaVi's text filter would drop
(:data:`FILLER`, flagged not descriptive and/or not surgical). The whole video also has one
procedure caption (``ProcedureTruth.procedure_caption``).

**Pictures.** A reddish tissue texture (smooth value noise, vessel ridges, yellow fat) with a liver,
a gallbladder and the cystic duct and artery, redrawn per phase: fat-covered gallbladder
(preparation), yellow fibrous Calot triangle with the duct and artery appearing (dissection),
silver clips whose number grows, then a cut (clipping), a gallbladder lifting off a raw red liver
bed (dissection), a free gallbladder (packaging), a wet bluish field with blood pools that shrink
(cleaning), a darker view (retraction). The 7 Cholec80 tools (:data:`TOOLS`) are grey instruments
entering from the image border with moving tips (grasper jaws, blue-banded bipolar, L-hook,
scissor blades, clip applier holding a clip, thin irrigator with spray) and a white specimen bag
lying in the scene; their presence follows per-phase probabilities (:data:`PHASE_TOOL_PROBS`) in
blocks of :data:`TOOL_PERIOD` frames, exactly the rows of the tool annotation file. Cautery smoke
follows the hook and the bipolar. The camera pans and zooms slowly towards a per-phase target; a
laparoscope vignette and sensor noise finish each frame.

**Files** (layout ``"cholec80"``, each written atomically)::

    out_dir/videos/<video_id>.mp4                        H.264, encoded frame by frame
    out_dir/phase_annotations/<video_id>-phase.txt       "Frame\tPhase", one row per frame
    out_dir/tool_annotations/<video_id>-tool.txt         "Frame\tGrasper\t...\tSpecimenBag", every 25 frames
    out_dir/transcripts/<video_id>.srt                   the timed narration
    out_dir/levels.csv                                   video_id,start,end,level,text,is_descriptive,
                                                         is_surgical_content (generate_procedures)
    out_dir/synthetic-summary.json                       what was generated (generate_procedures)

``levels.csv`` is read by :func:`domainclip.domains.surgery.levels.read_level_table`. Everything a
video contains depends only on its seed; memory does not grow with the video length (frames are
rendered from precomputed scene canvases and encoded one at a time).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from domainclip.core.io import atomic_output, atomic_write_text
from domainclip.core.parallel import map_unordered
from domainclip.core.plugins import PrepareCommand, UnknownNameError, require
from domainclip.domains.surgery.labels import CHOLEC80_PHASES, CHOLEC80_TOOLS

__all__ = [
    "FILLER",
    "LAYOUTS",
    "LEVELS_CSV_FIELDS",
    "NARRATION",
    "PHASES",
    "PHASE_CAPTIONS",
    "PHASE_TOOL_PROBS",
    "STEPS",
    "SYNTHETIC",
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

#: Generator name recorded in summaries.
GENERATOR = "domainclip.domains.surgery.synthetic"
#: Licence of the generated data.
LICENCE = "CC0-1.0"

#: The 7 Cholec80 phases, in procedure order (the names used by the Cholec80 phase files).
PHASES: tuple[str, ...] = CHOLEC80_PHASES
#: The 7 Cholec80 tools, in the column order of the Cholec80 tool files.
TOOLS: tuple[str, ...] = CHOLEC80_TOOLS
#: Frames between two tool annotation rows (Cholec80: one row every 25 frames).
TOOL_PERIOD = 25

_READABLE: dict[str, str] = {
    "Preparation": "preparation",
    "CalotTriangleDissection": "Calot triangle dissection",
    "ClippingCutting": "clipping and cutting",
    "GallbladderDissection": "gallbladder dissection",
    "GallbladderPackaging": "gallbladder packaging",
    "CleaningCoagulation": "cleaning and coagulation",
    "GallbladderRetraction": "gallbladder retraction",
}

#: Probability that each tool (columns in :data:`TOOLS` order) is visible during each phase.
PHASE_TOOL_PROBS: dict[str, tuple[float, ...]] = {
    #                         Grasper Bipolar Hook  Scissors Clipper Irrigator Bag
    "Preparation":             (0.80, 0.04, 0.35, 0.00, 0.00, 0.05, 0.00),
    "CalotTriangleDissection": (0.95, 0.05, 0.90, 0.02, 0.02, 0.03, 0.00),
    "ClippingCutting":         (0.90, 0.03, 0.05, 0.45, 0.80, 0.02, 0.00),
    "GallbladderDissection":   (0.95, 0.10, 0.85, 0.02, 0.01, 0.05, 0.00),
    "GallbladderPackaging":    (0.85, 0.02, 0.03, 0.00, 0.00, 0.02, 0.95),
    "CleaningCoagulation":     (0.55, 0.55, 0.05, 0.01, 0.01, 0.65, 0.10),
    "GallbladderRetraction":   (0.75, 0.05, 0.02, 0.00, 0.00, 0.10, 0.90),
}

#: Relative phase lengths (before random jitter); the two dissections dominate, as in Cholec80.
_PHASE_WEIGHTS: tuple[float, ...] = (0.08, 0.27, 0.11, 0.24, 0.09, 0.12, 0.09)
#: Probability that a phase is left out of a procedure (the order of the others is kept).
_PHASE_SKIP: tuple[float, ...] = (0.05, 0.0, 0.0, 0.0, 0.05, 0.2, 0.1)
#: Probability that a phase is shortened to about a third of its drawn length.
_SHORTEN = 0.15
#: Probability that a narration slot holds a remark from :data:`FILLER` instead of a phase sentence.
_FILLER_RATE = 0.08

#: Surgeon-style narration, per phase: (spoken sentence, caption of the action it names).
NARRATION: dict[str, tuple[tuple[str, str], ...]] = {
    "Preparation": (
        ("We start by inserting the trocars and inspecting the abdominal cavity.",
         "The trocars are inserted and the abdominal cavity is inspected with the laparoscope."),
        ("The camera is in, pneumoperitoneum is established, no adhesions to the gallbladder.",
         "The laparoscope shows the insufflated abdomen and a gallbladder free of adhesions."),
        ("I grasp the fundus of the gallbladder and push it up over the liver.",
         "A grasper holds the gallbladder fundus and pushes it up over the liver."),
        ("Let's have a look at the liver edge and the gallbladder before we begin.",
         "The camera surveys the liver edge and the gallbladder."),
        ("The gallbladder is a bit distended and there is fat covering the infundibulum.",
         "A distended gallbladder with fat covering its infundibulum."),
        ("We retract the fundus cranially to expose the hepatoduodenal region.",
         "The fundus is retracted cranially to expose the hepatoduodenal region."),
        ("The assistant holds the grasper on the fundus while I position the camera.",
         "The assistant's grasper holds the fundus while the camera is positioned."),
        ("Some omental adhesions here, I take them down gently with the grasper.",
         "Omental adhesions are taken down gently with a grasper."),
    ),
    "CalotTriangleDissection": (
        ("Now we open the peritoneum over Calot's triangle with the hook.",
         "The hook opens the peritoneum over Calot's triangle."),
        ("I pull the infundibulum laterally to open up the hepatocystic triangle.",
         "The infundibulum is pulled laterally to open the hepatocystic triangle."),
        ("Careful dissection of the fatty tissue around the cystic duct.",
         "Fatty tissue around the cystic duct is dissected with the hook."),
        ("Here you can see the cystic artery running up towards the gallbladder.",
         "The cystic artery is seen running up to the gallbladder."),
        ("We clear the lower part of the gallbladder from the liver bed for the critical view of safety.",
         "The lower gallbladder is cleared from the liver bed for the critical view of safety."),
        ("Short bursts of coagulation with the hook, staying close to the gallbladder.",
         "The hook coagulates in short bursts close to the gallbladder, raising smoke."),
        ("Both structures entering the gallbladder are now clearly identified.",
         "The cystic duct and the cystic artery entering the gallbladder are exposed."),
        ("We dissect the posterior peritoneal leaf to free the cystic duct.",
         "The posterior peritoneal leaf is dissected to free the cystic duct."),
    ),
    "ClippingCutting": (
        ("Now we place the clips on the cystic artery, two on the patient side.",
         "Two clips are placed on the patient side of the cystic artery."),
        ("The clip applier goes around the cystic duct and we fire the first clip.",
         "The clip applier closes around the cystic duct and fires a clip."),
        ("One more clip on the gallbladder side before we divide it.",
         "Another clip is applied on the gallbladder side."),
        ("We cut the cystic artery between the clips with the scissors.",
         "Scissors cut the cystic artery between the clips."),
        ("Now the cystic duct is divided, the clips look secure.",
         "The divided cystic duct with secure clips."),
        ("Check that the clips are fully across the duct before cutting.",
         "The clips are checked across the cystic duct before cutting."),
        ("I put a third clip on the duct because it is quite wide.",
         "A third clip is placed on a wide cystic duct."),
        ("Scissors in, and we transect the cystic duct.",
         "Scissors transect the clipped cystic duct."),
    ),
    "GallbladderDissection": (
        ("Now we dissect the gallbladder off the liver bed with the hook.",
         "The hook dissects the gallbladder off the liver bed."),
        ("Keep the plane between the gallbladder and the liver, staying on the gallbladder wall.",
         "Dissection follows the plane between the gallbladder wall and the liver."),
        ("I lift the gallbladder up and work from the infundibulum towards the fundus.",
         "The gallbladder is lifted and dissected from the infundibulum towards the fundus."),
        ("A little bleeding from the liver bed, we coagulate it.",
         "Bleeding from the liver bed is coagulated."),
        ("Traction and countertraction with the grasper helps to find the plane.",
         "The grasper pulls on the gallbladder to open the dissection plane."),
        ("We are almost at the fundus, the gallbladder is nearly free.",
         "The gallbladder is nearly free, only the fundus remains attached."),
        ("Careful not to perforate the gallbladder here, the wall is thin.",
         "Careful dissection along the thin gallbladder wall."),
        ("The last attachments at the fundus are divided and the gallbladder is free.",
         "The last fundal attachments are divided and the gallbladder is detached."),
    ),
    "GallbladderPackaging": (
        ("Now we introduce the specimen bag through the umbilical port.",
         "A specimen bag is introduced through the umbilical port."),
        ("The bag is opened and we place the gallbladder inside.",
         "The gallbladder is placed inside the opened specimen bag."),
        ("I push the gallbladder into the bag with the grasper.",
         "A grasper pushes the gallbladder into the specimen bag."),
        ("Make sure the whole gallbladder, including any stones, is in the bag.",
         "The whole gallbladder and its stones are put in the bag."),
        ("We close the bag by pulling on the string.",
         "The specimen bag is closed by pulling its string."),
        ("The specimen bag is placed above the liver for now.",
         "The closed specimen bag rests above the liver."),
        ("Unfold the bag completely before putting the specimen in.",
         "The specimen bag is unfolded completely."),
        ("The gallbladder is packed and the bag is closed.",
         "The gallbladder is packed in a closed specimen bag."),
    ),
    "CleaningCoagulation": (
        ("Now we irrigate the gallbladder bed and aspirate the fluid.",
         "The irrigator washes the gallbladder bed and aspirates the fluid."),
        ("Let's check the liver bed for bleeding and bile leakage.",
         "The liver bed is inspected for bleeding and bile leakage."),
        ("A small oozing point here, I coagulate it with the bipolar.",
         "The bipolar forceps coagulate an oozing point in the liver bed."),
        ("We wash the subhepatic space with saline until the fluid is clear.",
         "The subhepatic space is irrigated with saline until the fluid is clear."),
        ("The clips on the cystic duct and artery are still in place.",
         "The clips on the cystic duct and artery are checked."),
        ("Suction of the remaining fluid from Morison's pouch.",
         "Remaining fluid is aspirated from Morison's pouch."),
        ("Another look at the liver bed, hemostasis looks good.",
         "The liver bed shows good hemostasis."),
        ("We irrigate once more and aspirate the blood clots.",
         "Blood clots are irrigated and aspirated."),
    ),
    "GallbladderRetraction": (
        ("Now we retrieve the specimen bag through the umbilical port.",
         "The specimen bag is retrieved through the umbilical port."),
        ("The grasper holds the string of the bag and we pull it out.",
         "A grasper holds the bag string and pulls the bag out."),
        ("We extract the gallbladder in the bag under vision.",
         "The bagged gallbladder is extracted under vision."),
        ("The bag comes out through the port site, we may need to enlarge the incision.",
         "The specimen bag is pulled through the port site."),
        ("Removing the bag with the gallbladder inside, it comes out intact.",
         "The bag with the gallbladder comes out intact."),
        ("The specimen is out, we remove the trocars under vision.",
         "The trocars are removed under vision after the specimen is out."),
        ("Final look at the operative field before desufflation.",
         "A final view of the operative field before desufflation."),
        ("The trocars are removed and the pneumoperitoneum is released.",
         "The trocars are removed and the pneumoperitoneum is released."),
    ),
}

#: Remarks SurgLaVi's text filter drops: (sentence, is_descriptive, is_surgical_content).
FILLER: tuple[tuple[str, bool, bool], ...] = (
    ("Good morning everyone, thank you for joining this session.", False, False),
    ("Please subscribe to our channel for more surgical videos.", False, False),
    ("This video is for educational purposes only.", False, False),
    ("Can we have a bit more light, please?", False, True),
    ("Suction, please.", False, True),
    ("Alright, let's move on.", False, True),
)

#: Ordered steps of each phase: (step name, caption). A procedure uses an ordered subset of 2-3.
STEPS: dict[str, tuple[tuple[str, str], ...]] = {
    "Preparation": (
        ("insert trocars", "The trocars are inserted and the abdominal cavity is inspected."),
        ("expose gallbladder", "The gallbladder fundus is grasped and retracted over the liver."),
        ("release adhesions", "Omental adhesions around the gallbladder are released."),
    ),
    "CalotTriangleDissection": (
        ("dissect peritoneum", "The peritoneum over Calot's triangle is opened with the hook."),
        ("expose cystic duct", "The cystic duct is dissected free of fat."),
        ("expose cystic artery", "The cystic artery is dissected and identified."),
        ("critical view of safety", "The critical view of safety is obtained."),
    ),
    "ClippingCutting": (
        ("clip cystic artery", "Clips are applied to the cystic artery."),
        ("clip cystic duct", "Clips are applied to the cystic duct."),
        ("cut cystic artery and duct", "The cystic artery and duct are divided between the clips with scissors."),
    ),
    "GallbladderDissection": (
        ("lift gallbladder neck", "The gallbladder neck is lifted from the liver bed."),
        ("dissect liver bed", "The gallbladder is dissected from the liver bed with the hook."),
        ("free fundus", "The fundus is freed and the gallbladder is detached from the liver."),
    ),
    "GallbladderPackaging": (
        ("open specimen bag", "The specimen bag is introduced and opened."),
        ("insert gallbladder", "The gallbladder is placed into the specimen bag."),
        ("close specimen bag", "The specimen bag is closed with its string."),
    ),
    "CleaningCoagulation": (
        ("irrigate and aspirate", "The operative field is irrigated and the fluid aspirated."),
        ("coagulate liver bed", "Bleeding points in the liver bed are coagulated."),
        ("check clips", "The clips and the liver bed are inspected for bleeding and bile leaks."),
    ),
    "GallbladderRetraction": (
        ("grasp bag", "The specimen bag is grasped at its string."),
        ("extract specimen", "The specimen bag is extracted through the umbilical port."),
        ("remove trocars", "The trocars are removed under vision."),
    ),
}

#: Phase-level captions (one is drawn per phase occurrence).
PHASE_CAPTIONS: dict[str, tuple[str, ...]] = {
    "Preparation": (
        "Preparation: the trocars are placed, the abdomen is inspected and the gallbladder is exposed.",
        "The laparoscope is introduced and the gallbladder fundus is retracted over the liver.",
    ),
    "CalotTriangleDissection": (
        "Calot triangle dissection: the hepatocystic triangle is opened to expose the cystic duct and artery.",
        "Dissection of the fat and peritoneum of Calot's triangle with the hook until the critical view of safety.",
    ),
    "ClippingCutting": (
        "Clipping and cutting: the cystic artery and cystic duct are clipped and divided.",
        "Clips are applied to the cystic duct and artery, which are then cut with scissors.",
    ),
    "GallbladderDissection": (
        "Gallbladder dissection: the gallbladder is separated from the liver bed with the hook.",
        "The gallbladder is lifted and dissected off the liver from the neck to the fundus.",
    ),
    "GallbladderPackaging": (
        "Gallbladder packaging: the free gallbladder is placed in a specimen bag.",
        "A specimen bag is opened and the gallbladder is packed into it.",
    ),
    "CleaningCoagulation": (
        "Cleaning and coagulation: the liver bed is irrigated, aspirated and coagulated.",
        "The operative field is washed with saline and bleeding points are coagulated.",
    ),
    "GallbladderRetraction": (
        "Gallbladder retraction: the specimen bag is pulled out through a port.",
        "The bagged gallbladder is extracted and the trocars are removed.",
    ),
}

#: Columns of ``levels.csv`` (the flags are SurgLaVi's: 1 = kept by its text filter).
LEVELS_CSV_FIELDS: tuple[str, ...] = (
    "video_id", "start", "end", "level", "text", "is_descriptive", "is_surgical_content",
)
_LEVELS = ("task", "step", "phase")

# ----------------------------------------------------------------------------------------------
# Ground truth
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseSpan:
    """One phase occurrence: frames ``[start_frame, end_frame)``, seconds ``[start, end)``, its caption."""

    phase: str
    start_frame: int
    end_frame: int
    start: float
    end: float
    caption: str


@dataclass(frozen=True)
class StepSpan:
    """One step inside a phase: frames ``[start_frame, end_frame)``, seconds ``[start, end)``, caption."""

    phase: str
    name: str
    start_frame: int
    end_frame: int
    start: float
    end: float
    caption: str


@dataclass(frozen=True)
class NarrationLine:
    """One spoken sentence inside a step, ``start``/``end`` in seconds (whole milliseconds).

    ``caption`` describes the action (the ``task``-level text); filler remarks keep their own text
    as caption and carry SurgLaVi's flags unset.
    """

    start: float
    end: float
    text: str
    caption: str
    phase: str
    step: str
    is_descriptive: bool = True
    is_surgical_content: bool = True


@dataclass(frozen=True)
class ProcedureTruth:
    """Everything a generated procedure contains, as drawn before rendering.

    Args:
        video_id: e.g. ``"video01"``.
        seed: the seed that determines the whole procedure.
        fps: frames per second.
        size: ``(width, height)`` of the frames.
        num_frames: frames in the video.
        procedure_caption: caption of the whole video.
        phases: the phase occurrences, in order, covering every frame.
        steps: the steps, in order, covering every frame.
        narration: timed sentences, each inside its step (hence its phase), in order.
        tool_schedule: one row per :data:`TOOL_PERIOD` frames, one 0/1 column per tool of
            :data:`TOOLS`; row ``k`` holds for frames ``k*TOOL_PERIOD .. (k+1)*TOOL_PERIOD-1`` and is
            the tool annotation row of frame ``k*TOOL_PERIOD``.
        paths: files written (empty for a plan that was not generated).
    """

    video_id: str
    seed: int
    fps: float
    size: tuple[int, int]
    num_frames: int
    procedure_caption: str
    phases: tuple[PhaseSpan, ...]
    steps: tuple[StepSpan, ...]
    narration: tuple[NarrationLine, ...]
    tool_schedule: tuple[tuple[int, ...], ...]
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Length of the video in seconds."""
        return self.num_frames / self.fps

    def frame_phases(self) -> np.ndarray:
        """Phase index (into :data:`PHASES`) of every frame, ``(num_frames,)`` int8."""
        out = np.empty(self.num_frames, dtype=np.int8)
        for span in self.phases:
            out[span.start_frame : span.end_frame] = PHASES.index(span.phase)
        return out

    def tools_at(self, frame: int) -> tuple[int, ...]:
        """0/1 presence of each tool of :data:`TOOLS` in ``frame``."""
        return self.tool_schedule[frame // TOOL_PERIOD]

    def level_rows(self) -> list[dict[str, Any]]:
        """Rows of ``levels.csv`` for this video: each phase, then each of its steps and that step's tasks."""
        rows = []
        for span in self.phases:
            rows.append(_level_row(self.video_id, span.start, span.end, "phase", span.caption))
            for step in self.steps:
                if step.start_frame < span.start_frame or step.end_frame > span.end_frame:
                    continue
                rows.append(_level_row(self.video_id, step.start, step.end, "step", step.caption))
                rows.extend(
                    _level_row(self.video_id, n.start, n.end, "task", n.caption, n.is_descriptive,
                               n.is_surgical_content)
                    for n in self.narration
                    if step.start <= n.start < step.end
                )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists instead of tuples)."""
        return asdict(self)


def _level_row(
    video_id: str, start: float, end: float, level: str, text: str, descriptive: bool = True, surgical: bool = True
) -> dict[str, Any]:
    return {"video_id": video_id, "start": round(start, 3), "end": round(end, 3), "level": level, "text": text,
            "is_descriptive": int(descriptive), "is_surgical_content": int(surgical)}


def video_id_for(index: int) -> str:
    """Cholec80-style video id of the ``index``-th video (0-based): ``video01``, ``video02``, ..."""
    if index < 0:
        raise ValueError(f"video index must be >= 0, got {index}")
    return f"video{index + 1:02d}"


# ----------------------------------------------------------------------------------------------
# Planning: phases, steps, narration, tool schedule
# ----------------------------------------------------------------------------------------------


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2:
        raise ValueError(f"size must be (width, height), got {size!r}")
    width, height = int(size[0]), int(size[1])
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise ValueError(f"size must be even and at least 32x32 (H.264 4:2:0), got {width}x{height}")
    return width, height


def _allocate(total: int, weights: np.ndarray, minimum: int) -> list[int]:
    """Split ``total`` frames into parts proportional to ``weights``, each at least ``minimum``."""
    n = len(weights)
    extra = total - minimum * n
    if extra < 0:
        raise ValueError(f"cannot split {total} frames into {n} parts of at least {minimum}")
    share = weights / weights.sum() * extra
    parts = np.floor(share).astype(int)
    order = np.argsort(-(share - parts), kind="stable")
    parts[order[: extra - parts.sum()]] += 1
    return [int(p) + minimum for p in parts]


def plan_procedure(
    video_id: str,
    *,
    seed: int,
    fps: float = 25,
    size: tuple[int, int] = (160, 120),
    duration_s: float = 60.0,
) -> ProcedureTruth:
    """Draw a procedure's timeline: phases, steps, captions, narration and tool schedule.

    Args:
        video_id: id written into annotations and ``levels.csv``.
        seed: everything drawn depends only on this seed.
        fps: frames per second.
        size: ``(width, height)`` of the frames (even, at least 32).
        duration_s: video length in seconds (at least 10).

    Returns:
        The procedure's ground truth (without ``paths``); :func:`render_frames` draws its pictures.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not duration_s >= 10:
        raise ValueError(f"duration_s must be at least 10 seconds, got {duration_s}")
    size = _check_size(size)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
    num_frames = int(round(duration_s * fps))

    present = [i for i, p in enumerate(_PHASE_SKIP) if rng.random() >= p]
    weights = np.array([_PHASE_WEIGHTS[i] for i in present]) * rng.lognormal(0.0, 0.35, len(present))
    weights *= np.where(rng.random(len(present)) < _SHORTEN, 0.35, 1.0)
    min_phase = max(1, int(round(min(2.0, duration_s / (2 * len(present))) * fps)))
    lengths = _allocate(num_frames, weights, min_phase)

    phases: list[PhaseSpan] = []
    steps: list[StepSpan] = []
    narration: list[NarrationLine] = []
    start = 0
    for index, length in zip(present, lengths):
        name = PHASES[index]
        end = start + length
        caption = PHASE_CAPTIONS[name][int(rng.integers(len(PHASE_CAPTIONS[name])))]
        phases.append(PhaseSpan(name, start, end, start / fps, end / fps, caption))
        phase_steps = _plan_steps(rng, name, start, end, fps)
        steps.extend(phase_steps)
        narration.extend(_plan_narration(rng, name, phase_steps, fps))
        start = end

    names = [_READABLE[p.phase] for p in phases]
    if rng.random() < 0.5:
        caption = f"Laparoscopic cholecystectomy in {len(names)} phases: {', '.join(names)}."
    else:
        skipped = [_READABLE[p] for p in PHASES if p not in {s.phase for s in phases}]
        tail = f", without {' or '.join(skipped)}" if skipped else ""
        caption = (
            "A laparoscopic cholecystectomy: the gallbladder is dissected from Calot's triangle and the liver "
            f"bed, clipped, cut and removed in a specimen bag{tail}."
        )
    return ProcedureTruth(
        video_id=video_id,
        seed=int(seed),
        fps=float(fps),
        size=size,
        num_frames=num_frames,
        procedure_caption=caption,
        phases=tuple(phases),
        steps=tuple(steps),
        narration=tuple(narration),
        tool_schedule=_plan_tools(rng, phases, num_frames),
    )


def _plan_steps(rng: np.random.Generator, phase: str, start: int, end: int, fps: float) -> list[StepSpan]:
    pool = STEPS[phase]
    min_step = max(1, int(round(0.5 * fps)))
    k = min(int(rng.integers(2, 4)), len(pool), max(1, (end - start) // min_step))
    chosen = sorted(rng.choice(len(pool), size=k, replace=False).tolist())
    lengths = _allocate(end - start, rng.dirichlet(np.full(k, 3.0)), min(min_step, (end - start) // k))
    out, t = [], start
    for i, length in zip(chosen, lengths):
        name, caption = pool[i]
        out.append(StepSpan(phase, name, t, t + length, t / fps, (t + length) / fps, caption))
        t += length
    return out


def _plan_narration(
    rng: np.random.Generator, phase: str, steps: list[StepSpan], fps: float
) -> list[NarrationLine]:
    """Sentences one after another inside each step, in whole milliseconds (SRT precision).

    Every phase gets at least one sentence (cut to fit its longest step when it is short).
    """
    pool = NARRATION[phase]
    order = rng.permutation(len(pool))
    out: list[NarrationLine] = []
    k = 0

    def line(lo: int, length: int, step: StepSpan) -> NarrationLine:
        nonlocal k
        if rng.random() < _FILLER_RATE:
            text, descriptive, surgical = FILLER[int(rng.integers(len(FILLER)))]
            return NarrationLine(lo / 1000, (lo + length) / 1000, text, text, phase, step.name, descriptive, surgical)
        text, caption = pool[order[k % len(order)]]
        k += 1
        return NarrationLine(lo / 1000, (lo + length) / 1000, text, caption, phase, step.name)

    bounds = [(math.ceil(s.start_frame * 1000 / fps), math.floor(s.end_frame * 1000 / fps)) for s in steps]
    for step, (lo, hi) in zip(steps, bounds):
        t = lo + int(rng.integers(100, 700))
        while True:
            length = int(rng.integers(1800, 4200))
            if t + length > hi:
                break
            out.append(line(t, length, step))
            t += length + int(rng.integers(300, 1500))
    if not out:
        i = int(np.argmax([hi - lo for lo, hi in bounds]))
        lo, hi = bounds[i]
        out.append(line(lo, max(hi - lo, 1), steps[i]))
    return out


def _plan_tools(rng: np.random.Generator, phases: list[PhaseSpan], num_frames: int) -> tuple[tuple[int, ...], ...]:
    """Tool presence per block of :data:`TOOL_PERIOD` frames: a sticky Markov chain per tool and phase."""
    n_blocks = -(-num_frames // TOOL_PERIOD)
    phase_of = np.empty(num_frames, dtype=np.int16)
    for span in phases:
        phase_of[span.start_frame : span.end_frame] = PHASES.index(span.phase)
    rows: list[tuple[int, ...]] = []
    prev = np.zeros(len(TOOLS), dtype=bool)
    prev_phase = -1
    for k in range(n_blocks):
        p = int(phase_of[k * TOOL_PERIOD])
        probs = np.array(PHASE_TOOL_PROBS[PHASES[p]])
        fresh = rng.random(len(TOOLS)) < probs
        keep = (rng.random(len(TOOLS)) < 0.8) & (p == prev_phase)
        state = np.where(keep, prev, fresh) & (probs > 0)
        instruments = np.flatnonzero(state[:6])
        if len(instruments) > 3:  # at most three instruments through the trocars at a time
            drop = instruments[np.argsort(probs[instruments], kind="stable")[: len(instruments) - 3]]
            state[drop] = False
        rows.append(tuple(int(v) for v in state))
        prev, prev_phase = state, p
    return tuple(rows)


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------

_RGB = np.ndarray

#: Per-phase look: global tint, fine texture amplitude, camera zoom (scene pixels per frame pixel),
#: look-at point (fractions of the scene canvas) and number of progress keyframes.
_LOOK: dict[str, dict[str, Any]] = {
    "Preparation": {"tint": (1.05, 0.92, 0.88), "grain": 0.03, "zoom": 1.18, "at": (0.50, 0.50), "keys": 1},
    "CalotTriangleDissection": {"tint": (1.00, 0.95, 0.68), "grain": 0.09, "zoom": 0.86, "at": (0.58, 0.42), "keys": 4},
    "ClippingCutting": {"tint": (0.95, 0.82, 0.86), "grain": 0.05, "zoom": 0.78, "at": (0.66, 0.36), "keys": 6},
    "GallbladderDissection": {"tint": (0.90, 1.05, 0.76), "grain": 0.05, "zoom": 0.95, "at": (0.45, 0.55), "keys": 4},
    "GallbladderPackaging": {"tint": (1.02, 1.00, 1.06), "grain": 0.03, "zoom": 1.05, "at": (0.50, 0.58), "keys": 1},
    "CleaningCoagulation": {"tint": (0.75, 0.88, 1.25), "grain": 0.02, "zoom": 1.00, "at": (0.42, 0.50), "keys": 4},
    "GallbladderRetraction": {"tint": (0.50, 0.45, 0.52), "grain": 0.03, "zoom": 1.12, "at": (0.36, 0.66), "keys": 1},
}

_TISSUE = np.array([0.80, 0.40, 0.36], dtype=np.float32)
_FAT = np.array([0.92, 0.78, 0.38], dtype=np.float32)
_LIVER = np.array([0.45, 0.13, 0.10], dtype=np.float32)
_GALLBLADDER = np.array([0.45, 0.58, 0.38], dtype=np.float32)
_RAW_BED = np.array([0.88, 0.16, 0.12], dtype=np.float32)
_BLOOD = np.array([0.32, 0.02, 0.03], dtype=np.float32)
_DUCT = np.array([0.92, 0.86, 0.66], dtype=np.float32)
_ARTERY = np.array([0.80, 0.28, 0.26], dtype=np.float32)
_CLIP = np.array([0.90, 0.90, 0.95], dtype=np.float32)
_STEEL = np.array([0.62, 0.63, 0.66], dtype=np.float32)
_DARK_STEEL = np.array([0.30, 0.31, 0.34], dtype=np.float32)
_BAND = np.array([0.20, 0.35, 0.75], dtype=np.float32)
_BAG = np.array([0.90, 0.90, 0.86], dtype=np.float32)
_CLIP_LOADED = np.array([0.95, 0.85, 0.55], dtype=np.float32)
_SPRAY = np.array([0.85, 0.92, 1.0], dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian-filtered white noise (FFT), ``sigma`` in pixels."""
    noise = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    kernel = np.exp(-2.0 * (math.pi * sigma) ** 2 * (fy**2 + fx**2))
    out = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=shape)
    out -= out.mean()
    return (out / (out.std() + 1e-8)).astype(np.float32)


class _Grid:
    """Pixel coordinate grids of an image, for vectorised drawing in bounding boxes."""

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32)

    def box(self, y0: float, y1: float, x0: float, x1: float) -> tuple[slice, slice] | None:
        ys, ye = max(int(y0), 0), min(int(math.ceil(y1)) + 1, self.height)
        xs, xe = max(int(x0), 0), min(int(math.ceil(x1)) + 1, self.width)
        if ys >= ye or xs >= xe:
            return None
        return slice(ys, ye), slice(xs, xe)

    def segment(
        self, img: _RGB, p0: tuple[float, float], p1: tuple[float, float], width: float, color: np.ndarray,
        shade: float = 0.45,
    ) -> None:
        """Draw a thick segment (a cylinder, darker at its rims) from ``p0`` to ``p1`` (y, x)."""
        (y0, x0), (y1, x1) = p0, p1
        box = self.box(min(y0, y1) - width, max(y0, y1) + width, min(x0, x1) - width, max(x0, x1) + width)
        if box is None:
            return
        yy, xx = self.yy[box], self.xx[box]
        dy, dx = y1 - y0, x1 - x0
        t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / max(dy * dy + dx * dx, 1e-6), 0.0, 1.0)
        d2 = (yy - y0 - t * dy) ** 2 + (xx - x0 - t * dx) ** 2
        inside = d2 < width * width
        if inside.any():
            region = img[box]
            region[inside] = color * (1.0 - shade * d2[inside] / (width * width))[:, None]

    def ellipse(
        self, img: _RGB, center: tuple[float, float], radii: tuple[float, float], angle: float,
        color: np.ndarray, alpha: float = 1.0, wobble: np.ndarray | None = None,
    ) -> None:
        """Fill a rotated ellipse (``radii`` = (ry, rx), ``angle`` in radians), optionally with a wavy rim."""
        cy, cx = center
        r = max(radii) * (1.3 if wobble is not None else 1.0)
        box = self.box(cy - r, cy + r, cx - r, cx + r)
        if box is None:
            return
        yy, xx = self.yy[box] - cy, self.xx[box] - cx
        c, s = math.cos(angle), math.sin(angle)
        u, v = (xx * c + yy * s) / radii[1], (-xx * s + yy * c) / radii[0]
        rho = u * u + v * v
        if wobble is not None:  # wavy rim: the radius varies with the angle, read from a 256-entry table
            table = np.linspace(-math.pi, math.pi, 257, dtype=np.float32)[:, None] * np.arange(1, len(wobble) + 1)
            rim = (1.0 + 0.15 * np.sin(table + wobble).mean(-1)) ** 2
            rho = rho / rim[((np.arctan2(v, u) + math.pi) * (256 / (2 * math.pi))).astype(np.intp)]
        inside = rho < 1.0
        if inside.any():
            region = img[box]
            if alpha >= 1.0:
                region[inside] = color
            else:
                region[inside] = region[inside] * (1 - alpha) + color * alpha


class _Scene:
    """Per-video scene: anatomy positions and the keyframe canvases of every phase."""

    def __init__(self, rng: np.random.Generator, width: int, height: int):
        self.unit = width / 160.0
        self.ch, self.cw = int(round(height * 1.6)), int(round(width * 1.6))
        self.grid = _Grid(self.ch, self.cw)
        ch, cw, u = self.ch, self.cw, self.unit
        jit = rng.uniform(-1, 1, 8)
        self.gb_center = (ch * (0.42 + 0.04 * jit[0]), cw * (0.56 + 0.04 * jit[1]))
        self.gb_radii = (ch * (0.15 + 0.02 * jit[2]), cw * (0.22 + 0.02 * jit[3]))
        self.gb_angle = -0.35 + 0.2 * jit[4]
        self.neck = (self.gb_center[0] + self.gb_radii[0] * 0.9, self.gb_center[1] - self.gb_radii[1] * 0.7)
        self.duct_end = (ch * (0.90 + 0.03 * jit[5]), cw * (0.22 + 0.04 * jit[6]))
        self.artery_end = (ch * (0.86 + 0.03 * jit[6]), cw * (0.40 + 0.04 * jit[7]))
        self.wobble = rng.uniform(0, 2 * math.pi, 5).astype(np.float32)
        self.pools = [
            (rng.uniform(-0.2, 0.35), rng.uniform(-0.3, 0.3), rng.uniform(0.04, 0.09), rng.uniform(0, 3))
            for _ in range(4)
        ]
        shape = (ch, cw)
        low = _smooth_noise(rng, shape, 10 * u)
        mid = _smooth_noise(rng, shape, 3 * u)
        ridge = _smooth_noise(rng, shape, 6 * u)
        fatn = _smooth_noise(rng, shape, 8 * u)
        self.fine = _smooth_noise(rng, shape, 0.7 * u)
        self.fibres = np.abs(_smooth_noise(rng, shape, 1.5 * u)) < 0.25
        base = _TISSUE * (0.85 + 0.12 * low + 0.05 * mid)[..., None]
        vessels = np.abs(ridge) < 0.08
        base[vessels] *= np.array([0.75, 0.45, 0.45], dtype=np.float32)
        self.fat_field = fatn
        yy, xx = self.grid.yy, self.grid.xx
        edge = ch * (0.30 + 0.05 * np.sin(xx / cw * 5 + jit[0] * 3)) + 4 * u * mid
        liver = yy < edge
        base[liver] = (_LIVER * (0.9 + 0.1 * low[liver])[:, None])
        self.liver = liver
        self.base = base
        self.keyframes: dict[str, list[np.ndarray]] = {}
        for phase in PHASES:
            look = _LOOK[phase]
            keys = look["keys"]
            frames = []
            for k in range(keys):
                progress = (k + 0.5) / keys
                canvas = self._paint(phase, progress)
                canvas += look["grain"] * self.fine[..., None]
                canvas *= np.asarray(look["tint"], dtype=np.float32)
                frames.append(np.clip(canvas, 0.0, 1.0).astype(np.float32))
            self.keyframes[phase] = frames
        self.bag_rest = {
            "GallbladderPackaging": (ch * 0.55, cw * 0.66),
            "CleaningCoagulation": (ch * 0.22, cw * 0.70),
            "GallbladderRetraction": (ch * 0.40, cw * 0.62),
        }

    # -- anatomy painters -----------------------------------------------------------------------

    def _fat(self, canvas: np.ndarray, amount: float) -> None:
        fat = (self.fat_field > 1.0 - 1.6 * amount) & ~self.liver
        canvas[fat] = canvas[fat] * 0.3 + _FAT * 0.7

    def _gallbladder(self, canvas: np.ndarray, color: np.ndarray, shift: float = 0.0, scale: float = 1.0) -> None:
        cy, cx = self.gb_center
        radii = (self.gb_radii[0] * scale, self.gb_radii[1] * scale)
        self.grid.ellipse(canvas, (cy - shift, cx), radii, self.gb_angle, color, wobble=self.wobble)
        hi = (cy - shift - radii[0] * 0.35, cx + radii[1] * 0.2)
        self.grid.ellipse(canvas, hi, (radii[0] * 0.18, radii[1] * 0.3), self.gb_angle, color * 1.25, alpha=0.6)

    def _tubes(self, canvas: np.ndarray, visible: float, cut: bool = False) -> None:
        u = self.unit
        for end, color, width in ((self.duct_end, _DUCT, 4.0 * u), (self.artery_end, _ARTERY, 2.6 * u)):
            p0 = self.neck
            p1 = (p0[0] + (end[0] - p0[0]) * visible, p0[1] + (end[1] - p0[1]) * visible)
            if cut:
                mid_a = (p0[0] + (end[0] - p0[0]) * 0.45, p0[1] + (end[1] - p0[1]) * 0.45)
                mid_b = (p0[0] + (end[0] - p0[0]) * 0.60, p0[1] + (end[1] - p0[1]) * 0.60)
                self.grid.segment(canvas, p0, mid_a, width, color)
                self.grid.segment(canvas, mid_b, end, width, color)
            else:
                self.grid.segment(canvas, p0, p1, width, color)

    def _clips(self, canvas: np.ndarray, count: int) -> None:
        u = self.unit
        slots = [(self.duct_end, 0.35), (self.artery_end, 0.38), (self.duct_end, 0.70), (self.artery_end, 0.72),
                 (self.duct_end, 0.80), (self.artery_end, 0.30)]
        for end, at in slots[:count]:
            p0 = self.neck
            cy, cx = p0[0] + (end[0] - p0[0]) * at, p0[1] + (end[1] - p0[1]) * at
            dy, dx = end[0] - p0[0], end[1] - p0[1]
            norm = math.hypot(dy, dx) or 1.0
            ny, nx = -dx / norm * 6 * u, dy / norm * 6 * u
            self.grid.segment(canvas, (cy - ny, cx - nx), (cy + ny, cx + nx), 1.4 * u, _CLIP, shade=0.3)

    def _paint(self, phase: str, progress: float) -> np.ndarray:
        canvas = self.base.copy()
        _PAINTERS[phase](self, canvas, progress)
        return canvas

    def _liver_bed(self, canvas: np.ndarray, shade: float, grow: float = 1.0, dy: float = 0.0) -> None:
        radii = (self.gb_radii[0] * grow, self.gb_radii[1] * grow)
        self.grid.ellipse(canvas, (self.gb_center[0] + dy, self.gb_center[1]), radii, self.gb_angle,
                          _RAW_BED * shade, wobble=self.wobble[::-1].copy())


# Phase painters: what the scene canvas shows at ``progress`` (0..1) through the phase.


def _paint_preparation(scene: _Scene, canvas: np.ndarray, progress: float) -> None:
    scene._fat(canvas, 0.55)
    scene._gallbladder(canvas, _GALLBLADDER * 0.4 + _FAT * 0.6)  # still covered by fat


def _paint_calot(scene: _Scene, canvas: np.ndarray, progress: float) -> None:
    scene._fat(canvas, 0.7)
    scene._gallbladder(canvas, _GALLBLADDER)
    fibres = scene.fibres & ~scene.liver
    canvas[fibres] = canvas[fibres] * 0.5 + np.array([0.95, 0.9, 0.75], dtype=np.float32) * 0.5
    scene._tubes(canvas, 0.3 + 0.7 * progress)  # the duct and artery emerge as dissection goes on


def _paint_clipping(scene: _Scene, canvas: np.ndarray, progress: float) -> None:
    scene._fat(canvas, 0.35)
    scene._gallbladder(canvas, _GALLBLADDER)
    cut = progress > 0.8
    scene._tubes(canvas, 1.0, cut=cut)
    scene._clips(canvas, 6 if cut else int(round(progress / 0.8 * 5)))


def _paint_gallbladder_dissection(scene: _Scene, canvas: np.ndarray, progress: float) -> None:
    scene._fat(canvas, 0.25)
    scene._liver_bed(canvas, 1.0, grow=0.4 + 0.6 * progress, dy=0.02 * scene.ch)
    scene._gallbladder(canvas, _GALLBLADDER * 1.1, shift=0.12 * scene.ch * progress)
    scene._clips(canvas, 2)


def _paint_packaging(scene: _Scene, canvas: np.ndarray, progress: float) -> None:
    scene._fat(canvas, 0.2)
    scene._liver_bed(canvas, 0.8)
    scene._gallbladder(canvas, _GALLBLADDER * 1.1, shift=0.2 * scene.ch, scale=0.8)


def _paint_cleaning(scene: _Scene, canvas: np.ndarray, progress: float) -> None:
    ch, cw, u = scene.ch, scene.cw, scene.unit
    scene._fat(canvas, 0.15)
    scene._liver_bed(canvas, 0.85)
    size = 1.0 - 0.8 * progress  # blood pools shrink as they are aspirated
    for dy, dx, r, angle in scene.pools:
        c = (scene.gb_center[0] + dy * ch, scene.gb_center[1] + dx * cw)
        radius = r * ch * size + u
        scene.grid.ellipse(canvas, c, (radius, radius * 1.4), angle, _BLOOD, wobble=scene.wobble)
    canvas[scene.fine > 2.3] = np.array([0.98, 0.98, 1.0], dtype=np.float32)  # wet highlights
    canvas[:] = canvas * 0.85 + np.array([0.55, 0.62, 0.75], dtype=np.float32) * 0.15


def _paint_retraction(scene: _Scene, canvas: np.ndarray, progress: float) -> None:
    ch, cw = scene.ch, scene.cw
    scene._fat(canvas, 0.2)
    scene._liver_bed(canvas, 0.6)
    scene._clips(canvas, 2)
    port = (ch * 0.16, cw * 0.80)  # the umbilical port the bag is pulled into, seen from inside
    scene.grid.ellipse(canvas, port, (0.16 * ch, 0.13 * cw), 0.3, _STEEL * 0.45)
    scene.grid.ellipse(canvas, port, (0.12 * ch, 0.10 * cw), 0.3, np.zeros(3, dtype=np.float32))


_PAINTERS: dict[str, Callable[[_Scene, np.ndarray, float], None]] = {
    "Preparation": _paint_preparation,
    "CalotTriangleDissection": _paint_calot,
    "ClippingCutting": _paint_clipping,
    "GallbladderDissection": _paint_gallbladder_dissection,
    "GallbladderPackaging": _paint_packaging,
    "CleaningCoagulation": _paint_cleaning,
    "GallbladderRetraction": _paint_retraction,
}


class _ToolRig:
    """Per-video instrument geometry: entry points on the image border, tip rest positions and motion."""

    # (entry y, entry x, tip y, tip x) as fractions of the image height/width.
    _PORTS: dict[str, tuple[float, float, float, float]] = {
        "Grasper": (-0.15, 0.95, 0.35, 0.66),
        "Bipolar": (0.15, 1.15, 0.48, 0.60),
        "Hook": (1.15, 0.12, 0.56, 0.45),
        "Scissors": (0.95, -0.15, 0.60, 0.48),
        "Clipper": (1.15, 0.30, 0.60, 0.42),
        "Irrigator": (1.15, 0.85, 0.55, 0.52),
    }

    def __init__(self, rng: np.random.Generator, width: int, height: int):
        self.unit = width / 160.0
        self.motion: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.ports: dict[str, tuple[float, float, float, float]] = {}
        for tool, (ey, ex, ty, tx) in self._PORTS.items():
            j = rng.uniform(-0.06, 0.06, 4)
            self.ports[tool] = ((ey + j[0]) * height, (ex + j[1]) * width, (ty + j[2]) * height, (tx + j[3]) * width)
            self.motion[tool] = (
                rng.uniform(0.15, 0.6, 2),  # frequencies (Hz)
                rng.uniform(0, 2 * math.pi, 2),  # phases
                rng.uniform(0.04, 0.09, 2) * np.array([height, width]),  # amplitudes
            )

    def tip(self, tool: str, t: float) -> tuple[tuple[float, float], tuple[float, float]]:
        ey, ex, ty, tx = self.ports[tool]
        freq, phase, amp = self.motion[tool]
        wave = np.sin(2 * math.pi * freq * t + phase) * amp
        return (ey, ex), (ty + float(wave[0]), tx + float(wave[1]))

    def draw(self, grid: _Grid, img: np.ndarray, tool: str, t: float) -> None:
        """Draw ``tool`` at time ``t``: its shaft from the border to the tip, then its tip."""
        entry, tip = self.tip(tool, t)
        width, color = _SHAFTS[tool]
        grid.segment(img, entry, tip, width * self.unit, color)
        _TIPS[tool](grid, img, _Pose(entry, tip, self.unit, t))


@dataclass(frozen=True)
class _Pose:
    """Where an instrument is: entry point and tip (y, x), pixel unit and time."""

    entry: tuple[float, float]
    tip: tuple[float, float]
    unit: float
    t: float

    @property
    def direction(self) -> tuple[float, float]:
        dy, dx = self.tip[0] - self.entry[0], self.tip[1] - self.entry[1]
        norm = math.hypot(dy, dx) or 1.0
        return dy / norm, dx / norm

    def ahead(self, length: float, turn: float = 0.0) -> tuple[float, float]:
        """The point ``length`` units beyond the tip, turned by ``turn`` radians from the shaft axis."""
        dy, dx = self.direction
        c, s = math.cos(turn), math.sin(turn)
        step = length * self.unit
        return self.tip[0] + (dy * c + dx * s) * step, self.tip[1] + (dx * c - dy * s) * step

    def behind(self, length: float) -> tuple[float, float]:
        """The point ``length`` units back along the shaft."""
        dy, dx = self.direction
        return self.tip[0] - dy * length * self.unit, self.tip[1] - dx * length * self.unit

    @property
    def opening(self) -> float:
        """Jaw opening angle, slowly opening and closing."""
        return 0.25 + 0.15 * math.sin(3 * self.t)


def _tip_grasper(grid: _Grid, img: np.ndarray, pose: _Pose) -> None:
    for side in (-1, 1):
        grid.segment(img, pose.tip, pose.ahead(8, side * pose.opening), 1.5 * pose.unit, _DARK_STEEL, shade=0.2)


def _tip_bipolar(grid: _Grid, img: np.ndarray, pose: _Pose) -> None:
    grid.segment(img, pose.behind(8), pose.tip, 3.4 * pose.unit, _BAND, shade=0.3)  # blue insulation
    for side in (-1, 1):
        grid.segment(img, pose.tip, pose.ahead(6, side * pose.opening * 0.6), 1.3 * pose.unit, _DARK_STEEL, shade=0.2)


def _tip_hook(grid: _Grid, img: np.ndarray, pose: _Pose) -> None:
    bend = pose.ahead(5)
    dy, dx = pose.direction
    grid.segment(img, pose.tip, bend, 1.2 * pose.unit, _DARK_STEEL, shade=0.2)
    grid.segment(img, bend, (bend[0] + dx * 4 * pose.unit, bend[1] - dy * 4 * pose.unit), 1.2 * pose.unit,
                 _DARK_STEEL, shade=0.2)


def _tip_scissors(grid: _Grid, img: np.ndarray, pose: _Pose) -> None:
    for side in (-1, 1):
        grid.segment(img, pose.behind(2), pose.ahead(10, side * 0.18), 1.0 * pose.unit, _STEEL * 1.3, shade=0.2)


def _tip_clipper(grid: _Grid, img: np.ndarray, pose: _Pose) -> None:
    for side in (-1, 1):
        grid.segment(img, pose.tip, pose.ahead(8, side * 0.2), 2.2 * pose.unit, _DARK_STEEL, shade=0.2)
    grid.segment(img, pose.ahead(4), pose.ahead(9), 1.2 * pose.unit, _CLIP_LOADED, shade=0.2)


def _tip_irrigator(grid: _Grid, img: np.ndarray, pose: _Pose) -> None:
    for k in range(3):
        spray = pose.ahead(4 + 3 * k, 0.3 * math.sin(7 * pose.t + k))
        grid.ellipse(img, spray, (1.2 * pose.unit, 1.2 * pose.unit), 0.0, _SPRAY, 0.7)


#: Instrument shafts: (width in units of 1/160 of the frame width, colour).
_SHAFTS: dict[str, tuple[float, np.ndarray]] = {
    "Grasper": (3.2, _STEEL),
    "Bipolar": (3.2, _STEEL),
    "Hook": (3.2, _STEEL),
    "Scissors": (3.2, _STEEL),
    "Clipper": (3.2, _STEEL),
    "Irrigator": (2.2, _STEEL * 1.25),
}
#: Instrument tips, drawn after the shaft.
_TIPS: dict[str, Callable[[_Grid, np.ndarray, _Pose], None]] = {
    "Grasper": _tip_grasper,
    "Bipolar": _tip_bipolar,
    "Hook": _tip_hook,
    "Scissors": _tip_scissors,
    "Clipper": _tip_clipper,
    "Irrigator": _tip_irrigator,
}


def render_frames(truth: ProcedureTruth) -> Iterator[tuple[np.ndarray, tuple[int, ...]]]:
    """Draw the procedure's frames one at a time.

    Args:
        truth: a plan from :func:`plan_procedure` (or a generated procedure's truth).

    Yields:
        ``(frame, tools)``: the ``(height, width, 3)`` uint8 RGB frame and the 0/1 presence of each
        tool of :data:`TOOLS` drawn in it (always the tool schedule row of the frame's block).
    """
    width, height = truth.size
    rng = np.random.default_rng(np.random.SeedSequence([truth.seed, 1]))
    scene = _Scene(rng, width, height)
    rig = _ToolRig(rng, width, height)
    grid = _Grid(height, width)
    ch, cw = scene.ch, scene.cw
    yy, xx = grid.yy, grid.xx
    radius = np.sqrt(((yy - height / 2) / (height / 2)) ** 2 + ((xx - width / 2) / (width / 2)) ** 2)
    vignette = (255.0 * np.clip(1.25 - 0.55 * radius**2, 0.0, 1.0))[..., None].astype(np.float32)
    noise_bank = rng.normal(0.5, 0.012 * 255, (8, height, width, 3)).astype(np.float32)
    haze = np.clip(0.5 + 0.35 * _smooth_noise(rng, (height, width), 6 * scene.unit), 0.0, 1.0)[..., None]
    cam = rng.uniform(0, 2 * math.pi, 3)
    cam_freq = rng.uniform(1 / 20, 1 / 8, 3)
    phase_of = truth.frame_phases()
    spans = {PHASES.index(s.phase): s for s in truth.phases}
    look_y, look_x, zoom = None, None, None
    alpha = 1.0 - math.exp(-1.0 / (0.5 * truth.fps))
    smoke_level = 0.0
    rows_base = (np.arange(height, dtype=np.float32) - height / 2)[:, None]
    cols_base = np.arange(width, dtype=np.float32) - width / 2
    for f in range(truth.num_frames):
        t = f / truth.fps
        p = int(phase_of[f])
        span = spans[p]
        name = PHASES[p]
        look = _LOOK[name]
        progress = (f - span.start_frame) / max(span.end_frame - span.start_frame, 1)
        keys = scene.keyframes[name]
        canvas = keys[min(int(progress * len(keys)), len(keys) - 1)]
        ty, tx = look["at"][0] * ch, look["at"][1] * cw
        if look_y is None:
            look_y, look_x, zoom = ty, tx, look["zoom"]
        look_y += (ty - look_y) * alpha
        look_x += (tx - look_x) * alpha
        zoom += (look["zoom"] - zoom) * alpha
        s = zoom * (1.0 + 0.06 * math.sin(2 * math.pi * cam_freq[2] * t + cam[2]))
        cy = look_y + 0.05 * ch * math.sin(2 * math.pi * cam_freq[0] * t + cam[0])
        cx = look_x + 0.05 * cw * math.sin(2 * math.pi * cam_freq[1] * t + cam[1])
        rows = np.clip(cy + rows_base[:, 0] * s, 0, ch - 1).astype(np.intp)
        cols = np.clip(cx + cols_base * s, 0, cw - 1).astype(np.intp)
        frame = canvas.take(rows, axis=0).take(cols, axis=1)

        tools = truth.tools_at(f)
        if tools[6]:  # the specimen bag lies in the scene, so it moves with the camera
            by, bx = scene.bag_rest.get(name, (ch * 0.3, cw * 0.7))
            if name == "GallbladderRetraction":
                by, bx = by - 0.25 * ch * progress, bx + 0.3 * cw * progress
            center = ((by - cy) / s + height / 2, (bx - cx) / s + width / 2)
            radii = (0.16 * ch / s, 0.13 * cw / s)
            grid.ellipse(frame, center, (radii[0] * 1.08, radii[1] * 1.08), 0.4, _BAG * 0.6, wobble=scene.wobble)
            grid.ellipse(frame, center, radii, 0.4, _BAG, alpha=0.9, wobble=scene.wobble)
        for i, tool in enumerate(TOOLS[:6]):
            if tools[i]:
                rig.draw(grid, frame, tool, t)
        cautery = (tools[1] or tools[2]) and name in ("CalotTriangleDissection", "GallbladderDissection",
                                                       "CleaningCoagulation")
        smoke_level += ((0.45 if cautery else 0.0) - smoke_level) * 0.08
        if smoke_level > 0.02:
            a = smoke_level * haze
            frame = frame * (1.0 - a) + 0.85 * a
        frame *= vignette
        frame += noise_bank[int(rng.integers(len(noise_bank)))]
        yield (np.clip(frame, 0, 255, out=frame).astype(np.uint8), tools)


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


def _encode_video(truth: ProcedureTruth, path: Path, crf: int = 20) -> int:
    """Render and encode the frames straight into an H.264 MP4 (one frame in memory at a time)."""
    av = require("av", "surgery", "encoding synthetic procedure videos")
    width, height = truth.size
    count = 0
    with atomic_output(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(truth.fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            # One encoder thread (on the codec context too: the "threads" option alone leaves FFmpeg's
            # automatic threading on) and no rate-control lookahead: with either, x264's output varied
            # from run to run for the same frames, and the same seed must give the same video.
            stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1", "x264-params": "rc-lookahead=0"}
            stream.codec_context.thread_count = 1
            for frame, _ in render_frames(truth):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                count += 1
            container.mux(stream.encode())
    return count


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


#: On-disk layouts: name -> writer of the annotation files returning the paths (``video`` is where
#: the MP4 goes).
LAYOUTS: dict[str, Callable[[Path, ProcedureTruth], dict[str, Path]]] = {"cholec80": _write_cholec80}


def generate_procedure(
    out_dir: str | Path,
    video_id: str,
    *,
    seed: int,
    fps: float = 25,
    size: tuple[int, int] = (160, 120),
    duration_s: float = 60.0,
    layout: str = "cholec80",
) -> ProcedureTruth:
    """Generate one procedure: its video, phase and tool annotations and narration transcript.

    ``levels.csv`` is written by :func:`generate_procedures` (or :func:`write_levels_csv`) for all
    videos at once; the rows of this video are ``truth.level_rows()``.

    Args:
        out_dir: dataset root (created).
        video_id: e.g. ``"video01"``; names every file of this video.
        seed: everything in the video depends only on this seed.
        fps: frames per second (Cholec80: 25).
        size: ``(width, height)``, even and at least 32.
        duration_s: length in seconds (at least 10).
        layout: on-disk layout, a key of :data:`LAYOUTS`.

    Returns:
        The ground truth, with ``paths`` naming the written files.
    """
    if layout not in LAYOUTS:
        raise UnknownNameError("surgery synthetic layout", layout, list(LAYOUTS))
    if layout == "cholec80" and fps != 25:
        # Cholec80 annotates one phase row per frame and one tool row per second at 25 fps; readers
        # (datasets.cholec80) rely on that rate, so another rate would misplace every label
        raise ValueError(f"the Cholec80 layout is defined at 25 fps (one annotation row per frame); got fps={fps}")
    from domainclip.domains.surgery.transcripts import Segment, write_srt

    out = Path(out_dir)
    truth = plan_procedure(video_id, seed=seed, fps=fps, size=size, duration_s=duration_s)
    paths = LAYOUTS[layout](out, truth)
    written = _encode_video(truth, paths["video"])
    if written != truth.num_frames:
        raise RuntimeError(f"{paths['video']}: encoded {written} frames, planned {truth.num_frames}")
    paths["transcript"] = write_srt(
        [Segment(n.start, n.end, n.text) for n in truth.narration], out / "transcripts" / f"{video_id}.srt"
    )
    return replace(truth, paths={k: str(v) for k, v in paths.items()})


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


def _video_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _generate_one(kwargs: dict[str, Any]) -> ProcedureTruth:
    return generate_procedure(**kwargs)


def generate_procedures(
    out_dir: str | Path,
    n_videos: int,
    *,
    seed: int = 0,
    fps: float = 25,
    size: tuple[int, int] = (160, 120),
    min_duration_s: float = 40.0,
    max_duration_s: float = 90.0,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate ``n_videos`` procedures (``video01``, ``video02``, ...) and ``levels.csv``.

    Video ``i`` depends only on ``(seed, i)`` (its seed and its duration, uniform in
    ``[min_duration_s, max_duration_s]``), so any number of workers gives the same files.

    Args:
        out_dir: dataset root (created).
        n_videos: number of videos.
        seed: run seed.
        fps: frames per second.
        size: ``(width, height)`` of the frames.
        min_duration_s: shortest video, seconds (at least 10).
        max_duration_s: longest video, seconds.
        workers: processes generating videos in parallel.
        progress: show a progress bar.

    Returns:
        Summary (also written to ``synthetic-summary.json``): videos with their seeds, durations
        and phases, frames per phase, tool presence rates, level row counts, paths, seconds.
    """
    from tqdm.auto import tqdm

    from domainclip.core.data.writer import write_json_atomic

    if n_videos < 1:
        raise ValueError(f"n_videos must be at least 1, got {n_videos}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not 10 <= min_duration_s <= max_duration_s:
        raise ValueError(f"need 10 <= min_duration_s <= max_duration_s, got {min_duration_s}, {max_duration_s}")
    size = _check_size(size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for i in range(n_videos):
        vseed = _video_seed(seed, i)
        duration = float(np.random.default_rng(vseed).uniform(min_duration_s, max_duration_s))
        jobs.append({"out_dir": str(out), "video_id": video_id_for(i), "seed": vseed, "fps": fps, "size": size,
                     "duration_s": round(duration, 2)})
    began = time.perf_counter()
    truths: list[ProcedureTruth | None] = [None] * n_videos
    with tqdm(total=n_videos, disable=not progress, unit="video", desc="surgery procedures") as bar:
        for i, truth in map_unordered(_generate_one, jobs, workers):
            truths[i] = truth
            bar.update(1)
    done = [t for t in truths if t is not None]
    seconds = time.perf_counter() - began
    levels = write_levels_csv(out / "levels.csv", done)
    frames_per_phase: Counter[str] = Counter()
    tool_blocks = np.zeros(len(TOOLS))
    n_blocks = 0
    level_counts: Counter[str] = Counter()
    for t in done:
        for span in t.phases:
            frames_per_phase[span.phase] += span.end_frame - span.start_frame
        tool_blocks += np.asarray(t.tool_schedule).sum(0)
        n_blocks += len(t.tool_schedule)
        level_counts.update(r["level"] for r in t.level_rows())
    total_frames = sum(t.num_frames for t in done)
    summary = {
        "out": str(out),
        "n_videos": n_videos,
        "seed": seed,
        "fps": fps,
        "size": list(size),
        "layout": "cholec80",
        "workers": workers,
        "videos": [
            {"video_id": t.video_id, "seed": t.seed, "duration_s": round(t.duration, 3), "num_frames": t.num_frames,
             "phases": [s.phase for s in t.phases], "narration_segments": len(t.narration),
             "procedure_caption": t.procedure_caption}
            for t in done
        ],
        "num_frames": total_frames,
        "frames_per_phase": {p: frames_per_phase.get(p, 0) for p in PHASES},
        "tool_presence": {tool: round(float(v) / max(n_blocks, 1), 4) for tool, v in zip(TOOLS, tool_blocks)},
        "level_rows": {lv: level_counts.get(lv, 0) for lv in _LEVELS},
        "levels_csv": str(levels),
        "seconds": round(seconds, 3),
        "frames_per_second": round(total_frames / seconds, 1) if seconds > 0 else None,
        "generator": GENERATOR,
        "licence": LICENCE,
    }
    write_json_atomic(out / "synthetic-summary.json", summary)
    summary["summary"] = str(out / "synthetic-summary.json")
    return summary


# ----------------------------------------------------------------------------------------------
# Command line: ``domainclip prepare surgery synthetic``
# ----------------------------------------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        return _check_size((w, h))
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"--size takes WIDTHxHEIGHT with even sides >= 32 (e.g. 160x120): {e}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``domainclip prepare surgery synthetic``."""
    parser.add_argument(
        "--out", required=True, type=Path, help="dataset root (Cholec80 layout, transcripts, levels.csv)"
    )
    parser.add_argument("--n-videos", type=int, default=8, help="number of procedures (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="run seed: video i depends only on (seed, i)")
    parser.add_argument("--fps", type=float, default=25, help="frames per second (default 25, as Cholec80)")
    parser.add_argument("--size", type=_size, default=(160, 120), help="frame size WxH (default 160x120)")
    parser.add_argument("--min-duration", type=float, default=40.0, help="shortest video in seconds (default 40)")
    parser.add_argument("--max-duration", type=float, default=90.0, help="longest video in seconds (default 90)")
    parser.add_argument("--workers", type=int, default=1, help="processes generating videos in parallel")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``domainclip prepare surgery synthetic`` from parsed arguments."""
    return generate_procedures(
        args.out,
        args.n_videos,
        seed=args.seed,
        fps=args.fps,
        size=args.size,
        min_duration_s=args.min_duration,
        max_duration_s=args.max_duration,
        workers=args.workers,
        progress=not args.no_progress,
    )


#: The ``synthetic`` prepare command of the surgery domain.
SYNTHETIC = PrepareCommand(
    name="synthetic",
    help="generate synthetic cholecystectomy-like procedures (Cholec80 layout, narration, task/step/phase levels)",
    add_arguments=add_arguments,
    run=run,
)
