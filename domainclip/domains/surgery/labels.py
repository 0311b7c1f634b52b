"""Label spaces and zero-shot prompts of the surgical evaluation benchmarks.

Three label spaces, importable without any video dependency:

* :data:`CHOLEC80_PHASES`: the 7 phases of laparoscopic cholecystectomy, named exactly as in the
  Cholec80 ``videoNN-phase.txt`` files; a frame's label is the index of its phase here (the order
  every Cholec80 paper uses).
* :data:`CHOLEC80_TOOLS`: the 7 instruments of the ``videoNN-tool.txt`` files, in column order.
* :data:`AUTOLAPARO_PHASES`: the 7 phases of laparoscopic hysterectomy of AutoLaparo Task 1; the
  label files number them 1-7 in this order, a frame's label is that number minus one.

Each class has a readable name and a few descriptive prompts written the way SurgVLP / HecVL
phrase surgical narration ("In the preparation phase the trocars are inserted ..."); short
templates ("a laparoscopic video frame during {}.") are filled with the readable name. The
``*_prompts(style)`` functions return ``{class: [prompt, ...]}`` in label order; a zero-shot
classifier averages the text embeddings of each class's prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from domainclip.core.plugins import UnknownNameError

__all__ = [
    "AUTOLAPARO_PHASES",
    "AUTOLAPARO_PHASE_DESCRIPTIONS",
    "AUTOLAPARO_PHASE_NAMES",
    "AUTOLAPARO_TEMPLATES",
    "CHOLEC80_PHASES",
    "CHOLEC80_PHASE_DESCRIPTIONS",
    "CHOLEC80_PHASE_NAMES",
    "CHOLEC80_TEMPLATES",
    "CHOLEC80_TOOLS",
    "CHOLEC80_TOOL_DESCRIPTIONS",
    "CHOLEC80_TOOL_NAMES",
    "PROMPT_STYLES",
    "TOOL_TEMPLATES",
    "autolaparo_phase_prompts",
    "cholec80_phase_prompts",
    "cholec80_tool_prompts",
]

# ----------------------------------------------------------------------------------- Cholec80 phases
#: Cholec80 phases as written in the annotation files, in label order.
CHOLEC80_PHASES: tuple[str, ...] = (
    "Preparation",
    "CalotTriangleDissection",
    "ClippingCutting",
    "GallbladderDissection",
    "GallbladderPackaging",
    "CleaningCoagulation",
    "GallbladderRetraction",
)

#: What each Cholec80 phase is called in a prompt.
CHOLEC80_PHASE_NAMES: dict[str, str] = {
    "Preparation": "preparation",
    "CalotTriangleDissection": "calot triangle dissection",
    "ClippingCutting": "clipping and cutting",
    "GallbladderDissection": "gallbladder dissection",
    "GallbladderPackaging": "gallbladder packaging",
    "CleaningCoagulation": "cleaning and coagulation",
    "GallbladderRetraction": "gallbladder retraction",
}

#: Narration-style descriptions of each Cholec80 phase (SurgVLP / HecVL prompt style).
CHOLEC80_PHASE_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "Preparation": (
        "In the preparation phase I insert the trocars into the abdominal cavity of the patient.",
        "The surgeon places the ports and the camera and looks around the abdomen before dissection.",
    ),
    "CalotTriangleDissection": (
        "In the calot triangle dissection phase I hold the gallbladder with a grasper and use the hook to "
        "expose the hepatocystic triangle, the cystic duct and the cystic artery.",
        "The surgeon dissects fat and peritoneum in Calot's triangle to reach the critical view of safety.",
    ),
    "ClippingCutting": (
        "In the clipping and cutting phase I put clips on the cystic duct and the cystic artery and cut "
        "them with scissors.",
        "The surgeon applies clips to the cystic duct and artery and divides them between the clips.",
    ),
    "GallbladderDissection": (
        "In the gallbladder dissection phase I use the hook to separate the gallbladder from the liver bed.",
        "The surgeon dissects the connective tissue between the gallbladder and the liver with electrocautery.",
    ),
    "GallbladderPackaging": (
        "In the gallbladder packaging phase I put the gallbladder into a specimen bag.",
        "The surgeon places the detached gallbladder inside the retrieval bag.",
    ),
    "CleaningCoagulation": (
        "In the cleaning and coagulation phase I use irrigation and suction to clean the operating field "
        "and coagulate the bleeding vessels.",
        "The surgeon irrigates and aspirates the liver bed and stops the bleeding with bipolar coagulation.",
    ),
    "GallbladderRetraction": (
        "In the gallbladder retraction phase I grasp the specimen bag and pull it out through the trocar.",
        "The surgeon retracts the bagged gallbladder out of the abdomen through a port.",
    ),
}

#: Short templates for Cholec80 phases; ``{}`` receives a readable phase name.
CHOLEC80_TEMPLATES: tuple[str, ...] = (
    "a laparoscopic video frame during {}.",
    "a frame of a laparoscopic cholecystectomy during the {} phase.",
    "the {} phase of a laparoscopic cholecystectomy.",
    "a surgical video of {}.",
)

# ------------------------------------------------------------------------------------ Cholec80 tools
#: Cholec80 instruments as written in the tool annotation header, in column (label) order.
CHOLEC80_TOOLS: tuple[str, ...] = (
    "Grasper",
    "Bipolar",
    "Hook",
    "Scissors",
    "Clipper",
    "Irrigator",
    "SpecimenBag",
)

#: What each Cholec80 instrument is called in a prompt.
CHOLEC80_TOOL_NAMES: dict[str, str] = {
    "Grasper": "a grasper",
    "Bipolar": "a bipolar forceps",
    "Hook": "an electrocautery hook",
    "Scissors": "laparoscopic scissors",
    "Clipper": "a clip applier",
    "Irrigator": "a suction irrigator",
    "SpecimenBag": "a specimen bag",
}

#: Descriptions of what each instrument does in the field of view.
CHOLEC80_TOOL_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "Grasper": ("I use a grasper to hold and retract the gallbladder.",),
    "Bipolar": ("I use the bipolar forceps to coagulate bleeding tissue.",),
    "Hook": ("I use the electrocautery hook to dissect tissue.",),
    "Scissors": ("I cut the clipped cystic duct with laparoscopic scissors.",),
    "Clipper": ("I apply clips with the clip applier.",),
    "Irrigator": ("I irrigate and aspirate the operating field with the suction irrigator.",),
    "SpecimenBag": ("The gallbladder is placed in a specimen retrieval bag.",),
}

#: Short templates for instruments; ``{}`` receives a readable instrument name.
TOOL_TEMPLATES: tuple[str, ...] = (
    "a laparoscopic video frame showing {}.",
    "a laparoscopic surgery image with {} in view.",
    "{} is used in this laparoscopic surgery.",
)

# -------------------------------------------------------------------------------- AutoLaparo phases
#: AutoLaparo Task 1 phases, in label order (the label files number them 1-7 in this order).
AUTOLAPARO_PHASES: tuple[str, ...] = (
    "Preparation",
    "Dividing Ligament and Peritoneum",
    "Dividing Uterine Vessels and Ligament",
    "Transecting the Vagina",
    "Specimen Removal",
    "Suturing",
    "Washing",
)

#: What each AutoLaparo phase is called in a prompt.
AUTOLAPARO_PHASE_NAMES: dict[str, str] = {
    "Preparation": "preparation",
    "Dividing Ligament and Peritoneum": "dividing the ligaments and the peritoneum",
    "Dividing Uterine Vessels and Ligament": "dividing the uterine vessels and ligaments",
    "Transecting the Vagina": "transecting the vagina",
    "Specimen Removal": "specimen removal",
    "Suturing": "suturing of the vaginal cuff",
    "Washing": "washing",
}

#: Narration-style descriptions of each AutoLaparo phase.
AUTOLAPARO_PHASE_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "Preparation": (
        "In the preparation phase I insert the trocars and the uterine manipulator and inspect the pelvis.",
    ),
    "Dividing Ligament and Peritoneum": (
        "In this phase I divide the round ligament, the broad ligament and the peritoneum with an energy "
        "device to free the uterus.",
    ),
    "Dividing Uterine Vessels and Ligament": (
        "In this phase I coagulate and divide the uterine arteries and the cardinal and uterosacral ligaments.",
    ),
    "Transecting the Vagina": (
        "In this phase I cut around the cervix to transect the vagina and detach the uterus.",
    ),
    "Specimen Removal": (
        "In the specimen removal phase I pull the detached uterus out through the vagina.",
    ),
    "Suturing": (
        "In the suturing phase I close the vaginal cuff with a needle holder and a running suture.",
    ),
    "Washing": (
        "In the washing phase I irrigate and aspirate the pelvis and check for bleeding.",
    ),
}

#: Short templates for AutoLaparo phases; ``{}`` receives a readable phase name.
AUTOLAPARO_TEMPLATES: tuple[str, ...] = (
    "a laparoscopic video frame during {}.",
    "a frame of a laparoscopic hysterectomy during {}.",
    "the {} phase of a laparoscopic hysterectomy.",
    "a surgical video of {}.",
)

#: Prompt styles the ``*_prompts`` functions accept.
PROMPT_STYLES: tuple[str, ...] = ("ensemble", "descriptive", "templates")


def _prompts(
    classes: Sequence[str],
    names: Mapping[str, str],
    descriptions: Mapping[str, Sequence[str]],
    templates: Sequence[str],
    style: str,
) -> dict[str, list[str]]:
    if style not in PROMPT_STYLES:
        raise UnknownNameError("prompt style", style, list(PROMPT_STYLES))
    out: dict[str, list[str]] = {}
    for c in classes:
        prompts: list[str] = []
        if style in ("ensemble", "descriptive"):
            prompts.extend(descriptions[c])
        if style in ("ensemble", "templates"):
            prompts.extend(t.format(names[c]) for t in templates)
        out[c] = prompts
    return out


def cholec80_phase_prompts(style: str = "ensemble") -> dict[str, list[str]]:
    """Zero-shot prompts for Cholec80 phase recognition.

    Args:
        style: ``"descriptive"`` (narration-style sentences), ``"templates"`` (short templates filled
            with the readable name) or ``"ensemble"`` (both).

    Returns:
        ``{phase: [prompt, ...]}`` in :data:`CHOLEC80_PHASES` (label) order.

    """
    return _prompts(CHOLEC80_PHASES, CHOLEC80_PHASE_NAMES, CHOLEC80_PHASE_DESCRIPTIONS, CHOLEC80_TEMPLATES, style)


def cholec80_tool_prompts(style: str = "ensemble") -> dict[str, list[str]]:
    """Zero-shot prompts for Cholec80 tool presence (one binary decision per tool).

    Args:
        style: ``"descriptive"``, ``"templates"`` or ``"ensemble"`` (see :func:`cholec80_phase_prompts`).

    Returns:
        ``{tool: [prompt, ...]}`` in :data:`CHOLEC80_TOOLS` (column) order.

    """
    return _prompts(CHOLEC80_TOOLS, CHOLEC80_TOOL_NAMES, CHOLEC80_TOOL_DESCRIPTIONS, TOOL_TEMPLATES, style)


def autolaparo_phase_prompts(style: str = "ensemble") -> dict[str, list[str]]:
    """Zero-shot prompts for AutoLaparo (hysterectomy) phase recognition.

    Args:
        style: ``"descriptive"``, ``"templates"`` or ``"ensemble"`` (see :func:`cholec80_phase_prompts`).

    Returns:
        ``{phase: [prompt, ...]}`` in :data:`AUTOLAPARO_PHASES` (label) order.

    """
    return _prompts(
        AUTOLAPARO_PHASES, AUTOLAPARO_PHASE_NAMES, AUTOLAPARO_PHASE_DESCRIPTIONS, AUTOLAPARO_TEMPLATES, style
    )
