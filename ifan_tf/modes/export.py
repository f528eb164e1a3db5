"""``main.py --mode=export``: a model directory -> a TF Serving SavedModel (``EXPORT_DIR/<version>``),
or with ``--format=litert`` a LiteRT model (``.tflite`` and its JSON, ``ifan_tf.litert.export``).

SavedModel flags: ``model_dir``, ``export_dir``, ``export_version``, ``precision``, ``max_pixels``,
``max_batch``, ``tile``, ``tile_overlap``, ``warmup_requests``, ``overwrite``. LiteRT flags:
``model_dir``, ``export_dir``, ``tile`` (None = 512), ``tile_overlap``, ``quantize``, ``overwrite``.
A model or limits that cannot be exported exit with 2 (``ifan_tf.modes``).
"""

import os

from ifan_tf.modes import OK, ModeError, flag_given
from ifan_tf.serving.export import export_model_dir
from ifan_tf.serving.limits import ServingLimits
from ifan_tf.weights.reference_checkpoint import CheckpointError


def run(flags):
    if getattr(flags, "format", "saved_model") == "litert":
        return run_litert(flags)
    if not flags.model_dir or not flags.export_dir:
        raise ModeError("--mode=export needs --model_dir and --export_dir")
    given = {name: getattr(flags, name, None) for name in ("max_pixels", "max_batch", "tile", "tile_overlap")}
    warmup_requests = getattr(flags, "warmup_requests", True)
    try:
        limits = ServingLimits(**{name: value for name, value in given.items() if value is not None})
        path = export_model_dir(flags.model_dir, flags.export_dir, version=flags.export_version,
                                precision=flags.precision, overwrite=flags.overwrite, limits=limits,
                                warmup_requests=warmup_requests)
    except (CheckpointError, ValueError, OSError, ImportError) as error:
        raise ModeError(str(error)) from None
    print(f"exported {flags.model_dir} ({flags.precision}) to {path}; request limits: max_pixels="
          f"{limits.max_pixels}, max_batch={limits.max_batch}; images above {limits.tile}x{limits.tile} = "
          f"{limits.tile * limits.tile} pixels run in tiles of at most that area (overlap {limits.tile_overlap})")
    print("TF Serving warm-up requests: " + (f"{path}/assets.extra/tf_serving_warmup_requests (replayed at load; "
                                              "--nowarmup_requests leaves them out)" if warmup_requests else "none"))
    print(f"serve it: docker run --rm -p 8501:8501 -p 8500:8500 --mount type=bind,source={os.path.dirname(path)},"
          "target=/models/ifan -e MODEL_NAME=ifan -t tensorflow/serving")
    return OK


def run_litert(flags):
    """``--mode=export --format=litert``."""
    from ifan_tf.litert import export as litert_export

    if not flags.model_dir or not flags.export_dir:
        raise ModeError("--mode=export --format=litert needs --model_dir and --export_dir")
    tile = flags.tile if flags.tile is not None else litert_export.DEFAULT_TILE
    overlap = flag_given(flags, "tile_overlap")
    overlap = litert_export.DEFAULT_TILE_OVERLAP if overlap is None else overlap
    quantize = getattr(flags, "quantize", None) or "none"
    try:
        path = litert_export.export_model_dir(flags.model_dir, flags.export_dir, tile=tile, quantize=quantize,
                                              tile_overlap=overlap, overwrite=flags.overwrite)
    except (ValueError, OSError) as error:  # CheckpointError, LiteRTExportError are ValueErrors
        raise ModeError(str(error)) from None
    print(f"exported {flags.model_dir} as a LiteRT model (tile {tile}, quantize {quantize}) to {path}")
    print(f"run it: python main.py --mode=predict --model={path} --input=IMAGE_OR_DIR --output=OUT")
    return OK
