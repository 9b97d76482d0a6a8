"""A checkpoint is data, not code: opening one, rebuilding its network, sorting frames by its
class names and resuming a run folder run nothing the files name."""

from __future__ import annotations

import os

import pytest

from fishbear.core.atomic import atomic_write, atomic_write_json


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "report.json"
    atomic_write_json(path, {"a": 1})

    def half_then_crash(handle):
        handle.write(b'{"a": 2, "trunc')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_crash)
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_written_files_and_generated_data_follow_the_umask(tmp_path):

    from fishbear.core.atomic import atomic_write_text
    from fishbear.data.shapes import ShapesSource
    from fishbear.kinds import get_kind

    old = os.umask(0o022)
    try:
        assert (atomic_write_text(tmp_path / "report.md", "x").stat().st_mode & 0o777) == 0o644
        root = ShapesSource(train=1, valid=1, test=1, image_size=16).prepare(tmp_path / "shapes", get_kind("classify"))
        assert (root.stat().st_mode & 0o777) == 0o755
        os.umask(0o077)
        assert (atomic_write_text(tmp_path / "private.md", "x").stat().st_mode & 0o777) == 0o600
    finally:
        os.umask(old)


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch):
    import errno

    from fishbear.core.errors import FishbearError
    from fishbear.train import train
    from tests.conftest import TINY, compose_train

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("fishbear.core.atomic.os.fsync", full)
    with pytest.raises(FishbearError, match=r"Could not write .*: No space left on device\. Free some space"):
        train(compose_train([*TINY, "logger=none"], tmp_path))
    assert not list(tmp_path.rglob("*.tmp"))
