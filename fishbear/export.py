"""``python -m fishbear.export ckpt=RUN/checkpoints/best.ckpt [out=DIR] [images=FOLDER] [quantize=true]``
(Hydra overrides of ``conf/export.yaml``).

Writes an export folder (default ``RUN/export/``) that answers without PyTorch:

- ``model.onnx``: normalisation, the network and the kind's head in one graph with a dynamic batch
  axis (a detector's: one picture a run, at the model's size), answering in the kind's user units;
  ``export.json`` (also in the model's ``metadata_props``): kind, classes, input size, the fit and
  its interpolation, normalisation, the kind's settings, versions and the checkpoint's sha256;
- ``predict.py`` and ``onnx_predictor.py``: the standalone predictor (onnxruntime, numpy, Pillow,
  OpenCV), writing the CSV ``fishbear predict`` writes; ``requirements.txt`` and a ``README.md``;
- ``parity.json`` and ``parity.md``: the export against the checkpoint on real pictures of the
  run's own test split (and ``images=``): tensors at batch 1 and N, decisions, the headline metric
  with its interval, and raw file to CSV (``fishbear.engine.deploy.parity`` says what each gate allows
  and why). The CSVs compared are kept in ``parity/``.

The command exits 1, naming the gates that failed, when the export does not answer as the
checkpoint does; a model that cannot be exported (segmentation trained letterboxed) is refused in
one line, and no file is written. ``fishbear predict ckpt=DIR`` runs an export folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from fishbear.core.errors import ConfigError, DataError
from fishbear.core.outputs import OutputFiles
from fishbear.engine.commandline import check_ranges, compose_cli, user_errors_exit

USAGE = ("fishbear export ckpt=PATH [out=DIR] [format=onnx] [images=FOLDER] [pictures=500] [batch_size=8] "
         "[opset=18] [quantize=false] [overwrite=false]")
MODEL, INT8, META = "model.onnx", "model.int8.onnx", "export.json"
WRITTEN = (MODEL, INT8, META, "predict.py", "onnx_predictor.py", "requirements.txt", "README.md", "parity.json", "parity.md")
REQUIREMENTS = ("onnxruntime", "numpy", "pillow", "opencv-python-headless")


def default_folder(ckpt: Path) -> Path:
    """``RUN/export`` for ``RUN/checkpoints/X.ckpt``; else ``<stem>_export`` beside the file."""
    return ckpt.parent.parent / "export" if ckpt.parent.name == "checkpoints" else ckpt.parent / f"{ckpt.stem}_export"


def _checked(cfg: DictConfig) -> DictConfig:
    if cfg.format != "onnx":
        raise ConfigError(f"format={cfg.format}: the one export format is onnx.")
    return check_ranges(cfg, counts=("pictures", "batch_size", "opset"))


@user_errors_exit
def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = _checked(compose_cli("export", sys.argv[1:] if argv is None else argv, USAGE))
    return export(cfg)


def _pictures(meta: Any, cfg: DictConfig) -> tuple[list[Any], list[Path], list[str]]:
    """The test samples (with targets), every picture's file, and lines saying where they came from."""
    from fishbear.data.images import is_image_file
    from fishbear.engine.deploy.parity import run_test_split

    samples, notes = [], []
    try:
        samples, note = run_test_split(meta, int(cfg.pictures))
        notes.append(note)
    except DataError as err:
        if not cfg.images:
            raise
        notes.append(f"not the run's test split: {err}")
    files = [Path(s.image) for s in samples]
    if cfg.images:
        folder = Path(str(cfg.images))
        if not folder.is_dir():
            raise DataError(f"images={folder} is not a folder; give a folder of pictures.")
        found = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
        extra = _usable(found, meta)[: int(cfg.pictures)]
        if not extra:
            raise DataError(f"images={folder} holds no image file that can be read and fitted to the model"
                            f"{' (see the warnings above)' if found else ''}.")
        files += extra
        notes.append(f"{len(extra)} pictures of {folder}")
    return samples, files, notes


def _usable(files: list[Path], meta: Any) -> list[Path]:
    """The pictures of ``images=`` that decode and fit the model; each other one is named in a
    warning and left out of the parity check (it says nothing of the export)."""
    from fishbear.core.geometry import fit_problem
    from fishbear.data.images import image_problem, upright_size
    from fishbear.kinds import get_kind

    kept = []
    for path in files:
        problem = image_problem(path)
        if problem is None:
            width, height = upright_size(path)
            problem = fit_problem(height, width, meta.image_size, meta.resize or get_kind(meta.kind).eval_resize)
        if problem:
            print(f"warning: images=: left out {path} ({problem})", file=sys.stderr)
        else:
            kept.append(path)
    return kept


