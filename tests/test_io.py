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
    import os

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
