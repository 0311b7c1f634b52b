"""The synthetic tissue classes in words: class names, PathGen-style captions and zero-shot prompts.

The nine classes are those of NCT-CRC-HE-100K, in the label order of
:data:`domainclip.domains.pathology.labels.NCT_CRC_CLASSES` (the dataset's folder order), so a model's
predictions on synthetic patches and on the real CRC-VAL-HE-7K folders use the same labels and
prompts. Captions describe morphology (cellularity, nuclear size, shape and atypia, gland
architecture, fibre orientation, staining) in the style of PathGen-1.6M's descriptions; about half
of them never name the class.
"""

from __future__ import annotations

from functools import cache

from domainclip.core.plugins import UnknownNameError
from domainclip.domains.pathology import labels

__all__ = [
    "CAPTION_SYNONYMS",
    "CAPTION_TEMPLATES",
    "CLASS_NAMES",
    "NCT_CRC_HE_CODES",
    "SLIDE_LABELS",
    "SLIDE_PROMPTS",
    "TISSUE_CLASSES",
    "ZERO_SHOT_TEMPLATES",
    "caption_groups",
    "caption_pool",
    "check_class",
    "slide_templates",
    "synthetic_templates",
]

#: Tissue classes in label order (a mask stores index + 1; a patch's ``label`` is the index): the
#: NCT-CRC-HE-100K classes in :data:`~domainclip.domains.pathology.labels.NCT_CRC_CLASSES` order.
TISSUE_CLASSES: tuple[str, ...] = (
    "adipose", "background", "debris", "lymphocytes", "mucus", "muscle", "normal", "stroma", "tumor",
)

#: The NCT-CRC-HE-100K class code of each synthetic class.
NCT_CRC_HE_CODES: dict[str, str] = dict(zip(TISSUE_CLASSES, labels.NCT_CRC_CLASSES, strict=True))

#: Display names used in zero-shot prompts: the dataset authors' names (:data:`labels.NCT_CRC_NAMES`).
CLASS_NAMES: dict[str, str] = {c: labels.NCT_CRC_NAMES[code] for c, code in NCT_CRC_HE_CODES.items()}

#: Slide-level labels written to ``slides.csv``: a slide is ``tumor`` when its mask holds tumour.
SLIDE_LABELS: tuple[str, ...] = ("normal", "tumor")


#: Names a caption may use for each class (``{name}`` in :data:`CAPTION_TEMPLATES`).
CAPTION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "adipose": ("adipose tissue", "mature fat", "fatty tissue", "adipocytes"),
    "background": ("background", "empty glass", "a tissue-free area", "blank slide background"),
    "debris": ("necrotic debris", "necrosis", "debris", "coagulative necrosis", "karyorrhectic debris"),
    "muscle": ("smooth muscle", "muscularis propria", "smooth muscle bundles", "muscle tissue"),
    "normal": ("normal colon mucosa", "benign colonic mucosa", "normal colonic crypts", "uninvolved mucosa"),
    "lymphocytes": ("lymphocytes", "a dense lymphocytic infiltrate", "lymphoid tissue", "sheets of lymphocytes"),
    "stroma": ("stroma", "fibrous stroma", "collagenous stroma", "cancer-associated stroma", "connective tissue"),
    "tumor": ("adenocarcinoma", "tumor epithelium", "malignant glandular epithelium", "carcinoma", "tumor"),
    "mucus": ("mucus", "extracellular mucin", "mucinous material", "pools of mucin"),
}

