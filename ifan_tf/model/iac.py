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
tensors (no ``tf.image.extract_patches``), so its memory is a few feature maps. It never slices
the filter map with a channel stride either: each iteration reads its filters as ``pieces`` of
``c`` channels (``iteration_pieces``), either from a dense filter map (one gather for all
iterations) or from a ``LinearFilterMap`` (one small matmul per piece, the filter map is never
materialised; see ``ifan_tf/model/filter_map.py``).
"""

import keras
import numpy as np
import tensorflow as tf

from ifan_tf.model.blocks import leaky_relu
from ifan_tf.model.filter_map import LinearFilterMap

IAC_MODES = ("separable", "checkpoint")


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


def _shifted(x, x_padded, axis, tap, pad):
    """``x_padded[tap : tap + size]`` along ``axis`` (1 = rows, 2 = cols): ``x`` shifted by ``tap - pad``.

    ``x_padded`` is ``x`` padded by ``pad`` on both sides of ``axis``. The centre tap is ``x`` itself
    (no copy); the others are one ``Slice`` each, whose gradient is one ``Pad`` (a strided slice's
    gradient is the much slower ``StridedSliceGrad``). Works for unknown H, W.
    """
    if tap == pad:
        return x
    begin = [0, 0, 0, 0]
    begin[axis] = tap
    return tf.slice(x_padded, begin, tf.shape(x))


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

    def build(self, features_shape, filters_shape=None):
        """No weights: the filters are an input."""
        if filters_shape is not None:
            self._check_depth(filters_shape[-1])

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

    @property
    def pieces_per_iteration(self):
        """``P``: ``k`` kernel1 taps, ``k`` kernel2 taps (separable mode only) and the bias."""
        return (self.filter_size if self.mode == "checkpoint" else 2 * self.filter_size) + 1

    def iteration_pieces(self):
        """Filter-map channels each iteration reads, as ``[N * P, c]`` int32 (row ``i * P + j``).

        Piece ``j < k`` of iteration ``i`` is tap ``j`` of kernel1 (channels ``s1 + j, s1 + j + k, ...``),
        then (separable mode) the ``k`` taps of kernel2, then the bias. ``"checkpoint"`` mode reads
        no kernel2 channels (they get no gradient).
        """
        k, c = self.filter_size, self.channels
        rows = []
        for i in range(self.num_iterations):
            (k1_start, _), (k2_start, _), (bias_start, bias_stop) = self.iteration_channels(i)
            kernels = (k1_start,) if self.mode == "checkpoint" else (k1_start, k2_start)
            for start in kernels:
                rows += [np.arange(start + tap, start + c * k, k) for tap in range(k)]
            rows.append(np.arange(bias_start, bias_stop))
        return np.stack(rows).astype(np.int32)

    def _filter_pass(self, x, kernel_taps, axis, bias=None):
        """One 1-D pass: ``out[y,x,ch] = sum_t xpad[.. + t ..][ch] * kernel_taps[t][y,x,ch] (+ bias)``.

        The terms (and ``bias``) are summed left to right by one ``AddN`` (one op instead of
        ``k - 1`` adds; its gradient is a pass-through).
        """
        pad = (self.filter_size - 1) // 2
        x_padded = _replicate_pad(x, axis, pad)
        terms = [_shifted(x, x_padded, axis, tap, pad) * kernel_tap for tap, kernel_tap in enumerate(kernel_taps)]
        if bias is not None:
            terms.append(bias)
        return terms[0] if len(terms) == 1 else tf.add_n(terms)

    def apply_iteration_taps(self, x, kernel1_taps, kernel2_taps, bias, is_last):
        """One IAC iteration on ``x`` [B, H, W, c] with kernels given as ``k`` taps ``[B, H, W, c]`` each.

        ``bias`` is ``[B, H, W, c]``; ``kernel2_taps`` is ignored in ``"checkpoint"`` mode.
        """
        vertical = self._filter_pass(x, kernel1_taps, axis=1)
        horizontal_taps = kernel1_taps if self.mode == "checkpoint" else kernel2_taps
        x = self._filter_pass(vertical, horizontal_taps, axis=2, bias=bias)
        if not is_last or self.act_last:
            x = leaky_relu(x)
        return x

    def iterate(self, features, piece, loop_dtype, streamed=False):
        """The ``N`` iterations, reading filters through ``piece``.

        Args:
          features: ``[B, H, W, c]`` features ``x_0``.
          piece: ``index -> [B, H, W, c]``, the filter-map channels ``iteration_pieces()[index]``.
          loop_dtype: dtype of the filtering arithmetic (the pieces are cast to it).
          streamed: compute iteration ``i``'s pieces only after iteration ``i - 1`` is done (graph
            mode would otherwise compute every piece, the whole filter map, up front): ~N x less
            memory for inference; training keeps them all for the backward pass anyway.
        Returns:
          ``[B, H, W, c]`` in ``loop_dtype``.
        """
        x = tf.cast(features, loop_dtype)
        k, count = self.filter_size, self.pieces_per_iteration
        for i in range(self.num_iterations):
            with tf.control_dependencies([x] if streamed and i else []):
                pieces = [tf.cast(piece(i * count + j), loop_dtype) for j in range(count)]
            taps1, taps2 = pieces[:k], pieces[k:-1]
            x = self.apply_iteration_taps(x, taps1, taps2 or taps1, pieces[-1], i == self.num_iterations - 1)
        return x

    def call_factored(self, features, filter_map, streamed=False):
        """The IAC on a ``LinearFilterMap`` (F never materialised; see ``iterate``).

        Matmuls run in the filter map's dtype; under mixed precision the filtering itself runs in
        float32 (as fast on CPU, where bf16 elementwise ops are not faster, and more accurate).
        Returns ``[B, H, W, c]`` in the compute dtype, or float32 under mixed precision.
        """
        if not isinstance(filter_map, LinearFilterMap):
            raise TypeError(f"call_factored needs a LinearFilterMap, got {type(filter_map).__name__}")
        self._check_depth(filter_map.depth)
        dtype = self.compute_dtype
        loop_dtype = tf.float32 if dtype in ("bfloat16", "float16") else dtype
        return self.iterate(features, filter_map.channel_groups(self.iteration_pieces()), loop_dtype, streamed)

    def _check_depth(self, depth):
        if depth is not None and depth != self.depth:
            raise ValueError(
                f"IAC expects a filter map of depth {self.depth} (N={self.num_iterations}, "
                f"c={self.channels}, k={self.filter_size}), got {depth}"
            )

    def call(self, features, filters):
        filters = tf.cast(filters, self.compute_dtype)
        self._check_depth(filters.shape[-1])
        pieces = self.iteration_pieces()
        # One gather for every iteration's channels (its gradient one segment sum), then free views.
        gathered = tf.gather(filters, pieces.reshape(-1), axis=-1)
        gathered = tf.reshape(gathered, tf.concat([tf.shape(filters)[:3], pieces.shape], axis=0))
        unstacked = tf.unstack(gathered, num=pieces.shape[0], axis=3)
        return self.iterate(features, lambda index: unstacked[index], self.compute_dtype)

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
