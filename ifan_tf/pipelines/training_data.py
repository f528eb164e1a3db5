"""``python -m ifan_tf.pipelines.training_data``: synthesize or convert training data with Apache Beam.

Usage:
  python -m ifan_tf.pipelines.training_data synthesize --output_dir=data/synthetic --splits=train:3000,val:200 \
      --seed=0 [--height=512 --width=512 ...the flags of python -m data_prep.synthesize] [BEAM FLAGS]
  python -m ifan_tf.pipelines.training_data convert --layout=dpdd --input_dir=DPDD --output_dir=data/dpdd \
      [--splits=train,val,test] [--skip_bad_images] [BEAM FLAGS]
  python -m ifan_tf.pipelines.training_data convert --layout=realdof|pixeldp|defocused --input_dir=IN \
      --output_dir=OUT [--split=test] [BEAM FLAGS]

The same data sets as the single-process commands (``data_prep.synthesize``, ``data_prep.dpdd``,
``data_prep.folders``), file for file: the same shard names, records, bytes and
``dataset_summary.json`` (counts, sizes, per-shard SHA-256), whatever the runner and the number of
workers (``ifan_tf.pipelines.shards``). The same checks run first, in the launching process:
``synthetic_dataset.plan_synthesis`` for the generator's arguments; for the converters the scene
listing and the inspection pass that decodes every image and refuses bad ones before any shard
is written (``data_prep.inspection``, through ``data_prep.conversion``), or skips their scenes with
``--skip_bad_images``. The overwrite rule and the resumption of an interrupted run are the
writer's (``ifan_tf.data.dataset_writer``). ``--output_dir`` must be local to every worker (a
local folder for the local runner, a shared mount on a cluster).

Beam flags (``--direct_num_workers=2``, ``--runner=...``) pass through; the default runs
locally and offline (``ifan_tf.pipelines.runner``). Exit status 0, or 1 with ``error: ...``.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import time

from ifan_tf.data import dataset_writer, schema
from ifan_tf.pipelines import runner, shards, storage
from ifan_tf.synthesis import synthetic_dataset

CONVERTER_LAYOUTS = ("dpdd", "realdof", "pixeldp", "defocused")


def _synthesized(plan: synthetic_dataset.SynthesisPlan, split: str, index: int, payload) -> schema.EncodedScene:
    del payload
    return plan.produce(split, index)


def _converted(png_compression: int, split: str, index: int, payload) -> schema.EncodedScene:
    from data_prep import scene_files

    scene, header = payload
    return schema.encode_scene(scene_files.load_scene(scene, header), png_compression)


def _check_output_dir(output_dir: str) -> None:
    if not storage.is_local(output_dir):
        raise ValueError(f"{output_dir}: the training-data pipelines write to a folder every worker sees at the "
                         "same path (local, or a shared mount), not to a URL")


def synthesize(args: argparse.Namespace, options) -> dict:
    """Checks the arguments, prepares the output folder and writes the synthetic data set; returns the summary."""
    _check_output_dir(args.output_dir)
    if (args.height is None) != (args.width is None):
        raise ValueError("give both --height and --width, or neither")
    plan = synthetic_dataset.plan_synthesis(
        args.output_dir, None if args.splits else args.num_scenes, args.seed,
        splits=_parse_splits(args.splits) if args.splits else None, source_dir=args.source_dir,
        photos=args.photos.split(",") if args.photos else None, disjoint_photos=args.disjoint_photos,
        image_size=(args.height, args.width) if args.height is not None else None, max_coc=args.max_coc,
        bit_depth=args.bit_depth, examples_per_shard=args.examples_per_shard, png_compression=args.png_compression,
        write_folders=args.write_folders, layout=args.layout, highlight_gain=args.highlight_gain,
        noise_level=args.noise_level, jpeg_quality=args.jpeg_quality)
    writer = plan.open_writer(args.overwrite)
    jobs = {split: [None] * count for split, count in plan.splits.items()}
    return shards.write_dataset(writer, jobs, functools.partial(_synthesized, plan), plan.examples_per_shard,
                                options, plan.summary_extra())


def convert(args: argparse.Namespace, options) -> dict:
    """Lists and inspects the input (refusing bad images unless skipped), then writes the shards and summary."""
    import pathlib

    from data_prep import conversion, dpdd, folders, scene_files

    _check_output_dir(args.output_dir)
    if args.layout == "dpdd":
        found, problems = dpdd.find_dpdd_scenes(args.input_dir, [s.strip() for s in args.splits.split(",") if s.strip()])
    else:
        scenes, problems = folders.find_folder_scenes(args.layout, args.input_dir)
        found = {args.split: scenes}
    # The converters' own checks, inspection pass included: one error listing every problem, nothing written.
    kept, inspection = conversion._check_inputs(found, args.input_dir, problems, args.skip_bad_images,
                                                args.inspection_threads, show_progress=False)
    settings = {"dataset": args.layout, "examples_per_shard": args.examples_per_shard,
                "png_compression": args.png_compression,
                "inputs": scene_files.listing_fingerprint(args.input_dir, kept)}
    extra = {"dataset": args.layout, "source_dir": str(pathlib.Path(args.input_dir).resolve())}
    if args.skip_bad_images:
        settings[conversion.SKIPPED_KEY] = extra[conversion.SKIPPED_KEY] = [
            bad.to_json(args.input_dir) for bad in inspection.bad]
    writer = dataset_writer.DatasetWriter(args.output_dir, settings, args.overwrite)
    jobs = {split: [(scene, inspection.headers[(split, scene.name)]) for scene in scenes]
            for split, scenes in kept.items()}
    return shards.write_dataset(writer, jobs, functools.partial(_converted, args.png_compression),
                                args.examples_per_shard, options, extra)


def _parse_splits(text: str) -> dict[str, int]:
    splits = {}
    for item in text.split(","):
        name, _, count = item.strip().partition(":")
        if not name or not count.isdigit():
            raise ValueError(f"--splits must look like train:64,val:8, got {text!r}")
        splits[name] = int(count)
    return splits


def parse_arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """(this command's flags, Beam's flags)."""
    parser = argparse.ArgumentParser(prog="python -m ifan_tf.pipelines.training_data", allow_abbrev=False,
                                     description="Training data as Apache Beam pipelines; other flags go to Beam.")
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument("--output_dir", required=True, help="Folder for the shards and dataset_summary.json.")
    common.add_argument("--examples_per_shard", type=int, default=16, help="Maximum scenes per shard.")
    common.add_argument("--overwrite", action="store_true", help="Replace an existing data set in --output_dir.")
    syn = commands.add_parser("synthesize", parents=[common], allow_abbrev=False,
                              help="synthetic dual-pixel data (python -m data_prep.synthesize)")
    syn.add_argument("--num_scenes", type=int, default=32, help="Scenes of a single 'train' split.")
    syn.add_argument("--seed", type=int, default=0, help="Random seed; equal flags give identical output.")
    syn.add_argument("--splits", default=None, help="Scenes per split, e.g. train:64,val:8.")
    syn.add_argument("--source_dir", default=None, help="Folder of sharp photos (default: skimage's photographs).")
    syn.add_argument("--photos", default=None, help="Photo names to use, comma-separated (default: all).")
    syn.add_argument("--nodisjoint_photos", dest="disjoint_photos", action="store_false",
                     help="Let the splits share photographs.")
    syn.add_argument("--height", type=int, default=None)
    syn.add_argument("--width", type=int, default=None)
    syn.add_argument("--max_coc", type=float, default=None)
    syn.add_argument("--bit_depth", type=int, default=8)
    syn.add_argument("--png_compression", type=int, default=1)
    syn.add_argument("--write_folders", action="store_true", help="Also write DPDD-style folders.")
    syn.add_argument("--layout", choices=synthetic_dataset.LAYOUTS, default="blobs")
    syn.add_argument("--highlight_gain", type=float, default=1.0)
    syn.add_argument("--noise_level", type=float, default=0.0)
    syn.add_argument("--jpeg_quality", type=int, default=0)
    conv = commands.add_parser("convert", parents=[common], allow_abbrev=False,
                               help="DPDD, RealDOF, PixelDP or a folder of defocused images")
    conv.add_argument("--layout", choices=CONVERTER_LAYOUTS, required=True)
    conv.add_argument("--input_dir", required=True)
    conv.add_argument("--split", default="test", help="Split name of a folder layout's records.")
    conv.add_argument("--splits", default="train,val,test", help="DPDD splits to convert (those present).")
    conv.add_argument("--png_compression", type=int, default=3)
    conv.add_argument("--skip_bad_images", action="store_true",
                      help="Leave out scenes with bad images (listed in the summary) instead of refusing.")
    conv.add_argument("--inspection_threads", type=int, default=os.cpu_count() or 1,
                      help="Threads of the inspection pass (in the launching process).")
    return parser.parse_known_args(argv)


def run(argv: list[str]) -> int:
    """The command line; returns the exit status."""
    from data_prep import conversion, scene_files

    args, beam_args = parse_arguments(argv)
    options = runner.make_options(beam_args)
    started = time.time()
    try:
        summary = synthesize(args, options) if args.command == "synthesize" else convert(args, options)
    except (ValueError, FileNotFoundError, dataset_writer.OutputExistsError, scene_files.DatasetLayoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.command == "convert":
        conversion.print_summary(summary, args.output_dir)
    else:
        for split, info in summary["splits"].items():
            sizes = ", ".join(f"{size} x{count}" for size, count in info["sizes"].items())
            print(f"{split}: {info['num_examples']} scenes in {info['num_shards']} shards ({sizes})")
        print(f"wrote {os.path.join(args.output_dir, dataset_writer.SUMMARY_FILE)}")
    print(f"{time.time() - started:.1f} s on {runner.describe(options)}")
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
