"""``fishbear pack``: a dataset written as shards, then trained from with ``data.root=<pack>``: the same
split and labels give the same seeded run as the folder; what cannot be packed is one error line."""

from __future__ import annotations

import json

import pytest

from fishbear.pack import main as pack_main
from fishbear.train import train
from tests.conftest import TINY, compose_train, one_error

PACKABLE = [o for o in TINY if o.startswith("data.source.")]


def test_training_from_a_pack_is_the_run_from_its_folder(tmp_path, capsys):
    index = pack_main([f"out={tmp_path / 'pack'}", *PACKABLE])
    assert "Train from it with data.root=" in capsys.readouterr().out
    shards = json.loads((tmp_path / "pack" / "train" / "images" / "index.json").read_text())
    assert len(shards["chunks"]) == 1 and shards["config"]["chunk_bytes"] == 64 * 1000**2  # small pictures: one shard
    folder = train(compose_train([*TINY, "logger=none", "seed=3"], tmp_path / "from_folder"))
    packed = train(compose_train([*TINY, "logger=none", "seed=3", f"data.root={tmp_path / 'pack'}"],
                                 tmp_path / "from_pack"))
    assert packed["data"]["sizes"] == folder["data"]["sizes"] == {s: i["count"] for s, i in index["splits"].items()}
    assert packed["data"]["classes"] == folder["data"]["classes"]
    assert packed["data"]["pack"]["source"].startswith("shapes: ") and folder["data"]["pack"] is None
    assert "| packed from | shapes: " in (tmp_path / "from_pack" / "report.md").read_text()
    for name, value in folder["metrics"].items():  # the same pixels, labels and order: the same seeded run
        assert packed["metrics"][name] == pytest.approx(value, abs=1e-5), name


def test_a_pack_of_a_pack_and_a_pack_inside_its_dataset_are_refused(tmp_path, capsys):
    pack_main([f"out={tmp_path / 'pack'}", *PACKABLE])
    capsys.readouterr()
    line = one_error(pack_main, [f"out={tmp_path / 'again'}", f"data.root={tmp_path / 'pack'}", *PACKABLE], capsys)
    assert "is a pack already" in line and not (tmp_path / "again").exists()
    from fishbear.engine.experiment import build_datamodule

    root = build_datamodule(compose_train(TINY)).root
    line = one_error(pack_main, [f"out={root / 'packed'}", *PACKABLE], capsys)
    assert "is inside the dataset" in line and not (root / "packed").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["quality=0"], r"quality=0 must be a whole number of 1 or more"),
    (["max_side=3"], r"max_side=3: give a whole number of 8 pixels or more"),
    (["chunk_bytes=12 parsecs"], r"chunk_bytes=12 parsecs: give a shard size of 1KB or more"),
    (["out=gs://bucket/x"], r"gs://bucket/x: fishbear packs to a local folder or s3://bucket/prefix"),
    ([], r"out must be set: add out=\.\.\. to the command line"),
])
def test_bad_pack_settings_are_one_line(args, message, tmp_path, capsys):
    import re

    outs = [] if not args or args[0].startswith("out=") else [f"out={tmp_path / 'pack'}"]
    line = one_error(pack_main, [*outs, *args, *PACKABLE], capsys)
    assert re.search(message, line), line


def test_a_packed_run_names_its_source_where_files_are_needed_and_a_pack_of_another_kind_is_refused(tmp_path, capsys):
    from fishbear.core.errors import DataError
    from fishbear.engine.checkpoint import read_meta
    from fishbear.engine.experiment import build_datamodule
    from fishbear.engine.run_data import run_datamodule

    pack_main([f"out={tmp_path / 'pack'}", *PACKABLE])
    train(compose_train([*TINY, "logger=none", f"data.root={tmp_path / 'pack'}"], tmp_path / "run"))
    with pytest.raises(DataError, match=r"trained from the pack at .*use the folder it was packed from \(shapes: "):
        run_datamodule(read_meta(tmp_path / "run" / "checkpoints" / "best.ckpt"))
    other = build_datamodule(compose_train(["data=shapes_tags", f"data.root={tmp_path / 'pack'}"]))
    with pytest.raises(DataError, match=r"the pack reads 'classify' labels .* the data config's task is 'multilabel'"):
        other.setup("fit")


def test_a_streamed_run_killed_mid_epoch_resumes_and_sees_each_remaining_picture_once(tmp_path, monkeypatch):
    """data.stream=true: LitData's loader state rides in the mid-epoch checkpoint (last.ckpt every 2
    steps here); the run killed after step 5 resumes from step 4 and reads exactly the pictures
    the first 4 steps had not."""
    from tests.crashes import killed

    pack_main([f"out={tmp_path / 'pack'}", *PACKABLE])
    record = tmp_path / "seen.txt"
    overrides = [*TINY, "logger=none", f"data.root={tmp_path / 'pack'}", "data.stream=true", "data.batch_size=4",
                 "+callbacks.last_checkpoint.every_n_train_steps=2",
                 "+callbacks.record._target_=tests.crashes.RecordIndices", f"+callbacks.record.path={record}",
                 "+callbacks.crash._target_=tests.crashes.CrashAtStep", "+callbacks.crash.step=5"]
    killed(lambda: train(compose_train(overrides, tmp_path / "run")), monkeypatch)
    assert len(record.read_text().splitlines()) == 5
    train(compose_train([*overrides, "ckpt_path=last"], tmp_path / "run"))
    batches = [[int(i) for i in line.split()] for line in record.read_text().splitlines()]
    seen = [i for batch in batches[:4] + batches[5:] for i in batch]  # batch 5 was lost with the kill
    assert sorted(seen) == list(range(32)), batches
