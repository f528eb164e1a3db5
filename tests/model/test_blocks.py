"""Building blocks: the stride-2 conv's symmetric padding and the residual LeakyReLU's gradient."""

import numpy as np
import tensorflow as tf

from ifan_tf.model.blocks import LEAKY_SLOPE, Conv, leaky_relu_after_add


def test_stride2_conv_pads_like_the_reference():
    """Zero padding (k - 1) / 2 on every side, then a VALID stride-2 conv (PyTorch's padding=1)."""
    conv = Conv(5, 3, stride=2, activation=False)
    x = tf.random.uniform([2, 10, 14, 4], seed=1)
    conv.build(x.shape)
    conv.conv.bias.assign(tf.random.uniform([5], seed=2))
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    expected = tf.nn.conv2d(padded, conv.conv.kernel, strides=2, padding="VALID") + conv.conv.bias
    actual = tf.function(conv)(x)
    assert actual.shape == (2, 5, 7, 5)
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_residual_leaky_relu_gradient_is_the_leaky_relu_derivative():
    x = tf.constant([[-2.0, -0.5, 0.25, 3.0]])
    upstream = tf.constant([[1.0, 2.0, 3.0, 4.0]])

    @tf.function
    def values_and_gradient(features):
        with tf.GradientTape() as tape:
            tape.watch(features)
            y = leaky_relu_after_add(features)
        return y, tape.gradient(y, features, output_gradients=upstream)

    y, gradient = values_and_gradient(x)
    np.testing.assert_allclose(y.numpy(), [[-0.2, -0.05, 0.25, 3.0]], rtol=1e-6)
    np.testing.assert_allclose(gradient.numpy(), [[LEAKY_SLOPE, 2 * LEAKY_SLOPE, 3.0, 4.0]], rtol=1e-6)
