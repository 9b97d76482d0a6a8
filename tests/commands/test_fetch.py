"""fishbear fetch: URL lists to a clean ImageFolder, against a stand-in for the web on 127.0.0.1."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fishbear.core.errors import DataError
from fishbear.data.http_fetch import FetchSettings, robots_refusal
from fishbear.data.url_lists import class_of, read_url_lists
from fishbear.data.web_dataset import fetch_dataset
from fishbear.data.web_download import OfflineError
from fishbear.data.web_pictures import CleanSettings
from tests.conftest import REPO, requires_shared
from tests.web_standin import Fault, Standin, path_of, shared_bears

FAST = FetchSettings(workers=8, timeout=0.5, retries=1, backoff=0.05)


def _photo(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)  # a smooth picture: its own perceptual hash
    picture = Image.fromarray(base).resize(size, Image.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _manifest(out: Path) -> dict[str, dict[str, str]]:
    with (out / "manifest.csv").open(newline="") as handle:
        return {f"{r['class']}:{r['line']}": r for r in csv.DictReader(handle)}


@pytest.fixture
def web():
    standin = Standin().start()
    yield standin
    standin.stop()


CASES = {  # line of cats.txt -> (what the server does, the manifest's status, what its error says)
    0: ("photo", "ok", ""), 1: ("photo", "ok", ""), 2: ("photo", "ok", ""),
    3: ("403", "failed", "HTTP 403"), 4: ("404", "failed", "HTTP 404"),
    5: ("500 then 200", "ok", ""), 6: ("429 then 200", "ok", ""),
    7: ("timeout", "failed", "timed out"), 8: ("redirect loop", "failed", "too many redirects"),
    9: ("html as 200", "failed", "not an image (an HTML page)"), 10: ("truncated", "failed", "truncated"),
    11: ("bomb", "failed", "too many pixels"), 12: ("line 0's photo", "duplicate", ""),
    13: ("noai", "skipped", "X-Robots-Tag: noai"),
}


def _lists(web: Standin, folder: Path) -> Path:
    """cats.txt with every case above (and a blank and a malformed line), dogs.txt with two photos,
    one of them cats line 1's (the same photo under two classes)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (case, _, _) in CASES.items():
        path = f"/img/cat{i}?q=tbn:{i}&s"
        lines.append(web.base + path)
        web.photos[path] = _photo(i)
        fault = {"403": Fault("status", 403), "500 then 200": Fault("flaky"), "429 then 200": Fault("retry_after"),
                 "timeout": Fault("timeout"), "redirect loop": Fault("loop"), "html as 200": Fault("html"),
                 "truncated": Fault("truncated"), "bomb": Fault("bomb"), "noai": Fault("robots"),
                 "line 0's photo": Fault("photo", photo=_photo(0))}.get(case)
        if case == "404":
            del web.photos[path]
        if fault is not None:
            web.faults[path] = fault
    (folder / "cats.txt").write_text("\n".join(lines) + "\n\nnot a url\n")
    web.photos["/img/dog0"] = _photo(100)
    web.photos["/img/dog1"] = _photo(1)  # cats line 1's photo: a label conflict
    web.photos["/img/dog2"] = _photo(101)
    (folder / "urls_dogs.txt").write_text(f"{web.base}/img/dog0\n{web.base}/img/dog1\n{web.base}/img/dog2\n")
    return folder


def _command(web: Standin, tmp_path: Path) -> Path:
    from fishbear.fetch import main

    urls, out = _lists(web, tmp_path / "urls"), tmp_path / "data"
    main([f"urls={urls}", f"out={out}", "timeout=1", "retries=1", "workers=8", "backoff=0.05"])
    return out


