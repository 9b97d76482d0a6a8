"""The README stays a front page, the docs build as a site without warnings, the formats table is
the registry's, and the ``fishbear`` command and every subcommand answer ``--help``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fishbear.cli import COMMANDS

from .conftest import REPO

DOCS = REPO / "docs"


def test_the_readme_is_a_front_page():
    text = (REPO / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings[:4] == ["Install", "Run the main job", "Run the tests", "Tour"], headings
    assert len(text.splitlines()) <= 150, "the README should fit on a screen or three; the tour belongs in docs/"
    for link in re.findall(r"\]\((docs/[\w.-]+\.md)", text):
        assert (REPO / link).is_file(), link


def test_every_page_is_in_the_site_and_the_site_builds_without_warnings(tmp_path):
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    listed = {next(iter(entry.values())) for entry in config["nav"]}
    assert listed == {p.name for p in DOCS.glob("*.md")}
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                            cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert (tmp_path / "site" / "datasets" / "index.html").is_file()


def test_the_home_page_lists_every_page_of_the_site():
    """docs/index.md's table is the way in: every page of mkdocs.yml's nav is linked from it."""
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    pages = {next(iter(entry.values())) for entry in config["nav"]} - {"index.md"}
    linked = set(re.findall(r"\]\(([\w.-]+\.md)\)", (DOCS / "index.md").read_text()))
    assert pages <= linked, f"docs/index.md does not link {sorted(pages - linked)}"


def test_the_formats_table_is_the_registrys():
    from fishbear.formats import formats_table

    page = (DOCS / "datasets.md").read_text()
    table = page.split("<!-- formats-table -->\n", 1)[1].split("<!-- /formats-table -->", 1)[0]
    assert table == formats_table()


def _console_script() -> Path:
    script = Path(sys.executable).with_name("fishbear")
    if not script.is_file():
        pytest.skip("the fishbear console script is not installed beside this interpreter (pip install -e .)")
    return script


def test_fishbear_help_lists_every_command_in_one_line_each():
    result = subprocess.run([str(_console_script()), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for name, command in COMMANDS.items():
        assert re.search(rf"^  {name}\s+{re.escape(command.summary)}$", result.stdout, flags=re.M), name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_answers_help(name):
    """``fishbear <command> --help`` and ``python -m fishbear.<command> --help`` print the same."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    answers = [subprocess.run(launch, capture_output=True, text=True, timeout=120, env=env)
               for launch in ([str(_console_script()), name, "--help"], [sys.executable, "-m", f"fishbear.{name}", "--help"])]
    for result in answers:
        assert result.returncode == 0, result.stdout[-1000:] + result.stderr[-2000:]
        assert "Traceback" not in result.stderr and result.stdout.strip()
    assert answers[0].stdout == answers[1].stdout


def test_an_unknown_command_gets_the_closest_one():
    result = subprocess.run([str(_console_script()), "trian"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "'trian' is not a fishbear command; did you mean train?" in result.stderr
