"""LinearFilterMap (the factored filter map) and the IAC/RBN paths that read it, against the dense map."""

import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.model.filter_map import LinearFilterMap
from ifan_tf.model.iac import IterativeAdaptiveConvolution


def random_map(seed, batch=2, height=5, width=6, hidden_channels=4, depth=21):
    rng = np.random.default_rng(seed)
    hidden = tf.constant(rng.normal(size=(batch, height, width, hidden_channels)).astype(np.float32))
    kernel = tf.constant(rng.normal(scale=0.5, size=(hidden_channels, depth)).astype(np.float32))
    bias = tf.constant(rng.normal(scale=0.5, size=(depth,)).astype(np.float32))
    return LinearFilterMap.of(hidden, kernel, bias)


def dense_reference(filter_map):
    return np.einsum("bhwm,md->bhwd", filter_map.hidden.numpy(), filter_map.kernel.numpy()) + filter_map.bias.numpy()


def test_dense_and_channel_groups_are_the_map():
    filter_map = random_map(0)
    want = dense_reference(filter_map)
    np.testing.assert_allclose(filter_map.dense().numpy(), want, rtol=1e-5, atol=1e-5)
    groups = np.array([[3, 0, 7], [20, 5, 5]])
    group = filter_map.channel_groups(groups)
    for index, channels in enumerate(groups):
        np.testing.assert_allclose(group(index).numpy(), want[..., channels], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_convolve_equals_a_zero_padded_conv_of_the_dense_map(kernel_size):
    filter_map = random_map(1)
    kernel = tf.random.stateless_normal([kernel_size, kernel_size, filter_map.depth, 5], seed=[1, 2])
    want = tf.nn.conv2d(filter_map.dense(), kernel, strides=1, padding="SAME").numpy()
    got = filter_map.convolve(kernel).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    with pytest.raises(ValueError, match="input channels"):
        filter_map.convolve(kernel[:, :, :-1])


def test_mismatched_kernel_is_rejected():
    with pytest.raises(ValueError, match="does not map"):
        LinearFilterMap.of(tf.zeros([1, 2, 2, 3]), tf.zeros([4, 7]), tf.zeros([7]))


@pytest.mark.parametrize("mode", ["separable", "checkpoint"])
def test_iac_on_factored_map_equals_dense_map_values_and_gradients(mode):
    num_iterations, channels, k = 2, 3, 3
    layer = IterativeAdaptiveConvolution(num_iterations, channels, k, mode=mode)
    filter_map = random_map(2, hidden_channels=4, depth=layer.depth)
    features = tf.random.stateless_normal([2, 5, 6, channels], seed=[3, 4])
    sources = [features, filter_map.hidden, filter_map.kernel, filter_map.bias]
    results = {}
    for path in ("dense", "factored"):
        with tf.GradientTape() as tape:
            tape.watch(sources)
            factored = LinearFilterMap.of(filter_map.hidden, filter_map.kernel, filter_map.bias)
            if path == "dense":
                out = layer(features, factored.dense())
            else:
                out = layer.call_factored(features, factored)
            loss = tf.reduce_sum(tf.square(out))
        results[path] = [out] + tape.gradient(loss, sources)
    for dense, factored in zip(results["dense"], results["factored"]):
        scale = max(1.0, float(np.abs(dense.numpy()).max()))
        np.testing.assert_allclose(factored.numpy(), dense.numpy(), atol=2e-5 * scale)


def test_iac_streamed_equals_unstreamed_in_graph_mode():
    layer = IterativeAdaptiveConvolution(3, 2, 3)
    filter_map = random_map(3, hidden_channels=4, depth=layer.depth)
    features = tf.random.stateless_normal([1, 5, 6, 2], seed=[5, 6])
    run = tf.function(lambda streamed: layer.call_factored(features, filter_map, streamed=streamed),
                      reduce_retracing=False)
    np.testing.assert_array_equal(run(True).numpy(), run(False).numpy())
