"""Remote sensing evaluation suites: RemoteCLIP-protocol retrieval and zero-shot scene classification, per language.

``remote_sensing/retrieval`` (:func:`retrieval_suite`)
    Image <-> caption retrieval on held-out shards whose captions are keyed by language
    (``.text.json`` = ``{"en": [...], "pt": [...]}``, as ``domainclip prepare remote_sensing
    captions`` and ``translate`` write them). The images are embedded once; each language is then
    scored as RemoteCLIP's ``remoteclip_retrieval.py`` scores its test split
    (:func:`remoteclip_recall`): every caption of an image is a text query whose one positive is
    its image (text -> image, ``image_retrieval_recall@k``), and an image query is a hit when any
    of its captions is among the ``k`` best texts (image -> text, ``text_retrieval_recall@k``);
    the ``k`` best are what ``torch.topk`` returns (CLIP_benchmark's ``recall_at_k``, which
    RemoteCLIP imports), and ``mean_recall`` is the mean of the R@1/5/10 of both directions.
    Differences from the script, none of which changes a number: recalls are fractions (the
    script prints percentages rounded to two decimals), one sample per image holds all its
    captions (the script regroups the five rows of an image by file name), and captions are not
    passed through ``str.capitalize()``, which CLIP's lower-casing tokenizer undoes and which would
    lower-case German nouns for a cased tokenizer (XLM-R). An image without a caption in a language
    is left out of that language's task (``num_images`` says how many took part).
``remote_sensing/scenes`` (:func:`scene_suite`)
    Zero-shot scene classification of a folder-per-class set (EuroSAT RGB, RESISC45, AID, WHU-RS19
    in their published layouts, or any folder-per-class set such as the generated held-out scenes;
    :mod:`~domainclip.domains.remote_sensing.datasets.scenes`), with RemoteCLIP-style templates and
    scene names in every language (:mod:`~domainclip.domains.remote_sensing.labels`). The images
    are embedded once and classified in each language; each language's confusion matrix is drawn.

Undecodable images (and, in retrieval, unreadable captions) are skipped and counted: every task
reports ``num_skipped_images`` and a warning names the first one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from domainclip.core.checks import SUITE_ENGINE_ARGS
from domainclip.core.data import keys
from domainclip.core.data.corrupt import BAD_IMAGE, BAD_JSON, BAD_TEXT, CorruptTally
from domainclip.core.errors import InputError
from domainclip.core.eval.features import Tokenizer, collate_samples, encode_texts
from domainclip.core.eval.heldout import (
    HeldOutShards,
    ImageTextDecoder,
    decodable_batches,
    embed_decodable,
    shard_images,
    warn_skipped,
)
from domainclip.core.eval.prompts import SingleOrEnsemble
from domainclip.core.eval.report import plot_retrieval_examples, scalar_metrics
from domainclip.core.eval.retrieval import retrieval_metrics, retrieval_topk
from domainclip.core.eval.suites import require_data
from domainclip.core.eval.zero_shot import build_zero_shot_classifier, classification_report
from domainclip.core.options import PositiveInt, check_options
from domainclip.domains.remote_sensing.datasets.scenes import SCENE_DATASETS, SceneFolder, detect_scene_dataset
from domainclip.domains.remote_sensing.labels import LANGUAGES, SCENE_NAMES, Language, display_name, templates

__all__ = ["DEFAULT_KS", "SceneDataset", "remoteclip_recall", "retrieval_suite", "scene_suite"]

#: RemoteCLIP's recall cut-offs.
DEFAULT_KS: tuple[int, ...] = (1, 5, 10)
#: Why a held-out sample may be left out (counted) rather than fail the suite: it cannot be decoded.
SKIPPED_REASONS = (BAD_IMAGE, BAD_JSON, BAD_TEXT)
#: The ``dataset`` option of :func:`scene_suite`: a named layout, ``"folder"``, or ``"auto"`` (detected).
SceneDataset = Literal["auto", "eurosat", "resisc45", "aid", "whu_rs19", "folder"]
#: Text queries shown per language in the retrieval examples figure, and images per query.
NUM_EXAMPLES, EXAMPLE_K = 4, 5

_RETRIEVAL = "remote_sensing/retrieval"
_SCENES = "remote_sensing/scenes"


# ---------------------------------------------------------------------------------------------- retrieval
def remoteclip_recall(
    image_features: Tensor, text_features: Tensor, text_to_image: Tensor, ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Retrieval recall both ways and their mean, as RemoteCLIP's ``remoteclip_retrieval.py`` computes them.

    Args:
        image_features: ``(N_image, D)`` L2-normalised image features.
        text_features: ``(N_text, D)`` L2-normalised caption features.
        text_to_image: ``(N_text,)`` the image of each caption (several captions may share one).
        ks: recall cut-offs; one above the number of images (or captions) takes them all, where the
            script stops with ``torch.topk``'s error.

    Returns:
        ``image_retrieval_recall@k`` (text -> image), ``text_retrieval_recall@k`` (image -> text, a
        hit when any caption of the image is among the ``k`` best) for every ``k``, as fractions,
        and ``mean_recall``, the mean of all of them (RemoteCLIP's "mean recall" over R@1/5/10).
    """
    metrics = retrieval_metrics(image_features, text_features, text_to_image, ks)  # topk: RemoteCLIP's rule
    return {**metrics, "mean_recall": float(np.mean(list(metrics.values())))}


