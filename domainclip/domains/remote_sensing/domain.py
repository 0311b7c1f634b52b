"""The remote sensing domain's declaration: a light spec of names and ``"module:attr"`` strings only."""

from __future__ import annotations

from domainclip.core.plugins import DomainSpec

__all__ = ["DOMAIN"]

_R = "domainclip.domains.remote_sensing"

DOMAIN = DomainSpec(
    name="remote_sensing",
    extra="remote-sensing",
    description=(
        "Satellite and aerial imagery (RS-M-CLIP): GeoTIFF scenes cut into georeferenced chips, caption sets in "
        "ten languages, CLIP with local-global self-distillation, retrieval and zero-shot scene classification"
    ),
    papers=(
        "Multilingual Vision-Language Pre-training for the Remote Sensing Domain (RS-M-CLIP; Silva et al., "
        "ACM SIGSPATIAL 2024)",
        "RemoteCLIP: A Vision Language Foundation Model for Remote Sensing (Liu et al., IEEE TGRS 2024)",
        "Emerging Properties in Self-Supervised Vision Transformers (DINO; Caron et al., ICCV 2021)",
    ),
    prepare={
        "chips": f"{_R}.chips:prepare_chips",
        "captions": f"{_R}.captions:prepare_captions",
        "translate": f"{_R}.translate:translate_captions",
        "synthetic": f"{_R}.synthetic:generate_scenes",
    },
    eval_suites={
        "retrieval": f"{_R}.evals:retrieval_suite",
        "scenes": f"{_R}.evals:scene_suite",
    },
    datasets={
        "rsicd": f"{_R}.datasets.captions:RSICD",
        "ucm_captions": f"{_R}.datasets.captions:UCMCaptions",
        "sydney_captions": f"{_R}.datasets.captions:SydneyCaptions",
        "rsitmd": f"{_R}.datasets.captions:RSITMD",
        "eurosat": f"{_R}.datasets.scenes:EuroSAT",
        "resisc45": f"{_R}.datasets.scenes:RESISC45",
        "aid": f"{_R}.datasets.scenes:AID",
        "whu_rs19": f"{_R}.datasets.scenes:WHURS19",
    },
    synthetic="synthetic",
    demo="remote_sensing/quick",
    tasks={"multicrop": f"{_R}.tasks:MULTICROP"},
    towers={"self_distill": f"{_R}.models:SelfDistillCLIP"},
    requires=("rasterio", "transformers"),
    zoo=f"{_R}:zoo.yaml",
)
