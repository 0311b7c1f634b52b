"""Zero-shot tissue maps: exact probabilities on a drawn slide and on CMU-1-Small-Region, the picture, user errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from domainclip.core.errors import DomainClipError, InputError
from domainclip.core.explore import class_colours
from domainclip.domains.pathology.explore import TissueMap, plot_tissue_map, tissue_map
from domainclip.domains.pathology.patching import PatchLocation, PatchSpec, plan_patches, read_patch
from domainclip.domains.pathology.slides import MissingMppError, SlideOpenError, open_slide
from domainclip.domains.pathology.tiff import write_pyramidal_tiff
from domainclip.domains.pathology.tissue import detect_tissue

CLASSES = ("red", "green", "blue")
#: Colours of the drawn regions (H&E-like: saturated pinks and purples, none of them pen ink).
PINK, PURPLE, ROSE, WHITE = (230, 130, 180), (110, 50, 150), (200, 90, 120), (255, 255, 255)
CELL = 32  # pixels per cell at 0.5 um/px, the slide's own resolution


class MeanColourCLIP(torch.nn.Module):
    """A CLIP-shaped model whose answer is known: image embedding = mean RGB, class k's text = axis k.

    The tokenizer maps a prompt to the class whose name it contains, so every prompt ensemble of
    class k averages to the unit vector k and the probabilities are ``softmax(scale * rgb / |rgb|)``.
    """

    def __init__(self, scale: float = 10.0):
        super().__init__()
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(scale)))
        self.images_seen = 0

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([[next(k for k, name in enumerate(CLASSES) if name in t)] for t in texts])

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        self.images_seen += len(image)
        out = image.float().mean(dim=(2, 3))
        return F.normalize(out, dim=-1) if normalize else out

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return torch.eye(len(CLASSES))[tokens[:, 0]]


def to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)


def expected(colour, scale: float = 10.0) -> np.ndarray:
    rgb = np.asarray(colour, np.float64) / 255.0
    logits = scale * rgb / np.linalg.norm(rgb)
    return np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()


def region_colours() -> np.ndarray:
    """``(15, 20)`` grid of cell colours: glass on the left 6 columns, pink and purple above, rose below."""
    grid = np.empty((15, 20), dtype=object)
    for r in range(15):
        for c in range(20):
            grid[r, c] = WHITE if c < 6 else PINK if r < 10 and c < 13 else PURPLE if r < 10 else ROSE
    return grid


@pytest.fixture
def drawn_slide(tmp_path):
    grid = region_colours()
    image = np.zeros((15 * CELL, 20 * CELL, 3), np.uint8)
    for r in range(15):
        for c in range(20):
            image[r * CELL:(r + 1) * CELL, c * CELL:(c + 1) * CELL] = grid[r, c]
    # uncompressed, so every pixel keeps its colour exactly
    return write_pyramidal_tiff(tmp_path / "drawn.tiff", image, 0.5, compression="none"), grid


def model() -> tuple[MeanColourCLIP, object, object]:
    net = MeanColourCLIP()
    return net, to_tensor, net.tokenize


def test_map_of_a_drawn_slide_is_exact(drawn_slide):
    path, grid = drawn_slide
    net, preprocess, tokenizer = model()
    result = tissue_map(path, (net, preprocess, tokenizer), list(CLASSES), mpp=0.5, tile_px=CELL, batch_size=7,
                        progress=False)
    assert isinstance(result, TissueMap) and result.shape == (15, 20) and result.classes == CLASSES
    assert result.probabilities.shape == (15, 20, 3) and result.cell_size0 == CELL
    np.testing.assert_array_equal(result.xy[2, 5], [5 * CELL, 2 * CELL])
    np.testing.assert_array_equal(result.xy[..., 0], np.tile(np.arange(20) * CELL, (15, 1)))
    glass = np.array([[grid[r, c] == WHITE for c in range(20)] for r in range(15)])
    np.testing.assert_array_equal(result.tissue, ~glass)
    np.testing.assert_allclose(result.tissue_fraction, (~glass).astype(np.float32), atol=1e-6)
    # only the tissue cells were read and scored, each once
    assert net.images_seen == int((~glass).sum()) == 14 * 15
    np.testing.assert_array_equal(result.scored, ~glass)
    assert np.isnan(result.probabilities[glass]).all()
    for r, c in zip(*np.nonzero(~glass)):
        np.testing.assert_allclose(result.probabilities[r, c], expected(grid[r, c]), rtol=1e-5, atol=1e-6)
    # pink and rose are mostly red, purple mostly blue
    assert (result.labels[:10, 6:13] == 0).all() and (result.labels[:10, 13:] == 2).all()
    assert (result.labels[10:, 6:] == 0).all() and (result.labels[glass] == -1).all()
    assert result.class_fractions() == pytest.approx({"red": 1 - 70 / 210, "green": 0.0, "blue": 70 / 210})
    np.testing.assert_allclose(result.confidence[3, 15], expected(PURPLE).max(), rtol=1e-5)
    rows = result.table()
    assert len(rows) == 210 and rows[0]["row"] == 0 and rows[0]["col"] == 6 and rows[0]["x"] == 6 * CELL
    assert rows[0]["class"] == "red" and rows[0]["p_blue"] == pytest.approx(expected(PINK)[2], rel=1e-5)
    assert result.slide_size == (640, 480) and result.slide_mpp == pytest.approx(0.5)
    assert result.thumbnail.shape == (480, 640, 3) and result.thumbnail_scale == (1.0, 1.0)
    assert result.prompts["red"][0] == "red." and len(result.prompts["red"]) == 12


def test_scoring_everything_and_other_batch_sizes_give_the_same_tissue_cells(drawn_slide):
    path, grid = drawn_slide
    tissue_cells = tissue_map(path, model(), list(CLASSES), mpp=0.5, tile_px=CELL, progress=False)
    net, preprocess, tokenizer = model()
    everywhere = tissue_map(path, (net, preprocess, tokenizer), list(CLASSES), mpp=0.5, tile_px=CELL,
                            tissue_only=False, batch_size=300, progress=False, templates=["a {} patch"])
    assert net.images_seen == 300 and everywhere.scored.all()
    np.testing.assert_allclose(everywhere.probabilities[0, 0], expected(WHITE), rtol=1e-5)  # glass: uniform
    np.testing.assert_allclose(everywhere.probabilities[tissue_cells.tissue],
                               tissue_cells.probabilities[tissue_cells.tissue], rtol=1e-6)
    assert everywhere.prompts == {c: [f"a {c} patch"] for c in CLASSES}
    # coarser cells: 64 px at 1 um/px reads level 1 (half size), 10 x 7 cells of 64 level-0 pixels
    coarse = tissue_map(path, model(), list(CLASSES), mpp=1.0, tile_px=CELL, progress=False)
    assert coarse.shape == (7, 10) and coarse.cell_size0 == 2 * CELL
    np.testing.assert_allclose(coarse.probabilities[0, 4], expected(PINK), rtol=1e-4)


def test_picture_colours_tissue_cells_only(drawn_slide):
    import matplotlib.pyplot as plt

    path, _ = drawn_slide
    result = tissue_map(path, model(), list(CLASSES), mpp=0.5, tile_px=CELL, tissue_only=False, progress=False)
    fig = plot_tissue_map(result, alpha=0.6)
    ax = fig.axes[0]
    thumbnail, overlay = ax.images
    assert thumbnail.get_extent() == pytest.approx([0, 0.32, 0.24, 0])  # millimetres
    rgba = np.asarray(overlay.get_array())
    assert rgba.shape == (15, 20, 4)
    np.testing.assert_array_equal(rgba[..., 3] > 0, result.tissue)  # glass was scored but is not coloured
    assert rgba[0, 6, 3] == pytest.approx(0.6)
    np.testing.assert_allclose(rgba[0, 6, :3], class_colours(3)[0], rtol=1e-6)
    np.testing.assert_allclose(rgba[0, 15, :3], class_colours(3)[2], rtol=1e-6)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["red (67%)", "green (0%)", "blue (33%)"]
    assert "drawn.tiff" in ax.get_title() and "210 of 300 cells" in ax.get_title()
    plt.close(fig)
    fig, own = plt.subplots()
    assert plot_tissue_map(result, ax=own) is fig
    plt.close(fig)


@pytest.mark.real_data
def test_cmu_small_region_map_matches_its_patches(shared_data):
    cmu = shared_data / "pathology" / "CMU-1-Small-Region.svs"
    net, preprocess, tokenizer = model()
    result = tissue_map(cmu, (net, preprocess, tokenizer), list(CLASSES), progress=False)
    spec = PatchSpec(mpp=0.5, size=224, min_tissue=0.5)
    with open_slide(cmu, fast_arrays=False) as slide:  # OpenSlide alone, one read per patch
        kept = plan_patches(slide, detect_tissue(slide), spec)
        assert result.shape == (13, 9) and result.cell_size0 == 224  # 2220 x 2967 at 0.499 um/px
        assert int(result.tissue.sum()) == len(kept) == net.images_seen > 20
        for loc in kept[::5]:
            r, c = loc.y0 // 224, loc.x0 // 224
            assert result.tissue[r, c] and tuple(result.xy[r, c]) == (loc.x0, loc.y0)
            patch = read_patch(slide, PatchLocation(loc.x0, loc.y0, 0, 224, 224, 1.0), spec)
            rgb = np.asarray(patch, np.float64).mean(axis=(0, 1))
            np.testing.assert_allclose(result.probabilities[r, c], expected(rgb), rtol=1e-4)
    np.testing.assert_allclose(np.nansum(result.probabilities, axis=-1)[result.scored], 1.0, rtol=1e-5)
    assert result.slide_mpp == pytest.approx(0.499) and max(result.thumbnail.shape) == 1024
    plot_tissue_map(result)


def _one_line(error: pytest.ExceptionInfo) -> str:
    assert isinstance(error.value, DomainClipError) and "\n" not in str(error.value)
    return str(error.value)


def test_user_errors_are_one_line(drawn_slide, tmp_path, shared_data):
    path, _ = drawn_slide
    classes = list(CLASSES)
    cases = [
        ({"classes": []}, "classes is empty"),
        ({"classes": ["red", "blue", "red"]}, "repeated: 'red'"),
        ({"classes": "red"}, "not the single string"),
        ({"classes": ["red", " "]}, "non-empty"),
        ({"templates": ["an H&E image"]}, "{}"),
        ({"templates": []}, "zero-shot prompts"),
        ({"mpp": 0}, "mpp must be a positive number"),
        ({"tile_px": 0}, "tile_px must be a positive integer"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"min_tissue": 1.5}, "min_tissue must be in [0, 1]"),
        ({"tile_px": 4096}, "smaller than one 4096-px cell"),
        ({"slide": tmp_path / "missing.svs"}, "file does not exist"),
        ({"slide": shared_data / "pathology" / "broken.svs"}, "cannot open slide"),
        ({"slide_mpp": -1.0}, "positive number of microns per pixel"),
        ({"device": "cuda:7"} if not torch.cuda.is_available() else {"device": "nope"}, "device"),
    ]
    for change, message in cases:
        args = {"slide": path, "classes": classes, "tile_px": CELL, "progress": False, **change}
        with pytest.raises(DomainClipError) as err:
            tissue_map(args.pop("slide"), model(), args.pop("classes"), **args)
        assert message in _one_line(err), change
    with pytest.raises(InputError) as err:
        plot_tissue_map(tissue_map(path, model(), classes, tile_px=CELL, progress=False), alpha=2)
    assert "alpha" in _one_line(err)
    with open_slide(path) as slide, pytest.raises(InputError) as err:
        tissue_map(slide, model(), classes, slide_mpp=0.25)
    assert "already open" in _one_line(err)


def test_a_slide_without_mpp_needs_one(tmp_path):
    image = np.full((256, 256, 3), 255, np.uint8)
    image[64:192, 64:192] = PURPLE
    path = write_pyramidal_tiff(tmp_path / "nompp.tiff", image, None, compression="none")
    with pytest.raises(MissingMppError) as err:
        tissue_map(path, model(), list(CLASSES), progress=False)
    assert "--slide-mpp" in _one_line(err)
    result = tissue_map(path, model(), list(CLASSES), slide_mpp=0.5, tile_px=64, min_tissue=0.9,
                        tissue={"min_object_area_um2": 100}, progress=False)
    assert result.slide_mpp == 0.5 and result.shape == (4, 4)
    np.testing.assert_array_equal(np.nonzero(result.tissue), [[1, 1, 2, 2], [1, 2, 1, 2]])
    np.testing.assert_allclose(result.probabilities[1, 1], expected(PURPLE), rtol=1e-5)
    with pytest.raises(SlideOpenError):
        tissue_map(tmp_path, model(), list(CLASSES), progress=False)
