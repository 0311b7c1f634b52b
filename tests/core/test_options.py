"""core.options: one signature gives the flags, the help, the defaults and the recipe checks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated, Literal

import pytest

from domainclip.core.errors import InputError
from domainclip.core.options import (
    Parser,
    PositiveInt,
    Range,
    UnitFloat,
    add_options,
    check_options,
    docstring_args,
    entry_point,
    options_of,
)


def _pair(text: str) -> tuple[int, int]:
    a, _, b = text.partition("x")
    return int(a), int(b)


@entry_point
def command(
    out: Path,
    n: PositiveInt = 10,
    *,
    ratio: UnitFloat = 0.5,
    mode: Literal["fast", "exact"] = "fast",
    names: tuple[str, ...] = ("a",),
    weights: dict[str, float] | None = None,
    size: Annotated[tuple[int, int], Parser(_pair, "WxH")] = (4, 3),
    limit: Annotated[int, Range(2, 8)] | None = None,
    progress: bool = True,
    grid: bool = False,
) -> dict:
    """Do a thing.

    Args:
        out: where it goes.
        n: how many. A second sentence
            that continues here.
        ratio: a share, e.g. 0.5.
        mode: how.
        names: some names.
        weights: name weights.
        size: width and height.
        limit: an optional bound.
        progress: show a progress bar.
        grid: draw a grid.
    """
    return dict(locals())


def test_docstring_args_joins_continuation_lines():
    docs = docstring_args(command)
    assert docs["n"] == "how many. A second sentence that continues here."
    assert list(docs) == ["out", "n", "ratio", "mode", "names", "weights", "size", "limit", "progress", "grid"]


def test_the_command_line_comes_from_the_signature(capsys):
    parser = argparse.ArgumentParser(prog="x")
    add_options(parser, command)
    args = vars(parser.parse_args(["--out", "o", "--n", "3", "--mode", "exact", "--names", "b", "c",
                                   "--weights", "b=1,c=2.5", "--size", "8x6", "--limit", "5", "--no-progress",
                                   "--grid"]))
    assert args == {"out": Path("o"), "n": 3, "ratio": 0.5, "mode": "exact", "names": ["b", "c"],
                    "weights": {"b": 1.0, "c": 2.5}, "size": (8, 6), "limit": 5, "progress": False, "grid": True}
    text = " ".join(parser.format_help().split())
    assert "--n N how many (default: 10)" in text and "--ratio RATIO a share, e.g. 0.5 (default: 0.5)" in text
    assert "--no-progress turn off: show a progress bar" in text and "--size WxH" in text
    for bad, message in ((["--n", "0"], "argument --n: must be an integer >= 1; got 0"),
                         (["--ratio", "1.5"], "argument --ratio: must be a number in [0, 1]; got 1.5"),
                         (["--ratio", "nan"], "must be a finite number"),
                         (["--mode", "slow"], "invalid choice: 'slow'"),
                         (["--limit", "9"], "argument --limit: must be an integer in [2, 8]; got 9"),
                         (["--weights", "b"], "must be KEY=VALUE"),
                         ([], "the following arguments are required: --out")):
        with pytest.raises(SystemExit):
            parser.parse_args(["--out", "o", *bad] if bad else bad)
        assert message in capsys.readouterr().err


def test_recipe_options_are_checked_and_converted():
    where = "r.yaml: data.prepare[0]"
    assert check_options(command, {"out": "o", "n": 2, "names": ["x"], "size": [1, 2], "limit": None},
                         where=where) == {"out": Path("o"), "n": 2, "names": ("x",), "size": (1, 2), "limit": None}
    assert check_options(command, {"out": "o", "size": "5x7"}, where=where)["size"] == (5, 7)
    with pytest.raises(InputError, match=r"r.yaml: data.prepare\[0\]: unknown option 'nn' \(did you mean n\?\)"):
        check_options(command, {"out": "o", "nn": 2}, where=where)
    with pytest.raises(InputError, match=r"data.prepare\[0\].n: must be an integer >= 1; got 0"):
        check_options(command, {"out": "o", "n": 0}, where=where)
    with pytest.raises(InputError, match=r"\.grid: must be true or false; got 'yes'"):
        check_options(command, {"out": "o", "grid": "yes"}, where=where)
    with pytest.raises(InputError, match=r"missing required option\(s\) out"):
        check_options(command, {}, where=where)
    check_options(command, {}, where=where, require=False)


def test_python_calls_are_checked_too():
    result = command("o", 2, names=["p"], limit=3)
    assert result["out"] == Path("o") and result["names"] == ("p",)
    with pytest.raises(InputError, match=r"n must be an integer >= 1; got 0"):
        command("o", 0)
    with pytest.raises(InputError, match=r"mode must be one of fast, exact; got 'slow'"):
        command("o", mode="slow")


def test_an_undocumented_or_unannotated_parameter_breaks_the_contract():
    def undocumented(out: Path, n: int = 1) -> dict:
        """Do.

        Args:
            out: where.
        """

    def unannotated(out, n=1) -> dict:
        """Do.

        Args:
            out: where.
            n: how many.
        """

    with pytest.raises(TypeError, match="'n' is not described"):
        options_of(undocumented)
    with pytest.raises(TypeError, match="'out' has no type annotation"):
        options_of(unannotated)


def test_a_percent_sign_in_the_help_does_not_break_argparse(capsys):
    def stretch(out: Path, low: float = 2.0) -> dict:
        """Stretch.

        Args:
            out: where.
            low: the lower percentile, in % (2% by default).
        """

    parser = argparse.ArgumentParser(prog="x")
    add_options(parser, stretch)
    assert "the lower percentile, in % (2% by default)" in " ".join(parser.format_help().split())
