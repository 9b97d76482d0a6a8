"""A user's file is never replaced by a generated one: every command that writes next to the
user's data (predict, frames, convert) refuses a file it did not write, re-runs into its own
output, and says which it was. Each case runs the command's ``main`` (what ``python -m`` runs)."""

from __future__ import annotations

import pytest

from fishbear.core.outputs import JOURNAL, OutputClash, OutputFiles


# -- the policy itself ---------------------------------------------------------------------------
def test_a_file_is_fishbears_only_while_its_bytes_are_what_fishbear_wrote(tmp_path):
    target = tmp_path / "out" / "a.txt"
    with OutputFiles() as files:
        files.write_text(target, "first\n")
    with OutputFiles() as files:  # a later command: its own earlier output is replaced, and counted
        files.write_text(target, "second\n")
        assert files.replaced == 1 and "1 file(s) of an earlier fishbear run replaced" in files.note()
    target.write_text("the user's correction\n")
    with OutputFiles() as files, pytest.raises(OutputClash, match=r"a\.txt exists and was not written by fishbear"):
        files.write_text(target, "third\n")
    assert target.read_text() == "the user's correction\n"
    with OutputFiles(overwrite=True) as files:
        files.write_text(target, "third\n")
    assert target.read_text() == "third\n"


def test_a_journal_line_cut_by_a_kill_keeps_the_entries_before_it(tmp_path):
    with OutputFiles() as files:
        files.write_text(tmp_path / "a.txt", "a\n")
    with (tmp_path / JOURNAL).open("a") as journal:
        journal.write('{"file": "b.txt", "sha2')  # the process died mid-line
    assert OutputFiles().is_ours(tmp_path / "a.txt")
    with OutputFiles() as files:
        files.write_text(tmp_path / "a.txt", "again\n")


def test_an_identical_file_is_no_clash_and_a_link_is_never_written_through(tmp_path):
    (tmp_path / "same.txt").write_text("x\n")
    with OutputFiles() as files:
        files.write_text(tmp_path / "same.txt", "x\n")  # the same bytes: nothing is lost either way
    (tmp_path / "elsewhere.txt").write_text("precious\n")
    (tmp_path / "link.txt").symlink_to(tmp_path / "elsewhere.txt")
    with OutputFiles() as files, pytest.raises(OutputClash, match="is a link fishbear did not make"):
        files.write_text(tmp_path / "link.txt", "y\n")
    assert (tmp_path / "elsewhere.txt").read_text() == "precious\n"
