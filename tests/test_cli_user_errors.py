"""Every user mistake ends in one line on stderr naming the input, and exit code 2.

One parametrised test over a list of cases. A case is a function registered with :func:`case` that
gets a fresh ``tmp_path`` and a :class:`Context` (lazily built shared inputs: a prepared shapes set,
a tiny trained run, the ../shared/data folder) and returns ``(argv, expected)``: the ``domainclip``
arguments and the substrings the error line must contain.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from domainclip.cli import main

Setup = Callable[[Path, "Context"], tuple[list[str], list[str]]]
CASES: dict[str, Setup] = {}


def case(name: str) -> Callable[[Setup], Setup]:
    """Register a user-mistake case under ``name`` (the test id)."""

    def register(fn: Setup) -> Setup:
        assert name not in CASES, name
        CASES[name] = fn
        return fn

    return register


@dataclass
class Context:
    """Inputs several cases share, built once per session on first use."""

    factory: pytest.TempPathFactory
    shared: Path
    _shapes: Path | None = None
    _run: Path | None = None

    @property
    def shapes(self) -> Path:
        """A folder with ``train/`` holding 64 shapes samples in 2 shards (made by ``prepare core shapes``)."""
        if self._shapes is None:
            root = self.factory.mktemp("shapes")
            argv = ["prepare", "core", "shapes", "--out", str(root / "train"), "--n", "64", "--image-size", "32",
                    "--max-count", "32"]
            assert main(argv) == 0
            self._shapes = root
        return self._shapes

    def recipe(self, path: Path, **sections: dict) -> Path:
        """Write a 2-step CPU recipe on the shapes set to ``path``; ``sections`` update its sections."""
        recipe = {
            "domain": "core",
            "model": {"name": "dc-test-vit"},
            "data": {"root": str(self.shapes), "train": [{"urls": "train/*.tar"}], "batch_size": 8,
                     "num_workers": 0, "shuffle_buffer": 8},
            "optim": {"lr": 1e-3, "warmup_steps": 1},
            "train": {"steps": 2, "precision": "fp32", "log_every": 1, "checkpoint_every": 1, "progress": False,
                      "tensorboard": False, "device": "cpu"},
        }
        for section, values in sections.items():
            recipe.setdefault(section, {}).update(values)
        path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
        return path

    @property
    def run(self) -> Path:
        """A finished 2-step training run folder (do not modify it: copy it first)."""
        if self._run is None:
            folder = self.factory.mktemp("run")
            recipe = self.recipe(folder / "recipe.yaml")
            assert main(["train", str(recipe), "--out", str(folder / "run")]) == 0
            self._run = folder / "run"
        return self._run

    def copy_run(self, tmp_path: Path) -> Path:
        """A copy of :attr:`run` that a case may damage."""
        return Path(shutil.copytree(self.run, tmp_path / "run"))


@pytest.fixture(scope="session")
def context(tmp_path_factory) -> Context:
    from tests.conftest import SHARED_DATA

    return Context(tmp_path_factory, SHARED_DATA)


# =============================================================================== core: recipes
@case("recipe-nan-lr")
def _(tmp_path, ctx):
    return ["train", "core/quick", "--set", "optim.lr=.nan", "--out", str(tmp_path / "o")], [
        "optim.lr: must be a finite number; got nan"]


@case("recipe-not-utf8")
def _(tmp_path, ctx):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"description: caf\xe9\n")
    return ["train", str(path)], [str(path), "not UTF-8"]


@case("recipe-broken-set-yaml")
def _(tmp_path, ctx):
    return ["train", "core/quick", "--set", "optim.betas=[0.9, 0.98"], ["--set", "not valid YAML"]


@case("recipe-betas-out-of-range")
def _(tmp_path, ctx):
    return ["train", "core/quick", "--set", "optim.betas=[0.9, 1.5]"], [
        "optim.betas: item 1: must be a number in [0, 1); got 1.5"]


@case("recipe-eps-zero")
def _(tmp_path, ctx):
    return ["train", "core/quick", "--set", "optim.eps=0"], ["optim.eps: must be a number > 0; got 0"]


@case("recipe-negative-threads")
def _(tmp_path, ctx):
    return ["train", "core/quick", "--set", "train.threads=-2"], ["train.threads: must be an integer >= 0; got -2"]


@case("recipe-negative-source-weight")
def _(tmp_path, ctx):
    return ["train", "core/quick", "--set", "data.train=[{urls: x.tar, weight: -1}]"], [
        "data.train[0].weight: must be a number > 0; got -1"]


@case("recipe-negative-grad-clip")
def _(tmp_path, ctx):
    return ["train", "core/quick", "--set", "optim.grad_clip=-1"], ["optim.grad_clip: must be a number >= 0; got -1"]


@case("recipe-unknown-device")
def _(tmp_path, ctx):
    return ["train", "core/quick", "--set", "train.device=nosuch"], ["train.device must be", "'nosuch'"]


@case("recipes-unknown-domain")
def _(tmp_path, ctx):
    return ["recipes", "nosuch"], ["unknown domain 'nosuch'"]


# =============================================================================== core: outputs, runs, data
@case("data-all-shards-corrupt")
def _(tmp_path, ctx):
    (tmp_path / "bad").mkdir()
    for i in range(2):
        (tmp_path / "bad" / f"shard-{i:06d}.tar").write_bytes(b"this is not a tar file" * 100)
    recipe = ctx.recipe(tmp_path / "r.yaml", data={"train": [{"urls": str(tmp_path / "bad"), "name": "broken"}]})
    return ["train", str(recipe), "--out", str(tmp_path / "o")], [
        "source 'broken' gave no samples", "bad_shard: 2", "not a tar header"]


@case("data-pipe-url-without-allow-pipe")
def _(tmp_path, ctx):
    url = f"pipe:touch {tmp_path / 'ran'}; cat {sorted((ctx.shapes / 'train').glob('*.tar'))[0]}"
    recipe = ctx.recipe(tmp_path / "r.yaml", data={"train": [{"urls": url}]})
    return ["train", str(recipe), "--out", str(tmp_path / "o")], [repr(url), "set data.allow_pipe: true"]


@case("data-file-named-like-a-pipe-url")
def _(tmp_path, ctx):  # the working folder is tmp_path: a shell would create ./pwned
    (tmp_path / "pipe:touch pwned #.tar").write_bytes(b"this is not a tar file" * 100)
    recipe = ctx.recipe(tmp_path / "r.yaml", data={"root": "", "train": [{"urls": "*.tar"}]})
    return ["train", str(recipe), "--out", str(tmp_path / "o")], [
        "bad_shard: 1 (e.g. pipe:touch pwned #.tar: ", "not a tar header"]


@case("data-images-over-max-image-pixels")
def _(tmp_path, ctx):
    recipe = ctx.recipe(tmp_path / "r.yaml", data={"max_image_pixels": 100})
    return ["train", str(recipe), "--out", str(tmp_path / "o")], [
        "too many corrupt samples", "bad_image: 100", "32x32 = 1024 pixels, more than max_image_pixels=100"]


@case("train-resume-with-another-lr")
def _(tmp_path, ctx):
    run = ctx.copy_run(tmp_path)
    return ["train", str(ctx.run.parent / "recipe.yaml"), "--out", str(run), "--resume", "--set", "optim.lr=0.5"], [
        "--resume", "define the run", "optim.lr: 0.001 -> 0.5"]


@case("train-resume-with-another-model")
def _(tmp_path, ctx):
    run = ctx.copy_run(tmp_path)
    argv = ["train", str(ctx.run.parent / "recipe.yaml"), "--out", str(run), "--resume", "--set",
            "model.name=dc-mini-resnet"]
    return argv, ["model.name: 'dc-test-vit' -> 'dc-mini-resnet'"]


@case("train-resume-every-checkpoint-damaged")
def _(tmp_path, ctx):
    run = ctx.copy_run(tmp_path)
    for state in run.glob("checkpoints/step_*/state.pt"):
        state.write_bytes(state.read_bytes()[:100])
    return ["train", str(ctx.run.parent / "recipe.yaml"), "--out", str(run), "--resume"], [
        "no checkpoint in", "can be loaded", "state.pt"]


@case("train-into-a-finished-run-without-resume")
def _(tmp_path, ctx):
    run = ctx.copy_run(tmp_path)
    return ["train", str(ctx.run.parent / "recipe.yaml"), "--out", str(run)], [
        "already holds a finished run written by `train`", "--resume"]


@case("train-out-holds-the-users-files")
def _(tmp_path, ctx):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    return ["train", str(ctx.recipe(tmp_path / "r.yaml")), "--out", str(tmp_path / "out")], [
        "notes.txt, which domainclip did not write"]


@case("train-out-below-a-file")
def _(tmp_path, ctx):
    (tmp_path / "file").write_text("x")
    return ["train", str(ctx.recipe(tmp_path / "r.yaml")), "--out", str(tmp_path / "file" / "run")], [
        "cannot create output folder", "file/run"]


@case("train-device-cuda-without-gpu")
def _(tmp_path, ctx):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    recipe = ctx.recipe(tmp_path / "r.yaml", train={"device": "cuda"})
    return ["train", str(recipe), "--out", str(tmp_path / "run")], ["train.device: device 'cuda'", "no CUDA GPU"]


@case("train-unknown-loss-argument")
def _(tmp_path, ctx):
    recipe = ctx.recipe(tmp_path / "r.yaml", loss={"kwargs": {"hopfeld": 1}})
    return ["train", str(recipe), "--out", str(tmp_path / "run")], [
        "loss.kwargs", "loss 'clip' takes no argument 'hopfeld'"]


@case("train-unknown-eval-suite-before-training")
def _(tmp_path, ctx):
    recipe = ctx.recipe(tmp_path / "r.yaml", eval={"suites": ["core/synthetc"]})
    # refused before the run folder exists: nothing trains for hours to fail at the end
    return ["train", str(recipe), "--out", str(tmp_path / "run")], ["unknown eval suite 'core/synthetc'",
                                                                   "core/synthetic"]


@case("prepare-shapes-image-size-too-small")
def _(tmp_path, ctx):
    return ["prepare", "core", "shapes", "--out", str(tmp_path / "d"), "--image-size", "0"], [
        "--image-size", "an integer >= 16"]


@case("prepare-math-captions-zero")
def _(tmp_path, ctx):
    return ["prepare", "math", "synthetic", "--out", str(tmp_path / "d"), "--captions", "0"], [
        "--captions", "must be an integer in [1, 16]; got 0"]


@case("prepare-math-image-size-reversed")
def _(tmp_path, ctx):
    return ["prepare", "math", "synthetic", "--out", str(tmp_path / "d"), "--image-size", "300-100"], [
        "--image-size", "MIN <= MAX"]


@case("prepare-math-all-proportions-zero")
def _(tmp_path, ctx):
    argv = ["prepare", "math", "synthetic", "--out", str(tmp_path / "d"), "--n", "4", "--proportions",
            "function_plot=0"]
    return argv, ["no diagram family selected"]


@case("prepare-out-holds-another-dataset")
def _(tmp_path, ctx):
    return ["prepare", "core", "shapes", "--out", str(ctx.shapes / "train"), "--n", "8"], [
        "already holds a finished dataset written by `core/shapes`", "--overwrite"]


@case("prepare-out-below-a-file")
def _(tmp_path, ctx):
    (tmp_path / "file").write_text("x")
    return ["prepare", "core", "shapes", "--out", str(tmp_path / "file" / "d"), "--n", "8"], [
        "cannot create output folder"]


@case("demo-out-holds-the-users-files")
def _(tmp_path, ctx):
    (tmp_path / "notes.txt").write_text("mine")
    return ["demo", "--domain", "core", "--out", str(tmp_path), "--steps", "1"], [
        "notes.txt, which domainclip did not write"]


@case("demo-steps-zero")
def _(tmp_path, ctx):
    return ["demo", "--domain", "core", "--out", ".", "--steps", "0"], ["--steps must be at least 1, got 0"]


# =============================================================================== core: eval, export, hub
def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder nothing can be created in: mode 0o500; as root, where mode bits do not stop writes, a
    path whose parent is a regular file (what a read-only folder is to a non-root user)."""
    import os

    if os.geteuid() == 0:
        (tmp_path / "a-file").write_text("not a folder")
        return tmp_path / "a-file"
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    return folder


