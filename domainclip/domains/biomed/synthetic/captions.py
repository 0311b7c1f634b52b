"""Captions and citing sentences for generated figures, as JATS inline XML.

A caption says what kind of picture a figure is in words a real caption would use ("Confocal
micrographs of HeLa cells stained for LC3", "Kaplan-Meier curves of overall survival", "Western
blot analysis of p-ERK"), with several phrasings per figure type and per subject, filled with the
facts the painter drew (stain, organ, modality, chart kind, proteins). Around that it adds text that
does not reveal the type (n, p values, methods, replicates), as real captions do. Multi-panel
captions label their panels ``(A) ... (B) ...``, ``(A) ...; (B) ...`` or ``A, ...; B, ...``, with
the letters in bold as publishers tag them.

Every function returns XML fragments whose text is escaped; a caption is ``(title, paragraph)``.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import numpy as np

__all__ = ["LABEL_STYLES", "caption", "citing_sentence", "panel_phrase"]

Facts = dict[str, Any]


def _pick(rng: np.random.Generator, items: tuple[str, ...] | list[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _fill(template: str, facts: Facts) -> str:
    values = {k: (", ".join(map(str, v)) if isinstance(v, list) else v) for k, v in facts.items()}
    return escape(template.format(**values))


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# Titles per (figure type, subject): type-revealing phrasings.
_TITLES: dict[str, dict[str, tuple[str, ...]]] = {
    "chart": {
        "bar chart": ("Bar chart of {variable} in each group.", "Quantification of {variable}: bar graph.",
                      "{Variable} across treatment groups (bar graph).", "Bar plot showing mean {variable}."),
        "line plot": ("Time course of {variable}.", "Line graph of {variable} over time.",
                      "{Variable} over time (line plot).", "Kinetics of {variable}: line chart."),
        "scatter plot": ("Scatter plot of {variable} against the covariate.", "Correlation analysis of {variable}.",
                         "Relationship between {variable} and the covariate (scatter plot, r = {r})."),
        "box plot": ("Box plot of {variable} by group.", "Distribution of {variable} (box-and-whisker plot).",
                     "{Variable} in each group shown as box plots."),
        "survival curve": ("Kaplan-Meier survival curves.", "Kaplan-Meier analysis of survival by group.",
                           "Survival curves stratified by {groups}.", "Kaplan-Meier plot of overall survival."),
    },
    "microscopy": {
        "fluorescence": ("Immunofluorescence staining of {marker} in {cell_line} cells.",
                         "Confocal micrographs of {cell_line} cells stained for {marker} ({colour}) and "
                         "{nuclear_stain}.",
                         "Fluorescence microscopy of {marker} localisation.",
                         "Representative immunofluorescence images of {marker}."),
        "H&E": ("Histology of {tissue} sections (H&E staining).", "Haematoxylin and eosin staining of {tissue}.",
                "Representative H&E-stained micrographs of {tissue} tissue.",
                "Light microscopy of {tissue} (hematoxylin-eosin, {magnification})."),
        "IHC": ("Immunohistochemical staining of {tissue}.", "{stain} of {tissue} sections.",
                "Representative immunohistochemistry micrographs of {tissue}.",
                "IHC staining in {tissue} tissue ({magnification})."),
        "electron": ("Transmission electron micrographs of {tissue}.", "Electron microscopy of {organelle}.",
                     "Ultrastructure of {organelle} in {tissue} (TEM).",
                     "TEM images showing {organelle}."),
    },
    "clinical_imaging": {
        "chest X-ray": ("Chest radiograph showing {finding}.", "{View} chest X-ray of the patient.",
                        "Plain chest radiography at admission.", "Chest X-ray demonstrating {finding}."),
        "CT": ("Axial CT scan of the {organ}.", "Contrast-enhanced computed tomography showing {finding}.",
               "Abdominal CT image at presentation.", "CT of the {organ} revealing {finding}."),
        "MRI": ("Axial {sequence} MRI of the brain.", "Brain magnetic resonance imaging showing {finding}.",
                "{Sequence} MR image of the head.", "Cranial MRI ({sequence}) demonstrating {finding}."),
        "ultrasound": ("Ultrasound image of the {organ}.", "{View} sonogram of the {organ} showing {finding}.",
                       "Ultrasonography of the {organ}.", "B-mode ultrasound revealing {finding}."),
    },
    "gel_blot": {
        "western blot": ("Western blot analysis of {proteins}.", "Immunoblots of {proteins}.",
                         "Protein levels of {proteins} by western blotting.",
                         "Representative western blots of {proteins}."),
        "agarose gel": ("Agarose gel electrophoresis of {product}.", "{Product} on an agarose gel ({stain}).",
                        "Gel electrophoresis of {product}.", "Electrophoresis of {product} stained with {stain}."),
        "SDS-PAGE": ("SDS-PAGE of {product}.", "Coomassie-stained SDS-PAGE gel of {product}.",
                     "Polyacrylamide gel electrophoresis of {product}.", "SDS-PAGE analysis (Coomassie blue)."),
    },
    "diagram": {
        "flowchart": ("Flow diagram of the {study}.", "Study flowchart.", "Flow chart of participant selection.",
                      "CONSORT-style diagram of the {study}."),
        "pathway": ("Schematic model of the proposed signalling pathway.", "Schematic of the {nodes} pathway.",
                    "Proposed mechanism (schematic diagram).", "Diagram of the signalling cascade and its inhibition."),
        "timeline": ("Schematic of the study design.", "Study timeline.", "Diagram of the treatment schedule.",
                     "Schematic overview of the experimental timeline."),
    },
    "chemical_structure": {
        "skeletal formula": ("Chemical structures of compounds {compounds}.", "Structure of {kind} {compounds}.",
                             "Chemical structure of the {kind}.", "Skeletal formulae of the synthesised {kind}s.",
                             "Molecular structures of the tested compounds."),
    },
    "table": {
        "baseline characteristics": ("Table of baseline characteristics.", "Baseline characteristics (table).",
                                     "Table summarising baseline characteristics of the participants."),
        "clinical characteristics": ("Clinical characteristics of the patients (table).",
                                     "Table of clinical characteristics.", "Tabulated clinical data."),
        "univariate analysis": ("Table of univariate analysis results.", "Univariate analysis (table).",
                                "Results of the univariate analysis in tabular form."),
        "laboratory findings": ("Table of laboratory findings.", "Laboratory values (table).",
                                "Tabulated laboratory findings by group."),
    },
    "photograph": {
        "skin lesion": ("Clinical photograph of the lesion on the {site}.", "Photograph of the {site} lesion.",
                        "Clinical image of a pigmented lesion on the {site}.",
                        "Photograph showing the {site} lesion with a ruler for scale."),
        "gross specimen": ("Macroscopic photograph of the resected {site}.", "Gross specimen of the {site}.",
                           "Photograph of the surgical specimen ({site}).",
                           "Gross appearance of the resected {site} with a ruler."),
    },
}

# Descriptive sentences that still name the kind of picture.
_DETAILS: dict[str, tuple[str, ...]] = {
    "chart": ("Bars and points show group means; error bars, SD.", "Each dot is one sample.",
              "Curves show the fitted values.", "The y axis shows {variable}."),
    "microscopy": ("Scale bar, {scale_bar}.", "Images were acquired with a {magnification} objective.",
                   "Stained with {stain}.", "Scale bars represent {scale_bar}."),
    "clinical_imaging": ("The arrow indicates {finding}.", "Imaging was performed at admission.",
                         "Follow-up imaging after treatment is shown on the right."),
    "gel_blot": ("Molecular weight markers are indicated on the left.", "{lanes} lanes are shown.",
                 "The full uncropped blots are shown in the supplement.", "Loading was checked with a control."),
    "diagram": ("Arrows indicate the direction of the process.", "Boxes denote the main steps.",
                "Blunt arrows indicate inhibition."),
    "chemical_structure": ("Reagents and conditions are given in Methods.", "Atoms other than C and H are labelled.",
                           "Compound numbers are given below each structure."),
    "table": ("Values are mean \u00b1 SD or n (%).", "p values from chi-square or t tests.",
              "Continuous variables as mean \u00b1 SD."),
    "photograph": ("The ruler is in centimetres.", "The lesion measured {size_mm} mm in diameter.",
                   "Informed consent for publication was obtained."),
}

# Text that does not reveal the figure type.
_NEUTRAL = (
    "Data are presented as mean \u00b1 SD (n = {n}).",
    "*p < 0.05, **p < 0.01 versus control.",
    "Experiments were repeated {k} times with similar results.",
    "Representative of {k} independent experiments.",
    "See Materials and Methods for details.",
    "n = {n} per group; two-tailed Student's t-test.",
    "Statistical significance was assessed by one-way ANOVA with Tukey's post hoc test (p = {p}).",
    "Samples were collected {k} days after treatment.",
)

# Short phrases naming one panel of a multi-panel figure.
_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "chart": {
        "bar chart": ("bar chart of {variable}", "quantification of {variable} (bar graph)"),
        "line plot": ("time course of {variable}", "line plot of {variable}"),
        "scatter plot": ("scatter plot of {variable}", "correlation of {variable} (r = {r})"),
        "box plot": ("box plot of {variable}", "{variable} shown as box plots"),
        "survival curve": ("Kaplan-Meier survival curves", "survival curves by group"),
    },
    "microscopy": {
        "fluorescence": ("immunofluorescence of {marker} ({colour}) with {nuclear_stain}",
                         "confocal images of {cell_line} cells"),
        "H&E": ("H&E-stained section of {tissue}", "haematoxylin and eosin staining of {tissue}"),
        "IHC": ("{stain} of {tissue}", "immunohistochemistry of {tissue}"),
        "electron": ("electron micrograph of {organelle}", "TEM of {tissue}"),
    },
    "clinical_imaging": {
        "chest X-ray": ("chest radiograph", "chest X-ray showing {finding}"),
        "CT": ("axial CT of the {organ}", "CT scan showing {finding}"),
        "MRI": ("{sequence} MRI", "brain MRI showing {finding}"),
        "ultrasound": ("ultrasound of the {organ}", "sonogram showing {finding}"),
    },
    "gel_blot": {
        "western blot": ("western blot of {proteins}", "immunoblots of {proteins}"),
        "agarose gel": ("agarose gel of {product}", "gel electrophoresis of {product}"),
        "SDS-PAGE": ("SDS-PAGE of {product}", "Coomassie-stained gel"),
    },
    "diagram": {
        "flowchart": ("flow diagram of the {study}", "study flowchart"),
        "pathway": ("schematic of the {nodes} pathway", "proposed model (schematic)"),
        "timeline": ("schematic of the study timeline", "treatment schedule (diagram)"),
    },
    "chemical_structure": {"skeletal formula": ("chemical structure of compound {compounds}",
                                                "structures of the {kind}s")},
    "table": {s: ("table of {subject}", "{subject} (table)") for s in _TITLES["table"]},
    "photograph": {
        "skin lesion": ("clinical photograph of the {site} lesion", "photograph of the lesion"),
        "gross specimen": ("gross specimen of the {site}", "macroscopic photograph of the {site}"),
    },
}

# Titles that name the finding, not the picture (the paragraph still names it).
_NEUTRAL_TITLES = (
    "Effect of treatment on the outcome.", "Characterisation of the knockout model.", "Findings at presentation.",
    "Response to the intervention.", "Validation in an independent cohort.", "Overview of the main result.",
)

#: Panel label styles: ``(A) text. (B) text.``, ``(A) text; (B) text.``, ``A, text; B, text.``
LABEL_STYLES = ("paren", "paren_semicolon", "comma")


def _facts_for(facts: Facts, rng: np.random.Generator) -> Facts:
    values = dict(facts)
    for key in list(values):
        text = values[key]
        if isinstance(text, str) and text:
            values.setdefault(key.capitalize(), text[0].upper() + text[1:])
    for key in ("variable", "view", "sequence", "product"):
        if key in values:
            values[key.capitalize()] = str(values[key])[0].upper() + str(values[key])[1:]
    if "proteins" in values:
        values["proteins"] = _and(list(values["proteins"]))
    if "groups" in values:
        values["groups"] = _and(list(values["groups"]))
    if "nodes" in values:
        values["nodes"] = "/".join(values["nodes"][:3])
    if "compounds" in values:
        values["compounds"] = _and([str(c) for c in values["compounds"]])
    values.update(n=int(rng.integers(3, 40)), k=int(rng.integers(2, 5)), p=_pick(rng, ("0.003", "0.01", "0.02",
                                                                                       "0.04", "0.001")))
    return values


def panel_phrase(figure_type: str, facts: Facts, rng: np.random.Generator) -> str:
    """A short phrase naming one panel (``western blot of p53 and GAPDH``), escaped XML.

    Args:
        figure_type: the panel's taxonomy name.
        facts: what its painter drew.
        rng: the caption's generator.
    """
    return _fill(_pick(rng, _PHRASES[figure_type][facts["subject"]]), _facts_for(facts, rng))


def _label(letter: str, style: str, bold: bool) -> str:
    text = f"<bold>{letter}</bold>" if bold else letter
    return f"({text})" if style != "comma" else f"{text},"


def caption(
    panels: list[tuple[str, Facts]],
    rng: np.random.Generator,
    *,
    labels: list[str],
    label_style: str = "paren",
) -> tuple[str | None, str]:
    """The caption of one figure: ``(title or None, paragraph)`` as escaped JATS inline XML.

    Args:
        panels: ``(figure type, facts)`` per panel; one for a single figure. For a figure whose
            caption has labels but whose image is one panel (an inset), the facts are repeated.
        rng: the caption's generator.
        labels: panel letters to write in the caption (empty: no labels).
        label_style: one of :data:`LABEL_STYLES`.
    """
    first_type, first_facts = panels[0]
    facts = _facts_for(first_facts, rng)
    if rng.random() < 0.15 and not labels:
        title: str | None = escape(_pick(rng, _NEUTRAL_TITLES))
        revealing = _fill(_pick(rng, _TITLES[first_type][first_facts["subject"]]), facts)
        sentences = [revealing]
    else:
        title = _fill(_pick(rng, _TITLES[first_type][first_facts["subject"]]), facts)
        sentences = []
    bold = rng.random() < 0.6
    if labels:
        parts = []
        for letter, (figure_type, panel_facts) in zip(labels, panels):
            phrase = panel_phrase(figure_type, panel_facts, rng)
            parts.append(f"{_label(letter, label_style, bold)} {phrase[0].upper()}{phrase[1:]}")
        if label_style == "paren":
            sentences.append(". ".join(parts) + ".")
        else:
            sentences.append("; ".join(parts) + ".")
    else:
        template = _pick(rng, _DETAILS[first_type])
        try:
            sentences.append(_fill(template, facts))
        except KeyError:
            pass
    for _ in range(int(rng.integers(1, 3))):
        sentences.append(_fill(_pick(rng, _NEUTRAL), facts))
    if rng.random() < 0.2:  # some publishers put everything in the paragraph
        return None, (f"<bold>{title}</bold> " if title else "") + " ".join(sentences)
    return title, " ".join(sentences)


_CITING = {
    "chart": ("{Variable} differed between groups", "Quantification confirmed the change in {variable}",
              "Survival differed between the groups"),
    "microscopy": ("Staining revealed the expected localisation", "Microscopy showed marked changes in {tissue}",
                   "Cells displayed altered morphology"),
    "clinical_imaging": ("Imaging at admission revealed {finding}", "The scan showed {finding}",
                         "Radiological findings are shown"),
    "gel_blot": ("Protein levels of {proteins} changed after treatment", "Blotting confirmed the result",
                 "The expected products were detected"),
    "diagram": ("The study design is summarised", "We propose the model outlined",
                "The workflow is shown"),
    "chemical_structure": ("The compounds tested are shown", "The synthesised structures are given"),
    "table": ("Baseline characteristics are summarised", "The groups were comparable at baseline"),
    "photograph": ("Clinical examination revealed a lesion on the {site}", "The resected specimen is shown"),
}


def citing_sentence(figure_type: str, facts: Facts, rng: np.random.Generator, xref: str) -> str:
    """A body sentence that cites a figure: ``Protein levels of p53 changed after treatment (<xref>...)``.

    Args:
        figure_type: the cited figure's taxonomy name.
        facts: what its (first) panel's painter drew.
        rng: the article text's generator.
        xref: the ``<xref ref-type="fig" ...>`` element to cite it with.
    """
    values = _facts_for(facts, rng)
    templates = _CITING[figure_type]
    template = templates[int(rng.integers(len(templates)))]
    try:
        text = _fill(template, values)
    except KeyError:
        text = "The results are shown"
    return f"{text} ({xref})."
