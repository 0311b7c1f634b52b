"""Labelled image datasets (class folders, image tables): one item layout for all."""

from __future__ import annotations

import os
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
    """Mixin: item ``index`` of ``samples`` (``(path, label)``) as ``{"image", "label", "meta": {"path", "class"}}``.

    The dataset sets ``samples``, ``classes``, ``transform`` and ``loader`` (or overrides :meth:`load`);
    mixed in before a torchvision ``DatasetFolder``, it replaces that one's ``(image, target)`` items.
    """

    def load(self, path: str) -> Any:
        """The untransformed image at ``path`` (``self.loader``'s; ``bad_image`` refusals make a suite skip it).

        Args:
            path: the image file.
        """
        return self.loader(path)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Image ``index`` as ``{"image", "label", "meta": {"path", "class"}}``."""
        path, label = self.samples[index]
        image = self.load(path)
        if self.transform is not None:
            image = self.transform(image)
        return {keys.IMAGE: image, keys.LABEL: label, keys.META: {"path": path, "class": self.classes[label]}}
