"""The IAC layer against a plain numpy transcription of the spec, plus gradients, dtypes, serialisation."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from ifan_tf.model.iac import IterativeAdaptiveConvolution, filter_map_depth


def numpy_iac(x, filters, num_iterations, channels, k, mode, act_last):
    """The spec's IAC, written loop by loop in NHWC numpy (float64)."""
    x = x.astype(np.float64)
    filters = filters.astype(np.float64)
    batch, height, width, _ = x.shape
    ck, pad = channels * k, (k - 1) // 2
    for i in range(num_iterations):
        kernel1 = filters[..., i * 2 * ck: i * 2 * ck + ck]
        kernel2 = filters[..., i * 2 * ck + ck: (i + 1) * 2 * ck]
        horizontal = kernel1 if mode == "checkpoint" else kernel2
        bias_start = num_iterations * 2 * ck + i * channels
        bias = filters[..., bias_start: bias_start + channels]
        x_pad = np.pad(x, ((0, 0), (pad, pad), (0, 0), (0, 0)), mode="edge")
        v = np.zeros_like(x)
        for y in range(height):
            for ch in range(channels):
                for t in range(k):
                    v[:, y, :, ch] += x_pad[:, y + t, :, ch] * kernel1[:, y, :, ch * k + t]
        v_pad = np.pad(v, ((0, 0), (0, 0), (pad, pad), (0, 0)), mode="edge")
        h = np.zeros_like(v)
        for col in range(width):
            for ch in range(channels):
                for t in range(k):
                    h[:, :, col, ch] += v_pad[:, :, col + t, ch] * horizontal[:, :, col, ch * k + t]
        x = h + bias
        if i < num_iterations - 1 or act_last:
            x = np.where(x > 0, x, 0.1 * x)
    return x


def random_inputs(seed, batch, height, width, channels, num_iterations, k):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, height, width, channels)).astype(np.float32)
    filters = rng.normal(scale=0.5, size=(batch, height, width, filter_map_depth(num_iterations, channels, k)))
    return x, filters.astype(np.float32)


@pytest.mark.parametrize("mode", ["separable", "checkpoint"])
@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("act_last", [True, False])
def test_matches_numpy_reference(mode, k, act_last):
    num_iterations, channels = 3, 4
    x, filters = random_inputs(k, 2, 7, 9, channels, num_iterations, k)
    layer = IterativeAdaptiveConvolution(num_iterations, channels, k, mode=mode, act_last=act_last)
    got = layer(x, filters).numpy()
    want = numpy_iac(x, filters, num_iterations, channels, k, mode, act_last)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_modes_differ_only_through_kernel2():
    num_iterations, channels, k = 2, 3, 3
    x, filters = random_inputs(0, 1, 6, 6, channels, num_iterations, k)
    separable = IterativeAdaptiveConvolution(num_iterations, channels, k, mode="separable")
    checkpoint = IterativeAdaptiveConvolution(num_iterations, channels, k, mode="checkpoint")
    assert np.abs(separable(x, filters).numpy() - checkpoint(x, filters).numpy()).max() > 1e-2
    # Copying kernel1 into kernel2 makes the two modes identical.
    ck = channels * k
    same = filters.copy()
    for i in range(num_iterations):
        same[..., i * 2 * ck + ck: (i + 1) * 2 * ck] = same[..., i * 2 * ck: i * 2 * ck + ck]
    np.testing.assert_allclose(separable(x, same).numpy(), checkpoint(x, same).numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["separable", "checkpoint"])
def test_gradients_reach_input_and_every_used_filter_channel(mode):
    num_iterations, channels, k = 2, 3, 3
    x, filters = random_inputs(1, 1, 5, 6, channels, num_iterations, k)
    x, filters = tf.constant(x), tf.constant(filters)
    layer = IterativeAdaptiveConvolution(num_iterations, channels, k, mode=mode)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, filters])
        loss = tf.reduce_sum(tf.square(layer(x, filters)))
    grad_x = tape.gradient(loss, x).numpy()
    grad_filters = tape.gradient(loss, filters).numpy()
    assert np.abs(grad_x).sum() > 0
    per_channel = np.abs(grad_filters).sum(axis=(0, 1, 2))
    ck = channels * k
    for i in range(num_iterations):
        kernel1 = per_channel[i * 2 * ck: i * 2 * ck + ck]
        kernel2 = per_channel[i * 2 * ck + ck: (i + 1) * 2 * ck]
        assert np.all(kernel1 > 0), f"iteration {i}: a kernel1 channel gets no gradient"
        if mode == "separable":
            assert np.all(kernel2 > 0), f"iteration {i}: a kernel2 channel gets no gradient"
        else:
            assert np.all(kernel2 == 0), f"iteration {i}: kernel2 is unused in checkpoint mode"
    assert np.all(per_channel[num_iterations * 2 * ck:] > 0), "a bias channel gets no gradient"


@pytest.mark.parametrize("policy, tolerance", [("float16", 2e-2), ("bfloat16", 1e-1), ("mixed_bfloat16", 1e-1)])
def test_reduced_precision_computes_in_compute_dtype(policy, tolerance):
    num_iterations, channels, k = 2, 4, 3
    x, filters = random_inputs(2, 1, 8, 8, channels, num_iterations, k)
    reference = IterativeAdaptiveConvolution(num_iterations, channels, k)(x, filters).numpy()
    layer = IterativeAdaptiveConvolution(num_iterations, channels, k, dtype=policy)
    out = layer(x, filters)
    assert out.dtype == tf.as_dtype(layer.compute_dtype)
    assert out.dtype != tf.float32
    np.testing.assert_allclose(out.numpy().astype(np.float32), reference, atol=tolerance * np.abs(reference).max())


def test_runs_in_tf_function_with_unknown_height_and_width():
    num_iterations, channels, k = 2, 3, 5
    layer = IterativeAdaptiveConvolution(num_iterations, channels, k)
    depth = layer.depth

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels]), tf.TensorSpec([None, None, None, depth])])
    def run(x, filters):
        return layer(x, filters)

    for height, width in ((5, 7), (9, 4)):
        x, filters = random_inputs(height, 2, height, width, channels, num_iterations, k)
        np.testing.assert_allclose(run(x, filters).numpy(), layer(x, filters).numpy(), rtol=1e-5, atol=1e-5)


def test_serialisation_round_trip():
    layer = IterativeAdaptiveConvolution(3, 2, 5, mode="checkpoint", act_last=False, name="iac_x")
    restored = IterativeAdaptiveConvolution.from_config(layer.get_config())
    assert (restored.num_iterations, restored.channels, restored.filter_size, restored.mode, restored.act_last) == (
        3, 2, 5, "checkpoint", False)
    x, filters = random_inputs(3, 1, 6, 6, 2, 3, 5)
    np.testing.assert_array_equal(restored(x, filters).numpy(), layer(x, filters).numpy())
    # Generic Keras (de)serialisation finds the registered class too.
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(again, IterativeAdaptiveConvolution) and again.mode == "checkpoint"


def test_rejects_bad_arguments_and_wrong_filter_depth():
    with pytest.raises(ValueError, match="odd"):
        IterativeAdaptiveConvolution(2, 3, 4)
    with pytest.raises(ValueError, match="mode"):
        IterativeAdaptiveConvolution(2, 3, 3, mode="both")
    layer = IterativeAdaptiveConvolution(2, 3, 3)
    x, filters = random_inputs(0, 1, 4, 4, 3, 2, 3)
    with pytest.raises(ValueError, match="depth"):
        layer(x, filters[..., :-1])
