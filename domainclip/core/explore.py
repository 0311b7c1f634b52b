"""The shared pieces of the picture-making API (pathology tissue maps, surgical phase timelines, figure search...).

Each domain's exploration functions take a model in any spelling a user has at hand and return
data first, figures second::

    result = tissue_map("CMU-1-Small-Region.svs", model="zoo:PathGen-CLIP", classes=[...])   # data
    fig = plot_tissue_map(result)                                                              # picture

:func:`resolve_model` turns that spelling into a :class:`LoadedModel`: a run folder, a hub folder,
``hf-hub:org/name@rev``, ``zoo:NAME``, an architecture name (random weights), a ``(model, preprocess,
tokenizer)`` tuple from :func:`domainclip.load_model`, or a :class:`LoadedModel` itself (so a
notebook loads a model once and passes it to every call). :func:`class_colours` and
:func:`image_grid` keep the pictures of all domains alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["LoadedModel", "ModelLike", "class_colours", "image_grid", "model_fingerprint", "resolve_model"]


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference, with what it needs to read images and text.

    Args:
        model: the model in eval mode.
        preprocess: its evaluation image transform (PIL image -> tensor).
        tokenizer: its tokenizer (list of strings -> token ids).
        device: where the model is.
        spec: what it was loaded from (the spec as given, or ``"<in memory>"``).
    """

    model: nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[..., torch.Tensor]
    device: torch.device
    spec: str = "<in memory>"

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """L2-normalised text embeddings (N, D) on the CPU."""
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[start:start + batch_size])).to(self.device)
            out.append(self.model.encode_text(tokens, normalize=True).float().cpu())
        return torch.cat(out) if out else torch.empty(0, 0)

    @torch.no_grad()
    def encode_images(self, images: Sequence[Any] | torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """L2-normalised image embeddings (N, D) on the CPU, from PIL images or a preprocessed (N, C, H, W) batch."""
        out = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            batch = chunk if isinstance(chunk, torch.Tensor) else torch.stack([self.preprocess(im) for im in chunk])
            out.append(self.model.encode_image(batch.to(self.device), normalize=True).float().cpu())
        return torch.cat(out) if out else torch.empty(0, 0)

    def text_classifier(self, prompts: dict[str, Sequence[str]] | Sequence[str]) -> torch.Tensor:
        """Zero-shot class weights (D, C): each class's prompt embeddings averaged and re-normalised.

        Args:
            prompts: ``{class: [prompt, ...]}`` or one prompt per class.
        """
        groups = list(prompts.values()) if isinstance(prompts, dict) else [[p] for p in prompts]
        weights = []
        for group in groups:
            emb = self.encode_text(list(group)).mean(0)
            weights.append(emb / emb.norm().clamp_min(1e-12))
        return torch.stack(weights, dim=1)

    @property
    def logit_scale(self) -> float:
        """The model's temperature (``exp(logit_scale)``), for class probabilities."""
        scale = getattr(self.model, "logit_scale", None)
        return float(scale.detach().exp()) if isinstance(scale, torch.Tensor) else 100.0


#: Everything :func:`resolve_model` accepts.
ModelLike = str | Path | LoadedModel | tuple


def resolve_model(model: ModelLike, *, device: str | torch.device = "cpu") -> LoadedModel:
    """A :class:`LoadedModel` from any model spelling (see the module docstring).

    Args:
        model: a spec (run folder, hub folder, ``hf-hub:...``, ``zoo:NAME``, architecture name), a
            ``(model, preprocess, tokenizer)`` tuple, or a :class:`LoadedModel` (returned as it is
            when already on ``device``).
        device: where the model runs.

    Raises:
        TypeError: ``model`` is none of these.
    """
    from domainclip.core.models.loading import check_device, load_model

    dev = check_device(device)
    if isinstance(model, LoadedModel):
        if model.device == dev:
            return model
        return LoadedModel(model.model.to(dev), model.preprocess, model.tokenizer, dev, model.spec)
    if isinstance(model, tuple):
        if len(model) != 3 or not isinstance(model[0], nn.Module):
            raise TypeError("a model tuple must be (model, preprocess, tokenizer), as domainclip.load_model returns")
        net, preprocess, tokenizer = model
        return LoadedModel(net.eval().to(dev), preprocess, tokenizer, dev)
    if isinstance(model, (str, Path)):
        net, preprocess, tokenizer = load_model(model, device=dev)
        return LoadedModel(net, preprocess, tokenizer, dev, str(model))
    raise TypeError(f"model must be a spec, a (model, preprocess, tokenizer) tuple or a LoadedModel, "
                    f"got {type(model).__name__}")


def model_fingerprint(model: ModelLike) -> dict[str, Any]:
    """What decides a model's embeddings, as a JSON value that two loads of the same weights share.

    An index of embeddings (figures, diagrams) records it and refuses to be searched with another
    model. A model loaded from a spec carries its source record (``model.domainclip_source``): its
    fingerprint is :func:`domainclip.core.eval.compare.model_identity` of that record (the sha256 of
    the weight files, or the architecture name and seed of random weights; not where a folder is), as
    the comparison cache keys models. A model built or trained in memory is fingerprinted by the
    sha256 of its class name, parameters and buffers. Nothing is moved between devices.

    Args:
        model: any spelling :func:`resolve_model` accepts.

    Returns:
        ``{"source": ...}`` or ``{"in_memory": class name, "state_sha256": hex digest}``.
    """
    import hashlib
    import json

    from domainclip.core.eval.compare import model_identity

    if isinstance(model, LoadedModel):
        net = model.model
    elif isinstance(model, tuple) and model and isinstance(model[0], nn.Module):
        net = model[0]
    else:
        net = resolve_model(model).model
    source = getattr(net, "domainclip_source", None)
    if isinstance(source, dict) and source:
        return {"source": json.loads(json.dumps(model_identity(source), default=str))}
    digest = hashlib.sha256(type(net).__qualname__.encode())
    for name, tensor in sorted(net.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"\0{name}\0{value.dtype}\0{tuple(value.shape)}\0".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return {"in_memory": type(net).__qualname__, "state_sha256": digest.hexdigest()}


def class_colours(n: int) -> list[tuple[float, float, float]]:
    """``n`` distinct RGB colours (tab10, then tab20, then evenly spaced hues), the same in every picture."""
    import matplotlib

    if n <= 10:
        cmap = matplotlib.colormaps["tab10"]
        return [tuple(cmap(i)[:3]) for i in range(n)]
    if n <= 20:
        cmap = matplotlib.colormaps["tab20"]
        return [tuple(cmap(i)[:3]) for i in range(n)]
    cmap = matplotlib.colormaps["hsv"]
    return [tuple(cmap(i / n)[:3]) for i in range(n)]


def image_grid(
    images: Sequence[Any],
    captions: Sequence[str] | None = None,
    *,
    ncols: int = 4,
    title: str | None = None,
    cell_size: float = 2.6,
    wrap: int = 28,
) -> Figure:
    """A grid of images (PIL images or HxWxC arrays) with wrapped captions under each.

    Args:
        images: the images, in reading order.
        captions: one caption per image (wrapped to ``wrap`` characters, three lines at most).
        ncols: columns.
        title: the figure's title.
        cell_size: inches per cell.
        wrap: caption width in characters.
    """
    import textwrap

    import matplotlib.pyplot as plt
    import numpy as np

    n = max(len(images), 1)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell_size * ncols, (cell_size + 0.6) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        ax.imshow(np.asarray(images[i]))
        if captions is not None:
            lines = textwrap.wrap(str(captions[i]), wrap)[:3]
            ax.set_title("\n".join(lines), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
