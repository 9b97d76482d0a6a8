"""``python -m fishbear.serve ckpt=PATH [port=8000] [host=127.0.0.1] [batch=8]`` (Hydra overrides of
``conf/serve.yaml``).

Serves a checkpoint (PyTorch) or an export folder (onnxruntime) with LitServe: ``POST /predict``
takes an image (multipart field ``image``, raw ``image/*`` bytes, or JSON ``{"image": base64}``)
and answers JSON in the kind's user units (a class and its probabilities; tags over their
thresholds and every tag's probability; boxes with labels and scores; points in the picture's
pixels; values; a mask as a PNG data URL); ``GET /health``; ``GET /info``, the model's metadata and
provenance; ``GET /``, a demo page: drop an image, see the answer drawn on it. Requests are batched
(``batch``, waiting ``batch_timeout`` seconds at most). A request that is no picture, empty, too
large, of too many pixels, of sides the model cannot be fitted to, or of another content type is
a 4xx with a message; the server keeps serving (:mod:`fishbear.engine.deploy.serving` says why uploads
are checked before they are batched).

Beyond loopback (``host=0.0.0.0`` or ``::``) the server asks for a token: ``token=`` or, better (a
command line is visible to every user of the machine), ``FISHBEAR_SERVE_TOKEN``; requests then carry
``Authorization: Bearer <token>``, and the demo page asks for it. Without a token such a server
does not start, unless ``insecure=true`` says that anyone who reaches the port may use the model.
An export folder is served only while its ``model.onnx`` is the one exported (its sha256).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from fishbear.core.errors import ConfigError
from fishbear.engine.commandline import check_ranges, compose_cli, user_errors_exit

USAGE = ("fishbear serve ckpt=CKPT|EXPORT_DIR [host=127.0.0.1] [port=8000] [batch=8] [batch_timeout=0.01] [workers=1] "
         "[threads=N] [max_bytes=20000000] [max_pixels=40000000] [token=...|FISHBEAR_SERVE_TOKEN] [insecure=false]")
PAGE = Path(__file__).parent / "engine" / "deploy" / "serve_page.html"
HOSTS = ("127.0.0.1", "0.0.0.0", "::")


def _meta_and_backend(path: Path) -> tuple[Any, str]:
    from fishbear.engine.deploy.exported import is_export_folder

    if is_export_folder(path):
        from fishbear.core.errors import CheckpointError
        from fishbear.engine.deploy.standalone import ExportError, model_file, read_meta
        from fishbear.kinds import KINDS
        from fishbear.kinds.meta import ModelMeta

        try:  # the folder is a unit: a model that is not the one exported is refused before serving
            info = read_meta(path)
            model_file(path, info)
        except ExportError as err:
            raise CheckpointError(str(err)) from None
        return ModelMeta.from_section(info.get("model_meta"), path / "export.json", KINDS), "onnxruntime"
    from fishbear.engine.checkpoint import read_meta

    return read_meta(path), "pytorch"


def build_server(cfg: DictConfig) -> Any:
    """The LitServer of ``cfg`` with the upload check and the demo page (not started)."""
    import litserve as ls
    from fastapi.responses import HTMLResponse

    from fishbear.engine.deploy.serving import TokenCheck, UploadCheck, lit_api, model_info
    from fishbear.kinds import get_kind

    path = Path(str(cfg.ckpt))
    meta, backend = _meta_and_backend(path)
    info = model_info(path, meta, backend)
    api = lit_api(str(path), cfg.threads, int(cfg.batch), float(cfg.batch_timeout))
    upload = {"max_bytes": int(cfg.max_bytes), "max_pixels": int(cfg.max_pixels), "image_size": meta.image_size,
              "resize": meta.resize or get_kind(meta.kind).eval_resize}
    token = _token(cfg)
    # the last in the list is the outermost: the token is asked for before an upload is read
    middlewares: list = [(UploadCheck, upload)] + ([(TokenCheck, {"token": token})] if token else [])
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=int(cfg.workers), model_metadata=info, timeout=60,
                          middlewares=middlewares)

    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text())

    # LitServe's own "/" says "litserve running"; the demo page takes its place
    server.app.router.routes = [r for r in server.app.router.routes if getattr(r, "path", None) != "/"]
    server.app.add_api_route("/", page, methods=["GET"])
    return server


def _token(cfg: DictConfig) -> str | None:
    """The token requests must carry: ``token=`` or ``FISHBEAR_SERVE_TOKEN`` (None: none asked)."""
    import os

    token = cfg.token if cfg.token is not None else os.environ.get("FISHBEAR_SERVE_TOKEN")
    token = str(token).strip() if token is not None else ""
    if token and len(token) < 16:
        raise ConfigError("the serve token is shorter than 16 characters: give a long random one (e.g. python -c "
                          "\"import secrets; print(secrets.token_urlsafe(24))\").")
    return token or None


def _check_host(cfg: DictConfig) -> None:
    """Beyond loopback only with a token, or with ``insecure=true`` said."""
    host = str(cfg.host)
    if host not in HOSTS:
        raise ConfigError(f"host={host}: use 127.0.0.1 (this machine only), 0.0.0.0 or :: (every network).")
    if host != "127.0.0.1" and _token(cfg) is None and not cfg.insecure:
        raise ConfigError(f"host={host} lets every network reach the model: give a token (FISHBEAR_SERVE_TOKEN=<long "
                          "random text>, or token=), which requests then carry as 'Authorization: Bearer <token>'; or "
                          "insecure=true to serve anyone who reaches the port.")


def _check_port(host: str, port: int) -> None:
    """A port in use is one line with the fix, before the model is loaded (uvicorn would print
    'Serving ...' first, then its own error, and exit with status 3)."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is in use (another server, or an earlier fishbear serve "
                                  "still running): stop it, or give another port=.") from None
            raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror}); give another host= or port=.") from None