#: PathGen-style descriptive caption templates per class: morphology, colour and arrangement.
#: ``{name}`` is filled with one of :data:`CAPTION_SYNONYMS`; some templates describe without naming.
CAPTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "background": (
        "The image shows {name}: no cells or tissue, only a pale, nearly uniform field with faint smudges.",
        "An almost empty field with a few dust particles and an uneven faint tint; no nuclei or structures.",
        "This patch is acellular {name}, bright and featureless apart from tiny dark specks.",
        "Glass without tissue; at most an out-of-focus smear or the dark rim of an air bubble is seen.",
        "Histology slide {name} with no cellular detail, low contrast and very low stain density.",
        "Pale, structureless area without nuclei, fibres or glands, consistent with {name}.",
        "A bright field with scattered minute dark dots of dust and no tissue architecture.",
        "No tissue is present; the field shows {name} with an uneven film of mounting medium.",
    ),
    "debris": (
        "The image shows {name}: granular eosinophilic material strewn with small dark nuclear fragments.",
        "Amorphous pink debris with karyorrhexis, scattered pyknotic nuclei and no preserved architecture.",
        "Dirty necrosis: fragmented nuclear dust and cell ghosts in a pale pink granular background.",
        "This patch shows {name} with loss of cell outlines, dense tiny basophilic fragments and clefts.",
        "Necrotic tissue in which faint ghost outlines of glands persist, with a few residual atypical nuclei.",
        "Histology of {name}: eosinophilic granular debris, apoptotic bodies and shrunken dark nuclei.",
        "Pink-purple amorphous material peppered with irregular nuclear dust, consistent with {name}.",
        "Cellular debris with karyorrhectic and pyknotic nuclei, no viable glands and scattered pale spaces.",
        "The field shows {name}; nuclei are fragmented into small irregular dark specks and the cytoplasm is "
        "smudged pink.",
    ),
    "muscle": (
        "The image shows {name}: fascicles of elongated cells with abundant pink cytoplasm and cigar-shaped nuclei.",
        "H&E section of {name} with densely packed parallel spindle cells; nuclei are long with blunt ends.",
        "Bundles of eosinophilic smooth muscle cells cut longitudinally and at angles, with regularly spaced "
        "elongated nuclei.",
        "This patch shows {name}; the cytoplasm is homogeneous, brightly pink and fibrillar, and the straight "
        "fibres run in one direction within each bundle.",
        "Intersecting fascicles of spindle cells with uniform cigar-shaped nuclei and no atypia.",
        "Histology of {name}: moderately cellular, straight eosinophilic fibres with evenly distributed "
        "blunt-ended nuclei.",
        "Dense pink tissue of interlacing bundles separated by thin clefts, typical of {name}.",
        "Elongated cells in parallel array, their nuclei more numerous and plumper than fibroblasts in stroma, "
        "consistent with {name}.",
    ),
    "normal": (
        "The image shows {name}: regular, evenly spaced round crypts lined by a single layer of columnar cells.",
        "H&E section of {name} with test-tube crypts, abundant goblet cells and small basal nuclei.",
        "Uniform crypts with pale mucin-filled goblet cells and small, regular, basally located nuclei in a row.",
        "This patch shows {name}; glands are evenly spaced and of similar size, separated by a lamina propria "
        "with lymphocytes and plasma cells.",
        "Benign glandular epithelium with preserved nuclear polarity, no stratification and no atypia.",
        "Histology of {name}: round crypts with open lumens, many clear goblet vacuoles and a cellular lamina "
        "propria.",
        "Orderly colonic crypts lined by mucin-rich cells whose small oval nuclei sit at the base, consistent "
        "with {name}.",
        "Regular glandular architecture with low nuclear-to-cytoplasmic ratio and inflammatory cells between "
        "the crypts.",
    ),
    "adipose": (
        "The image shows {name} composed of large, empty-looking polygonal cells separated by thin pink "
        "membranes, with only a few flattened nuclei pressed against the cell borders.",
        "H&E-stained section of {name}: clear, white cytoplasmic spaces outlined by delicate eosinophilic "
        "septa in a honeycomb pattern.",
        "Large vacuolated cells with thin, partly torn pink walls fill the field; nuclei are scarce and "
        "compressed to the periphery, typical of {name}.",
        "This patch is dominated by {name}, with polygonal clear cells of fairly uniform size and very low "
        "cellularity.",
        "A lattice of thin pink lines encloses broad white spaces; the tissue is hypocellular and lacks "
        "glands or inflammatory cells.",
        "Histology of {name}: lipid-filled cells appear optically empty after processing, bounded by fine "
        "membranes with rare crescent-shaped nuclei.",
        "Pale tissue made of large round to polygonal empty cells with thin eosinophilic borders, "
        "consistent with {name}.",
        "Low-power view of {name} showing a mesh of delicate septa around clear vacuoles and almost no "
        "nuclear material.",
        "The field shows benign {name}; cell outlines are thin and pink, the interiors white, and there is "
        "no atypia.",
        "Adipocytes with large clear vacuoles and peripheral flattened nuclei form a honeycomb of thin "
        "pink membranes.",
    ),
    "lymphocytes": (
        "The image shows {name}: densely packed small, round, darkly stained nuclei with scant cytoplasm.",
        "H&E section of {name} with sheets of uniform small cells whose round hyperchromatic nuclei appear "
        "deep purple.",
        "Numerous small round dark-blue nuclei are crowded together with little intervening pink "
        "cytoplasm, characteristic of {name}.",
        "This patch is highly cellular, filled by {name}; nuclei are small, regular and evenly dark, with "
        "no gland formation.",
        "Monotonous small round cells with dense chromatin and a high nuclear-to-cytoplasmic ratio fill "
        "the field, consistent with a lymphocytic infiltrate.",
        "Dense purple cellular tissue of {name}, the nuclei about the size of a red blood cell, round and "
        "closely spaced.",
        "Histology of {name}: a carpet of tiny dark nuclei on a faint pinkish-purple background.",
        "Inflammatory cells dominate the field; they are small, round and intensely basophilic, arranged "
        "in sheets without architecture.",
        "The tissue shows {name} with uniform round nuclei, condensed chromatin and minimal cytoplasm, "
        "giving a dark blue-purple appearance.",
        "Tightly packed lymphoid cells with small round nuclei, the whole field stained dark purple by "
        "haematoxylin.",
    ),
    "stroma": (
        "The image shows {name} with wavy pink collagen fibres and sparse elongated spindle-shaped nuclei.",
        "H&E-stained {name}: eosinophilic fibrous bands run in parallel streaks, with scattered thin dark "
        "nuclei aligned along them.",
        "Pink, fibrillar tissue with low cellularity; slender spindle nuclei lie between wavy collagen "
        "bundles, typical of {name}.",
        "This patch shows {name}, dominated by bright pink extracellular matrix arranged in undulating "
        "fibres with small clefts.",
        "Streaming eosinophilic fibres with a few elongated fibroblast nuclei; no glands or dense "
        "inflammation are present.",
        "Histology of {name}: collagen-rich, pink and wavy, with sparse cigar-shaped nuclei oriented along "
        "the fibres.",
        "Desmoplastic-looking pink stroma with parallel wavy fibres and scattered spindle cells, "
        "consistent with {name}.",
        "Fibrous tissue stained intensely pink by eosin, with thin clefts between collagen bundles and "
        "rare nuclei.",
        "The field shows {name}; the matrix is pink and fibrillar, and the few nuclei are thin, dark and "
        "elongated.",
        "Loosely arranged eosinophilic collagen fibres form wavy streaks, with a low density of spindle "
        "nuclei.",
    ),
    "tumor": (
        "The image shows {name} with crowded, enlarged, irregular hyperchromatic nuclei lining distorted "
        "glands around small lumens.",
        "H&E section of {name}: back-to-back glandular structures lined by pseudostratified atypical cells "
        "with large purple nuclei.",
        "Irregular glands with pleomorphic, elongated nuclei and a high nuclear-to-cytoplasmic ratio fill "
        "the field, consistent with {name}.",
        "This patch shows {name}; neoplastic glands are crowded, their nuclei large, dark and stacked, "
        "with purple-pink cytoplasm.",
        "Malignant glandular architecture with nuclear pleomorphism, hyperchromasia and loss of polarity "
        "around pale luminal spaces.",
        "Histology of {name}: cribriform and tubular glands lined by crowded, irregular, deep purple "
        "nuclei separated by thin stroma.",
        "Atypical epithelial cells with large oval to irregular nuclei form closely packed glands; "
        "intraluminal debris is focally seen.",
        "Densely cellular purple tissue of {name} with enlarged vesicular nuclei, prominent nucleoli and "
        "disorganised glands.",
        "The field is occupied by {name}: glands of varying size with stratified, elongated, "
        "hyperchromatic nuclei and little intervening stroma.",
        "Crowded neoplastic glands lined by large irregular nuclei with coarse chromatin, indicative of "
        "adenocarcinoma.",
        "Malignant glands containing dirty necrosis: eosinophilic luminal debris with nuclear dust, lined by "
        "stratified atypical nuclei.",
    ),
    "mucus": (
        "The image shows {name}: pale blue-grey, wispy amorphous material with very few cells.",
        "H&E section with {name}, appearing as faint bluish-grey streaks and strands with scattered "
        "floating cells.",
        "Pale, lightly basophilic acellular material with a stringy, wispy texture fills the field, "
        "consistent with {name}.",
        "This patch shows {name}; the background is pale grey-blue and finely fibrillary, and nuclei are "
        "rare.",
        "Amorphous pale blue-grey extracellular material with delicate strands and only occasional "
        "isolated cells.",
        "Histology of {name}: a hypocellular, pale basophilic pool with swirling wisps and no glandular "
        "structures.",
        "Faintly stained, wispy, blue-tinged material spreads across the field with sparse small nuclei, "
        "typical of {name}.",
        "Pale grey-blue mucoid substance with streaming strands and low cellularity, as seen in mucinous "
        "areas.",
        "The field is filled by {name}, light blue-grey and stringy, with a few detached cells floating "
        "in it.",
        "Large pale basophilic areas with a delicate wispy pattern and almost no nuclei, typical of "
        "extracellular mucin.",
    ),
}

