"""Biomed ETL throughput: figures per second through prepare_figures against a pubmed_parser + PIL loop, same pairs.

Usage::

    python -m bench.bench_bio_etl [--articles 600] [--repeats 3] [--workers 2] [--max-side 1024] [--out FILE.json]

Articles: ``--articles`` generated JATS articles in the local PMC layout (``PMC<id>/PMC<id>.nxml``
plus figure files named by the graphic's href with an extension the XML omits), written by the
plugin's generator (``domainclip.domains.biomed.synthetic.generate_articles``, loose folders only)
when it is installed, else by the test fixture writer (``tests/domains/biomed/data_jats.py``:
three figures an article, a 640 x 480 JPEG photograph, a 720 x 540 PNG and a 1600 x 1200 PNG that
both sides scale down to ``--max-side``).

Sides, interleaved (the order alternates each repeat), wall-clock from start to the last file, with CPU
seconds beside it (this process and its finished worker processes):

* ``domainclip``: ``prepare_figures(out, articles=[folder], workers=--workers)``: safe lxml
  parsing, captions, citing paragraphs, images decoded in full and re-encoded only when they exceed
  ``max_side`` (else stored byte for byte), shards, ``articles.jsonl``, the report; worker start-up
  included;
* ``pubmed_parser_pil``: a loop that parses each article with ``pubmed_parser.parse_pubmed_caption``
  and saves each figure with PIL one by one (``Image.open``, scaled to ``max_side`` with the same
  Lanczos filter when larger, saved as PNG or JPEG quality 95 in its source format, the caption beside
  it as a ``.txt``).

Before timing, the benchmark checks that both sides give the same pairs: the same figure keys
(``PMC<id>_<fig id>`` made safe) and, per key, the same caption text (pubmed_parser's caption is
title and paragraphs without the label, whitespace as in the XML; it is compared after collapsing
whitespace with domainclip's ``title`` and ``paragraphs``). The one allowed difference: figures whose
graphic pubmed_parser does not find (it looks only at the figure's own ``<graphic>`` children, so a
graphic inside ``<alternatives>`` is missed) are pairs domainclip writes and the loop cannot; each
side's figures/s counts its own pairs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, RESULTS_DIR, load_average, machine_info, markdown_table, median, write_result

GOAL = 2.0
SIDES = ("domainclip", "pubmed_parser_pil")


def _fixture_writer() -> Any:
    path = REPO_ROOT / "tests" / "domains" / "biomed" / "data_jats.py"
    spec = importlib.util.spec_from_file_location("bio_data_jats", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bio_data_jats"] = module
    spec.loader.exec_module(module)
    return module


def write_articles(root: Path, n: int) -> str:
    """``n`` loose articles under ``root``; returns which generator wrote them."""
    try:
        from domainclip.domains.biomed.synthetic import generate_articles  # type: ignore[attr-defined]
    except ImportError:
        generate_articles = None
    if generate_articles is not None:
        generate_articles(root / "generated", n, seed=0, progress=False)
        for package in (root / "generated" / "articles").glob("*.*"):
            if package.is_file():  # .tar.gz / .zip packages: the baseline reads loose folders only
                package.unlink()
        shutil.move(root / "generated" / "articles", root / "articles")
        return "domainclip.domains.biomed.synthetic.generate_articles (loose folders)"
    data = _fixture_writer()
    for k in range(n):
        pmc = 7000000 + k
        prefix = f"pone.{pmc:07d}"
        figures = [data.figure(1, prefix, image="jpg", size=(640, 480)), data.figure(2, prefix, size=(720, 540)),
                   data.figure(3, prefix, size=(1600, 1200))]
        data.write_loose(root / "articles", data.ArticleSpec(pmc=pmc, figures=figures))
    return "tests/domains/biomed/data_jats.py (fixture writer)"


def run_domainclip(articles: Path, out: Path, workers: int, max_side: int) -> dict[str, Any]:
    from domainclip.domains.biomed.figures import prepare_figures

    summary = prepare_figures(out, articles=[str(articles)], workers=workers, max_side=max_side, progress=False)
    return {"figures": summary["figures_written"]}


def run_pubmed_parser(articles: Path, out: Path, max_side: int) -> dict[str, Any]:
    import pubmed_parser
    from PIL import Image

    out.mkdir(parents=True)
    count = 0
    no_graphic = []
    for nxml in sorted(articles.rglob("*.nxml")):
        files = {p.name.rsplit(".", 1)[0]: p for p in nxml.parent.iterdir() if p.suffix != ".nxml"}
        for caption in pubmed_parser.parse_pubmed_caption(str(nxml)):
            key = f"PMC{caption['pmc']}_{caption['fig_id']}"
            source = files.get(caption["graphic_ref"])
            if source is None:
                no_graphic.append(key)
                continue
            with Image.open(source) as image:
                kind = image.format
                image.load()
                if max(image.size) > max_side:
                    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
                if kind == "JPEG":
                    image.save(out / f"{key}.jpg", quality=95)
                else:
                    image.save(out / f"{key}.png")
            (out / f"{key}.txt").write_text(caption["fig_caption"], encoding="utf-8")
            count += 1
    return {"figures": count, "no_graphic": no_graphic}


def compare(ours: Path, theirs: Path, no_graphic: list[str]) -> dict[str, Any]:
    """Keys and caption text of both sides' pairs (keys made safe alike: ``.`` -> ``_``)."""
    from domainclip.core.io import safe_key

    mine: dict[str, str] = {}
    for shard in sorted(ours.glob("figures*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name.endswith(".json"):
                    fields = json.loads(tar.extractfile(member).read())
                    text = " ".join([fields["title"] or "", *fields["paragraphs"]]).strip()
                    mine[member.name[: -len(".json")]] = text
    other = {safe_key(p.stem): " ".join(p.read_text(encoding="utf-8").split()) for p in theirs.glob("*.txt")}
    common = mine.keys() & other.keys()
    return {"domainclip_pairs": len(mine), "pubmed_parser_pairs": len(other), "common_keys": len(common),
            "same_caption_text": sum(mine[k] == other[k] for k in common),
            "only_pubmed_parser": sorted(other.keys() - mine.keys()),
            "only_domainclip": sorted(mine.keys() - other.keys()),
            "pubmed_parser_no_graphic": sorted(safe_key(k) for k in no_graphic)}


def _timed(side: str, articles: Path, out: Path, workers: int, max_side: int) -> dict[str, Any]:
    if out.exists():
        shutil.rmtree(out)
    began, cpu = time.perf_counter(), _cpu_seconds()
    if side == "domainclip":
        result = run_domainclip(articles, out, workers, max_side)
    else:
        result = run_pubmed_parser(articles, out, max_side)
    seconds = time.perf_counter() - began
    cpu = _cpu_seconds() - cpu
    return {"figures": result["figures"], "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
            "figures_per_s": result["figures"] / seconds, "figures_per_cpu_s": result["figures"] / cpu}


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes (the worker pool, once shut down)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a markdown table and write the JSON result; returns the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=600, help="generated articles")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved runs per side")
    parser.add_argument("--workers", type=int, default=2, help="prepare_figures worker processes")
    parser.add_argument("--max-side", type=int, default=1024, help="longest side of a stored figure")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "bio_etl.json")
    args = parser.parse_args(argv)

    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-bio-etl-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        generator = write_articles(root, args.articles)
        articles = root / "articles"
        size = sum(p.stat().st_size for p in articles.rglob("*") if p.is_file())
        print(f"wrote {args.articles} articles ({size / 2**20:.0f} MiB) with {generator} in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        run_domainclip(articles, root / "check-ours", args.workers, args.max_side)
        baseline = run_pubmed_parser(articles, root / "check-theirs", args.max_side)
        check = compare(root / "check-ours", root / "check-theirs", baseline["no_graphic"])
        print(f"  {check}", flush=True)
        # the same pairs, except the figures whose graphic pubmed_parser does not find (inside <alternatives>)
        if (check["only_pubmed_parser"] or check["same_caption_text"] != check["common_keys"]
                or check["only_domainclip"] != check["pubmed_parser_no_graphic"]):
            raise RuntimeError(f"the two sides give different pairs: {check}")
        for repeat in range(args.repeats):
            order = SIDES if repeat % 2 == 0 else SIDES[::-1]
            for side in order:
                load = load_average()
                result = _timed(side, articles, root / f"out-{side}", args.workers, args.max_side)
                runs.append({"side": side, "repeat": repeat, "load_before": load, **result})
                print(f"  repeat {repeat} {side:<18} {result['figures']} figures {result['figures_per_s']:7.1f}/s "
                      f"({result['seconds']:.2f} s, {result['cpu_seconds']:.2f} CPU s, load {load})", flush=True)

    def rate(side: str) -> float:
        return median([r["figures_per_s"] for r in runs if r["side"] == side])

    ours, theirs = rate("domainclip"), rate("pubmed_parser_pil")
    ratio = ours / theirs
    cpu_ratio = median([r["figures_per_cpu_s"] for r in runs if r["side"] == "domainclip"]) / median(
        [r["figures_per_cpu_s"] for r in runs if r["side"] == "pubmed_parser_pil"])
    summary = [{
        "benchmark": "bio_etl",
        "measurement": f"{check['domainclip_pairs']} figures from {args.articles} articles, max side "
                       f"{args.max_side}, {args.workers} workers vs a pubmed_parser + PIL loop, figures/s",
        "domainclip": round(ours, 1), "reference": round(theirs, 1), "ratio": round(ratio, 3),
        "cpu_ratio": round(cpu_ratio, 3), "goal": GOAL,
        "met": ratio >= GOAL, "same_pairs": True, "comparison": check,
    }]
    loads = [r["load_before"] for r in runs]
    result = {
        "benchmark": "biomed ETL: prepare_figures vs pubmed_parser.parse_pubmed_caption + PIL, figure-caption pairs",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "generator": generator,
        "summary": summary,
        "load_average_range": [min(loads), max(loads)],
        "runs": runs,
        "machine": machine_info(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(markdown_table(["figures", "workers", "domainclip figures/s", "pubmed_parser + PIL figures/s", "ratio",
                          "per CPU s ratio", f"goal >= {GOAL}"],
                         [[check["domainclip_pairs"], args.workers, ours, theirs, ratio, cpu_ratio,
                           "met" if ratio >= GOAL else "NOT met"]]))
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
