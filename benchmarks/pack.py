"""Loading from a folder against loading from its pack (``fishbear pack``), in one run: the training
loader's images/s over whole epochs (decoding, the data config's fit and augmentation, collation),
training images/s (a one-epoch fit of the data config's model, validation off), each on-disk size,
and, with ``--s3``, the first and second epoch streamed from an S3 server on 127.0.0.1 against the
same pack streamed from the local disk; all as ratios to the folder (or to the local pack).

    python benchmarks/pack.py --case fullhd --max-side 640    # the shared full-HD fish frames
    python benchmarks/pack.py --case coco --s3                  # the shared COCO images and boxes at 224 px
    python benchmarks/pack.py --case small --images 20000       # many small files (the shapes data)

``fullhd``: the 33 unlabelled 1920 x 1080 frames of ../shared/data/fish/testFrames, copied
``--repeat`` times into an ImageFolder of two classes; ``coco``: ../shared/data/coco's 80 real COCO
2017 images with their instances JSON (detection, 224 x 224), each copied ``--repeat`` times
(names and ids made new, the annotations kept), read as they are; ``small``: the
embedded shapes data at 64 px. Both sides run the same data config in the same process, one after
the other, with the same loader workers (``--workers``). ``--s3`` starts moto's server over TLS (the
dev extra's ``moto[server]``) as the tests do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"  # --shared changes it


def _compose(overrides: list[str], name: str = "train"):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import fishbear.engine.config  # noqa: F401  (the resolvers)
    from fishbear.conf import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=overrides, return_hydra_config=name == "train")


def _epoch_seconds(overrides: list[str], epochs: int) -> tuple[list[float], int]:
    """Each epoch's seconds through the training loader, and the pictures one epoch holds."""
    from fishbear.engine.experiment import build_datamodule

    datamodule = build_datamodule(_compose(overrides))
    datamodule.prepare_data()
    datamodule.setup("fit")
    times, seen = [], 0
    for _ in range(epochs):
        loader = datamodule.train_dataloader()
        started, seen = time.perf_counter(), 0
        for batch in loader:
            seen += len(batch["image"])
        times.append(time.perf_counter() - started)
    return times, seen


def _training_rate(overrides: list[str], run_dir: Path, batches: int) -> float:
    """Training images/s of a fit of ``batches`` steps (validation and test off), from the run's own fit time."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from fishbear.train import train

    cfg = _compose([*overrides, "logger=none", "trainer.max_epochs=1", "trainer.limit_val_batches=0",
                    f"trainer.limit_train_batches={batches}",
                    "trainer.num_sanity_val_steps=0", "trainer.limit_test_batches=1"])
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = cfg.paths.output_dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    report = train(cfg)
    steps = min(batches, report["data"]["sizes"]["train"] // report["data"]["batch_size"])
    return steps * report["data"]["batch_size"] / report["fit_seconds"]


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def _fullhd_folder(scratch: Path, repeat: int) -> Path:
    frames = sorted((SHARED / "fish" / "testFrames").glob("*.jpg"))
    if not frames:
        raise SystemExit(f"the full-HD frames are not at {SHARED}/fish/testFrames (give --shared)")
    root = scratch / "fullhd"
    for r in range(repeat):
        for i, frame in enumerate(frames):
            target = root / "train" / ("a" if i % 2 else "b") / f"{r}_{frame.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(frame, target)
    return root


def _coco_folder(scratch: Path, repeat: int) -> Path:
    """The shared COCO subset with each image copied ``repeat`` times (new file names and ids, the
    same annotations), in COCO's own layout."""
    import json

    shared = SHARED / "coco"
    if not (shared / "annotations" / "instances_train2017.json").is_file():
        raise SystemExit(f"the COCO subset is not at {SHARED}/coco (give --shared)")
    data = json.loads((shared / "annotations" / "instances_train2017.json").read_text())
    root = scratch / "coco"
    (root / "train2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, annotations, step = [], [], 10**7
    for r in range(repeat):
        for image in data["images"]:
            name = f"{r}_{image['file_name']}"
            shutil.copyfile(shared / "train2017" / image["file_name"], root / "train2017" / name)
            images.append({**image, "id": image["id"] + r * step, "file_name": name})
        annotations += [{**a, "id": a["id"] + r * step, "image_id": a["image_id"] + r * step}
                        for a in data["annotations"]]
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps({**data, "images": images,
                                                                                "annotations": annotations}))
    return root


def _source(args: argparse.Namespace, scratch: Path) -> tuple[list[str], list[str]]:
    """The data config's overrides, and the model's for the training rows."""
    if args.case == "fullhd":
        return ["data=folder", f"data.root={_fullhd_folder(scratch, args.repeat)}"], ["model=convnet"]
    if args.case == "coco":
        return (["data=boxes", "data/reader=coco", f"data.root={_coco_folder(scratch, args.repeat)}"],
                ["model=fasterrcnn_small"])
    os.environ["FISHBEAR_DATA"] = str(scratch / "data")
    return ([f"data.source.train={max(1, args.images // 4)}", "data.source.valid=2", "data.source.test=2",
             "data.source.image_size=64"], ["model=convnet"])


