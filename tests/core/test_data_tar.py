"""The reader's own tar parser agrees with tarfile and refuses every truncation."""

from __future__ import annotations

import io
import tarfile

import pytest

from domainclip.core.data.reader import TruncatedShardError, _iter_members


def make_tar(fmt: int, compression: str = "") -> tuple[bytes, dict[str, bytes]]:
    members = {
        "a/000000.txt": b"short caption",
        "a/000000.png": bytes(range(256)) * 3,
        "a/" + "long_name_" * 12 + ".json": b'{"k": 1}',  # > 100 chars: GNU long name / PAX path
        "a/000001.txt": b"",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}", format=fmt) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if fmt == tarfile.PAX_FORMAT:
                info.pax_headers = {"comment": "domainclip"}
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), members


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("compression", ["", "gz", "xz"])
def test_members_equal_tarfile(fmt, compression):
    data, members = make_tar(fmt, compression)
    got = {m["fname"]: m["data"] for m in _iter_members(io.BytesIO(data), "mem.tar")}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        expected = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    assert got == expected == members


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_every_truncation_raises(fmt):
    data, _ = make_tar(fmt)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        last = max(m.offset_data + m.size for m in tar)
    # cutting anywhere before the last member's data ends must be detected (tarfile's stream mode
    # stops quietly at a cut header); after it, only end-of-archive padding is missing
    for cut in range(1, last, 37):
        with pytest.raises(tarfile.ReadError):
            list(_iter_members(io.BytesIO(data[:cut]), "cut.tar"))
    assert issubclass(TruncatedShardError, tarfile.ReadError)
