"""Loading from a folder against loading from its pack (``fishbear pack``), in one run: the training
loader's images/s over whole epochs (decoding, the data config's fit and augmentation, collation)
and each on-disk size, as ratios.

    python benchmarks/pack.py --case fullhd --max-side 640    # the shared full-HD fish frames
    python benchmarks/pack.py --case small --images 2000       # many small files (the shapes data)

``fullhd``: the 33 unlabelled 1920 x 1080 frames of ../shared/data/fish/testFrames, copied
``--repeat`` times into an ImageFolder of two classes; ``small``: the embedded shapes data at 64 px.
Both sides run the same data config in the same process, one after the other, with the same
loader workers (``--workers``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import fishbear.engine.config  # noqa: F401  (the resolvers)
    from fishbear.conf import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def _images_per_second(overrides: list[str], epochs: int) -> tuple[float, int]:
    from fishbear.engine.experiment import build_datamodule

    datamodule = build_datamodule(_compose(overrides))
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    seen, started = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            seen += len(batch["image"])
        loader = datamodule.train_dataloader() if datamodule.loader.stream else loader
    return seen / (time.perf_counter() - started), seen


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def _fullhd_folder(scratch: Path, repeat: int) -> Path:
    frames = sorted((REPO.parent / "shared" / "data" / "fish" / "testFrames").glob("*.jpg"))
    if not frames:
        raise SystemExit("the full-HD frames are not at ../shared/data/fish/testFrames")
    root = scratch / "fullhd"
    for r in range(repeat):
        for i, frame in enumerate(frames):
            target = root / "train" / ("a" if i % 2 else "b") / f"{r}_{frame.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(frame, target)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=("fullhd", "small"), default="fullhd")
    parser.add_argument("--max-side", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="fullhd: copies of the 33 frames")
    parser.add_argument("--images", type=int, default=2000, help="small: training images of the shapes data")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()

    from fishbear.pack import pack

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        common = [f"data.num_workers={args.workers}", f"data.image_size={args.image_size}", "data.duplicates=off",
                  "data.batch_size=16"]
        if args.case == "fullhd":
            source = ["data=folder", f"data.root={_fullhd_folder(scratch, args.repeat)}"]
        else:
            import os

            os.environ["FISHBEAR_DATA"] = str(scratch / "data")
            per_class = max(1, args.images // 4)
            source = [f"data.source.train={per_class}", "data.source.valid=2", "data.source.test=2",
                      "data.source.image_size=64"]
        cfg = _compose([*source, *common])
        from omegaconf import open_dict

        with open_dict(cfg):
            cfg.out, cfg.max_side, cfg.quality, cfg.workers = str(scratch / "pack"), args.max_side, 90, 1
        started = time.perf_counter()
        index = pack(cfg)
        pack_seconds = time.perf_counter() - started
        folder_rate, n = _images_per_second([*source, *common], args.epochs)
        pack_rate, _ = _images_per_second([*source, *common, f"data.root={scratch / 'pack'}"], args.epochs)
        stream_rate, _ = _images_per_second([*source, *common, f"data.root={scratch / 'pack'}", "data.stream=true"],
                                            args.epochs)
        from fishbear.engine.experiment import build_datamodule

        root = build_datamodule(_compose([*source, *common])).root
        splits = {k: v["count"] for k, v in index["splits"].items()}
        print(f"case={args.case} max_side={args.max_side} images/epoch={n // args.epochs} epochs={args.epochs} "
              f"workers={args.workers} image_size={args.image_size} splits={splits}")
        print(f"folder  {folder_rate:8.1f} images/s   {_size_mb(root):8.1f} MB")
        print(f"pack    {pack_rate:8.1f} images/s   {_size_mb(scratch / 'pack'):8.1f} MB   (packing took {pack_seconds:.1f} s)")
        print(f"pack, streamed {stream_rate:8.1f} images/s   (data.stream=true: the training split in chunk order)")
        print(f"ratio pack/folder: {pack_rate / folder_rate:.2f} x the images/s, "
              f"{_size_mb(scratch / 'pack') / _size_mb(root):.2f} x the disk; streamed: {stream_rate / folder_rate:.2f} x")


if __name__ == "__main__":
    main()