def serve(cfg: DictConfig) -> None:
    host = str(cfg.host)
    _check_host(cfg)
    _check_port(host, int(cfg.port))
    server = build_server(cfg)
    if host != "127.0.0.1":
        asked = "with its token" if _token(cfg) else "WITHOUT a token (insecure=true)"
        print(f"warning: host={host}: the model answers anyone who can reach this machine on port {cfg.port}, {asked}.",
              file=sys.stderr)
    print(f"Serving {cfg.ckpt} on http://{'127.0.0.1' if host == '127.0.0.1' else host}:{cfg.port}/ "
          f"(POST /predict, GET /health, GET /info; the demo page at /)"
          + ("; requests carry 'Authorization: Bearer <token>'" if _token(cfg) else ""), flush=True)
    _stop_on_sigterm()
    server.run(host=host, port=int(cfg.port), generate_client_file=False, log_level=str(cfg.log_level))


def _stop_on_sigterm() -> None:
    """``kill PID`` (a service manager's stop, a container's) shuts down as Ctrl-C does: LitServe
    stops its API and inference processes only on KeyboardInterrupt; on a bare SIGTERM the main
    process died and its workers stayed, holding the port and the model's memory."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    cfg = compose_cli("serve", sys.argv[1:] if argv is None else argv, USAGE)
    check_ranges(cfg, counts=("batch", "workers", "max_bytes", "max_pixels"), seconds=("batch_timeout",),
                 ports=("port",))
    if cfg.threads is not None:
        check_ranges(cfg, counts=("threads",))
    if not 1024 <= int(cfg.port) <= 65535:
        raise ConfigError(f"port={cfg.port}: give a port from 1024 to 65535.")
    serve(cfg)


def cli(argv: list[str]) -> int:
    """``fishbear serve ...`` and ``python -m fishbear.serve ...``."""
    main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
