"""SavedModel export for TensorFlow Serving (``main.py --mode=export``).

Layout: ``EXPORT_DIR/<version>/saved_model.pb`` + ``variables/`` (+ ``assets.extra/ifan_tf.json``
describing the export), ``version`` a positive integer, by default one more than the largest
existing version. The SavedModel is written to a hidden temporary folder next to it
(``EXPORT_DIR/.tmp-<version>-*``, which TF Serving ignores: not a number) and renamed when complete.

Signatures (dynamic batch, height and width):

- ``serving_default``: ``image`` float32 ``[B, H, W, 3]`` in [0, 1], any H, W >= 1 ->
  ``deblurred`` float32 ``[B, H, W, 3]`` in [0, 1]. Reflect-padded to multiples of 8 in the graph.
- ``deblur_encoded``: ``image_bytes`` string ``[B]`` (PNG 8/16-bit or JPEG; gray, RGB, with or
  without alpha) -> ``png_bytes`` string ``[B]`` (same bit depth; see ``encoded_images``). The
  ``_bytes`` suffix makes TF Serving's REST API exchange them as ``{"b64": ...}``.

Only single-image models can be exported (a dual-pixel-input model needs two more views).
"""

import json
import os
import shutil
import tempfile

from absl import logging
import tensorflow as tf

from ifan_tf.atomic_write import publish_directory
from ifan_tf.inference.padding import deblur_any_size
from ifan_tf.inference.predictor import check_single_image, load_network
from ifan_tf.serving import encoded_images

DEFAULT_SIGNATURE = "serving_default"
ENCODED_SIGNATURE = "deblur_encoded"
IMAGE_INPUT, IMAGE_OUTPUT = "image", "deblurred"
BYTES_INPUT, BYTES_OUTPUT = "image_bytes", "png_bytes"
EXPORT_INFO_FILE = os.path.join("assets.extra", "ifan_tf.json")


class ServingModule(tf.Module):
    """The exported object: an IFAN network and the two serving functions."""

    def __init__(self, network):
        super().__init__(name="ifan_serving")
        check_single_image(network.config)
        self.network = network
        self.deblur = tf.function(
            self._deblur, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name=IMAGE_INPUT)])
        self.deblur_encoded = tf.function(
            self._deblur_encoded, input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_INPUT)])

    def _deblur(self, image):
        return {IMAGE_OUTPUT: deblur_any_size(self.network, image)}

    def _deblur_one_encoded(self, data):
        decoded = encoded_images.decode(data)
        deblurred = deblur_any_size(self.network, decoded.rgb[tf.newaxis])[0]
        return encoded_images.encode_like(deblurred, decoded)

    def _deblur_encoded(self, image_bytes):
        # One image at a time: images may differ in size, and memory stays that of one image.
        png = tf.map_fn(self._deblur_one_encoded, image_bytes, fn_output_signature=tf.TensorSpec([], tf.string),
                        parallel_iterations=1)
        return {BYTES_OUTPUT: png}

    def signatures(self):
        return {DEFAULT_SIGNATURE: self.deblur, ENCODED_SIGNATURE: self.deblur_encoded}


def existing_versions(export_dir):
    """Sorted integer version numbers of the SavedModels under ``export_dir``."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(name) for name in os.listdir(export_dir)
                  if name.isdigit() and os.path.isdir(os.path.join(export_dir, name)))


def export_network(network, export_dir, version=None, overwrite=False, info=None):
    """Exports a built IFAN network as ``export_dir/<version>``; returns that path.

    Args:
      network: a single-image ``IFAN`` model (its dtype policy sets the compute precision).
      export_dir: TF Serving base path (created if missing).
      version: positive integer; None = next free version.
      overwrite: replace an existing ``export_dir/<version>``.
      info: extra JSON-serialisable facts stored in ``assets.extra/ifan_tf.json``.
    """
    export_dir = os.path.abspath(os.fspath(export_dir))
    if version is None:
        version = max(existing_versions(export_dir), default=0) + 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"export version must be a positive integer, got {version!r}")
    target = os.path.join(export_dir, str(version))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target}: version {version} already exists (pass --overwrite to replace it, "
                              "or omit --export_version to use the next free one)")
    module = ServingModule(network)
    os.makedirs(export_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir)
    try:
        tf.saved_model.save(module, staging, signatures=module.signatures())
        details = {"format": "ifan_tf.saved_model", "version": version,
                   "compute_dtype": network.dtype_policy.compute_dtype,
                   "model": network.config.to_dict(), "signatures": {
                       DEFAULT_SIGNATURE: {"inputs": {IMAGE_INPUT: "float32 [B,H,W,3] in [0,1]"},
                                           "outputs": {IMAGE_OUTPUT: "float32 [B,H,W,3] in [0,1]"}},
                       ENCODED_SIGNATURE: {"inputs": {BYTES_INPUT: "string [B] PNG/JPEG bytes"},
                                           "outputs": {BYTES_OUTPUT: "string [B] PNG bytes"}}}}
        details.update(info or {})
        os.makedirs(os.path.join(staging, "assets.extra"), exist_ok=True)
        with open(os.path.join(staging, EXPORT_INFO_FILE), "w") as handle:
            json.dump(details, handle, indent=2, sort_keys=True)
        publish_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logging.info("exported SavedModel version %d to %s", version, target)
    return target


def export_model_dir(model_dir, export_dir, version=None, precision="float32", overwrite=False):
    """Loads a model directory and exports it (``main.py --mode=export``); returns the version path."""
    network = load_network(model_dir, precision)
    return export_network(network, export_dir, version, overwrite,
                          info={"model_dir": os.path.abspath(model_dir), "precision": precision})
