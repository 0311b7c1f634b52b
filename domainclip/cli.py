"""The ``domainclip`` command: domains | recipes | prepare | train | eval | compare | export | zoo | demo.

User mistakes (an unknown name, a bad recipe, a missing file, a missing extra) end with one clear
line on stderr and exit code 2; only bugs show a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from domainclip import __version__

__all__ = ["main"]

EXIT_USER_ERROR = 2


def _user_error_message(error: BaseException) -> str | None:
    """One line for a user error, or ``None`` for a bug, which keeps its traceback.

    User errors are :class:`DomainClipError` and machine problems such as a full disk or a
    read-only folder.
    """
    from domainclip.core.errors import DomainClipError, is_environment_error

    if isinstance(error, DomainClipError):
        text = str(error)
    elif is_environment_error(error) or isinstance(error, FileNotFoundError):
        assert isinstance(error, OSError)
        where = f": {error.filename}" if error.filename else ""
        text = f"{error.strerror or error}{where}" if error.strerror else str(error)
    else:
        return None
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(error).__name__


# ---------------------------------------------------------------------------------------------
# verbs


def cmd_domains(args: argparse.Namespace) -> int:
    """List the domains: pip extra, whether its dependencies are installed, papers and what it provides."""
    from domainclip.core.plugins import get_domain, list_domains, missing_requirements

    for name in list_domains():
        spec = get_domain(name)
        missing = missing_requirements(spec)
        state = f"missing {', '.join(missing)}: " if missing else ""
        print(f'{name}  ({state}pip install "domainclip[{spec.extra}]")')
        print(f"  {spec.description}")
        for label, names in (
            ("prepare", spec.prepare),
            ("eval", spec.eval_suites),
            ("datasets", spec.datasets),
            ("tasks", spec.tasks),
            ("papers", spec.papers),
        ):
            if names:
                print(f"  {label + ':':<10}{', '.join(names) if label != 'papers' else names[0]}")
                if label == "papers":
                    for paper in names[1:]:
                        print(f"  {'':<10}{paper}")
        if spec.demo:
            print(f"  {'demo:':<10}domainclip demo --domain {name}  ({spec.demo})")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    """List the shipped recipes with their description."""
    from domainclip.core.plugins import UnknownNameError, list_domains
    from domainclip.core.recipe import load_recipe
    from domainclip.core.resources import list_recipes, recipe_path

    with_recipes = sorted({name.split("/")[0] for name in list_recipes()})
    if args.domain is not None and args.domain not in with_recipes:
        known = sorted(set(with_recipes) | set(list_domains()))
        if args.domain in known:
            what = f"domain with recipes (domain {args.domain!r} ships none)"
            raise UnknownNameError(what, args.domain, with_recipes)
        raise UnknownNameError("domain", args.domain, known)
    for name in list_recipes(args.domain):
        if args.paths:
            print(recipe_path(name))
            continue
        recipe = load_recipe(name)
        print(f"{name:<40}{recipe.model.name:<22}{recipe.train.steps:>8} steps  {recipe.description}")
    return 0


def cmd_prepare(args: argparse.Namespace, rest: list[str]) -> int:
    """Run ``domainclip prepare DOMAIN COMMAND [options]``."""
    from domainclip.core.prepare import list_prepare_commands, parse_prepare_args, run_prepare

    if args.domain is None or args.command is None:
        domain = args.domain or "core"
        print(f"usage: domainclip prepare DOMAIN COMMAND [options]; commands of {domain}: "
              f"{', '.join(list_prepare_commands(domain))}")
        return 0 if args.domain else EXIT_USER_ERROR
    command, options, overwrite = parse_prepare_args(args.domain, args.command, rest)
    summary = run_prepare(args.domain, args.command, command, options, overwrite=overwrite)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Validate a recipe and train it (``torchrun ... -m domainclip train`` for several GPUs)."""
    from domainclip.core.engine.distributed import cleanup
    from domainclip.core.engine.train import train
    from domainclip.core.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.set)
    out = Path(args.out) if args.out else Path("runs") / recipe.domain / Path(args.recipe).stem
    try:
        result = train(recipe, out, resume=args.resume, overwrite=args.overwrite)
    finally:
        cleanup()
    print(f"run folder: {result.run_dir}  (steps: {result.steps}, final loss: {result.final_loss:.4f})")
    if result.eval_results:
        from domainclip.core.eval.report import format_markdown_table

        print(format_markdown_table(result.eval_results))
    return 0


