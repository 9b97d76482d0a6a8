"""A checkpoint as an ONNX model whose graph answers in the kind's user units.

Inside the graph: the 0-255 pixels to the network's normalisation, the network, and the kind's
head (``Kind.exported``: probabilities, tag probabilities, values, points in the picture's own
pixels, or scores at the model's size for masks). Outside it, specified in ``export.json`` and
done by the standalone predictor (``fishbear/engine/deploy/standalone.py``, written beside the model as
``predict.py``): decoding and orientation, the named preprocessing, the fit to the model's size
with OpenCV's bilinear resize (what albumentations calls in training), and each kind's reading
(a class, tags above their thresholds, a mask at the picture's size). The batch axis is dynamic.
"""

from __future__ import annotations

import json
import logging
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fishbear.core.errors import CheckpointError
from fishbear.core.geometry import as_hw
from fishbear.core.outputs import sha256_of
from fishbear.kinds import get_kind
from fishbear.kinds.meta import ModelMeta

FORMAT_VERSION = 1
EXPORTABLE_PREPROCESS = ("enhance",)


class ExportGraph(torch.nn.Module):
    """What the ONNX graph computes: ``image`` (N x 3 x H x W, float32 RGB of 0..255, fitted to
    the model's size) and ``original_size`` (N x 2, each picture's height and width before the
    fit) to the kind's outputs."""

    def __init__(self, network: torch.nn.Module, meta: ModelMeta) -> None:
        super().__init__()
        self.network, self.meta, self.kind = network.eval(), meta, get_kind(meta.kind)
        self.normalize = meta.feed.normalize()  # the one normalisation, as training did it on the device

    def forward(self, image: torch.Tensor, original_size: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.network(self.normalize(image))
        return self.kind.exported(outputs, original_size, self.meta)


def check_exportable(meta: ModelMeta, ckpt: Path) -> None:
    """One line saying why a model cannot be exported, or nothing."""
    refusal = get_kind(meta.kind).export_refusal(meta)
    if refusal:
        raise CheckpointError(f"{ckpt}: {refusal}.")
    unknown = [step for step in meta.preprocess if step not in EXPORTABLE_PREPROCESS]
    if unknown:
        raise CheckpointError(f"the model's preprocess {list(meta.preprocess)} holds {unknown}, which the standalone "
                              "predictor does not implement.")


def export_meta(meta: ModelMeta, ckpt: Path, opset: int) -> dict[str, Any]:
    """``export.json`` (and the model's ``metadata_props``): everything a predictor needs outside the graph."""
    import onnx

    from fishbear.core.environment import package_version

    kind = get_kind(meta.kind)
    height, width = as_hw(meta.image_size)
    section = meta.to_section()
    out: dict[str, Any] = {
        "format": "fishbear-onnx", "format_version": FORMAT_VERSION, "model": "model.onnx",
        "kind": meta.kind, "classes": list(meta.classes),
        "inputs": {"image": "N x 3 x H x W float32, RGB, values 0-255 (uint8 pixels as floats), after the fit below",
                   "original_size": "N x 2 int64: each picture's (height, width) before the fit"},
        "input_size": [height, width], "resize": meta.resize or kind.eval_resize,
        "interpolation": "OpenCV INTER_LINEAR (bilinear, half-pixel centres, no antialiasing), as albumentations",
        "decode": "Pillow, EXIF orientation applied, converted to RGB; 16-bit greys scaled to 8 bits",
        "preprocess": list(meta.preprocess),
        "normalisation": {"mean": list(meta.mean), "std": list(meta.std), "in_graph": True,
                          "formula": "(image - 255 * mean) * (1 / (255 * std))"},
        "outputs": list(kind.export_outputs), "reading": kind.export_reading, "settings": meta.settings.to_section(),
        "batch": kind.export_batch,  # null: any; 1: one picture a run of the graph
        "checkpoint": {"file": str(ckpt), "sha256": sha256_of(ckpt)},
        "versions": {"fishbear": package_version("fishbear"), "torch": torch.__version__, "onnx": onnx.__version__,
                     "opset": min(opset, 17) if kind.export_batch == 1 else opset, "python": platform.python_version()},
        "model_cfg": meta.model_cfg, "data_name": meta.data_name, **kind.export_info(meta),
        # the checkpoint's own section (the run's .hydra texts left out): fishbear predict ckpt=EXPORT_DIR reads it
        "model_meta": {**section, "run": {"overrides": (section.get("run") or {}).get("overrides", [])}},
    }
    return out


@dataclass
class Exported:
    """An export in memory: the ONNX model's bytes (metadata inside), its ``export.json``, the
    checkpoint's meta and the PyTorch graph the ONNX one was traced from (the parity reference)."""

    model: bytes
    info: dict[str, Any]
    meta: ModelMeta
    graph: ExportGraph


def trace_single(graph: ExportGraph, opset: int = 17) -> Any:
    """A graph of one picture a run (a detector: outputs whose length depends on the picture) by
    the TorchScript exporter at the model's size, as torchvision's own tests export Faster R-CNN:
    torch.export cannot take its proposal filtering. Traced on a real-looking picture (not a flat
    one, on which no proposal survives and the traced graph would lose its box branch)."""
    import io

    import onnx

    height, width = as_hw(graph.meta.image_size)
    generator = torch.Generator().manual_seed(0)
    example = (torch.rand((1, 3, height, width), generator=generator) * 255, torch.tensor([[height, width]]))
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it froze (sizes): the size is fixed
        torch.onnx.export(graph, example, buffer, dynamo=False, opset_version=min(opset, 17),
                          input_names=["image", "original_size"], output_names=list(graph.kind.export_outputs))
    return onnx.load_from_string(buffer.getvalue())


def trace(graph: ExportGraph, opset: int = 18) -> Any:
    """``graph`` as an ONNX ``ModelProto`` by ``torch.onnx.export(dynamo=True)``, its batch axis
    dynamic (checked: a ``len()`` of a tensor in a kind's head would fix it)."""
    if graph.kind.export_batch == 1:
        return trace_single(graph, opset)
    height, width = as_hw(graph.meta.image_size)
    example = (torch.full((2, 3, height, width), 128.0), torch.tensor([[height, width]] * 2, dtype=torch.int64))
    n = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on axis names and deprecations: not the user's
        program = torch.onnx.export(graph, example, dynamo=True, dynamic_shapes=({0: n}, {0: n}),
                                    input_names=["image", "original_size"], output_names=list(graph.kind.export_outputs),
                                    opset_version=opset, optimize=True, verbose=False)
    model = program.model_proto
    fixed = [i.name for i in model.graph.input if not i.type.tensor_type.shape.dim[0].dim_param]
    if fixed:
        raise CheckpointError(f"the exported graph has a fixed batch size for {', '.join(fixed)}; this is a bug of "
                              "fishbear's (please report it), not of the checkpoint.")
    return model


def export_onnx(ckpt: Path, opset: int = 18) -> Exported:
    """The checkpoint at ``ckpt`` as an :class:`Exported` (metadata inside the model too)."""
    import onnx

    from fishbear.engine.checkpoint import load_checkpoint, network_from_checkpoint

    checkpoint = load_checkpoint(ckpt)
    meta = checkpoint.meta
    check_exportable(meta, Path(ckpt))
    graph = ExportGraph(network_from_checkpoint(checkpoint), meta).eval()
    model = trace(graph, opset)
    info = export_meta(meta, Path(ckpt), opset)
    model.metadata_props.add(key="fishbear", value=json.dumps(info))
    model.producer_name = "fishbear"
    onnx.checker.check_model(model)
    return Exported(model.SerializeToString(), info, meta, graph)


def quantized(model: bytes) -> bytes:
    """Dynamic int8 weights (onnxruntime's ``quantize_dynamic``): smaller, often faster on CPU."""
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    import onnx

    proto = onnx.load_from_string(model)
    # the exporter's own shape notes on intermediate values: the quantizer infers them afresh, and a
    # stale one (torch 2.11's exporter left a (256) where its shape inference found (4)) stops it
    del proto.graph.value_info[:]
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        source.write_bytes(proto.SerializeToString())
        root.setLevel(logging.ERROR)  # its advice to pre-process first goes to the root logger
        try:
            quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
        except Exception as err:  # noqa: BLE001 (the quantizer's own failures, by version: one line, the way out)
            raise CheckpointError(f"quantize=true: onnxruntime's quantizer could not quantize this model "
                                  f"({type(err).__name__}: {str(err)[:200]}); export without quantize=true.") from None
        finally:
            root.setLevel(level)
        return target.read_bytes()
