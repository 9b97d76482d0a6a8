"""``python -m fishbear.serve ckpt=PATH [port=8000] [host=127.0.0.1] [batch=8]`` (Hydra overrides of
``conf/serve.yaml``).

Serves a checkpoint (PyTorch) or an export folder (onnxruntime) with LitServe: ``POST /predict``
takes an image (multipart field ``image``, raw ``image/*`` bytes, or JSON ``{"image": base64}``)
and answers JSON in the kind's user units (a class and its probabilities; tags over their
thresholds and every tag's probability; boxes with labels and scores; points in the picture's
pixels; values; a mask as a PNG data URL); ``GET /health``; ``GET /info``, the model's metadata and
provenance; ``GET /``, a demo page: drop an image, see the answer drawn on it. Requests are batched
(``batch``, waiting ``batch_timeout`` seconds at most). A request that is no picture, empty, too
large, of too many pixels or of another content type is a 4xx with a message; the server keeps
serving (:mod:`fishbear.engine.serving` says why uploads are checked before they are batched).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from fishbear.core.errors import ConfigError
from fishbear.engine.commandline import check_ranges, compose_cli, user_errors_exit

USAGE = ("fishbear serve ckpt=CKPT|EXPORT_DIR [host=127.0.0.1] [port=8000] [batch=8] [batch_timeout=0.01] [workers=1] "
         "[threads=N] [max_bytes=20000000] [max_pixels=40000000]")
PAGE = Path(__file__).parent / "engine" / "serve_page.html"
HOSTS = ("127.0.0.1", "0.0.0.0", "::")


def _meta_and_backend(path: Path) -> tuple[Any, str]:
    from fishbear.engine.inference import is_export_folder

    if is_export_folder(path):
        import json

        from fishbear.kinds import KINDS
        from fishbear.kinds.meta import ModelMeta

        info = json.loads((path / "export.json").read_text())
        return ModelMeta.from_section(info.get("model_meta"), path / "export.json", KINDS), "onnxruntime"
    from fishbear.engine.checkpoint import read_meta

    return read_meta(path), "pytorch"


def build_server(cfg: DictConfig) -> Any:
    """The LitServer of ``cfg`` with the upload check and the demo page (not started)."""
    import litserve as ls
    from fastapi.responses import HTMLResponse

    from fishbear.engine.serving import UploadCheck, lit_api, model_info

    path = Path(str(cfg.ckpt))
    meta, backend = _meta_and_backend(path)
    info = model_info(path, meta, backend)
    api = lit_api(str(path), cfg.threads, int(cfg.batch), float(cfg.batch_timeout))
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=int(cfg.workers), model_metadata=info, timeout=60,
                          middlewares=[(UploadCheck, {"max_bytes": int(cfg.max_bytes), "max_pixels": int(cfg.max_pixels)})])

    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text())

    # LitServe's own "/" says "litserve running"; the demo page takes its place
    server.app.router.routes = [r for r in server.app.router.routes if getattr(r, "path", None) != "/"]
    server.app.add_api_route("/", page, methods=["GET"])
    return server


def serve(cfg: DictConfig) -> None:
    host = str(cfg.host)
    if host not in HOSTS:
        raise ConfigError(f"host={host}: use 127.0.0.1 (this machine only), 0.0.0.0 or :: (every network).")
    server = build_server(cfg)
    if host != "127.0.0.1":
        print(f"warning: host={host}: the model answers anyone who can reach this machine on port {cfg.port}.",
              file=sys.stderr)
    print(f"Serving {cfg.ckpt} on http://{'127.0.0.1' if host == '127.0.0.1' else host}:{cfg.port}/ "
          f"(POST /predict, GET /health, GET /info; the demo page at /)", flush=True)
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
    check_ranges(cfg, counts=("batch", "workers", "max_bytes", "max_pixels"))
    if not 1024 <= int(cfg.port) <= 65535:
        raise ConfigError(f"port={cfg.port}: give a port from 1024 to 65535.")
    serve(cfg)


def cli(argv: list[str]) -> int:
    """``fishbear serve ...`` and ``python -m fishbear.serve ...``."""
    main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
