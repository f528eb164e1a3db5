"""Tests of the dual-pixel kernel model and the blur-level ladder."""
import numpy as np
import pytest

from ifan_tf.synthesis import dual_pixel_kernels as dpk


@pytest.mark.parametrize("coc", [0.0, 0.7, 1.5, 3.0, 6.0, -6.0, 9.0, -14.0])
def test_kernels_are_normalised_and_combine_to_the_disc(coc):
    kernels = dpk.dual_pixel_kernels(coc)
    for kernel in (kernels.left, kernels.right, kernels.combined):
        assert kernel.min() >= 0 and abs(kernel.sum() - 1) < 1e-5
        assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    np.testing.assert_allclose((kernels.left + kernels.right) / 2, kernels.combined, atol=1e-7)
    np.testing.assert_allclose(kernels.combined, kernels.combined[::-1, ::-1], atol=1e-7)  # symmetric disc
    np.testing.assert_allclose(kernels.left, kernels.right[:, ::-1], atol=1e-7)  # mirror images


def test_disc_diameter_matches_the_coc():
    kernels = dpk.dual_pixel_kernels(11.0)
    half = kernels.combined.shape[0] // 2
    middle_row = kernels.combined[half]
    support = np.flatnonzero(middle_row > 0.5 * middle_row.max())
    assert support[-1] - support[0] + 1 == 11
    assert abs(np.count_nonzero(kernels.combined) - np.pi * 5.5 ** 2) < 0.15 * np.pi * 5.5 ** 2


def test_the_sign_of_the_coc_swaps_the_views():
    positive, negative = dpk.dual_pixel_kernels(7.0), dpk.dual_pixel_kernels(-7.0)
    np.testing.assert_array_equal(positive.left, negative.right)
    np.testing.assert_array_equal(positive.right, negative.left)
    assert positive.disparity > 0 and negative.disparity == pytest.approx(-positive.disparity)


@pytest.mark.parametrize("coc", [4.0, 8.0, 16.0, 30.0])
def test_disparity_is_proportional_to_blur_size(coc):
    # Continuous model: the ramp puts the view centroids at -+r/4, so d = r/2 = coc/4.
    assert dpk.dual_pixel_kernels(coc).disparity == pytest.approx(coc / 4, rel=0.05)


def test_blur_of_at_most_a_pixel_is_a_point():
    for coc in (0.0, 0.4, -1.0):
        kernels = dpk.dual_pixel_kernels(coc)
        assert np.count_nonzero(kernels.combined) == 1 and kernels.disparity == 0


def test_level_ladder_and_interpolation():
    levels = dpk.coc_levels(-3.2, 12.0)
    assert levels[0] <= -3.2 and levels[-1] >= 12.0 and 0.0 in levels and np.all(np.diff(levels) > 0)
    np.testing.assert_array_equal(levels[levels >= 0][:9], np.arange(9.0))  # 1-px steps up to 8
    values = np.array([-3.2, -0.5, 0.0, 2.25, 8.7, 12.0])
    lower, upper_weight, lower_weight = dpk.interpolation_weights(values, levels)
    upper = np.minimum(lower + 1, len(levels) - 1)
    np.testing.assert_allclose(lower_weight * levels[lower] + upper_weight * levels[upper], values, atol=1e-9)
    assert np.all((0 <= upper_weight) & (upper_weight <= 1))


def test_wide_levels_render_at_reduced_resolution_with_the_same_disparity():
    assert dpk.render_scale(9.0) == 1 and dpk.render_scale(12.0) == 2 and dpk.render_scale(-40.0) == 8
    disparities = dpk.level_disparities(np.array([-20.0, 12.0, 30.0]))
    np.testing.assert_allclose(disparities, np.array([-20.0, 12.0, 30.0]) / 4, rtol=0.08)