def _suite_options(suite: Any, name: str, pairs: list[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs as the suite's typed options (values read as YAML, as in a recipe)."""
    import yaml

    from domainclip.core.checks import SUITE_ENGINE_ARGS
    from domainclip.core.errors import InputError
    from domainclip.core.options import check_options

    raw: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--option {pair!r}: expected KEY=VALUE (e.g. --option prompts=ensemble)")
        try:
            raw[key.strip()] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            raise InputError(f"--option {pair!r}: the value is not valid YAML: {' '.join(str(e).split())}") from e
    return check_options(suite, raw, where=f"--suite {name} --option", skip=SUITE_ENGINE_ARGS, require=False)


def _eval_options(args: argparse.Namespace) -> dict[str, Any]:
    """Check the settings ``eval`` and ``compare`` share (batch size, device, suite) and read the suite options."""
    from domainclip.core.errors import InputError
    from domainclip.core.eval.suites import get_suite
    from domainclip.core.models.loading import check_device

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be a positive integer, got {args.batch_size}")
    check_device(args.device)
    suite = get_suite(args.suite)
    return _suite_options(suite, args.suite, args.option or [])


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a model (run folder, hub folder, hub id or registry name) on a suite.

    The plots and the suite's ``results.json`` go to a folder (``--out`` itself, or ``<stem>_files``
    beside a ``.json`` ``--out``) that the command owns while it runs (:class:`OutputFolder`: locked,
    a non-empty folder refused unless ``--overwrite``, and everything it created removed when it
    fails), so a ``.json`` ``--out`` is written only when the suite finished. Both results files
    record the model spec, what it resolved to and the sha256 of its weights; a registry name
    (random weights, seeded) gets a one-line warning.
    """
    from domainclip.core.errors import OutputExistsError
    from domainclip.core.eval.compare import evaluate_model, random_weights_warning
    from domainclip.core.eval.report import format_markdown_table, write_results
    from domainclip.core.models.loading import load_model
    from domainclip.core.outputs import OutputFolder

    options = _eval_options(args)
    out = Path(args.out)
    as_json = out.suffix == ".json"
    out_dir = out.with_name(out.stem + "_files") if as_json else out
    data = Path(args.data) if args.data else None
    settings = {"model": args.model, "suite": args.suite, "data": data, "device": args.device,
                "batch_size": args.batch_size, "options": options}
    with OutputFolder(out_dir, kind="eval", command="eval", args=settings, overwrite=args.overwrite):
        if as_json and (out.exists() or out.is_symlink()) and not args.overwrite:
            raise OutputExistsError(f"results file {out} already exists; pass --overwrite to replace it, or choose "
                                    "another --out")
        model, preprocess, tokenizer = load_model(args.model, device=args.device)
        random_weights_warning("eval", args.model, model.domainclip_source)
        results, extra = evaluate_model(  # writes out_dir/results.json with the model's source record
            model, tokenizer, preprocess, args.suite, data=data, out_dir=out_dir, device=args.device,
            batch_size=args.batch_size, options=options,
        )
        if as_json:
            try:
                write_results(results, out, extra=extra)
            except BaseException:
                out.with_suffix(".md").unlink(missing_ok=True)
                out.unlink(missing_ok=True)
                raise
    print(format_markdown_table(results))
    print(f"results: {out if as_json else out_dir / 'results.json'}  plots: {out_dir}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Evaluate several models on one suite with the same data, options and prompts, and compare them.

    Writes ``results.md``, ``results.csv``, ``results.json``, one bar chart per metric (``plots/``) and
    each model's own suite output (``models/<name>/``) into ``--out``; embeddings are cached per model
    in ``--out/cache`` so a rerun with one more model computes only that model's
    (:mod:`domainclip.core.eval.compare`).
    """
    from domainclip.core.eval.compare import compare_models
    from domainclip.core.eval.report import format_markdown_table

    options = _eval_options(args)
    payload = compare_models(
        args.models, args.suite, Path(args.out), data=Path(args.data) if args.data else None, options=options,
        prompt_sensitivity=args.prompt_sensitivity, device=args.device, batch_size=args.batch_size,
        overwrite=args.overwrite,
    )
    for row in payload["models"]:
        print(f"## {row['name']}\n{format_markdown_table(row['results'])}")
    print(f"comparison: {Path(args.out) / 'results.md'}  plots: {Path(args.out) / 'plots'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a run's newest checkpoint to an open_clip-loadable hub folder."""
    from domainclip.core.engine.runs import export_run

    folder = export_run(Path(args.run_dir), Path(args.out), overwrite=args.overwrite)
    print(f"exported {args.run_dir} -> {folder}")
    print(f"load it with open_clip.create_model_and_transforms('local-dir:{folder}')")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    """List the published models (``zoo``), print one card (``zoo show NAME``) or fetch files (``zoo fetch NAME``)."""
    from domainclip.core.errors import InputError
    from domainclip.core.plugins import UnknownNameError, list_domains
    from domainclip.core.zoo.cards import listing, render_card
    from domainclip.core.zoo.registry import get_zoo_entry, list_zoo

    if args.action is None:
        if args.domain is not None and args.domain not in list_domains():
            raise UnknownNameError("domain", args.domain, list_domains())
        entries = list_zoo(args.domain)
        print(listing(entries))
        print(f"\n{len(entries)} published model(s); `domainclip zoo show NAME` for one card, "
              "`--model zoo:NAME` to use one")
        return 0
    if not args.name:
        raise InputError(f"domainclip zoo {args.action} needs a model NAME (see `domainclip zoo`)")
    entry = get_zoo_entry(args.name)
    if args.action == "show":
        print(render_card(entry))
        return 0
    from domainclip.core.zoo.fetch import fetch_entry

    folders = fetch_entry(entry, zoo_dir=args.zoo_dir)
    for role, folder in folders.items():
        print(f"zoo:{entry.name} {role}: {folder}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate data, train a quick recipe, evaluate, report and export, offline on CPU."""
    from domainclip.core.demo import run_demo

    run_demo(domain=args.domain, out=Path(args.out) if args.out else None, steps=args.steps, overwrite=args.overwrite,
             overrides=args.set)
    return 0


# ---------------------------------------------------------------------------------------------
# parser


def build_parser() -> argparse.ArgumentParser:
    """The ``domainclip`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="domainclip", description="Train, evaluate and publish domain-specialised CLIP models."
    )
    parser.add_argument("--version", action="version", version=f"domainclip {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")

    p = sub.add_parser("domains", help="list domains and what they provide")
    p.set_defaults(func=cmd_domains)

    p = sub.add_parser("recipes", help="list shipped recipes")
    p.add_argument("domain", nargs="?", help="only this domain's recipes")
    p.add_argument("--paths", action="store_true", help="print file paths")
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser(
        "prepare", help="turn raw domain data into shards",
        description="domainclip prepare DOMAIN COMMAND [options]; `domainclip prepare DOMAIN` lists commands",
    )
    p.add_argument("domain", nargs="?", help="domain (or 'core')")
    p.add_argument("command", nargs="?", help="prepare command of that domain")
    p.set_defaults(func=cmd_prepare, takes_rest=True)

    p = sub.add_parser("train", help="train a recipe")
    p.add_argument("recipe", help="'<domain>/<name>' of a shipped recipe or a path to a YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    p.add_argument("--out", help="run folder (default runs/<domain>/<recipe>)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run domainclip wrote into --out before (files it did not write stay)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a model on a suite")
    p.add_argument("--model", required=True,
                   help="zoo:NAME (see `domainclip zoo`), hub folder, hf-hub:org/name@rev, run folder or model name")
    p.add_argument("--suite", required=True, help="'core/<suite>' or '<domain>/<suite>'")
    p.add_argument("--data", help="dataset folder the suite reads")
    p.add_argument("--out", required=True, help="results.json path (plots beside it) or a folder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a suite option, as in a recipe's eval.options (repeatable; the value is read as YAML: "
                        "--option prompts=ensemble --option baseline=runs/before --option 'ks=[1, 5]')")
    p.add_argument("--overwrite", action="store_true", help="replace the results of an earlier eval in --out")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("compare", help="evaluate several models on one suite and compare them")
    p.add_argument("--models", nargs="*", required=True, metavar="MODEL",
                   help="run folders, hub folders, hf-hub:org/name@rev, zoo:NAME or model names (the table's rows)")
    p.add_argument("--suite", required=True, help="'core/<suite>' or '<domain>/<suite>'")
    p.add_argument("--data", help="dataset folder the suite reads")
    p.add_argument("--out", required=True, help="comparison folder (rerun into it to add models: cached "
                                                "embeddings of the others are reused)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a suite option for every model, as in `domainclip eval` (repeatable)")
    p.add_argument("--prompt-sensitivity", action="store_true",
                   help="also run every template set the suite declares; report mean, std and min-max per model")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier comparison in --out with other settings (its cache too)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export", help="export a run to an open_clip hub folder")
    p.add_argument("run_dir", help="a run folder written by `domainclip train`")
    p.add_argument("--out", required=True, help="hub folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export (a model folder) in --out")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "zoo", help="published domain models: list, show a card, fetch",
        description="domainclip zoo [--domain D] | zoo show NAME | zoo fetch NAME [--zoo-dir DIR]; "
                    "use one anywhere with --model zoo:NAME",
    )
    p.add_argument("action", nargs="?", choices=["show", "fetch"], help="show a card, or fetch and check the files")
    p.add_argument("name", nargs="?", help="the model's zoo name")
    p.add_argument("--domain", help="list only this domain's models")
    p.add_argument("--zoo-dir", help="a folder of files downloaded by hand (default: DOMAINCLIP_ZOO_DIR)")
    p.set_defaults(func=cmd_zoo)

    p = sub.add_parser("demo", help="offline end-to-end demo on CPU")
    p.add_argument("--domain", help="domain whose demo to run (default: math when installed, else core)")
    p.add_argument("--out", help="run folder (default runs/demo-<domain>)")
    p.add_argument("--steps", type=int, help="override the demo recipe's step count")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the demo recipe (e.g. data.prepare.0.args.n=2000)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a demo domainclip wrote into --out before (files it did not write stay)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``domainclip`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["prepare"]:
        # prepare's options belong to the chosen command: parse DOMAIN COMMAND, pass the rest on
        positional = [a for a in argv[1:3] if not a.startswith("-")]
        head, rest = ["prepare", *positional], argv[1 + len(positional):]
        if len(positional) < 2 and any(a in ("-h", "--help") for a in rest):
            head.append("--help")
        args = parser.parse_args(head)
        handler: Callable[[], int] = lambda: cmd_prepare(args, rest)  # noqa: E731
    else:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USER_ERROR
        handler = lambda: args.func(args)  # noqa: E731
    try:
        return handler()
    except KeyboardInterrupt:
        print("domainclip: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        message = _user_error_message(e)
        if message is None:
            raise
        print(f"domainclip {argv[0] if argv else ''}: error: {message}", file=sys.stderr)
        return getattr(e, "exit_code", EXIT_USER_ERROR)


if __name__ == "__main__":
    sys.exit(main())
