"""The realism switches of the synthetic generator: segment layouts, bokeh highlights, noise and JPEG."""
import numpy as np
import pytest

from ifan_tf.synthesis import (camera_noise, defocus_render, dual_pixel_kernels, scene_layout, segment_layout,
                               sharp_photos)
from ifan_tf.synthesis import synthetic_dataset as synthesize

EDGE = 37  # first column of the right region


def two_region_image(height=64, width=96):
    """A sharp vertical edge at column EDGE between two flat, differently coloured regions (plus mild texture)."""
    rng = np.random.default_rng(1)
    image = np.empty((height, width, 3), np.float32)
    image[:, :EDGE] = (0.15, 0.35, 0.2)
    image[:, EDGE:] = (0.85, 0.7, 0.3)
    return np.clip(image + rng.normal(0, 0.01, image.shape), 0, 1).astype(np.float32)


def test_segment_layers_change_depth_exactly_at_the_image_edge():
    image = two_region_image()
    for seed in range(4):
        layout = segment_layout.segment_layout(image, np.random.default_rng(seed), max_coc=12.0, num_objects=1,
                                               focus=None)
        assert len(layout.layers) == 2  # one region in front of the background
        front = layout.layers[0].visibility
        columns = np.flatnonzero(np.abs(np.diff(front, axis=1)).max(axis=0) > 0.5) + 1  # where the mask changes
        assert columns.size and np.all(np.abs(columns - EDGE) <= 2), (seed, columns)
        coc = layout.visible_coc()
        jumps = np.flatnonzero(np.abs(np.diff(coc, axis=1)).max(axis=0) > 0.5) + 1
        assert np.all(np.abs(jumps - EDGE) <= 2)  # the depth discontinuity lies on the image edge


