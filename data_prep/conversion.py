"""Converting scenes stored as image files into the TFRecord schema (shared by all converters).

`convert_scene_files` checks everything first: the problems found while matching names, then
every image, decoded once in an inspection pass (`data_prep.inspection`: unreadable or corrupt
files, declared sizes above the decoding limit, unsupported bit depths or layouts, views of one
scene that disagree). It refuses with one error listing them all before anything is written (the
output folder is not even created), or, with `skip_bad_images`, leaves out the scenes with bad
images and lists them in the summary. Then it writes the shards and the summary through
`dataset_writer.DatasetWriter`.
"""
from __future__ import annotations

import functools
import os
import pathlib
from typing import Mapping, Sequence

from absl import flags, logging

from data_prep import inspection, scene_files
from ifan_tf.data import dataset_writer, schema

SKIPPED_KEY = "skipped_bad_images"  # summary key listing the scenes left out by skip_bad_images


def _encode(scene: scene_files.SceneFiles, header, png_compression: int) -> schema.EncodedScene:
    return schema.encode_scene(scene_files.load_scene(scene, header), png_compression)


def _check_inputs(splits: Mapping[str, Sequence[scene_files.SceneFiles]], input_dir: os.PathLike,
                  problems: Sequence[str], skip_bad_images: bool, num_workers: int, show_progress: bool
                  ) -> tuple[dict[str, list[scene_files.SceneFiles]], inspection.Inspection]:
    """Returns (the scenes to convert, the inspection) or raises `DatasetLayoutError` listing every problem."""
    problems = list(problems) + [problem for problem in map(dataset_writer.split_name_problem, splits) if problem]
    if not any(splits.values()) and not problems:
        problems.append("no scenes found")
    found = inspection.inspect_scenes(splits, num_workers, show_progress)
    bad_scenes = found.bad_scenes
    kept = {split: [scene for scene in scenes if (split, scene.name) not in bad_scenes]
            for split, scenes in splits.items()}
    if skip_bad_images and found.bad and not any(kept.values()):
        problems.append("no scenes left to convert: every scene has a bad image")
    listed = problems + [bad.message for bad in found.bad] + found.problems
    if skip_bad_images:
        if problems or found.problems:  # skipping cannot solve these: list everything, as without skipping
            scene_files.raise_if_problems(input_dir, listed)
    else:
        hint = (f"{len(bad_scenes)} scene(s) have bad images; pass --skip_bad_images (skip_bad_images=True) "
                "to convert the other scenes without them" if found.bad else "")
        scene_files.raise_if_problems(input_dir, listed, hint)
    for bad in found.bad:
        logging.warning("Skipping scene %r (bad image): %s", bad.scene, bad.message)
    for split in [split for split, scenes in kept.items() if splits[split] and not scenes]:
        logging.warning("Split %s has no scene left to convert (all skipped); it is not written", split)
        del kept[split]
    return kept, found