# -- the real lists, through the stand-in --------------------------------------------------------
def _shared(web: Standin, tmp_path: Path) -> tuple[Path, dict]:
    urls = requires_shared("bears", "urls")
    bears = requires_shared("bears")
    lines = shared_bears(web, urls, bears, tmp_path / "urls")
    black = [path for i, path in lines["black"] if path in web.photos]
    grizzly = [path for i, path in lines["grizzly"] if path in web.photos]
    faults = {"403": Fault("status", 403), "flaky": Fault("flaky"), "timeout": Fault("timeout"), "loop": Fault("loop"),
              "html": Fault("html"), "truncated": Fault("truncated"), "bomb": Fault("bomb"),
              "robots": Fault("robots"), "two urls": Fault("photo", photo=web.photos[black[0]]),
              "two classes": Fault("photo", photo=web.photos[grizzly[0]])}
    placed = dict(zip(faults, black[10:]))
    for name, path in placed.items():
        web.faults[path] = faults[name]
    return tmp_path / "urls", placed


def _fetched(web, tmp_path):
    web.photos["/img/a"], web.photos["/img/b"] = _photo(400), _photo(401)
    lists = tmp_path / "urls"
    lists.mkdir()
    (lists / "cats.txt").write_text(f"{web.base}/img/a\n{web.base}/img/b\n")
    out = tmp_path / "data"
    fetch_dataset(lists, out, fetch=FAST)
    return lists, out


def test_every_case_lands_in_the_manifest_with_its_reason(web, tmp_path):
    out = tmp_path / "data"
    outcome = fetch_dataset(_lists(web, tmp_path / "urls"), out, fetch=FAST)
    rows = _manifest(out)
    for line, (case, status, error) in CASES.items():
        row = rows[f"cats:{line}"]
        assert row["status"] == status, (case, row)
        assert row["error"].startswith(error) or error in row["error"], (case, row["error"])
        if status == "ok":
            assert (out / row["file"]).is_file() and row["file"] == f"train/cats/{line:08d}.jpg"
            assert int(row["width"]) == 64 and int(row["height"]) == 48 and len(row["sha256"]) == 64
        else:
            assert row["file"] == ""
    assert rows["cats:5"]["http_status"] == "200"      # retried after the 500
    assert rows["cats:3"]["http_status"] == "403" and web.requests["/img/cat3?q=tbn:3&s"] == 1  # 4xx: no retry
    assert web.requests["/img/cat5?q=tbn:5&s"] == 2 and web.requests["/img/cat7?q=tbn:7&s"] == 2
    assert rows["cats:12"]["duplicate_of"] == "cats.txt:0"
    assert rows["dogs:1"]["status"] == "duplicate" and "another class" in rows["dogs:1"]["duplicate_of"]
    assert rows["cats:15"]["status"] == "skipped" and rows["cats:15"]["error"] == "not an http(s) URL"
    assert sorted(p.relative_to(out).as_posix() for p in (out / "train").rglob("*.jpg")) == [
        "train/cats/00000000.jpg", "train/cats/00000001.jpg", "train/cats/00000002.jpg", "train/cats/00000005.jpg",
        "train/cats/00000006.jpg", "train/dogs/00000000.jpg", "train/dogs/00000002.jpg"]
    summary = outcome.summary()
    assert summary.startswith("7 ok, 7 failed: ") and "1 HTTP 403" in summary and "1 timed out" in summary
    assert "2 exact duplicates removed (1 under two classes)" in summary and "1 blank lines" in summary
    # every written file decodes whole, as RGB JPEG
    for path in (out / "train").rglob("*.jpg"):
        with Image.open(path) as image:
            image.load()
            assert image.format == "JPEG" and image.mode == "RGB"


def test_a_second_run_fetches_only_what_may_pass_now(web, tmp_path):
    urls, out = _lists(web, tmp_path / "urls"), tmp_path / "data"
    fetch_dataset(urls, out, fetch=FAST)
    before = dict(web.requests)
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")}
    again = fetch_dataset(urls, out, fetch=FAST)
    asked = {path for path, n in web.requests.items() if n != before.get(path, 0)}
    assert asked == {"/img/cat7?q=tbn:7&s"}  # the timeout alone (transient); no ok, 4xx or robots URL again
    assert again.fetched_now == 1 and again.count("ok") == 7
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")} == files  # identical files left in place


