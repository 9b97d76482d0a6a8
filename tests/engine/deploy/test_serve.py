"""fishbear serve: a real server on a free loopback port, answers compared with fishbear predict's."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fishbear.engine.deploy.serve_client import ServedModel
from tests.conftest import SHARED_DATA, TINY, compose_train
from tests.web_standin import bomb_png

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def served(trained_run):
    run_dir, report = trained_run
    server = ServedModel(run_dir / "checkpoints" / "best.ckpt", "max_bytes=300000")
    yield server, run_dir, Path(report["data"]["root"])
    server.stop()


def _predicted(ckpt: Path, files: list[Path]) -> dict[str, dict]:
    from fishbear.engine.inference import Predictor

    return {str(p): a for p, a in Predictor.from_checkpoint(ckpt).predict_files(files)}


# -- every kind, through a server of its own ------------------------------------------------------
KINDS = {
    "multilabel": ["data=shapes_tags"], "segment": ["data=shapes_masks", "model=unet", "model.encoder=resnet18"],
    "points": ["data=shapes_points"], "regress": ["data=shapes_counts"],
}


def _close(a, b, tol: float = 1e-4) -> bool:
    if isinstance(a, dict):
        return set(a) == set(b) and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= tol
    return a == b


def _strip_png(width: int = 30_000_000) -> bytes:
    """A small PNG of 1 x ``width`` pixels: it decodes (30 M pixels is under the cap) but cannot be
    fitted to a model's square input (the crop would first scale it to 224 x 6.7e9)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, 1), 90).save(buffer, format="PNG")
    return buffer.getvalue()


def _serve_cli(args: list[str], env: dict | None = None, timeout: int = 120):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "fishbear.serve", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})


def test_concurrent_requests_each_get_their_own_answer(served):
    server, run_dir, root = served
    files = sorted((root / "test").rglob("*.jpg"))
    expected = _predicted(run_dir / "checkpoints" / "best.ckpt", files)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(server.post_file, files * 2))  # each file twice, interleaved with the others
    assert len(answers) == 2 * len(files) == 32
    for path, (status, answer) in zip(files * 2, answers):
        assert status == 200, answer
        want = expected[str(path)]
        assert answer["label"] == want["label"]
        assert max(abs(answer["probabilities"][c] - p) for c, p in want["probabilities"].items()) < 1e-5


