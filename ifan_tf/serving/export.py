"""SavedModel export for TensorFlow Serving (``main.py --mode=export``).

Layout: ``EXPORT_DIR/<version>/saved_model.pb`` + ``variables/`` + ``assets.extra/ifan_tf.json``
(describing the export and its limits) + ``assets.extra/tf_serving_warmup_requests`` (requests TF
Serving replays before the version serves, unless ``warmup_requests=False``; see ``warmup``),
``version`` a positive integer, by default one more than the largest existing or reserved version.
Versions are reserved, staged in hidden ``.tmp-*`` folders (which TF Serving ignores: not a number)
and published atomically (``export_versions``).

Signatures (dynamic batch, height and width; inputs declared with unknown rank, checked in the graph):

- ``serving_default``: ``image`` float32 ``[B, H, W, 3]`` in [0, 1], any H, W >= 1 ->
  ``deblurred`` float32 ``[B, H, W, 3]`` in [0, 1]. Reflect-padded to multiples of 8 in the graph.
- ``deblur_encoded``: ``image_bytes`` string ``[B]`` (PNG 8/16-bit, JPEG or BMP; gray, RGB, with or
  without alpha) -> ``png_bytes`` string ``[B]`` (same bit depth; see ``encoded_images``). The
  ``_bytes`` suffix makes TF Serving's REST API exchange them as ``{"b64": ...}``.

Requests outside the export's ``ServingLimits`` (wrong rank or channels, empty, batch above
``max_batch``, an image above ``max_pixels``, unsupported or corrupt bytes, a header declaring too
many pixels) fail with ``INVALID_ARGUMENT`` before any heavy op. Images whose padded area exceeds
``tile * tile`` pixels run in balanced, overlapping tiles inside the graph
(``ifan_tf.inference.tiling``), so memory is bounded by the tile budget, not the image size.

Only single-image models can be exported (a dual-pixel-input model needs two more views).
"""

import json
import os
import shutil

from absl import logging
import tensorflow as tf

from ifan_tf.inference.bounded import deblur_batch_bounded, network_tile_runner
from ifan_tf.inference.predictor import check_single_image, load_network
from ifan_tf.inference.tiling import tiled_deblur
from ifan_tf.io.atomic_write import atomic_write_bytes
from ifan_tf.serving import encoded_images, limits as serving_limits, warmup
from ifan_tf.serving.export_versions import existing_versions, reserve_version  # noqa: F401 (re-exported)
from ifan_tf.serving.limits import ServingLimits

DEFAULT_SIGNATURE = "serving_default"
ENCODED_SIGNATURE = "deblur_encoded"
IMAGE_INPUT, IMAGE_OUTPUT = "image", "deblurred"
BYTES_INPUT, BYTES_OUTPUT = "image_bytes", "png_bytes"
EXPORT_INFO_FILE = os.path.join("assets.extra", "ifan_tf.json")
WARMUP_SIGNATURES = {"float": (DEFAULT_SIGNATURE, IMAGE_INPUT), "encoded": (ENCODED_SIGNATURE, BYTES_INPUT)}


class ServingModule(tf.Module):
    """The exported object: an IFAN network, its request ``limits`` and the two serving functions.

    The inputs are declared with unknown rank on purpose: TF Serving feeds whatever tensor a
    client sends, whatever the signature says, so the graph itself checks rank and sizes
    (``ifan_tf.serving.limits``) instead of trusting a static shape that graph optimisations would
    rely on (a rank-3 ``image`` used to reach oneDNN's convolution and abort the process).
    """

    def __init__(self, network, limits=None):
        super().__init__(name="ifan_serving")
        check_single_image(network.config)
        self.network = network
        self.limits = limits or ServingLimits()
        self.deblur = tf.function(self._deblur, input_signature=[tf.TensorSpec(None, tf.float32, name=IMAGE_INPUT)])
        self.deblur_encoded = tf.function(
            self._deblur_encoded, input_signature=[tf.TensorSpec(None, tf.string, name=BYTES_INPUT)])

    def _deblur(self, image):
        images = serving_limits.checked_image_batch(image, self.limits)
        return {IMAGE_OUTPUT: deblur_batch_bounded(self.network, images, self.limits.tile, self.limits.tile_overlap)}

    def _deblur_one_encoded(self, data):
        decoded = encoded_images.decode(data)
        deblurred = tiled_deblur(network_tile_runner(self.network), decoded.rgb, self.limits.tile,
                                 self.limits.tile_overlap)
        return encoded_images.encode_like(deblurred, decoded)

    def _deblur_encoded(self, image_bytes):
        image_bytes = serving_limits.checked_bytes_batch(image_bytes, self.limits)
        # Every header of the batch is read and checked before any image is decoded.
        sizes = tf.map_fn(encoded_images.declared_size, image_bytes, fn_output_signature=tf.TensorSpec([2], tf.int64))
        with tf.control_dependencies([serving_limits.check_declared_sizes(sizes, self.limits)]):
            image_bytes = tf.identity(image_bytes)
        # One image at a time: images may differ in size, and memory stays that of one image (tiled).
        png = tf.map_fn(self._deblur_one_encoded, image_bytes, fn_output_signature=tf.TensorSpec([], tf.string),
                        parallel_iterations=1)
        return {BYTES_OUTPUT: png}

    def signatures(self):
        return {DEFAULT_SIGNATURE: self.deblur, ENCODED_SIGNATURE: self.deblur_encoded}