@pytest.mark.slow
def test_robots_square_pad_max_size_and_the_test_draw(web, tmp_path):
    urls, out = _lists(web, tmp_path / "urls"), tmp_path / "data"
    fetch_dataset(urls, out, fetch=FetchSettings(workers=8, timeout=1.0, retries=1, backoff=0.05, respect_robots=False),
                  clean_settings=CleanSettings(square="pad", max_size=32, test_per_class=1, seed=3))
    rows = _manifest(out)
    assert rows["cats:13"]["status"] == "ok"  # respect_robots=false
    for row in rows.values():
        if row["status"] == "ok":
            with Image.open(out / row["file"]) as image:
                assert image.size == (32, 32)
    tests = sorted(p.relative_to(out).as_posix() for p in (out / "test").rglob("*.jpg"))
    assert len([t for t in tests if "/cats/" in t]) == 1 and len(tests) == 2
    # another draw: the files of the old one that moved are not left behind
    with pytest.raises(DataError, match="would leave none to train on"):
        fetch_dataset(urls, out, fetch=FAST, clean_settings=CleanSettings(test_per_class=5))
    fetch_dataset(urls, out, fetch=FAST, clean_settings=CleanSettings(test_per_class=1, seed=4))
    written = {p.relative_to(out).as_posix() for p in out.rglob("*.jpg")}
    assert written == {r["file"] for r in _manifest(out).values() if r["status"] == "ok"}


def test_a_users_file_is_kept_and_offline_is_one_line(web, tmp_path):
    urls, out = _lists(web, tmp_path / "urls"), tmp_path / "data"
    (out / "train" / "cats").mkdir(parents=True)
    (out / "train" / "cats" / "00000000.jpg").write_bytes(b"mine")
    with pytest.raises(DataError, match="was not written by fishbear"):
        fetch_dataset(urls, out, fetch=FAST)
    assert (out / "train" / "cats" / "00000000.jpg").read_bytes() == b"mine"

    dead = tmp_path / "dead.txt"
    dead.write_text("".join(f"http://127.0.0.1:9/img/{i}\n" for i in range(10)))  # port 9: refused
    with pytest.raises(OfflineError, match="could be reached .*offline"):
        fetch_dataset(dead, tmp_path / "offline", label="x", fetch=FAST)


def test_url_lists_in_three_layouts(tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "urls_grizzly.txt").write_text("https://a.example/1\n\nhttps://a.example/2\nftp://x\n")
    (tmp_path / "lists" / "black.txt").write_text("https://b.example/1?x=1&s\n")
    (tmp_path / "lists" / "notes.md").write_text("not a list")
    lists = read_url_lists(tmp_path / "lists")
    assert lists.classes == ["black", "grizzly"] and lists.blank == 1 and lists.malformed == 1
    assert [(e.label, e.line, e.valid) for e in lists.entries] == [("black", 0, True), ("grizzly", 0, True),
                                                                    ("grizzly", 2, True), ("grizzly", 3, False)]
    assert class_of(Path("urls_teddys.txt")) == "teddys" and class_of(Path("urls_.txt")) == "urls_"
    (tmp_path / "one.csv").write_text("url,label\nhttps://c.example/1,cat\n,\nhttps://c.example/2,dog\n")
    assert [(e.label, e.line) for e in read_url_lists(tmp_path / "one.csv").entries] == [("cat", 0), ("dog", 2)]
    with pytest.raises(DataError, match="class="):
        read_url_lists(tmp_path / "lists" / "black.txt")
    assert read_url_lists(tmp_path / "lists" / "black.txt", "bear").classes == ["bear"]
    (tmp_path / "lists" / "grizzly.txt").write_text("https://a.example/3\n")
    with pytest.raises(DataError, match="both lists of class 'grizzly'"):
        read_url_lists(tmp_path / "lists")
    assert robots_refusal("noindex, noai") == "noai" and robots_refusal("otherbot: noimageai") == "noimageai"
    assert robots_refusal("noindex") is None


