"""TF Serving warm-up requests of an export: ``<version>/assets.extra/tf_serving_warmup_requests``.

TF Serving replays this file (a TFRecord of ``tensorflow.serving.PredictionLog`` records, at
most 1000) when it loads a version, before it marks the version AVAILABLE, so the first client
request does not pay the one-time costs of the graph: function instantiation and Grappler
optimisation of each signature, oneDNN primitive creation, the allocator growing to the largest
network call. A record that fails fails the load, so every request here stays within the
export's ``ServingLimits`` (batch 1, at most ``max_pixels``). The server replays them with
``--enable_model_warmup`` (default true) and ``--num_request_iterations_for_warmup`` times each.

Records (``PredictLog`` of a ``PredictRequest``; ``model_spec`` carries only ``signature_name``,
the server warms the version it is loading whatever the model name):

1. ``serving_default``: ``image`` float32 ``[1, s, s, 3]`` with ``s = tile`` (the largest image
   the graph runs whole in one network call), or the largest square within ``max_pixels``.
   Every value is 0.5 and stored once (a ``TensorProto`` repeats its last value to fill its
   shape), so the record is ~60 bytes at any size; the content does not change the cost of
   the convolutions.
2. ``deblur_encoded``: ``image_bytes`` string ``[1]``: a JPEG (quality 90) of scikit-image's
   ``coffee`` photo resized to ``h x w`` (3:2, multiples of 8), the smallest such size whose area
   exceeds ``tile * tile`` pixels, so the graph runs it in tiles (decode, tile loop, blending,
   PNG encoding). When ``max_pixels`` does not allow such an image, the largest 3:2 image within
   ``max_pixels`` (run whole). With the default tile 1024 it is 1256 x 840 (~0.2 MB).

The cost at load is two network calls' worth of pixels per tile budget (about ``2.1 * tile**2``
pixels); ``export_network(..., warmup_requests=False)`` (``--nowarmup_requests``) leaves the file
out. Writing the file needs the ``tensorflow-serving-api`` package (``pip install
'ifan_tf[serving]'``).
"""

import dataclasses
import math
import os

from absl import logging

from ifan_tf.inference.padding import SIZE_MULTIPLE

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_RECORDS = 1000  # TF Serving refuses a warm-up file with more records
FLOAT_VALUE = 0.5
JPEG_QUALITY = 90
ASPECT = 1.5  # width / height of the encoded warm-up photo (skimage.data.coffee is 600 x 400)


@dataclasses.dataclass(frozen=True)
class WarmupRequest:
    """One warm-up request: ``signature`` name, ``input`` name and its ``shape`` ([B, H, W, 3] or [B]);
    ``image_size`` ``(height, width)`` of the image; ``size_bytes`` of the serialized record."""

    signature: str
    input: str
    shape: tuple
    image_size: tuple
    size_bytes: int

    def to_dict(self):
        return dataclasses.asdict(self)


def require_serving_protos():
    """The tensorflow_serving.apis modules ``(model_pb2, predict_pb2, prediction_log_pb2)``; ImportError saying
    what to install (or how to export without warm-up) when the package is missing."""
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError as error:
        raise ImportError("writing TF Serving warm-up requests needs the tensorflow-serving-api package "
                          "(pip install 'ifan_tf[serving]' or tensorflow-serving-api==2.21.*); pass "
                          "--nowarmup_requests (warmup_requests=False) to export without them") from error
    return model_pb2, predict_pb2, prediction_log_pb2


def float_image_side(limits):
    """Side ``s`` of the ``serving_default`` warm-up image: ``tile``, or the largest ``s*s <= max_pixels``."""
    return max(1, min(limits.tile, math.isqrt(limits.max_pixels)))


def encoded_image_size(limits):
    """``(height, width)`` of the ``deblur_encoded`` warm-up photo (see the module docstring)."""
    target = limits.tile * limits.tile + 1  # more pixels than one tile: the graph tiles it
    width = -(-math.ceil(math.sqrt(target * ASPECT)) // SIZE_MULTIPLE) * SIZE_MULTIPLE
    height = -(-math.ceil(target / width) // SIZE_MULTIPLE) * SIZE_MULTIPLE
    if height * width <= limits.max_pixels:
        return height, width
    # max_pixels <= tile * tile: no request can be tiled; the largest 3:2 image the export accepts.
    height = max(1, math.isqrt(limits.max_pixels * 2 // 3))
    width = max(1, min(round(height * ASPECT), limits.max_pixels // height))
    return height, width


def warmup_photo_jpeg(height, width):
    """JPEG bytes (quality 90) of ``skimage.data.coffee()`` resized to ``height x width`` RGB."""
    import cv2
    import skimage.data

    from ifan_tf.io import image_io

    photo = skimage.data.coffee()  # [400, 600, 3] uint8 RGB, bundled with scikit-image
    shrinking = height * width < photo.shape[0] * photo.shape[1]
    resized = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    return image_io.encode_image(resized, ".jpg", "warm-up photo", jpeg_quality=JPEG_QUALITY)


def build_warmup_logs(limits, signatures):
    """The warm-up records for an export with ``limits``.

    Args:
      limits: the export's ``ServingLimits``.
      signatures: ``{"float": (signature, input name), "encoded": (signature, input name)}``.
    Returns:
      A list of ``(PredictionLog, WarmupRequest)``.
    """
    import tensorflow as tf

    model_pb2, predict_pb2, prediction_log_pb2 = require_serving_protos()
    logs = []

    def add(signature, input_name, tensor_proto, image_size):
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=signature))
        request.inputs[input_name].CopyFrom(tensor_proto)
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        shape = tuple(dim.size for dim in tensor_proto.tensor_shape.dim)
        logs.append((log, WarmupRequest(signature, input_name, shape, image_size, log.ByteSize())))

    side = float_image_side(limits)
    signature, input_name = signatures["float"]
    add(signature, input_name, tf.make_tensor_proto(FLOAT_VALUE, tf.float32, shape=[1, side, side, 3]), (side, side))
    height, width = encoded_image_size(limits)
    signature, input_name = signatures["encoded"]
    add(signature, input_name, tf.make_tensor_proto([warmup_photo_jpeg(height, width)], tf.string, shape=[1]),
        (height, width))
    if len(logs) > MAX_RECORDS:  # a guard: TF Serving would refuse to load the version
        raise ValueError(f"{len(logs)} warm-up records, TF Serving accepts at most {MAX_RECORDS}")
    return logs


def write_warmup_requests(version_dir, limits, signatures):
    """Writes ``version_dir/assets.extra/tf_serving_warmup_requests``; returns the ``WarmupRequest`` list.

    ``version_dir`` is the export's staging folder (published atomically with the SavedModel), so
    the file is never seen half written; ``limits``/``signatures`` as in ``build_warmup_logs``.
    """
    import tensorflow as tf

    logs = build_warmup_logs(limits, signatures)
    path = os.path.join(version_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for log, _ in logs:
            writer.write(log.SerializeToString())
    requests = [request for _, request in logs]
    logging.info("wrote %d TF Serving warm-up requests (%s) to %s", len(requests),
                 ", ".join(f"{r.signature} {r.image_size[0]}x{r.image_size[1]}" for r in requests), path)
    return requests