def _caption_lists(text: Any) -> dict[str, list[str]]:
    """A sample's captions by language; a caption list without language keys is English."""
    if isinstance(text, Mapping):
        return {str(lang): [value] if isinstance(value, str) else list(value) for lang, value in text.items()}
    return {"en": [text] if isinstance(text, str) else list(text)}


def _chosen_languages(present: set[str], languages: Sequence[str] | None, root: Path) -> list[str]:
    if languages is None:
        return [lang for lang in LANGUAGES if lang in present] + sorted(present - set(LANGUAGES))
    missing = [lang for lang in languages if lang not in present]
    if missing:
        raise InputError(f"{_RETRIEVAL}: no caption in {', '.join(missing)} under {root} "
                         f"(its captions are in {', '.join(sorted(present))})")
    return list(dict.fromkeys(languages))


def retrieval_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str,
    batch_size: int,
    languages: tuple[Language, ...] | None = None,
    ks: tuple[PositiveInt, ...] = DEFAULT_KS,
) -> dict[str, dict[str, float]]:
    """Image <-> caption retrieval with RemoteCLIP's protocol, per language, the images embedded once.

    Args:
        model: the CLIP model.
        tokenizer: its tokenizer.
        preprocess: its evaluation transform.
        data: held-out shards whose ``.text.json`` holds captions by language (``{"en": [...], ...}``;
            captions without a language key count as English).
        out_dir: where ``retrieval_<language>_examples.png`` are drawn.
        device: where the model runs.
        batch_size: images (and captions) per forward.
        languages: the caption languages to score, in this order (default: every language the shards have).
        ks: recall cut-offs (RemoteCLIP's 1, 5 and 10; ``mean_recall`` averages all of them both ways).

    Returns:
        ``{"retrieval/<language>": {image_retrieval_recall@k, text_retrieval_recall@k, mean_recall,
        num_images, num_texts, num_skipped_images}}``.
    """
    options = check_options(retrieval_suite, {"languages": languages, "ks": ks}, where=_RETRIEVAL,
                            skip=SUITE_ENGINE_ARGS, require=False)
    ks = sorted(set(options["ks"]))
    if not ks:
        raise InputError(f"{_RETRIEVAL}: ks names no recall cut-off")
    root = require_data(data, _RETRIEVAL, "held-out shards with captions by language (from 'domainclip prepare "
                                          "remote_sensing captions' or 'translate')")
    decoder = ImageTextDecoder(preprocess, "all", _caption_lists)
    shards = HeldOutShards(root, decoder, suite=_RETRIEVAL, skip=SKIPPED_REASONS,
                           expected="image-caption shards (.jpg/.png with .text.json captions by language)")
    loader = DataLoader(shards, batch_size=batch_size, collate_fn=collate_samples)
    embedded = embed_decodable(model, loader, device, (keys.TEXT, keys.URL, keys.KEY), lambda: shards.tally,
                           f"{_RETRIEVAL}: no decodable image-caption sample under {root}")
    skipped = warn_skipped(_RETRIEVAL, shards.tally)
    features, captions = embedded["features"], embedded[keys.TEXT]
    chosen = _chosen_languages({lang for c in captions for lang in c}, options["languages"], root)

    results, examples = {}, {}
    for lang in chosen:
        images = [i for i, c in enumerate(captions) if c.get(lang)]
        texts = [t for i in images for t in captions[i][lang]]
        text_to_image = torch.tensor([j for j, i in enumerate(images) for _ in captions[i][lang]])
        text_features = encode_texts(model, tokenizer, texts, device, batch_size)
        metrics = remoteclip_recall(features[images], text_features, text_to_image, ks)
        results[f"retrieval/{lang}"] = {**metrics, "num_images": len(images), "num_texts": len(texts),
                                        "num_skipped_images": skipped}
        queries = torch.linspace(0, len(texts) - 1, min(NUM_EXAMPLES, len(texts))).round().long().unique()
        retrieved = retrieval_topk(text_features[queries], features[images], EXAMPLE_K).tolist()
        examples[lang] = [(texts[q], [images[r] for r in row], images[int(text_to_image[q])])
                          for q, row in zip(queries.tolist(), retrieved)]

    where = [(embedded[keys.URL][i], embedded[keys.KEY][i]) for i in range(len(captions))]
    shown = shard_images(root, {where[i] for rows in examples.values() for _, top, target in rows
                                 for i in (*top, target)})
    for lang, rows in examples.items():
        plot_retrieval_examples(lambda i: shown[where[i]], [text for text, _, _ in rows], [top for _, top, _ in rows],
                                [target for _, _, target in rows], Path(out_dir) / f"retrieval_{lang}_examples.png",
                                title=f"{lang}: caption -> image retrieval (green: the caption's image)")
    return results


