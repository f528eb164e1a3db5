"""Area / nearest downsampling and the disparity warp against numpy transcriptions of the spec."""

import numpy as np
import tensorflow as tf

from ifan_tf.training.resampling import area_downsample, nearest_downsample, warp_horizontal


def numpy_grid_sample_horizontal(images, disparity):
    """grid_sample(align_corners=True, zeros padding) with flow (d, 0), per pixel in float64."""
    batch, height, width, channels = images.shape
    out = np.zeros(images.shape, np.float64)
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                sx = x + disparity[b, y, x, 0]
                x0 = int(np.floor(sx))
                w1 = sx - x0
                for xi, weight in ((x0, 1 - w1), (x0 + 1, w1)):
                    if 0 <= xi < width:
                        out[b, y, x] += weight * images[b, y, xi]
    return out


def test_warp_matches_grid_sample_definition():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(2, 5, 9, 3)).astype(np.float32)
    disparity = rng.uniform(-4, 4, size=(2, 5, 9, 1)).astype(np.float32)
    disparity[0, 0, 0, 0] = 2.0  # an integer shift
    disparity[0, 0, 1, 0] = -9.5  # entirely outside
    got = warp_horizontal(images, disparity).numpy()
    np.testing.assert_allclose(got, numpy_grid_sample_horizontal(images, disparity), atol=1e-6)
    np.testing.assert_allclose(got[0, 0, 0], images[0, 0, 2], atol=1e-7)
    assert np.all(got[0, 0, 1] == 0)


def test_warp_zero_disparity_is_identity_and_gradient_flows_to_disparity():
    images = tf.random.uniform([1, 4, 6, 3], seed=1)
    disparity = tf.Variable(tf.fill([1, 4, 6, 1], 0.25))
    np.testing.assert_allclose(warp_horizontal(images, tf.zeros([1, 4, 6, 1])).numpy(), images.numpy(), atol=1e-7)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(warp_horizontal(images, disparity))
    assert np.abs(tape.gradient(loss, disparity).numpy()).sum() > 0


def test_area_and_nearest_downsampling():
    images = np.random.default_rng(2).uniform(size=(2, 16, 24, 3)).astype(np.float32)
    area = area_downsample(images, 8).numpy()
    want = images.reshape(2, 2, 8, 3, 8, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(area, want, atol=1e-6)
    np.testing.assert_array_equal(nearest_downsample(tf.constant(images), 8).numpy(), images[:, 0::8, 0::8])
