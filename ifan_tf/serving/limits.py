"""Request limits of the exported SavedModel and the in-graph checks that enforce them.

A served model receives tensors from other people's code. Every check here is TensorFlow ops
that run before any heavy op (decoding, the network) and fails the request with
``INVALID_ARGUMENT``; the server goes on serving everyone else with bounded memory:

- ``image`` (``serving_default``): rank 4, 3 channels, 1 <= batch <= ``max_batch``, height and
  width >= 1, ``height * width <= max_pixels``; NaN becomes 0 and values are clipped to [0, 1]
  (so +-inf become 1 / 0), so the output is always finite and in [0, 1].
- ``image_bytes`` (``deblur_encoded``): rank 1, 1 <= batch <= ``max_batch``; each image's size
  declared in its header (``encoded_images.declared_size``) is at least 1x1 and at most
  ``max_pixels``, checked for the whole batch before any image is decoded.

``tile`` and ``tile_overlap`` bound the network's memory (``ifan_tf.inference.bounded``).
The limits are fixed at export (``main.py --mode=export --max_pixels --max_batch --tile
--tile_overlap``) and recorded in ``assets.extra/ifan_tf.json``.
"""

import dataclasses

import tensorflow as tf

from ifan_tf.inference.tiling import check_tile_arguments

DEFAULT_MAX_PIXELS = 40_000_000  # a 40 MP photo (e.g. 7744 x 5165); 6000 x 4000 = 24 MP
DEFAULT_MAX_BATCH = 16
DEFAULT_TILE = 1024
DEFAULT_TILE_OVERLAP = 32


@dataclasses.dataclass(frozen=True)
class ServingLimits:
    """Limits of one export; see the module docstring."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_batch: int = DEFAULT_MAX_BATCH
    tile: int = DEFAULT_TILE
    tile_overlap: int = DEFAULT_TILE_OVERLAP

    def __post_init__(self):
        for name in ("max_pixels", "max_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_tile_arguments(self.tile, self.tile_overlap)

    def to_dict(self):
        return dataclasses.asdict(self)


def _assert(condition, message, *values):
    return tf.debugging.Assert(condition, [message, *values], summarize=8)


def checked_image_batch(images, limits):
    """``images`` (float32, any rank) -> ``[B, H, W, 3]`` float32 finite in [0, 1], after the checks."""
    images = tf.convert_to_tensor(images, tf.float32)
    shape = tf.shape(images, out_type=tf.int64)
    rank_ok = _assert(tf.equal(tf.size(shape), 4), "image must be a float32 [batch, height, width, 3] tensor; "
                      "got shape", shape)
    with tf.control_dependencies([rank_ok]):
        shape = tf.identity(shape)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    checks = [
        _assert(tf.equal(channels, 3), "image must have 3 (RGB) channels; got shape", shape),
        _assert(tf.logical_and(batch >= 1, batch <= limits.max_batch),
                f"image batch size must be between 1 and max_batch={limits.max_batch}; got shape", shape),
        _assert(tf.logical_and(height >= 1, width >= 1), "image height and width must be >= 1; got shape", shape),
        _assert(height * width <= limits.max_pixels,
                f"image is too large: height * width must be at most max_pixels={limits.max_pixels}; got shape",
                shape),
    ]
    with tf.control_dependencies(checks):
        images = tf.identity(images)
    images = tf.ensure_shape(images, [None, None, None, 3])
    return finite_unit_range(images)


def finite_unit_range(images):
    """NaN -> 0, then clipped to [0, 1] (+inf -> 1, -inf -> 0): any float tensor -> finite in [0, 1]."""
    images = tf.where(tf.math.is_nan(images), tf.zeros_like(images), images)
    return tf.clip_by_value(images, 0.0, 1.0)


def checked_bytes_batch(image_bytes, limits):
    """``image_bytes`` (string, any rank) -> ``[B]`` string after the rank and batch checks."""
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    shape = tf.shape(image_bytes, out_type=tf.int64)
    batch = tf.reduce_prod(shape)
    checks = [_assert(tf.logical_and(tf.equal(tf.size(shape), 1), tf.logical_and(batch >= 1, batch <= limits.max_batch)),
                      f"image_bytes must be a string vector [batch] with 1 <= batch <= max_batch={limits.max_batch}; "
                      "got shape", shape)]
    with tf.control_dependencies(checks):
        image_bytes = tf.identity(image_bytes)
    return tf.ensure_shape(image_bytes, [None])


def check_declared_sizes(sizes, limits):
    """Assert op: every row ``(height, width)`` of ``sizes`` int64 ``[B, 2]`` is >= 1 and within ``max_pixels``."""
    pixels = sizes[:, 0] * sizes[:, 1]
    return _assert(tf.reduce_all(tf.logical_and(tf.reduce_all(sizes >= 1, axis=1), pixels <= limits.max_pixels)),
                   f"image_bytes: an image is empty or too large (height * width must be between 1 and "
                   f"max_pixels={limits.max_pixels}); declared [height, width] of the batch:", sizes)
