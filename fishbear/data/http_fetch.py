"""One URL's bytes, fetched as a careful crawler does (``requests`` for the protocol; the loop here).

What fastai's ``download_images`` skips and users then meet as silent empty folders: a time limit
on the whole of every request (connecting, the headers and the body together: a server that drips
a byte every few seconds is cut off when the limit is up, not held for ever by a per-read
timeout); retries with exponential backoff on what may pass (HTTP 5xx and 429, honouring a short
``Retry-After``; timeouts; dropped connections) and none on what will not (other 4xx);
a browser-like User-Agent (image hosts answer 403 to Python's default); redirects followed up to
a limit; a cap on the bytes read (streamed, so a huge file is cut off, not held); and the
``X-Robots-Tag`` of the response respected (``noai`` / ``noimageai``: the site asks not to be
used for training, as img2dataset honours by default). What the bytes are is decided later from
the bytes themselves, never from the URL or the Content-Type. Whatever one URL does (a malformed
header, a URL requests cannot parse, an error nobody foresaw) is that URL's failure, recorded
with its reason; the other URLs go on.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36 "
              "fishbear-fetch")
ROBOTS_REFUSALS = ("noai", "noimageai")
# what the manifest's ``error`` starts with, by cause: the summary counts by these
TIMEOUT, CONNECTION, REDIRECTS = "timed out", "no connection", "too many redirects"
TOO_LARGE, ROBOTS = "too large", "X-Robots-Tag"


@dataclass(frozen=True)
class FetchSettings:
    """How URLs are fetched; ``conf/fetch.yaml`` and a URL-list source's config hold the same keys."""

    workers: int = 16
    timeout: float = 30.0         # seconds for the whole of one attempt: connect, headers and body
    retries: int = 3
    backoff: float = 0.5
    max_bytes: int = 20_000_000
    max_redirects: int = 5
    user_agent: str = USER_AGENT
    respect_robots: bool = True


@dataclass
class Response:
    """What one URL gave: ``data`` when the request succeeded, else ``error`` (and whether a later
    run should try again: ``transient``)."""

    url: str
    data: bytes | None = None
    http_status: int | None = None
    content_type: str = ""
    error: str = ""
    transient: bool = False
    attempts: int = 0

    @property
    def reached(self) -> bool:
        """Whether any server answered (an offline machine reaches none)."""
        return self.http_status is not None


@dataclass(eq=False)
class _Attempt:
    """One request under way: when it must be over, and the connection to cut when it is not."""

    deadline: float
    socket: Any = None
    expired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_current = threading.local()  # the attempt of the thread making a request


def _tell(sock: Any) -> None:
    attempt = getattr(_current, "attempt", None)
    if attempt is not None and sock is not None:
        attempt.socket = sock


def _watched(pool_class: type) -> type:
    """A urllib3 pool that tells the running attempt which socket carries it: when a connection
    connects, or when a kept-alive one is taken again (http.client lets go of the socket of a
    response that closes the connection, so it is kept from the moment it exists)."""

    class WatchedConnection(pool_class.ConnectionCls):  # type: ignore[misc,name-defined]
        def connect(self) -> None:
            super().connect()
            _tell(self.sock)

    class Watched(pool_class):  # type: ignore[misc,valid-type]
        ConnectionCls = WatchedConnection

        def _get_conn(self, timeout: float | None = None) -> Any:
            connection = super()._get_conn(timeout)
            _tell(getattr(connection, "sock", None))
            return connection

    Watched.__name__ = f"Watched{pool_class.__name__}"
    return Watched


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _watched(HTTPConnectionPool),
                                                   "https": _watched(HTTPSConnectionPool)}


class Deadlines:
    """One thread that cuts the connection of every attempt past its deadline: a socket read
    times out only when nothing arrives, so a byte every few seconds would hold it for ever."""

    def __init__(self, period: float = 0.05) -> None:
        self.period = period
        self.attempts: set[_Attempt] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, attempt: _Attempt) -> None:
        with self.lock:
            self.attempts.add(attempt)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._watch, name="fetch-deadlines", daemon=True)
                self.thread.start()

    def remove(self, attempt: _Attempt) -> None:
        with self.lock:
            self.attempts.discard(attempt)

    def _watch(self) -> None:
        while True:
            time.sleep(self.period)
            now = time.monotonic()
            with self.lock:
                if not self.attempts:
                    self.thread = None
                    return
                late = [a for a in self.attempts if a.deadline < now and not a.expired]
            for attempt in late:
                with attempt.lock:
                    attempt.expired = True
                    sock = attempt.socket
                    if sock is not None:
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass


def content_length(value: str | None) -> int | None:
    """A ``Content-Length`` header's number; None when absent or not one whole number (``abc``,
    ``12426, 12426``): the bytes are then counted as they come, under the same cap."""
    if value is None:
        return None
    text = value.strip()
    return int(text) if text.isdigit() else None


def robots_refusal(header: str) -> str | None:
    """``noai`` or ``noimageai`` in an ``X-Robots-Tag`` (``"otherbot: noai"``, ``"noindex, noai"``)."""
    words = {w.strip().lower() for part in header.split(",") for w in part.split(":")}
    found = [w for w in ROBOTS_REFUSALS if w in words]
    return found[0] if found else None


class Fetcher:
    """Fetches with one ``requests.Session`` per thread (sessions are not shared across threads)."""

    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings
        self._local = threading.local()
        self._deadlines = Deadlines()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = _WatchedAdapter()
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update({"User-Agent": self.settings.user_agent,
                                    "Accept": "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.8,*/*;q=0.5"})
            session.max_redirects = self.settings.max_redirects
            self._local.session = session
        return session

    def _once(self, url: str, out: Response) -> bool:
        """One attempt within the time limit; True when it is final (success, or a failure a
        retry will not fix)."""
        attempt = _Attempt(time.monotonic() + self.settings.timeout)
        _current.attempt = attempt
        self._deadlines.add(attempt)
        try:
            final = self._request(url, out)
        except Exception as err:  # noqa: BLE001 (whatever one URL does is that URL's failure, not the fetch's)
            out.data, out.error, out.transient = None, f"{type(err).__name__}: {_reason(err)}", False
            final = True
        finally:
            self._deadlines.remove(attempt)
            _current.attempt = None
        with attempt.lock:
            if attempt.expired:
                out.data, out.transient = None, True
                out.error = f"{TIMEOUT} after {self.settings.timeout:g} s (the whole request, timeout=)"
                return False
        return final

    def _request(self, url: str, out: Response) -> bool:
        s = self.settings
        try:
            with self._session().get(url, timeout=s.timeout, stream=True) as response:
                out.http_status, out.content_type = response.status_code, response.headers.get("Content-Type", "")
                refusal = robots_refusal(response.headers.get("X-Robots-Tag", "")) if s.respect_robots else None
                if refusal:
                    out.error = (f"{ROBOTS}: {refusal} (the site asks not to be used for AI training; "
                                 "respect_robots=false overrides)")
                    return True
                if response.status_code >= 400:
                    retry = response.status_code >= 500 or response.status_code == 429
                    out.error, out.transient = f"HTTP {response.status_code}", retry
                    if retry:
                        self._wait_after(response)
                    return not retry
                declared = content_length(response.headers.get("Content-Length")) or 0
                if declared > s.max_bytes:
                    out.error = f"{TOO_LARGE}: {declared} bytes declared (max_bytes={s.max_bytes})"
                    return True
                chunks, size = [], 0
                for chunk in response.iter_content(1 << 16):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > s.max_bytes:
                        out.error = f"{TOO_LARGE}: more than {s.max_bytes} bytes (max_bytes)"
                        return True
                out.data, out.error, out.transient = b"".join(chunks), "", False
                return True
        except requests.TooManyRedirects:
            out.error = f"{REDIRECTS} (more than {s.max_redirects})"
            return True
        except requests.Timeout:
            out.error, out.transient = f"{TIMEOUT} after {s.timeout:g} s", True
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as err:
            out.error, out.transient = f"{CONNECTION}: {_reason(err)}", True
        except requests.RequestException as err:  # an invalid URL, a scheme requests does not speak
            out.error = f"{type(err).__name__}: {_reason(err)}"
            return True
        return False

    def _wait_after(self, response: requests.Response) -> None:
        after = response.headers.get("Retry-After", "")
        if after.isdigit() and int(after) <= 30:
            self._local.retry_after = int(after)

    def fetch(self, url: str) -> Response:
        out = Response(url)
        for attempt in range(self.settings.retries + 1):
            out.attempts = attempt + 1
            self._local.retry_after = None
            if self._once(url, out) or attempt == self.settings.retries:
                break
            time.sleep(self._local.retry_after or self.settings.backoff * 2 ** attempt)
        return out


def _reason(err: BaseException) -> str:
    """The innermost cause of a requests error, in a few words (``[Errno -2] Name or service not known``)."""
    import re

    text = str(err.args[0] if err.args else err)
    found = re.findall(r"\[Errno -?\d+\][^'\")]*|timed out|Connection refused|Connection reset by peer|RemoteDisconnected", text)
    return (found[-1].strip() if found else text.split(": ")[-1].strip(" \"')(")[:200]) or type(err).__name__
