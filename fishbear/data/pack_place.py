"""Where a pack lies: a local folder, or a prefix in an S3-compatible bucket (``s3://bucket/prefix``).

A pack is a few small files (``fishbear-pack.json``, each LitData dataset's ``index.json``) beside
LitData's shards. LitData writes and reads the shards at either place (``litdata.optimize`` uploads
them, its streaming readers download them into a bounded local cache); a place reads and writes
only the small files fishbear adds, and lists or removes what a stopped pack left. The bucket's
endpoint and credentials are the AWS settings every S3 tool reads (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_CA_BUNDLE`` or a profile in ``~/.aws``),
never fishbear's: the same settings reach boto3 and LitData's object-store client.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from fishbear.core.errors import DataError

SCHEMES = ("s3",)


class PackPlace(Protocol):
    """A pack's root: what fishbear reads and writes there besides LitData's shards."""

    url: str  # what a user typed, and what LitData is given
    remote: bool

    def part(self, *names: str) -> str: ...

    def read_text(self, name: str) -> str | None: ...

    def write_text(self, name: str, text: str) -> None: ...

    def is_empty(self) -> bool: ...

    def remove(self, name: str) -> None: ...

    def staging(self) -> Any: ...

    @property
    def names_root(self) -> Path: ...

    @property
    def cache_dir(self) -> str | None: ...


def is_url(root: str | Path) -> bool:
    return isinstance(root, str) and "://" in root


def place_of(root: str | Path) -> PackPlace:
    """The place ``root`` names: a bucket's prefix for ``s3://...``, else a local folder."""
    if not is_url(root):
        return LocalPlace(Path(str(root)).expanduser())
    scheme = urlparse(str(root)).scheme
    if scheme not in SCHEMES:
        raise DataError(f"{root}: fishbear packs to a local folder or s3://bucket/prefix (an S3-compatible store: AWS, "
                        f"MinIO, R2, Ceph); '{scheme}://' is not one of them.")
    return BucketPlace(str(root))


class LocalPlace:
    remote = False
    cache_dir = None

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    @property
    def names_root(self) -> Path:
        return self.root

    def part(self, *names: str) -> str:
        return str(self.root.joinpath(*names))

    def read_text(self, name: str) -> str | None:
        try:
            return (self.root / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as err:
            raise DataError(f"{self.root / name} cannot be read ({err}).") from None

    def write_text(self, name: str, text: str) -> None:
        from fishbear.core.atomic import atomic_write_text

        atomic_write_text(self.root / name, text)

    def is_empty(self) -> bool:
        if not self.root.exists():
            return True
        if not self.root.is_dir() or self.root.is_symlink():
            raise DataError(f"out={self.root} is a file or a link; give a new folder for the pack.")
        return not any(self.root.iterdir())

    def remove(self, name: str) -> None:
        """A split this pack began and did not finish (only LitData's files are there)."""
        folder = self.root / name
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)

    def staging(self) -> Any:  # LitData writes a local pack's shards in place
        return nullcontext()


class BucketPlace:
    """``s3://bucket/prefix`` through boto3 (LitData's own dependency), with the AWS settings."""

    remote = True

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        if not self.bucket:
            raise DataError(f"{url}: name a bucket (s3://bucket/prefix).")
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def __getstate__(self) -> dict[str, Any]:  # loader workers make their own client
        return {**self.__dict__, "_client": None}

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def part(self, *names: str) -> str:
        return "/".join([self.url, *names])

    @property
    def names_root(self) -> Path:
        """A local stand-in root the pictures are named under (a run's samples are paths); nothing is
        written there but LitData's cache."""
        return Path(self.cache_dir)

    @property
    def cache_dir(self) -> str:
        """LitData's bounded local cache for this pack's shards (``FISHBEAR_CACHE`` or ``~/.cache/fishbear``)."""
        base = Path(os.environ.get("FISHBEAR_CACHE", Path.home() / ".cache" / "fishbear")).expanduser()
        return str(base / "packs" / hashlib.sha256(self.url.encode()).hexdigest()[:16])

    def read_text(self, name: str) -> str | None:
        with s3_errors(self.part(name)):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read().decode("utf-8")
            except self.client.exceptions.NoSuchKey:
                return None

    def write_text(self, name: str, text: str) -> None:  # one PUT: the object is the old one or the new one
        with s3_errors(self.part(name)):
            self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=text.encode("utf-8"))

    def _keys(self, name: str = "") -> list[str]:
        prefix = self._key(name).rstrip("/") + "/" if (self.prefix or name) else ""
        keys: list[str] = []
        with s3_errors(self.part(name)):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def is_empty(self) -> bool:
        return not self._keys()

    @contextmanager
    def staging(self) -> Iterator[None]:
        """LitData writes shards bound for a bucket in a local folder first, one for the whole
        machine unless told (``$TMPDIR/chunks``, emptied by each pack): this pack's own, inside
        fishbear's cache, while it packs (LitData's ``DATA_OPTIMIZER_*_FOLDER`` settings)."""
        folder = Path(self.cache_dir) / f"staging-{os.getpid()}"
        saved = {key: os.environ.get(key) for key in ("DATA_OPTIMIZER_CACHE_FOLDER", "DATA_OPTIMIZER_DATA_CACHE_FOLDER")}
        os.environ["DATA_OPTIMIZER_CACHE_FOLDER"] = str(folder / "chunks")
        os.environ["DATA_OPTIMIZER_DATA_CACHE_FOLDER"] = str(folder / "data")
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            shutil.rmtree(folder, ignore_errors=True)

    def remove(self, name: str) -> None:
        keys = self._keys(name)
        with s3_errors(self.part(name)):
            for start in range(0, len(keys), 1000):
                self.client.delete_objects(Bucket=self.bucket,
                                           Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]]})


class s3_errors:  # noqa: N801 (a context manager read as a phrase: with s3_errors(url): ...)
    """An object store's refusals as one :class:`DataError` naming the URL and the fix."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, err: BaseException | None, _tb: Any) -> bool:
        if err is None:
            return False
        message = object_store_error(self.url, err)
        if message is None:
            return False
        raise DataError(message) from None


def object_store_error(url: str, err: BaseException) -> str | None:
    """What went wrong reaching ``url``, as a line with the fix; None for an error of another kind."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    settings = "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws)"
    if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
        return f"{url}: no credentials for the object store {settings}. Set them, then run the command again."
    if isinstance(err, EndpointConnectionError):
        return (f"{url}: the object store cannot be reached ({err}). Check the network and AWS_ENDPOINT_URL, then run "
                "the command again.")
    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return f"{url}: the bucket does not exist. Create it, or give the bucket that holds the pack."
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            return f"{url}: the object store refused these credentials ({code}) {settings}."
        return f"{url}: the object store answered {code or 'an error'} ({err})."
    if isinstance(err, BotoCoreError):
        return f"{url}: the object store cannot be used ({err})."
    return None
