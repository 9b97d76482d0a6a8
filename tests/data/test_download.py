"""Downloads against a local HTTP server on 127.0.0.1: success, resume after a cut, wrong checksum,
server down, and the offline message of data=pets."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from fishbear.data.download import Archive, DownloadError, download, extract
from tests.conftest import compose_train


def _tar_of_images(names: list[str]) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in names:
            image = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(image, "JPEG")
            info = tarfile.TarInfo(f"images/{name}")
            info.size = image.tell()
            image.seek(0)
            tar.addfile(info, image)
    return buffer.getvalue()


class Server:
    """Serves ``files`` with Range support; ``cut_after`` bytes into a body, it drops the connection."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.cut_after: int | None = None
        self.ranges: list[str | None] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                owner.ranges.append(self.headers.get("Range"))
                body = owner.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_error(416, "Range Not Satisfiable")
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                chunk = body[start:]
                if owner.cut_after is not None:
                    chunk = chunk[: owner.cut_after]
                self.wfile.write(chunk)
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


NAMES = ["Abyssinian_1.jpg", "Abyssinian_2.jpg", "beagle_1.jpg", "beagle_2.jpg", "beagle_3.jpg"]


@pytest.fixture
def archive_bytes() -> bytes:
    return _tar_of_images(NAMES)


def test_download_checks_the_checksum_and_is_not_repeated(tmp_path, archive_bytes):
    md5 = hashlib.md5(archive_bytes).hexdigest()
    with Server({"images.tar.gz": archive_bytes}) as server:
        dest = download(f"{server.url}/images.tar.gz", tmp_path / "images.tar.gz", f"md5:{md5}")
        assert dest.read_bytes() == archive_bytes
        assert not (tmp_path / "images.tar.gz.part").exists()
        download(f"{server.url}/images.tar.gz", dest, f"md5:{md5}")
        assert len(server.ranges) == 1  # cached and verified: no second request


def test_a_cut_download_resumes_with_a_range_request(tmp_path, archive_bytes):
    sha = hashlib.sha256(archive_bytes).hexdigest()
    dest = tmp_path / "images.tar.gz"
    with Server({"images.tar.gz": archive_bytes}) as server:
        server.cut_after = len(archive_bytes) // 3
        with pytest.raises(DownloadError, match=r"connection closed after .* bytes are kept in .*\.part; run again to resume"):
            download(f"{server.url}/images.tar.gz", dest, f"sha256:{sha}")
        part = tmp_path / "images.tar.gz.part"
        assert part.stat().st_size == len(archive_bytes) // 3
        assert not dest.exists()
        server.cut_after = None
        download(f"{server.url}/images.tar.gz", dest, f"sha256:{sha}")
    assert server.ranges == [None, f"bytes={len(archive_bytes) // 3}-"]
    assert dest.read_bytes() == archive_bytes


def test_a_wrong_checksum_deletes_the_file_and_says_so(tmp_path, archive_bytes):
    dest = tmp_path / "images.tar.gz"
    with Server({"images.tar.gz": archive_bytes}) as server:
        with pytest.raises(DownloadError, match=r"its md5 is [0-9a-f]{32}, not the expected 0{32}.*deleted"):
            download(f"{server.url}/images.tar.gz", dest, "md5:" + "0" * 32)
    assert not dest.exists() and not (tmp_path / "images.tar.gz.part").exists()


