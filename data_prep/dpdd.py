"""DPDD (Abuolaim & Brown, ECCV 2020) to sharded TFRecords, one set of shards per split.

Input layout (8- or 16-bit PNG), for each split present among train, val and test:
  <split>_c/source/NAME.png   defocused combined image C
  <split>_c/target/NAME.png   all-in-focus ground truth
  <split>_l/source/NAME.png   left dual-pixel view (NAME_L.png is accepted too)
  <split>_r/source/NAME.png   right dual-pixel view (NAME_R.png is accepted too)

Usage:
  python -m data_prep.dpdd --input_dir=DPDD_ROOT --output_dir=OUT [--num_workers=N] [--overwrite] \
      [--skip_bad_images]
writes OUT/train-00000-of-000NN.tfrecord ..., OUT/val-*, OUT/test-* and OUT/dataset_summary.json.
Every image is decoded once before anything is written; bad ones (corrupt, above the decoding
limit, views of a scene differing) refuse the conversion with one error listing them all, or,
with --skip_bad_images, their scenes are left out and listed in the summary.
"""
from __future__ import annotations

import os
import pathlib
from typing import Sequence

from absl import app, flags

from data_prep import conversion, scene_files

SPLITS = ("train", "val", "test")
VIEW_FOLDERS = {"c": "{split}_c/source", "target": "{split}_c/target", "l": "{split}_l/source",
                "r": "{split}_r/source"}
NAME_SUFFIXES = {"l": ("_L", "_l"), "r": ("_R", "_r")}


def find_dpdd_scenes(input_dir: os.PathLike, splits: Sequence[str] = SPLITS
                     ) -> tuple[dict[str, list[scene_files.SceneFiles]], list[str]]:
    """Lists the scenes of each split present; returns (split -> scenes, problems found).

    A split is present when any of its four folders exists; then all four must exist and match.
    """
    input_dir = pathlib.Path(input_dir)
    if not input_dir.is_dir():
        raise scene_files.DatasetLayoutError(f"{input_dir}: no such folder")
    found, problems = {}, []
    for split in splits:
        folders = {view: input_dir / pattern.format(split=split) for view, pattern in VIEW_FOLDERS.items()}
        if not any(folder.exists() for folder in folders.values()):
            continue
        scenes, split_problems = scene_files.match_views(split, folders, NAME_SUFFIXES)
        found[split] = scenes
        problems.extend(split_problems)
    if not found:
        expected = ", ".join(pattern.format(split="train") for pattern in VIEW_FOLDERS.values())
        problems.append(f"no DPDD split found (expected folders such as {expected}, for train/val/test)")
    return found, problems


def convert_dpdd(input_dir: os.PathLike, output_dir: os.PathLike, *, splits: Sequence[str] = SPLITS,
                 overwrite: bool = False, num_workers: int = 4, examples_per_shard: int = 16,
                 png_compression: int = 3, show_progress: bool = True, skip_bad_images: bool = False) -> dict:
    """Checks and converts a DPDD folder; returns the summary (see `conversion.convert_scene_files`)."""
    found, problems = find_dpdd_scenes(input_dir, splits)
    return conversion.convert_scene_files(
        found, output_dir, input_dir=input_dir, dataset="dpdd", problems=problems, overwrite=overwrite,
        num_workers=num_workers, examples_per_shard=examples_per_shard, png_compression=png_compression,
        show_progress=show_progress, skip_bad_images=skip_bad_images)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS
    splits = [split.strip() for split in FLAGS.splits if split.strip()]
    conversion.run_cli(lambda: convert_dpdd(
        FLAGS.input_dir, FLAGS.output_dir, splits=splits, overwrite=FLAGS.overwrite, num_workers=FLAGS.num_workers,
        examples_per_shard=FLAGS.examples_per_shard, png_compression=FLAGS.png_compression,
        skip_bad_images=FLAGS.skip_bad_images), FLAGS.output_dir)


def run() -> None:
    """The command line (``python -m data_prep.dpdd``, console script ``ifan-convert-dpdd``)."""
    conversion.define_common_flags()
    flags.DEFINE_list("splits", list(SPLITS), "Splits to convert (those present among them).")
    app.run(main)


if __name__ == "__main__":
    run()
