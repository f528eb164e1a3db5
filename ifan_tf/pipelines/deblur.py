"""``python -m ifan_tf.pipelines.deblur``: deblur a photo archive with Apache Beam (RunInference).

Usage:
  python -m ifan_tf.pipelines.deblur --input=photos/ --output=deblurred/ --model=exports/ifan \
      [--overwrite] [--batch_size=1] [--max_pixels=N] [--dead_letter=FILE] [BEAM FLAGS]
  # locally on 2 worker processes (the default is 1 worker, in this process):
  ... --direct_num_workers=2 --direct_running_mode=multi_processing
  # on a cluster: any runner's flags, e.g. --runner=DataflowRunner --project=... (docs/beam.md)

``--input`` is a folder (recursive), a file pattern (``photos/**/*.jpg``) or one file, on any Beam
filesystem (local, ``gs://``, ``s3://``, ...; read with ``MatchFiles``/``ReadMatches``);
``--output`` is a folder mirroring the input's relative names, as ``main.py --mode=predict`` writes
them: same file name and format, the input's size, bit depth and channel layout. ``--model`` is a
SavedModel export (``main.py --mode=export``; a version folder or the export folder, whose highest
version is used) or a model directory (then predict's ``--precision``, ``--tile``,
``--tile_overlap`` and ``--memory_budget_gb`` apply). See ``deblur_model`` for how each gives
predict's outputs.

An existing output is skipped unless ``--overwrite``, so rerunning an interrupted run writes only
what is missing. Files that cannot be deblurred go to ``--dead_letter`` (default
``OUTPUT/dead_letter.jsonl``, one ``{"path", "stage", "reason"}`` per line, rewritten each run).
At the end the command prints a summary (images, megapixels, skipped, failed with reasons).

Exit status: 0 when every input was written or skipped, 1 when some failed, 2 when nothing could
start (bad flags, no model, no input matched).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from ifan_tf.inference.predictor import DEFAULT_TILE_OVERLAP
from ifan_tf.pipelines import deblur_model, deblur_steps, runner, storage

DEAD_LETTER_NAME = "dead_letter.jsonl"


def parse_arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """(this command's flags, Beam's flags); argparse exits with status 2 on bad flags."""
    parser = argparse.ArgumentParser(
        prog="python -m ifan_tf.pipelines.deblur", allow_abbrev=False,
        description="Deblur a folder or file pattern of images with Apache Beam; other flags go to Beam "
                    "(--runner, --direct_num_workers, --direct_running_mode, a cluster runner's flags).")
    parser.add_argument("--input", required=True, help="Folder (recursive), file pattern or file; any Beam filesystem.")
    parser.add_argument("--output", required=True, help="Output folder (mirrors the input's relative names).")
    parser.add_argument("--model", required=True, help="SavedModel export (version or export folder) or model directory.")
    parser.add_argument("--overwrite", action="store_true", help="Replace existing outputs (default: skip them).")
    parser.add_argument("--dead_letter", default=None,
                        help=f"JSON-lines file of the failed inputs (default: OUTPUT/{DEAD_LETTER_NAME}).")
    parser.add_argument("--batch_size", type=int, default=1,
                        help="Most images per model call; only images of equal shape are stacked. 1 (default) gives "
                             "predict's exact numbers; larger batches may differ by float rounding.")
    parser.add_argument("--max_pixels", type=int, default=None,
                        help="Refuse images above this many pixels (a SavedModel's own max_pixels always applies).")
    parser.add_argument("--precision", default="float32", help="Model directory only: float32 or bfloat16.")
    parser.add_argument("--tile", type=int, default=None, help="Model directory only: predict's --tile.")
    parser.add_argument("--tile_overlap", type=int, default=DEFAULT_TILE_OVERLAP,
                        help="Model directory only: predict's --tile_overlap.")
    parser.add_argument("--memory_budget_gb", type=float, default=4.0,
                        help="Model directory only: predict's --memory_budget_gb.")
    parser.add_argument("--large_model", action="store_true",
                        help="Load the model once per machine and share it between worker processes (Beam's large_model).")
    parser.add_argument("--model_copies", type=int, default=None, help="Exactly this many model copies per machine.")
    return parser.parse_known_args(argv)


def build(pipeline: beam.Pipeline, plan: deblur_steps.OutputPlan, spec: deblur_model.ModelSpec, *,
          dead_letter: str, overwrite: bool = False, batch_size: int = 1, large_model: bool = False,
          model_copies: int | None = None) -> None:
    """Adds the deblurring steps to ``pipeline``: match, read + decode, RunInference, write, dead letters."""
    handler = KeyedModelHandler(deblur_model.DeblurModelHandler(spec, batch_size, large_model, model_copies))
    decoded = (pipeline
               | "Match" >> fileio.MatchFiles(plan.pattern)
               | "Spread" >> beam.Reshuffle()
               | "Open" >> fileio.ReadMatches(skip_directories=True)
               | "Decode" >> beam.ParDo(deblur_steps.DecodeImage(plan, spec, overwrite)).with_outputs(
                   deblur_steps.FAILED, main="images"))
    deblurred, inference_dlq = decoded.images | "Deblur" >> RunInference(handler).with_exception_handling()
    written = deblurred | "Write" >> beam.ParDo(deblur_steps.WriteImage()).with_outputs(deblur_steps.FAILED)
    failed_inference = inference_dlq.failed_inferences | "InferenceFailures" >> beam.ParDo(
        deblur_steps.InferenceFailures())
    _ = ((decoded[deblur_steps.FAILED], failed_inference, written[deblur_steps.FAILED])
         | "Failures" >> beam.Flatten()
         | "ToJson" >> beam.Map(deblur_steps.dead_letter_line)
         | "DeadLetters" >> beam.io.WriteToText(dead_letter, shard_name_template="", num_shards=1))


def print_summary(counts: dict, failures: list[dict], seconds: float, where: str, output: str, dead_letter: str,
                  stream=None) -> int:
    """Prints the end of a run (like predict's) and returns the exit status (1 when any input failed)."""
    stream = sys.stderr if stream is None else stream
    inputs, written = counts.get("inputs", 0), counts.get("written", 0)
    megapixels = counts.get("pixels", 0) / 1e6
    print(f"deblurred {written} of {inputs} images ({megapixels:.2f} Mpx) in {seconds:.1f} s on {where} -> {output}")
    skipped = counts.get("skipped_existing", 0)
    if skipped:
        print(f"{skipped} of {inputs} images skipped: output exists (pass --overwrite to replace)")
    if failures:
        print(f"{len(failures)} of {inputs} images failed and were skipped (listed in {dead_letter}):", file=stream)
    for record in failures:
        print(f"failed: {record['path']}: {record['reason']}", file=stream)
    return 1 if failures else 0


def run(argv: list[str]) -> int:
    """The command line; returns the exit status."""
    args, beam_args = parse_arguments(argv)
    try:
        plan = deblur_steps.OutputPlan(args.input, args.output)
        if storage.is_local(args.input) and not os.path.exists(args.input) \
                and not any(char in args.input for char in "*?["):
            raise ValueError(f"{args.input}: no such file or folder")
        plan.check()
        spec = deblur_model.describe_model(args.model, max_pixels=args.max_pixels, precision=args.precision,
                                           tile=args.tile, tile_overlap=args.tile_overlap,
                                           memory_budget_gb=args.memory_budget_gb)
        deblur_model.DeblurModelHandler(spec, args.batch_size)  # checks --batch_size before starting
    except (ValueError, OSError) as error:  # CheckpointError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2
    dead_letter = args.dead_letter or storage.join(plan.output, DEAD_LETTER_NAME)
    if storage.is_local(plan.output):
        os.makedirs(plan.output, exist_ok=True)
    options = runner.make_options(beam_args)
    pipeline = runner.new_pipeline(options)
    build(pipeline, plan, spec, dead_letter=dead_letter, overwrite=args.overwrite, batch_size=args.batch_size,
          large_model=args.large_model, model_copies=args.model_copies)
    started = time.time()
    result = runner.run_to_completion(pipeline)
    seconds = time.time() - started
    counts = runner.counters(result, deblur_steps.METRICS)
    if not counts.get("inputs"):
        print(f"error: {args.input}: no image files matched ({plan.pattern})", file=sys.stderr)
        return 2
    return print_summary(counts, deblur_steps.read_dead_letters(dead_letter), seconds, runner.describe(options),
                         plan.output, dead_letter)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
