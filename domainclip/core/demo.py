"""``domainclip demo``: the whole pipeline offline on CPU, in one run folder.

generate data -> train the recipe a domain declares as its demo (``DomainSpec.demo``, its ``quick``
recipe) -> evaluate -> report (markdown, loss curve, confusion matrix, retrieval examples) -> export
an open_clip hub folder. ``domainclip demo --domain X`` runs the demo of any domain that declares
one; without ``--domain`` it is :data:`DEFAULT_DOMAIN`'s, or the core's shapes demo
(``core/quick``) when that domain is not installed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from domainclip.core.errors import InputError

__all__ = ["DEFAULT_DOMAIN", "demo_recipe", "run_demo", "write_run_report"]

#: The domain whose demo ``domainclip demo`` (and ``make demo``) runs when no ``--domain`` is given.
DEFAULT_DOMAIN = "math"


def demo_recipe(domain: str | None = None) -> str:
    """The recipe the demo of ``domain`` runs (default: :data:`DEFAULT_DOMAIN`'s, else ``core/quick``).

    Raises:
        UnknownNameError: ``domain`` is not a known domain.
        InputError: ``domain`` declares no demo.
    """
    from domainclip.core.plugins import get_domain, list_domains

    if domain is None:
        domain = DEFAULT_DOMAIN if DEFAULT_DOMAIN in list_domains() else "core"
    if domain == "core":
        return "core/quick"
    spec = get_domain(domain)
    if spec.demo is None:
        with_demo = [d for d in list_domains() if get_domain(d).demo]
        raise InputError(f"domain {domain!r} declares no demo; domains with one: {', '.join(['core', *with_demo])}")
    return spec.demo


def write_run_report(run_dir: Path, title: str, results: dict[str, dict[str, float]], hub_dir: Path | None) -> Path:
    """Write ``run_dir/report.md`` with the results table, the loss curve and the eval plots."""
    from domainclip.core.eval.report import format_markdown_table, plot_loss_curve

    run_dir = Path(run_dir)
    loss_png = run_dir / "loss_curve.png"
    plot_loss_curve(run_dir / "log.jsonl", loss_png)
    plots = sorted(p for p in (run_dir / "eval").rglob("*.png"))
    lines = [f"# {title}", "", "## Results", "", format_markdown_table(results), "", "## Training", "",
             f"![loss curve]({loss_png.name})", ""]
    if plots:
        lines += ["## Evaluation plots", ""]
        lines += [f"![{p.stem}]({p.relative_to(run_dir).as_posix()})" for p in plots]
        lines.append("")
    if hub_dir is not None:
        lines += ["## Exported model", "", f"`{hub_dir}` loads in plain open_clip:", "", "```python",
                  "import open_clip",
                  f"model, _, preprocess = open_clip.create_model_and_transforms('local-dir:{hub_dir}')",
                  "```", ""]
    from domainclip.core.io import atomic_write_text

    return atomic_write_text(run_dir / "report.md", "\n".join(lines))


def run_demo(
    domain: str | None = None,
    out: Path | None = None,
    steps: int | None = None,
    *,
    overwrite: bool = False,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Run the demo of ``domain`` (see :func:`demo_recipe`) and print where it all is.

    Args:
        domain: the domain whose demo recipe to run.
        out: the run folder (default ``runs/demo-<domain>``); it must be new or empty.
        steps: train this many steps instead of the recipe's.
        overwrite: replace an earlier demo or run that domainclip wrote into ``out`` (files it did
            not write are left alone).
        overrides: ``key=value`` recipe overrides, as ``--set`` gives them (e.g. a smaller
            ``data.prepare.0.args.n``).

    Raises:
        InputError: ``steps`` is not positive (checked before anything is written).
        OutputExistsError: ``out`` holds files and ``overwrite`` is not given.
    """
    from domainclip.core.engine.runs import export_run
    from domainclip.core.engine.train import train
    from domainclip.core.eval.report import format_markdown_table
    from domainclip.core.outputs import OutputFolder
    from domainclip.core.recipe import load_recipe

    if steps is not None and steps < 1:
        raise InputError(f"--steps must be at least 1, got {steps}")
    name = demo_recipe(domain)
    domain = name.split("/")[0]
    run_dir = Path(out) if out else Path("runs") / f"demo-{domain}"
    sets = [f"data.root={run_dir / 'data'}", *(overrides or [])]
    if steps:
        sets.append(f"train.steps={steps}")
    recipe = load_recipe(name, sets)
    start = time.perf_counter()
    with OutputFolder(
        run_dir, kind="demo", command=f"demo {domain}", args={"steps": recipe.train.steps}, overwrite=overwrite,
        allow_foreign=True,
        hint="pass --overwrite to replace it (files domainclip did not write stay), or choose another --out",
    ):
        print(f"domainclip demo: domain {domain}, recipe {name} ({recipe.train.steps} steps), run folder {run_dir}")
        result = train(recipe, run_dir)
        hub_dir = export_run(run_dir, run_dir / "hub")
        report = write_run_report(run_dir, f"domainclip demo: {name}", result.eval_results, hub_dir)
    minutes = (time.perf_counter() - start) / 60
    print()
    print(format_markdown_table(result.eval_results))
    print()
    print(f"report: {report}")
    print(f"hub folder: {hub_dir}")
    print(f"run folder: {run_dir.resolve()}  ({minutes:.1f} min)")
    return {"run_dir": run_dir, "report": report, "hub_dir": hub_dir, "results": result.eval_results}
