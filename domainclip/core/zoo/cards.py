"""The zoo in words: the listing table, one entry's card, and the README's "published models" table."""

from __future__ import annotations

from collections.abc import Iterable

from domainclip.core.zoo.registry import ZooEntry

__all__ = ["README_BEGIN", "README_END", "listing", "readme_table", "render_card", "short_licence", "update_readme"]

README_BEGIN = "<!-- zoo-table:begin (generated from the registry: python -m domainclip.core.zoo.cards README.md) -->"
README_END = "<!-- zoo-table:end -->"


def _maps_to(entry: ZooEntry) -> str:
    return entry.arch or "its own open_clip config"


def _pin_state(entry: ZooEntry) -> str:
    return "pinned" if entry.pinned else "pinned on first download"


def short_licence(entry: ZooEntry, limit: int = 40) -> str:
    """The licence's first clause (the card has the whole text), ``(gated)`` when the hub asks for terms."""
    text = entry.licence.split(";")[0].split(" (")[0].strip()
    text = text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
    return text + (" (gated)" if entry.gated else "")


def listing(entries: Iterable[ZooEntry]) -> str:
    """A plain-text table: name, domain, native format, architecture, licence (gated marked), pin state."""
    rows = [("NAME", "DOMAIN", "FORMAT", "MAPS TO", "LICENCE", "FILES")]
    for e in entries:
        licence = short_licence(e)
        rows.append((e.name, e.domain, e.format, _maps_to(e), licence, _pin_state(e)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]]) for r in rows)


def render_card(entry: ZooEntry) -> str:
    """Everything the registry knows about one entry, for ``domainclip zoo show``."""
    lines = [
        f"{entry.name}  (zoo:{entry.name}, domain {entry.domain})",
        f"  {entry.description}",
        f"  paper:        {entry.paper}",
        f"  homepage:     {entry.homepage}",
        f"  licence:      {entry.licence}" + ("  -- gated: accept the terms on the hub and log in first" if entry.gated
                                               else ""),
        f"  format:       {entry.format}",
        f"  maps to:      {_maps_to(entry)}" + (f"  overrides {dict(entry.overrides)}" if entry.overrides else ""),
    ]
    if entry.preprocess:
        lines.append("  preprocess:   " + ", ".join(f"{k}={v}" for k, v in entry.preprocess.items()))
    if entry.tokenizer or entry.context_length:
        lines.append(f"  tokenizer:    {entry.tokenizer or 'open_clip BPE'}"
                     + (f", context length {entry.context_length}" if entry.context_length else ""))
    lines.append("  files:")
    for source in entry.sources:
        origin = f"hf-hub:{source.hub}@{source.revision or 'main (revision recorded on first download)'}" \
            if source.hub else "URL"
        lines.append(f"    {source.role} from {origin}")
        for f in source.files:
            size = f"{f.size:,} bytes" if f.size is not None else "size not pinned"
            sha = f"sha256 {f.sha256}" if f.sha256 else "sha256 recorded on first download"
            lines.append(f"      {f.name}  ({size}; {sha})" + (f"\n        {f.url}" if f.url else ""))
    if entry.templates:
        lines.append("  prompt templates published by the authors:")
        lines.extend(f"    {t}" for t in entry.templates)
    if entry.notes:
        lines.append(f"  notes: {entry.notes}")
    lines.append(f"  load it:      domainclip.load_model('zoo:{entry.name}')  or  --model zoo:{entry.name}")
    return "\n".join(lines)


def readme_table(entries: Iterable[ZooEntry]) -> str:
    """The markdown table of published models (name, domain, licence, what it maps to, native format)."""
    out = ["| Model | Domain | Licence | Maps to | Native format |", "|---|---|---|---|---|"]
    for e in entries:
        licence = short_licence(e, limit=60)
        out.append(f"| [`zoo:{e.name}`]({e.homepage}) | {e.domain} | {licence} | {_maps_to(e)} | {e.format} |")
    return "\n".join(out)


def update_readme(text: str, entries: Iterable[ZooEntry]) -> str:
    """``text`` with the block between :data:`README_BEGIN` and :data:`README_END` regenerated."""
    start, end = text.index(README_BEGIN) + len(README_BEGIN), text.index(README_END)
    return text[:start] + "\n" + readme_table(entries) + "\n" + text[end:]


if __name__ == "__main__":  # python -m domainclip.core.zoo.cards README.md: regenerate the README table
    import sys
    from pathlib import Path

    from domainclip.core.zoo.registry import list_zoo

    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    path.write_text(update_readme(path.read_text(encoding="utf-8"), list_zoo()), encoding="utf-8")
