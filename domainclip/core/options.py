"""Typed options: one signature defines a command's flags, help, defaults and recipe checks.

A prepare command, an eval suite's options, a task's sample decoder and a loss are plain typed
functions or classes with a Google-style ``Args:`` docstring. This module reads that one
definition three ways:

- :func:`add_options` adds a command-line flag per parameter (``--image-size``), with the
  parameter's type, default, choices and the first sentence of its docstring entry as help;
- :func:`check_options` checks a recipe's mapping of options (prepare ``args``, ``eval.options``,
  ``data.decoder_args``, ``loss.kwargs``) at load time: an unknown key is named with close matches,
  a value of the wrong type or out of range with the rule it breaks;
- :func:`entry_point` checks every call from Python the same way.

Annotations it understands: ``bool``, ``int``, ``float``, ``str``, ``Path``, ``Literal[...]``
(choices), ``X | None``, ``list[X]`` / ``tuple[X, ...]`` / ``Sequence[X]`` (several values),
``tuple[X, Y]`` (a fixed number), ``dict[str, X]`` (``KEY=VALUE,...`` on the command line), unions,
and ``Annotated[X, Range(...)]`` / ``Annotated[X, Parser(...)]`` for ranges and custom text forms.
The aliases :data:`PositiveInt`, :data:`NonNegativeInt`, :data:`PositiveFloat`,
:data:`NonNegativeFloat` and :data:`UnitFloat` cover the common ranges.
"""

from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import difflib
import functools
import inspect
import math
import numbers
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from domainclip.core.errors import InputError

#: Suite parameters the caller fills (:class:`~domainclip.core.eval.suites.EvalSuite`); the rest are options.
SUITE_ENGINE_ARGS = ("model", "tokenizer", "preprocess", "data", "out_dir", "device", "batch_size")
#: Decoder parameters the engine fills (``make_decoder(preprocess, tokenizer, seed=..., text_choice=...)``,
#: and ``max_image_pixels`` / ``languages`` from ``data.*`` when the decoder takes them).
DECODER_ENGINE_ARGS = ("preprocess", "tokenizer", "seed", "text_choice", "max_image_pixels", "languages")
#: Loss parameters the engine fills from ``loss.local_loss``, ``loss.gather_with_grad`` and the ranks.
LOSS_ENGINE_ARGS = ("local_loss", "gather_with_grad", "rank", "world_size")

__all__ = [
    "NonNegativeFloat",
    "NonNegativeInt",
    "Option",
    "Parser",
    "PositiveFloat",
    "PositiveInt",
    "Range",
    "UnitFloat",
    "add_options",
    "check_options",
    "convert",
    "docstring_args",
    "docstring_summary",
    "entry_point",
    "option_names",
    "options_of",
]


