"""``python -m fishbear.review run=RUN_DIR | sweep=SWEEP_DIR | frames=SORTED_DIR [train=true] [port=0]``,
then ``python -m fishbear.review apply run=RUN_DIR`` (and ``undo run=RUN_DIR``).

Serves a page on 127.0.0.1 (the URL it prints carries a random token) with the images to look at
first (:mod:`fishbear.engine.review.items` says in what order) and takes decisions at the speed of
a keyboard: keep, remove, relabel to any class, undo. Each decision is appended at once to
``<review folder>/decisions.jsonl`` (``RUN_DIR/review/``, ``SWEEP_DIR/review/`` or
``SORTED_DIR/review/``), so a closed tab or a killed server loses nothing. ``apply`` moves the
files of an ImageFolder dataset (relabel: into the new class folder; remove: under ``_removed/``,
never deleted), idempotently, with an undo log; ``undo`` restores the tree byte for byte. The next
run on the dataset says in its report what the review changed.

For a detection run, ``review`` writes the run's validation and test pictures with their predicted
boxes as Label Studio tasks (score to sort by) and COCO files, for the tools made for boxes; their
corrected exports read back through ``data.reader=labelstudio`` / ``coco``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from fishbear.core.atomic import atomic_write_text
from fishbear.core.errors import ConfigError, DataError
from fishbear.engine.commandline import check_ranges, compose_cli, user_errors_exit

USAGE = ("fishbear review [apply|undo] run=RUN_DIR [unlabelled=DIR rank=uncertain] | sweep=SWEEP_DIR "
         "[rank=confident|loss] | frames=SORTED_DIR [train=false] [write_only=false] [host=127.0.0.1] [port=0]")
ACTIONS = ("serve", "apply", "undo")


def review_folder(cfg: DictConfig) -> tuple[str, Path, Path]:
    """Which source (run, sweep, frames), its folder, and the review folder inside it (a run's
    queue of unlabelled pictures has its own: ``RUN/review_unlabelled``)."""
    given = [(name, Path(str(cfg[name]))) for name in ("run", "sweep", "frames") if cfg[name]]
    if len(given) != 1:
        raise ConfigError(f"give one of run=, sweep= or frames= (given: {', '.join(n for n, _ in given) or 'none'}); "
                          f"usage: {USAGE}")
    name, folder = given[0]
    if not folder.is_dir():
        raise DataError(f"{name}={folder} is not a folder.")
    if cfg.unlabelled and name != "run":
        raise ConfigError(f"unlabelled= pictures are ranked by a run's model and labelled into its dataset: give run=, "
                          f"not {name}=.")
    return name, folder, folder / ("review_unlabelled" if cfg.unlabelled else "review")


def _review_set(name: str, folder: Path, cfg: DictConfig) -> Any:
    from fishbear.engine.review import items as review_items

    rank = str(cfg.rank)
    if rank not in review_items.RANKS:
        raise ConfigError(f"rank={rank}: choose among {', '.join(review_items.RANKS)}.")
    if (rank == "uncertain") != bool(cfg.unlabelled):
        raise ConfigError("rank=uncertain ranks unlabelled pictures for labelling: give both, run=RUN unlabelled=DIR "
                          "rank=uncertain." if cfg.unlabelled else "rank=uncertain ranks unlabelled pictures: add "
                          "unlabelled=DIR (and run=RUN).")
    if cfg.unlabelled:
        from fishbear.engine.review.queue import unlabelled_items

        return unlabelled_items(folder, Path(str(cfg.unlabelled)), int(cfg.queue), float(cfg.similar))
    if name == "run":
        return review_items.run_items(folder, train=bool(cfg.train), rank=rank)
    if name == "sweep":
        return review_items.sweep_items(folder, rank)
    if rank != "loss":
        raise ConfigError(f"rank={rank} ranks the labels of a k-fold sweep (sweep=); frames= are ranked by how sure "
                          "their sorting was.")
    return review_items.frames_items(folder, int(cfg.neighbours))


def _boxes_for_tools(run: Path, where: Path) -> Path:
    """A detection run's validation and test pictures with the checkpoint's boxes (score 0.05 on)
    as Label Studio tasks and COCO files, written by the kind's own writers (as ``fishbear predict
    format=...`` writes them) beside copies of the pictures in ``where/pictures/`` (hard links where
    the file system allows: Label Studio and the readers take only pictures inside the folder)."""
    from fishbear.core.outputs import OutputFiles
    from fishbear.engine.inference import Predictor
    from fishbear.engine.run_data import run_datamodule

    ckpt = run / "checkpoints" / "best.ckpt"
    predictor = Predictor.from_checkpoint(ckpt, score_threshold=0.05)
    datamodule = run_datamodule(predictor.meta)
    pictures = where / "pictures"
    outputs = OutputFiles(overwrite=False, way_out="another run=, or remove the review folder")
    outputs.keep_inside(where)
    keys: list[tuple[str, Path]] = []
    with outputs:  # placed under the output policy: never through a link, never over a file of the user's
        for split in ("valid", "test"):
            for sample in datamodule.catalog.splits.get(split, []):
                copy = outputs.place_file(Path(sample.image), pictures / split / Path(sample.image).name, link=True)
                keys.append((f"{split}/{copy.stem}", copy))
    writers = [predictor.kind.output_writer(predictor.meta, pictures / fmt, outputs, label_format=fmt)
               for fmt in ("labelstudio", "coco")]
    with outputs:
        for (key, path), (_, result) in zip(keys, predictor.predict_files([p for _, p in keys])):
            for writer in writers:
                writer.write(result, key, path)
        notes = "".join(writer.note() for writer in writers)
    print(f"Boxes of {ckpt} for the annotation tools, beside copies of the run's validation and test pictures in "
          f"{pictures}{notes}. Import labelstudio/tasks.json with its label_config.xml into Label Studio (sort by the "
          "prediction score); read a corrected export back with data.reader=labelstudio or data.reader=coco.")
    return pictures


def _tags_for_the_file(sweep: Path, where: Path, rank: str) -> Path:
    """A multi-label sweep: confident learning tag by tag, written as ``tag_ranking.csv`` for the
    person who corrects the tags file (the page moves pictures between folders; it has no tags to edit)."""
    from fishbear.engine.review.tags import write_tag_ranking

    if rank != "confident":
        raise ConfigError(f"rank={rank}: a multi-label sweep is ranked tag by tag with rank=confident.")
    ranking = write_tag_ranking(sweep, where)
    saved = json.loads((where / "review.json").read_text())
    missing = sum(v["missing"] for v in saved["estimated_wrong"].values())
    extra = sum(v["extra"] for v in saved["estimated_wrong"].values())
    print(f"Every picture's yes or no for each tag, the likely errors first ({saved['flagged']} flagged; estimated "
          f"{missing:g} tags missing and {extra:g} too many), is in {ranking}. Correct them in the dataset's tags "
          "file: the review page moves pictures between class folders and is not served for tags.")
    return ranking


def serve(cfg: DictConfig) -> Any:
    from fishbear.engine.checkpoint import read_meta
    from fishbear.engine.review.log import DecisionLog
    from fishbear.engine.review.server import ReviewServer
    from fishbear.kinds import get_kind

    name, folder, where = review_folder(cfg)
    if name == "run" and (folder / "checkpoints" / "best.ckpt").is_file():
        kind = get_kind(read_meta(folder / "checkpoints" / "best.ckpt").kind)
        if kind.written_files == "boxes":
            return _boxes_for_tools(folder, where)
    if name == "sweep" and list(folder.glob("*/checkpoints/best.ckpt")):
        kind = get_kind(read_meta(next(folder.glob("*/checkpoints/best.ckpt"))).kind)
        if kind.reviews_tags:
            return _tags_for_the_file(folder, where, str(cfg.rank))
    review = _review_set(name, folder, cfg)
    where.mkdir(parents=True, exist_ok=True)
    atomic_write_text(where / "review.json", json.dumps(
        {"source": review.source, "root": str(Path(review.root).absolute()), "classes": review.classes,
         "class_depth": review.class_depth, "folder_of": review.folder_of, "of": f"{name}={folder}",
         "rank": str(cfg.rank), "estimated_wrong": review.wrong,
         **({"into": str(Path(review.into).absolute()), "dataset_root": str(Path(review.dataset_root).absolute()),
             "calls": {it.file: it.call for it in review.items}} if review.into else {})}, indent=1) + "\n")
    ranking = _write_ranking(review, where)
    if cfg.write_only:
        print(f"The {len(review.items)} images in review order ({review.source}) are in {ranking}; the page was not "
              f"served (write_only=true).")
        return ranking
    server = ReviewServer(review, DecisionLog(where / "decisions.jsonl"), str(cfg.host), int(cfg.port))
    if str(cfg.host) not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {cfg.host}, not the loopback address: other machines can reach it "
              "(the token still guards it).", file=sys.stderr)
    print(f"Review of {len(review.items)} images ({review.source}):\n  {server.url}\n"
          f"Decisions go to {where / 'decisions.jsonl'}; then: fishbear review apply {name}={folder}", flush=True)
    if cfg.get("background"):
        return server.start()
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        print("stopped; the decisions are kept.")
    finally:
        server.httpd.server_close()
    return server


def _write_ranking(review: Any, where: Path) -> Path:
    """``ranking.csv`` beside the decisions: the cards in order, for scripts and CI."""
    import csv
    import io

    from fishbear.engine.review.items import ranking_rows

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["file", "given", "likely", "score", "rank", "flagged"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(ranking_rows(review))
    atomic_write_text(where / "ranking.csv", text.getvalue())
    return where / "ranking.csv"


def _saved(where: Path) -> dict[str, Any]:
    """``review.json``, checked: the dataset folder, how its class folders sit, the source."""
    from fishbear.core.containment import read_state

    path = where / "review.json"
    text = read_state(path, "review record")
    if text is None:
        raise DataError(f"{path} does not exist: run fishbear review first (it records the dataset it reviews).")
    try:
        saved = json.loads(text)
        ok = isinstance(saved, dict) and isinstance(saved.get("root"), str) and isinstance(saved.get("of"), str) \
            and isinstance(saved.get("class_depth"), int) and isinstance(saved.get("folder_of"), dict) \
            and all(isinstance(k, str) and isinstance(v, str) for k, v in saved["folder_of"].items())
    except ValueError:
        ok = False
    if not ok:
        raise DataError(f"{path} is not the record fishbear review writes (root, of, class_depth, folder_of): run "
                        "fishbear review again to write it.")
    if not Path(saved["root"]).is_dir():
        raise DataError(f"{path} names the dataset {saved['root']}, which is not a folder (moved?); run fishbear "
                        "review again on the run.")
    return saved


def apply_decisions(cfg: DictConfig) -> dict[str, int]:
    from fishbear.engine.review.log import DecisionLog, apply, copy_in

    name, folder, where = review_folder(cfg)
    saved = _saved(where)
    decisions = DecisionLog(where / "decisions.jsonl").effective()
    if saved.get("into"):
        counts = copy_in(Path(saved["root"]), Path(saved["into"]), Path(saved["dataset_root"]), decisions,
                         saved.get("calls") or {}, saved["folder_of"], where / "applied.jsonl", saved["of"])
        print(f"Labelled into {saved['into']}: {counts['labelled']} pictures copied now ({counts['already']} already, "
              f"{counts['missing']} missing); in all {counts['total_labelled']}. The pictures in {saved['root']} are left "
              f"as they are. Undo: fishbear review undo {name}={folder} unlabelled={cfg.unlabelled}")
        return counts
    counts = apply(Path(saved["root"]), decisions, int(saved["class_depth"]), saved["folder_of"],
                   where / "applied.jsonl", saved["of"])
    print(f"Applied to {saved['root']}: {counts['relabelled']} relabelled and {counts['removed']} removed now "
          f"({counts['already']} already applied, {counts['missing']} files missing); in all "
          f"{counts['total_relabelled']} relabelled, {counts['total_removed']} under _removed/. "
          f"Undo: fishbear review undo {name}={folder}")
    return counts


def undo_decisions(cfg: DictConfig) -> int:
    from fishbear.engine.review.log import undo

    name, folder, where = review_folder(cfg)
    saved = _saved(where)
    if saved.get("into"):
        from fishbear.engine.review.log import undo_copies

        removed = undo_copies(Path(saved["into"]), Path(saved["dataset_root"]), where / "applied.jsonl", saved["of"])
        print(f"Took {removed} labelled copies out of {saved['into']} (the decisions are kept: apply again to redo).")
        return removed
    restored = undo(Path(saved["root"]), where / "applied.jsonl", saved["of"])
    print(f"Restored {restored} files in {saved['root']} (the decisions are kept: apply again to redo).")
    return restored


@user_errors_exit
def main(argv: list[str] | None = None) -> Any:
    argv = list(sys.argv[1:] if argv is None else argv)
    action = argv.pop(0) if argv and argv[0] in ACTIONS else "serve"
    cfg = check_ranges(compose_cli("review", argv, USAGE), ports=("port",))
    return {"serve": serve, "apply": apply_decisions, "undo": undo_decisions}[action](cfg)


def cli(argv: list[str]) -> int:
    """``fishbear review ...`` and ``python -m fishbear.review ...``."""
    main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
