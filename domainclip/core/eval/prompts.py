"""How a suite declares its template sets, so ``domainclip compare --prompt-sensitivity`` can run them all.

Zero-shot numbers move with the prompts (PathGen-CLIP's PatchCamelyon accuracy by ten points), so a
comparison should say how much. A suite that knows several template sets offers them as one typed
option whose annotation is a ``Literal`` of the set names marked with :data:`TEMPLATE_SETS`::

    def scene_suite(model, tokenizer, preprocess, *, data, out_dir, device, batch_size,
                    prompts: Annotated[Literal["single", "ensemble"], TEMPLATE_SETS] = "ensemble"):
        ...  # its docstring's Args: says what each set is, as for every option

(:data:`SingleOrEnsemble` is that annotation.) The option is an ordinary option everywhere else
(``--option prompts=single``, a recipe's ``eval.options``; the marker is ``Annotated`` metadata,
which :func:`~domainclip.core.options.check_options` ignores), and :func:`template_set_option` finds
it from the signature. The option must change only the text side of the suite (the prompts the
classifier is built from), never which inputs are embedded: the embedding cache leaves it out of its
key, so every template set reuses the images' embeddings. A suite has at most one such option.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from domainclip.core.options import SUITE_ENGINE_ARGS

__all__ = ["TEMPLATE_SETS", "SingleOrEnsemble", "TemplateSetOption", "TemplateSets", "template_set_option"]


@dataclass(frozen=True)
class TemplateSets:
    """``Annotated`` metadata: this ``Literal`` option of a suite chooses among its prompt template sets."""


#: The marker itself (``Annotated[Literal[...], TEMPLATE_SETS]``).
TEMPLATE_SETS = TemplateSets()
#: The common pair: one template per class (``single``) or the mean over all of them (``ensemble``).
SingleOrEnsemble = Annotated[Literal["single", "ensemble"], TEMPLATE_SETS]


@dataclass(frozen=True)
class TemplateSetOption:
    """A suite's template-set option.

    Args:
        name: the option's name (``prompts``, ``prompt_style``).
        choices: the template sets, in the order the ``Literal`` lists them.
        default: the set the suite uses when the option is not given.
    """

    name: str
    choices: tuple[str, ...]
    default: Any


def template_set_option(suite: Callable[..., Any]) -> TemplateSetOption | None:
    """The suite's option marked with :data:`TEMPLATE_SETS`, or ``None`` when it declares none.

    Args:
        suite: an eval suite (a function; ``functools.wraps`` wrappers are unwrapped).

    Raises:
        TypeError: the marker is on an option that is not a ``Literal`` of names, or on two options.
    """
    fn = inspect.unwrap(suite)
    hints = typing.get_type_hints(fn, include_extras=True)
    found = []
    for name, parameter in inspect.signature(fn).parameters.items():
        hint = hints.get(name)
        if name in SUITE_ENGINE_ARGS or typing.get_origin(hint) is not Annotated:
            continue
        base, *meta = typing.get_args(hint)
        if not any(isinstance(m, TemplateSets) for m in meta):
            continue
        if typing.get_origin(base) is not Literal or not all(isinstance(c, str) for c in typing.get_args(base)):
            raise TypeError(f"{fn.__qualname__}: option {name!r} is marked TEMPLATE_SETS but is not a Literal of names")
        found.append(TemplateSetOption(name, tuple(typing.get_args(base)), parameter.default))
    if len(found) > 1:
        raise TypeError(f"{fn.__qualname__}: several options are marked TEMPLATE_SETS: {[o.name for o in found]}")
    return found[0] if found else None
