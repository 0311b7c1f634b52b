"""The math domain's declaration: a light spec of names and ``"module:attr"`` strings only."""

from __future__ import annotations

from domainclip.core.plugins import DomainSpec

__all__ = ["DOMAIN"]

DOMAIN = DomainSpec(
    name="math",
    extra="math",
    description=(
        "Math diagrams (plane geometry, analytic geometry, function plots): a MAVIS-style diagram-caption "
        "engine for CLIP-Math, Geometry3K evaluation"
    ),
    papers=(
        "MAVIS: Mathematical Visual Instruction Tuning with an Automatic Data Engine (Zhang et al., 2024)",
        "Inter-GPS: Interpretable Geometry Problem Solving with Formal Language and Symbolic Reasoning "
        "(Lu et al., 2021)",
    ),
    prepare={"synthetic": "domainclip.domains.math.prepare:prepare_synthetic"},
    eval_suites={
        "generated": "domainclip.domains.math.evals:generated_suite",
        "geometry3k": "domainclip.domains.math.evals:geometry3k_suite",
    },
    datasets={"geometry3k": "domainclip.domains.math.datasets.geometry3k:Geometry3K"},
    synthetic="synthetic",
    demo="math/quick",
)
