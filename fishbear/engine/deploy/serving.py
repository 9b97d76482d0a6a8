"""``fishbear serve``'s parts: a LitServe ``LitAPI`` around a predictor, the upload check that runs
before a request joins a batch, and the answer as JSON in the kind's user units.

Why an upload is checked in the front process (:class:`UploadCheck`, an ASGI middleware) and not
in ``LitAPI.decode_request``: LitServe's batched loop decodes a batch's requests together and, when
one raises, answers every request of that batch with its error; a broken upload must cost its own
request, not seven neighbours'. So every ``POST /predict`` is read here first: its size capped, its
image taken from a multipart ``image`` field, raw ``image/*`` bytes or JSON base64, decoded whole
under a pixel cap, and its size checked against the model's fit (a 1 x 30,000,000 strip decodes,
but cannot be scaled to the model's input); what fails is answered at once with a 4xx and a message,
and only a picture known to decode and fit is handed on (as JSON base64) to the inference workers.

A server that other machines can reach asks for a token (:class:`TokenCheck`): ``Authorization:
Bearer <token>`` on every request but ``GET /`` (the page, which asks for it) and ``GET /health``
(for load balancers; it says only "ok"), compared in constant time; the token is never taken
from a URL, so no access log holds it.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

MAX_BYTES = 20_000_000     # a request larger than this is refused (413)
MAX_PIXELS = 40_000_000    # a picture with more pixels is refused before decoding (413)
RAW_TYPES = ("image/", "application/octet-stream")


def check_picture(data: bytes, max_pixels: int = MAX_PIXELS, fit: tuple[Any, str] | None = None) -> tuple[int, str] | None:
    """``(status, message)`` when ``data`` is no picture fishbear can answer for; None when it is.
    ``fit``: the model's ``(image_size, resize)``, which the picture's upright size must fit."""
    from PIL import Image, UnidentifiedImageError

    from fishbear.core.geometry import fit_problem
    from fishbear.data.images import upright_size_of

    if not data:
        return 400, "the request holds no image (an empty body or an empty 'image' field)"
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                return 413, f"the image has {width} x {height} pixels, more than the {max_pixels} this server decodes"
            if fit is not None:
                problem = fit_problem(*upright_size_of(image)[::-1], fit[0], fit[1])
                if problem:
                    return 413, f"the image cannot be answered for: {problem}"
            image.load()
    except Image.DecompressionBombError as err:
        return 413, f"the image has too many pixels to decode safely ({err})"
    except UnidentifiedImageError:
        return 400, "the body is not an image Pillow can read (JPEG, PNG, WebP, BMP, TIFF, GIF ...)"
    except (OSError, ValueError, SyntaxError) as err:
        return 400, f"the image is damaged or truncated ({err})"
    return None


class TokenCheck:
    """ASGI middleware: with a token, every request but the page and ``/health`` must carry it
    (``Authorization: Bearer <token>``); without it, 401 and a message."""

    OPEN = ("/", "/health")

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token.encode("utf-8")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        import hmac

        if scope["type"] != "http" or (scope["method"] == "GET" and scope["path"] in self.OPEN):
            return await self.app(scope, receive, send)
        given = b""
        for key, value in scope.get("headers", []):
            if key.lower() == b"authorization" and value[:7].lower() == b"bearer ":
                given = value[7:].strip()
        if hmac.compare_digest(given, self.token):
            return await self.app(scope, receive, send)
        from starlette.responses import JSONResponse

        response = JSONResponse({"error": "this server asks for a token: send 'Authorization: Bearer <token>' (the "
                                          "token it was started with)"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


class UploadCheck:
    """ASGI middleware: every ``POST /predict`` checked and rewritten as ``{"image": base64}``."""

    def __init__(self, app: Any, path: str = "/predict", max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
                 image_size: Any = None, resize: str = "crop") -> None:
        self.app, self.path, self.max_bytes, self.max_pixels = app, path, max_bytes, max_pixels
        self.fit = (image_size, resize) if image_size is not None else None

    async def _refuse(self, scope: Any, receive: Any, send: Any, status: int, message: str) -> None:
        from starlette.responses import JSONResponse

        await JSONResponse({"error": message}, status_code=status)(scope, receive, send)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers
        from starlette.requests import Request

        headers = Headers(scope=scope)
        length = (headers.get("content-length") or "0").strip()
        if not length.isdigit():
            return await self._refuse(scope, receive, send, 400, f"Content-Length {length[:40]!r} is not a number")
        declared = int(length)
        if declared > self.max_bytes:
            return await self._refuse(scope, receive, send, 413, f"the request is {declared} bytes; at most "
                                      f"{self.max_bytes} are taken")
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self._refuse(scope, receive, send, 413, f"the request is over {self.max_bytes} bytes")
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            async def replay() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            try:
                form = await Request(scope, replay).form()
            except Exception as err:  # noqa: BLE001 (any form the parser cannot read is the sender's to fix)
                return await self._refuse(scope, receive, send, 400, f"the multipart form cannot be read ({err}); send "
                                          "multipart/form-data with a boundary and a file field 'image'")
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                return await self._refuse(scope, receive, send, 400, "the form has no file field 'image'")
            data = await upload.read()
        elif kind.startswith(RAW_TYPES):
            data = body
        elif kind == "application/json":
            try:
                data = base64.b64decode(json.loads(body or b"{}").get("image", ""), validate=True)
            except (ValueError, AttributeError):
                return await self._refuse(scope, receive, send, 400, "the JSON body must be {\"image\": <base64>}")
        else:
            return await self._refuse(scope, receive, send, 415, f"content type {kind or '(none)'}: send the image as "
                                      "multipart/form-data (field 'image'), as raw image/* bytes, or as JSON "
                                      "{\"image\": <base64>}")
        problem = check_picture(data, self.max_pixels, self.fit)
        if problem is not None:
            return await self._refuse(scope, receive, send, *problem)
        payload = json.dumps({"image": base64.b64encode(data).decode("ascii")}).encode()
        rewritten = [(k, v) for k, v in scope["headers"] if k.lower() not in (b"content-type", b"content-length")]
        rewritten += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]

        async def handed_on() -> dict[str, Any]:
            return {"type": "http.request", "body": payload, "more_body": False}

        await self.app({**scope, "headers": rewritten}, handed_on, send)


def jsonable(value: Any) -> Any:
    """A kind's reading as JSON: a class-index mask as a PNG data URL (and its size), arrays as
    lists, the CSV cells left out."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("columns", "rows"):
                continue
            if key == "mask" and isinstance(item, np.ndarray):
                out["mask"] = {"png": mask_data_url(item), "height": int(item.shape[0]), "width": int(item.shape[1])}
                continue
            out[key] = jsonable(item)
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def mask_data_url(mask: np.ndarray) -> str:
    """The class map as a greyscale PNG (pixel value = class index) in a data URL."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def model_info(path: Path, meta: Any, backend: str) -> dict[str, Any]:
    """What ``GET /info`` says of the model of ``meta`` at ``path``: kind, classes, input size,
    backend, and where it came from (the run's test metrics and intervals, or the export's parity)."""
    info: dict[str, Any] = {"kind": meta.kind, "classes": list(meta.classes), "image_size": meta.image_size,
                            "resize": meta.resize, "backend": backend, "model": str(path)}
    report = path.parent.parent / "report.json" if path.is_file() else None
    if report is not None and report.is_file():
        found = json.loads(report.read_text())
        info["run"] = found.get("run_dir")
        info["metrics"] = {k: {"value": v, **{b: found.get("intervals", {}).get(k, {}).get(b) for b in ("low", "high")}}
                           for k, v in found.get("metrics", {}).items() if not k.endswith("loss")}
        info["data"] = found.get("data", {}).get("name")
    parity = path / "parity.json" if path.is_dir() else None
    if parity is not None and parity.is_file():
        found = json.loads(parity.read_text())
        metric = (found.get("metric") or {}).get("export")
        info["run"] = found.get("checkpoint")
        exported = json.loads((path / "export.json").read_text()).get("files", {}).get("model.onnx")
        if found.get("model_sha256") != exported or exported is None:
            info["parity"] = "not checked for this model (parity.json is of another model.onnx)"
            return info
        if metric:
            info["metrics"] = {metric["metric"]: {"value": metric["value"], "low": metric["low"], "high": metric["high"]}}
        info["parity"] = "every gate passed" if found.get("passed") else f"FAILED: {found.get('failed')}"
    return info


def decode(payload: dict[str, Any]) -> np.ndarray:
    """The checked upload (base64 in JSON) as H x W x 3 uint8, upright, as fishbear reads files."""
    from PIL import Image

    from fishbear.data.images import as_rgb

    with Image.open(io.BytesIO(base64.b64decode(payload["image"]))) as image:
        return as_rgb(image)


def _lit_api_class() -> type:
    """``FishbearAPI``, defined once at import of litserve (worker processes unpickle it by name)."""
    import litserve as ls

    class FishbearAPI(ls.LitAPI):
        """The predictor of ``path`` (a checkpoint: PyTorch; an export folder: onnxruntime)."""

        def __init__(self, path: str, threads: int | None = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.path, self.threads = path, threads

        def setup(self, device: str) -> None:
            from fishbear.engine.deploy.exported import open_predictor

            if self.threads:
                import torch

                torch.set_num_threads(int(self.threads))
            self.predictor = open_predictor(self.path, device="cpu" if device == "cpu" else device)

        def decode_request(self, request):  # noqa: ANN001 (unannotated: litserve then hands over the parsed JSON)
            return decode(request)

        def batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
            return list(inputs)

        def predict(self, x: Any) -> Any:
            if isinstance(x, list):
                return self.predictor.predict_batch(x)
            return self.predictor.predict_batch([x])[0]

        def unbatch(self, output: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return list(output)

        def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
            return jsonable(output)

    FishbearAPI.__qualname__ = "FishbearAPI"
    return FishbearAPI


def __getattr__(name: str) -> Any:  # FishbearAPI on first use: litserve is imported only by serve
    if name == "FishbearAPI":
        globals()[name] = _lit_api_class()
        return globals()[name]
    raise AttributeError(name)


def lit_api(path: str, threads: int | None, max_batch_size: int, batch_timeout: float) -> Any:
    """A ``litserve.LitAPI`` answering with the predictor of ``path``, batching up to
    ``max_batch_size`` requests."""
    from fishbear.engine.deploy import serving

    return serving.FishbearAPI(path, threads, max_batch_size=max_batch_size,
                               batch_timeout=batch_timeout if max_batch_size > 1 else 0.0, api_path="/predict")
