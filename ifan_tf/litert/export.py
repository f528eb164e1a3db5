"""LiteRT (TFLite) export (``main.py --mode=export --format=litert``): a model directory -> one
fixed-tile ``.tflite`` model and the JSON that describes it (``ifan_tf.litert.model_file``).

The graph is ``ifan_tf.litert.tile_graph`` (input and output float32 ``[1, tile, tile, 3]`` in
[0, 1]), converted with ``tf.lite.TFLiteConverter`` restricted to LiteRT's builtin ops, so the
model runs on phones without the Flex (TF Select) delegate; the result is checked again op by op.
Quantization (``quantize``):

- ``"none"``: float32 weights and compute.
- ``"float16"``: float16 weights (half the size); CPUs dequantize them to float32 once at load,
  GPU delegates may compute in float16.
- ``"dynamic_int8"``: int8 weights (a quarter of the size); convolutions quantize their
  activations to int8 on the fly ("dynamic range"); the output stays float32.

Both files are converted in memory first and then written atomically (temp name, rename).
"""

import os
import re

from absl import logging
import tensorflow as tf

from ifan_tf.io.atomic_write import atomic_write_bytes
from ifan_tf.litert import model_file
from ifan_tf.litert.tile_graph import check_tile_size, tile_function

QUANTIZATIONS = ("none", "float16", "dynamic_int8")
DEFAULT_TILE = 512  # ~0.2 GB of activations in float32: fits phones; see /work/notes/readme-litert.md
DEFAULT_TILE_OVERLAP = 32  # as the SavedModel path (ifan_tf.inference.predictor)
INPUT_NAME = "image"
OPS_DOC = "https://ai.google.dev/edge/litert/models/ops_compatibility"


class LiteRTExportError(ValueError):
    """The network could not be converted to a builtin-ops-only LiteRT model."""


def operator_names(model_bytes):
    """Sorted names of the operators used by a TFLite flatbuffer (custom/Flex ops as ``CUSTOM:<name>``)."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    model = schema.Model.GetRootAsModel(model_bytes, 0)
    found = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.CustomCode()
            found.add(f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}")
        else:
            found.add(names.get(builtin, f"BUILTIN_{builtin}"))
    return sorted(found)


def _unsupported_ops(message):
    """TensorFlow op names the converter reports as having no LiteRT builtin kernel."""
    ops = set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message))
    for line in re.findall(r"TF Select ops: ([^\n]+)", message):
        ops.update(op.strip() for op in line.split(",") if op.strip())
    return sorted(ops)


def convert_function(concrete_function, quantize="none", source="the network"):
    """Converts a concrete function to TFLite flatbuffer bytes with builtin ops only.

    Raises ``LiteRTExportError`` naming the TensorFlow ops that have no LiteRT builtin kernel.
    """
    from tensorflow.lite.python.convert_phase import ConverterError

    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    # Without a trackable object the converter freezes the captured variables into constants (the
    # trackable path keeps Keras 3 variables as resource variables and loses their values).
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_function])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        data = converter.convert()
    except ConverterError as error:
        message = str(error)
        ops = _unsupported_ops(message)
        if ops:
            raise LiteRTExportError(
                f"{source}: LiteRT conversion failed: TensorFlow op(s) {', '.join(ops)} have no LiteRT builtin kernel. "
                "They would need the Flex delegate (SELECT_TF_OPS), which phone apps do not ship; express them with "
                f"builtin ops in ifan_tf/litert/tile_graph.py (supported ops: {OPS_DOC}).") from error
        first_lines = " | ".join(line.strip() for line in message.splitlines() if "error" in line)[:1500]
        raise LiteRTExportError(f"{source}: LiteRT conversion failed: {first_lines or message[:1500]}") from error
    non_builtin = [name for name in operator_names(data) if name.startswith("CUSTOM:")]
    if non_builtin:
        raise LiteRTExportError(f"{source}: the converted model uses non-builtin ops {non_builtin}; it would not run "
                                "on a stock LiteRT runtime")
    return data


def export_network(network, export_dir, tile=DEFAULT_TILE, quantize="none", tile_overlap=DEFAULT_TILE_OVERLAP,
                   overwrite=False, info=None):
    """Exports a built IFAN network as ``export_dir/ifan-t<tile>-<variant>.tflite`` + ``.json``.

    Args:
      network: a single-image float32 ``IFAN``.
      export_dir: output folder (created if missing).
      tile: input/output size ``[1, tile, tile, 3]`` (multiple of 8, 16..2048).
      quantize: one of ``QUANTIZATIONS``.
      tile_overlap: overlap recorded in the JSON for tiling larger images (0..tile - 8).
      overwrite: replace existing files of the same name.
      info: extra JSON-serialisable facts for the JSON.
    Returns:
      the path of the ``.tflite`` file.
    """
    check_tile_size(tile)
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    if isinstance(tile_overlap, bool) or not isinstance(tile_overlap, int) or not 0 <= tile_overlap <= tile - 8:
        raise ValueError(f"tile overlap must be between 0 and tile - 8 = {tile - 8}, got {tile_overlap!r}")
    export_dir = os.path.abspath(os.fspath(export_dir))
    path = os.path.join(export_dir, model_file.model_file_name(tile, quantize))
    description_path = model_file.sidecar_path(path)
    existing = [p for p in (path, description_path) if os.path.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]}: already exists (pass --overwrite to replace it)")
    data = convert_function(tile_function(network, tile, INPUT_NAME), quantize, source=f"{path}")
    ops = operator_names(data)
    document = {
        "format": model_file.FORMAT_NAME, "version": model_file.FORMAT_VERSION,
        "model_file": os.path.basename(path), "sha256": model_file.sha256_hex(data), "bytes": len(data),
        "input": model_file.tensor_description(INPUT_NAME, tile),
        "output": model_file.tensor_description("deblurred", tile),
        "tile": tile, "tile_overlap": tile_overlap, "size_multiple": 8,
        "tiling": ("images of any size: reflect-pad bottom/right to multiples of 8; tiles of `tile` pixels start at "
                   "multiples of 8 and overlap by >= `tile_overlap`, the last one shifted inward; raised-cosine "
                   "blend weights normalised to sum to 1 (ifan_tf/inference/tiling.py); a tile smaller than the "
                   "model input is reflect-padded to it and the output cropped"),
        "quantize": quantize, "builtin_ops": ops, "model": network.config.to_dict(),
        "converter": f"tensorflow {tf.__version__}",
    }
    document.update(info or {})
    os.makedirs(export_dir, exist_ok=True)
    # The JSON first: a model file is only ever published together with its description.
    model_file.write_description(description_path, document)
    atomic_write_bytes(path, data)
    logging.info("exported LiteRT model (%s, tile %d, %.1f MB) to %s", quantize, tile, len(data) / 1e6, path)
    return path


def export_model_dir(model_dir, export_dir, tile=DEFAULT_TILE, quantize="none", tile_overlap=DEFAULT_TILE_OVERLAP,
                     overwrite=False):
    """Loads a model directory (float32) and exports it as a LiteRT model; returns the ``.tflite`` path."""
    from ifan_tf.inference.predictor import load_network

    network = load_network(model_dir, "float32")
    return export_network(network, export_dir, tile, quantize, tile_overlap, overwrite,
                          info={"model_dir": os.path.abspath(model_dir)})
