"""RealDOF, PixelDP, CUHK and any folder of defocused images to sharded TFRecords.

Layouts (`--layout`):
  realdof    INPUT/source/NAME.*  defocused image C, INPUT/target/NAME.*  sharp ground truth
  pixeldp    INPUT/test_c, INPUT/test_l, INPUT/test_r (each optionally with a source/ subfolder):
             C, L and R views, no ground truth (NAME_L / NAME_R suffixes accepted)
  defocused  INPUT/*.png|jpg|...: defocused images C only (e.g. CUHK's image/ folder)

Usage:
  python -m data_prep.folders --layout=realdof|pixeldp|defocused --input_dir=IN --output_dir=OUT \
      [--split=test] [--num_workers=N] [--overwrite] [--skip_bad_images]
writes OUT/<split>-00000-of-000NN.tfrecord ... and OUT/dataset_summary.json.
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

LAYOUTS = ("realdof", "pixeldp", "defocused")


def _pixeldp_folder(input_dir: pathlib.Path, view: str) -> pathlib.Path:
    folder = input_dir / f"test_{view}"
    return folder / "source" if (folder / "source").is_dir() else folder


def find_folder_scenes(layout: str, input_dir: os.PathLike) -> tuple[list[scene_files.SceneFiles], list[str]]:
    """Lists the scenes of a folder in one of `LAYOUTS`; returns (scenes, problems found)."""
    input_dir = pathlib.Path(input_dir)
    if not input_dir.is_dir():
        raise scene_files.DatasetLayoutError(f"{input_dir}: no such folder")
    if layout == "realdof":
        folders = {"c": input_dir / "source", "target": input_dir / "target"}
        return scene_files.match_views(layout, folders)
    if layout == "pixeldp":
        folders = {view: _pixeldp_folder(input_dir, view) for view in ("c", "l", "r")}
        return scene_files.match_views(layout, folders, {"l": ("_L", "_l"), "r": ("_R", "_r")})
    if layout == "defocused":
        return scene_files.match_views(layout, {"c": input_dir})
    raise ValueError(f"unknown layout {layout!r}; layouts are {LAYOUTS}")


def convert_folder(layout: str, input_dir: os.PathLike, output_dir: os.PathLike, *, split: str = "test",
                   overwrite: bool = False, num_workers: int = 4, examples_per_shard: int = 16,
                   png_compression: int = 3, show_progress: bool = True, skip_bad_images: bool = False) -> dict:
    """Checks and converts one folder; returns the summary (see `conversion.convert_scene_files`)."""
    scenes, problems = find_folder_scenes(layout, input_dir)
    return conversion.convert_scene_files(
        {split: scenes}, output_dir, input_dir=input_dir, dataset=layout, problems=problems,
        overwrite=overwrite, num_workers=num_workers, examples_per_shard=examples_per_shard,
        png_compression=png_compression, show_progress=show_progress, skip_bad_images=skip_bad_images)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS
    conversion.run_cli(lambda: convert_folder(
        FLAGS.layout, FLAGS.input_dir, FLAGS.output_dir, split=FLAGS.split, overwrite=FLAGS.overwrite,
        num_workers=FLAGS.num_workers, examples_per_shard=FLAGS.examples_per_shard,
        png_compression=FLAGS.png_compression, skip_bad_images=FLAGS.skip_bad_images), FLAGS.output_dir)


def run() -> None:
    """The command line (``python -m data_prep.folders``, console script ``ifan-convert-folders``)."""
    conversion.define_common_flags()
    flags.DEFINE_enum("layout", None, list(LAYOUTS), "Folder layout of --input_dir.", required=True)
    flags.DEFINE_string("split", "test", "Split name of the records (file name prefix).")
    app.run(main)


if __name__ == "__main__":
    run()