@case("eval-device-without-gpu")
def _(tmp_path, ctx):
    import torch

    device = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    return ["eval", "--model", "dc-test-vit", "--suite", "core/synthetic", "--out", str(tmp_path / "r.json"),
            "--device", device], [f"device '{device}'", "CUDA GPU"]


@case("eval-out-not-writable")
def _(tmp_path, ctx):
    out = _unwritable_folder(tmp_path) / "r.json"
    return ["eval", "--model", "dc-test-vit", "--suite", "core/synthetic", "--out", str(out)], [
        "cannot create output folder", str(out.with_name("r_files"))]


@case("export-out-not-writable")
def _(tmp_path, ctx):
    out = _unwritable_folder(tmp_path) / "hub"
    return ["export", str(ctx.run), "--out", str(out)], ["cannot write output folder", str(out)]


@case("export-corrupt-model-info")
def _(tmp_path, ctx):
    run = ctx.copy_run(tmp_path)
    (run / "model_info.json").write_text('{"name": "dc-test-vit", "model_cfg": ')
    return ["export", str(run), "--out", str(tmp_path / "hub")], [
        str(run / "model_info.json"), "is not valid JSON"]


def _corrupt_newest_weights(run: Path) -> Path:
    weights = sorted(run.glob("checkpoints/step_*/model.safetensors"))[-1]
    weights.write_bytes(b"\x00" * 100)
    return weights