def _linked(files: list[Path], folder: Path) -> Path:
    """The pictures as one folder the two predictors read as users do (numbered links, so two
    files of one name in different folders stay two)."""
    folder.mkdir(parents=True)
    for i, path in enumerate(files):
        target = folder / f"{i:05d}_{path.name}"
        try:
            os.symlink(path.resolve(), target)
        except OSError:
            shutil.copyfile(path, target)
    return folder


def _fishbear_csv(ckpt: Path, folder: Path, output: Path, masks: Path, batch_size: int) -> None:
    """``fishbear predict``'s CSV of the pictures, from a process of its own as a user runs it."""
    import subprocess

    ran = subprocess.run([sys.executable, "-m", "fishbear.predict", f"ckpt={ckpt}", f"input={folder}", f"output={output}",
                          f"masks={masks}", f"boxes={masks.with_name(masks.name + '_boxes')}", f"batch_size={batch_size}"],
                         capture_output=True, text=True, timeout=3600,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if ran.returncode != 0:
        raise DataError(f"fishbear predict failed on the parity pictures: {ran.stderr.strip().splitlines()[-1:]}")


def _folder_files(info: dict[str, Any]) -> dict[str, str]:
    """The standalone predictor (the command and the module that answers), its requirements and a README."""
    import numpy
    import onnxruntime
    import PIL

    try:
        import cv2
        opencv = cv2.__version__
    except ImportError:  # pragma: no cover (albumentations brings OpenCV)
        opencv = "any"
    tested = {"onnxruntime": onnxruntime.__version__, "numpy": numpy.__version__, "pillow": PIL.__version__,
              "opencv-python-headless": opencv}
    requirements = "".join(f"{name}  # tested with {tested[name]}\n" for name in REQUIREMENTS)
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items())
    readme = (f"# A fishbear {info['kind']} model, exported as ONNX\n\nMade with {versions}. "
              f"Classes: {', '.join(info['classes'])}. Input {info['input_size'][0]} x {info['input_size'][1]}, "
              f"fit by {info['resize']}.\n\n    pip install -r requirements.txt\n    python predict.py IMAGE_OR_FOLDER "
              "[--output CSV]\n\nor in Python:\n\n    from onnx_predictor import OnnxPredictor\n"
              "    OnnxPredictor('.').predict('photo.jpg')\n\n`export.json` says what the graph expects; `parity.md` "
              "how it agrees with the checkpoint.\n")
    from fishbear.engine.deploy import standalone

    library = Path(standalone.__file__)  # the command beside it imports it as onnx_predictor: it is not imported here
    return {"predict.py": library.with_name("standalone_cli.py").read_text(), "onnx_predictor.py": library.read_text(),
            "requirements.txt": requirements, "README.md": readme}


def export(cfg: DictConfig) -> dict[str, Any]:
    """Write the export folder and its parity report; returns the report."""
    from fishbear.engine.checkpoint import read_meta
    from fishbear.engine.deploy import box_parity, parity, standalone
    from fishbear.engine.deploy.onnx_export import check_exportable, export_onnx, quantized
    from fishbear.engine.inference import Predictor
    from fishbear.kinds import get_kind

    started = time.perf_counter()
    ckpt = Path(str(cfg.ckpt))
    meta = read_meta(ckpt)
    check_exportable(meta, ckpt)
    out = Path(str(cfg.out)) if cfg.out else default_folder(ckpt)
    outputs = OutputFiles(bool(cfg.overwrite), way_out="another out=")
    outputs.check_folder(out, names=lambda p: p.parent == out and p.name in WRITTEN or p.parent == out / "parity")
    samples, files, notes = _pictures(meta, cfg)
    kind = get_kind(meta.kind)
    batch = int(cfg.batch_size)

    exported = export_onnx(ckpt, opset=int(cfg.opset))
    models = {MODEL: exported.model, **({INT8: quantized(exported.model)} if cfg.quantize else {})}
    # the folder is a unit: what predict.py, predict and serve check before answering with a model
    info = {**exported.info, "files": {name: hashlib.sha256(data).hexdigest() for name, data in models.items()}}
    with outputs:
        for name, data in models.items():
            outputs.write_bytes(out / name, data)
        for name, text in {META: json.dumps(info, indent=2) + "\n", **_folder_files(exported.info)}.items():
            outputs.write_text(out / name, text)
        exported_s = time.perf_counter() - started

        reference = [a for _, a in Predictor.from_checkpoint(ckpt).predict_files(files, batch)]
        onnx = standalone.OnnxPredictor(out)
        answers = [a for _, a in onnx.predict_files(files, batch)]
        tolerance = kind.parity_tolerance
        report: dict[str, Any] = {
            "export": str(out), "checkpoint": str(ckpt), "model_sha256": info["files"][MODEL], "kind": meta.kind,
            "pictures": len(files),
            "source": "; ".join(notes), "tolerance": tolerance, "versions": exported.info["versions"],
            "size_mb": len(exported.model) / 2**20,
            "tensors": parity.tensor_parity(out, exported.graph, files, batch),
            "decisions": parity.agreement(reference, answers)}
        if samples:
            n = len(samples)
            ours, theirs = parity.headline(kind, list(meta.classes), reference[:n], samples), \
                parity.headline(kind, list(meta.classes), answers[:n], samples)
            report["metric"] = {"checkpoint": ours, "export": theirs, "difference": theirs["value"] - ours["value"]}
            if kind.export_batch == 1:  # a detector: mAP from every box, not only those past the threshold
                report["map"] = box_parity.box_maps(out, exported.graph, files[:n], samples, list(meta.classes), kind.resamples)
        report["files"] = _file_parity(ckpt, out, files, batch, tolerance, outputs)
        if cfg.quantize:
            report["quantized"] = _quantized_parity(out, files, batch, reference, samples, kind, meta)
        found = parity.gates(report, tolerance)
        report["gates"] = parity.gate_dicts(found)
        report["failed"] = [g.name for g in found if not g.passed]
        report["passed"] = not report["failed"]
        report["seconds"] = {"export": round(exported_s, 1), "total": round(time.perf_counter() - started, 1)}
        outputs.write_text(out / "parity.json", json.dumps(report, indent=2, default=_plain) + "\n")
        outputs.write_text(out / "parity.md", parity.markdown(report))
    _summary(report)
    return report


