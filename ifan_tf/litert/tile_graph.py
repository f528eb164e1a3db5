"""The IFAN network as a fixed-size tile graph that LiteRT runs with builtin ops only.

``tile_function(network, tile)`` traces ``[1, tile, tile, 3] float32 in [0, 1] -> same`` from the
network's own layers, with two changes to how the IAC is expressed (same numbers, float32
round-off only):

- Per-iteration filters: the Keras inference path (``IFAN._streamed_iac``) slices the columns of
  F's last 1x1 conv inside ``tf.control_dependencies`` (to keep TensorFlow's peak memory low); the
  dependencies stop the converter from folding the slices, which leaves ``STRIDED_SLICE`` +
  ``FULLY_CONNECTED`` with run-time weights (slow, and not delegated by XNNPACK). Here each
  iteration's ``2k + 1`` column groups (kernel1 taps, kernel2 taps, bias) are gathered once, in
  NumPy, into one constant 1x1 conv ``[1, 1, c_hidden, (2k + 1) c]`` whose output is sliced into
  ``[1, h, w, c]`` tensors. LiteRT plans memory statically, so the ordering is not needed.
- Edge-replicating padding of the filter passes: ``tf.pad(mode="SYMMETRIC")`` becomes
  ``MIRROR_PAD``, which XNNPACK does not take (the graph would be cut into 2N + 1 partitions); here
  it is a concatenation of edge slices, which XNNPACK runs.

``tests/litert`` compares the converted model with the Keras model on a tile.
"""

import numpy as np
import tensorflow as tf

from ifan_tf.inference.predictor import check_single_image
from ifan_tf.model.blocks import LEAKY_SLOPE
from ifan_tf.model.ifan import SIZE_MULTIPLE

MAX_TILE = 2048  # full-resolution activations of one [1, 2048, 2048, 32] tensor are already 0.5 GB


def check_tile_size(tile):
    """Raises ValueError unless ``tile`` is a multiple of 8 in [16, MAX_TILE]."""
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 2 * SIZE_MULTIPLE \
            or tile % SIZE_MULTIPLE or tile > MAX_TILE:
        raise ValueError(f"LiteRT tile size must be a multiple of {SIZE_MULTIPLE} between {2 * SIZE_MULTIPLE} and "
                         f"{MAX_TILE}, got {tile!r}")


def _iteration_kernels(network):
    """Per IAC iteration, the constant 1x1 conv ``(kernel [1, 1, c_hidden, (2k+1) c], bias [(2k+1) c])``.

    Output channel group ``g`` (``c`` channels each) is kernel1 tap ``g`` for ``g < k``, kernel2 tap
    ``g - k`` for ``k <= g < 2k`` and the per-pixel bias for ``g = 2k`` (see ``ifan_tf.model.iac``
    for the filter-map layout: inside a kernel the channel index is ``channel * k + tap``).
    """
    conv = network.filter_predictor.output_conv
    kernel = np.asarray(conv.kernel.numpy(), np.float32)[0, 0]  # [c_hidden, D]
    bias = np.asarray(conv.bias.numpy(), np.float32)
    iac = network.iac
    c, k = iac.channels, iac.filter_size
    kernels = []
    for i in range(network.config.num_iterations):
        (k1_start, _), (k2_start, _), (bias_start, bias_stop) = iac.iteration_channels(i)
        if network.config.iac_mode == "checkpoint":  # the released weights use kernel1 in both passes
            k2_start = k1_start
        columns = [np.arange(start + t, start + c * k, k) for start in (k1_start, k2_start) for t in range(k)]
        columns = np.concatenate(columns + [np.arange(bias_start, bias_stop)])
        kernels.append((kernel[:, columns][None, None], bias[columns]))
    return kernels


def _replicate_pad(x, axis, pad):
    """``x`` ``[1, h, w, c]`` with ``pad`` copies of its first/last slice along ``axis`` (static shapes)."""
    if pad == 0:
        return x
    size = x.shape[axis]
    first = _slice(x, axis, 0, 1)
    last = _slice(x, axis, size - 1, size)
    return tf.concat([first] * pad + [x] + [last] * pad, axis=axis)


def _slice(x, axis, start, stop):
    index = [slice(None)] * 4
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def _filter_pass(x, taps, axis):
    """One 1-D spatially varying pass: ``out = sum_t shift_t(pad(x)) * taps[t]`` (``ifan_tf.model.iac``)."""
    pad = (len(taps) - 1) // 2
    size = x.shape[axis]
    padded = _replicate_pad(x, axis, pad)
    out = None
    for t, tap in enumerate(taps):
        term = _slice(padded, axis, t, t + size) * tap
        out = term if out is None else out + term
    return out


def _iac(network, features, hidden, kernels):
    """The IAC on ``features`` ``[1, h, w, c]`` with filters from F's hidden features ``[1, h, w, c_hidden]``."""
    iac = network.iac
    c, k = iac.channels, iac.filter_size
    x = features
    for i, (kernel, bias) in enumerate(kernels):
        filters = tf.nn.bias_add(tf.nn.conv2d(hidden, kernel, strides=1, padding="VALID"), bias)
        # Channel slices, not tf.split: XNNPACK's SPLIT takes at most 4 outputs (2k + 1 = 7 would break the graph).
        groups = [filters[..., g * c:(g + 1) * c] for g in range(2 * k + 1)]
        x = _filter_pass(_filter_pass(x, groups[:k], axis=1), groups[k:2 * k], axis=2) + groups[2 * k]
        if i < len(kernels) - 1 or iac.act_last:
            x = tf.nn.leaky_relu(x, alpha=LEAKY_SLOPE)
    return x


def deblur_tile(network, image, kernels=None):
    """``image`` ``[1, t, t, 3]`` float32 in [0, 1] (t a multiple of 8) -> deblurred, same shape, in [0, 1].

    ``kernels`` are ``_iteration_kernels(network)`` (computed when None; must be NumPy constants,
    so call it eagerly before tracing).
    """
    if not network.config.use_iac:  # the Table 1 baseline has no IAC to re-express
        return tf.cast(network(image, training=False), tf.float32)
    if kernels is None:
        kernels = _iteration_kernels(network)
    e_f, _ = network.filter_encoder(image)
    hidden = network.filter_predictor.hidden(e_f, network.disparity_estimator(e_f))
    e_b, pyramid = network.feature_extractor(image)
    features = _iac(network, e_b, hidden, kernels)
    residual = network.reconstructor(features, pyramid)
    return tf.clip_by_value(tf.cast(residual, tf.float32) + image, 0.0, 1.0)


def tile_function(network, tile, input_name="image"):
    """Concrete function ``[1, tile, tile, 3] float32 -> [1, tile, tile, 3] float32`` for the converter.

    Args:
      network: a built single-image float32 ``IFAN``.
      tile: tile size, a multiple of 8 in [16, ``MAX_TILE``].
      input_name: name of the input tensor.
    """
    check_single_image(network.config)
    check_tile_size(tile)
    if network.dtype_policy.compute_dtype != "float32":
        raise ValueError(f"LiteRT export needs a float32 network (quantization is a converter option), got "
                         f"{network.dtype_policy.compute_dtype}")
    kernels = _iteration_kernels(network) if network.config.use_iac else None
    function = tf.function(lambda image: deblur_tile(network, image, kernels),
                           input_signature=[tf.TensorSpec([1, tile, tile, 3], tf.float32, name=input_name)])
    return function.get_concrete_function()
