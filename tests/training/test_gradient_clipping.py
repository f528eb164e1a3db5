"""clip_by_global_norm against a numpy transcription of torch.nn.utils.clip_grad_norm_."""
import numpy as np
import tensorflow as tf

from ifan_tf.training.gradient_clipping import clip_by_global_norm
from training_numpy_references import torch_style_clip


def test_clips_to_norm_half_and_returns_the_norm_before_clipping():
    rng = np.random.default_rng(0)
    gradients = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((7,)).astype(np.float32)]
    clipped, norm = clip_by_global_norm([tf.constant(g) for g in gradients], max_norm=0.5)
    expected, expected_norm = torch_style_clip(gradients, 0.5)
    assert expected_norm > 0.5
    np.testing.assert_allclose(norm.numpy(), expected_norm, rtol=1e-6)
    for actual, wanted in zip(clipped, expected):
        np.testing.assert_allclose(actual.numpy(), wanted, rtol=1e-6)
    clipped_norm = np.sqrt(sum(np.sum(np.square(c.numpy(), dtype=np.float64)) for c in clipped))
    np.testing.assert_allclose(clipped_norm, 0.5, rtol=1e-5)


def test_small_gradients_are_unchanged():
    gradients = [tf.constant([0.1, -0.2]), tf.constant([[0.05]])]
    clipped, norm = clip_by_global_norm(gradients, max_norm=0.5)
    np.testing.assert_allclose(norm.numpy(), np.sqrt(0.01 + 0.04 + 0.0025), rtol=1e-6)
    for actual, original in zip(clipped, gradients):
        np.testing.assert_array_equal(actual.numpy(), original.numpy())


def test_none_gradients_are_kept_and_ignored_under_tf_function():
    gradients = [tf.constant([3.0, 4.0]), None, tf.constant([12.0])]
    clipped, norm = tf.function(lambda g: clip_by_global_norm(g, max_norm=0.5))(gradients)
    expected, _ = torch_style_clip([[3.0, 4.0], None, [12.0]], 0.5)
    assert clipped[1] is None
    np.testing.assert_allclose(norm.numpy(), 13.0, rtol=1e-6)
    np.testing.assert_allclose(clipped[0].numpy(), expected[0], rtol=1e-6)
    np.testing.assert_allclose(clipped[2].numpy(), expected[2], rtol=1e-6)


def test_indexed_slices_and_all_none():
    sparse = tf.IndexedSlices(tf.constant([[3.0, 0.0], [0.0, 4.0]]), tf.constant([0, 2]), tf.constant([3, 2]))
    clipped, norm = clip_by_global_norm([sparse], max_norm=1.0)
    assert isinstance(clipped[0], tf.IndexedSlices)
    np.testing.assert_allclose(norm.numpy(), 5.0, rtol=1e-6)
    expected, _ = torch_style_clip([[[3.0, 0.0], [0.0, 0.0], [0.0, 4.0]]], 1.0)
    np.testing.assert_allclose(tf.convert_to_tensor(clipped[0]).numpy(), expected[0], rtol=1e-6)

    clipped, norm = clip_by_global_norm([None, None])
    assert clipped == [None, None] and norm.numpy() == 0.0