@case("export-corrupt-weights")
def _(tmp_path, ctx):
    weights = _corrupt_newest_weights(ctx.copy_run(tmp_path))
    return ["export", str(tmp_path / "run"), "--out", str(tmp_path / "hub")], [
        str(weights), "is not a readable safetensors file"]


@case("eval-corrupt-weights")
def _(tmp_path, ctx):
    weights = _corrupt_newest_weights(ctx.copy_run(tmp_path))
    return ["eval", "--model", str(tmp_path / "run"), "--suite", "core/synthetic", "--out",
            str(tmp_path / "r.json")], [str(weights), "is not a readable safetensors file"]


@case("eval-batch-size-zero")
def _(tmp_path, ctx):
    return ["eval", "--model", "dc-test-vit", "--suite", "core/synthetic", "--out", str(tmp_path / "r.json"),
            "--batch-size", "0"], ["--batch-size must be a positive integer, got 0"]


@case("eval-run-without-checkpoint")
def _(tmp_path, ctx):
    run = ctx.copy_run(tmp_path)
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").mkdir()
    return ["eval", "--model", str(run), "--suite", "core/synthetic", "--out", str(tmp_path / "r.json")], [
        "no checkpoint in", str(run / "checkpoints")]


@case("export-run-without-checkpoint")
def _(tmp_path, ctx):
    run = ctx.copy_run(tmp_path)
    shutil.rmtree(run / "checkpoints")
    return ["export", str(run), "--out", str(tmp_path / "hub")], ["no checkpoint in", str(run / "checkpoints")]



