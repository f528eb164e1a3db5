"""The filter-gradient micro-benchmark's matmul forms compute the convolution's filter gradient."""
import numpy as np
import pytest
import tensorflow as tf

from benchmarks.conv_filter_gradient import filter_gradient_im2col, filter_gradient_taps


@pytest.mark.parametrize("form", [filter_gradient_taps, filter_gradient_im2col])
def test_matches_the_gradient_of_a_same_convolution(form):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 5, 7, 3)).astype(np.float32))
    kernel = tf.Variable(rng.normal(size=(3, 3, 3, 4)).astype(np.float32))
    weights = tf.constant(rng.normal(size=(2, 5, 7, 4)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(weights * tf.nn.conv2d(x, kernel, strides=1, padding="SAME"))
    expected = tape.gradient(loss, kernel)  # d loss / d output = weights
    np.testing.assert_allclose(form(x, weights).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
