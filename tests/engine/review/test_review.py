"""fishbear review: the page (driven by a headless chromium), the decision log, apply and undo."""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import compose_train

CHROMIUM = Path("/usr/bin/chromium")


BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def reviewed_run(tmp_path_factory):
    """A tiny classifier trained on tiny shapes of its own (apply moves their files)."""
    from fishbear.data.shapes import ShapesSource
    from fishbear.kinds import get_kind
    from fishbear.train import train

    base = tmp_path_factory.mktemp("review")
    data = ShapesSource(image_size=32, train=8, valid=3, test=4, seed=0).prepare(base / "data", get_kind("classify"))
    run = base / "run"
    train(compose_train(["data=folder", f"data.root={data}", "data.image_size=32", "data.batch_size=8",
                         "data.num_workers=0", "trainer.max_epochs=1", "trainer.num_sanity_val_steps=0",
                         "logger=none", "model=convnet"], run))
    return run, Path(data)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


# -- the review's state files are data, its moves check the bytes decided on ---------------------------------
def _dataset(root: Path) -> Path:
    """cat/ and dog/ with two distinct files each."""
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(2):
            (root / label / f"{label[0]}{i}.jpg").write_bytes(f"{label}{i}".encode() * 50)
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_only_the_reviews_pictures_are_served_and_only_with_the_token(reviewed_run, tmp_path):
    from fishbear.review import main

    run, data = reviewed_run
    server = main([f"run={run}", "background=true"])
    (data / "test" / "circle" / "link.jpg").symlink_to("/etc/hostname")  # planted after the review started
    try:
        base, token = server.url.split("/?token=")
        state = json.loads(_get(f"{base}/api/state?token={token}")[1])
        first = state["items"][0]["file"]
        assert _get(f"{base}/image?token={token}&file={first}")[0] == 200
        assert _get(f"{base}/image?file={first}")[0] == 403                 # no token
        assert _get(f"{base}/image?token=wrong&file={first}")[0] == 403
        assert _get(f"{base}/api/state")[0] == 403 and _get(f"{base}/")[0] == 403
        for bad in ("../run/checkpoints/best.ckpt", "/etc/hostname", "test/circle/link.jpg",
                    "test/../../run/report.json", "test\\circle\\x.jpg", ""):
            assert _get(f"{base}/image?token={token}&file={urllib.request.quote(bad)}")[0] == 404, bad
        # deciding on a file that is not a card is refused too
        request = urllib.request.Request(f"{base}/api/decide?token={token}", method="POST",
                                         data=json.dumps({"file": "../x.jpg", "action": "remove"}).encode())
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request)
        assert refused.value.code == 400
    finally:
        server.stop()
        (data / "test" / "circle" / "link.jpg").unlink()


