"""The filter-gradient micro-benchmark: its matmul forms compute the convolution's filter gradient,
and bad flags of the training-step benchmarks are refused with a usage error."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from benchmarks.conv_filter_gradient import filter_gradient_im2col, filter_gradient_taps

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("kernel_size", [3, 5])
@pytest.mark.parametrize("form", [filter_gradient_taps, filter_gradient_im2col])
def test_matches_the_gradient_of_a_same_convolution(form, kernel_size):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 5, 7, 3)).astype(np.float32))
    kernel = tf.Variable(rng.normal(size=(kernel_size, kernel_size, 3, 4)).astype(np.float32))
    weights = tf.constant(rng.normal(size=(2, 5, 7, 4)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(weights * tf.nn.conv2d(x, kernel, strides=1, padding="SAME"))
    expected = tape.gradient(loss, kernel)  # d loss / d output = weights
    np.testing.assert_allclose(form(x, weights, kernel_size).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("module, flag, message", [
    ("benchmarks.conv_filter_gradient", "--precisions=float16", "unknown precision 'float16'"),
    ("benchmarks.conv_filter_gradient", "--calls=0", "--calls"),
    ("benchmarks.train_step", "--batch_size=-1", "--batch_size must be >= 0"),
    ("benchmarks.train_step", "--start_update=-3", "--start_update must be >= 0"),
    ("benchmarks.train_step", "--configs=huge", "unknown config 'huge'"),
])
def test_bad_flags_are_refused_before_any_work(module, flag, message):
    completed = subprocess.run([sys.executable, "-m", module, flag], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode != 0
    assert message in completed.stderr + completed.stdout
    assert "s/step" not in completed.stdout and "ms  (relative" not in completed.stdout  # nothing was timed