#: Zero-shot prompt templates (``{}`` is a :data:`CLASS_NAMES` display name).
ZERO_SHOT_TEMPLATES: tuple[str, ...] = (
    "an H&E image of {}.",
    "a histopathology patch showing {}.",
    "an H&E-stained tissue section of {}.",
    "a photomicrograph of {}.",
    "a pathology image of {}.",
    "{} in an H&E slide.",
)

#: Slide-level prompts for MI-Zero style evaluation, keyed by :data:`SLIDE_LABELS`.
SLIDE_PROMPTS: dict[str, tuple[str, ...]] = {
    "normal": (
        "an H&E image of normal tissue.",
        "a histopathology patch of benign tissue without tumor.",
        "an H&E image of normal colon mucosa, stroma, muscle, fat, lymphocytes or mucus.",
    ),
    "tumor": (
        "an H&E image of tumor.",
        "a histopathology patch of adenocarcinoma.",
        "an H&E image of colorectal adenocarcinoma epithelium.",
    ),
}


def caption_pool(tissue_class: str) -> list[str]:
    """Every caption the annotator can draw for a class (each template with each synonym).

    Args:
        tissue_class: one of :data:`TISSUE_CLASSES`.

    Returns:
        The distinct expanded captions, in template then synonym order.

    Raises:
        UnknownNameError: the class is not known.
    """
    check_class(tissue_class)
    return list(dict.fromkeys(c for group in caption_groups(tissue_class) for c in group))


