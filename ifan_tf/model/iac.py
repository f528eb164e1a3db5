"""Iterative adaptive convolution (IAC), the core of IFAN (paper Sec. 3.2, Eq. 2).

Each iteration applies a spatially varying separable filter to every channel: a vertical pass
with ``kernel1`` then a horizontal pass with ``kernel2``, then adds a per-pixel bias and a
LeakyReLU. The filters come from the filter map predicted by the filter predictor ``F``.

Filter map channel layout (per pixel, depth ``D = N * 2ck + N * c``):
- the first ``N * 2ck`` channels are ``N`` groups of ``2ck``; in group ``i`` the first ``ck``
  channels are ``kernel1_i`` and the next ``ck`` are ``kernel2_i``; inside a kernel the channel
  index is ``channel * k + tap``;
- the last ``N * c`` channels are the ``N`` bias vectors, ``c`` each, in order.

Mode ``"checkpoint"`` reproduces the released checkpoints' quirk: the horizontal pass reuses
``kernel1_i`` (``kernel2_i`` is predicted but never used). Mode ``"separable"`` is the layer the
paper intends and the default for new training.

The layer uses shifted slices and per-tap multiply-adds only: it never materialises patch
tensors (no ``tf.image.extract_patches``), so its memory is a few feature maps.
"""

import keras
import tensorflow as tf

IAC_MODES = ("separable", "checkpoint")
LEAKY_SLOPE = 0.1


def filter_map_depth(num_iterations, channels, filter_size):
    """Depth ``D = N * (c * k * 2) + N * c`` of the filter map for ``N`` iterations."""
    return num_iterations * channels * (2 * filter_size + 1)


def _replicate_pad(x, axis, pad):
    """Pads ``x`` [B, H, W, C] by ``pad`` copies of its first/last slice along ``axis``."""
    if pad == 0:
        return x
    if pad == 1:  # one symmetric pad is an edge copy, in a single op (faster than concat)
        paddings = [[0, 0]] * 4
        paddings[axis] = [1, 1]
        return tf.pad(x, paddings, mode="SYMMETRIC")
    first = [slice(None)] * 4
    first[axis] = slice(0, 1)
    last = [slice(None)] * 4
    last[axis] = slice(-1, None)
    return tf.concat([x[tuple(first)]] * pad + [x] + [x[tuple(last)]] * pad, axis=axis)


def _shifted(x_padded, axis, tap, pad):
    """Slice ``tap`` of a tensor padded by ``pad`` on both sides of ``axis`` (1 = rows, 2 = cols).

    Equals ``x_padded[tap : tap + size]`` along ``axis`` with static bounds, so unknown H, W work.
    """
    stop = tap - 2 * pad
    index = [slice(None)] * 4
    index[axis] = slice(tap, stop if stop < 0 else None)
    return x_padded[tuple(index)]


