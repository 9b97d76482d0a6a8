"""The review page's server: 127.0.0.1 only, a random token on every request, and nothing served
but the page and the review's own images.

Python's ``http.server`` is enough for one person's browser on the same machine and adds no
dependency. Every request must carry the token (``?token=`` or the ``X-Review-Token`` header):
another local user or a page in another tab cannot read the dataset or decide for you. An image
is served only when its path, relative to the dataset folder, is one of the review's cards (or
their neighbours): ``..``, absolute paths and anything else are refused before the file system is
touched, and a card whose file is a link leading out of the dataset folder is refused too. A
picture is sent as fishbear reads it (decoded by :func:`fishbear.data.images.load_rgb`, upright,
16-bit and float TIFFs scaled), re-encoded as JPEG: the page shows what the model saw, in any
browser. A decision records the sha256 of the file decided on, which ``apply`` checks.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlparse

from fishbear.core.containment import is_plain_relative, is_within
from fishbear.core.errors import DataError
from fishbear.core.outputs import sha256_of
from fishbear.engine.review.items import ReviewSet
from fishbear.engine.review.log import DecisionLog

PAGE = Path(__file__).with_name("page.html")
MAX_BODY = 1 << 16


def _as_jpeg(path: Path) -> bytes | None:
    """The picture as fishbear reads it, as JPEG (None: it does not decode)."""
    import io

    from PIL import Image

    from fishbear.data.images import load_rgb

    try:
        pixels = load_rgb(path)
    except DataError:
        return None
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


class ReviewServer:
    """``serve_forever`` in a thread of its own (``start``) or in the caller's (``run``)."""

    def __init__(self, review: ReviewSet, log: DecisionLog, host: str = "127.0.0.1", port: int = 0) -> None:
        self.review, self.log = review, log
        self.token = secrets.token_urlsafe(18)
        self.files = review.files
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/?token={self.token}"

    def start(self) -> ReviewServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def state(self) -> dict[str, Any]:
        return {"source": self.review.source, "root": str(self.review.root), "classes": self.review.classes,
                "items": [i.as_json() for i in self.review.items],
                "decisions": {f: {"action": d["action"], "label": d.get("label")} for f, d in self.log.effective().items()}}

    def image_path(self, relative: str) -> Path | None:
        """The file of ``relative`` when it is one of the review's pictures; else None."""
        if not is_plain_relative(relative) or relative not in self.files:
            return None
        path = Path(self.review.root, *PurePosixPath(relative).parts)
        return path if is_within(path, self.review.root) else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, value: Any) -> None:
                self._reply(status, json.dumps(value).encode())

            def _authorised(self, query: dict[str, list[str]]) -> bool:
                given = self.headers.get("X-Review-Token") or (query.get("token") or [""])[0]
                if secrets.compare_digest(given, server.token):
                    return True
                self._json(403, {"error": "no valid token: open the URL fishbear review printed"})
                return False

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlparse(self.path)
                query = parse_qs(url.query)
                if not self._authorised(query):
                    return
                if url.path == "/":
                    return self._reply(200, PAGE.read_bytes(), "text/html; charset=utf-8")
                if url.path == "/api/state":
                    return self._json(200, server.state())
                if url.path == "/image":
                    path = server.image_path((query.get("file") or [""])[0])
                    if path is None or not path.is_file():
                        return self._json(404, {"error": "not one of this review's pictures"})
                    picture = _as_jpeg(path)
                    if picture is None:
                        return self._json(404, {"error": "not a readable image"})
                    return self._reply(200, picture, "image/jpeg")
                return self._json(404, {"error": "no such page"})

            def do_POST(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                if not self._authorised(parse_qs(url.query)):
                    return
                size = int(self.headers.get("Content-Length") or 0)
                if size > MAX_BODY:
                    return self._json(413, {"error": "request too large"})
                try:
                    body = json.loads(self.rfile.read(size) or b"{}")
                except ValueError:
                    return self._json(400, {"error": "the body is not JSON"})
                with server.lock:
                    try:
                        if url.path == "/api/decide":
                            file = str(body.get("file", ""))
                            if server.image_path(file) is None:
                                return self._json(400, {"error": f"{file!r} is not one of this review's pictures"})
                            path = server.image_path(file)
                            digest = sha256_of(path) if path is not None and path.is_file() else None
                            entry = server.log.decide(file, str(body.get("action")), body.get("label"),
                                                      server.review.classes, digest)
                            return self._json(200, {"decided": entry, **server.state()})
                        if url.path == "/api/undo":
                            return self._json(200, {"undone": server.log.undo(), **server.state()})
                    except DataError as err:
                        return self._json(400, {"error": str(err)})
                return self._json(404, {"error": "no such action"})

        return Handler
