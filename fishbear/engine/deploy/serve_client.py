"""A ``fishbear serve`` process on a free loopback port, and a client for it: what the tests and
``benchmarks/serve.py`` drive (the standard library only, so a check runs where the server does)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedModel:
    """``python -m fishbear.serve ckpt=... port=<free>`` started and waited for (``/health``)."""

    def __init__(self, ckpt: Path, *extra: str, threads: int | None = 1, wait: float = 180.0,
                 token: str | None = None) -> None:
        import tempfile

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = token  # handed to the server through FISHBEAR_SERVE_TOKEN, sent as a Bearer header
        env = {**os.environ, "PYTHONWARNINGS": "ignore", **({"FISHBEAR_SERVE_TOKEN": token} if token else {})}
        self.log = tempfile.TemporaryFile(mode="w+")  # never a pipe: a chatty server would block on a full one
        self.process = subprocess.Popen([sys.executable, "-m", "fishbear.serve", f"ckpt={ckpt}", f"port={self.port}",
                                         *([f"threads={threads}"] if threads else []), *extra], env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)  # its own process group: stop() ends all of it
        deadline = time.time() + wait
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server stopped: {self.output()[-3000:]}")
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"the server did not become healthy in {wait:g} s: {self.output()[-2000:]}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def headers(self, token: str | None = None) -> dict[str, str]:
        token = self.token if token is None else token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(urllib.request.Request(self.base + path, headers=self.headers(token)),
                                        timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def post(self, body: bytes, content_type: str, token: str | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(self.base + "/predict", data=body, method="POST",
                                         headers={"Content-Type": content_type, **self.headers(token)})
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def post_file(self, path: Path) -> tuple[int, dict]:
        boundary = "fishbear-test-boundary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{path.name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        body = head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        return self.post(body, f"multipart/form-data; boundary={boundary}")

    def group_alive(self) -> bool:
        """Whether any process of the server's group (its API and inference workers) still runs."""
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it; whatever of its group is left after 20 s is killed."""
        import signal

        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        deadline = time.time() + 10
        while self.group_alive() and time.time() < deadline:
            time.sleep(0.2)
        if self.group_alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()