# =============================================================================== math


# =============================================================================== pathology
def _patches(ctx: Context, tmp_path: Path, *slides: Path | str, options: tuple[str, ...] = ()) -> list[str]:
    """``prepare pathology patches`` of ``slides`` (default: the shared small.svs) into ``tmp_path/o``."""
    paths = [str(s) for s in slides] or [str(ctx.shared / "pathology" / "small.svs")]
    return ["prepare", "pathology", "patches", "--slides", *paths, "--out", str(tmp_path / "o"), "--no-progress",
            *options]


@case("pathology-patches-empty-mpp-csv")
def _(tmp_path, ctx):
    table = tmp_path / "mpp.csv"
    table.write_text("")
    return _patches(ctx, tmp_path, options=("--mpp-csv", str(table))), [f"mpp table {table} is empty", "'mpp'"]


@case("pathology-patches-size-zero")
def _(tmp_path, ctx):
    return _patches(ctx, tmp_path, options=("--size", "0")), ["argument --size: must be an integer >= 1"]


@case("pathology-patches-slide-mpp-negative")
def _(tmp_path, ctx):
    return _patches(ctx, tmp_path, options=("--slide-mpp", "-1")), ["argument --slide-mpp: must be a number > 0"]


@case("pathology-patches-mpp-csv-wrong-header")
def _(tmp_path, ctx):
    table = tmp_path / "mpp.csv"
    table.write_text("name,resolution\nsmall,0.5\n")
    return _patches(ctx, tmp_path, options=("--mpp-csv", str(table))), [
        f"mpp table {table}: expected a header with an id column", "['name', 'resolution']"]


@case("pathology-patches-mpp-csv-not-a-number")
def _(tmp_path, ctx):
    table = tmp_path / "mpp.csv"
    table.write_text("slide_id,mpp\nsmall,half\n")
    return _patches(ctx, tmp_path, options=("--mpp-csv", str(table))), [
        f"{table}:2: mpp 'half' of 'small' is not a positive number"]


@case("pathology-patches-same-name-in-two-folders")
def _(tmp_path, ctx):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(ctx.shared / "pathology" / "small.svs", tmp_path / folder / "slide.svs")
    return _patches(ctx, tmp_path, tmp_path / "a", tmp_path / "b"), [
        str(tmp_path / "a" / "slide.svs"), str(tmp_path / "b" / "slide.svs"), "would both be written as 'slide'"]


@case("pathology-patches-same-stem-two-suffixes")
def _(tmp_path, ctx):
    for name in ("x.svs", "x.tiff"):
        shutil.copy(ctx.shared / "pathology" / "small.svs", tmp_path / name)
    return _patches(ctx, tmp_path, tmp_path / "x.svs", tmp_path / "x.tiff"), [
        str(tmp_path / "x.svs"), str(tmp_path / "x.tiff"), "would both be written as 'x'"]


@case("pathology-patches-broken-slide")
def _(tmp_path, ctx):
    broken = ctx.shared / "pathology" / "broken.svs"
    return _patches(ctx, tmp_path, broken), [
        "pathology/patches wrote no patches from 1 slide", f"unreadable_slide: 1 (e.g. cannot open slide {broken}"]


