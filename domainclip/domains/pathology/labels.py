"""Class lists and zero-shot prompt ensembles for the pathology benchmarks.

Two patch-level label spaces, importable without any pathology dependency:

* :data:`NCT_CRC_CLASSES`: the nine tissue classes of NCT-CRC-HE-100K / CRC-VAL-HE-7K (Kather et
  al., 2019), in the order of the dataset's class folders (``ADI``, ``BACK``, ..., ``TUM``), which is
  also the label order of :class:`~domainclip.domains.pathology.datasets.folder.PatchFolder`.
* :data:`PCAM_CLASSES`: PatchCamelyon's two classes (label 0: no metastatic tissue in the centre
  region, label 1: metastatic tumour tissue).

Prompts follow the CONCH / PLIP practice of *prompt ensembling over synonyms and templates*: each
class has several names (:data:`NCT_CRC_SYNONYMS`, :data:`PCAM_SYNONYMS`), every name is put
through every template (:data:`PATCH_TEMPLATES`), and a class's zero-shot weight is the mean of
the normalised embeddings of all its prompts. ``*_prompts()`` return these ensembles as
``{class: [prompt, ...]}``; :func:`expand_prompts` builds one for any class list (e.g. synthetic
tissue classes or the labels of a slide cohort).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "NCT_CRC_CLASSES",
    "NCT_CRC_NAMES",
    "NCT_CRC_SYNONYMS",
    "PATCH_TEMPLATES",
    "PATCH_TEMPLATE_SETS",
    "PCAM_CLASSES",
    "PCAM_NAMES",
    "PCAM_SYNONYMS",
    "SLIDE_TEMPLATES",
    "display_name",
    "expand_prompts",
    "humanise",
    "nct_crc_prompts",
    "pcam_prompts",
]

#: NCT-CRC-HE-100K / CRC-VAL-HE-7K class folders, in the dataset's (alphabetical) folder order.
NCT_CRC_CLASSES: tuple[str, ...] = ("ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM")

#: The class names used by the dataset's authors (Kather et al., 2019).
NCT_CRC_NAMES: dict[str, str] = {
    "ADI": "adipose tissue",
    "BACK": "background",
    "DEB": "debris",
    "LYM": "lymphocytes",
    "MUC": "mucus",
    "MUS": "smooth muscle",
    "NORM": "normal colon mucosa",
    "STR": "cancer-associated stroma",
    "TUM": "colorectal adenocarcinoma epithelium",
}

#: Names of each NCT-CRC class for prompt ensembling; the first is :data:`NCT_CRC_NAMES`'s.
NCT_CRC_SYNONYMS: dict[str, tuple[str, ...]] = {
    "ADI": ("adipose tissue", "adipocytes", "fat tissue", "fat cells"),
    "BACK": ("background", "empty background", "slide background without tissue"),
    "DEB": ("debris", "necrotic debris", "necrosis", "tumour necrosis and debris"),
    "LYM": ("lymphocytes", "lymphocytic infiltrate", "immune cells", "a lymphoid aggregate"),
    "MUC": ("mucus", "mucin", "extracellular mucin pools"),
    "MUS": ("smooth muscle", "smooth muscle tissue", "muscularis propria"),
    "NORM": ("normal colon mucosa", "normal colonic mucosa", "benign colonic glands", "uninvolved colon mucosa"),
    "STR": ("cancer-associated stroma", "tumour stroma", "desmoplastic stroma", "stromal tissue"),
    "TUM": (
        "colorectal adenocarcinoma epithelium",
        "colorectal adenocarcinoma",
        "malignant epithelium",
        "tumour epithelium",
    ),
}

#: PatchCamelyon classes in label order (the ``y`` value of ``camelyonpatch_level_2_split_*_y.h5``).
PCAM_CLASSES: tuple[str, ...] = ("normal", "metastasis")

#: Display names of the PatchCamelyon classes.
PCAM_NAMES: dict[str, str] = {
    "normal": "lymph node tissue without metastasis",
    "metastasis": "lymph node tissue with metastatic tumour",
}

#: Names of each PatchCamelyon class for prompt ensembling; the first is :data:`PCAM_NAMES`'s.
PCAM_SYNONYMS: dict[str, tuple[str, ...]] = {
    "normal": (
        "lymph node tissue without metastasis",
        "normal lymph node tissue",
        "benign lymph node",
        "lymphocytes in a lymph node",
    ),
    "metastasis": (
        "lymph node tissue with metastatic tumour",
        "metastatic breast carcinoma in a lymph node",
        "a lymph node metastasis",
        "tumour cells in a lymph node",
    ),
}

#: Patch-level prompt templates (CONCH / PLIP style); ``{}`` receives a class name.
PATCH_TEMPLATES: tuple[str, ...] = (
    "{}.",
    "an H&E image of {}.",
    "an H&E image showing {}.",
    "an H&E stained image of {}.",
    "a histopathology image of {}.",
    "a histopathological image showing {}.",
    "a photomicrograph of {}.",
    "a photomicrograph showing {}.",
    "an image of {}.",
    "this is {}.",
    "presence of {}.",
    "{}, H&E stain.",
)

#: The prompt template sets patch suites offer (``prompts=...``), so prompt sensitivity can be measured:
#: ``ensemble`` (every name of a class through :data:`PATCH_TEMPLATES`, averaged), ``single`` (the first
#: name through one template), and the templates two published models' authors used with plain class
#: names: ``pathgen`` (PathGen-CLIP's zero-shot scripts) and ``plip`` (PLIP's evaluation code).
PATCH_TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "ensemble": PATCH_TEMPLATES,
    "single": ("an H&E image of {}.",),
    "pathgen": ("An H&E image of {}", "An H&E patch of {}", "An H&E image patch of {}", "An image of {}"),
    "plip": ("An H&E image of {}.", "An H&E image patch of {}.", "An H&E image patch of {} tissue."),
}

#: Slide-level prompt templates for MI-Zero-style zero-shot (one class name each).
SLIDE_TEMPLATES: tuple[str, ...] = (
    "an H&E image of {}.",
    "an H&E image showing {}.",
    "a histopathology image of {}.",
    "a photomicrograph of {}.",
    "{}.",
)


def humanise(label: str) -> str:
    """A label value as words: underscores become spaces, spaces collapse (``"lung_adeno"`` -> ``"lung adeno"``)."""
    return " ".join(label.replace("_", " ").split())


def display_name(label: str) -> str:
    """How a class folder or label value is written in a prompt.

    NCT-CRC codes (``"TUM"``) get their display names (:data:`NCT_CRC_NAMES`); any other label is
    :func:`humanise`-d.
    """
    return NCT_CRC_NAMES.get(label, humanise(label))


def _check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    if isinstance(templates, str):
        raise TypeError("templates must be a list of format strings, not a single string")
    if not templates:
        raise ValueError("at least one prompt template is needed")
    for template in templates:
        if not isinstance(template, str) or "{}" not in template:
            raise ValueError(f"prompt template {template!r} has no '{{}}' placeholder for the class name")
    return tuple(templates)


def expand_prompts(
    names: Mapping[str, str | Sequence[str]], templates: Sequence[str] = PATCH_TEMPLATES
) -> dict[str, list[str]]:
    """Put every name of every class through every template.

    Args:
        names: class -> its name, or its names (synonyms), in label order.
        templates: ``str.format`` strings with one ``{}``.

    Returns:
        ``{class: [prompt, ...]}`` in the order of ``names``, duplicates removed (first kept).

    Raises:
        ValueError: a class has no name, or a template has no ``{}``.

    """
    templates = _check_templates(templates)
    out: dict[str, list[str]] = {}
    for cls, value in names.items():
        synonyms = [value] if isinstance(value, str) else list(value)
        if not synonyms or not all(isinstance(s, str) and s.strip() for s in synonyms):
            raise ValueError(f"class {cls!r} needs at least one non-empty name, got {value!r}")
        prompts = [t.format(s) for s in synonyms for t in templates]
        out[cls] = list(dict.fromkeys(prompts))
    return out


def nct_crc_prompts(templates: Sequence[str] = PATCH_TEMPLATES, *, synonyms: bool = True) -> dict[str, list[str]]:
    """Zero-shot prompt ensembles for the nine NCT-CRC-HE tissue classes.

    Args:
        templates: prompt templates (default :data:`PATCH_TEMPLATES`).
        synonyms: use every name in :data:`NCT_CRC_SYNONYMS`; ``False`` uses only the display name.

    Returns:
        ``{class code: [prompt, ...]}`` in :data:`NCT_CRC_CLASSES` (label) order.

    """
    names = NCT_CRC_SYNONYMS if synonyms else NCT_CRC_NAMES
    return expand_prompts({c: names[c] for c in NCT_CRC_CLASSES}, templates)


def pcam_prompts(templates: Sequence[str] = PATCH_TEMPLATES, *, synonyms: bool = True) -> dict[str, list[str]]:
    """Zero-shot prompt ensembles for PatchCamelyon (normal vs metastatic lymph node tissue).

    Args:
        templates: prompt templates (default :data:`PATCH_TEMPLATES`).
        synonyms: use every name in :data:`PCAM_SYNONYMS`; ``False`` uses only the display name.

    Returns:
        ``{class: [prompt, ...]}`` in :data:`PCAM_CLASSES` (label) order.

    """
    names = PCAM_SYNONYMS if synonyms else PCAM_NAMES
    return expand_prompts({c: names[c] for c in PCAM_CLASSES}, templates)