@pytest.mark.parametrize("coc", [8.0, 20.0])
def test_a_saturated_point_light_blooms_into_a_disc_of_the_cocs_diameter(coc):
    size = 71
    sharp = np.zeros((size, size, 3), np.float32)
    sharp[size // 2, size // 2] = 1.0
    layout = scene_layout.flat_layout((size, size), coc)
    area = np.pi * coc * coc / 4
    dim = defocus_render.render_dual_pixel(sharp, layout).combined
    assert dim.max() < 0.5  # without the boost the light fades into a dim blur
    # Boosted just below clipping: the light's energy spreads evenly over the CoC disc.
    linear = defocus_render.srgb_to_linear(
        defocus_render.render_dual_pixel(sharp, layout, highlight_gain=0.9 * area).combined).max(axis=2)
    assert 0.8 < linear.max() <= 0.95
    disc = linear > 0.5 * linear.max()
    rows, cols = np.flatnonzero(disc.any(axis=1)), np.flatnonzero(disc.any(axis=0))
    factor = dual_pixel_kernels.render_scale(coc)  # wide blur is rendered at reduced resolution
    tolerance = 1 if factor == 1 else 2
    assert abs((rows[-1] - rows[0] + 1) - coc) <= tolerance and abs((cols[-1] - cols[0] + 1) - coc) <= tolerance
    assert abs(disc.sum() - area) < 0.15 * area  # a filled disc, not a ring or a cross
    # Boosted further, the disc saturates (clipped) and ends at the CoC's edge; reduced-resolution
    # levels put a point at its block's centre and soften the edge by about the factor.
    bright = defocus_render.render_dual_pixel(sharp, layout, highlight_gain=3 * area).combined.min(axis=2)
    y, x = np.mgrid[0:size, 0:size]
    radius = np.hypot(y - (bright * y).sum() / bright.sum(), x - (bright * x).sum() / bright.sum())
    assert np.all(bright[radius <= coc / 2 - 0.5 - factor] > 0.999)
    assert radius[bright > 0.5].max() <= coc / 2 + 0.5 + 0.75 * factor
    np.testing.assert_array_equal(defocus_render.boost_highlights(sharp * 0.5, sharp * 0.5, 10.0), sharp * 0.5)


def test_highlight_gain_one_is_off_and_below_one_is_refused():
    sharp = np.full((8, 8, 3), 0.99, np.float32)
    linear = defocus_render.srgb_to_linear(sharp)
    assert defocus_render.boost_highlights(linear, sharp, 1.0) is linear
    with pytest.raises(ValueError, match="highlight_gain"):
        defocus_render.boost_highlights(linear, sharp, 0.5)


def make_scene(**switches):
    config = synthesize.SynthesisConfig(image_size=(48, 64), **switches)
    scene, _ = synthesize.make_scene("train", 2, "astronaut", 5, sharp_photos.PhotoSource(), config)
    return scene


def test_noise_and_jpeg_change_the_inputs_but_not_the_target_deterministically():
    clean = make_scene()
    for switches in ({"noise_level": 0.05}, {"jpeg_quality": 60}, {"noise_level": 0.05, "jpeg_quality": 90}):
        degraded, again = make_scene(**switches), make_scene(**switches)
        np.testing.assert_array_equal(degraded.views["target"], clean.views["target"])
        for view in ("c", "l", "r"):
            assert np.abs(degraded.views[view].astype(int) - clean.views[view]).mean() > 0.3, (switches, view)
            np.testing.assert_array_equal(degraded.views[view], again.views[view])  # same seed, same noise
        np.testing.assert_array_equal(degraded.defocus["coc"], clean.defocus["coc"])
    noisy = make_scene(noise_level=0.05)
    # The combined view is the mean of the noisy views: the same realisation, not a third one.
    mean_of_views = (noisy.views["l"].astype(float) + noisy.views["r"]) / 2
    assert np.abs(noisy.views["c"] - mean_of_views).mean() < 0.6 * np.abs(noisy.views["c"].astype(float)
                                                                           - clean.views["c"]).mean()


def test_sensor_noise_is_independent_per_view_and_weaker_in_the_combined_view():
    grey = np.full((64, 64, 3), 0.5, np.float32)
    left, right, combined = camera_noise.add_sensor_noise(grey, grey, np.random.default_rng(0), 0.1)
    assert np.corrcoef((left - 0.5).ravel(), (right - 0.5).ravel())[0, 1] < 0.1
    assert 0.6 < (combined - 0.5).std() / (left - 0.5).std() < 0.8  # about 1/sqrt(2)


def test_segments_layout_scene_and_bad_switches():
    scene = make_scene(layout="segments", highlight_gain=8.0)
    assert scene.views["c"].shape == (48, 64, 3)
    for bad, message in (({"layout": "clouds"}, "layout"), ({"highlight_gain": 0.5}, "highlight_gain"),
                         ({"noise_level": -1.0}, "noise_level"), ({"jpeg_quality": 101}, "jpeg_quality")):
        with pytest.raises(ValueError, match=message):
            synthesize.synthesize_dataset("unused", 1, **bad)


@pytest.mark.slow
def test_the_synthesize_command_passes_the_switches_on(tmp_path):
    import json
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[2]
    common = ["--splits=train:1", "--height=32", "--width=40", "--num_workers=1", "--photos=astronaut"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1")
    result = subprocess.run([sys.executable, "-m", "data_prep.synthesize", f"--output_dir={tmp_path / 'syn'}",
                             *common, "--layout=segments", "--highlight_gain=6", "--noise_level=0.03",
                             "--jpeg_quality=85"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((tmp_path / "syn" / "dataset_summary.json").read_text())["generator"]["config"]
    assert (config["layout"], config["highlight_gain"], config["noise_level"], config["jpeg_quality"]) == (
        "segments", 6.0, 0.03, 85)
    refused = subprocess.run([sys.executable, "-m", "data_prep.synthesize", f"--output_dir={tmp_path / 'bad'}",
                              *common, "--jpeg_quality=101"], cwd=root, env=env, capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode != 0 and "jpeg_quality must be in 0..100" in refused.stderr
