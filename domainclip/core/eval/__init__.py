"""Evaluation: zero-shot classification, chunked retrieval, linear probes, reports and suites.

Metric names follow CLIP_benchmark (``acc1``, ``acc5``, ``mean_per_class_recall``,
``image_retrieval_recall@k``, ``text_retrieval_recall@k``) so results compare with published tables.
"""

from domainclip.core.eval.features import (
    ENCODE_METHODS,
    collate_samples,
    encode_inputs,
    encode_texts,
    extract_features,
)
from domainclip.core.eval.linear_probe import linear_probe
from domainclip.core.eval.report import (
    format_markdown_table,
    plot_confusion_matrix,
    plot_loss_curve,
    plot_retrieval_examples,
    write_results,
)
from domainclip.core.eval.retrieval import evaluate_retrieval, retrieval_metrics, retrieval_report, retrieval_topk
from domainclip.core.eval.suites import get_suite, list_suites, register_suite, run_suite
from domainclip.core.eval.zero_shot import (
    build_zero_shot_classifier,
    classification_metrics,
    multilabel_metrics,
    zero_shot_classify,
    zero_shot_multilabel,
)

__all__ = [
    "ENCODE_METHODS",
    "build_zero_shot_classifier",
    "classification_metrics",
    "collate_samples",
    "encode_inputs",
    "encode_texts",
    "evaluate_retrieval",
    "extract_features",
    "format_markdown_table",
    "get_suite",
    "linear_probe",
    "list_suites",
    "multilabel_metrics",
    "plot_confusion_matrix",
    "plot_loss_curve",
    "plot_retrieval_examples",
    "register_suite",
    "retrieval_metrics",
    "retrieval_report",
    "retrieval_topk",
    "run_suite",
    "write_results",
    "zero_shot_classify",
    "zero_shot_multilabel",
]