def test_the_page_decides_by_keyboard_keeps_decisions_and_apply_undo_round_trip(reviewed_run, tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    from fishbear.review import main

    run, data = reviewed_run
    shutil.rmtree(run / "review", ignore_errors=True)
    before = _tree(data)
    server = main([f"run={run}", "background=true"])
    classes = json.loads((run / "review" / "review.json").read_text())["classes"]
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(server.url)
            page.wait_for_selector(".card")
            cards = page.locator(".card")
            first, second, third = (cards.nth(i).get_attribute("data-file") for i in range(3))
            label = first.split("/")[1]
            new = next(c for c in classes if c != label)
            page.keyboard.press(str(classes.index(new) + 1))   # relabel the first card
            page.keyboard.press("x")                          # remove the second
            page.keyboard.press("x")                          # remove the third
            page.keyboard.press("u")                          # undo that
            page.wait_for_function("document.querySelector('#status').textContent.includes('2 decided \u00b7 saved')")
            page.reload()
            page.wait_for_selector(".card")
            decided = {c.get_attribute("data-file"): c.locator(".decision").inner_text()
                       for c in page.locator(".card").all()}
            assert decided[first] == f"relabel \u2192 {new}" and decided[second] == "remove" and decided[third] == ""
            page.screenshot(path=str(tmp_path / "review.png"))
            browser.close()
    finally:
        server.stop()
    # the decisions are on disk: a new server (a killed one's successor) shows them
    again = main([f"run={run}", "background=true"])
    try:
        assert set(again.state()["decisions"]) == {first, second}
    finally:
        again.stop()

    main(["apply", f"run={run}"])
    after = _tree(data)
    moved_to = first.replace(f"/{label}/", f"/{new}/", 1)
    assert set(before) - set(after) == {first, second}
    assert set(after) - set(before) == {moved_to, f"_removed/{second}"}
    assert after[moved_to] == before[first] and after[f"_removed/{second}"] == before[second]
    from fishbear.data.review_note import dataset_note

    assert dataset_note(data)["relabelled"] == 1
    main(["apply", f"run={run}"])                             # idempotent
    assert _tree(data) == after
    main(["undo", f"run={run}"])
    assert _tree(data) == before and not (data / "_removed").exists()


def test_the_decision_log_undoes_in_order_and_survives_a_cut_line(tmp_path):
    from fishbear.engine.review.log import DecisionLog

    log = DecisionLog(tmp_path / "decisions.jsonl")
    log.decide("a.jpg", "relabel", "dog", ["cat", "dog"], "a" * 64)
    log.decide("b.jpg", "remove", None, ["cat", "dog"], "b" * 64)
    log.decide("a.jpg", "keep", None, ["cat", "dog"])
    assert log.undo()["file"] == "a.jpg"
    assert {f: d["action"] for f, d in log.effective().items()} == {"a.jpg": "relabel", "b.jpg": "remove"}
    with open(tmp_path / "decisions.jsonl", "a") as handle:
        handle.write('{"seq": 9, "file": "c.j')                 # a kill mid-line
    reread = DecisionLog(tmp_path / "decisions.jsonl")
    assert {f: d["action"] for f, d in reread.effective().items()} == {"a.jpg": "relabel", "b.jpg": "remove"}
    from fishbear.core.errors import DataError

    with pytest.raises(DataError, match="the classes are"):
        reread.decide("a.jpg", "relabel", "bird", ["cat", "dog"], "a" * 64)


def test_sorted_frames_put_the_marked_ones_first_with_their_neighbours(tmp_path):
    from fishbear.engine.review.items import frames_items

    rows = ["frame,time,file,class,confidence,score_fish,smoothed_fish,review"]
    for i in range(6):
        label = "fish" if i % 2 else "no_fish"
        rows.append(f"{i},{i}.0,{label}/frame_{i:06d}.jpg,{label},0.9,0.5,{0.1 * i:.2f},{'yes' if i == 4 else ''}")
        (tmp_path / label).mkdir(exist_ok=True)
        (tmp_path / label / f"frame_{i:06d}.jpg").write_bytes(b"")
    (tmp_path / "frames.csv").write_text("\n".join(rows) + "\n")
    found = frames_items(tmp_path, neighbours=1)
    assert found.items[0].file == "no_fish/frame_000004.jpg" and found.items[0].note == "review"
    assert found.items[0].neighbours == ["fish/frame_000003.jpg", "fish/frame_000005.jpg"]
    assert found.items[1].file == "fish/frame_000005.jpg"  # smoothed 0.5: the least sure next
    assert found.classes == ["fish", "no_fish"] and found.class_depth == 0


def test_a_reviewed_dataset_says_so_in_the_next_runs_report(reviewed_run, tmp_path):
    from fishbear.data.review_note import DATASET_NOTE
    from fishbear.train import train

    _, data = reviewed_run
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    (copy / DATASET_NOTE).write_text(json.dumps({"review": "run=/x", "relabelled": 3, "removed": 2,
                                                 "applied": "2026-12-01T10:00:00"}))
    report = train(compose_train(["data=folder", f"data.root={copy}", "data.image_size=32", "data.batch_size=8",
                                  "data.num_workers=0", "trainer.max_epochs=1", "trainer.num_sanity_val_steps=0",
                                  "logger=none"], tmp_path / "run"))
    assert report["data"]["review"]["relabelled"] == 3
    assert "3 images relabelled, 2 removed" in (tmp_path / "run" / "report.md").read_text()


def test_a_detection_run_goes_to_the_box_tools_and_reads_back(trained_detector, tmp_path):
    from fishbear.formats.labelstudio import LabelStudioReader
    from fishbear.review import main

    ckpt, _ = trained_detector
    pictures = main([f"run={ckpt.parent.parent}"])
    tasks = json.loads((pictures / "labelstudio" / "tasks.json").read_text())
    scored = [r["score"] for t in tasks for r in t["predictions"][0]["result"]]
    assert len(tasks) == len(list(pictures.glob("*/*.jpg"))) > 0 and all(0.05 <= s <= 1 for s in scored)
    read = LabelStudioReader(json="labelstudio/tasks.json", source="predictions")(pictures)
    assert sum(len(s.target) for s in read.splits["train"]) == len(scored)
    assert (pictures / "coco" / "instances.json").is_file()


def test_decision_lines_are_checked_and_numbers_never_reused(tmp_path):
    from fishbear.core.errors import DataError
    from fishbear.engine.review.log import DecisionLog

    path = tmp_path / "decisions.jsonl"
    for line, words in ((json.dumps({"file": "cat/0.jpg", "action": "remove", "label": None, "time": "t"}), "'seq'"),
                        (json.dumps({"seq": 0, "file": "cat/0.jpg", "action": "relabel", "label": None,
                                     "sha256": "a" * 64}), "has no 'label'"),
                        (json.dumps({"seq": 0, "file": "../x.jpg", "action": "keep"}), "not a path inside"),
                        (json.dumps({"seq": 0, "file": "cat/0.jpg", "action": "burn"}), "'action'"),
                        ("[1, 2]", "JSON object")):
        path.write_text(line + "\n" + json.dumps({"seq": 1, "file": "dog/0.jpg", "action": "keep"}) + "\n")
        with pytest.raises(DataError, match=rf"decisions\.jsonl, line 1: .*{words}"):
            DecisionLog(path)
    path.unlink()
    log = DecisionLog(path)
    for i, file in enumerate(("cat/0.jpg", "cat/1.jpg", "dog/0.jpg")):
        log.decide(file, "remove", None, ["cat", "dog"], str(i) * 64)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:1] + lines[2:]) + "\n")    # a line deleted by hand (seq 1)
    again = DecisionLog(path)
    again.decide("dog/1.jpg", "keep", None, ["cat", "dog"])     # seq 3, not a second 2
    assert again.undo()["file"] == "dog/1.jpg" and again.undo()["file"] == "dog/0.jpg"
    assert set(DecisionLog(path).effective()) == {"cat/0.jpg"}
    outside = tmp_path / "outside.jsonl"
    outside.write_text("")
    path.unlink()
    path.symlink_to(outside)
    with pytest.raises(DataError, match="symbolic link"):
        DecisionLog(path).decide("cat/0.jpg", "keep", None, ["cat", "dog"])
    assert outside.read_text() == ""


