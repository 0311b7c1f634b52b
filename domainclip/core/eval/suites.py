"""The eval-suite registry and the core's own suite, ``core/synthetic``.

A suite is a callable::

    suite(model, tokenizer, preprocess, *, data, out_dir, device, batch_size) -> {task: {metric: value}}

that evaluates one model on one group of benchmarks, returns scalar metrics per task (CLIP_benchmark
names) and writes its own plots into ``out_dir``. Its options (a recipe's ``eval.options``) are further
keyword-only parameters, each annotated and described under ``Args:``, never ``**kwargs``, so the recipe
check (:func:`~domainclip.core.options.check_options`) reads them from the signature.

Core suites register with :func:`register_suite` under ``"core/<name>"``; a domain's suites are
named ``"<domain>/<suite>"`` and found lazily through its :class:`~domainclip.core.plugins.DomainSpec`
(``eval_suites``), so listing suites imports no domain's heavy dependencies. The blocks suites share
(embed once, classify and plot, retrieve, read held-out shards) live beside this module.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from domainclip.core.data import keys, synthetic
from domainclip.core.errors import DatasetNotFoundError
from domainclip.core.eval.features import Tokenizer, collate_samples, embed_loader
from domainclip.core.eval.linear_probe import linear_probe
from domainclip.core.eval.prompts import SingleOrEnsemble
from domainclip.core.eval.report import plot_retrieval_examples, scalar_metrics, write_results
from domainclip.core.eval.retrieval import caption_retrieval
from domainclip.core.eval.zero_shot import build_zero_shot_classifier, classification_report
from domainclip.core.plugins import UnknownNameError, get_domain, list_domains, resolve

__all__ = [
    "EvalSuite",
    "get_suite",
    "list_suites",
    "register_suite",
    "require_data",
    "run_suite",
    "synthetic_suite",
]


class EvalSuite(Protocol):
    """What an eval suite looks like (see the module docstring)."""

    def __call__(
        self,
        model: torch.nn.Module,
        tokenizer: Tokenizer,
        preprocess: Callable[[Any], torch.Tensor],
        *,
        data: Path | None,
        out_dir: Path,
        device: str,
        batch_size: int,
    ) -> dict[str, dict[str, float]]:
        """Evaluate ``model`` and return task name -> scalar metrics."""
        ...


_CORE_SUITES: dict[str, EvalSuite] = {}


def require_data(data: Path | None, suite: str, what: str) -> Path:
    """The suite's data folder, or a clear error saying what ``--data`` must hold (``what``).

    Raises:
        DatasetNotFoundError: no folder was given (the suite's dataset adapter checks what is in it).
    """
    if data is None:
        raise DatasetNotFoundError(f"{suite} needs --data: {what}")
    return Path(data)


def register_suite(name: str) -> Callable[[EvalSuite], EvalSuite]:
    """Register a core suite under ``name`` (``"core/<suite>"``); use as a decorator."""
    domain, _, suite = name.partition("/")
    if domain != "core" or not suite or "/" in suite:
        raise ValueError(f"core suite names look like 'core/<suite>', got {name!r}; domains declare theirs")

    def decorator(fn: EvalSuite) -> EvalSuite:
        if name in _CORE_SUITES and _CORE_SUITES[name] is not fn:
            raise ValueError(f"eval suite {name!r} is already registered ({_CORE_SUITES[name]!r})")
        _CORE_SUITES[name] = fn
        return fn

    return decorator


def _domain_suites(domain: str) -> list[str]:
    return [f"{domain}/{s}" for s in get_domain(domain).eval_suites]


def list_suites(domain: str | None = None) -> list[str]:
    """Names of all eval suites (core ones and every domain's), optionally of one domain only.

    A domain whose spec cannot be imported is skipped with a warning naming it and the error.
    """
    if domain == "core":
        return sorted(_CORE_SUITES)
    if domain is not None:
        return sorted(_domain_suites(domain))
    names = list(_CORE_SUITES)
    for name in list_domains():
        try:
            names.extend(_domain_suites(name))
        except Exception as e:  # a broken third-party domain must not hide the others
            warnings.warn(f"eval suites of domain {name!r} are unavailable: {e}", stacklevel=2)
    return sorted(names)


def get_suite(name: str) -> EvalSuite:
    """Resolve a suite name: ``"core/<suite>"`` from the registry, ``"<domain>/<suite>"`` via the domain.

    Raises:
        UnknownNameError: the domain or suite is unknown (the message lists close matches).

    """
    if name in _CORE_SUITES:
        return _CORE_SUITES[name]
    domain, _, suite = name.partition("/")
    if domain == "core" or not suite:
        raise UnknownNameError("eval suite", name, list_suites())
    if domain not in list_domains():
        raise UnknownNameError("eval suite", name, list_suites())
    spec = get_domain(domain)
    if suite not in spec.eval_suites:
        raise UnknownNameError("eval suite", name, _domain_suites(domain))
    fn = resolve(spec.eval_suites[suite])
    if not callable(fn):
        raise TypeError(f"eval suite {name!r} ({spec.eval_suites[suite]}) is not callable")
    return fn


def run_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], torch.Tensor],
    suite_name: str,
    *,
    data: Path | None,
    out_dir: Path,
    device: str = "cpu",
    batch_size: int = 64,
    options: dict[str, Any] | None = None,
) -> dict[str, dict[str, float]]:
    """Run an eval suite and write ``results.json`` and ``results.md`` into ``out_dir``.

    The model is put in eval mode for the run and given back in the mode it came in. ``options``
    are extra keyword arguments of the suite (e.g. ``top_k`` of a slide-level suite); a suite that
    does not take one raises ``TypeError`` naming it.

    Returns:
        The suite's results: task name -> scalar metrics.

    """
    suite = get_suite(suite_name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            results = suite(
                model,
                tokenizer,
                preprocess,
                data=data,
                out_dir=out_dir,
                device=device,
                batch_size=batch_size,
                **(options or {}),
            )
    finally:
        model.train(was_training)
    if not isinstance(results, dict) or not all(isinstance(m, dict) for m in results.values()):
        raise TypeError(f"eval suite {suite_name!r} must return {{task: {{metric: value}}}}, got {results!r}")
    for task, metrics in results.items():
        non_scalar = sorted(set(metrics) - set(scalar_metrics(metrics)))
        if non_scalar:
            raise TypeError(
                f"eval suite {suite_name!r} task {task!r} returned non-scalar metrics: {non_scalar}"
            )
    # the model as loaded (spec, files, weight hashes; see domainclip.core.hub.load_model), else its class
    model_record = getattr(model, "domainclip_source", None) or {"class": type(model).__name__}
    extra = {"suite": suite_name, "model": model_record, "device": str(device), "data": data}
    write_results(results, out_dir / "results.json", extra=extra)
    return results


#: Held-out samples the ``core/synthetic`` suite generates when no data folder is given.
SYNTHETIC_EVAL_SIZE = 256
#: Training samples of the ``core/synthetic`` linear probe.
LINEAR_PROBE_TRAIN_SIZE = 256


@register_suite("core/synthetic")
def synthetic_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], torch.Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str,
    batch_size: int,
    prompts: SingleOrEnsemble = "ensemble",
) -> dict[str, dict[str, float]]:
    """Zero-shot classification and image<->text retrieval on the generated shapes set.

    Uses :data:`SYNTHETIC_EVAL_SIZE` samples of the held-out seed
    (:data:`~domainclip.core.data.synthetic.HELDOUT_SEED`) when ``data`` is ``None``, else the folder
    written by :func:`~domainclip.core.data.synthetic.write_shapes_folder`. Writes
    ``shapes_confusion_matrix.png`` and ``shapes_retrieval_examples.png`` into ``out_dir``; in the
    examples an image counts as correct when it shows the caption's shape and colour.

    Args:
        model: the CLIP model.
        tokenizer: its tokenizer.
        preprocess: its evaluation transform.
        data: a shapes folder, or ``None`` for the generated held-out set.
        out_dir: where the plots are drawn.
        device: where the model runs.
        batch_size: images (and prompts) per forward.
        prompts: the zero-shot template set: ``ensemble``, the mean over every template of
            :func:`~domainclip.core.data.synthetic.prompt_templates`, or ``single``, its first one.
    """

    def dataset(transform: Callable[[Any], Any] | None) -> torch.utils.data.Dataset:
        if data is None:
            return synthetic.ShapesDataset(SYNTHETIC_EVAL_SIZE, synthetic.HELDOUT_SEED, transform=transform)
        return synthetic.ShapesFolder(Path(data), transform=transform)

    def embed(shapes: torch.utils.data.Dataset, keep: tuple[str, ...]) -> dict[str, Any]:
        loader = torch.utils.data.DataLoader(shapes, batch_size=batch_size, collate_fn=collate_samples)
        return embed_loader(model, loader, device, keep=keep)

    # one pass over the held-out set serves zero-shot, retrieval and the probe's test side
    held_out = embed(dataset(preprocess), (keys.LABEL, keys.TEXT))
    features, labels = held_out["features"], held_out[keys.LABEL]
    classnames = synthetic.class_names()
    templates = synthetic.prompt_templates()
    classifier = build_zero_shot_classifier(
        model, tokenizer, classnames, templates[:1] if prompts == "single" else templates, device, batch_size
    )
    zs = classification_report(
        features @ classifier.cpu(), labels, classnames, out_dir / "shapes_confusion_matrix.png",
        title="shapes: zero-shot confusion matrix",
    )
    ret = caption_retrieval(model, tokenizer, features, held_out[keys.TEXT], device, num_examples=4, example_k=5)
    raw, examples = dataset(None), ret["examples"]
    plot_retrieval_examples(
        lambda i: raw[i]["image"], examples["query_texts"], examples["retrieved"],
        [[i for i in row if labels[i] == labels[target]]
         for row, target in zip(examples["retrieved"], examples["target_images"])],
        out_dir / "shapes_retrieval_examples.png",
        title="shapes: text -> image retrieval (green: right shape and colour)",
    )
    # linear probe on frozen image features: fit on a training-seed set, score on the held-out set
    probe_train = embed(synthetic.ShapesDataset(LINEAR_PROBE_TRAIN_SIZE, seed=0, transform=preprocess), (keys.LABEL,))
    probe = linear_probe(probe_train["features"], probe_train[keys.LABEL], features, labels, seed=0)
    return {
        "shapes/zeroshot_classification": scalar_metrics(zs),
        "shapes/zeroshot_retrieval": scalar_metrics(ret),
        "shapes/linear_probe": scalar_metrics(probe),
    }
