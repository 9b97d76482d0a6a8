"""A stand-in for the web on 127.0.0.1: the real bears URL lists, each URL served with the shared
photo its line once returned (fastai named line i ``<8-digit i>.jpg``), 404 for the rest, and
named faults on chosen URLs (403, 500 then 200, 429 with Retry-After, a timeout, a redirect loop,
an HTML page as 200, a truncated JPEG, a decompression bomb's header, the same photo at two URLs
or under two classes, ``X-Robots-Tag: noai``).

``rewrite(url)`` keeps a URL's path and query and puts the local server in place of its host,
which is what the tests write into their copies of the lists.
"""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A small valid PNG whose header claims ``width`` x ``height`` pixels (900 M by default)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr:ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


@dataclass
class Fault:
    """What one path answers instead of its photo."""

    kind: str                   # status, flaky, retry_after, timeout, loop, html, truncated, bomb, photo, robots,
    #                             length (a Content-Length of ``length``), drip (a byte every ``every`` s, for ever)
    status: int = 200
    photo: bytes | None = None  # for "photo": another line's photo
    failures: int = 1           # for "flaky" / "retry_after": this many failures, then the photo
    length: str = ""            # for "length": the header's text ("abc", "12426, 12426")
    every: float = 0.2          # for "drip"


@dataclass
class Standin:
    """Paths (with their query) to photo bytes, and faults by path; counts requests per path."""

    photos: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)
    delay: float = 0.0
    requests: Counter = field(default_factory=Counter)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def rewrite(self, url: str) -> str:
        parsed = urlparse(url)
        return f"{self.base}{parsed.path}" + (f"?{parsed.query}" if parsed.query else "")

    def start(self) -> Standin:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path
                with standin.lock:
                    standin.requests[path] += 1
                    seen = standin.requests[path]
                if standin.delay:
                    time.sleep(standin.delay)
                fault = standin.faults.get(path)
                photo = standin.photos.get(path)
                if fault is None:
                    if photo is None:
                        return self._send(404, b"not found", "text/plain")
                    return self._send(200, photo, "image/jpeg")
                if fault.kind == "status":
                    return self._send(fault.status, b"no", "text/html")
                if fault.kind in ("flaky", "retry_after"):
                    if seen <= fault.failures:
                        if fault.kind == "retry_after":
                            return self._send(429, b"slow down", "text/plain", {"Retry-After": "1"})
                        return self._send(500, b"oops", "text/plain")
                    return self._send(200, photo or b"", "image/jpeg")
                if fault.kind == "timeout":
                    time.sleep(3.0)
                    return self._send(200, photo or b"", "image/jpeg")
                if fault.kind == "loop":
                    self.send_response(302)
                    self.send_header("Location", path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if fault.kind == "html":
                    return self._send(200, b"<!DOCTYPE html><html><body>consent page</body></html>", "image/jpeg")
                if fault.kind == "truncated":
                    return self._send(200, (photo or b"")[: len(photo or b"") // 2], "image/jpeg")
                if fault.kind == "bomb":
                    return self._send(200, bomb_png(), "image/png")
                if fault.kind == "photo":
                    return self._send(200, fault.photo or b"", "image/jpeg")
                if fault.kind == "length":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", fault.length)
                    self.end_headers()
                    self.wfile.write(photo or b"")
                    return None
                if fault.kind == "drip":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(photo or b"")))
                    self.end_headers()
                    started = time.monotonic()
                    try:
                        for byte in (photo or b"x" * 10_000):  # bounded: 10,000 bytes at most, 60 s at most
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(fault.every)
                            if time.monotonic() - started > 60:
                                break
                    except OSError:
                        pass
                    return None
                if fault.kind == "robots":
                    return self._send(200, photo or b"", "image/jpeg", {"X-Robots-Tag": "noindex, noai"})
                raise AssertionError(fault.kind)

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default 5 drops connections of a pool of workers: timeouts of its own
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def path_of(url: str) -> str:
    parsed = urlparse(url)
    return parsed.path + (f"?{parsed.query}" if parsed.query else "")


def shared_bears(standin: Standin, urls_dir: Path, bears_dir: Path, out: Path) -> dict[str, list[tuple[int, str]]]:
    """The shared lists rewritten to ``standin`` into ``out`` (same names, same lines, blank lines
    kept), and each line's shared photo registered; returns, per class, the (line, path) of every
    URL."""
    photos = {p.stem: p for p in bears_dir.rglob("*.jpg")}
    out.mkdir(parents=True, exist_ok=True)
    found: dict[str, list[tuple[int, str]]] = {}
    for listing in sorted(urls_dir.glob("urls_*.txt")):
        label = listing.stem.removeprefix("urls_")
        lines = listing.read_text().splitlines()
        written = []
        for i, line in enumerate(lines):
            text = line.strip()
            if not text:
                written.append(line)
                continue
            written.append(standin.rewrite(text))
            path = path_of(text)
            found.setdefault(label, []).append((i, path))
            photo = photos.get(f"{label}_{i:08d}")
            if photo is not None:
                standin.photos[path] = photo.read_bytes()
        (out / listing.name).write_text("\n".join(written) + "\n")
    return found