@keras.saving.register_keras_serializable(package="ifan_tf")
class IterativeAdaptiveConvolution(keras.layers.Layer):
    """IAC: ``N`` iterations of spatially varying separable filtering (paper Eq. 2).

    Args:
      num_iterations: ``N``, the number of IAC iterations (17 in the paper's final model).
      channels: ``c``, channels of the filtered features (128 in IFAN, 3 in the RBN).
      filter_size: ``k``, odd size of each 1-D filter (3 in the paper).
      mode: ``"separable"`` (kernel1 then kernel2, default) or ``"checkpoint"`` (kernel1 in
        both passes, as the released checkpoints were trained).
      act_last: whether the last iteration is followed by LeakyReLU(0.1) too.

    Call args:
      features: ``[B, H, W, c]`` features ``x_0``, any float dtype.
      filters: ``[B, H, W, D]`` filter map, ``D = filter_map_depth(N, c, k)``.

    Returns:
      ``[B, H, W, c]`` features ``x_N`` in the layer's compute dtype.
    """

    def __init__(self, num_iterations, channels, filter_size=3, mode="separable", act_last=True, **kwargs):
        super().__init__(**kwargs)
        if mode not in IAC_MODES:
            raise ValueError(f"IAC mode must be one of {IAC_MODES}, got {mode!r}")
        if filter_size < 1 or filter_size % 2 == 0:
            raise ValueError(f"IAC filter_size must be a positive odd number, got {filter_size}")
        if num_iterations < 1 or channels < 1:
            raise ValueError(f"IAC needs num_iterations >= 1 and channels >= 1, got {num_iterations}, {channels}")
        self.num_iterations = int(num_iterations)
        self.channels = int(channels)
        self.filter_size = int(filter_size)
        self.mode = mode
        self.act_last = bool(act_last)

    @property
    def depth(self):
        """``D``, the filter map depth this layer consumes."""
        return filter_map_depth(self.num_iterations, self.channels, self.filter_size)

    def iteration_channels(self, iteration):
        """Filter-map channel ranges ``(kernel1, kernel2, bias)`` of iteration ``i`` as (start, stop)."""
        ck = self.channels * self.filter_size
        base = iteration * 2 * ck
        bias_start = self.num_iterations * 2 * ck + iteration * self.channels
        return (base, base + ck), (base + ck, base + 2 * ck), (bias_start, bias_start + self.channels)

    def _filter_pass(self, x, kernel_taps, axis):
        """One 1-D pass: ``out[y,x,ch] = sum_t xpad[.. + t ..][ch] * kernel_taps[t][y,x,ch]``."""
        pad = (self.filter_size - 1) // 2
        x_padded = _replicate_pad(x, axis, pad)
        out = None
        for tap, kernel_tap in enumerate(kernel_taps):
            term = _shifted(x_padded, axis, tap, pad) * kernel_tap
            out = term if out is None else out + term
        return out

    def kernel_taps(self, kernel):
        """Splits a kernel ``[B, H, W, ck]`` (index ``channel*k + tap``) into ``k`` taps ``[B, H, W, c]``."""
        k = self.filter_size
        return [kernel[..., tap::k] for tap in range(k)]

    def apply_iteration(self, x, kernel1, kernel2, bias, is_last):
        """One IAC iteration on ``x`` [B, H, W, c] with kernels [B, H, W, ck] and bias [B, H, W, c].

        ``kernel2`` is ignored in ``"checkpoint"`` mode (``kernel1`` is used in both passes).
        """
        taps1 = self.kernel_taps(kernel1)
        taps2 = taps1 if self.mode == "checkpoint" else self.kernel_taps(kernel2)
        return self.apply_iteration_taps(x, taps1, taps2, bias, is_last)

    def apply_iteration_taps(self, x, kernel1_taps, kernel2_taps, bias, is_last):
        """``apply_iteration`` with kernels given as ``k`` per-tap tensors ``[B, H, W, c]`` each.

        Inference computes the taps directly (one small matmul each), which avoids the strided
        channel slices ``kernel[..., tap::k]``, the IAC's most expensive op on CPU.
        ``kernel2_taps`` is ignored in ``"checkpoint"`` mode.
        """
        vertical = self._filter_pass(x, kernel1_taps, axis=1)
        horizontal_taps = kernel1_taps if self.mode == "checkpoint" else kernel2_taps
        x = self._filter_pass(vertical, horizontal_taps, axis=2) + bias
        if not is_last or self.act_last:
            x = tf.nn.leaky_relu(x, alpha=LEAKY_SLOPE)
        return x

    def call(self, features, filters):
        x = tf.cast(features, self.compute_dtype)
        filters = tf.cast(filters, self.compute_dtype)
        if filters.shape[-1] is not None and filters.shape[-1] != self.depth:
            raise ValueError(
                f"IAC expects a filter map of depth {self.depth} (N={self.num_iterations}, "
                f"c={self.channels}, k={self.filter_size}), got {filters.shape[-1]}"
            )
        for i in range(self.num_iterations):
            (k1a, k1b), (k2a, k2b), (ba, bb) = self.iteration_channels(i)
            x = self.apply_iteration(
                x, filters[..., k1a:k1b], filters[..., k2a:k2b], filters[..., ba:bb], i == self.num_iterations - 1
            )
        return x

    def compute_output_shape(self, features_shape, filters_shape):
        return features_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_iterations=self.num_iterations,
            channels=self.channels,
            filter_size=self.filter_size,
            mode=self.mode,
            act_last=self.act_last,
        )
        return config