@pytest.mark.slow
def test_data_folder_trains_on_a_fetched_dataset(web, tmp_path):
    from fishbear.train import train
    from tests.conftest import compose_train

    out = _command(web, tmp_path)
    report = train(compose_train(["data=folder", f"data.root={out}", "data.image_size=32", "data.batch_size=4",
                                  "data.num_workers=0", "trainer.max_epochs=1", "data.valid_pct=0.3",
                                  "trainer.num_sanity_val_steps=0", "logger=none", "data.duplicates=report"],
                                 tmp_path / "run"))
    assert report["data"]["classes"] == ["cats", "dogs"]


@pytest.mark.slow
def test_the_shared_lists_through_the_standin(web, tmp_path):
    urls, placed = _shared(web, tmp_path)
    out = tmp_path / "bears"
    outcome = fetch_dataset(urls, out, fetch=FAST)
    rows = _manifest(out)
    by_path = {path_of(r["url"]): r for r in rows.values()}
    expect = {"403": ("failed", "HTTP 403"), "flaky": ("ok", ""), "timeout": ("failed", "timed out"),
              "loop": ("failed", "too many redirects"), "html": ("failed", "not an image"),
              "truncated": ("failed", "truncated"), "bomb": ("failed", "too many pixels"),
              "robots": ("skipped", "X-Robots-Tag"), "two urls": ("duplicate", ""),
              "two classes": ("ok", "")}  # black comes first: the grizzly line it took the photo of is the duplicate
    for name, path in placed.items():
        status, error = expect[name]
        assert by_path[path]["status"] == status and by_path[path]["error"].startswith(error), (name, by_path[path])
    assert "another class" not in by_path[placed["two urls"]]["duplicate_of"]
    # the grizzly line whose photo black served first: a duplicate under another class
    assert any(r["class"] == "grizzly" and "another class" in r["duplicate_of"] for r in rows.values())
    assert len(rows) == 960 and outcome.blank == 240
    # lines 200-399 were never downloaded by the lesson: nothing serves them (404), as the dead web
    assert all(r["status"] == "failed" and r["error"] == "HTTP 404" for r in rows.values() if int(r["line"]) >= 200)
    # the known byte-identical pairs of the shared folder: kept once (black_169 = grizzly_122; teddys_72 = teddys_151)
    assert rows["grizzly:122"]["status"] == "duplicate" and "another class" in rows["grizzly:122"]["duplicate_of"]
    assert rows["teddys:151"]["status"] == "duplicate" and rows["teddys:151"]["duplicate_of"] == "urls_teddys.txt:72"
    ok = outcome.count("ok")
    assert ok == sum(1 for _ in (out / "train").rglob("*.jpg")) and ok > 440
    print(outcome.summary())

    before = dict(web.requests)
    again = fetch_dataset(urls, out, fetch=FAST)
    asked = {path for path, n in web.requests.items() if n != before.get(path, 0)}
    assert asked == {placed["timeout"]} and again.count("ok") == ok


@pytest.mark.slow
def test_a_killed_fetch_completes_on_the_next_run_with_nothing_lost_or_doubled(web, tmp_path):
    urls, _ = _shared(web, tmp_path)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    fetch_dataset(urls, whole, fetch=FAST)
    web.delay = 0.02
    command = [sys.executable, "-m", "fishbear.fetch", f"urls={urls}", f"out={killed}", "timeout=1", "retries=2",
               "workers=4", "backoff=0.05"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONWARNINGS": "ignore"})
    log = killed / ".fetch" / "downloads.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.is_file() or len(log.read_text().splitlines()) < 300):
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "manifest.csv").exists()  # killed in the download phase
    web.delay = 0.0
    fetch_dataset(urls, killed, fetch=FAST)
    a, b = _manifest(whole), _manifest(killed)
    assert {k: (r["status"], r["sha256"], r["file"]) for k, r in a.items()} == \
        {k: (r["status"], r["sha256"], r["file"]) for k, r in b.items()}
    files_a = sorted(p.relative_to(whole).as_posix() for p in whole.rglob("*.jpg"))
    files_b = sorted(p.relative_to(killed).as_posix() for p in killed.rglob("*.jpg"))
    assert files_a == files_b
    assert all((whole / f).read_bytes() == (killed / f).read_bytes() for f in files_a)


