"""``main.py --mode=export``: a model directory -> a TF Serving SavedModel (``EXPORT_DIR/<version>``)."""

import os
import sys

from absl import app

from ifan_tf.weights.reference_checkpoint import CheckpointError
from ifan_tf.serving.export import export_model_dir
from ifan_tf.serving.limits import ServingLimits


def run(flags):
    if getattr(flags, "format", "saved_model") == "litert":
        from ifan_tf.litert.cli import run_export
        return run_export(flags)
    if not flags.model_dir or not flags.export_dir:
        raise app.UsageError("--mode=export needs --model_dir and --export_dir")
    given = {name: getattr(flags, name, None) for name in ("max_pixels", "max_batch", "tile", "tile_overlap")}
    warmup_requests = getattr(flags, "warmup_requests", True)
    try:
        limits = ServingLimits(**{name: value for name, value in given.items() if value is not None})
        path = export_model_dir(flags.model_dir, flags.export_dir, version=flags.export_version,
                                precision=flags.precision, overwrite=flags.overwrite, limits=limits,
                                warmup_requests=warmup_requests)
    except (CheckpointError, ValueError, OSError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"exported {flags.model_dir} ({flags.precision}) to {path}; request limits: max_pixels="
          f"{limits.max_pixels}, max_batch={limits.max_batch}; images above {limits.tile}x{limits.tile} = "
          f"{limits.tile * limits.tile} pixels run in tiles of at most that area (overlap {limits.tile_overlap})")
    print("TF Serving warm-up requests: " + (f"{path}/assets.extra/tf_serving_warmup_requests (replayed at load; "
                                              "--nowarmup_requests leaves them out)" if warmup_requests else "none"))
    print(f"serve it: docker run --rm -p 8501:8501 -p 8500:8500 --mount type=bind,source={os.path.dirname(path)},"
          "target=/models/ifan -e MODEL_NAME=ifan -t tensorflow/serving")
    return 0
