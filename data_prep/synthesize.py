"""Command line of the synthetic dual-pixel defocus generator (`ifan_tf.synthesis.synthetic_dataset`).

Usage:
  python -m data_prep.synthesize --output_dir=OUT --num_scenes=N --seed=S [--source_dir=DIR]
  python -m data_prep.synthesize --output_dir=OUT --splits=train:64,val:8 --height=384 --width=384

Writes sharded TFRecords and `dataset_summary.json` into OUT (see `ifan_tf.data.dataset_writer`);
`--write_folders` also writes DPDD-style folders that `python -m data_prep.dpdd` can convert.
`--overwrite` replaces a data set made earlier in OUT, and only files inside OUT.

Realism switches (all off by default; not yet measured to help): `--layout=segments` (depth
edges on the photograph's own region boundaries), `--highlight_gain=8` (clipped highlights bloom
into bokeh discs), `--noise_level=0.02` (sensor noise on the defocused views), `--jpeg_quality=90`
(JPEG on the defocused views). The sharp target is never degraded.
"""
from __future__ import annotations

import os
import pathlib
from typing import Sequence

from absl import app, flags

from ifan_tf.data import dataset_writer
from ifan_tf.synthesis.synthetic_dataset import synthesize_dataset


def _parse_splits(text: str) -> dict[str, int]:
    splits = {}
    for item in text.split(","):
        name, _, count = item.strip().partition(":")
        if not name or not count.isdigit():
            raise app.UsageError(f"--splits must look like train:64,val:8, got {text!r}")
        splits[name] = int(count)
    return splits


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS
    if (FLAGS.height is None) != (FLAGS.width is None):
        raise app.UsageError("give both --height and --width, or neither")
    image_size = (FLAGS.height, FLAGS.width) if FLAGS.height is not None else None
    try:
        summary = synthesize_dataset(
            FLAGS.output_dir, None if FLAGS.splits else FLAGS.num_scenes, FLAGS.seed,
            splits=_parse_splits(FLAGS.splits) if FLAGS.splits else None, source_dir=FLAGS.source_dir,
            photos=FLAGS.photos or None, disjoint_photos=FLAGS.disjoint_photos, image_size=image_size,
            max_coc=FLAGS.max_coc, bit_depth=FLAGS.bit_depth, examples_per_shard=FLAGS.examples_per_shard,
            png_compression=FLAGS.png_compression, write_folders=FLAGS.write_folders, overwrite=FLAGS.overwrite,
            num_workers=FLAGS.num_workers, layout=FLAGS.layout, highlight_gain=FLAGS.highlight_gain,
            noise_level=FLAGS.noise_level, jpeg_quality=FLAGS.jpeg_quality)
    except (ValueError, FileNotFoundError, dataset_writer.OutputExistsError) as error:
        raise SystemExit(f"error: {error}") from None
    for split, info in summary["splits"].items():
        sizes = ", ".join(f"{size} x{count}" for size, count in info["sizes"].items())
        print(f"{split}: {info['num_examples']} scenes in {info['num_shards']} shards ({sizes}), photos: "
              f"{', '.join(summary['generator']['photos'][split])}")
    print(f"wrote {pathlib.Path(FLAGS.output_dir) / dataset_writer.SUMMARY_FILE}")


def run() -> None:
    """The command line (``python -m data_prep.synthesize``, console script ``ifan-synthesize``)."""
    flags.DEFINE_string("output_dir", None, "Folder for the shards and summary.", required=True)
    flags.DEFINE_integer("num_scenes", 32, "Scenes of a single 'train' split (ignored with --splits).")
    flags.DEFINE_integer("seed", 0, "Random seed; equal flags give identical output.")
    flags.DEFINE_string("splits", None, "Scenes per split, e.g. train:64,val:8 (photos disjoint by default).")
    flags.DEFINE_string("source_dir", None, "Folder of sharp photos (default: skimage's photographs).")
    flags.DEFINE_list("photos", None, "Photo names to use (default: all).")
    flags.DEFINE_bool("disjoint_photos", True, "Give each split its own photos.")
    flags.DEFINE_integer("height", None, "Scene height (default: the photo's).")
    flags.DEFINE_integer("width", None, "Scene width (default: the photo's).")
    flags.DEFINE_float("max_coc", None, "Largest blur diameter in pixels (default: 2.5% of the longer side).")
    flags.DEFINE_integer("bit_depth", 8, "Bit depth of the PNGs: 8 or 16.")
    flags.DEFINE_integer("examples_per_shard", 16, "Maximum scenes per shard.")
    flags.DEFINE_integer("png_compression", 1, "zlib level of the PNGs (0-9).")
    flags.DEFINE_bool("write_folders", False, "Also write DPDD-style folders of PNGs and .npz maps.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing data set in --output_dir.")
    flags.DEFINE_integer("num_workers", os.cpu_count() or 1, "Scenes generated in parallel.")
    flags.DEFINE_enum("layout", "blobs", ["blobs", "segments"],
                      "Depth layout: random blobs, or regions of the photograph (depth edges on its edges).")
    flags.DEFINE_float("highlight_gain", 1.0, "Boost of near-saturated pixels in linear light before the blur "
                       "(bokeh discs); 1 = off.")
    flags.DEFINE_float("noise_level", 0.0, "Sensor noise std (linear light, at full signal) of the defocused views; "
                       "0 = off.")
    flags.DEFINE_integer("jpeg_quality", 0, "JPEG quality (1-100) of the defocused views; 0 = off.")
    app.run(main)


if __name__ == "__main__":
    run()
