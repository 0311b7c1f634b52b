"""The pathology domain's declaration: a light spec of names and ``"module:attr"`` strings only."""

from __future__ import annotations

from domainclip.core.plugins import DomainSpec

__all__ = ["DOMAIN"]

_P = "domainclip.domains.pathology"

DOMAIN = DomainSpec(
    name="pathology",
    extra="pathology",
    description=(
        "Whole-slide images (PathGen-1.6M / PathGen-CLIP): tissue detection, patching at a physical resolution, "
        "representative-patch selection, patch- and slide-level zero-shot evaluation"
    ),
    papers=(
        "PathGen-1.6M: 1.6 Million Pathology Image-text Pairs Generation through Multi-agent Collaboration "
        "(Sun et al., ICLR 2025)",
        "Visual Language Pretrained Multiple Instance Zero-Shot Transfer for Histopathology Images "
        "(MI-Zero; Lu et al., CVPR 2023)",
    ),
    prepare={
        "patches": f"{_P}.patching:prepare_patches",
        "pathgen": f"{_P}.pathgen:import_pathgen",
        "select": f"{_P}.selection:prepare_select",
        "synthetic": f"{_P}.synthetic:generate_slides",
        "synthetic-patches": f"{_P}.pipeline:prepare_synthetic_patches",
    },
    eval_suites={
        "synthetic": f"{_P}.pipeline:synthetic_suite",
        "synthetic_shifted": f"{_P}.pipeline:synthetic_shifted_suite",
        "nct_crc": f"{_P}.evals:patch_folder_suite",
        "pcam": f"{_P}.evals:pcam_suite",
        "slides": f"{_P}.evals:slide_suite",
    },
    datasets={
        "nct_crc": f"{_P}.datasets.folder:PatchFolder",
        "pcam": f"{_P}.datasets.pcam:PatchCamelyon",
        "slide_patches": f"{_P}.datasets.slide_labels:PatchShardStream",
    },
    tasks={"patch_text": f"{_P}.tasks:PATCH_TEXT"},
    synthetic="synthetic",
    demo="pathology/quick",
    requires=("openslide", "tiffslide", "skimage"),
    zoo=f"{_P}:zoo.yaml",
)
