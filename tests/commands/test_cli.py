"""The commands of the README and the docs, run as a user types them (with tiny data appended) or,
where they need files only a user has, composed; and CLI errors."""

from __future__ import annotations

import csv
import json
import re
import shlex

import pytest

from tests.conftest import REPO, TINY, run_cli, use_torch_home

DOC_PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def readme_commands(pages: list = DOC_PAGES) -> list[str]:
    """Every fishbear command in the fenced bash blocks of the README and the docs, as
    ``python -m fishbear.<command> ...`` (``fishbear <command> ...`` is the same), comments cut off."""
    commands = []
    for page in pages:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S):
            for line in block.splitlines():
                words = shlex.split(line, comments=True)
                if len(words) >= 2 and words[0] == "fishbear":
                    words = ["python", "-m", f"fishbear.{words[1]}", *words[2:]]
                if words[:2] == ["python", "-m"] and words[2].startswith("fishbear."):
                    commands.append(shlex.join(words))
    return commands


OTHER_COMMANDS = [c for c in readme_commands() if c.split()[2] in ("fishbear.predict", "fishbear.frames",
                                                                    "fishbear.convert", "fishbear.evaluate",
                                                                    "fishbear.export", "fishbear.fetch",
                                                                    "fishbear.review", "fishbear.serve",
                                                                    "fishbear.adapt", "fishbear.pack")]


TRAIN_COMMANDS = list(dict.fromkeys(c for c in readme_commands()  # one test per command, wherever it is shown
                                    if c.startswith("python -m fishbear.train") and "--resume" not in c))


# several GPUs, SLURM, parallel runs and searches ("More than one machine"), and a pack in a bucket: their
# configs are composed here; the mechanisms run with tiny data in test_ddp.py, test_launchers.py,
# test_search.py and test_pack_s3.py (against an S3 server on 127.0.0.1)
SCALE_COMMANDS = [c for c in TRAIN_COMMANDS
                  if any(k in c for k in ("trainer=ddp", "hydra/launcher=", "hparams_search=", "s3://"))]


# these run as real subprocesses; the model variants run the same overrides in process (test_readme_models)
CLI_COMMANDS = ["python -m fishbear.train", "python -m fishbear.train -m trainer.lr=1e-4,1e-3,1e-2",
                "python -m fishbear.train -m seed=1,2,3"]


MODEL_COMMANDS = [c for c in TRAIN_COMMANDS if c not in CLI_COMMANDS and c not in SCALE_COMMANDS]


def _fast_overrides(command: str, tmp_path, monkeypatch) -> list[str]:
    """Tiny settings for a README command; real data and weights where the command names them."""
    if "pretrained=true" in command or "experiment=fish_frames" in command:  # a locally made state dict
        # under torchvision's file name (the fish recipe's experiment config asks for ImageNet weights)
        import torch
        import torchvision

        folder = use_torch_home(tmp_path / "torch", monkeypatch)
        torch.save(torchvision.models.mobilenet_v2().state_dict(), folder / "mobilenet_v2-b0353104.pth")
    if "model=fasterrcnn_mobilenet" in command:  # a locally made COCO-shaped state dict, as above
        import torch
        import torchvision

        arch = "fasterrcnn_mobilenet_v3_large_fpn"
        folder = use_torch_home(tmp_path / "torch", monkeypatch)
        url = torchvision.models.get_model_weights(arch).DEFAULT.url
        model = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=91)
        torch.save(model.state_dict(), folder / url.rsplit("/", 1)[-1])
    if "data=fish_boxes" in command or "data=fish_counts" in command:
        from tests.conftest import requires_shared

        return [f"data.root={requires_shared('fish', 'video1_output')}", "data.image_size=[64,96]", "data.batch_size=4",
                "data.num_workers=0", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "trainer.num_sanity_val_steps=0"]
    if "experiment=fish_frames" in command:
        from tests.conftest import requires_shared

        requires_shared("fish", "video1_output")  # the command names ../shared/data/fish: skipped where it is not
        return ["data.image_size=[48,84]", "data.num_workers=0", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "trainer.num_sanity_val_steps=0"]
    if "data=camvid" in command:
        from tests.conftest import requires_shared

        return [f"data.root={requires_shared('camvid')}", "data.image_size=[64,96]", "data.batch_size=4",
                "data.num_workers=0", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "trainer.num_sanity_val_steps=0"]
    if "data=bears" in command or "data.root=bears_web" in command:  # bears_web: fetch's bears from the URL lists
        from tests.conftest import requires_shared

        return [f"data.root={requires_shared('bears')}", "data.image_size=32", "data.batch_size=8",
                "data.num_workers=0", "trainer.max_epochs=2", "trainer.limit_train_batches=2",
                "trainer.limit_val_batches=1", "trainer.limit_test_batches=2", "trainer.num_sanity_val_steps=0"]
    return TINY


