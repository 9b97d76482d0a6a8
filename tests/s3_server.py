"""A real S3-compatible server on 127.0.0.1 for the object-store tests: moto's standalone server
(``moto_server``, a separate process speaking the S3 REST API over TLS with a certificate made for
the test), and a TCP relay in front of it that a test can cut to play a network failure.

TLS because LitData downloads chunks through obstore, whose client refuses plain ``http://``
endpoints, as a bucket reached over a network should be. The test's CA reaches boto3 through
``AWS_CA_BUNDLE`` and obstore through ``SSL_CERT_FILE``: the settings a user of a private MinIO
with its own CA sets too. Nothing here is fishbear's: fishbear sees only the AWS settings.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

import lightning as L
import pytest

BUCKET = "fishbear-test"
RELAYS: list[Relay] = []  # the running server's relay, for the callback a run's config names


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 it signed: (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, issuer: str, public: object, signer: object, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(public).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                decipher_only=False), critical=True)
        else:
            builder = (builder
                       .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                                   x509.DNSName("localhost")]), critical=False)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("fishbear test CA", "fishbear test CA", ca_key.public_key(), ca_key, ca=True)
    leaf = certificate("127.0.0.1", "fishbear test CA", key.public_key(), ca_key, ca=False)
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class Relay:
    """A TCP relay 127.0.0.1:port -> target that can be cut (every connection closed, new ones
    refused) and restored: a network failure between a run and its bucket."""

    def __init__(self, target: int) -> None:
        self.target, self.port = target, free_port()
        self.up = threading.Event()
        self.up.set()
        self.cuts = 0
        self.refused = 0  # connections turned away while cut
        self._restore_after: float | None = None  # seconds after the first refusal of a cut
        self._open: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            if not self.up.is_set():
                self.refused += 1
                client.close()
                if self._restore_after is not None:  # the cut's clock starts when a request meets it
                    self._later(self._restore_after)
                    self._restore_after = None
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self, restore_after: float | None = None) -> None:
        """Cut; with ``restore_after``, restore that many seconds after the first connection the
        cut turns away (a fixed clock from the cut itself would, on a busy machine, end before the
        run asks for anything), or after a minute if nothing asks."""
        self.cuts += 1
        self.up.clear()
        if restore_after is not None:
            self._restore_after = restore_after
            self._later(60)
        for sock in self._open:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._open.clear()

    def _later(self, seconds: float) -> None:
        timer = threading.Timer(seconds, self.restore, args=(self.cuts,))
        timer.daemon = True  # a pending timer never holds the test session open
        timer.start()

    def restore(self, cut: int | None = None) -> None:
        """Restore; with ``cut``, only if that cut is still the latest (a timer of an earlier cut
        leaves a later one alone)."""
        if cut is not None and cut != self.cuts:
            return
        self._restore_after = None
        self.up.set()

    def close(self) -> None:
        self._stop = True
        self.up.clear()
        for sock in self._open:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._server.close()


class CutAtEpochStart(L.Callback):
    """Cuts the bucket's network as the first training epoch starts (the pack's index and labels
    were read, no picture's shard yet; LitData fetches every small shard of an epoch at once, so a
    cut after a step would find nothing left to fetch) and restores it ``seconds`` after the run
    first meets the cut."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        if RELAYS and self.seconds > 0 and RELAYS[-1].up.is_set():
            RELAYS[-1].cut(restore_after=self.seconds)


class S3Server:
    """``moto_server`` over TLS on 127.0.0.1 with one bucket, and the AWS settings that reach it."""

    def __init__(self, folder: Path) -> None:
        executable = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        if not Path(executable).exists():
            pytest.skip("moto's server is not installed (pip install 'moto[server]': the dev extra has it)")
        self.ca, cert, key = write_certificates(folder / "tls")
        self.port = free_port()
        self.log = (folder / "moto.log").open("wb")
        self.process = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(self.port), "-c", str(cert),
                                         "-k", str(key)], stdout=self.log, stderr=subprocess.STDOUT)
        self.relay = Relay(self.port)
        RELAYS.append(self.relay)
        self.env = {"AWS_ACCESS_KEY_ID": "fishbear-test", "AWS_SECRET_ACCESS_KEY": "fishbear-test-secret",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"https://127.0.0.1:{self.relay.port}",
                    "AWS_CA_BUNDLE": str(self.ca), "SSL_CERT_FILE": str(self.ca),
                    "FISHBEAR_CACHE": str(folder / "cache")}
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {Path(self.log.name).read_text()[-2000:]}")
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.1)
        raise RuntimeError("moto_server did not start in 30 s")

    def client(self):  # noqa: ANN201 (boto3's generated class)
        import boto3

        return boto3.client("s3", endpoint_url=self.env["AWS_ENDPOINT_URL"], verify=str(self.ca),
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")

    def stop(self) -> None:
        RELAYS.remove(self.relay)
        self.relay.close()
        self.process.terminate()
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        if self.process.poll() is None:
            self.process.kill()
        self.log.close()
