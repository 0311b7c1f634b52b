"""The PMC Cloud Service source: a generated mini-bucket in NCBI's layout, served from 127.0.0.1 with failures."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import tarfile
import time
from pathlib import Path

import pytest

from domainclip.core.errors import DomainClipError, InputError, InputNotFoundError
from domainclip.domains.biomed.pmc_cloud import PMC_BUCKET_URL, iter_pmc_cloud, resolve_location
from domainclip.domains.biomed.sources import ArticleRecord, SkippedArticle

_spec = importlib.util.spec_from_file_location("bio_data_pmc_cloud", Path(__file__).with_name("data_pmc_cloud.py"))
data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data)

FAST = {"backoff": 0.001, "timeout": 5.0, "progress": False}


@pytest.fixture
def bucket(tmp_path):
    root = tmp_path / "bucket"
    truth = data.write_bucket(root)
    return root, truth


@pytest.fixture
def served(bucket):
    root, truth = bucket
    with data.serve_bucket(root) as server:
        yield root, truth, server


def manifest(root: Path) -> str:
    return str(root / data.INVENTORY / data.INVENTORY_DATE / "manifest.json")


def as_tuple(item):
    if isinstance(item, SkippedArticle):
        return ("skipped", item.key, item.reason)
    return (item.key, item.xml, item.media, item.metadata)


def truth_tuple(truth, key):
    return (key, truth[key]["xml"], truth[key]["media"], truth[key]["metadata"])


def test_http_records_equal_the_bucket_in_listing_order(served):
    root, truth, server = served
    items = list(iter_pmc_cloud(server.url, listing=manifest(root), workers=3, **FAST))
    assert [as_tuple(i) for i in items] == [truth_tuple(truth, k) for k in truth]
    assert all(isinstance(i, ArticleRecord) for i in items)
    assert items[0].origin == server.url + "PMC9000001.1/"
    # the images the XML names only: the .txt, the .pdf, the supplement and an unnamed image are never requested
    paths = server.paths()
    assert not [p for p in paths if p.endswith((".txt", ".pdf", ".xlsx", ".thumbnail.png"))]
    # one request per object: record, XML, each image (and the inventory files of the manifest)
    objects = [p for p in paths if not p.startswith("/inventory-reports/")]
    assert len(objects) == sum(2 + len(t["media"]) for t in truth.values())
    assert len(set(objects)) == len(objects)
    assert sum(p.startswith("/inventory-reports/") for p in paths) == 2


def test_listing_forms_text_inventory_csv_and_url(served, tmp_path):
    root, truth, server = served
    keys = list(truth)
    listing = tmp_path / "articles.txt"
    listing.write_text(
        f"# articles\n{keys[3]}\n\n{keys[2]}/\nmetadata/{keys[4]}.json\nPMC{data.FIRST_ID}\n{data.FIRST_ID + 2}\n"
    )
    got = [i.key for i in iter_pmc_cloud(server.url, listing=str(listing), workers=2, **FAST)]
    # a bare PMCID (or eSearch's number) is its latest version, found by S3's ListObjectsV2
    assert got == [keys[3], keys[2], keys[4], f"PMC{data.FIRST_ID}.2", f"PMC{data.FIRST_ID + 2}.1"]
    assert any("list-type=2" in r and f"prefix=PMC{data.FIRST_ID}." in r for r in server.requests)

    inventory = sorted((root / data.INVENTORY / "data").glob("*.csv.gz"))
    plain = tmp_path / "inventory.csv"
    plain.write_bytes(gzip.decompress(inventory[1].read_bytes()))
    for path in (inventory[0], plain):
        rows = gzip.decompress(inventory[0].read_bytes()) if path == inventory[0] else plain.read_bytes()
        expected = [line.split(b",")[1].strip(b'"').decode()[9:-5] for line in rows.splitlines()]
        assert [i.key for i in iter_pmc_cloud(server.url, listing=str(path), **FAST)] == expected

    url = server.url + f"{data.INVENTORY}/{data.INVENTORY_DATE}/manifest.json"
    assert [i.key for i in iter_pmc_cloud(server.url, listing=url, workers=4, **FAST)] == keys
    assert [i.key for i in iter_pmc_cloud(str(root), listing=url, **FAST)] == keys


def test_at_most_workers_articles_in_flight(bucket):
    root, truth = bucket
    with data.serve_bucket(root, delay=0.03) as server:
        items = list(iter_pmc_cloud(server.url, listing=manifest(root), workers=3, **FAST))
        assert len(items) == len(truth)
        assert 2 <= server.max_active <= 3  # requests overlapped, never more than workers

    with data.serve_bucket(root, delay=0.01) as server:
        it = iter_pmc_cloud(server.url, listing=manifest(root), workers=2, **FAST)
        first = next(it)
        assert first.key == "PMC9000001.1"
        settled, count = 0, -1
        while settled < 20:  # wait until the fetching threads have stopped
            time.sleep(0.02)
            settled, count = (settled + 1, count) if len(server.requests) == count else (0, len(server.requests))
        fetched = {p.split("/")[1] for p in server.paths() if p.startswith("/PMC")}
        assert fetched == {"PMC9000001.1", "PMC9000001.2"}  # the consumer holds one, one more is prefetched
        assert [i.key for i in it] == list(truth)[1:]


def test_transient_failures_are_retried(served):
    root, truth, server = served
    keys = list(truth)
    media = {k: sorted(truth[k]["media"]) for k in keys}
    server.fail(f"{keys[0]}/{keys[0]}.xml", "500", "503")
    server.fail(f"{keys[1]}/{media[keys[1]][0]}", "reset", "reset")
    server.fail(f"{keys[2]}/{keys[2]}.json", "truncate")
    server.fail(f"{keys[3]}/{media[keys[3]][-1]}", "truncate", "502")
    server.fail(f"{keys[4]}/{keys[4]}.xml", "slow")
    server.slow_seconds = 1.5
    items = list(iter_pmc_cloud(server.url, listing=manifest(root), workers=3, retries=3, backoff=0.001, timeout=0.5))
    assert [as_tuple(i) for i in items] == [truth_tuple(truth, k) for k in keys]
    paths = server.paths()
    assert paths.count(f"/{keys[0]}/{keys[0]}.xml") == 3
    assert paths.count(f"/{keys[1]}/{media[keys[1]][0]}") == 3
    assert paths.count(f"/{keys[2]}/{keys[2]}.json") == 2
    assert paths.count(f"/{keys[3]}/{media[keys[3]][-1]}") == 3
    assert paths.count(f"/{keys[4]}/{keys[4]}.xml") == 2


def test_missing_or_forbidden_file_skips_the_article_without_retry(served):
    root, truth, server = served
    keys = list(truth)
    lost = f"{keys[2]}/{sorted(truth[keys[2]]['media'])[0]}"
    (root / lost).unlink()  # listed by the record, absent from the bucket
    server.fail_always(f"{keys[4]}/{keys[4]}.xml", "403")
    items = list(iter_pmc_cloud(server.url, listing=manifest(root), workers=2, retries=3, **FAST))
    assert [i.key for i in items] == keys
    assert as_tuple(items[2]) == ("skipped", keys[2], "missing_file")
    assert as_tuple(items[4]) == ("skipped", keys[4], "forbidden")
    assert "404" in items[2].detail and lost in items[2].detail
    assert [as_tuple(items[i]) for i in (0, 1, 3, 5, 6)] == [truth_tuple(truth, keys[i]) for i in (0, 1, 3, 5, 6)]
    assert server.paths().count("/" + lost) == 1
    assert server.paths().count(f"/{keys[4]}/{keys[4]}.xml") == 1


def test_network_errors_mid_run_are_reported_and_the_run_goes_on(served):
    root, truth, server = served
    keys = list(truth)
    server.fail_always(f"{keys[1]}/{keys[1]}.xml", "503")
    it = iter_pmc_cloud(server.url, listing=manifest(root), workers=1, retries=2, **FAST)
    items = [next(it) for _ in range(3)]
    server.dead = True  # the server goes away part-way: every further connection is reset
    items += list(it)
    assert [i.key for i in items] == keys
    assert as_tuple(items[1]) == ("skipped", keys[1], "network")
    assert "HTTP 503" in items[1].detail and "after 3 attempts" in items[1].detail
    assert server.paths().count(f"/{keys[1]}/{keys[1]}.xml") == 3
    assert [as_tuple(i) for i in (items[0], items[2])] == [truth_tuple(truth, keys[0]), truth_tuple(truth, keys[2])]
    assert {(type(i).__name__, getattr(i, "reason", None)) for i in items[3:]} == {("SkippedArticle", "network")}


def test_checksum_mismatch_and_metadata_fallback(served):
    root, truth, server = served
    keys = list(truth)
    name = sorted(truth[keys[1]]["media"])[0]
    (root / keys[1] / name).write_bytes(b"\x89PNG damaged")
    (root / keys[3] / f"{keys[3]}.json").unlink()  # the record only under metadata/
    items = list(iter_pmc_cloud(server.url, listing=manifest(root), retries=1, **FAST))
    assert as_tuple(items[1]) == ("skipped", keys[1], "checksum")
    assert server.paths().count(f"/{keys[1]}/{name}") == 2
    assert as_tuple(items[3]) == truth_tuple(truth, keys[3])
    assert f"/metadata/{keys[3]}.json" in server.paths()
    local = list(iter_pmc_cloud(str(root), listing=manifest(root), **FAST))
    assert [as_tuple(i) for i in local] == [as_tuple(i) for i in items]


def test_skip_means_no_request(served):
    root, truth, server = served
    keys = list(truth)
    skip = {keys[0], keys[3], keys[5]}
    items = list(iter_pmc_cloud(server.url, listing=manifest(root), skip=skip, workers=2, **FAST))
    assert [i.key for i in items] == [k for k in keys if k not in skip]
    assert not [p for p in server.paths() if any(k in p for k in skip)]


def test_traversal_and_urls_in_a_listing_or_record_are_refused(served, tmp_path):
    root, truth, server = served
    keys = list(truth)
    (root.parent / "secret.png").write_bytes(b"outside the bucket")
    record = dict(truth[keys[2]]["metadata"])
    record["media_urls"] = [*record["media_urls"], f"s3://{data.BUCKET}/{keys[2]}/../../secret.png?md5=x"]
    data.write_record(root, keys[2], record)
    record = dict(truth[keys[3]]["metadata"])
    record["xml_url"] = "file:///etc/passwd"
    data.write_record(root, keys[3], record)
    bad = [
        f"../{keys[0]}",
        f"{keys[0]}/../../secret.png",
        "file:///etc/passwd",
        server.url + keys[0],
        "/etc/passwd",
        "..\\secret.png",
        "PMC12x",
    ]
    listing = tmp_path / "listing.txt"
    listing.write_text("\n".join([bad[0], keys[1], *bad[1:], keys[2], keys[3], keys[4]]) + "\n")
    for location in (server.url, str(root)):
        items = list(iter_pmc_cloud(location, listing=str(listing), **FAST))
        reasons = [(i.reason if isinstance(i, SkippedArticle) else "ok") for i in items]
        assert reasons == ["bad_listing", "ok", *["bad_listing"] * 6, "bad_listing", "bad_listing", "ok"]
        assert items[1].key == keys[1] and items[-1].key == keys[4]
        assert "outside the article folder" in items[8].detail and "file:///etc/passwd" in items[9].detail
        assert all(isinstance(i, ArticleRecord) or "\n" not in i.detail for i in items)
    allowed = {keys[1], keys[2], keys[3], keys[4]}
    assert {p.split("/")[1] for p in server.paths()} <= allowed
    assert not [p for p in server.paths() if "secret" in p or "passwd" in p or ".." in p]


def test_mounted_folder_gives_the_same_records_as_http(served):
    root, truth, server = served
    over_http = list(iter_pmc_cloud(server.url, listing=manifest(root), **FAST))
    mounted = list(iter_pmc_cloud(str(root), **FAST))  # listed by its article folders
    with_listing = list(iter_pmc_cloud(str(root), listing=manifest(root), workers=1, **FAST))
    assert [as_tuple(i) for i in mounted] == [as_tuple(i) for i in over_http] == [as_tuple(i) for i in with_listing]
    assert mounted[0].origin == str(root / "PMC9000001.1") + "/"


def test_locations():
    assert resolve_location("s3://pmc-oa-opendata") == PMC_BUCKET_URL
    assert resolve_location("s3://pmc-oa-opendata/") == PMC_BUCKET_URL
    assert resolve_location("s3://my-mirror/pmc") == "https://my-mirror.s3.amazonaws.com/pmc/"
    assert resolve_location("https://example.org/pmc") == "https://example.org/pmc/"


@pytest.mark.parametrize(
    ("case", "kind", "words"),
    [
        ("missing listing", InputNotFoundError, "listing"),
        ("not a folder", InputNotFoundError, "neither an http(s)/s3 URL nor an existing folder"),
        ("ftp location", InputError, "only http(s):// and s3:// URLs or a local folder"),
        ("file listing url", InputError, "only a local file or an http(s)/s3 URL"),
        ("binary listing", InputError, "binary file"),
        ("json not a manifest", InputError, "S3 inventory manifest"),
        ("csv not an inventory", InputError, "not an S3 inventory CSV"),
        ("url without listing", InputError, "needs a listing"),
        ("bad workers", InputError, "workers must be >= 1"),
    ],
)
def test_user_mistakes_are_one_line_errors_before_any_request(served, tmp_path, case, kind, words):
    root, _, server = served
    binary = tmp_path / "listing.bin"
    binary.write_bytes(b"\x00\x01\x02PMC1.1")
    not_manifest = tmp_path / "listing.json"
    not_manifest.write_text(json.dumps({"articles": ["PMC1.1"]}))
    not_inventory = tmp_path / "filelist.csv"
    not_inventory.write_text("Key,ETag,Article Citation,AccessionID\noa_comm/xml/all/PMC1.xml,x,y,PMC1\n")
    calls = {
        "missing listing": lambda: iter_pmc_cloud(server.url, listing=str(tmp_path / "nope.txt")),
        "not a folder": lambda: iter_pmc_cloud(str(tmp_path / "no-bucket")),
        "ftp location": lambda: iter_pmc_cloud("ftp://ftp.ncbi.nlm.nih.gov/pub/pmc/"),
        "file listing url": lambda: iter_pmc_cloud(server.url, listing="file:///etc/passwd"),
        "binary listing": lambda: iter_pmc_cloud(server.url, listing=str(binary)),
        "json not a manifest": lambda: iter_pmc_cloud(server.url, listing=str(not_manifest)),
        "csv not an inventory": lambda: iter_pmc_cloud(server.url, listing=str(not_inventory)),
        "url without listing": lambda: iter_pmc_cloud(server.url),
        "bad workers": lambda: iter_pmc_cloud(str(root), workers=0),
    }
    with pytest.raises(kind) as error:
        calls[case]()
    assert isinstance(error.value, DomainClipError)
    assert words in str(error.value) and "\n" not in str(error.value)
    assert server.requests == []


def test_a_missing_listing_url_is_one_line(served):
    root, _, server = served
    with pytest.raises(InputNotFoundError, match="does not exist"):
        list(iter_pmc_cloud(server.url, listing=server.url + "lists/nope.txt", **FAST))


def test_a_damaged_inventory_file_is_refused_by_the_manifest_md5(served):
    root, _, server = served
    damaged = sorted((root / data.INVENTORY / "data").glob("*.csv.gz"))[1]
    damaged.write_bytes(gzip.compress(b'"pmc-oa-opendata","metadata/PMC1.1.json","x","y"\n'))
    for location in (server.url, str(root)):
        with pytest.raises(InputError, match="do not match the expected MD5") as error:
            list(iter_pmc_cloud(location, listing=manifest(root), retries=1, **FAST))
        assert "\n" not in str(error.value)
    assert not [p for p in server.paths() if p.startswith("/PMC")]  # no article before the whole listing is read


def test_progress_bar_and_early_stop(served, capsys):
    import threading

    root, truth, server = served
    items = list(iter_pmc_cloud(server.url, listing=manifest(root), backoff=0.001, progress=True))
    assert len(items) == len(truth)
    assert f"PMCCloud:{len(truth)}article" in capsys.readouterr().err.replace(" ", "")
    it = iter_pmc_cloud(server.url, listing=manifest(root), workers=3, **FAST)
    assert next(it).key == "PMC9000001.1"
    it.close()  # a consumer that stops early: the threads end, nothing is left running
    assert not [t for t in threading.enumerate() if t.name.startswith("pmc-cloud")]


def test_an_object_over_the_size_limit_skips_its_article(served, monkeypatch):
    from domainclip.domains.biomed import pmc_cloud

    root, truth, server = served
    sizes = {k: max(len(v) for v in t["media"].values()) for k, t in truth.items()}
    limit = sorted(sizes.values())[len(sizes) // 2]
    monkeypatch.setattr(pmc_cloud, "MAX_MEMBER_BYTES", limit)
    for location in (server.url, str(root)):
        items = list(iter_pmc_cloud(location, listing=manifest(root), **FAST))
        expected = [("skipped", k, "too_large") if sizes[k] > limit else truth_tuple(truth, k) for k in truth]
        assert [as_tuple(i) for i in items] == expected
        assert 0 < sum(isinstance(i, SkippedArticle) for i in items) < len(truth)


# =============================================================================== end to end through prepare_figures
def _figure_keys(out: Path) -> list[str]:
    keys = []
    for shard in sorted(out.glob("figures*.tar")):
        with tarfile.open(shard) as tar:
            keys += sorted({m.name.partition(".")[0] for m in tar})
    return keys


def test_prepare_figures_from_the_served_bucket_resumes_after_the_server_dies(served, tmp_path, monkeypatch):
    from domainclip.domains.biomed import pmc_cloud
    from domainclip.domains.biomed.figures import prepare_figures

    root, truth, server = served
    fast = functools.partial(pmc_cloud.iter_pmc_cloud, backoff=0.001, retries=1, timeout=5.0, workers=2)
    monkeypatch.setattr(pmc_cloud, "iter_pmc_cloud", fast)
    reference = prepare_figures(tmp_path / "ref", pmc=str(root), progress=False, shard_size=2)  # mounted bucket
    expected = _figure_keys(tmp_path / "ref")
    firsts = [t for k, t in truth.items() if k != f"PMC{data.FIRST_ID}.2"]  # the first version of each article
    figures = {f"{t['metadata']['pmcid']}_F{j + 1}" for t in firsts for j in range(len(t["media"]))}
    assert set(expected) == figures and len(expected) == len(figures)
    assert reference["skipped_articles_by_reason"] == {"duplicate_article": 1}  # PMC9000001 in two versions
    assert server.requests == []

    out = tmp_path / "out"
    server.die_after = 12  # part-way through the bucket: every later connection is reset
    first = prepare_figures(out, pmc=server.url, listing=manifest(root), progress=False, shard_size=2)
    written_first = _figure_keys(out)
    assert 0 < len(written_first) < len(expected) and len(set(written_first)) == len(written_first)
    assert first["skipped_articles_by_reason"]["network"] > 0
    done = {json.loads(line)["key"] for line in (out / "articles.jsonl").read_text().splitlines()}

    server.dead, server.die_after = False, None
    server.requests.clear()
    second = prepare_figures(out, pmc=server.url, listing=manifest(root), progress=False, shard_size=2)
    keys = _figure_keys(out)
    assert sorted(keys) == sorted(expected) and len(keys) == len(set(keys))  # each sample exactly once
    assert second["resumed"] and second["figures_written_this_run"] == len(expected) - len(written_first)
    again_fetched = {p.split("/")[1] for p in server.paths() if p.startswith("/PMC")}
    assert again_fetched and not again_fetched & done  # finished articles are not fetched again


def test_listing_lines_that_are_not_utf8_or_carry_a_bom(served, tmp_path):
    root, truth, server = served
    keys = list(truth)
    listing = tmp_path / "articles.txt"
    listing.write_bytes(b"\xef\xbb\xbf" + f"{keys[0]}\r\n{keys[1]}/{keys[1]}.xml\r\n".encode() + b"PMC\xff1.1\r\n")
    items = list(iter_pmc_cloud(server.url, listing=str(listing), **FAST))
    assert [as_tuple(i) for i in items[:2]] == [truth_tuple(truth, k) for k in keys[:2]]
    assert as_tuple(items[2])[::2] == ("skipped", "bad_listing")


@pytest.mark.parametrize("case", ["ftp-location", "missing-listing", "url-without-listing"])
def test_cli_user_errors(served, case, tmp_path, capsys):
    from domainclip.cli import main

    root, _, server = served
    base = ["prepare", "biomed", "figures", "--out", str(tmp_path / "o"), "--no-progress"]
    argv, expected = {
        "ftp-location": (base + ["--pmc", "ftp://ftp.ncbi.nlm.nih.gov/pub/pmc"], "only http(s):// and s3:// URLs"),
        "missing-listing": (
            base + ["--pmc", server.url, "--listing", str(tmp_path / "absent.txt")],
            f"listing {tmp_path / 'absent.txt'} does not exist",
        ),
        "url-without-listing": (base + ["--pmc", server.url], "a URL needs a listing"),
    }[case]
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("domainclip") and ": error: " in line]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert expected in lines[0]
    assert server.requests == []


def test_stopping_early_abandons_pending_retries(served):
    import threading

    root, truth, server = served
    keys = list(truth)
    for key in keys[1:4]:
        server.fail_always(f"{key}/{key}.json", "503")
    it = iter_pmc_cloud(server.url, listing=manifest(root), workers=4, retries=3, backoff=30.0, progress=False)
    assert next(it).key == keys[0]
    while len([p for p in server.paths() if p.endswith(".json")]) < 4:  # the three failing ones were tried once
        threading.Event().wait(0.01)
    it.close()  # the retries (30 s away) are abandoned: the threads end now
    assert not [t for t in threading.enumerate() if t.name.startswith("pmc-cloud")]
    assert [server.paths().count(f"/{k}/{k}.json") for k in keys[1:4]] == [1, 1, 1]


def test_retry_after_lengthens_the_backoff(served, monkeypatch):
    import threading

    from domainclip.domains.biomed import pmc_cloud

    waits = []

    class RecordingEvent(threading.Event):
        def wait(self, timeout=None):
            if timeout is None:  # a thread waiting for another (the pool's own events)
                return super().wait()
            waits.append(timeout)
            return False  # a backoff: recorded, not slept

    monkeypatch.setattr(pmc_cloud.threading, "Event", RecordingEvent)
    root, truth, server = served
    keys = list(truth)
    server.fail(f"{keys[2]}/{keys[2]}.xml", "slowdown", "503")
    items = list(iter_pmc_cloud(server.url, listing=manifest(root), workers=1, retries=3, **FAST))
    assert [as_tuple(i) for i in items] == [truth_tuple(truth, k) for k in keys]
    assert len(waits) == 2 and waits[0] == 2.0 and 0 < waits[1] <= 0.002  # Retry-After, then the backoff again