def convert_scene_files(splits: Mapping[str, Sequence[scene_files.SceneFiles]], output_dir: os.PathLike, *,
                        input_dir: os.PathLike, dataset: str, problems: Sequence[str] = (),
                        overwrite: bool = False, num_workers: int = 4, examples_per_shard: int = 16,
                        png_compression: int = 3, show_progress: bool = True, skip_bad_images: bool = False) -> dict:
    """Checks and converts scenes to sharded TFRecords in `output_dir`.

    Args:
      splits: split name -> scenes (written in this order).
      output_dir: destination folder (created).
      input_dir: the source folder (for messages and the summary).
      dataset: data set name recorded in the summary (e.g. 'dpdd').
      problems: problems found while listing the input; any problem aborts before writing.
      overwrite: replace an existing converted data set in `output_dir`.
      num_workers: threads reading, decoding and encoding images.
      examples_per_shard: maximum records per shard.
      png_compression: zlib level of the re-encoded PNGs (0-9; lossless at every level).
      show_progress: tqdm bars for the inspection and for each split's writing.
      skip_bad_images: leave out the scenes with a bad image (`inspection.BadImage`) instead of
        refusing; they are listed under `SKIPPED_KEY` in the summary, and a split left without
        scenes is not written. Other problems still refuse.
    Returns:
      The summary written to `output_dir/dataset_summary.json`; with `skip_bad_images` it lists
      the bad images under `SKIPPED_KEY` as `{"split", "scene", "files" (relative to input_dir),
      "reason"}`.
    Raises:
      scene_files.DatasetLayoutError: listing every problem of the input; nothing was written.
      dataset_writer.OutputExistsError: `output_dir` holds a data set and `overwrite` is False.
    """
    splits, found = _check_inputs(splits, input_dir, problems, skip_bad_images, num_workers, show_progress)
    skipped = [bad.to_json(input_dir) for bad in found.bad]
    settings = {
        "dataset": dataset,
        "examples_per_shard": examples_per_shard,
        "png_compression": png_compression,
        "inputs": scene_files.listing_fingerprint(input_dir, splits),
    }
    extra = {"dataset": dataset, "source_dir": str(pathlib.Path(input_dir).resolve())}
    if skip_bad_images:
        settings[SKIPPED_KEY] = extra[SKIPPED_KEY] = skipped
    writer = dataset_writer.DatasetWriter(output_dir, settings, overwrite)
    for split, scenes in splits.items():
        producers = [functools.partial(_encode, scene, found.headers[(split, scene.name)], png_compression)
                     for scene in scenes]
        info = writer.write_split(split, producers, examples_per_shard=examples_per_shard,
                                  num_workers=num_workers, show_progress=show_progress)
        logging.info("%s: %d scenes in %d shards", split, info["num_examples"], info["num_shards"])
    return writer.finish(extra)


def define_common_flags() -> None:
    """Flags shared by the converter command lines (defined by their `__main__` only)."""
    flags.DEFINE_string("input_dir", None, "Folder of the data set to convert.", required=True)
    flags.DEFINE_string("output_dir", None, "Folder for the TFRecord shards and summary.", required=True)
    flags.DEFINE_integer("num_workers", os.cpu_count() or 1, "Threads reading and encoding images.")
    flags.DEFINE_integer("examples_per_shard", 16, "Maximum scenes per TFRecord shard.")
    flags.DEFINE_integer("png_compression", 3, "zlib level (0-9) of the lossless PNGs in the records.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing converted data set in --output_dir.")
    flags.DEFINE_bool("skip_bad_images", False,
                      "Leave out the scenes with an unreadable, corrupt, oversized or inconsistent image (listed in "
                      "the summary) instead of refusing the conversion.")


def print_summary(summary: dict, output_dir: os.PathLike) -> None:
    """Short report for the command lines."""
    for split, info in summary["splits"].items():
        sizes = ", ".join(f"{size} x{count}" for size, count in info["sizes"].items())
        print(f"{split}: {info['num_examples']} scenes, {info['num_shards']} shards, views "
              f"{'/'.join(info['views'])}, {'/'.join(map(str, info['bit_depths']))}-bit, {sizes}")
    skipped = summary.get(SKIPPED_KEY, [])
    if skipped:
        scenes = {(entry["split"], entry["scene"]) for entry in skipped}
        print(f"{len(scenes)} scene(s) with bad images were skipped (also listed in {dataset_writer.SUMMARY_FILE}):")
        for entry in skipped:
            files = ", ".join(os.path.join(summary["source_dir"], file) for file in entry["files"])
            print(f"  - {entry['split']}/{entry['scene']}: {files}: {entry['reason']}")
    print(f"wrote {pathlib.Path(output_dir) / dataset_writer.SUMMARY_FILE}")


def run_cli(convert, output_dir: os.PathLike) -> None:
    """Runs ``convert()`` for a converter's command line: layout or output problems exit with the
    message (no traceback); on success the summary is printed."""
    try:
        summary = convert()
    except (scene_files.DatasetLayoutError, dataset_writer.OutputExistsError) as error:
        raise SystemExit(f"error: {error}") from None
    print_summary(summary, output_dir)
