import io
import json
import tarfile
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from domainclip.core.errors import InputError, InputNotFoundError, NothingWrittenError
from domainclip.core.prepare import parse_prepare_args
from domainclip.domains.pathology.pathgen import (
    import_pathgen,
    index_slides,
    load_pathgen_records,
    parse_records,
)
from domainclip.domains.pathology.slides import open_slide
from domainclip.domains.pathology.tiff import write_pyramidal_tiff

SLIDE_A = "TCGA-AA-0001-01Z-00-DX1"
SLIDE_B = "TCGA-BB-0002-01Z-00-DX1"
MISSING = "TCGA-CC-0003-01Z-00-DX1"


def read_shards(folder):
    samples = defaultdict(dict)
    for path in sorted(folder.glob("*.tar")):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                key, _, suffix = member.name.partition(".")
                samples[key][suffix] = tar.extractfile(member).read()
    return dict(samples)


def noise_image(height, width, seed):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def slides_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tcga")
    # TCGA layout: <file uuid>/<wsi_id>.<uuid>.svs, and a plain <wsi_id>.svs
    (root / "0b1c").mkdir()
    name_a = root / "0b1c" / f"{SLIDE_A}.5f3e-aa11.svs"
    write_pyramidal_tiff(name_a, noise_image(1400, 1600, 0), 0.25, compression="none")
    write_pyramidal_tiff(root / f"{SLIDE_B}.svs", noise_image(800, 900, 1), 0.5, compression="none")
    (root / "notes.txt").write_text("not a slide")
    return root


def records():
    return [
        {"wsi_id": SLIDE_A, "position": ["672", "0"], "caption": "Dense tumour cells."},
        {"wsi_id": SLIDE_A, "position": [0, 700], "caption": "Stroma with lymphocytes."},
        {"wsi_id": SLIDE_B, "position": ["100", "50"], "caption": "Glandular structures."},
        {"wsi_id": MISSING, "position": ["0", "0"], "caption": "Not downloaded."},
        {"wsi_id": MISSING, "position": ["672", "0"], "caption": "Not downloaded either."},
        {"wsi_id": SLIDE_A, "position": ["10", "20"], "caption": "  "},
        {"wsi_id": SLIDE_A, "position": ["x", "20"], "caption": "Bad position."},
        {"wsi_id": SLIDE_A, "position": [-5, 20], "caption": "Negative."},
        {"wsi_id": SLIDE_A, "position": [1.5, 20], "caption": "Fractional."},
        {"position": [0, 0], "caption": "No slide."},
        {"wsi_id": SLIDE_B, "position": ["600", "0"], "caption": "Runs off the right edge."},
        "not an object",
    ]


def test_parse_records_counts_bad_ones():
    valid, bad = parse_records(records())
    assert [(r.index, r.wsi_id, r.x, r.y) for r in valid] == [
        (0, SLIDE_A, 672, 0), (1, SLIDE_A, 0, 700), (2, SLIDE_B, 100, 50), (3, MISSING, 0, 0),
        (4, MISSING, 672, 0), (10, SLIDE_B, 600, 0),
    ]
    assert dict(bad) == {"no_caption": 1, "bad_position": 3, "no_wsi_id": 1, "not_an_object": 1}


def test_load_json_list_and_json_lines(tmp_path):
    items = [r for r in records() if isinstance(r, dict)]
    as_list = tmp_path / "a.json"
    as_list.write_text(json.dumps(items))
    as_lines = tmp_path / "b.jsonl"
    as_lines.write_text("\n".join(json.dumps(r) for r in items) + "\n\n")
    assert load_pathgen_records(as_list) == load_pathgen_records(as_lines) == items
    broken = tmp_path / "c.jsonl"
    broken.write_text(json.dumps(items[0]) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"c\.jsonl:2"):
        load_pathgen_records(broken)
    with pytest.raises(FileNotFoundError, match="absent.json"):
        load_pathgen_records(tmp_path / "absent.json")


def test_index_slides_matches_tcga_names(slides_dir):
    index = index_slides(slides_dir)
    assert [p.name for p in index[SLIDE_A]] == [f"{SLIDE_A}.5f3e-aa11.svs"]
    assert [p.name for p in index[SLIDE_B]] == [f"{SLIDE_B}.svs"]
    assert MISSING not in index and "notes" not in index


def test_import_pathgen_with_a_missing_slide(slides_dir, tmp_path):
    path = tmp_path / "pathgen.json"
    path.write_text(json.dumps(records()))
    out = tmp_path / "out"
    summary = import_pathgen(out, path, slides_dir, patch_size=672, out_size=224, image_format="png", progress=False)
    assert summary["num_records"] == 12 and summary["num_valid_records"] == 6
    assert summary["num_written"] == 3
    assert summary["missing_slides"] == [MISSING] and summary["records_missing_slide"] == 2
    assert (out / "missing_slides.txt").read_text() == f"{MISSING}\n"
    assert summary["bad_records"] == {
        "no_caption": 1, "bad_position": 3, "no_wsi_id": 1, "not_an_object": 1, "out_of_bounds": 1,
    }
    samples = read_shards(out)
    assert sorted(samples) == ["000000000", "000000001", "000000002"]
    captions = {k: m["txt"].decode() for k, m in samples.items()}
    assert captions == {"000000000": "Dense tumour cells.", "000000001": "Stroma with lymphocytes.",
                        "000000002": "Glandular structures."}
    index = index_slides(slides_dir)
    for key, members in samples.items():
        meta = json.loads(members["json"])
        assert meta["record"] == int(key) and meta["patch_size"] == 672 and meta["image_size"] == 224
        with open_slide(index[meta["wsi_id"]][0]) as slide:
            expected = slide.read_region((meta["x"], meta["y"]), 0, (672, 672)).resize((224, 224), Image.LANCZOS)
            assert meta["slide_mpp"] == slide.mpp and meta["mpp"] == pytest.approx(slide.mpp * 3)
        decoded = Image.open(io.BytesIO(members["png"])).convert("RGB")
        assert np.array_equal(np.asarray(decoded), np.asarray(expected))
    assert json.loads((out / "pathgen-summary.json").read_text())["num_written"] == 3


