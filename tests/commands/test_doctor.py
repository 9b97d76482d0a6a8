"""``python -m fishbear.doctor``: one line per fact, problems marked, exit status 1 only on a problem."""

from __future__ import annotations

import time

import pytest

from fishbear import doctor
from tests.conftest import REPO


def _lines(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    code = doctor.main()
    out = capsys.readouterr().out.splitlines()
    facts = {}
    for line in out[:-1]:
        name, _, value = line.partition(": ")
        facts[name.strip()] = value.strip()
    return code, facts | {"last": out[-1]}


def test_a_healthy_install_names_every_library_the_device_and_the_caches(capsys, torch_home, tmp_path, monkeypatch):
    monkeypatch.setenv("FISHBEAR_DATA", str(tmp_path / "cache"))
    (torch_home / "mobilenet_v2-b0353104.pth").write_bytes(b"not read, only listed")
    code, facts = _lines(capsys)
    assert code == 0 and facts["last"] == "fishbear is ready"
    for name in ("python", "torch", "torchvision", "lightning", "hydra-core", "albumentations", "av", "torch build",
                 "torchvision ops", "PyAV video", "trainer=default", "weights cache", "data cache"):
        assert name in facts, (name, facts)
    assert facts["trainer=default"].startswith(("cpu", "cuda", "mps")) and "precision" in facts["trainer=default"]
    import re
    import tomllib

    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dependency in required:  # every one pyproject requires, imagehash, matplotlib and tqdm among them
        name = re.split(r"[\s<>=!~;\[]", dependency, maxsplit=1)[0]
        assert name in facts and facts[name][0].isdigit(), (name, facts.get(name))
    assert "mobilenet_v2 IMAGENET1K_V1 (mobilenet_v2-b0353104.pth)" in facts["weights cache"]
    assert str(tmp_path / "cache") in facts["data cache"] and "writable" in facts["data cache"]


def test_broken_torchvision_operators_and_an_unwritable_cache_are_problems(capsys, tmp_path, monkeypatch):
    import torchvision

    def missing_operator(*args, **kwargs):
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(torchvision.ops, "nms", missing_operator)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FISHBEAR_DATA", str(blocker / "cache"))
    code, facts = _lines(capsys)
    assert code == 1 and facts["last"] == "2 problem(s)"
    assert "operator torchvision::nms does not exist" in facts["PROBLEM torchvision ops"]
    assert "NOT writable" in facts["PROBLEM data cache"]


def test_lock_differences_are_listed(capsys, tmp_path, monkeypatch):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# header\ntorch==0.0.1\nno-such-package==1.0\n")
    monkeypatch.setattr(doctor, "LOCK_FILE", lock)
    (line,) = doctor.lock_lines()
    assert line.ok and line.value.startswith("differs: torch ") and "(lock 0.0.1)" in line.value
    assert "no-such-package" not in line.value  # not installed here: nothing to compare


def test_the_readme_command_runs_in_seconds(capsys):
    """``main`` is what ``python -m fishbear.doctor`` runs (a second interpreter adds only the
    imports, about 4 s here)."""
    started = time.perf_counter()
    assert doctor.main() == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("fishbear is ready") and "torch build:" in out
    assert time.perf_counter() - started < 30
    assert (REPO / "requirements.lock").is_file()


def test_the_readme_points_to_the_doctor():
    from tests.commands.test_cli import readme_commands

    assert "python -m fishbear.doctor" in readme_commands()
    text = (REPO / "README.md").read_text()
    assert "pip install -c requirements.lock" in text and 'pip install -c requirements.lock -e ".[dev]"' in (
        REPO / "Makefile").read_text()