# ---------------------------------------------------------------------------------------------- scenes
def _prompt_names(dataset: SceneFolder, languages: Sequence[str] | None) -> dict[str, list[str]]:
    """Each language's prompt name of every class; a class without a name in a language leaves it out.

    Raises:
        InputError: a language named in ``languages`` has no name for some class.
    """
    chosen = LANGUAGES if languages is None else list(dict.fromkeys(languages))
    names, lacking = {}, {}
    for lang in chosen:
        row = [SCENE_NAMES[scene][lang] if scene else display_name(folder) if lang == "en" else None
               for folder, scene in zip(dataset.classes, dataset.scenes)]
        if None in row:
            lacking[lang] = [folder for folder, name in zip(dataset.classes, row) if name is None]
        else:
            names[lang] = row
    if lacking:
        unnamed = sorted({folder for folders in lacking.values() for folder in folders})
        what = (f"class folder(s) {', '.join(unnamed[:5])}{' ...' if len(unnamed) > 5 else ''} of {dataset.root} "
                f"name no scene of remote_sensing.labels.SCENE_NAMES, so they have no name in {', '.join(lacking)}")
        if languages is not None:
            raise InputError(f"{_SCENES}: {what}; evaluate them in en (languages: [en]) or rename the folders")
        warnings.warn(f"{_SCENES}: {what}; evaluated in {', '.join(names)} only", stacklevel=3)
    return names


def scene_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str,
    batch_size: int,
    dataset: SceneDataset = "auto",
    languages: tuple[Language, ...] | None = None,
    prompts: SingleOrEnsemble = "ensemble",
    bands: tuple[PositiveInt, ...] | None = None,
) -> dict[str, dict[str, float]]:
    """Zero-shot scene classification of a folder-per-class set in every language, the images embedded once.

    Args:
        model: the CLIP model.
        tokenizer: its tokenizer.
        preprocess: its evaluation transform.
        data: the dataset folder (``EuroSAT_RGB/``, ``NWPU-RESISC45/``, ``AID/``, ``WHU-RS19/``, the folder
            holding one of them, or any folder of class folders).
        out_dir: where ``scenes_<language>_confusion_matrix.png`` are drawn.
        device: where the model runs.
        batch_size: images (and prompts) per forward.
        dataset: the layout: ``eurosat``, ``resisc45``, ``aid``, ``whu_rs19`` (their class folders are
            checked), ``folder`` (any class folders, sorted by name; scene names are found by folder
            name) or ``auto`` (the named layout whose top folder or class folders ``data`` holds, else
            ``folder``).
        languages: the prompt languages, in this order (default: all ten; for a ``folder`` set, those
            that name every class, with a warning naming the others).
        prompts: ``single``, RemoteCLIP's "a satellite photo of {}." in each language, or ``ensemble``,
            the mean of all five templates of a language.
        bands: the (red, green, blue) band numbers, 1-based, of GeoTIFF scenes (e.g. 4 3 2 for
            Sentinel-2 files such as EuroSAT_MS); default: images PIL reads as they are, other GeoTIFFs
            bands 1, 2, 3.

    Returns:
        ``{"scenes/<language>/zeroshot_classification": {acc1, acc5, mean_per_class_recall,
        balanced_accuracy, weighted_f1, num_samples, num_skipped_images}}``.
    """
    options = check_options(scene_suite, {"dataset": dataset, "languages": languages, "prompts": prompts,
                                          "bands": bands}, where=_SCENES, skip=SUITE_ENGINE_ARGS, require=False)
    root = require_data(data, _SCENES, "a scene dataset in its folder-per-class layout (EuroSAT_RGB/, "
                                       "NWPU-RESISC45/, AID/, WHU-RS19/ or root/<class>/*.jpg)")
    name = detect_scene_dataset(root) if options["dataset"] == "auto" else options["dataset"]
    scenes = SCENE_DATASETS[name](root, transform=preprocess, bands=options["bands"])
    names = _prompt_names(scenes, options["languages"])
    tally = CorruptTally()
    embedded = embed_decodable(model, decodable_batches(scenes, batch_size, tally), device, (keys.LABEL,),
                           lambda: tally, f"{_SCENES}: no decodable image in {scenes.root}")
    skipped = warn_skipped(_SCENES, tally)
    results = {}
    for lang, classnames in names.items():
        classifier = build_zero_shot_classifier(model, tokenizer, classnames, templates(lang, options["prompts"]),
                                                device, batch_size)
        report = classification_report(
            embedded["features"] @ classifier.cpu(), embedded[keys.LABEL], scenes.classes,
            Path(out_dir) / f"scenes_{lang}_confusion_matrix.png",
            title=f"{scenes.title}: zero-shot scenes, {lang} prompts ({options['prompts']})",
        )
        results[f"scenes/{lang}/zeroshot_classification"] = {**scalar_metrics(report), "num_skipped_images": skipped}
    return results
