"""The biomedical literature domain's declaration: a light spec of names and ``"module:attr"`` strings only."""

from __future__ import annotations

from domainclip.core.plugins import DomainSpec

__all__ = ["DOMAIN"]

_B = "domainclip.domains.biomed"

DOMAIN = DomainSpec(
    name="biomed",
    extra="biomed",
    description=(
        "Biomedical literature (BIOMEDICA / BMCA-CLIP): PMC Open Access articles to deduplicated figure-caption "
        "shards with a figure-type taxonomy, streaming continual pretraining, a many-task evaluation registry"
    ),
    papers=(
        "BIOMEDICA: An Open Biomedical Image-Caption Archive, Dataset, and Vision-Language Models Derived from "
        "Scientific Literature (Lozano et al., CVPR 2025)",
    ),
    prepare={
        "figures": f"{_B}.figures:prepare_figures",
        "dedup": f"{_B}.dedup:deduplicate_figures",
        "panels": f"{_B}.panels:split_panels",
        "concepts": f"{_B}.concepts:annotate_concepts",
        "synthetic": f"{_B}.synthetic:generate_articles",
    },
    eval_suites={
        "tasks": f"{_B}.evals:task_suite",
        "retrieval": f"{_B}.evals:retrieval_suite",
    },
    datasets={"folder": f"{_B}.datasets.folder:ClassFolder", "csv": f"{_B}.datasets.table:LabelTable"},
    synthetic="synthetic",
    demo="biomed/quick",
    tasks={"figure_text": f"{_B}.tasks:FIGURE_TEXT"},
    requires=("lxml", "imagehash", "monai"),
    zoo=f"{_B}:zoo.yaml",
)
