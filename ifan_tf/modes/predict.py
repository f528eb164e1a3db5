"""``main.py --mode=predict``: deblur an image file or a folder of images at full resolution.

Exit status: 0 when every image was written, 1 when some failed (each is reported on stderr with
the reason, after a summary line; the others are written), 2 when nothing could start.
"""

import sys

from absl import app

from ifan_tf.inference.folder import plan_outputs, predict_files, report_summary
from ifan_tf.inference.predictor import Predictor


def run(flags):
    if getattr(flags, "model", None):
        from ifan_tf.litert.cli import run_predict
        return run_predict(flags)
    if not flags.model_dir or not flags.input or not flags.output:
        raise app.UsageError("--mode=predict needs --model_dir, --input and --output")
    try:
        pairs = plan_outputs(flags.input, flags.output, overwrite=flags.overwrite)  # checks before loading
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        predictor = Predictor.from_model_dir(flags.model_dir, precision=flags.precision, tile=flags.tile,
                                             tile_overlap=flags.tile_overlap, memory_budget_gb=flags.memory_budget_gb)
    except (ValueError, OSError) as error:  # CheckpointError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = predict_files(predictor, pairs)
    return report_summary(summary, len(pairs), flags.precision, flags.output)
