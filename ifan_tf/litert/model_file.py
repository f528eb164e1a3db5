"""The LiteRT export on disk: ``NAME.tflite`` plus ``NAME.json`` beside it, and their checks.

The JSON (``FORMAT_NAME`` v``FORMAT_VERSION``) tells an app everything it needs besides the model::

    {"format": "ifan_tf.litert", "version": 1, "model_file": "ifan-t512-float32.tflite",
     "sha256": "<of the .tflite>", "tile": 512, "tile_overlap": 32, "size_multiple": 8,
     "input":  {"name": ..., "shape": [1, 512, 512, 3], "dtype": "float32", "layout": ...},
     "output": {"name": ..., "shape": [1, 512, 512, 3], "dtype": "float32", "layout": ...},
     "quantize": "none" | "float16" | "dynamic_int8", "model": {ModelConfig}, ...}

A model without its JSON, a JSON for another file (``sha256``), a file that is not a TFLite
flatbuffer, or a model whose input is not ``[1, t, t, 3]`` float32 is refused with an error naming
the file (``LiteRTModelError``).
"""

import hashlib
import json
import os

from ifan_tf.io.atomic_write import atomic_write_bytes

FORMAT_NAME = "ifan_tf.litert"
FORMAT_VERSION = 1
MODEL_SUFFIX = ".tflite"
TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier, bytes 4..8 of every .tflite
IMAGE_LAYOUT = "NHWC, RGB, float32 in [0, 1] (8-bit: value / 255; 16-bit: value / 65535)"


class LiteRTModelError(ValueError):
    """A ``.tflite`` export or its JSON is missing, unreadable or not what ifan_tf writes."""


def model_file_name(tile, quantize):
    """``ifan-t<tile>-<variant>.tflite`` (variant ``float32``, ``float16`` or ``dynamic_int8``)."""
    return f"ifan-t{tile}-{'float32' if quantize == 'none' else quantize}{MODEL_SUFFIX}"


def sidecar_path(model_path):
    """The JSON that describes ``model_path``: the same name with ``.json`` instead of ``.tflite``."""
    return os.path.splitext(os.fspath(model_path))[0] + ".json"


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def check_tflite_bytes(data, path):
    """Raises ``LiteRTModelError`` unless ``data`` (the bytes of ``path``) is a TFLite flatbuffer."""
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise LiteRTModelError(f"{path}: not a LiteRT/TFLite model (no '{TFLITE_IDENTIFIER.decode()}' flatbuffer "
                               "identifier); export one with `main.py --mode=export --format=litert`")


def read_model_bytes(path):
    """The bytes of a ``.tflite`` file, checked to be a TFLite flatbuffer."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise LiteRTModelError(f"{path}: no such LiteRT model file")
    with open(path, "rb") as handle:
        data = handle.read()
    check_tflite_bytes(data, path)
    return data


def tensor_description(name, tile):
    """The JSON description of the model's input or output tensor."""
    return {"name": name, "shape": [1, tile, tile, 3], "dtype": "float32", "layout": IMAGE_LAYOUT}


def read_sidecar(model_path, model_bytes):
    """Reads and checks the JSON beside ``model_path``; returns it as a dict.

    Checks the format, the ``sha256`` against ``model_bytes`` and the tile fields.
    """
    path = sidecar_path(model_path)
    if not os.path.isfile(path):
        raise LiteRTModelError(f"{path}: missing; the LiteRT model {model_path} needs the JSON written next to it by "
                               "`main.py --mode=export --format=litert` (tile size and overlap); re-export the model")
    try:
        with open(path) as handle:
            document = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LiteRTModelError(f"{path}: unreadable LiteRT model description ({error})") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME \
            or document.get("version") != FORMAT_VERSION:
        raise LiteRTModelError(f"{path}: not an {FORMAT_NAME} v{FORMAT_VERSION} description")
    if document.get("sha256") != sha256_hex(model_bytes):
        raise LiteRTModelError(f"{path}: describes another model file than {model_path} (sha256 differs); "
                               "keep the .tflite and .json of one export together")
    tile, overlap = document.get("tile"), document.get("tile_overlap")
    if not isinstance(tile, int) or not isinstance(overlap, int) or tile < 16 or tile % 8 or not 0 <= overlap <= tile - 8:
        raise LiteRTModelError(f"{path}: bad tile size {tile!r} or overlap {overlap!r}")
    return document


def write_description(path, document):
    """Writes the JSON ``document`` to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