def test_a_data_config_fetches_its_url_lists_on_first_use_into_an_empty_root(web, tmp_path):
    from fishbear.data.web_dataset import UrlListSource
    from tests.conftest import compose_train

    urls = _lists(web, tmp_path / "urls")
    cfg = compose_train(["data=bears", f"data.source.urls={urls}", f"data.root={tmp_path / 'bears'}",
                         "+data.source.timeout=1", "+data.source.retries=1", "+data.source.backoff=0.05",
                         "data.source.test_per_class=1"])
    from fishbear.engine.config import instantiate

    source = instantiate(cfg.data.source, "data.source")
    assert isinstance(source, UrlListSource) and source.clean.test_per_class == 1 and source.fetch.timeout == 1
    source.prepare(tmp_path / "bears")
    assert (tmp_path / "bears" / "manifest.csv").is_file() and len(list((tmp_path / "bears" / "test").rglob("*.jpg"))) == 2
    asked = sum(web.requests.values())
    source.prepare(tmp_path / "bears")  # there: nothing fetched
    assert sum(web.requests.values()) == asked
    mine = tmp_path / "mine"
    (mine / "train" / "a").mkdir(parents=True)
    (mine / "train" / "a" / "x.jpg").write_bytes(_photo(5))
    with pytest.raises(DataError, match="mix its images into yours"):
        source.prepare(mine)
    with pytest.raises(DataError, match="unknown fetch setting"):
        UrlListSource(urls="x", colour="red")


# -- hostile lists, servers and state files: a bad input costs itself only, nothing leaves out/ ----------------
def test_a_class_name_that_is_a_path_is_refused_and_nothing_is_written(web, tmp_path):
    web.photos["/img/a"] = _photo(7)
    csv_list = tmp_path / "urls.csv"
    csv_list.write_text(f"url,label\n{web.base}/img/a,cats\n{web.base}/img/a,../../../outside/x\n")
    with pytest.raises(DataError, match=r"urls\.csv, data row 2: the class '\.\./\.\./\.\./outside/x' holds a path"):
        fetch_dataset(csv_list, tmp_path / "data", fetch=FAST)
    one = tmp_path / "one.txt"
    one.write_text(f"{web.base}/img/a\n")
    for bad in ("../../x", "..", ".hidden", "a\\b"):
        with pytest.raises(DataError, match="class="):
            fetch_dataset(one, tmp_path / "data2", label=bad, fetch=FAST)
    assert not (tmp_path / "outside").exists() and not (tmp_path / "data").exists()
    assert web.requests == {}  # refused before any URL was asked for


def test_a_malformed_header_or_url_is_that_lines_failure_and_the_others_go_on(web, tmp_path):
    for i in range(3):
        web.photos[f"/img/{i}"] = _photo(200 + i)
    web.faults["/img/1"] = Fault("length", length="abc")
    size = str(len(web.photos["/img/2"]))
    web.faults["/img/2"] = Fault("length", length=f"{size}, {size}")  # one length said twice
    web.photos["/img/3"] = _photo(203)
    web.faults["/img/3"] = Fault("length", length=str(len(_photo(203))) + "0")  # claims ten times its bytes
    lists = tmp_path / "urls"
    lists.mkdir()
    (lists / "cats.txt").write_text("\n".join([f"{web.base}/img/0", f"{web.base}/img/1", f"{web.base}/img/2",
                                               "http://[::1/broken.jpg", f"{web.base}/img/3"]) + "\n")
    out = tmp_path / "data"
    for _ in range(2):  # and again: a re-run meets the same lines the same way
        outcome = fetch_dataset(lists, out, fetch=FAST)
        rows = _manifest(out)
        assert rows["cats:0"]["status"] == "ok" and rows["cats:1"]["status"] == "ok"
        assert rows["cats:2"]["status"] == "ok"   # a doubled length is counted as the bytes come
        assert rows["cats:3"]["status"] == "skipped" and rows["cats:3"]["error"] == "not an http(s) URL"
        assert rows["cats:4"]["status"] == "failed"  # the body ended before its declared length
        assert outcome.count("ok") == 3