@case("pathology-patches-folder-of-broken-slides")
def _(tmp_path, ctx):
    folder = tmp_path / "slides"
    folder.mkdir()
    for name in ("one.svs", "two.svs"):
        shutil.copy(ctx.shared / "pathology" / "broken.svs", folder / name)
    return _patches(ctx, tmp_path, folder), [
        "wrote no patches from 2 slides", f"unreadable_slide: 2 (e.g. cannot open slide {folder / 'one.svs'}"]


@case("pathology-patches-no-patch-fits")
def _(tmp_path, ctx):
    small = ctx.shared / "pathology" / "small.svs"  # 16 x 16 pixels
    return _patches(ctx, tmp_path), ["wrote no patches from 1 slide", f"no_patch: 1 (e.g. {small}: no 224-px patch"]


@case("pathology-pathgen-no-slide-found")
def _(tmp_path, ctx):
    records = tmp_path / "pathgen.json"
    records.write_text('[{"wsi_id": "TCGA-XX-0001-01Z-00-DX1", "position": [0, 0], "caption": "Tumour."}]')
    return ["prepare", "pathology", "pathgen", "--records", str(records), "--slides-dir",
            str(ctx.shared / "pathology"), "--out", str(tmp_path / "o"), "--no-progress"], [
        f"pathology/pathgen wrote no patches from 1 record of {records}",
        "missing_slide: 1 (e.g. no slide TCGA-XX-0001-01Z-00-DX1.svs"]


def _eval_on_a_missing_folder(tmp_path: Path, suite: str) -> list[str]:
    return ["eval", "--model", "dc-test-vit", "--suite", suite, "--data", str(tmp_path / "nonexistent"),
            "--out", str(tmp_path / "r.json")]


@case("pathology-eval-nct-crc-missing-data")
def _(tmp_path, ctx):
    return _eval_on_a_missing_folder(tmp_path, "pathology/nct_crc"), [
        f"patch folder {tmp_path / 'nonexistent'} does not exist", "one folder per class"]


@case("pathology-eval-pcam-missing-data")
def _(tmp_path, ctx):
    return _eval_on_a_missing_folder(tmp_path, "pathology/pcam"), [
        f"PatchCamelyon folder {tmp_path / 'nonexistent'} does not exist", "camelyonpatch_level_2_split_"]


@case("pathology-eval-slides-missing-data")
def _(tmp_path, ctx):
    return _eval_on_a_missing_folder(tmp_path, "pathology/slides"), [
        f"pathology/slides: dataset not found at {tmp_path / 'nonexistent'}", "slides.csv"]


# =============================================================================== surgery
def _clips(tmp_path: Path, *videos: Path, options: tuple[str, ...] = ()) -> list[str]:
    """``prepare surgery clips`` of ``videos`` into ``tmp_path/o``."""
    return ["prepare", "surgery", "clips", "--videos", *map(str, videos), "--out", str(tmp_path / "o"),
            "--no-progress", *options]


