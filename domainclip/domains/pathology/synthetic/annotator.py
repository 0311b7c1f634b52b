"""The ``annotate`` hook of synthetic slides: PathGen-style captions and class labels from the exact masks.

A saturation-threshold tissue detector sees the pale classes poorly (fat is white glass between thin
membranes, mucus is pale), as it does on real slides. Since the masks are exact, patch synthetic
slides with ``PatchSpec(min_tissue=0.0)`` and let :class:`SyntheticAnnotator` drop every box that
is not at least ``min_purity`` one class (glass counts against it).
"""

from __future__ import annotations

import csv
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from domainclip.core.plugins import UnknownNameError
from domainclip.domains.pathology.synthetic.slide import MASK_DOWNSAMPLE, read_mask
from domainclip.domains.pathology.synthetic.vocabulary import TISSUE_CLASSES, caption_groups

__all__ = ["SyntheticAnnotator"]


class SyntheticAnnotator:
    """Caption and label patches of synthetic slides from their label masks (``annotate`` hook).

    Picklable: it holds only the folder and settings; masks are read lazily and cached per process.

    Args:
        slides_dir: a folder written by :func:`generate_slides` (read through ``slides.csv``) or holding
            masks written by :func:`generate_slide` (``<slide_id>_mask.png``).
        min_purity: smallest share of the patch box one class must cover (background counts against
            it) for the patch to be kept.
        seed: caption sampling seed.
        n_captions: captions per patch, each from a different template of the class.
    """

    def __init__(self, slides_dir: str | Path, *, min_purity: float = 0.8, seed: int = 0, n_captions: int = 3):
        if not 0.0 < min_purity <= 1.0:
            raise ValueError(f"min_purity must be in (0, 1], got {min_purity}")
        if n_captions < 1:
            raise ValueError(f"n_captions must be at least 1, got {n_captions}")
        self.slides_dir = Path(slides_dir)
        self.min_purity = float(min_purity)
        self.seed = int(seed)
        self.n_captions = int(n_captions)
        self._slides: dict[str, tuple[Path, int]] | None = None
        self._masks: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_slides"] = None
        state["_masks"] = {}
        return state

    def _index(self) -> dict[str, tuple[Path, int]]:
        """Slide id -> (mask path, downsample), from ``slides.csv`` or else the ``*_mask.png`` files."""
        if self._slides is not None:
            return self._slides
        table = self.slides_dir / "slides.csv"
        slides: dict[str, tuple[Path, int]] = {}
        if table.is_file():
            with table.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                missing = {"slide_id", "mask", "mask_downsample"} - set(reader.fieldnames or ())
                if missing:
                    raise ValueError(f"{table}: lacks the column(s) {', '.join(sorted(missing))}")
                for lineno, row in enumerate(reader, start=2):
                    try:
                        downsample = int(row["mask_downsample"])
                    except (TypeError, ValueError):
                        raise ValueError(
                            f"{table}:{lineno}: mask_downsample must be an integer, got {row.get('mask_downsample')!r}"
                        ) from None
                    slides[row["slide_id"]] = (self.slides_dir / row["mask"], downsample)
        else:
            for mask in sorted(self.slides_dir.glob("*_mask.png")):
                slides[mask.name[: -len("_mask.png")]] = (mask, MASK_DOWNSAMPLE)
            if not slides:
                raise FileNotFoundError(
                    f"{self.slides_dir}: holds neither slides.csv nor *_mask.png label masks; "
                    "write it with generate_slides() or generate_slide()"
                )
        self._slides = slides
        return slides

    def resolve(self, slide_id: str) -> str:
        """The known slide id for ``slide_id`` (an id, or a slide file name or path whose stem is one).

        Raises:
            UnknownNameError: the slide is not in the folder.
        """
        index = self._index()
        key = slide_id if slide_id in index else Path(slide_id).stem
        if key not in index:
            raise UnknownNameError("synthetic slide", str(slide_id), list(index))
        return key

    def mask(self, slide_id: str) -> tuple[np.ndarray, int]:
        """The label mask of a slide and its downsample (cached).

        Raises:
            UnknownNameError: the slide is not in the folder.
        """
        index = self._index()
        key = self.resolve(slide_id)
        if key not in self._masks:
            self._masks[key] = read_mask(index[key][0])
        return self._masks[key], index[key][1]

    def purity(self, slide_id: str, x0: int, y0: int, size0: int) -> tuple[int, float]:
        """Majority label (class index + 1, 0 = background) of a level-0 box and its share of the box.

        The box's mask pixels are those whose level-0 centres fall inside it; parts of the box off the
        slide count as background.
        """
        mask, ds = self.mask(slide_id)
        lo_y, hi_y = math.ceil((y0 - ds / 2) / ds), math.ceil((y0 + size0 - ds / 2) / ds)
        lo_x, hi_x = math.ceil((x0 - ds / 2) / ds), math.ceil((x0 + size0 - ds / 2) / ds)
        if hi_y <= lo_y or hi_x <= lo_x:  # box smaller than a mask pixel: use the pixel under its centre
            lo_y, lo_x = int((y0 + size0 / 2) // ds), int((x0 + size0 / 2) // ds)
            hi_y, hi_x = lo_y + 1, lo_x + 1
        total = (hi_y - lo_y) * (hi_x - lo_x)
        h, w = mask.shape
        window = mask[max(lo_y, 0):max(min(hi_y, h), 0), max(lo_x, 0):max(min(hi_x, w), 0)]
        counts = np.bincount(window.reshape(-1), minlength=len(TISSUE_CLASSES) + 1)
        counts[0] += total - window.size
        best = int(np.argmax(counts[1:])) + 1
        return best, float(counts[best]) / total

    def __call__(self, slide_id: str, x0: int, y0: int, size0: int) -> dict[str, Any] | None:
        """Captions and label of the patch ``[x0, x0 + size0) x [y0, y0 + size0)`` (level 0), or ``None``.

        Returns:
            ``{"text": [captions], "label": class index, "meta": {"tissue_class", "purity"}}`` when one
            class covers at least ``min_purity`` of the box, else ``None``. The captions come from
            different templates (each with a random synonym) and depend only on ``(seed, slide_id, x0, y0)``.
        """
        value, share = self.purity(slide_id, int(x0), int(y0), int(size0))
        if share < self.min_purity:
            return None
        name = TISSUE_CLASSES[value - 1]
        groups = caption_groups(name)
        key = [self.seed, zlib.crc32(self.resolve(slide_id).encode()), int(x0) % 2**32, int(y0) % 2**32]
        rng = np.random.default_rng(key)
        picks = rng.choice(len(groups), size=min(self.n_captions, len(groups)), replace=False)
        return {
            "text": [groups[int(i)][int(rng.integers(len(groups[int(i)])))] for i in picks],
            "label": value - 1,
            "meta": {"tissue_class": name, "purity": round(share, 4)},
        }

