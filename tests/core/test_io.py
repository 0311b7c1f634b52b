"""Atomic file writes: complete or absent, ordinary permissions, no temporary files left behind."""

import os

import pytest

from domainclip.core.io import atomic_output, atomic_write_bytes, atomic_write_text


def _expected_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def test_atomic_write_replaces_whole_file_with_normal_mode(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == _expected_mode()
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_atomic_output_commits_on_success_and_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "video.mp4"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp != target
        tmp.write_bytes(b"v1")
        assert not target.exists()
    assert target.read_bytes() == b"v1" and target.stat().st_mode & 0o777 == _expected_mode()
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video.mp4"]