def export_network(network, export_dir, version=None, overwrite=False, info=None, limits=None,
                   warmup_requests=True):
    """Exports a built IFAN network as ``export_dir/<version>``; returns that path.

    Args:
      network: a single-image ``IFAN`` model (its dtype policy sets the compute precision).
      export_dir: TF Serving base path (created if missing).
      version: positive integer; None = next free version (safe with concurrent exports).
      overwrite: replace an existing ``export_dir/<version>`` (atomically).
      info: extra JSON-serialisable facts stored in ``assets.extra/ifan_tf.json``.
      limits: ``ServingLimits`` of the request checks and tiling (None = defaults).
      warmup_requests: also write ``assets.extra/tf_serving_warmup_requests`` (``warmup``; needs
        the tensorflow-serving-api package).
    """
    export_dir = os.path.abspath(os.fspath(export_dir))
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ValueError(f"export version must be a positive integer, got {version!r}")
    limits = limits or ServingLimits()
    if warmup_requests:
        warmup.require_serving_protos()  # before any work
    if version is not None and os.path.exists(os.path.join(export_dir, str(version))) and not overwrite:
        raise FileExistsError(f"{os.path.join(export_dir, str(version))}: version {version} already exists "
                              "(pass --overwrite to replace it, or omit --export_version to use the next free one)")
    module = ServingModule(network, limits)
    with reserve_version(export_dir, version) as reservation:
        target, version = reservation.target, reservation.version
        if os.path.exists(target) and not overwrite:
            raise FileExistsError(f"{target}: version {version} already exists (pass --overwrite to replace it)")
        staging = reservation.make_staging_directory()
        try:
            tf.saved_model.save(module, staging, signatures=module.signatures())
            details = {"format": "ifan_tf.saved_model", "version": version,
                       "compute_dtype": network.dtype_policy.compute_dtype,
                       "model": network.config.to_dict(), "limits": limits.to_dict(), "signatures": {
                           DEFAULT_SIGNATURE: {"inputs": {IMAGE_INPUT: "float32 [B,H,W,3] in [0,1]"},
                                               "outputs": {IMAGE_OUTPUT: "float32 [B,H,W,3] in [0,1]"}},
                           ENCODED_SIGNATURE: {"inputs": {BYTES_INPUT: "string [B] PNG/JPEG/BMP bytes"},
                                               "outputs": {BYTES_OUTPUT: "string [B] PNG bytes"}}}}
            if warmup_requests:
                written = warmup.write_warmup_requests(staging, limits, WARMUP_SIGNATURES)
                details["warmup_requests"] = [request.to_dict() for request in written]
            details.update(info or {})
            os.makedirs(os.path.join(staging, "assets.extra"), exist_ok=True)
            atomic_write_bytes(os.path.join(staging, EXPORT_INFO_FILE),
                               json.dumps(details, indent=2, sort_keys=True).encode())
            reservation.publish(staging, overwrite)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    logging.info("exported SavedModel version %d to %s", version, target)
    return target


def export_model_dir(model_dir, export_dir, version=None, precision="float32", overwrite=False, limits=None,
                     warmup_requests=True):
    """Loads a model directory and exports it (``main.py --mode=export``); returns the version path."""
    limits = limits or ServingLimits()  # checked before the model is loaded
    if warmup_requests:
        warmup.require_serving_protos()
    network = load_network(model_dir, precision)
    return export_network(network, export_dir, version, overwrite, limits=limits,
                          info={"model_dir": os.path.abspath(model_dir), "precision": precision},
                          warmup_requests=warmup_requests)