def test_bad_input_is_a_4xx_with_a_message_and_the_server_keeps_serving(served):
    server, _, root = served
    good = next((root / "test").rglob("*.jpg"))
    cases = [
        (b"this is not an image", "image/jpeg", 400, "not an image"),
        (b"", "image/png", 400, "no image"),
        (bomb_png(), "image/png", 413, "pixels"),
        (b"hello", "text/plain", 415, "content type"),
        (b"\xff" * 400_000, "image/jpeg", 413, "bytes"),
        (good.read_bytes()[: len(good.read_bytes()) // 2], "image/jpeg", 400, "truncated"),
        (b'{"image": "%%%"}', "application/json", 400, "base64"),
    ]
    for body, kind, status, words in cases:
        got, answer = server.post(body, kind)
        assert got == status and words in answer["error"], (kind, got, answer)
        assert server.post(good.read_bytes(), "image/jpeg")[0] == 200   # still serving
    boundary = "b"
    no_field = f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--{boundary}--\r\n".encode()
    got, answer = server.post(no_field, f"multipart/form-data; boundary={boundary}")
    assert got == 400 and "'image'" in answer["error"]


def test_health_info_and_the_page(served):
    server, run_dir, _ = served
    assert server.get("/health") == (200, b"ok")
    info = json.loads(server.get("/info")[1])["model"]
    assert info["kind"] == "classify" and info["classes"] == ["circle", "square", "star", "triangle"]
    assert info["backend"] == "pytorch" and "test/acc" in info["metrics"] and info["metrics"]["test/acc"]["low"] is not None
    status, page = server.get("/")
    assert status == 200 and b"fishbear serve" in page and b"/predict" in page


@pytest.mark.slow
def test_the_page_shows_the_answer_drawn_on_a_shared_photo(served, tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    server, _, root = served
    photos = sorted((SHARED_DATA / "bears" / "test").rglob("*.jpg")) or sorted((root / "test").rglob("*.jpg"))
    photo = photos[0]
    from PIL import Image

    with Image.open(photo) as image:
        size = image.size
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                           "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.goto(server.base + "/")
        page.wait_for_function("document.querySelector('#model').textContent.includes('classify')")
        page.set_input_files("#file", str(photo))
        page.wait_for_function("document.querySelector('#canvas').style.display === 'block'")
        label = page.inner_text("#label")
        assert label in ("circle", "square", "star", "triangle")
        assert page.locator(".bar").count() == 4
        assert page.evaluate("[document.querySelector('#canvas').width, document.querySelector('#canvas').height]") == list(size)
        page.screenshot(path=str(tmp_path / "serve.png"))
        browser.close()


def _served_case(kind: str, tmp_path: Path, trained_run, trained_detector) -> tuple[Path, list[Path]]:
    """The checkpoint or export folder a case serves, and the pictures sent to it."""
    from fishbear.export import main as export
    from fishbear.train import train

    if kind in ("detect", "detect_export"):  # the export folder: onnxruntime answers, one picture a run
        ckpt, images = trained_detector
        if kind == "detect_export":
            ckpt = tmp_path / "export"
            assert export([f"ckpt={trained_detector[0]}", f"out={ckpt}"])["passed"]
        return ckpt, sorted(images.glob("*.jpg"))
    if kind == "export":
        run_dir, report = trained_run
        export([f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'export'}"])
        return tmp_path / "export", sorted((Path(report["data"]["root"]) / "test").rglob("*.jpg"))[:8]
    overrides = ["model=timm", "model.name=test_convnext"] if kind == "timm_export" else KINDS[kind]
    report = train(compose_train(TINY + overrides + ["logger=none"], tmp_path / "run"))
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    if kind == "timm_export":  # a timm network's graph, its own mean and std in the export's settings
        assert export([f"ckpt={ckpt}", f"out={tmp_path / 'export'}"])["passed"]
        ckpt = tmp_path / "export"
    return ckpt, sorted((Path(report["data"]["root"])).rglob("*.jpg"))[:8]


@pytest.mark.slow
@pytest.mark.parametrize("kind", [*KINDS, "detect", "export", "timm_export", "detect_export"])
def test_every_kind_answers_as_predict_does(kind, tmp_path, trained_run, trained_detector):
    ckpt, files = _served_case(kind, tmp_path, trained_run, trained_detector)
    from fishbear.engine.deploy.exported import open_predictor
    from fishbear.engine.deploy.serving import jsonable

    expected = {str(p): jsonable(a) for p, a in open_predictor(ckpt).predict_files(files)}
    server = ServedModel(ckpt)
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(server.post_file, files))
    finally:
        server.stop()
    for path, (status, answer) in zip(files, answers):
        assert status == 200, answer
        want = expected[str(path)]
        assert set(answer) == set(want)
        if "mask" in want:
            import base64

            from PIL import Image

            decoded = [Image.open(io.BytesIO(base64.b64decode(m["mask"]["png"].split(",", 1)[1]))) for m in (answer, want)]
            assert list(decoded[0].getdata()) == list(decoded[1].getdata())
        for key in ("label", "tags", "boxes", "points", "values", "probabilities"):
            if key in want:
                assert _close(answer[key], want[key]), key


def test_sigterm_stops_every_process_of_the_server(trained_run):
    """``kill PID`` as a service manager stops a service: the API and inference workers go with the
    main process (LitServe stopped them only on Ctrl-C; they outlived it, holding the port)."""
    import time

    server = ServedModel(trained_run[0] / "checkpoints" / "best.ckpt")
    try:
        assert server.group_alive()
        server.process.terminate()
        server.process.wait(timeout=30)
        deadline = time.time() + 15
        while server.group_alive() and time.time() < deadline:
            time.sleep(0.2)
        assert not server.group_alive(), "a worker of the stopped server still runs"
    finally:
        server.stop()


def test_a_picture_that_cannot_be_fitted_costs_its_sender_only(served):
    server, _, root = served
    good = next((root / "test").rglob("*.jpg")).read_bytes()
    strip = _strip_png()
    bodies = [(strip, "image/png")] + [(good, "image/jpeg")] * 7  # batched together (batch=8)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: server.post(*b), bodies))
    assert answers[0][0] == 413 and "proportions" in answers[0][1]["error"], answers[0]
    assert [status for status, _ in answers[1:]] == [200] * 7
    # a multipart body without its boundary, a Content-Length that is no number: 400, not 500
    assert server.post(b"--x\r\n\r\n", "multipart/form-data")[0] == 400
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("POST", "/predict")
    connection.putheader("Content-Type", "image/jpeg")
    connection.putheader("Content-Length", "abc")
    connection.endheaders()
    assert connection.getresponse().status == 400
    connection.close()


def test_a_busy_port_and_an_open_host_without_a_token_are_one_line(trained_run):
    import socket

    ckpt = trained_run[0] / "checkpoints" / "best.ckpt"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ran = _serve_cli([f"ckpt={ckpt}", f"port={busy.getsockname()[1]}"])
    assert ran.returncode == 2 and ran.stderr.startswith("error: port") and "in use" in ran.stderr, ran.stderr
    assert "Serving" not in ran.stdout and "Traceback" not in ran.stderr
    ran = _serve_cli([f"ckpt={ckpt}", "host=0.0.0.0", "port=18999"], env={"FISHBEAR_SERVE_TOKEN": ""})
    assert ran.returncode == 2 and "give a token" in ran.stderr and "insecure=true" in ran.stderr, ran.stderr
    ran = _serve_cli([f"ckpt={ckpt}", "port=18999", "token=short"])
    assert ran.returncode == 2 and "shorter than 16" in ran.stderr


def test_beyond_loopback_every_request_carries_the_token(trained_run):
    import secrets

    token = secrets.token_urlsafe(24)
    server = ServedModel(trained_run[0] / "checkpoints" / "best.ckpt", "host=0.0.0.0", token=token)
    try:
        picture = next((Path(trained_run[1]["data"]["root"]) / "test").rglob("*.jpg")).read_bytes()
        assert server.get("/health", token="")[0] == 200   # a load balancer's probe: says only "ok"
        assert server.get("/", token="")[0] == 200          # the page, which asks for the token
        for wrong in ("", "x" * 32, token[:-1]):
            assert server.get("/info", token=wrong)[0] == 401
            status, answer = server.post(picture, "image/jpeg", token=wrong)
            assert status == 401 and "token" in answer["error"]
        assert server.get("/info")[0] == 200
        assert server.post(picture, "image/jpeg")[0] == 200
        assert token not in server.output()  # never in the server's log
    finally:
        server.stop()
