"""``main.py --mode=eval --model_dir=DIR --data=GLOB --output_dir=DIR [--save_images] [--precision=bfloat16]``.

The paper's protocol (``ifan_tf.evaluation.evaluate``) on any TFRecord set from ``data_prep``, for
a model directory from training (``WORKDIR/model``) or from ``python -m ifan_tf.weights.convert``.
``--data`` is a glob or comma-separated globs. A shard or record that cannot be read or evaluated
(a FIFO or a device among the files, a corrupt shard, ...) is reported and skipped; the scores
cover the others and the exit status is then 1 (``ifan_tf.modes``; 2 when nothing was evaluated).
"""

import os
import sys

from ifan_tf.data.file_patterns import split_file_patterns
from ifan_tf.evaluation.evaluate import PER_IMAGE_FILE, SUMMARY_FILE, evaluate, format_summary
from ifan_tf.model.precision import INFERENCE_PRECISIONS, canonical_precision
from ifan_tf.modes import FAILED, OK, ModeError
from ifan_tf.weights.model_dir import load_network
from ifan_tf.weights.reference_checkpoint import CheckpointError


def run(flags):
    missing = [name for name in ("model_dir", "data", "output_dir") if not getattr(flags, name)]
    if missing:
        raise ModeError("--mode=eval needs " + ", ".join(f"--{name}" for name in missing))
    output_dir = flags.output_dir
    if os.path.exists(os.path.join(output_dir, SUMMARY_FILE)) and not flags.overwrite:
        raise ModeError(f"{output_dir} already holds an evaluation ({SUMMARY_FILE}); pass --overwrite")
    try:
        network = load_network(flags.model_dir, canonical_precision(flags.precision, INFERENCE_PRECISIONS,
                                                                    "--precision"))
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        raise ModeError(str(error)) from None
    patterns = split_file_patterns(flags.data)
    try:
        summary = evaluate(network, patterns, output_dir=output_dir, save_images=flags.save_images,
                           description={"model_dir": os.path.abspath(flags.model_dir), "data": patterns,
                                        "precision": flags.precision, "model": network.config.to_dict()})
    except (FileNotFoundError, ValueError) as error:
        raise ModeError(str(error)) from None
    for line in format_summary(summary):
        print(line)
    written = [SUMMARY_FILE] + ([PER_IMAGE_FILE] if summary.get("has_ground_truth") else [])
    print(f"wrote {', '.join(os.path.join(output_dir, name) for name in written)}"
          + (f" and images in {os.path.join(output_dir, 'images')}" if flags.save_images else ""))
    failed = summary.get("failed", [])
    if failed:
        print(f"{len(failed)} shard(s) or record(s) failed and were skipped (also listed in {SUMMARY_FILE}):",
              file=sys.stderr)
        for item in failed:
            print(f"failed: {item['source']}: {item['error']}", file=sys.stderr)
    return FAILED if failed else OK