def test_cli_keeps_patch_size_and_reports_unreadable_slides(slides_dir, tmp_path):
    folder = tmp_path / "slides"
    folder.mkdir()
    (folder / f"{SLIDE_B}.svs").symlink_to(next(slides_dir.glob(f"{SLIDE_B}.svs")))
    (folder / f"{SLIDE_A}.svs").write_bytes(b"broken")
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records()[:3]))
    command, options, _ = parse_prepare_args("pathology", "pathgen", [
        "--records", str(path), "--slides-dir", str(folder), "--out", str(tmp_path / "o"), "--patch-size", "256",
        "--no-progress"])
    assert command is import_pathgen
    summary = command(**options)
    assert summary["num_written"] == 1 and summary["bad_records"] == {"slide_unreadable": 2}
    [failed] = summary["failed_slides"]
    assert failed["wsi_id"] == SLIDE_A and f"{SLIDE_A}.svs" in failed["error"]
    assert failed["reason"] == "unreadable_slide"
    assert summary["missing_slides"] == [] and not (tmp_path / "o" / "missing_slides.txt").exists()
    [members] = read_shards(tmp_path / "o").values()
    assert Image.open(io.BytesIO(members["jpg"])).size == (256, 256)


def test_import_that_writes_nothing_raises_with_the_reasons(slides_dir, tmp_path):
    folder = tmp_path / "slides"
    folder.mkdir()
    (folder / f"{SLIDE_A}.svs").write_bytes(b"broken")
    path = tmp_path / "r.json"
    items = records()
    path.write_text(json.dumps([items[0], items[1], items[3], items[5], items[11]]))
    with pytest.raises(NothingWrittenError) as caught:
        import_pathgen(tmp_path / "o", path, folder, progress=False)
    message = str(caught.value)
    assert message.startswith(f"pathology/pathgen wrote no patches from 5 records of {path}: ")
    assert "slide_unreadable: 2 (e.g. cannot open slide " in message and f"{SLIDE_A}.svs" in message
    assert f"missing_slide: 1 (e.g. no slide {MISSING}.svs or {MISSING}.<uuid>.svs under {folder}" in message
    assert f"no_caption: 1 (e.g. {path}: record 3 (no_caption)" in message
    assert "not_an_object: 1" in message
    summary = json.loads((tmp_path / "o" / "pathgen-summary.json").read_text())
    assert summary["num_written"] == 0 and summary["bad_records"] == {
        "no_caption": 1, "not_an_object": 1, "slide_unreadable": 2,
    }


def test_records_file_errors_are_input_errors(tmp_path):
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'[{"caption": "caf\xe9"}]')
    with pytest.raises(InputError, match=r"latin\.json: not UTF-8 text"):
        load_pathgen_records(latin)
    scalar = tmp_path / "scalar.json"
    scalar.write_text("[1, 2")
    with pytest.raises(InputError, match=r"scalar\.json: not valid JSON"):
        load_pathgen_records(scalar)
    with pytest.raises(InputNotFoundError, match="absent.json does not exist"):
        load_pathgen_records(tmp_path / "absent.json")
    with pytest.raises(InputNotFoundError, match="nowhere does not exist"):
        index_slides(tmp_path / "nowhere")
    with pytest.raises(InputError, match="patch_size must be an integer >= 1; got 0"):
        import_pathgen(tmp_path / "o", [], tmp_path, patch_size=0)
    assert not (tmp_path / "o").exists()


@pytest.mark.real_data
def test_import_from_a_real_aperio_slide(shared_data, tmp_path):
    folder = tmp_path / "slides"
    folder.mkdir()
    cmu = shared_data / "pathology" / "CMU-1-Small-Region.svs"
    (folder / f"{SLIDE_A}.0123-uuid.svs").symlink_to(cmu)
    items = [{"wsi_id": SLIDE_A, "position": ["1000", "1500"], "caption": "Epidermis."},
             {"wsi_id": SLIDE_A, "position": ["2000", "0"], "caption": "Off the edge."}]
    summary = import_pathgen(tmp_path / "out", items, folder, image_format="png", progress=False)
    assert summary["num_written"] == 1 and summary["bad_records"] == {"out_of_bounds": 1}
    [members] = read_shards(tmp_path / "out").values()
    with open_slide(cmu, fast_arrays=False) as slide:
        expected = np.asarray(slide.read_region((1000, 1500), 0, (672, 672)))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(members["png"])).convert("RGB")), expected)
    assert json.loads(members["json"])["slide_mpp"] == pytest.approx(0.499)


@pytest.mark.slow
def test_two_workers_write_the_same_samples(slides_dir, tmp_path):
    path = tmp_path / "pathgen.json"
    path.write_text(json.dumps(records()))
    one = import_pathgen(tmp_path / "one", path, slides_dir, out_size=224, image_format="png", progress=False)
    two = import_pathgen(tmp_path / "two", path, slides_dir, out_size=224, image_format="png", workers=2,
                         progress=False)
    assert one["num_written"] == two["num_written"] == 3 and two["workers"] == 2
    first, second = read_shards(tmp_path / "one"), read_shards(tmp_path / "two")
    assert sorted(first) == sorted(second)
    assert all(first[k]["png"] == second[k]["png"] for k in first)
