"""Labelled image datasets (class folders, image tables) as the eval suites read them, one item layout for all."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from domainclip.core.data import keys

__all__ = ["LabelledImages", "visible_dirs"]


def visible_dirs(root: str | os.PathLike) -> list[str]:
    """The sub-folder names of ``root``, sorted, without hidden (``.``) and ``__`` ones (``__MACOSX``).

    Args:
        root: the folder.
    """
    with os.scandir(root) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith((".", "__")))


class LabelledImages:
    """Mixin: item ``index`` of ``self.samples`` as ``{"image", "label", "meta": {"path", "class"}}``.

    The dataset holds ``samples`` (``(path, label)`` pairs), ``classes`` (the name of each label),
    ``transform`` (or ``None``) and, unless it overrides :meth:`load`, ``loader``. Mixed in before a
    torchvision ``DatasetFolder``, it replaces that one's ``(image, target)`` items.
    """

    samples: list[tuple[str, int]]
    classes: list[str]
    transform: Callable[[Any], Any] | None
    loader: Callable[[str], Any]

    def load(self, path: str) -> Any:
        """The image at ``path``, untransformed (``self.loader``'s).

        Args:
            path: the image file.
        """
        return self.loader(path)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Image ``index`` as ``{"image", "label", "meta": {"path", "class"}}``.

        Raises:
            CorruptSampleError: ``bad_image``, where :meth:`load` refuses an image so that an
                evaluation skips and counts it (a dataset's own loader may raise another error).
        """
        path, label = self.samples[index]
        image = self.load(path)
        if self.transform is not None:
            image = self.transform(image)
        return {keys.IMAGE: image, keys.LABEL: label, keys.META: {"path": path, "class": self.classes[label]}}
