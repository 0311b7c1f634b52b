"""The multi-view domain's declaration: a light spec of names and ``"module:attr"`` strings only."""

from __future__ import annotations

from domainclip.core.plugins import DomainSpec

__all__ = ["DOMAIN"]

_M = "domainclip.domains.multiview"

DOMAIN = DomainSpec(
    name="multiview",
    extra="multiview",
    description=(
        "Objects seen from many viewpoints (Omniview-Tuning): meshes rendered headless on the CPU, captured "
        "multi-view sets (MVCap, MVImgNet), worst-view mining with cross-viewpoint alignment and LoRA, "
        "viewpoint-robustness evaluation"
    ),
    papers=(
        "Omniview-Tuning: Boosting Viewpoint Invariance of Vision-Language Pre-training Models (OVT; Ruan et al., "
        "ECCV 2024)",
        "LoRA: Low-Rank Adaptation of Large Language Models (Hu et al., ICLR 2022)",
        "ImageNet-D / ImageNet-V: viewpoint robustness benchmarks of image classifiers (Dong et al., 2022)",
    ),
    prepare={
        "synthetic": f"{_M}.synthetic.meshes:generate_meshes",
        "render": f"{_M}.render:render_meshes",
        "import": f"{_M}.importers:import_views",
    },
    eval_suites={
        "viewpoint": f"{_M}.evals:viewpoint_suite",
        "imagenet_v": f"{_M}.evals:imagenet_v_suite",
    },
    datasets={
        "mvcap": f"{_M}.datasets.mvcap:MVCap",
        "mvimgnet": f"{_M}.datasets.mvimgnet:MVImgNet",
        "imagenet_v": f"{_M}.datasets.imagenet_v:ImageNetV",
    },
    synthetic="synthetic",
    demo="multiview/quick",
    tasks={"omniview": f"{_M}.tasks:OMNIVIEW"},
    towers={"omniview": f"{_M}.models:OmniviewCLIP"},
    requires=("mitsuba", "trimesh", "peft"),
)
