"""Tests of the spec's augmentation: one draw for all views, the grayscale formula, determinism."""
import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.data import augment

CROP = 16


def coordinate_image(height=40, width=52):
    """uint16 image whose red/green encode the row/column (for locating crops)."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([y * 700, x * 700, np.full_like(y, 30000)], axis=-1)
    return image.astype(np.uint16)


def identical_views(image):
    return {view: tf.constant(image) for view in ("c", "l", "r", "target")}


def run(views, seed, config=augment.AugmentConfig(), augment_flag=True, crop=CROP):
    return {k: v.numpy() for k, v in augment.augment_views(views, tf.constant([seed, 7], tf.int64), crop,
                                                           augment_flag, config).items()}


def spec_grayscale(rgb):
    """The spec's formula, written independently in numpy."""
    y = 0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.07228 * rgb[..., 2]
    encoded = np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(np.maximum(y, 1e-12), 1 / 2.4) - 0.055)
    return np.repeat(np.clip(encoded, 0, 1)[..., None], 3, axis=-1)


def test_grayscale_matches_the_spec_formula():
    rgb = np.random.default_rng(0).uniform(0, 1, size=(50, 30, 3)).astype(np.float32)
    rgb[0, :3] = [[0, 0, 0], [0.001, 0.002, 0.003], [1, 1, 1]]  # both branches and the white end
    got = augment.grayscale(tf.constant(rgb)).numpy()
    np.testing.assert_allclose(got, spec_grayscale(rgb.astype(np.float64)), atol=2e-6)
    assert np.all(got[..., 0] == got[..., 1]) and np.all(got[..., 1] == got[..., 2])


@pytest.mark.parametrize("seed", range(12))
def test_all_views_get_the_same_crop_scale_grayscale_and_noise(seed):
    image = np.random.default_rng(seed).integers(0, 65536, (40, 52, 3), dtype=np.uint16)
    config = augment.AugmentConfig(noise_probability=0.5, grayscale_probability=0.5, rescale_probability=0.5)
    out = run(identical_views(image), seed, config)
    decision = augment.draw_decision(tf.constant([seed, 7], tf.int64), True, config)
    # C, L and R get the same noise field, crop, scale and colour decision: they stay identical.
    np.testing.assert_array_equal(out["c"], out["l"])
    np.testing.assert_array_equal(out["c"], out["r"])
    assert all(v.shape == (CROP, CROP, 3) and v.dtype == np.float32 for v in out.values())
    assert all(v.min() >= 0 and v.max() <= 1 for v in out.values())
    gray = [bool(np.all(v[..., 0] == v[..., 2])) for v in out.values()]
    assert gray == [bool(decision.to_grayscale)] * 4
    if decision.add_noise:  # the target is not noised
        difference = np.abs(out["c"] - out["target"])
        assert 0 < difference.max() < 6 * float(decision.noise_sigma) + 1e-6
    else:
        np.testing.assert_array_equal(out["c"], out["target"])


@pytest.mark.parametrize("seed", range(8))
def test_different_views_are_cropped_at_the_same_place(seed):
    base = coordinate_image()
    views = {view: tf.constant(base + np.uint16(index)) for index, view in enumerate(("c", "l", "r", "target"))}
    out = run(views, seed, augment_flag=False)
    for index, view in enumerate(("c", "l", "r", "target")):
        pixels = np.rint(out[view] * 65535).astype(np.int64) - index
        np.testing.assert_array_equal(pixels, np.rint(out["c"] * 65535).astype(np.int64))
    corner = np.rint(out["c"][0, 0, :2] * 65535 / 700).astype(int)
    rows, cols = np.rint(out["c"][:, 0, 0] * 65535 / 700), np.rint(out["c"][0, :, 1] * 65535 / 700)
    np.testing.assert_array_equal(rows, corner[0] + np.arange(CROP))  # a plain crop, no rescale
    np.testing.assert_array_equal(cols, corner[1] + np.arange(CROP))


def test_rescale_shrinks_the_content_by_the_drawn_scale():
    config = augment.AugmentConfig(noise_probability=0, grayscale_probability=0, rescale_probability=1,
                                   rescale_range=(0.5, 0.5))
    out = run(identical_views(coordinate_image(80, 90)), 3, config)
    columns = out["c"][CROP // 2, :, 1] * 65535 / 700
    rows = out["c"][:, CROP // 2, 0] * 65535 / 700
    np.testing.assert_allclose(np.diff(columns), 2.0, atol=1e-3)  # two source pixels per output pixel
    np.testing.assert_allclose(np.diff(rows), 2.0, atol=1e-3)


def test_noise_is_added_to_the_inputs_only_with_the_drawn_sigma():
    config = augment.AugmentConfig(noise_probability=1, grayscale_probability=0, rescale_probability=0)
    image = np.full((64, 64, 3), 32768, np.uint16)
    out = run(identical_views(image), 5, config, crop=48)
    sigma = float(augment.draw_decision(tf.constant([5, 7], tf.int64), True, config).noise_sigma)
    noise = out["c"] - out["target"]
    assert np.all(out["target"] == np.float32(32768 / 65535))
    assert abs(noise.std() - sigma) < 0.1 * sigma
    np.testing.assert_array_equal(out["l"], out["c"])


def test_decisions_follow_the_spec_probabilities():
    draws = [augment.draw_decision(tf.constant([seed, 11], tf.int64), True) for seed in range(400)]
    noise = np.mean([bool(d.add_noise) for d in draws])
    gray = np.mean([bool(d.to_grayscale) for d in draws])
    rescale = np.mean([bool(d.rescale) for d in draws])
    scales = np.array([float(d.scale) for d in draws if d.rescale])
    sigmas = np.array([float(d.noise_sigma) for d in draws])
    assert 0.01 < noise < 0.10 and 0.23 < gray < 0.37 and 0.42 < rescale < 0.58
    assert scales.min() >= 0.7 and scales.max() <= 1.0
    assert sigmas.min() >= 0.001 and sigmas.max() <= np.sqrt(0.005)
    assert not any(bool(d.add_noise or d.to_grayscale or d.rescale)
                   for d in [augment.draw_decision(tf.constant([s, 1], tf.int64), False) for s in range(50)])


def test_same_seed_same_result_and_different_seed_different_result():
    image = np.random.default_rng(9).integers(0, 65536, (60, 70, 3), dtype=np.uint16)
    first, again, other = (run(identical_views(image), seed) for seed in (21, 21, 22))
    for view in first:
        np.testing.assert_array_equal(first[view], again[view])
    assert any(not np.array_equal(first[v], other[v]) for v in first)
