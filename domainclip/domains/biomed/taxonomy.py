"""The figure-type taxonomy: what kind of picture a figure of a biomedical article is.

BIOMEDICA annotates its 24M figures with a hierarchy of concepts whose top level separates clinical
imaging, microscopy, immuno-assays (gels and blots), plots and charts, illustrative diagrams,
chemical structures, tables and photographs. :data:`FIGURE_TYPES` is that top level, each type
with words a caption would use and zero-shot prompt templates. It is what
``domainclip prepare biomed concepts`` labels clusters with (unless given another taxonomy), what
the generated articles draw, and the classes of the ``figure_types`` evaluation task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FIGURE_TYPES", "TEMPLATES", "FigureType", "FigureTypeName", "figure_type", "figure_type_names", "prompts"]


@dataclass(frozen=True)
class FigureType:
    """One class of the taxonomy.

    Args:
        name: identifier used in shard ``json``, folder names and recipes (``chemical_structure``).
        words: the class in words, as it fills a prompt template ("a chemical structure").
        description: one line on what belongs here, for data cards and reports.
        synonyms: other names of the class in words ("a skeletal formula"); zero-shot prompts
            average every name in every template, as CONCH and the registry's tasks do.
    """

    name: str
    words: str
    description: str
    synonyms: tuple[str, ...] = ()

    @property
    def all_words(self) -> tuple[str, ...]:
        """:attr:`words` then :attr:`synonyms`."""
        return (self.words, *self.synonyms)

    def prompts(self, templates: tuple[str, ...]) -> list[str]:
        """Every template filled with every name in words (templates outer, names inner).

        Args:
            templates: templates with one ``{}``.
        """
        return [template.format(words) for template in templates for words in self.all_words]


#: The taxonomy's classes, in label order.
FIGURE_TYPES: tuple[FigureType, ...] = (
    FigureType("clinical_imaging", "a radiology image", "X-ray, CT, MRI, ultrasound and other clinical scans",
               ("an X-ray", "a CT scan", "an MRI scan", "an ultrasound image")),
    FigureType("microscopy", "a microscopy image", "light, fluorescence and electron micrographs, histology",
               ("a micrograph", "a fluorescence microscopy image", "a histology image", "an electron micrograph")),
    FigureType("gel_blot", "a gel or western blot", "electrophoresis gels, western, northern and southern blots",
               ("a western blot", "an electrophoresis gel")),
    FigureType("chart", "a chart or plot", "bar charts, line and scatter plots, survival curves, heat maps",
               ("a bar chart", "a line plot", "a scatter plot", "a survival curve")),
    FigureType("diagram", "a schematic diagram", "flowcharts, pathways, study designs, illustrations",
               ("a flowchart", "a pathway diagram")),
    FigureType("chemical_structure", "a chemical structure", "skeletal formulae of molecules and reactions",
               ("a skeletal formula", "a molecular structure")),
    FigureType("table", "a table", "tables rendered as images", ("a data table",)),
    FigureType("photograph", "a photograph", "photographs of patients, specimens, equipment or fieldwork",
               ("a clinical photograph", "a specimen photograph")),
)

#: A class name of :data:`FIGURE_TYPES` (the type options of commands are checked against).
FigureTypeName = Literal[tuple(t.name for t in FIGURE_TYPES)]  # Literal of the names

#: Zero-shot prompt templates; ``{}`` takes a type's :attr:`FigureType.words`.
TEMPLATES: tuple[str, ...] = (
    "{}.",
    "a figure showing {}.",
    "a scientific figure of {}.",
    "{} from a biomedical research article.",
    "this figure is {}.",
)

_BY_NAME = {t.name: t for t in FIGURE_TYPES}


def figure_type_names() -> list[str]:
    """The taxonomy's class names in label order."""
    return [t.name for t in FIGURE_TYPES]


def figure_type(name: str) -> FigureType:
    """The class called ``name``.

    Args:
        name: a class name of :data:`FIGURE_TYPES`.

    Raises:
        KeyError: naming the known classes, when ``name`` is not one of them.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown figure type {name!r}; known: {', '.join(_BY_NAME)}") from None


def prompts(name: str, templates: tuple[str, ...] = TEMPLATES) -> list[str]:
    """Every template filled with every name in words of the class ``name`` (templates outer, names inner).

    Args:
        name: a class name of :data:`FIGURE_TYPES`.
        templates: templates with one ``{}``.
    """
    return figure_type(name).prompts(templates)
