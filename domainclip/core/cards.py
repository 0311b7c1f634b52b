"""Data cards are data: YAML front matter that code reads and checks, then prose.

Every card in ``data_cards/<domain>/`` starts with a front matter block holding at least the
fields of :data:`REQUIRED_FIELDS`; ``domain`` must match the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from domainclip.core.errors import InputError

__all__ = ["REQUIRED_FIELDS", "CardError", "list_cards", "read_card"]

#: Fields every data card declares in its front matter.
REQUIRED_FIELDS: tuple[str, ...] = ("name", "domain", "license", "size", "splits", "keys", "phi", "citation")


class CardError(InputError):
    """A data card is malformed; the message names the file."""


def read_card(path: str | Path) -> tuple[dict[str, Any], str]:
    """Return the front matter (validated) and the markdown body of a data card."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise CardError(f"{path}: a data card must start with a '---' YAML front matter block")
    end = text.find("\n---", 4)
    if end < 0:
        raise CardError(f"{path}: the front matter block is not closed by '---'")
    try:
        meta = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError as e:
        raise CardError(f"{path}: front matter is not valid YAML: {e}") from e
    missing = [f for f in REQUIRED_FIELDS if f not in meta]
    if missing:
        raise CardError(f"{path}: front matter lacks {', '.join(missing)}")
    if meta["domain"] != path.parent.name:
        raise CardError(f"{path}: domain {meta['domain']!r} does not match its folder {path.parent.name!r}")
    from domainclip.core.data.keys import SAMPLE_KEYS

    unknown = [k for k in meta["keys"] if k not in SAMPLE_KEYS]
    if unknown:
        raise CardError(f"{path}: keys {unknown} are not sample keys ({', '.join(SAMPLE_KEYS)})")
    return meta, text[end + 4:].lstrip("-\n")


def list_cards(domain: str | None = None) -> list[Path]:
    """Paths of the shipped data cards, optionally for one domain."""
    from domainclip.core.resources import data_cards_root

    root = data_cards_root()
    return sorted(p for p in root.glob("*/*.md") if domain is None or p.parent.name == domain)