@cache
def caption_groups(tissue_class: str) -> tuple[tuple[str, ...], ...]:
    """Per caption template of a class, its captions (one per synonym, or one when it names no class)."""
    groups = []
    for template in CAPTION_TEMPLATES[tissue_class]:
        names = CAPTION_SYNONYMS[tissue_class] if "{name}" in template else ("",)
        texts = (template.format(name=name) for name in names)
        groups.append(tuple(dict.fromkeys(t[0].upper() + t[1:] for t in texts)))
    return tuple(groups)


def synthetic_templates() -> dict[str, list[str]]:
    """Zero-shot prompts for patch classification over the synthetic tissue classes.

    Returns:
        ``{class: [prompt, ...]}`` in :data:`TISSUE_CLASSES` (label) order; average each class's text
        embeddings to build the classifier.
    """
    return {c: [t.format(CLASS_NAMES[c]) for t in ZERO_SHOT_TEMPLATES] for c in TISSUE_CLASSES}


def slide_templates() -> dict[str, list[str]]:
    """Zero-shot prompts for slide-level tumour detection (MI-Zero pooling over patches).

    Returns:
        ``{"normal": [...], "tumor": [...]}`` in :data:`SLIDE_LABELS` order.
    """
    return {label: list(SLIDE_PROMPTS[label]) for label in SLIDE_LABELS}


def check_class(name: str) -> int:
    """The label (index in :data:`TISSUE_CLASSES`) of a class; unknown names raise with the close matches."""
    if name not in TISSUE_CLASSES:
        raise UnknownNameError("tissue class", str(name), list(TISSUE_CLASSES))
    return TISSUE_CLASSES.index(name)

