"""A checkpoint is data, not code: opening one, rebuilding its network, sorting frames by its
class names and resuming a run folder run nothing the files name."""

from __future__ import annotations

import os

import numpy as np
import pytest


def test_file_names_that_are_not_utf8_reach_reports_and_pictures(tmp_path):
    from fishbear.core.atomic import atomic_write_text
    from fishbear.reports.plots import image_grid

    name = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: a surrogate in Python's str
    text = atomic_write_text(tmp_path / "report.md", f"| `{name}` |\n").read_text()
    assert "caf\\xe9.jpg" in text
    figure = image_grid(np.zeros((1, 8, 8, 3)), [name])
    figure.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_report_files_are_written_as_a_pair(tmp_path):
    from fishbear.core.atomic import atomic_write_together, text_writer

    atomic_write_together({tmp_path / "report.json": text_writer("{}\n"), tmp_path / "report.md": text_writer("# old\n")})
    with pytest.raises(AttributeError):
        atomic_write_together({tmp_path / "report.json": text_writer("{\"new\": 1}\n"),
                               tmp_path / "report.md": text_writer(None)})
    assert (tmp_path / "report.json").read_text() == "{}\n" and (tmp_path / "report.md").read_text() == "# old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]