def _timm_weights(command: str, tmp_path) -> list[str]:
    """A timm command with model.pretrained=true: its architecture's weights as a local safetensors
    file (random: the hub is not here), read through model.weights as an offline user would."""
    if "model=timm" not in command or "pretrained=true" not in command:
        return []
    import timm
    from safetensors.torch import save_file

    name = next(w.split("=", 1)[1] for w in shlex.split(command) if w.startswith("model.name="))
    path = tmp_path / "timm_weights.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model(name).state_dict().items()}, str(path))
    return [f"model.weights={path}"]


BAD_INPUT = [
    (["data=nope"], r"Could not find 'data/nope'; the data= choices are: .*shapes"),
    (["trainer.foo=1"], r"error: trainer\.foo is not a setting of this command \(trainer has: .*max_epochs"),
    # fishbear's one line with the closest valid key or choice, not Hydra's three lines
    (["trainer.max_epoch=2"], r"error: trainer\.max_epoch is not a setting of this command; did you mean "
                              r"trainer\.max_epochs\?"),
    (["model=resnet"], r"error: Could not find 'model/resnet'; did you mean model=resnet\d\d"),
    (["trainer.max_epochs=abc"], r"error: trainer.max_epochs='abc' has the wrong type: Trainer expects Optional\[int\]"),
    (["data=folder", "data.root=/no/such/folder"], r"error: Data folder /no/such/folder does not exist"),
    (["hydra.run.dir=a-file/run"], r"error: cannot create the run folder .*a-file/run: .*a-file is a file, not a folder"),
    # a search over something Optuna cannot sample: the sweeper's error, before any trial
    (["-m", "hparams_search=shapes_optuna", "model.dropout=glob(*)"],
     r"error: cannot search over 'model.dropout=glob\(\*\)': use interval\(a, b\)"),
    # a class folder with an image that does not decode: named, and exit status 2
    (["data=folder", "data.root=corrupt", "model=mlp", "data.image_size=16", "data.batch_size=4", "data.num_workers=1",
      "trainer.max_epochs=1"], r"error: Image file .*b/3\.png \(\w+ split\) cannot be read as an image"),
]


def _corrupt_folder(root):
    from PIL import Image

    for cls in ("a", "b"):
        for i in range(4):
            path = root / "train" / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(path)
    (root / "train" / "b" / "3.png").write_bytes(b"garbage")