def _pack(source: list[str], common: list[str], out: str, max_side: int | None) -> float:
    from omegaconf import open_dict

    from fishbear.pack import pack

    cfg = _compose([*source, *common], "pack")
    with open_dict(cfg):
        cfg.out, cfg.max_side = out, max_side
    started = time.perf_counter()
    pack(cfg)
    return time.perf_counter() - started


def _s3_rows(source: list[str], common: list[str], local: Path, scratch: Path, args: argparse.Namespace) -> list[str]:
    """The pack streamed from moto's server on 127.0.0.1 (TLS), against the local pack streamed."""
    from tests.s3_server import BUCKET, S3Server

    server = S3Server(scratch / "s3")
    try:
        server.client().create_bucket(Bucket=BUCKET)
        os.environ.update(server.env)
        url = f"s3://{BUCKET}/{args.case}"
        seconds = _pack(source, common, url, args.max_side)
        streamed = [*source, *common, "data.stream=true"]
        local_times, n = _epoch_seconds([*streamed, f"data.root={local}"], 2)
        s3_times, _ = _epoch_seconds([*streamed, f"data.root={url}"], 2)
    finally:
        server.stop()
    rows = [f"s3 pack written in {seconds:.1f} s (moto over TLS on 127.0.0.1; chunk cache under FISHBEAR_CACHE)"]
    for epoch in (0, 1):
        rows.append(f"streamed epoch {epoch + 1}: local pack {n / local_times[epoch]:8.1f} images/s, "
                    f"s3 {n / s3_times[epoch]:8.1f} images/s: s3/local {local_times[epoch] / s3_times[epoch]:.2f} x")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=("fullhd", "coco", "small"), default="fullhd")
    parser.add_argument("--max-side", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="fullhd, coco: copies of the 33 frames, of the 80 images")
    parser.add_argument("--images", type=int, default=2000, help="small: training images of the shapes data")
    parser.add_argument("--epochs", type=int, default=2, help="loader epochs timed on each side")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--train-batches", type=int, default=20, help="training rows: steps of 16 pictures (0: none)")
    parser.add_argument("--s3", action="store_true", help="also stream the pack from an S3 server on 127.0.0.1")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data", help="the shared data (fullhd, coco)")
    args = parser.parse_args()
    global SHARED
    SHARED = args.shared

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        os.environ["FISHBEAR_CACHE"] = str(scratch / "cache")
        common = [f"data.num_workers={args.workers}", f"data.image_size={args.image_size}", "data.duplicates=off",
                  "data.batch_size=16"]
        source, model = _source(args, scratch)
        local = scratch / "pack"
        pack_seconds = _pack(source, common, str(local), args.max_side)
        folder_times, n = _epoch_seconds([*source, *common], args.epochs)
        pack_times, _ = _epoch_seconds([*source, *common, f"data.root={local}"], args.epochs)
        stream_times, _ = _epoch_seconds([*source, *common, f"data.root={local}", "data.stream=true"], args.epochs)
        folder_rate, pack_rate, stream_rate = (n * args.epochs / sum(t) for t in (folder_times, pack_times,
                                                                                  stream_times))
        from fishbear.engine.experiment import build_datamodule

        root = build_datamodule(_compose([*source, *common])).root
        size_ratio = _size_mb(local) / _size_mb(root)
        print(f"case={args.case} max_side={args.max_side} images/epoch={n} epochs={args.epochs} "
              f"workers={args.workers} image_size={args.image_size} cores={os.cpu_count()}")
        print(f"folder  {folder_rate:8.1f} images/s   {_size_mb(root):8.1f} MB")
        print(f"pack    {pack_rate:8.1f} images/s   {_size_mb(local):8.1f} MB   (packing took {pack_seconds:.1f} s)")
        print(f"pack, streamed {stream_rate:8.1f} images/s   (data.stream=true: the training split in chunk order)")
        print(f"ratio pack/folder: {pack_rate / folder_rate:.2f} x the images/s, {size_ratio:.2f} x the disk; "
              f"streamed: {stream_rate / folder_rate:.2f} x")
        if args.train_batches:
            rates = {name: _training_rate([*source, *common, *model, *extra], scratch / f"run_{name}", args.train_batches)
                     for name, extra in (("folder", []), ("pack", [f"data.root={local}"]),
                                         ("streamed", [f"data.root={local}", "data.stream=true"]))}
            print(f"training images/s: folder {rates['folder']:.1f}, pack {rates['pack']:.1f}, streamed "
                  f"{rates['streamed']:.1f}; ratio pack/folder {rates['pack'] / rates['folder']:.2f} x, streamed "
                  f"{rates['streamed'] / rates['folder']:.2f} x")
        if args.s3:
            for row in _s3_rows(source, common, local, scratch, args):
                print(row)


if __name__ == "__main__":
    main()
