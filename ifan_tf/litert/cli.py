"""``main.py`` for LiteRT: ``--mode=export --format=litert`` and ``--mode=predict --model=FILE.tflite``.

Flags are read from the absl ``FLAGS`` object (or any namespace with the same attributes):
export uses ``model_dir``, ``export_dir``, ``tile`` (None = 512), ``tile_overlap``, ``quantize``,
``overwrite``; predict uses ``model``, ``input``, ``output``, ``tile`` (must match the model or be
None), ``tile_overlap`` (the model's JSON value unless given), ``num_threads``, ``overwrite``.
"""

import sys

from absl import app

from ifan_tf.inference.folder import plan_outputs, predict_files, report_summary
from ifan_tf.litert.export import DEFAULT_TILE, DEFAULT_TILE_OVERLAP, export_model_dir
from ifan_tf.litert.runner import DEFAULT_NUM_THREADS, LiteRTPredictor, LiteRTTileRunner


def _given(flags, name):
    """The value of flag ``name`` if it was set on the command line (absl) or is not None (namespace), else None."""
    try:
        present = flags[name].present  # absl FlagValues
    except (TypeError, KeyError, AttributeError):
        return getattr(flags, name, None)
    return getattr(flags, name) if present else None


def run_export(flags):
    if not flags.model_dir or not flags.export_dir:
        raise app.UsageError("--mode=export --format=litert needs --model_dir and --export_dir")
    tile = flags.tile if flags.tile is not None else DEFAULT_TILE
    overlap = _given(flags, "tile_overlap")
    overlap = DEFAULT_TILE_OVERLAP if overlap is None else overlap
    quantize = getattr(flags, "quantize", None) or "none"
    try:
        path = export_model_dir(flags.model_dir, flags.export_dir, tile=tile, quantize=quantize,
                                tile_overlap=overlap, overwrite=flags.overwrite)
    except (ValueError, OSError) as error:  # CheckpointError, LiteRTExportError are ValueErrors
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"exported {flags.model_dir} as a LiteRT model (tile {tile}, quantize {quantize}) to {path}")
    print(f"run it: python main.py --mode=predict --model={path} --input=IMAGE_OR_DIR --output=OUT")
    return 0


def run_predict(flags):
    if not flags.input or not flags.output:
        raise app.UsageError("--mode=predict --model=FILE.tflite needs --input and --output")
    try:
        pairs = plan_outputs(flags.input, flags.output, overwrite=flags.overwrite)  # checks before loading
        runner = LiteRTTileRunner(flags.model, num_threads=getattr(flags, "num_threads", None) or DEFAULT_NUM_THREADS)
        if flags.tile is not None and flags.tile != runner.tile:
            raise ValueError(f"{flags.model}: the model's tile size is fixed at {runner.tile}, not --tile={flags.tile}"
                             " (omit --tile, or export another tile size)")
        predictor = LiteRTPredictor(runner, tile_overlap=_given(flags, "tile_overlap"))
    except (ValueError, OSError) as error:  # LiteRTModelError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = predict_files(predictor, pairs)
    return report_summary(summary, len(pairs), f"LiteRT {runner.description.get('quantize')}, tile {runner.tile}",
                          flags.output)
