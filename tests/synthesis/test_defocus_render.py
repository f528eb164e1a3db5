"""Tests of the dual-pixel defocus renderer: identity at zero blur, disparity, blur where the CoC is."""
import cv2
import numpy as np
import pytest

from ifan_tf.io import image_io
from ifan_tf.synthesis import defocus_render, scene_layout


def texture(height=96, width=160, seed=0, sigma=1.0):
    noise = np.random.default_rng(seed).uniform(0, 1, (height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), sigma) * 2.5 - 0.75, 0, 1)


def measure_shift(left, right, max_shift=10, border=20, sigma=4.0):
    """d with left(x) ~ right(x + d): least-squares fit over shifts (linear interpolation).

    Both views are low-passed first (Gaussian, `sigma` px): the views' kernels are mirror-image
    ramps, so the best shift depends on the frequencies compared; at low frequencies it tends to
    the kernels' centroid difference, the disparity the generator records (and the one the
    disparity loss sees on 8x-downsampled views).
    """
    if sigma:
        left, right = (cv2.GaussianBlur(view, (0, 0), sigma) for view in (left, right))
    target = left.mean(axis=2)[border:-border, border:-border].astype(np.float64)
    source = right.mean(axis=2)[border:-border].astype(np.float64)
    columns = np.arange(border, border + target.shape[1], dtype=np.float64)

    def error(shift):
        position = columns + shift
        index = np.floor(position).astype(int)
        fraction = position - index
        shifted = source[:, index] * (1 - fraction) + source[:, index + 1] * fraction
        return np.mean((shifted - target) ** 2)

    coarse = min(np.arange(-max_shift, max_shift + 1.0), key=error)
    return float(min(np.arange(coarse - 1, coarse + 1, 0.01), key=error))


def high_frequency_energy(image):
    gray = image.mean(axis=2).astype(np.float64)
    return np.mean(np.abs(cv2.Laplacian(gray, cv2.CV_64F)))


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_zero_coc_returns_the_sharp_image_unchanged(bit_depth):
    pixels = image_io.quantize(texture(seed=1), bit_depth)  # source photos are 8- or 16-bit files
    sharp = pixels.astype(np.float32) / image_io.max_value(bit_depth)
    out = defocus_render.render_dual_pixel(sharp, scene_layout.flat_layout(sharp.shape[:2], 0.0))
    for view in (out.left, out.right, out.combined):
        np.testing.assert_allclose(view, sharp, atol=2e-6)
        np.testing.assert_array_equal(image_io.quantize(view, bit_depth), pixels)
    assert np.all(out.coc == 0) and np.all(out.disparity == 0)


def test_views_of_a_flat_plane_are_shifted_by_the_disparity():
    sharp = texture(128, 192, seed=2)
    measured = {}
    for coc in (3.0, 5.0, -5.0, 8.0, -12.0, 16.0, 24.0):
        out = defocus_render.render_dual_pixel(sharp, scene_layout.flat_layout(sharp.shape[:2], coc))
        recorded = float(out.disparity.mean())
        assert np.allclose(out.disparity, recorded) and np.all(out.coc == coc)
        assert np.sign(recorded) == np.sign(coc) and recorded == pytest.approx(coc / 4, rel=0.1)
        sigma = max(4.0, abs(coc) / 2)  # low-pass well beyond the kernel's radius
        measured[coc] = measure_shift(out.left, out.right, sigma=sigma)
        # Direction from the sign of the CoC, amount from its size (within 8 % + 0.1 px).
        assert np.sign(measured[coc]) == np.sign(coc)
        assert abs(measured[coc] - recorded) <= 0.1 + 0.08 * abs(recorded), (coc, measured[coc], recorded)
        # The combined view lies halfway between the two views.
        left_to_combined = measure_shift(out.left, out.combined, sigma=sigma)
        combined_to_right = measure_shift(out.combined, out.right, sigma=sigma)
        assert abs(left_to_combined - combined_to_right) <= 0.1 + 0.05 * abs(measured[coc])
    assert measured[5.0] == pytest.approx(-measured[-5.0], abs=0.02)
    magnitudes = [abs(measured[c]) for c in (3.0, 5.0, 8.0, -12.0, 16.0, 24.0)]
    assert magnitudes == sorted(magnitudes)


def test_combined_view_is_blurred_exactly_where_the_coc_is_large():
    sharp = texture(128, 192, seed=3)
    height, width = sharp.shape[:2]
    visibility = np.zeros((height, width), np.float32)
    visibility[:, width // 2:] = 1.0  # right half: a far plane, left half: a plane in focus
    layout = scene_layout.SceneLayout([
        scene_layout.DepthLayer(np.zeros((height, width), np.float32), 1.0 - visibility),
        scene_layout.DepthLayer(np.full((height, width), 10.0, np.float32), visibility),
    ])
    out = defocus_render.render_dual_pixel(sharp, layout)
    in_focus = (slice(8, -8), slice(8, width // 2 - 12))
    defocused = (slice(8, -8), slice(width // 2 + 12, -8))
    np.testing.assert_allclose(out.combined[in_focus], sharp[in_focus], atol=1e-5)
    assert high_frequency_energy(out.combined[defocused]) < 0.25 * high_frequency_energy(sharp[defocused])
    np.testing.assert_array_equal(out.coc, 10.0 * visibility)


def test_occlusion_edges_between_near_and_far_layers():
    sharp = texture(96, 96, seed=4)
    height, width = sharp.shape[:2]
    near = np.zeros((height, width), np.float32)
    near[32:64, 32:64] = 1.0
    far = 1.0 - near
    background = np.full((height, width), 12.0, np.float32)

    # A sharp near object over a blurred background stays crisp right up to its outline ...
    sharp_object = scene_layout.SceneLayout([
        scene_layout.DepthLayer(np.zeros((height, width), np.float32), near),
        scene_layout.DepthLayer(background, far)])
    out = defocus_render.render_dual_pixel(sharp, sharp_object)
    np.testing.assert_allclose(out.combined[32:64, 32:64], sharp[32:64, 32:64], atol=1e-5)
    # ... and the blurred background next to it does not take its colours (normalised by coverage).
    background_only = defocus_render.render_dual_pixel(np.where(near[..., None] > 0, 0.0, sharp),
                                                       sharp_object)
    np.testing.assert_allclose(out.combined[:, :28], background_only.combined[:, :28], atol=1e-5)

    # A blurred near object spills over the sharp background behind it, within its blur radius only.
    blurred_object = scene_layout.SceneLayout([
        scene_layout.DepthLayer(np.full((height, width), -12.0, np.float32), near),
        scene_layout.DepthLayer(np.zeros((height, width), np.float32), far)])
    out = defocus_render.render_dual_pixel(sharp, blurred_object)
    assert np.abs(out.combined[28:32, 40:56] - sharp[28:32, 40:56]).mean() > 0.02  # spill next to the edge
    np.testing.assert_allclose(out.combined[:20], sharp[:20], atol=1e-5)  # far from it: untouched
    assert np.all(out.combined >= 0) and np.all(out.combined <= 1)
