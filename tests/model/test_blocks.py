"""Building blocks: the stride-2 conv's symmetric padding and the LeakyReLUs' values and gradients."""

import numpy as np
import tensorflow as tf

import pytest

from ifan_tf.model.blocks import LEAKY_SLOPE, Conv, leaky_relu, leaky_relu_after_add


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


@pytest.mark.parametrize("activation", [leaky_relu, leaky_relu_after_add])
def test_leaky_relu_values_and_gradient_are_the_leaky_relu_and_its_derivative(activation):
    x = tf.constant([[-2.0, -0.5, 0.25, 3.0]])
    upstream = tf.constant([[1.0, 2.0, 3.0, 4.0]])

    @tf.function
    def values_and_gradient(features):
        with tf.GradientTape() as tape:
            tape.watch(features)
            y = activation(features)
        return y, tape.gradient(y, features, output_gradients=upstream)

    y, gradient = values_and_gradient(x)
    np.testing.assert_allclose(y.numpy(), [[-0.2, -0.05, 0.25, 3.0]], rtol=1e-6)
    np.testing.assert_allclose(gradient.numpy(), [[LEAKY_SLOPE, 2 * LEAKY_SLOPE, 3.0, 4.0]], rtol=1e-6)


def test_conv_leaky_relu_gradient_reads_the_activation_output():
    """The backward pass reads LeakyReLU's output, so Grappler can fuse Conv2D + BiasAdd + LeakyRelu.

    With the stock gradient, ``LeakyReluGrad`` read the ``BiasAdd`` output; the remapper then failed
    on the training graph ("fanout ... exist for missing node") and dropped all its fusions.
    """
    conv = Conv(4, 3)
    x = tf.random.uniform([1, 6, 6, 2], seed=3)
    conv.build(x.shape)

    @tf.function
    def gradient(inputs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(conv(inputs))
        return tape.gradient(loss, conv.trainable_variables)

    graph = gradient.get_concrete_function(x).graph
    grads = [op for op in graph.get_operations() if op.type == "LeakyReluGrad"]
    assert len(grads) == 1
    assert grads[0].inputs[1].op.type == "LeakyRelu"
    eager = [g.numpy() for g in gradient.python_function(x)]
    for actual, expected in zip(gradient(x), eager):
        np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-5, atol=1e-6)
