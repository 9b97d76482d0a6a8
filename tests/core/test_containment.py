"""Corrupted label files and images, as real exports and disks leave them (bytes cut, fields
dropped, numbers garbled, another encoding), through every reader: the reader either reads
what is there or raises fishbear's own error naming the file. Never another exception."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from fishbear.core.errors import DataError

# -- the families of the second probe: names from data, state files, pictures that cannot be fitted -------------
DATA_PATHS = st.lists(st.sampled_from(list("ab./\\ \x00\n-_~:é") + ["..", "out/", "../"]), max_size=8).map("".join)


STATE_LINES = st.one_of(
    st.text(max_size=40),
    st.dictionaries(st.sampled_from(["seq", "file", "action", "label", "sha256", "undo", "key", "url", "bytes",
                                     "source", "target", "transient", "error"]),
                    st.one_of(st.none(), st.integers(-3, 3), st.booleans(), st.text(max_size=70),
                              st.sampled_from(["a" * 64, "../x", "/etc/passwd", "cat/a.jpg", "remove", "relabel"])),
                    max_size=8).map(json.dumps))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(DATA_PATHS)
def test_a_path_from_data_stays_inside_its_folder_or_is_refused(relative):
    import tempfile
    from pathlib import Path

    from fishbear.core.containment import inside, is_within, plain_name

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "root"
        root.mkdir()
        (root / "out").symlink_to(Path(folder))  # a link planted in the folder, leading out of it
        try:
            path = inside(root, relative, "the file", "list.csv, line 3")
        except DataError as err:
            assert str(err).startswith("list.csv, line 3: the file")
        else:
            assert is_within(path, root) and root in path.absolute().parents
        try:
            name = plain_name(relative, "the class", "urls.csv, data row 2")
        except DataError as err:
            assert str(err).startswith("urls.csv, data row 2: the class")
        else:
            assert (root / name).parent == root and name not in (".", "..")


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(STATE_LINES, min_size=1, max_size=4))
def test_a_state_file_is_read_or_named_never_another_exception(lines):
    import tempfile
    from pathlib import Path

    from fishbear.data.web_download import DownloadLog
    from fishbear.engine.review.log import DecisionLog, _moves

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        (out / ".fetch").mkdir()
        text = "\n".join(line.replace("\n", " ") for line in lines) + "\n"
        for path, read in ((out / ".fetch" / "downloads.jsonl", lambda p: DownloadLog(out).entries),
                           (out / "decisions.jsonl", lambda p: DecisionLog(p).effective()),
                           (out / "applied.jsonl", _moves)):
            path.write_text(text)
            try:
                read(path)
            except DataError as err:
                assert path.name in str(err), str(err)
