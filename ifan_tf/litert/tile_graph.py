"""The IFAN network as a fixed-size tile graph that LiteRT runs with builtin ops only.

``tile_function(network, tile)`` traces ``[1, tile, tile, 3] float32 in [0, 1] -> same`` from the
network's own layers, with two changes to how the IAC is expressed (same numbers, float32
round-off only):

- Per-iteration filters: the Keras inference path (``IterativeAdaptiveConvolution.call_factored``
  with ``streamed=True``) gathers the columns of F's last 1x1 conv inside
  ``tf.control_dependencies`` (to keep TensorFlow's peak memory low); the dependencies stop the
  converter from folding them, which leaves gathers + ``FULLY_CONNECTED`` with run-time weights
  (slow, and not delegated by XNNPACK). Here each iteration's ``P`` column groups (the IAC's
  ``iteration_pieces``: kernel1 taps, kernel2 taps, bias) are gathered once, in NumPy, into one
  constant 1x1 conv ``[1, 1, c_hidden, P c]`` whose output is sliced into ``[1, h, w, c]``
  tensors. LiteRT plans memory statically, so the ordering is not needed.
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
    """Per IAC iteration, the constant 1x1 conv ``(kernel [1, 1, c_hidden, P c], bias [P c])``.

    Output channel group ``j`` (``c`` channels each) is piece ``j`` of the iteration as the IAC
    layer defines it (``IterativeAdaptiveConvolution.iteration_pieces``: the kernel1 taps, the
    kernel2 taps in separable mode, then the bias), so the filter-map layout has one owner.
    F's final 1x1 conv comes from the filter predictor's public factored form.
    """
    iac = network.iac
    probe = tf.zeros([1, 2 * SIZE_MULTIPLE, 2 * SIZE_MULTIPLE, 3], tf.float32)
    e_f, _ = network.filter_encoder(probe)
    hidden = network.filter_predictor.hidden(e_f, network.disparity_estimator(e_f))
    filter_map = network.filter_predictor.filter_map(hidden)
    kernel = np.asarray(filter_map.kernel.numpy(), np.float32)  # [c_hidden, D]
    bias = np.asarray(filter_map.bias.numpy(), np.float32)
    pieces, count = iac.iteration_pieces(), iac.pieces_per_iteration
    kernels = []
    for i in range(network.config.num_iterations):
        columns = pieces[i * count:(i + 1) * count].reshape(-1)
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
    c, k, count = iac.channels, iac.filter_size, iac.pieces_per_iteration
    x = features
    for i, (kernel, bias) in enumerate(kernels):
        filters = tf.nn.bias_add(tf.nn.conv2d(hidden, kernel, strides=1, padding="VALID"), bias)
        # Channel slices, not tf.split: XNNPACK's SPLIT takes at most 4 outputs (P = 2k + 1 = 7 would break the graph).
        pieces = [filters[..., j * c:(j + 1) * c] for j in range(count)]
        taps1, taps2 = pieces[:k], pieces[k:-1] or pieces[:k]  # checkpoint mode: kernel1 in both passes
        x = _filter_pass(_filter_pass(x, taps1, axis=1), taps2, axis=2) + pieces[-1]
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