def test_server_down_names_the_url_and_where_to_put_the_files(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/images.tar.gz"
    source = Archive(url=url, expect="images", cache_dir=str(tmp_path / "downloads"), timeout=5)
    with pytest.raises(DownloadError) as err:
        source.prepare(tmp_path / "pets")
    message = str(err.value)
    assert url in message and "refused" in message.lower()
    assert f"put it at {tmp_path / 'downloads' / 'images.tar.gz'}" in message
    assert f"{tmp_path / 'pets' / 'images'} exists" in message


def test_missing_file_on_the_server_is_reported_with_the_status(tmp_path):
    with Server({}) as server:
        with pytest.raises(DownloadError, match=r"HTTP 404"):
            download(f"{server.url}/nothing.zip", tmp_path / "nothing.zip")


def test_archive_source_downloads_unpacks_and_feeds_the_regex_reader(tmp_path, archive_bytes):
    from fishbear.engine.data_config import image_data
    from fishbear.formats.name_regex import NameRegexReader

    md5 = hashlib.md5(archive_bytes).hexdigest()
    with Server({"data/images.tar.gz": archive_bytes}) as server:
        source = Archive(url=f"{server.url}/data/images.tar.gz", checksum=f"md5:{md5}", expect="images",
                         cache_dir=str(tmp_path / "downloads"))
        reader = NameRegexReader(pattern=r"^(.+)_\d+\.jpg$", folder="images",
                                 case_labels={"upper": "cat", "lower": "dog"})
        dm = image_data(root=tmp_path / "pets", reader=reader, source=source, image_size=32, num_workers=0)
        assert dm.classes == ["cat", "dog"]
        assert sorted(p.name for p in (tmp_path / "pets" / "images").iterdir()) == sorted(NAMES)
        assert not list(tmp_path.glob(".pets.unpacking"))
        requests = len(server.ranges)
        source.prepare(tmp_path / "pets")  # in place: nothing fetched
        assert len(server.ranges) == requests


def test_file_urls_work_and_zip_archives_unpack(tmp_path):
    import zipfile

    payload = tmp_path / "src.zip"
    with zipfile.ZipFile(payload, "w") as zipped:
        zipped.writestr("data/codes.txt", "Sky\nRoad\n")
    out = download(payload.as_uri(), tmp_path / "cache" / "src.zip")
    extract(out, tmp_path / "root")
    assert (tmp_path / "root" / "data" / "codes.txt").read_text() == "Sky\nRoad\n"


def test_unpacking_adds_what_is_new_and_never_replaces_the_users_files(tmp_path, caplog):
    import zipfile

    payload = tmp_path / "src.zip"
    with zipfile.ZipFile(payload, "w") as zipped:
        zipped.writestr("notes/readme.txt", "from the archive")
        zipped.writestr("images/a.jpg", "jpeg bytes")
    out = download(payload.as_uri(), tmp_path / "cache" / "src.zip")
    assert "no checksum in its config" in caplog.text
    root = tmp_path / "root"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "mine.txt").write_text("the user's own notes")
    extract(out, root)  # notes/ is merged, not replaced
    assert (root / "notes" / "mine.txt").read_text() == "the user's own notes"
    assert (root / "notes" / "readme.txt").read_text() == "from the archive" and (root / "images" / "a.jpg").is_file()
    extract(out, root)  # again: the same files are no clash
    (root / "notes" / "readme.txt").write_text("edited by the user")
    with pytest.raises(DownloadError, match=r"would replace .*notes/readme\.txt with the archive's notes/readme\.txt"):
        extract(out, root)
    assert (root / "notes" / "readme.txt").read_text() == "edited by the user"
    assert not (tmp_path / ".root.unpacking").exists()


def test_a_file_that_is_no_archive_is_named(tmp_path):
    bogus = tmp_path / "images.tar.gz"
    bogus.write_bytes(b"<html>proxy login page</html>")
    with pytest.raises(DownloadError, match=r"images.tar.gz is neither a tar nor a zip archive"):
        extract(bogus, tmp_path / "root")


def test_pets_config_carries_the_official_url_and_checksum():
    cfg = compose_train(["data=pets"])
    assert cfg.data.source.url == "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz"
    assert cfg.data.source.checksum == "md5:5c4f3ee8e5d25df40f4fd59a7f44e54c"
    assert cfg.data.reader.pattern == r"^(.+)_\d+\.jpg$"