def test_a_dripping_server_is_cut_off_at_the_request_time_limit(web, tmp_path):
    web.photos["/img/ok"] = _photo(300)
    web.photos["/img/drip"] = _photo(301)
    web.faults["/img/drip"] = Fault("drip", every=0.1)
    lists = tmp_path / "urls"
    lists.mkdir()
    (lists / "cats.txt").write_text(f"{web.base}/img/ok\n{web.base}/img/drip\n")
    started = time.monotonic()
    fetch_dataset(lists, tmp_path / "data", fetch=FetchSettings(workers=2, timeout=1.0, retries=1, backoff=0.05))
    took = time.monotonic() - started
    rows = _manifest(tmp_path / "data")
    assert rows["cats:0"]["status"] == "ok"
    assert rows["cats:1"]["status"] == "failed" and rows["cats:1"]["error"].startswith("timed out after 1 s")
    assert took < 6, took  # two attempts of 1 s each, not the drip's minutes


def test_state_files_are_read_as_data_and_never_through_links(web, tmp_path):
    import json

    lists, out = _fetched(web, tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    log = out / ".fetch" / "downloads.jsonl"
    saved = log.read_text()
    # a record naming a path where its sha256 belongs
    first = json.loads(saved.splitlines()[0])
    log.write_text(saved + json.dumps({**first, "sha256": "../../outside.txt"}) + "\n")
    with pytest.raises(DataError, match=r"downloads\.jsonl, line 3: not a download record .*64 hex digits"):
        fetch_dataset(lists, out, fetch=FAST)
    # a link planted in the log's place: refused, nothing appended through it
    log.unlink()
    log.symlink_to(outside)
    with pytest.raises(DataError, match="is a symbolic link"):
        fetch_dataset(lists, out, fetch=FAST)
    assert outside.read_text() == "secret\n"
    log.unlink()
    log.write_text(saved + '{"key": "cats/00000001", "url": "cut by a ki')  # a kill's cut line: passed over
    fetch_dataset(lists, out, fetch=FAST)
    # the output journal: a link in its place is refused, nothing written through it
    journal = out / "train" / "cats" / ".fishbear-written.jsonl"
    journal.unlink()
    journal.symlink_to(outside)
    with pytest.raises(DataError, match="is a symbolic link"):
        fetch_dataset(lists, out, fetch=FAST)
    assert outside.read_text() == "secret\n"


def test_a_hand_edited_manifest_cannot_make_a_fetch_delete_outside_its_folder(web, tmp_path):
    lists, out = _fetched(web, tmp_path)
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(out, copy)  # a copy kept elsewhere, journals and all
    kept = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    manifest = out / "manifest.csv"
    rows = manifest.read_text().splitlines()
    victim = copy / "train" / "cats" / "00000000.jpg"
    rows.append(rows[1].replace("train/cats/00000000.jpg", str(victim)).replace(",1,", ",9,", 1))
    manifest.write_text("\n".join(rows) + "\n")
    # the manifest is the user's now: overwrite=true is needed to go on, and still nothing outside is touched
    with pytest.raises(DataError, match=r"manifest\.csv, line 4: the file '/.*' is not a path inside"):
        fetch_dataset(lists, out, fetch=FAST, overwrite=True)
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == kept


def test_the_command_prints_the_summary(web, tmp_path, capsys):
    out = _command(web, tmp_path)
    printed = capsys.readouterr().out
    assert "7 ok, 7 failed" in printed and "train/cats 5" in printed and f"data.root={out}" in printed
