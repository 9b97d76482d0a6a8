"""A stand-in for the Hugging Face hub on 127.0.0.1: it answers ``HEAD`` and ``GET`` of
``/<repo>/resolve/<revision>/<file>`` as the hub does for a plain (not LFS-by-Xet) file: the bytes,
with ``X-Repo-Commit``, an ``ETag`` (the file's SHA-256) and ``Content-Length``; ``404`` with
``X-Error-Code: EntryNotFound`` for a file it does not hold. Pointing ``HF_ENDPOINT`` at it runs
timm's and huggingface_hub's real download and cache code without internet.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubStandin:
    """``files``: ``"<repo>/<file>"`` (``timm/resnet18.a1_in1k/model.safetensors``) to bytes."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: Counter = field(default_factory=Counter)
    server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> HubStandin:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: bool) -> None:
                path = self.path.split("?", 1)[0].lstrip("/")
                hub.requests[f"{self.command} {path}"] += 1
                repo, sep, rest = path.partition("/resolve/")
                _, _, filename = rest.partition("/")
                data = hub.files.get(f"{repo}/{filename}") if sep else None
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound" if sep else "RepoNotFound")
                    self.send_header("X-Error-Message", "Entry not found")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's names)
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
