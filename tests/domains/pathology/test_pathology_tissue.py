import numpy as np
import pytest

from domainclip.core.plugins import UnknownNameError
from domainclip.domains.pathology.slides import open_slide
from domainclip.domains.pathology.tiff import write_pyramidal_tiff
from domainclip.domains.pathology.tissue import (
    PEN_RULES,
    TISSUE_METHODS,
    TissueMask,
    detect_tissue,
    rgb_to_hsv,
    tissue_mask_from_rgb,
)

PINK = (220, 120, 180)
PURPLE = (120, 60, 150)
BLUE_INK = (40, 60, 170)
GREEN_INK = (40, 150, 80)
BLACK_INK = (25, 25, 30)


def slide_image(height=800, width=1000, seed=0):
    """Glass (near-white, noisy), an H&E-coloured tissue disk with purple nuclei, and nothing else."""
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(243, 3, (height, width, 3)), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    disk = (yy - 400) ** 2 + (xx - 350) ** 2 < 200**2
    tissue = np.clip(np.array(PINK) + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    nuclei = disk & (rng.random((height, width)) < 0.08)
    image[disk] = tissue[disk]
    image[nuclei] = PURPLE
    return image, disk


def draw_stroke(image, rows, cols, color):
    stroke = np.zeros(image.shape[:2], bool)
    stroke[rows, cols] = True
    image[stroke] = color
    return stroke


@pytest.fixture(scope="module")
def pen_slide(tmp_path_factory):
    image, disk = slide_image()
    blue = draw_stroke(image, slice(100, 700), slice(800, 830), BLUE_INK)  # on glass
    green = draw_stroke(image, slice(720, 750), slice(600, 950), GREEN_INK)  # on glass
    black = draw_stroke(image, slice(380, 420), slice(150, 560), BLACK_INK)  # across the tissue
    path = write_pyramidal_tiff(tmp_path_factory.mktemp("tissue") / "pen.tif", image, 1.0, compression="none")
    return path, disk, blue, green, black


def test_detects_the_tissue_and_ignores_glass_and_pen(pen_slide):
    path, disk, blue, green, black = pen_slide
    with open_slide(path) as slide:
        result = detect_tissue(slide, max_size=1000, mask_mpp=None, min_object_area_um2=2000)
    mask = result.mask
    assert mask.shape == disk.shape and result.downsample == 1.0 and result.level0_size == (1000, 800)
    tissue = disk & ~black
    assert mask[tissue].mean() > 0.97
    glass = ~disk & ~blue & ~green
    assert mask[glass].mean() < 0.002
    assert not mask[blue].any() and not mask[green].any()
    assert mask[black].mean() < 0.05  # the ink crossing the tissue is removed (closing does not refill it)
    assert 0.0 < result.pen_fraction < 0.2
    assert result.threshold > 0.05


def test_without_pen_exclusion_the_ink_counts_as_tissue(pen_slide):
    path, disk, blue, green, black = pen_slide
    with open_slide(path) as slide:
        result = detect_tissue(slide, max_size=1000, mask_mpp=None, min_object_area_um2=2000, exclude_pen=False)
    assert result.mask[blue].mean() > 0.9 and result.mask[green].mean() > 0.9
    assert result.pen_fraction == 0.0


def test_small_objects_and_holes_by_physical_area(tmp_path):
    image, disk = slide_image()
    image[100:110, 100:110] = PINK  # 10x10 px specks = 100 um2 at 1 mpp
    image[390:398, 340:348] = 243  # an 8x8 hole inside the disk
    path = write_pyramidal_tiff(tmp_path / "s.tif", image, 1.0, compression="none")
    with open_slide(path) as slide:
        kept = detect_tissue(slide, mask_mpp=1.0, min_object_area_um2=50, max_hole_area_um2=0, close_radius=0)
        dropped = detect_tissue(slide, mask_mpp=1.0, min_object_area_um2=500, max_hole_area_um2=100, close_radius=0)
    assert kept.mask[100:110, 100:110].all() and not kept.mask[392:396, 342:346].any()
    assert not dropped.mask[100:110, 100:110].any() and dropped.mask[390:398, 340:348].all()


def test_blank_slide_has_no_tissue():
    rng = np.random.default_rng(1)
    glass = np.clip(rng.normal(240, 4, (300, 300, 3)), 0, 255).astype(np.uint8)
    mask, threshold, _ = tissue_mask_from_rgb(glass, um_per_pixel=2.0)
    assert not mask.any() and threshold >= 0.05


def test_fixed_method_and_unknown_names():
    image, disk = slide_image(300, 300)
    mask, threshold, _ = tissue_mask_from_rgb(
        image, um_per_pixel=1.0, method="fixed", threshold=0.2, min_object_area_um2=100
    )
    assert threshold == 0.2 and mask[disk].mean() > 0.9
    assert set(TISSUE_METHODS) == {"otsu", "fixed"} and set(PEN_RULES) == {"blue", "green", "black"}
    with pytest.raises(UnknownNameError, match="otsu"):
        tissue_mask_from_rgb(image, um_per_pixel=1.0, method="otsuu")
    with pytest.raises(UnknownNameError, match="blue"):
        tissue_mask_from_rgb(image, um_per_pixel=1.0, pen_colors=("bleu",))


def test_rgb_to_hsv_matches_definition():
    rgb = np.array([[[255, 0, 0], [0, 0, 255], [200, 100, 50], [10, 10, 10]]], np.uint8)
    hsv = rgb_to_hsv(rgb)
    assert hsv.dtype == np.uint8
    hsv = hsv / 255.0
    assert hsv[0, 0] == pytest.approx([0.0, 1.0, 1.0], abs=0.005)
    assert hsv[0, 1] == pytest.approx([2 / 3, 1.0, 1.0], abs=0.005)
    assert hsv[0, 2] == pytest.approx([1 / 18, 0.75, 200 / 255], abs=0.005)
    assert hsv[0, 3, 1] == 0.0


def test_tissue_fraction_is_area_weighted():
    mask = np.zeros((4, 8), bool)
    mask[:, :4] = True  # left half of a 80x40 level-0 slide at downsample 10
    tm = TissueMask(mask=mask, downsample=10.0, threshold=0.1, level0_size=(80, 40))
    assert tm.fraction == 0.5
    assert tm.tissue_fraction(0, 0, 40, 40) == pytest.approx(1.0)
    assert tm.tissue_fraction(40, 0, 40, 40) == pytest.approx(0.0)
    assert tm.tissue_fraction(20, 0, 40, 40) == pytest.approx(0.5)
    assert tm.tissue_fraction(35, 5, 10, 10) == pytest.approx(0.5)  # inside single mask pixels
    assert tm.tissue_fraction(-40, 0, 80, 40) == pytest.approx(0.5)  # half outside the slide
    boxes = np.array([[0, 0, 40, 40], [30, 10, 20, 20], [70, 30, 10, 10]])
    assert tm.tissue_fractions(boxes) == pytest.approx([1.0, 0.5, 0.0])
    rng = np.random.default_rng(0)
    random_mask = rng.random((30, 40)) < 0.4
    tm = TissueMask(mask=random_mask, downsample=4.0, threshold=0.1, level0_size=(160, 120))
    for x, y, w, h in [(8, 12, 40, 20), (0, 0, 160, 120), (100, 4, 4, 4)]:
        expected = random_mask[y // 4 : (y + h) // 4, x // 4 : (x + w) // 4].mean()
        assert tm.tissue_fraction(x, y, w, h) == pytest.approx(expected)


def test_mask_resolution_follows_mask_mpp(pen_slide):
    with open_slide(pen_slide[0]) as slide:  # 1000 x 800 px at 1 mpp
        assert detect_tissue(slide).mask.shape == (200, 250)  # default 4 um per mask pixel
        assert detect_tissue(slide, mask_mpp=2.0).mask.shape == (400, 500)
        assert detect_tissue(slide, mask_mpp=2.0, max_size=300).mask.shape == (240, 300)
        coarse = detect_tissue(slide, mask_mpp=None, max_size=100)
    assert coarse.mask.shape == (80, 100) and coarse.downsample == 10.0


@pytest.mark.real_data
def test_cmu_tissue(shared_data):
    with open_slide(shared_data / "pathology" / "CMU-1-Small-Region.svs") as slide:
        result = detect_tissue(slide, mask_mpp=None, max_size=1024)
        default = detect_tissue(slide)
    assert result.mask.shape == (1024, 766)
    assert default.mask.shape == (371, 278)  # 2967 px * 0.499 um / 4 um
    assert default.fraction == pytest.approx(result.fraction, abs=0.03)
    assert 0.25 < result.fraction < 0.5
    assert result.tissue_fraction(0, 0, 300, 300) == 0.0  # glass in the top-left corner
    assert result.tissue_fraction(1000, 1500, 224, 224) > 0.95  # the middle of the section
    assert result.pen_fraction < 0.01  # H&E stain is not ink
