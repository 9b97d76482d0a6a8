"""fishbear fetch: URL lists to a clean ImageFolder, against a stand-in for the web on 127.0.0.1."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.web_standin import Fault, Standin


def _photo(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)  # a smooth picture: its own perceptual hash
    picture = Image.fromarray(base).resize(size, Image.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


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


def test_the_command_prints_the_summary(web, tmp_path, capsys):
    out = _command(web, tmp_path)
    printed = capsys.readouterr().out
    assert "7 ok, 7 failed" in printed and "train/cats 5" in printed and f"data.root={out}" in printed