@pytest.fixture(scope="module")
def bad_input_runs(tmp_path_factory):
    """Every bad command at once, each its own interpreter (as a user types it): on 2 cores the
    interpreters' start-up overlaps instead of adding up."""
    import os
    import subprocess
    import sys

    cwd = tmp_path_factory.mktemp("bad-input")
    _corrupt_folder(cwd / "corrupt")
    (cwd / "a-file").write_text("a file where the run folder's parent would be")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "HYDRA_FULL_ERROR": ""}
    running = [subprocess.Popen([sys.executable, "-m", "fishbear.train", *args], cwd=cwd, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for args, _ in BAD_INPUT]
    errors = [run.communicate(timeout=120)[1] for run in running]
    return [(run.returncode, err) for run, err in zip(running, errors)]


# the newer commands' settings: each wrong type or range one line, exit status 2, before any work
COMMAND_SETTINGS = [
    ("fetch", ["urls=u.csv", "out=o", "max_size=abc"], r"max_size='abc': give a whole number"),
    ("fetch", ["urls=u.csv", "out=o", "timeout=-1"], r"timeout=-1: give more than 0"),
    ("fetch", ["urls=u.csv", "out=o", "workers=abc"], r"workers='abc': give a whole number"),
    ("fetch", ["urls=u.csv", "out=o", "quality=500"], r"quality=500: give a JPEG quality from 1 to 100"),
    ("fetch", ["urls=u.csv", "out=o", "respect_robots=maybe"], r"respect_robots='maybe': give true or false"),
    ("fetch", ["urls=u.csv", "out=u.csv/x"], r"out=u\.csv/x (is a file|cannot be made)"),
    ("review", ["run=.", "port=abc"], r"port=abc must be a port number"),
    ("serve", ["ckpt=.", "port=abc"], r"port=abc must be a port number"),
    ("serve", ["ckpt=.", "batch_timeout=abc"], r"batch_timeout=abc must be a number of seconds"),
    ("serve", ["ckpt=.", "threads=0"], r"threads=0 must be a whole number of 1 or more"),
]


def test_readme_lists_the_main_commands():
    readme = readme_commands([REPO / "README.md"])
    assert "python -m fishbear.train" in readme and "python -m fishbear.train -m trainer.lr=1e-4,1e-3,1e-2" in readme
    commands = readme_commands()
    for expected in ("python -m fishbear.train model=resnet18 data=shapes trainer.max_epochs=2",
                     "python -m fishbear.train model=mlp"):
        assert expected in commands
    assert any(c.startswith("python -m fishbear.train model=vgg16") for c in commands)


@pytest.mark.parametrize("command", OTHER_COMMANDS)
def test_documented_commands_that_need_a_users_files_compose(command):
    """predict, frames, convert, evaluate, export, fetch, adapt and pack as the docs write them: every
    key is one the command takes, every value of the right form (they are run on tiny data by
    test_predict, test_video, test_convert, test_evaluate, test_export, test_fetch, test_adapt and
    test_pack)."""
    from fishbear.engine.commandline import compose_cli
    from tests.conftest import compose_train

    name, args = command.split()[2].removeprefix("fishbear."), shlex.split(command)[3:]
    if name == "evaluate":
        cfg = compose_train(args, config_name="evaluate")
        assert cfg.ckpt and cfg.data
        return
    if name == "review" and args and args[0] in ("apply", "undo"):  # the action word before the overrides
        args = args[1:]
    if name == "convert":  # src_format chooses the reader, as the command does
        source = next(a.split("=", 1)[1] for a in args if a.startswith("src_format="))
        args = [*args, f"data/reader@reader={source}"]
    from omegaconf import OmegaConf

    cfg = compose_cli(name, args, "usage")
    assert all(OmegaConf.select(cfg, a.split("=", 1)[0]) is not None for a in args if "=" in a and "@" not in a)


def test_every_documented_command_is_a_fishbear_command():
    from fishbear.cli import COMMANDS

    for command in readme_commands():
        assert command.split()[2].removeprefix("fishbear.") in COMMANDS, command


@pytest.mark.parametrize("command", SCALE_COMMANDS)
def test_readme_scale_out_command_composes(command):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from tests.conftest import compose_train

    # a sweep's first value of each swept key: the config one of its jobs runs
    overrides = []
    for override in OverridesParser.create().parse_overrides([o for o in shlex.split(command)[3:] if o != "-m"]):
        value = next(iter(override.sweep_iterator())) if override.is_sweep_override() else None
        overrides.append(f"{override.get_key_element()}={value}" if value is not None else override.input_line)
    cfg = compose_train(overrides)
    if "trainer=ddp" in command:
        assert cfg.trainer.strategy == "ddp"
    if "hydra/launcher=slurm" in command:
        launcher = cfg.hydra.launcher
        assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (
            cfg.trainer.num_nodes, cfg.trainer.devices, cfg.trainer.devices)
    if "hydra/launcher=joblib" in command:
        assert "JoblibLauncher" in cfg.hydra.launcher._target_
    if "hparams_search=" in command:
        assert "OptunaSweeper" in cfg.hydra.sweeper._target_ and cfg.optimized_metric.startswith("val/")


def test_readme_lr_find_command_runs_in_process(tmp_path):
    from fishbear.lr_find import lr_find
    from tests.conftest import compose_train

    command = next(c for c in readme_commands() if c.startswith("python -m fishbear.lr_find"))
    overrides = [o for o in command.split()[3:] if not o.startswith("num_training")]
    result = lr_find(compose_train([*overrides, *TINY, "num_training=15"], tmp_path, config_name="lr_find"))
    assert result["steepest"] is None or result["steepest"] > 0
    assert (tmp_path / "lr_find.png").is_file()


def test_every_readme_train_command_is_exercised():
    assert set(TRAIN_COMMANDS) <= set(CLI_COMMANDS) | set(MODEL_COMMANDS) | set(SCALE_COMMANDS)


# the commands on the real data in ../shared (a detector on full fish frames, CamVid) are slow ones
@pytest.mark.parametrize("command", [pytest.param(c, marks=pytest.mark.slow) if "../shared/" in c else c
                                     for c in MODEL_COMMANDS])
def test_readme_model_command_trains_in_process(command, tmp_path, monkeypatch):
    from fishbear.train import train
    from tests.conftest import compose_train

    overrides = [*shlex.split(command)[3:], *_fast_overrides(command, tmp_path, monkeypatch),
                 *_timm_weights(command, tmp_path), "logger=none"]
    report = train(compose_train(overrides, tmp_path / "run"))
    expected = {"classify": {"test/acc", "test/f1"}, "multilabel": {"test/acc", "test/fbeta", "test/fbeta_tuned"},
                "segment": {"test/acc", "test/miou"}, "points": {"test/dist_px"},
                "detect": {"test/map", "test/map_50", "test/map_75", "test/mar_100"},
                "regress": {"test/mae", "test/rmse", "test/r2"}}[report["kind"]]
    # a detector has no test loss: torchvision's Faster R-CNN computes losses only in training mode
    assert set(report["metrics"]) == expected | ({"test/loss"} if report["kind"] != "detect" else set())
    assert (tmp_path / "run" / "report.json").is_file() and (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert "model=" not in command or report["config"]["choices"]["model"] in command


# the sweeps (three runs and a summary each); the main job itself runs as typed, full size, in
# tests/commands/test_train.py::test_default_run_reaches_95_percent_in_under_3_minutes
@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in CLI_COMMANDS if "-m" in c.split()[2:]])
def test_readme_train_command_runs(command, tmp_path):
    args = command.split()[1:]
    # tiny data, and a small image for vgg16's five poolings; README values stay, ours come last
    result = run_cli([*args, *TINY, "data.num_workers=1"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Run folder:" in result.stdout and "test/acc=" in result.stdout
    reports = list((tmp_path / "outputs").rglob("report.json"))
    assert len(reports) == 3
    sweep_dir = reports[0].parent.parent
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    if "seed=" in command:  # replicates: one row, mean and spread over the three runs
        assert len(rows) == 1 and rows[0]["runs"] == "3" and rows[0]["seed"] == "1,2,3"
        assert float(rows[0]["test/acc std"]) >= 0 and float(rows[0]["test/acc low"]) <= float(rows[0]["test/acc"])
        assert " ± " in (sweep_dir / "summary.md").read_text()
        return
    assert len(rows) == 3
    # best first by the validation figure the runs were checkpointed by (classify: val/loss, lowest first)
    monitor = json.loads(reports[0].read_text())["validation"]
    values = [float(r[monitor["metric"]]) for r in rows]
    assert values == sorted(values, reverse=monitor["mode"] == "max"), "summary not best first by validation"
    assert sorted(r["trainer.lr"] for r in rows) == ["0.0001", "0.001", "0.01"]
    assert "| rank | run | runs | trainer.lr" in (sweep_dir / "summary.md").read_text()


@pytest.mark.parametrize("case", range(len(BAD_INPUT)), ids=[" ".join(args) for args, _ in BAD_INPUT])
def test_bad_input_gets_one_message_and_no_traceback(case, bad_input_runs):
    returncode, stderr = bad_input_runs[case]
    # Hydra's own answers to a bad choice or key exit 2 too, like fishbear's (they exited 1, as a crash does)
    assert returncode == 2, returncode
    assert re.search(BAD_INPUT[case][1], stderr), stderr[-2000:]
    assert "Traceback" not in stderr
    assert sum(line.startswith("error:") for line in stderr.splitlines()) == 1, stderr[-2000:]


@pytest.mark.parametrize("command,args,message", COMMAND_SETTINGS, ids=[" ".join([c, *a]) for c, a, _ in COMMAND_SETTINGS])
def test_a_newer_commands_bad_setting_is_one_line(command, args, message, tmp_path, monkeypatch, capsys):
    import importlib

    monkeypatch.chdir(tmp_path)
    (tmp_path / "u.csv").write_text("url,label\nhttp://127.0.0.1:9/a.jpg,cats\n")
    with pytest.raises(SystemExit) as stopped:
        importlib.import_module(f"fishbear.{command}").main(args)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and re.search(message, err), err
    assert err.count("error:") == 1 and "Traceback" not in err