def _cockatoo(ctx: Context, folder: Path, name: str = "cockatoo.mp4", keep: int | None = None) -> Path:
    """A copy of the shared real video in ``folder`` (its first ``keep`` bytes only: undecodable)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = (ctx.shared / "video" / "cockatoo.mp4").read_bytes()
    (folder / name).write_bytes(data if keep is None else data[:keep])
    return folder / name


@case("surgery-clips-levels-csv-wrong-header")
def _(tmp_path, ctx):
    levels = tmp_path / "levels.csv"
    levels.write_text("video,begin,finish,level,caption\ncockatoo,0,5,task,a bird on a branch\n")
    return _clips(tmp_path, ctx.shared / "video" / "cockatoo.mp4", options=("--levels", str(levels))), [
        f"{levels}: level table lacks column(s) video_id, start, end, text"]


@case("surgery-clips-levels-json-wrong-shape")
def _(tmp_path, ctx):
    levels = tmp_path / "levels.json"
    levels.write_text('{"cockatoo": {"start": 0, "end": 5, "level": "task", "text": "a bird"}}')
    return _clips(tmp_path, ctx.shared / "video" / "cockatoo.mp4", options=("--levels", str(levels))), [
        f"{levels}: video 'cockatoo' must map to a list of spans, got dict"]


@case("surgery-clips-levels-not-sqlite")
def _(tmp_path, ctx):
    levels = tmp_path / "surglavi.db"
    levels.write_text("video_id,start,end,level,text\n" * 50)
    return _clips(tmp_path, ctx.shared / "video" / "cockatoo.mp4", options=("--levels", str(levels))), [
        f"{levels}: not an SQLite database"]


@case("surgery-clips-malformed-transcript")
def _(tmp_path, ctx):
    video = _cockatoo(ctx, tmp_path / "v")
    (tmp_path / "v" / "cockatoo.srt").write_text("1\n00:00:01,000 -> 00:00:04,000\nThe bird turns its head.\n")
    return _clips(tmp_path, video), [
        "surgery/clips wrote no clip-caption pairs from 1 video",
        f"bad_transcript: 1 (e.g. {tmp_path / 'v' / 'cockatoo.srt'}:1: expected a cue number and a timing line"]


@case("surgery-clips-corrupt-video")
def _(tmp_path, ctx):
    video = _cockatoo(ctx, tmp_path / "v", keep=4000)
    (tmp_path / "v" / "cockatoo.srt").write_text("1\n00:00:01,000 --> 00:00:06,000\nThe bird turns its head.\n")
    return _clips(tmp_path, video), [
        "surgery/clips wrote no clip-caption pairs from 1 video", f"decode_error: 1 (e.g. {video}: "]


@case("surgery-clips-every-video-undecodable")
def _(tmp_path, ctx):
    for name in ("one", "two"):
        _cockatoo(ctx, tmp_path / "v", f"{name}.mp4", keep=4000)
        (tmp_path / "v" / f"{name}.srt").write_text("1\n00:00:01,000 --> 00:00:06,000\nThe bird turns its head.\n")
    return _clips(tmp_path, tmp_path / "v"), [
        "surgery/clips wrote no clip-caption pairs from 2 videos (2 skipped",
        f"decode_error: 2 (e.g. {tmp_path / 'v' / 'one.mp4'}: "]


@case("surgery-transcribe-every-video-fails")
def _(tmp_path, ctx):
    video = _cockatoo(ctx, tmp_path / "v")
    return ["prepare", "surgery", "transcribe", "--videos", str(video), "--out", str(tmp_path / "o"),
            "--transcriber", "transcript-file", "--no-progress"], [
        "surgery/transcribe wrote no transcripts from 1 video", f"no_transcript: 1 (e.g. {video}: no transcript"]


@case("surgery-eval-cholec80-phase-missing-data")
def _(tmp_path, ctx):
    return _eval_on_a_missing_folder(tmp_path, "surgery/cholec80_phase"), [
        f"Cholec80 not found: {tmp_path / 'nonexistent'} is not a folder", "phase_annotations/"]


@case("surgery-eval-cholec80-tool-missing-data")
def _(tmp_path, ctx):
    return _eval_on_a_missing_folder(tmp_path, "surgery/cholec80_tool"), [
        f"Cholec80 not found: {tmp_path / 'nonexistent'} is not a folder", "tool_annotations/"]


@case("surgery-eval-autolaparo-phase-missing-data")
def _(tmp_path, ctx):
    return _eval_on_a_missing_folder(tmp_path, "surgery/autolaparo_phase"), [
        f"AutoLaparo not found: {tmp_path / 'nonexistent'} is not a folder", "labels/label_NN.txt"]


@case("surgery-eval-retrieval-missing-data")
def _(tmp_path, ctx):
    return _eval_on_a_missing_folder(tmp_path, "surgery/retrieval"), [
        f"surgery/retrieval: dataset not found at {tmp_path / 'nonexistent'}", "prepare surgery clips"]


# ==== remote_sensing: captions
@case("rs-captions-json-in-the-wrong-layout")
def _(tmp_path, ctx):
    root = tmp_path / "RSICD"
    (root / "RSICD_images").mkdir(parents=True)
    caption_file = root / "dataset_rsicd.json"  # COCO captions where a Karpathy file belongs
    caption_file.write_text('{"images": [{"id": 1, "file_name": "airport_1.jpg"}], "annotations": []}')
    return ["prepare", "remote_sensing", "captions", "--out", str(tmp_path / "o"), "--data", str(root),
            "--no-progress"], [f"{caption_file}: images[0].filename is missing", "Karpathy format"]


@case("rs-captions-missing-dataset-folder")
def _(tmp_path, ctx):
    return ["prepare", "remote_sensing", "captions", "--out", str(tmp_path / "o"), "--data",
            str(tmp_path / "nowhere"), "--no-progress"], [
        f"{tmp_path / 'nowhere'} is not a folder", "RSICD: dataset_rsicd.json", "RSITMD: dataset_RSITMD.json"]


@case("rs-translate-unknown-language")
def _(tmp_path, ctx):
    return ["prepare", "remote_sensing", "translate", "--out", str(tmp_path / "o"), "--shards", str(tmp_path),
            "--languages", "pt", "xx"], ["--languages", "must be one of pt, es, fr, de, nl, it, zh, ko, ru; got 'xx'"]


# ==== remote_sensing: evals
@case("rs-eval-scenes-missing-data")
def _(tmp_path, ctx):
    return _eval_on_a_missing_folder(tmp_path, "remote_sensing/scenes"), [
        f"scene dataset not found: {tmp_path / 'nonexistent'} is not a folder", "NWPU-RESISC45/", "WHU-RS19/"]


@case("rs-eval-scenes-without-data")
def _(tmp_path, ctx):
    return ["eval", "--model", "dc-test-vit", "--suite", "remote_sensing/scenes", "--out", str(tmp_path / "r.json")], [
        "remote_sensing/scenes needs --data", "EuroSAT_RGB/"]


@case("rs-eval-scenes-misnamed-class-folder")
def _(tmp_path, ctx):
    from domainclip.domains.remote_sensing.labels import DATASET_CLASSES

    for folder in DATASET_CLASSES["aid"]:
        (tmp_path / "AID" / folder.replace("StorageTanks", "Storagetanks")).mkdir(parents=True)
    return ["eval", "--model", "dc-test-vit", "--suite", "remote_sensing/scenes", "--data", str(tmp_path),
            "--out", str(tmp_path / "r.json")], [
        f"AID at {tmp_path / 'AID'} lacks class folder(s) StorageTanks", "did you mean 'StorageTanks'?"]


@case("rs-eval-scenes-class-folder-without-images")
def _(tmp_path, ctx):
    for folder in ("forest", "lake"):
        (tmp_path / "scenes" / folder).mkdir(parents=True)
    (tmp_path / "scenes" / "forest" / "forest_1.jpg").write_bytes(b"never read")
    (tmp_path / "scenes" / "lake" / "notes.txt").write_text("not an image")
    return ["eval", "--model", "dc-test-vit", "--suite", "remote_sensing/scenes", "--data", str(tmp_path / "scenes"),
            "--out", str(tmp_path / "r.json")], ["Found no valid file for the classes lake", ".jpg/.jpeg"]


@case("rs-eval-retrieval-missing-data")
def _(tmp_path, ctx):
    return _eval_on_a_missing_folder(tmp_path, "remote_sensing/retrieval"), [
        f"remote_sensing/retrieval: dataset not found at {tmp_path / 'nonexistent'}", "captions by language"]


@case("rs-eval-retrieval-shards-without-captions")
def _(tmp_path, ctx):
    import numpy as np

    from domainclip.core.data.writer import ShardWriter

    with ShardWriter(tmp_path / "heldout", image_format="png") as writer:
        writer.write({"__key__": "scene-0", "image": np.zeros((8, 8, 3), np.uint8)})
    return ["eval", "--model", "dc-test-vit", "--suite", "remote_sensing/retrieval", "--data",
            str(tmp_path / "heldout"), "--out", str(tmp_path / "r.json")], [
        f"remote_sensing/retrieval: unusable samples in the held-out shards under {tmp_path / 'heldout'}",
        "missing_key:text: 1"]


# ==== remote_sensing: imagery
def _chips(tmp_path: Path, *scenes: Path | str, options: tuple[str, ...] = ()) -> list[str]:
    """``prepare remote_sensing chips`` of ``scenes`` into ``tmp_path/o``."""
    return ["prepare", "remote_sensing", "chips", "--scenes", *map(str, scenes), "--out", str(tmp_path / "o"),
            "--no-progress", *options]


@case("rs-chips-not-a-raster")
def _(tmp_path, ctx):
    scene = tmp_path / "scene.tif"
    scene.write_text("not a GeoTIFF")
    return _chips(tmp_path, scene), ["remote_sensing/chips wrote no chips from 1 scene: unreadable: 1",
                                     f"{scene} is not a raster GDAL can read"]


@case("rs-chips-wrong-band-index")
def _(tmp_path, ctx):
    scene = ctx.shared / "remote_sensing" / "RGB.byte.tif"
    return _chips(tmp_path, scene, options=("--bands", "4", "3", "2")), [
        "bad_band: 1", f"{scene} has no band 4: it has 3 bands (numbered 1 to 3)"]


@case("rs-chips-all-nodata-scene")
def _(tmp_path, ctx):
    import numpy as np

    from domainclip.domains.remote_sensing.raster import write_geotiff

    scene = write_geotiff(tmp_path / "empty.tif", np.zeros((3, 64, 64), np.uint16), crs="EPSG:32633",
                          transform=(10, 0, 500000, 0, -10, 6000000), nodata=0)
    return _chips(tmp_path, scene, options=("--size", "32")), [
        "all_nodata: 1", f"{scene}: every pixel of bands [1, 2, 3] is nodata"]


@case("rs-chips-missing-scene")
def _(tmp_path, ctx):
    return _chips(tmp_path, tmp_path / "absent.tif"), [f"scene {tmp_path / 'absent.tif'} does not exist"]


@case("rs-chips-stretch-out-of-order")
def _(tmp_path, ctx):
    scene = ctx.shared / "remote_sensing" / "RGB.byte.tif"
    return _chips(tmp_path, scene, options=("--stretch", "98", "2")), [
        "stretch: the lower percentile must be below the upper one; got [98.0, 2.0]"]


# ==== multiview: import
@case("mv-import-metadata-in-the-wrong-layout")
def _(tmp_path, ctx):
    source = tmp_path / "MVCap"
    source.mkdir()
    metadata = source / "metadata.json"  # an object of lists where MVCap has one record per image
    metadata.write_text('{"path": ["./views/a/000.png"], "caption": ["a chair"], "obj_id": [1], "img_id": [100]}')
    return ["prepare", "multiview", "import", "--out", str(tmp_path / "o"), "--source", str(source),
            "--no-progress"], [f"{metadata}: found an object with keys caption, img_id, obj_id, path",
                               "a JSON list of {\"path\""]


@case("mv-import-mvimgnet-folder-without-frames")
def _(tmp_path, ctx):
    (tmp_path / "mvimgnet" / "17" / "0000251e" / "sparse" / "0").mkdir(parents=True)
    return ["prepare", "multiview", "import", "--out", str(tmp_path / "o"), "--source", str(tmp_path / "mvimgnet"),
            "--layout", "mvimgnet", "--no-progress"], [
        f"MVImgNet not found at {tmp_path / 'mvimgnet'}: no object folder with images/",
        "<class_label>/<instance_id>/images/*.jpg"]


# ==== eval: suite options
@case("eval-option-the-suite-does-not-take")
def _(tmp_path, ctx):
    return ["eval", "--model", "dc-test-vit", "--suite", "multiview/viewpoint", "--out", str(tmp_path / "e"),
            "--option", "prompt=single"], ["--suite multiview/viewpoint --option", "'prompt'", "prompts"]


@case("eval-option-without-a-value")
def _(tmp_path, ctx):
    return ["eval", "--model", "dc-test-vit", "--suite", "multiview/viewpoint", "--out", str(tmp_path / "e"),
            "--option", "prompts"], ["--option 'prompts': expected KEY=VALUE"]


@case("eval-option-of-the-wrong-type")
def _(tmp_path, ctx):
    return ["eval", "--model", "dc-test-vit", "--suite", "multiview/viewpoint", "--out", str(tmp_path / "e"),
            "--option", "azimuth_bins=many"], ["azimuth_bins"]


# ==== multiview: render
@case("mv-render-mesh-whose-texture-is-missing")
def _(tmp_path, ctx):
    import shutil

    meshes = tmp_path / "meshes" / "bottle"
    meshes.mkdir(parents=True)
    for name in ("fuze.obj", "fuze.obj.mtl"):  # the real mesh, without its "fuze uv.jpg"
        shutil.copy(ctx.shared / "multiview" / name, meshes / name)
    return ["prepare", "multiview", "render", "--out", str(tmp_path / "o"), "--meshes", str(meshes / "fuze.obj"),
            "--views", "1", "--size", "16", "--no-progress"], [
        "multiview/render wrote no objects from 1 meshes", "missing_texture: 1", "fuze uv.jpg"]


@case("mv-render-mesh-without-faces")
def _(tmp_path, ctx):
    (tmp_path / "m" / "cloud").mkdir(parents=True)
    cloud = tmp_path / "m" / "cloud" / "points.obj"
    cloud.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    return ["prepare", "multiview", "render", "--out", str(tmp_path / "o"), "--meshes", str(cloud),
            "--views", "1", "--size", "16", "--no-progress"], ["no_faces: 1", str(cloud)]


# =============================================================================== the test
@pytest.mark.parametrize("name", sorted(CASES))
def test_user_mistake_is_one_line_and_exit_2(name, tmp_path, context, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # commands that default to ./runs write here, never into the checkout
    argv, expected = CASES[name](tmp_path, context)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse refuses a flag value: its usage line, then the one error line
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2, f"exit {code}; stderr: {err[-2000:]}"
    errors = [line for line in err.splitlines() if line.startswith("domainclip") and ": error: " in line]
    assert len(errors) == 1, err[-2000:]  # progress bars and warnings may come before it
    assert err.splitlines()[-1] == errors[0], err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    for text in expected:
        assert text in errors[0], (text, errors[0])