def test_apply_moves_only_the_file_decided_on_and_undo_only_what_it_moved(tmp_path):
    from fishbear.core.errors import DataError
    from fishbear.data.review_note import dataset_note
    from fishbear.engine.review.log import DecisionLog, apply, dataset_lock, undo

    root = _dataset(tmp_path / "data")
    before = _tree(root)
    log = DecisionLog(tmp_path / "a" / "decisions.jsonl")
    log.decide("cat/c0.jpg", "relabel", "dog", ["cat", "dog"], _sha(root / "cat" / "c0.jpg"))
    log.decide("cat/c1.jpg", "remove", None, ["cat", "dog"], _sha(root / "cat" / "c1.jpg"))
    # a new photo took a reviewed name after the decision: not the one decided on, nothing moves
    (root / "cat" / "c1.jpg").write_bytes(b"a new photo of the user's")
    new = _tree(root)
    with pytest.raises(DataError, match=r"cat/c1\.jpg is not the file decided on .*Nothing was moved"):
        apply(root, log.effective(), 0, {}, tmp_path / "a" / "applied.jsonl", "run=a")
    assert _tree(root) == new   # refused before anything moved (cat/c0's move comes first in order)
    (root / "cat" / "c1.jpg").write_bytes(b"cat1" * 50)
    # two reviews of one dataset: their notes kept apart
    other = DecisionLog(tmp_path / "b" / "decisions.jsonl")
    other.decide("dog/d1.jpg", "remove", None, ["cat", "dog"], _sha(root / "dog" / "d1.jpg"))
    apply(root, log.effective(), 0, {}, tmp_path / "a" / "applied.jsonl", "run=a")
    apply(root, other.effective(), 0, {}, tmp_path / "b" / "applied.jsonl", "run=b")
    assert dataset_note(root)["removed"] == 2 and dataset_note(root)["relabelled"] == 1
    # a second apply while one holds the dataset is refused at once
    with dataset_lock(root), pytest.raises(DataError, match="being changed by another"):
        apply(root, log.effective(), 0, {}, tmp_path / "a" / "applied.jsonl", "run=a")
    # undo checks the bytes it moved: a moved file changed since is refused, nothing moves back
    moved = root / "dog" / "c0.jpg"
    saved = moved.read_bytes()
    moved.write_bytes(b"edited after the apply")
    with pytest.raises(DataError, match="not the file this review moved there"):
        undo(root, tmp_path / "a" / "applied.jsonl", "run=a")
    moved.write_bytes(saved)
    undo(root, tmp_path / "a" / "applied.jsonl", "run=a")
    assert dataset_note(root) == {"review": "run=b", "relabelled": 0, "removed": 1, "added": 0,
                                  "applied": dataset_note(root)["applied"]}  # run=b's note stays
    undo(root, tmp_path / "b" / "applied.jsonl", "run=b")
    assert _tree(root) == before and dataset_note(root) is None


def test_the_review_page_sends_pictures_as_read_and_no_link_out(reviewed_run, tmp_path):
    import io

    from PIL import Image

    from fishbear.engine.review.items import Item, ReviewSet
    from fishbear.engine.review.log import DecisionLog
    from fishbear.engine.review.server import ReviewServer

    root = tmp_path / "data"
    (root / "cat").mkdir(parents=True)
    upright = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6                     # stored on its side: shown 20 x 40 by every viewer
    upright.transpose(Image.Transpose.ROTATE_90).save(root / "cat" / "a.jpg", exif=exif)
    secret = tmp_path / "secret.jpg"
    upright.save(secret)
    (root / "cat" / "b.jpg").symlink_to(secret)  # a card whose file leads out of the dataset
    items = [Item(f"cat/{n}.jpg", "cat", "cat", 0.9, 0.9, 0.1) for n in "ab"]
    server = ReviewServer(ReviewSet(root, ["cat", "dog"], items, "test", 1), DecisionLog(tmp_path / "d.jsonl")).start()
    try:
        base, token = server.url.split("/?token=")
        status, body = _get(f"{base}/image?token={token}&file=cat/a.jpg")
        assert status == 200 and Image.open(io.BytesIO(body)).size == (40, 20)
        assert _get(f"{base}/image?token={token}&file=cat/b.jpg")[0] == 404
    finally:
        server.stop()
