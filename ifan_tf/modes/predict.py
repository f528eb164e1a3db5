"""``main.py --mode=predict``: deblur an image file or a folder of images at full resolution.

With ``--model_dir`` (a model directory): flags ``input``, ``output``, ``precision``, ``tile``,
``tile_overlap``, ``memory_budget_gb``, ``overwrite``. With ``--model=FILE.tflite`` (a LiteRT
export): ``input``, ``output``, ``tile`` (must match the model or be None), ``tile_overlap`` (the
model's JSON value unless given), ``num_threads``, ``overwrite``.

Exit status (``ifan_tf.modes``): 0 when every image was written, 1 when some failed (each is
reported on stderr with the reason, after a summary line; the others are written), 2 when nothing
could start.
"""

from ifan_tf.inference.folder import plan_outputs, predict_files, report_summary
from ifan_tf.inference.predictor import Predictor
from ifan_tf.modes import ModeError, flag_given


def run(flags):
    if getattr(flags, "model", None):
        return run_litert(flags)
    if not flags.model_dir or not flags.input or not flags.output:
        raise ModeError("--mode=predict needs --model_dir, --input and --output")
    try:
        pairs = plan_outputs(flags.input, flags.output, overwrite=flags.overwrite)  # checks before loading
        predictor = Predictor.from_model_dir(flags.model_dir, precision=flags.precision, tile=flags.tile,
                                             tile_overlap=flags.tile_overlap, memory_budget_gb=flags.memory_budget_gb)
    except (ValueError, OSError) as error:  # CheckpointError is a ValueError
        raise ModeError(str(error)) from None
    summary = predict_files(predictor, pairs)
    return report_summary(summary, len(pairs), flags.precision, flags.output)


def run_litert(flags):
    """``--mode=predict --model=FILE.tflite``."""
    from ifan_tf.litert.runner import DEFAULT_NUM_THREADS, LiteRTPredictor, LiteRTTileRunner

    if not flags.input or not flags.output:
        raise ModeError("--mode=predict --model=FILE.tflite needs --input and --output")
    try:
        pairs = plan_outputs(flags.input, flags.output, overwrite=flags.overwrite)  # checks before loading
        runner = LiteRTTileRunner(flags.model, num_threads=getattr(flags, "num_threads", None) or DEFAULT_NUM_THREADS)
        if flags.tile is not None and flags.tile != runner.tile:
            raise ValueError(f"{flags.model}: the model's tile size is fixed at {runner.tile}, not --tile={flags.tile}"
                             " (omit --tile, or export another tile size)")
        predictor = LiteRTPredictor(runner, tile_overlap=flag_given(flags, "tile_overlap"))
    except (ValueError, OSError) as error:  # LiteRTModelError is a ValueError
        raise ModeError(str(error)) from None
    summary = predict_files(predictor, pairs)
    return report_summary(summary, len(pairs), f"LiteRT {runner.description.get('quantize')}, tile {runner.tile}",
                          flags.output)
