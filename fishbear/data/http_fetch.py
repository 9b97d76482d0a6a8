"""One URL's bytes, fetched as a careful crawler does (``requests`` for the protocol; the loop here).

What fastai's ``download_images`` skips and users then meet as silent empty folders: a timeout
on every request; retries with exponential backoff on what may pass (HTTP 5xx and 429, honouring
a short ``Retry-After``; timeouts; dropped connections) and none on what will not (other 4xx);
a browser-like User-Agent (image hosts answer 403 to Python's default); redirects followed up to
a limit; a cap on the bytes read (streamed, so a huge file is cut off, not held); and the
``X-Robots-Tag`` of the response respected (``noai`` / ``noimageai``: the site asks not to be
used for training, as img2dataset honours by default). What the bytes are is decided later from
the bytes themselves, never from the URL or the Content-Type.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import requests

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
    timeout: float = 15.0
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

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update({"User-Agent": self.settings.user_agent,
                                    "Accept": "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.8,*/*;q=0.5"})
            session.max_redirects = self.settings.max_redirects
            self._local.session = session
        return session

    def _once(self, url: str, out: Response) -> bool:
        """One attempt; True when it is final (success, or a failure a retry will not fix)."""
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
                declared = int(response.headers.get("Content-Length") or 0)
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
