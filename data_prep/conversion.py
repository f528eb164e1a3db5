"""Converting scenes stored as image files into the TFRecord schema (shared by all converters).

`convert_scene_files` checks everything first (the problems found while matching names plus
those found in the file headers), refuses with one error listing them all before anything is
written, and then writes the shards and summary through `dataset_writer.DatasetWriter`.
"""
from __future__ import annotations

import functools
import os
import pathlib
from typing import Mapping, Sequence

from absl import flags, logging

from data_prep import scene_files
from ifan_tf.data import dataset_writer, schema


def _encode(scene: scene_files.SceneFiles, header, png_compression: int) -> schema.EncodedScene:
    return schema.encode_scene(scene_files.load_scene(scene, header), png_compression)


def convert_scene_files(splits: Mapping[str, Sequence[scene_files.SceneFiles]], output_dir: os.PathLike, *,
                        input_dir: os.PathLike, dataset: str, problems: Sequence[str] = (),
                        overwrite: bool = False, num_workers: int = 4, examples_per_shard: int = 16,
                        png_compression: int = 3, show_progress: bool = True) -> dict:
    """Checks and converts scenes to sharded TFRecords in `output_dir`.

    Args:
      splits: split name -> scenes (written in this order).
      output_dir: destination folder (created).
      input_dir: the source folder (for messages and the summary).
      dataset: data set name recorded in the summary (e.g. 'dpdd').
      problems: problems found while listing the input; any problem aborts before writing.
      overwrite: replace an existing converted data set in `output_dir`.
      num_workers: threads reading and encoding images.
      examples_per_shard: maximum records per shard.
      png_compression: zlib level of the re-encoded PNGs (0-9; lossless at every level).
    Returns:
      The summary written to `output_dir/dataset_summary.json`.
    Raises:
      scene_files.DatasetLayoutError: listing every problem of the input; nothing was written.
      dataset_writer.OutputExistsError: `output_dir` holds a data set and `overwrite` is False.
    """
    problems = list(problems)
    if not any(splits.values()) and not problems:
        problems.append("no scenes found")
    headers, header_problems = scene_files.check_headers(splits, num_workers)
    problems.extend(header_problems)
    scene_files.raise_if_problems(input_dir, problems)

    settings = {
        "dataset": dataset,
        "examples_per_shard": examples_per_shard,
        "png_compression": png_compression,
        "inputs": scene_files.listing_fingerprint(input_dir, splits),
    }
    writer = dataset_writer.DatasetWriter(output_dir, settings, overwrite)
    for split, scenes in splits.items():
        producers = [functools.partial(_encode, scene, headers[(split, scene.name)], png_compression)
                     for scene in scenes]
        info = writer.write_split(split, producers, examples_per_shard=examples_per_shard,
                                  num_workers=num_workers, show_progress=show_progress)
        logging.info("%s: %d scenes in %d shards", split, info["num_examples"], info["num_shards"])
    return writer.finish({"dataset": dataset, "source_dir": str(pathlib.Path(input_dir).resolve())})


def define_common_flags() -> None:
    """Flags shared by the converter command lines (defined by their `__main__` only)."""
    flags.DEFINE_string("input_dir", None, "Folder of the data set to convert.", required=True)
    flags.DEFINE_string("output_dir", None, "Folder for the TFRecord shards and summary.", required=True)
    flags.DEFINE_integer("num_workers", os.cpu_count() or 1, "Threads reading and encoding images.")
    flags.DEFINE_integer("examples_per_shard", 16, "Maximum scenes per TFRecord shard.")
    flags.DEFINE_integer("png_compression", 3, "zlib level (0-9) of the lossless PNGs in the records.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing converted data set in --output_dir.")


def print_summary(summary: dict, output_dir: os.PathLike) -> None:
    """Short report for the command lines."""
    for split, info in summary["splits"].items():
        sizes = ", ".join(f"{size} x{count}" for size, count in info["sizes"].items())
        print(f"{split}: {info['num_examples']} scenes, {info['num_shards']} shards, views "
              f"{'/'.join(info['views'])}, {'/'.join(map(str, info['bit_depths']))}-bit, {sizes}")
    print(f"wrote {pathlib.Path(output_dir) / dataset_writer.SUMMARY_FILE}")


def run_cli(convert, output_dir: os.PathLike) -> None:
    """Runs ``convert()`` for a converter's command line: layout or output problems exit with the
    message (no traceback); on success the summary is printed."""
    try:
        summary = convert()
    except (scene_files.DatasetLayoutError, dataset_writer.OutputExistsError) as error:
        raise SystemExit(f"error: {error}") from None
    print_summary(summary, output_dir)