def _file_parity(ckpt: Path, out: Path, files: list[Path], batch: int, tolerance: float,
                 outputs: OutputFiles) -> dict[str, Any]:
    """Raw file to CSV: ``fishbear predict``'s CSV and the standalone ``predict.py``'s, run as a user
    runs it, compared; both kept in ``parity/``."""
    from fishbear.engine.deploy import parity

    with tempfile.TemporaryDirectory() as tmp:
        folder = _linked(files, Path(tmp) / "pictures")
        mine, standalone_csv = Path(tmp) / "fishbear.csv", Path(tmp) / "standalone.csv"
        _fishbear_csv(ckpt, folder, mine, Path(tmp) / "masks_fishbear", batch)
        ran = parity.run_standalone(out, folder, standalone_csv, Path(tmp) / "masks_standalone")
        if ran.returncode != 0:
            found = {"same_columns_in_order": False, "same_files": False, "same_text_cells": 0.0,
                     "max_number_difference": float("nan"), "error": ran.stderr.strip()[-2000:]}
        else:
            found = parity.csv_parity(mine, standalone_csv, tolerance)
            outputs.place_file(standalone_csv, out / "parity" / "standalone_predictions.csv")
        outputs.place_file(mine, out / "parity" / "fishbear_predictions.csv")
    return found


def _quantized_parity(out: Path, files: list[Path], batch: int, reference: list[dict[str, Any]], samples: list[Any],
                      kind: Any, meta: Any) -> dict[str, Any]:
    """The int8 model's decisions against the checkpoint's, its size, and its headline metric."""
    from fishbear.engine.deploy import parity, standalone

    int8 = [a for _, a in standalone.OnnxPredictor(out, model=INT8).predict_files(files, batch)]
    found: dict[str, Any] = {"decisions": parity.agreement(reference, int8), "size_mb": (out / INT8).stat().st_size / 2**20}
    if samples:
        found["metric"] = parity.headline(kind, list(meta.classes), int8[: len(samples)], samples)
    return found


def _plain(value: Any) -> Any:
    return float(value) if hasattr(value, "__float__") else str(value)


def _summary(report: dict[str, Any]) -> None:
    decisions = report["decisions"]
    line = (f"Export: {report['export']} ({report['size_mb']:.2f} MB); parity on {report['pictures']} pictures: "
            f"decisions identical on {decisions['same_decisions']:.1%}, largest difference of a number "
            f"{decisions['max_number_difference']:.2g}")
    if report.get("metric"):
        m = report["metric"]
        line += (f"; {m['checkpoint']['metric']} {m['checkpoint']['value']:.4f} (checkpoint) / "
                 f"{m['export']['value']:.4f} (export)")
    print(line)
    if report["passed"]:
        print(f"Every gate passed: {report['export']}/parity.md")
    else:
        print(f"FAILED gates: {'; '.join(report['failed'])}. See {report['export']}/parity.md", file=sys.stderr)


def cli(argv: list[str]) -> int:
    """``fishbear export ...`` and ``python -m fishbear.export ...``: 1 when a parity gate fails."""
    return 0 if main(argv)["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
