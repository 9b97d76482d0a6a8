"""fishbear export: an ONNX model that answers as the checkpoint does, checked on real pictures,
and a standalone predictor that runs where PyTorch cannot be imported."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fishbear.core.errors import CheckpointError
from tests.conftest import TINY, compose_train, model_meta, run_cli


def _export(ckpt: Path, out: Path, *extra: str) -> dict:
    from fishbear.export import main

    return main([f"ckpt={ckpt}", f"out={out}", *extra])


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    run_dir, _ = trained_run
    out = tmp_path_factory.mktemp("export")
    return run_dir / "checkpoints" / "best.ckpt", out, _export(run_dir / "checkpoints" / "best.ckpt", out, "quantize=true")


def _refused(argv: list[str], capsys) -> str:
    from fishbear.export import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    return err


# -- every kind, at sizes where the fit matters (32 px pictures, another model size) -----------------
KINDS = {
    "multilabel": ["data=shapes_tags", "data.image_size=24"],
    "segment": ["data=shapes_masks", "model=unet", "model.encoder=resnet18", "data.image_size=[24,32]",
                "data.resize=squish"],
    "points": ["data=shapes_points", "data.image_size=[24,32]", "data.resize=pad"],
    "regress": ["data=shapes_counts", "data.image_size=24"],
    "classify": ["data.image_size=24", "data.preprocess=[enhance]", "data.resize=crop"],
}


def test_export_writes_a_folder_that_passes_every_gate_on_the_runs_test_split(exported):
    import onnx

    from fishbear.core.outputs import sha256_of

    ckpt, out, report = exported
    for name in ("model.onnx", "model.int8.onnx", "export.json", "predict.py", "onnx_predictor.py", "requirements.txt",
                 "README.md", "parity.json", "parity.md"):
        assert (out / name).is_file(), name
    assert report["passed"] and not report["failed"], report["failed"]
    names = {g["name"] for g in report["gates"]}
    assert {"decisions: identical", "file to answer: identical decisions in the CSV"} <= names
    assert all(g["passed"] for g in report["gates"])
    # the pictures are the run's own test split (4 per class of the tiny shapes), both predictors scored
    assert report["pictures"] == 16 and "test split" in report["source"]
    assert report["metric"]["checkpoint"]["value"] == report["metric"]["export"]["value"]
    assert 0 <= report["metric"]["export"]["low"] <= report["metric"]["export"]["value"] <= report["metric"]["export"]["high"]
    assert report["tensors"]["outputs"]["probabilities"]["max_abs"] < 1e-4
    assert "int8" in (out / "parity.md").read_text() and report["quantized"]["decisions"]["pictures"] == 16

    info = json.loads((out / "export.json").read_text())
    assert info["kind"] == "classify" and info["classes"] == ["circle", "square", "star", "triangle"]
    assert info["checkpoint"]["sha256"] == sha256_of(ckpt)
    assert info["normalisation"]["in_graph"] and info["input_size"] == [32, 32]
    model = onnx.load(out / "model.onnx")
    assert json.loads({p.key: p.value for p in model.metadata_props}["fishbear"])["classes"] == info["classes"]
    batch_axes = [i.type.tensor_type.shape.dim[0].dim_param for i in model.graph.input]
    assert all(batch_axes), "the batch axis is dynamic"


def test_the_standalone_predictor_runs_without_torch_and_writes_predicts_csv(exported, tmp_path, trained_run):
    from fishbear.engine.deploy.parity import NOT_NEEDED, run_standalone

    ckpt, out, _ = exported
    _, report = trained_run
    pictures = Path(report["data"]["root"]) / "test"
    # the blocker works: in that process, importing torch fails
    blocked = subprocess.run([sys.executable, "-c", f"import sys\nfor n in {NOT_NEEDED!r}: sys.modules[n] = None\n"
                              "import torch"], capture_output=True, text=True)
    assert blocked.returncode != 0 and "import of torch halted" in blocked.stderr
    ran = run_standalone(out, pictures, tmp_path / "standalone.csv", tmp_path / "masks")
    assert ran.returncode == 0, ran.stderr

    run_cli(["-m", "fishbear.predict", f"ckpt={ckpt}", f"input={pictures}", f"output={tmp_path / 'fishbear.csv'}"],
            tmp_path)
    columns, theirs = _rows(tmp_path / "standalone.csv")
    columns_ours, ours = _rows(tmp_path / "fishbear.csv")
    assert columns == columns_ours == ["file", "label", "probability", "p_circle", "p_square", "p_star", "p_triangle"]
    assert len(ours) == 16 and [r["file"] for r in ours] == [r["file"] for r in theirs]
    assert [r["label"] for r in ours] == [r["label"] for r in theirs]
    assert max(abs(float(a[c]) - float(b[c])) for a, b in zip(ours, theirs) for c in columns[2:]) <= 2e-6


def test_predict_runs_an_export_folder_through_onnxruntime(exported, tmp_path, trained_run):
    from fishbear.engine.deploy.exported import ExportedPredictor, open_predictor
    from fishbear.predict import main as predict

    ckpt, out, _ = exported
    _, report = trained_run
    pictures = Path(report["data"]["root"]) / "test"
    assert isinstance(open_predictor(out), ExportedPredictor)
    predict([f"ckpt={out}", f"input={pictures}", f"output={tmp_path / 'onnx.csv'}"])
    predict([f"ckpt={ckpt}", f"input={pictures}", f"output={tmp_path / 'torch.csv'}"])
    (columns, onnx_rows), (columns_torch, torch_rows) = _rows(tmp_path / "onnx.csv"), _rows(tmp_path / "torch.csv")
    assert columns == columns_torch
    assert [r["label"] for r in onnx_rows] == [r["label"] for r in torch_rows] and len(onnx_rows) == 16
    assert max(abs(float(a["probability"]) - float(b["probability"])) for a, b in zip(onnx_rows, torch_rows)) <= 2e-6
    with pytest.raises(CheckpointError, match="fixed at export"):
        open_predictor(out, score_threshold=0.3)


def test_a_preprocessing_that_differs_fails_the_gates_and_the_command(trained_run, tmp_path, monkeypatch, capsys):
    """The most reported cause of an ONNX model answering differently: the picture prepared
    otherwise than in training. A mirrored fit must fail the decision gates, and exit 1."""
    from fishbear.engine.deploy import standalone
    from fishbear.export import cli

    run_dir, _ = trained_run
    fit = standalone.fit
    monkeypatch.setattr(standalone, "fit", lambda image, meta: fit(image[:, ::-1], meta))
    assert cli([f"ckpt={run_dir / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'export'}"]) == 1
    report = json.loads((tmp_path / "export" / "parity.json").read_text())
    assert not report["passed"]
    assert "decisions: max abs difference of a number" in report["failed"]
    assert "**no**" in (tmp_path / "export" / "parity.md").read_text()
    assert "FAILED gates: " in capsys.readouterr().err


def test_a_detectors_graph_traces_and_answers_box_for_box_in_onnxruntime():
    """The fast smoke test: an untrained Faster R-CNN graph (with every box it finds from score 0)
    through the TorchScript exporter, run in onnxruntime on another picture than it was traced
    on, a picture of another size: the same boxes, matched one to one, to float precision."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from fishbear.engine.deploy.box_parity import matched_boxes
    from fishbear.engine.deploy.onnx_export import ExportGraph, trace
    from fishbear.models.detection import faster_rcnn_on

    torch.manual_seed(0)
    network = faster_rcnn_on(num_classes=2, backbone="convnet", min_score=0.0)
    graph = ExportGraph(network, model_meta("detect", ["fish", "crab"], image_size=96)).eval()
    session = ort.InferenceSession(trace(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    image = torch.rand(1, 3, 96, 96) * 255
    size = torch.tensor([[300, 200]])  # the picture's own size: boxes come back in its pixels
    got = session.run(None, {"image": image.numpy(), "original_size": size.numpy()})
    with torch.no_grad():
        want = [t.numpy() for t in graph(image, size)]
    assert len(want[0]) > 0 and got[0].shape == want[0].shape
    pairs, total, corner, score = matched_boxes(tuple(got), tuple(want))
    assert 2 * pairs == total and corner < 0.05 and score < 1e-4
    assert want[0][:, [0, 2]].max() <= 200 + 1e-3 and want[0][:, [1, 3]].max() <= 300 + 1e-3
    assert np.all(np.diff(want[1]) <= 0)  # best first


@pytest.mark.slow
def test_a_detector_exports_one_picture_a_run_with_its_boxes_matched_on_both_sides(trained_detector, tmp_path):
    """Faster R-CNN through the TorchScript exporter at the model's size: every box of the graph
    matched across onnxruntime and PyTorch, the readings' boxes matched at IoU >= 0.5, the same
    CSV (a row per box) from predict.py as from fishbear predict, and the drawn pictures and VOC XML."""
    ckpt, _ = trained_detector
    out = tmp_path / "export"
    report = _export(ckpt, out)
    assert report["kind"] == "detect" and report["passed"], report["failed"]
    assert report["tensors"]["boxes_matched"] == 1.0 and report["tensors"]["boxes"] > 0
    assert report["decisions"]["boxes_matched"] == 1.0
    assert report["metric"]["checkpoint"]["metric"] == "box F1 at IoU 0.5"
    found = report["map"]
    assert abs(found["difference_map_50"]) < 1e-6 and found["pictures"] == report["metric"]["export"]["pictures"]
    for side in ("checkpoint", "export"):
        assert found[side]["map_50_low"] <= found[side]["map_50"] <= found[side]["map_50_high"]
    assert "COCO mAP of every box" in (out / "parity.md").read_text()
    assert json.loads((out / "export.json").read_text())["batch"] == 1
    columns, rows = _rows(out / "parity" / "standalone_predictions.csv")
    assert columns == ["file", "drawn", "voc_xml", "label", "score", "xmin", "ymin", "xmax", "ymax"]
    assert {r["file"] for r in rows} and all(Path(r["drawn"]).name.endswith(".boxes.jpg") for r in rows)


def test_refusals_name_the_reason():
    from fishbear.engine.deploy.onnx_export import check_exportable

    with pytest.raises(CheckpointError, match="data.resize=pad"):
        check_exportable(model_meta("segment", ["a", "b"], resize="pad"), Path("x.ckpt"))
    meta = model_meta("classify", ["a", "b"]).replace(preprocess=("sharpen",))
    with pytest.raises(CheckpointError, match="does not implement"):
        check_exportable(meta, Path("x.ckpt"))


def test_export_refuses_to_replace_a_users_file(exported, tmp_path, capsys):
    ckpt, _, _ = exported
    out = tmp_path / "export"
    out.mkdir()
    (out / "README.md").write_text("my notes")
    assert "README.md" in _refused([f"ckpt={ckpt}", f"out={out}"], capsys)
    assert (out / "README.md").read_text() == "my notes" and not (out / "model.onnx").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_exports_and_passes_parity(kind, tmp_path):
    from fishbear.train import train

    run = tmp_path / "run"
    train(compose_train(TINY + KINDS[kind] + ["logger=none"], run))
    report = _export(run / "checkpoints" / "best.ckpt", tmp_path / "export")
    assert report["kind"] == kind
    assert report["passed"], report["failed"]
    assert report["decisions"]["same_decisions"] == 1.0
    assert report["files"]["same_columns_in_order"] and report["files"]["same_text_cells"] == 1.0
    if kind == "segment":
        assert report["decisions"]["pixel_agreement"] >= 0.9999


def test_every_kind_that_exports_has_its_reading_in_the_standalone_predictor():
    from fishbear.engine.deploy.standalone import READINGS
    from fishbear.kinds import KINDS as REGISTRY

    exporting = [kind for kind in REGISTRY.values() if kind.export_outputs]
    assert {kind.name for kind in exporting} == {"classify", "multilabel", "segment", "points", "regress", "detect"}
    assert all(kind.export_reading in READINGS for kind in exporting)
    assert all(kind.export_refusal(model_meta(kind.name, ["a", "b"])) is None for kind in exporting)


def test_the_export_folder_is_a_unit_a_changed_model_is_refused_everywhere(exported, tmp_path, trained_run):
    import shutil

    from fishbear.engine.deploy.exported import open_predictor
    from fishbear.engine.deploy.serving import model_info
    from fishbear.predict import main as predict
    from fishbear.serve import _meta_and_backend

    _, out, _ = exported
    _, report = trained_run
    picture = next((Path(report["data"]["root"]) / "test").rglob("*.jpg"))
    folder = tmp_path / "export"
    shutil.copytree(out, folder)
    info = json.loads((folder / "export.json").read_text())
    assert set(info["files"]) == {"model.onnx", "model.int8.onnx"}
    assert json.loads((folder / "parity.json").read_text())["model_sha256"] == info["files"]["model.onnx"]
    assert model_info(folder, _meta_and_backend(folder)[0], "onnxruntime")["parity"] == "every gate passed"
    # a swapped model: the int8 one put in model.onnx's place
    (folder / "model.onnx").write_bytes((folder / "model.int8.onnx").read_bytes())
    with pytest.raises(CheckpointError, match="not the model that was exported"):
        open_predictor(folder)
    with pytest.raises(SystemExit) as stopped:
        predict([f"ckpt={folder}", f"input={picture}", f"output={tmp_path / 'p.csv'}"])
    assert stopped.value.code == 2 and not (tmp_path / "p.csv").exists()
    ran = subprocess.run([sys.executable, str(folder / "predict.py"), str(picture), "--output", str(tmp_path / "s.csv")],
                         capture_output=True, text=True)
    assert ran.returncode == 2 and "not the model that was exported" in ran.stderr and not (tmp_path / "s.csv").exists()
    from tests.engine.deploy.test_serve import _serve_cli

    ran = _serve_cli([f"ckpt={folder}", "port=18998"])
    assert ran.returncode == 2 and "not the model that was exported" in ran.stderr, ran.stderr
    # export.json naming a model outside the folder
    shutil.copyfile(out / "model.onnx", folder / "model.onnx")
    (tmp_path / "elsewhere.onnx").write_bytes((out / "model.onnx").read_bytes())
    json.dump({**info, "model": "../elsewhere.onnx"}, (folder / "export.json").open("w"))
    with pytest.raises(CheckpointError, match="a model is a .onnx file inside the export folder"):
        open_predictor(folder)


def test_the_standalone_predictor_writes_through_no_link(exported, tmp_path, trained_run):
    _, out, _ = exported
    _, report = trained_run
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for i, source in enumerate(sorted((Path(report["data"]["root"]) / "test").rglob("*.jpg"))[:3]):
        (pictures / f"{i}.jpg").write_bytes(source.read_bytes())
    target = tmp_path / "outside.csv"
    (pictures / "predictions.csv").symlink_to(target)  # dangling: would create outside.csv through it
    ran = subprocess.run([sys.executable, str(out / "predict.py"), str(pictures)], capture_output=True, text=True)
    assert ran.returncode != 0 and "exists" in ran.stderr and not target.exists()
    ran = subprocess.run([sys.executable, str(out / "predict.py"), str(pictures), "--overwrite"], capture_output=True,
                         text=True)
    assert ran.returncode != 0 and "is a link" in ran.stderr and not target.exists()
    # a picture that decodes but cannot be fitted is skipped with its name; the others are answered
    from tests.engine.deploy.test_serve import _strip_png

    (pictures / "strip.png").write_bytes(_strip_png(2_000_000))
    (pictures / "predictions.csv").unlink()
    ran = subprocess.run([sys.executable, str(out / "predict.py"), str(pictures)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert "skipped" in ran.stderr and "strip.png" in ran.stderr
    assert len(_rows(pictures / "predictions.csv")[1]) == 3
