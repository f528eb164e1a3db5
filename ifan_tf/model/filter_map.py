"""The IAC filter map kept factored as ``F = hidden @ kernel + bias`` (F's final 1x1 conv, not applied).

The filter predictor's last layer is a linear 1x1 convolution from ``m`` hidden channels to the
``D`` channels of the filter map (15,232 for N = 17). Materialising F costs ``D`` floats per pixel
(~500 MB for a batch of eight 256x256 crops) and slicing it per IAC tap is a strided channel copy
whose gradient is a full-size scatter. ``LinearFilterMap`` instead computes only what a consumer
asks for:

- ``channel_groups(groups)``: groups of channels of F (e.g. the taps and bias of one IAC
  iteration), each by one small matmul over the matching kernel columns;
- ``convolve(kernel)``: a zero-padded ``SAME`` convolution of F (the RBN's first conv) computed
  as a convolution of ``hidden`` with ``kernel`` folded into F's projection, plus the
  convolved bias (which depends on the position near the border, where the padding is zero);
- ``dense()``: F itself, for callers that need it.

All three give F's numbers up to float32 summation order.
"""

import numpy as np
import tensorflow as tf


class LinearFilterMap(tf.experimental.ExtensionType):
    """``F[b, y, x, :] = hidden[b, y, x, :] @ kernel + bias`` without computing it.

    An extension type, so it can cross ``tf.function`` boundaries like a tensor. Build it with
    ``LinearFilterMap.of(hidden, kernel, bias)``, which casts the weights to ``hidden``'s dtype.

    Fields:
      hidden: ``[B, h, w, m]`` float features entering F's final 1x1 conv.
      kernel: ``[m, D]`` the conv's kernel, ``hidden``'s dtype.
      bias: ``[D]`` the conv's bias, ``hidden``'s dtype.
    """

    hidden: tf.Tensor
    kernel: tf.Tensor
    bias: tf.Tensor

    def __validate__(self):
        if self.kernel.shape.rank != 2 or self.kernel.shape[0] != self.hidden.shape[-1]:
            raise ValueError(f"LinearFilterMap: kernel {self.kernel.shape} does not map hidden features "
                             f"{self.hidden.shape} (needs [m, D] with m = {self.hidden.shape[-1]})")
        if self.kernel.dtype != self.hidden.dtype or self.bias.dtype != self.hidden.dtype:
            raise ValueError(f"LinearFilterMap: dtypes differ (hidden {self.hidden.dtype}, kernel "
                             f"{self.kernel.dtype}, bias {self.bias.dtype}); use LinearFilterMap.of")

    @classmethod
    def of(cls, hidden, kernel, bias):
        """The map of ``hidden`` [B, h, w, m] through ``kernel`` [m, D] and ``bias`` [D] (cast to hidden's dtype)."""
        hidden = tf.convert_to_tensor(hidden)
        return cls(hidden=hidden, kernel=tf.cast(kernel, hidden.dtype), bias=tf.cast(bias, hidden.dtype))

    @property
    def depth(self):
        """``D``, the number of channels of F."""
        return int(self.kernel.shape[-1])

    @property
    def dtype(self):
        return self.hidden.dtype

    def _pixels(self):
        return tf.reshape(self.hidden, [-1, self.hidden.shape[-1]])

    def _image_shape(self, channels):
        return tf.concat([tf.shape(self.hidden)[:3], [channels]], axis=0)

    def dense(self):
        """F, ``[B, h, w, D]`` in ``hidden``'s dtype."""
        kernel = self.kernel[tf.newaxis, tf.newaxis]
        return tf.nn.bias_add(tf.nn.conv2d(self.hidden, kernel, strides=1, padding="VALID"), self.bias)

    def channel_groups(self, groups):
        """Channels ``groups[g]`` of F for each group ``g``, computed group by group on demand.

        Args:
          groups: int array ``[G, L]`` of channel indices of F.
        Returns:
          ``group(g) -> [B, h, w, L]``, the channels ``groups[g]`` in that order. The kernel columns
          are gathered once (one gather; its gradient one segment sum of the ``[m, D]`` kernel)
          and each group is one ``[B*h*w, m] x [m, L]`` matmul.
        """
        groups = np.asarray(groups, np.int32)
        count, length = groups.shape
        kernels = tf.unstack(tf.reshape(tf.gather(self.kernel, groups.reshape(-1), axis=1),
                                        [-1, count, length]), axis=1)
        # Gathers along axis 1 have dense gradients (along axis 0 they would be IndexedSlices).
        biases = tf.unstack(tf.reshape(tf.gather(self.bias[tf.newaxis], groups.reshape(-1), axis=1),
                                       [count, length]), axis=0)
        pixels, shape = self._pixels(), self._image_shape(length)

        def group(index):
            return tf.reshape(tf.nn.bias_add(tf.matmul(pixels, kernels[index]), biases[index]), shape)

        return group

    def convolve(self, kernel):
        """``conv2d(F, kernel)`` with stride 1 and zero ``SAME`` padding, without computing F.

        Args:
          kernel: ``[kh, kw, D, out]`` (odd kh, kw).
        Returns:
          ``[B, h, w, out]`` in ``hidden``'s dtype. Costs ``kh*kw*m*D*out`` multiply-adds for the
          folded kernel plus a convolution with ``m`` input channels instead of ``D``.
        """
        kernel = tf.cast(kernel, self.dtype)
        kh, kw, depth, out = kernel.shape
        if depth != self.depth:
            raise ValueError(f"LinearFilterMap.convolve: kernel {kernel.shape} expects {depth} input channels, "
                             f"the filter map has {self.depth}")
        taps = tf.reshape(kernel, [kh * kw, depth, out])
        folded = tf.matmul(self.kernel[tf.newaxis], taps)  # [kh*kw, m, out]
        folded = tf.reshape(folded, [kh, kw, -1, out])
        convolved = tf.nn.conv2d(self.hidden, folded, strides=1, padding="SAME")
        # F's bias is constant over the image but the zero padding is not: conv of an all-ones
        # image with the bias folded into each tap gives the position-dependent bias term.
        bias_taps = tf.reshape(tf.matmul(self.bias[tf.newaxis], taps), [kh, kw, 1, out])
        ones = tf.ones(tf.concat([[1], tf.shape(self.hidden)[1:3], [1]], axis=0), self.dtype)
        return convolved + tf.nn.conv2d(ones, bias_taps, strides=1, padding="SAME")
