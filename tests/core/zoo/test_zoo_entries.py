"""The declared zoo: every domain's zoo.yaml parses, and its facts keep the shape the loader relies on."""

from __future__ import annotations

import importlib.resources

import pytest
import yaml

from domainclip.core.models import list_models
from domainclip.core.plugins import get_domain, list_domains
from domainclip.core.zoo.registry import ZooEntry, get_zoo_entry, list_zoo, parse_zoo_entry

FORMATS = {"open_clip_state_dict", "open_clip_hub", "hf_clip", "camma_vlp", "surgclip"}
# Architectures other helpers are adding; checked once domainclip.core.models.list_models() has them.
PENDING_ARCHS = {"surgvlp-rn50-clinicalbert", "surgclip-beta"}
ISSUE_17 = {
    "pathology": {"PathGen-CLIP", "PathGen-CLIP-L", "PLIP", "QuiltNet-B-32"},
    "biomed": {"BiomedCLIP", "BMCA-CLIP"},
    "remote_sensing": {
        "RemoteCLIP-RN50",
        "RemoteCLIP-ViT-B-32",
        "RemoteCLIP-ViT-L-14",
        "GeoRSCLIP-ViT-B-32",
        "RS-M-CLIP",
    },
    "surgery": {"SurgVLP", "HecVL", "PeskaVLP", "SurgCLIP-beta"},
}


def _declared() -> list[tuple[str, dict]]:
    """Every raw entry of every domain's zoo.yaml, read directly (no registry cache)."""
    raw: list[tuple[str, dict]] = []
    for domain in list_domains():
        target = getattr(get_domain(domain), "zoo", None)
        if not target:
            continue
        package, _, resource = target.partition(":")
        items = yaml.safe_load(importlib.resources.files(package).joinpath(resource).read_text(encoding="utf-8"))
        assert isinstance(items or [], list), f"{target} must hold a list"
        raw.extend((domain, item) for item in items or [])
    return raw


@pytest.fixture(scope="module")
def entries() -> list[ZooEntry]:
    return [parse_zoo_entry(item, domain=domain, where=f"{domain} zoo") for domain, item in _declared()]


def test_every_issue_entry_is_declared_in_its_domain(entries):
    by_domain: dict[str, set[str]] = {}
    for entry in entries:
        by_domain.setdefault(entry.domain, set()).add(entry.name)
    for domain, names in ISSUE_17.items():
        assert by_domain.get(domain, set()) == names, domain
    assert {e.name for e in entries} == set().union(*ISSUE_17.values())


def test_names_are_unique_and_the_registry_serves_them(entries):
    names = [e.name for e in entries]
    assert len(names) == len(set(names))
    assert len({n.lower() for n in names}) == len(names)
    listed = {e.name for e in list_zoo()}
    assert set(names) <= listed
    assert get_zoo_entry("zoo:BiomedCLIP").domain == "biomed"
    assert {e.name for e in list_zoo("surgery")} >= ISSUE_17["surgery"]


def test_formats_and_architectures_are_known(entries):
    registered = set(list_models())
    for entry in entries:
        assert entry.format in FORMATS, entry.name
        if entry.format == "open_clip_hub":
            assert entry.arch is None, f"{entry.name}: a hub folder carries its own config"
            continue
        assert entry.arch, f"{entry.name}: {entry.format} needs the architecture it maps to"
        if entry.arch in PENDING_ARCHS and entry.arch not in registered:
            continue
        assert entry.arch in registered, f"{entry.name}: {entry.arch} is not a registered architecture"


def test_sources_and_pins_are_consistent(entries):
    for entry in entries:
        weights = entry.source("weights")
        assert weights is not None and weights.files, entry.name
        for source in entry.sources:
            assert (source.hub is None) == all(f.url is not None for f in source.files), entry.name
            for f in source.files:
                if f.sha256 is not None:
                    assert f.size is not None and f.size > 0, f"{entry.name}: {f.name} pinned without a size"
        # BERT-style text towers whose config.json the checkpoint does not carry
        if entry.format in {"camma_vlp", "surgclip"} or entry.name in {"BiomedCLIP", "RS-M-CLIP"}:
            text = entry.source("text")
            assert text is not None and "config.json" in {f.name for f in text.files}, entry.name


def test_quick_gelu_is_set_for_openai_initialised_fine_tunes(entries):
    by_name = {e.name: e for e in entries}
    for name in ("PathGen-CLIP", "PathGen-CLIP-L", "PLIP", "RemoteCLIP-ViT-B-32", "GeoRSCLIP-ViT-B-32"):
        assert by_name[name].overrides.get("quick_gelu") is True, name


def test_cards_name_licence_paper_and_templates(entries):
    for entry in entries:
        assert entry.licence.strip(), entry.name
        assert entry.paper.strip() and entry.homepage.startswith("https://"), entry.name
        assert all("{c}" in t for t in entry.templates), entry.name
        if entry.context_length is not None:
            assert entry.context_length > 0
    by_name = {e.name: e for e in entries}
    assert by_name["BiomedCLIP"].context_length == 256
    assert "An H&E image of {c}." in by_name["PLIP"].templates


def test_a_broken_entry_is_refused():
    good = dict(_declared()[0][1])
    bad = {**good, "templates": ["no class placeholder"]}
    with pytest.raises(ValueError, match="templates"):
        parse_zoo_entry(bad, domain="pathology")
