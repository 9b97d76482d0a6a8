import pytest

from fishbear.io import atomic_write, atomic_write_json


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