@dataclasses.dataclass(frozen=True)
class Range:
    """``Annotated`` metadata: the interval a number (or each item of a list of numbers) must lie in."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        """Whether ``value`` lies in the interval."""
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


@dataclasses.dataclass(frozen=True)
class Parser:
    """``Annotated`` metadata: how to read the option from a command-line or recipe string.

    Args:
        parse: text -> value; raises ``ValueError`` with the rule the text breaks.
        metavar: the placeholder shown in ``--help`` (``N|MIN-MAX``).
        show: value -> text, for the default shown in ``--help`` (the inverse of ``parse``).
    """

    parse: Callable[[str], Any]
    metavar: str
    show: Callable[[Any], str] | None = None


PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
PositiveFloat = Annotated[float, Range(0, low_open=True)]
NonNegativeFloat = Annotated[float, Range(0)]
UnitFloat = Annotated[float, Range(0, 1)]


# --------------------------------------------------------------------------------------- docstrings
_SECTION = re.compile(r"^\s*(Args|Arguments|Returns|Yields|Raises|Example|Examples|Note|Notes|Attributes):\s*$")


def docstring_args(fn: Callable[..., Any]) -> dict[str, str]:
    """``name -> description`` from the ``Args:`` section of a Google-style docstring (lines joined)."""
    doc = inspect.getdoc(fn) or ""
    out: dict[str, str] = {}
    in_args, indent, current = False, None, None
    for line in doc.splitlines():
        heading = _SECTION.match(line)
        if heading:
            in_args = heading.group(1) in ("Args", "Arguments")
            current = None
            continue
        if not in_args or not line.strip():
            continue
        width = len(line) - len(line.lstrip())
        if indent is None:
            indent = width
        entry = re.match(r"^\s*\*{0,2}(\w+)(?:\s*\(.*?\))?:\s*(.*)$", line)
        if width == indent and entry:
            current = entry.group(1)
            out[current] = entry.group(2).strip()
        elif current is not None and width > indent:
            out[current] = f"{out[current]} {line.strip()}".strip()
        elif width < indent:
            in_args = False
    return out


def docstring_summary(fn: Callable[..., Any]) -> str:
    """The first line of a docstring (the command's one-line help)."""
    doc = inspect.getdoc(fn) or ""
    return doc.strip().splitlines()[0].rstrip(".") if doc.strip() else ""


# --------------------------------------------------------------------------------------- options
@dataclasses.dataclass(frozen=True)
class Option:
    """One parameter of an entry point, as the CLI and the recipe checks see it.

    Args:
        name: the parameter name (``image_size``; the flag is ``--image-size``).
        annotation: its type annotation, ``Annotated`` metadata stripped.
        default: its default (``inspect.Parameter.empty`` when required).
        help: its docstring entry.
        range: the interval numbers must lie in.
        parser: how to read it from text, when not from the type alone.
    """

    name: str
    annotation: Any
    default: Any
    help: str
    range: Range | None = None
    parser: Parser | None = None

    @property
    def required(self) -> bool:
        """Whether the parameter has no default."""
        return self.default is inspect.Parameter.empty

    @property
    def flag(self) -> str:
        """The command-line flag."""
        return "--" + self.name.replace("_", "-")


def _strip(annotation: Any) -> tuple[Any, Range | None, Parser | None]:
    if typing.get_origin(annotation) is Annotated:
        base, *meta = typing.get_args(annotation)
        rng = next((m for m in meta if isinstance(m, Range)), None)
        parser = next((m for m in meta if isinstance(m, Parser)), None)
        return base, rng, parser
    return annotation, None, None


def _target(fn: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(what holds the annotations, what holds the docstring)`` of a function, class or partial."""
    fn = inspect.unwrap(fn)
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isclass(fn):
        return fn.__init__, (fn if docstring_args(fn) else fn.__init__)  # type: ignore[misc]
    return fn, fn


def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    return typing.get_type_hints(_target(fn)[0], include_extras=True)


def options_of(fn: Callable[..., Any], *, skip: Iterable[str] = ()) -> list[Option]:
    """The typed keyword options of ``fn`` (a function or a class), minus ``skip``.

    Raises:
        TypeError: a parameter has no annotation or no ``Args:`` entry (a contract error of the
            entry point, caught by the domain contract test).
    """
    skipped = set(skip)
    hints, docs = _hints(fn), docstring_args(_target(fn)[1])
    out = []
    for p in _parameters(fn):
        if p.name in skipped or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name not in hints:
            raise TypeError(f"{_name(fn)}: parameter {p.name!r} has no type annotation")
        if p.name not in docs:
            raise TypeError(f"{_name(fn)}: parameter {p.name!r} is not described in the docstring's Args:")
        base, rng, parser = _strip(hints[p.name])
        out.append(Option(p.name, base, p.default, docs[p.name], rng, parser))
    return out


def option_names(fn: Callable[..., Any], *, skip: Iterable[str] = ()) -> list[str]:
    """Names of the keyword options of ``fn``; ``None`` members of a ``**kwargs`` signature are not listed."""
    skipped = set(skip)
    return [p.name for p in _parameters(fn) if p.name not in skipped and p.kind not in (p.VAR_POSITIONAL,
                                                                                          p.VAR_KEYWORD)]


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


# --------------------------------------------------------------------------------------- conversion
def _type_text(tp: Any) -> str:
    tp = _strip(tp)[0]
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_text(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (list, tuple, collections.abc.Sequence):
        return "a list"
    if origin in (dict, collections.abc.Mapping):
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", Path: "a path"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(value: Any, tp: Any, rng: Range | None, parser: Parser | None, from_text: bool) -> Any:
    """Convert ``value`` (YAML data, or a command-line string when ``from_text``) to ``tp``; ``ValueError`` if not."""
    if parser is not None and isinstance(value, str):
        return _check_range(parser.parse(value), rng)
    base, inner_rng, inner_parser = _strip(tp)
    if inner_rng or inner_parser:
        return _convert(value, base, inner_rng or rng, inner_parser or parser, from_text)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        errors = []
        for arg in members:
            try:
                return _convert(value, arg, rng, None, from_text)
            except (ValueError, TypeError) as e:
                errors.append(e)
        if len(members) == 1:
            raise errors[0]
        raise ValueError(f"must be {_type_text(tp)}{f' {rng}' if rng else ''}; got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise ValueError(f"must be one of {', '.join(map(str, args))}; got {value!r}")
    if origin in (list, tuple, collections.abc.Sequence):
        items = [value] if isinstance(value, str | int | float | os.PathLike) else value
        if not isinstance(items, list | tuple):
            raise ValueError(f"must be a list; got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise ValueError(f"must be {len(args)} values; got {value!r}")
            return tuple(_convert(v, a, rng, None, from_text) for v, a in zip(items, args))
        item_tp = args[0] if args else Any
        converted = []
        for i, item in enumerate(items):
            try:
                converted.append(_convert(item, item_tp, rng, None, from_text))
            except ValueError as e:
                raise ValueError(f"item {i}: {e}" if len(items) > 1 else str(e)) from None
        return tuple(converted) if origin is tuple else converted
    if origin in (dict, collections.abc.Mapping):
        key_tp, value_tp = args or (str, Any)
        if isinstance(value, str) and from_text:
            pairs = [item.partition("=") for item in value.split(",") if item.strip()]
            if not pairs or any(not sep for _, sep, _ in pairs):
                raise ValueError(f"must be KEY=VALUE,...; got {value!r}")
            value = {k.strip(): v.strip() for k, _, v in pairs}
        if not isinstance(value, Mapping):
            raise ValueError(f"must be a mapping; got {value!r}")
        return {_convert(k, key_tp, None, None, from_text): _convert(v, value_tp, rng, None, from_text)
                for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"must be true or false; got {value!r}")
    if tp is int:
        if isinstance(value, str) and from_text:
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"must be an integer; got {value!r}") from None
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return _check_range(int(value), rng, "an integer")
        raise ValueError(f"must be an integer{f' {rng}' if rng else ''}; got {value!r}")
    if tp is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"must be a number; got {value!r}") from None
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError(f"must be a finite number; got {value!r}")
            return _check_range(float(value), rng, "a number")
        raise ValueError(f"must be a number{f' {rng}' if rng else ''}; got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"must be a string; got {value!r}")
    if tp is Path:
        if isinstance(value, str | os.PathLike) and os.fspath(value):
            return Path(value)
        raise ValueError(f"must be a path; got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ValueError(f"must be {_type_text(tp)}; got {value!r}")


def convert(value: Any, annotation: Any, *, from_text: bool = False) -> Any:
    """Check ``value`` against a type annotation and convert it (``"5e-4"`` to a float, a list to a tuple, ...).

    Args:
        value: YAML data, a Python value, or (``from_text``) a command-line string.
        annotation: the type, with any ``Annotated`` :class:`Range` / :class:`Parser`.
        from_text: read integers and ``KEY=VALUE,...`` mappings from strings too.

    Raises:
        ValueError: saying the rule the value breaks (``must be an integer >= 1; got 0``).
    """
    return _convert(value, annotation, None, None, from_text)


def _check_range(value: Any, rng: Range | None, what: str = "a number") -> Any:
    if rng is not None and isinstance(value, int | float) and not rng.holds(value):
        raise ValueError(f"must be {what} {rng}; got {value!r}")
    return value


# --------------------------------------------------------------------------------------- checks
def check_options(
    fn: Callable[..., Any],
    values: Mapping[str, Any],
    *,
    where: str,
    skip: Iterable[str] = (),
    require: bool = True,
) -> dict[str, Any]:
    """Check a mapping of options against ``fn``'s signature and convert it (a recipe's view).

    Args:
        fn: the entry point (function or class).
        values: option name -> value, as a recipe gives them (YAML data).
        where: what to name in messages (``"recipes/math/quick.yaml: data.prepare[0].args"``).
        skip: parameters the caller fills itself (not options of the recipe).
        require: refuse a mapping that lacks a parameter without a default.

    Returns:
        The converted options.

    Raises:
        InputError: an unknown option (with close matches and the known ones), a value of the
            wrong type or out of range, or a missing required option.
    """
    options = {o.name: o for o in options_of(fn, skip=skip)}
    accepts_more = any(p.kind is p.VAR_KEYWORD for p in _parameters(fn))
    out: dict[str, Any] = {}
    for key, value in values.items():
        option = options.get(key)
        if option is None:
            if accepts_more:
                out[key] = value
                continue
            close = difflib.get_close_matches(str(key), list(options), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise InputError(f"{where}: unknown option {key!r}{hint}; known: {', '.join(options) or '(none)'}")
        try:
            out[key] = _convert(value, option.annotation, option.range, option.parser, from_text=False)
        except ValueError as e:
            raise InputError(f"{where}.{key}: {e}") from None
    if require:
        missing = [name for name, o in options.items() if o.required and name not in values]
        if missing:
            raise InputError(f"{where}: missing required option(s) {', '.join(missing)}")
    return out


def entry_point(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a typed entry point so that every call checks its arguments against the annotations.

    A bad value raises :class:`InputError` naming the parameter and the rule it breaks, from
    Python, the command line and recipes alike.
    """
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        hints = _hints(fn)
        for name, value in bound.arguments.items():
            if name not in hints or signature.parameters[name].kind in (inspect.Parameter.VAR_KEYWORD,
                                                                        inspect.Parameter.VAR_POSITIONAL):
                continue
            base, rng, parser = _strip(hints[name])
            try:
                bound.arguments[name] = _convert(value, base, rng, None, from_text=False)
            except ValueError as e:
                raise InputError(f"{name} {e}") from None
        return fn(*bound.args, **bound.kwargs)

    return checked


# --------------------------------------------------------------------------------------- command line
def _cli_type(option: Option, item_tp: Any) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return _convert(text, item_tp, option.range, option.parser, from_text=True)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = option.name
    return parse


def add_options(parser: argparse.ArgumentParser, fn: Callable[..., Any], *, skip: Iterable[str] = ()) -> None:
    """Add a flag per option of ``fn`` to ``parser`` (type, default, choices and help from the signature).

    ``bool`` options become switches: ``--name`` when the default is false, ``--no-name`` when true.
    Lists take several values (``--languages en zh``); ``dict`` options take ``KEY=VALUE,...``.
    """
    for option in options_of(fn, skip=skip):
        tp = option.annotation
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        optional = origin in (typing.Union, types.UnionType) and type(None) in args
        if optional and len(args) == 2 and option.parser is None:
            tp = next(a for a in args if a is not type(None))
            origin, args = typing.get_origin(tp), typing.get_args(tp)
        help_text = _first_sentence(option.help)
        kwargs: dict[str, Any] = {"dest": option.name}
        if option.required:
            kwargs["required"] = True
        else:
            kwargs["default"] = option.default
            if option.default is not None and not isinstance(option.default, bool) and option.default != ():
                shown = option.parser.show(option.default) if option.parser and option.parser.show else None
                help_text += f" (default: {shown or _show(option.default)})"
        help_text = help_text.replace("%", "%%")  # argparse formats help strings with %
        if tp is bool and option.parser is None:
            if option.default is True:
                parser.add_argument("--no-" + option.name.replace("_", "-"), action="store_false",
                                    help=f"turn off: {help_text}", dest=option.name, default=True)
            else:
                parser.add_argument(option.flag, action="store_true", help=help_text, dest=option.name)
            continue
        if origin is Literal and option.parser is None:
            kwargs["choices"] = list(args)
            kwargs["type"] = type(args[0])
        elif option.parser is not None:
            kwargs["type"] = _cli_type(option, tp)
            kwargs["metavar"] = option.parser.metavar
        elif origin in (list, collections.abc.Sequence) or (origin is tuple and args and args[-1] is Ellipsis):
            kwargs["nargs"] = "+"
            kwargs["type"] = _cli_type(option, args[0] if args else str)
        elif origin is tuple:
            kwargs["nargs"] = len(args)
            kwargs["type"] = _cli_type(option, args[0])
        else:
            kwargs["type"] = _cli_type(option, tp)
        parser.add_argument(option.flag, help=help_text, **kwargs)


def _first_sentence(text: str) -> str:
    """The first sentence of a docstring entry, with reST markup (``:func:`x```, ````x````) made plain."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")
    return re.split(r"(?<!e\.g)(?<!i\.e)\.\s+(?=[A-Z])", text)[0].rstrip(".")


def _show(value: Any) -> str:
    if isinstance(value, tuple | list):
        return " ".join(map(str, value))
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)
