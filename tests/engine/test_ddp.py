"""DDP that reports right: two (here three) CPU processes through Lightning's gloo backend, one
run folder, every test image once in the report, and the test metrics of a one-process
evaluation of the same checkpoint."""

from __future__ import annotations

import json

import pytest

from fishbear.evaluate import evaluate
from tests.conftest import compose_train, run_cli

DATA = ["data.source.train=8", "data.source.valid=3", "data.source.test=4", "data.source.image_size=32",
        "data.image_size=32", "data.batch_size=4", "data.num_workers=0"]


@pytest.mark.slow  # several processes at once
@pytest.mark.parametrize("storage", ["folder", "pack", "pack, streamed"])
def test_three_cpu_processes_make_one_run_folder_and_report_every_test_image_once(storage, tmp_path):
    data = list(DATA)
    if storage.startswith("pack"):  # the same data packed (fishbear pack), each process reading it through the pack
        from fishbear.pack import main as pack_main

        pack_main([f"out={tmp_path / 'pack'}", *[o for o in DATA if o.startswith("data.source.")]])
        data.append(f"data.root={tmp_path / 'pack'}")
        if storage.endswith("streamed"):  # each process streams its own share of the training split
            data.append("data.stream=true")
    # 16 test images over 3 processes: the distributed sampler repeats 2 to even them out
    result = run_cli(["-m", "fishbear.train", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=3",
                      *data, "trainer.max_epochs=1", "trainer.num_sanity_val_steps=0", "logger=none"],
                     cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Run folder:") == 1  # console summary from rank 0 only
    runs = [p.parent for p in (tmp_path / "outputs").rglob(".hydra")]
    assert len(runs) == 1 and len(list((tmp_path / "outputs").glob("*/*"))) == 1
    run = runs[0]
    report = json.loads((run / "report.json").read_text())
    assert report["data"]["sizes"]["test"] == 16
    assert sum(map(sum, report["classify"]["confusion_matrix"])) == 16  # each test image once
    assert report["intervals"]["test/acc"]["method"].endswith("16 images")
    single = evaluate(compose_train([f"ckpt={run / 'checkpoints' / 'best.ckpt'}", *data], tmp_path / "eval",
                                    config_name="evaluate"))
    for name, value in single["metrics"].items():
        assert report["metrics"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    assert single["classify"]["confusion_matrix"] == report["classify"]["confusion_matrix"]
