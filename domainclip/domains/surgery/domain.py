"""The surgery domain's declaration: a light spec of names and ``"module:attr"`` strings only."""

from __future__ import annotations

from domainclip.core.plugins import DomainSpec

__all__ = ["DOMAIN"]

_S = "domainclip.domains.surgery"

DOMAIN = DomainSpec(
    name="surgery",
    extra="surgery",
    description=(
        "Surgical video-language (SurgLaVi / SurgCLIP): transcripts and phase/step/task spans to clip-caption "
        "shards, video-text dual encoders, zero-shot phase and tool recognition (Cholec80, AutoLaparo)"
    ),
    papers=(
        "SurgLaVi: Large-Scale Hierarchical Dataset for Surgical Vision-Language Representation Learning "
        "(Perez et al., 2025)",
        "Learning Multi-modal Representations by Watching Hundreds of Surgical Video Lectures "
        "(SurgVLP; Yuan et al., 2023)",
    ),
    prepare={
        "synthetic": f"{_S}.synthetic:generate_procedures",
        "clips": f"{_S}.clips:make_clip_pairs",
        "transcribe": f"{_S}.transcribe:transcribe_videos",
    },
    eval_suites={
        "cholec80_phase": f"{_S}.evals:cholec80_phase_suite",
        "cholec80_tool": f"{_S}.evals:cholec80_tool_suite",
        "autolaparo_phase": f"{_S}.evals:autolaparo_phase_suite",
        "retrieval": f"{_S}.evals:retrieval_suite",
    },
    datasets={
        "cholec80": f"{_S}.datasets.cholec80:Cholec80",
        "autolaparo": f"{_S}.datasets.autolaparo:AutoLaparo",
    },
    synthetic="synthetic",
    demo="surgery/quick",
    tasks={"video_clip": f"{_S}.tasks:VIDEO_CLIP", "video_clip_levels": f"{_S}.tasks:VIDEO_CLIP_LEVELS"},
    requires=("av", "decord"),
    zoo=f"{_S}:zoo.yaml",
    model_formats={
        "camma_vlp": f"{_S}.published:convert_camma_vlp",
        "surgclip": f"{_S}.published_surgclip:convert_surgclip",
    },
)
