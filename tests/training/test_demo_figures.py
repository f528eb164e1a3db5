"""The demo's before/after comparison and PSNR-curve figures, drawn from small fake inputs."""
import numpy as np
import pytest

from ifan_tf.io import image_io
from ifan_tf.modes import demo_figures

CURVE = [{"step": 10 * i, "train_minutes": 0.5 * i, "psnr": 25.0 + 0.4 * i, "input_psnr": 25.0, "ssim": 0.8}
         for i in range(1, 6)]


def fake_record(seed, size=(16, 24)):
    rng = np.random.default_rng(seed)
    return {"image": rng.uniform(0, 0.5, size + (3,)).astype(np.float32),
            "target": rng.uniform(0.5, 1, size + (3,)).astype(np.float32)}


def test_the_comparison_shows_input_output_and_truth_side_by_side(tmp_path):
    records = [fake_record(0), fake_record(1)]
    paths = demo_figures.write_demo_figures(str(tmp_path), lambda record: 1.0 - record["image"], records, CURVE)
    pixels, bit_depth = image_io.read_image(paths["comparison"])
    gap, header = demo_figures.GAP, demo_figures.HEADER
    assert bit_depth == 8 and pixels.shape == (header + 2 * 16 + gap, 3 * 24 + 2 * gap, 3)
    second_row = header + 16 + gap
    expected = [records[1]["image"], 1.0 - records[1]["image"], records[1]["target"]]
    for column, image in enumerate(expected):
        left = column * (24 + gap)
        tile = pixels[second_row:second_row + 16, left:left + 24]
        np.testing.assert_allclose(tile, image, atol=1 / 255 + 1e-6)
    assert pixels[:header].min() < 0.5  # the column names are written in the header


def test_the_curve_is_drawn_where_the_values_are(tmp_path):
    paths = demo_figures.write_demo_figures(str(tmp_path), lambda record: record["image"], [fake_record(0)], CURVE)
    pixels, _ = image_io.read_image(paths["curve"])
    width, height = demo_figures.CURVE_SIZE
    assert pixels.shape == (height, width, 3)
    to_pixel, _, _ = demo_figures.plot_geometry(CURVE)
    blue = np.array(demo_figures.CURVE_COLOUR) / 255.0
    for record in CURVE:
        x, y = to_pixel(record["train_minutes"], record["psnr"])
        assert np.abs(pixels[y, x] - blue).max() < 0.05  # a marker on every validation
    # Between the first two points the line passes; far above it the plot is blank.
    (x0, y0), (x1, y1) = to_pixel(0.5, 25.4), to_pixel(1.0, 25.8)
    middle = pixels[(y0 + y1) // 2 - 2:(y0 + y1) // 2 + 3, (x0 + x1) // 2 - 2:(x0 + x1) // 2 + 3]
    assert np.abs(middle - blue).max(axis=2).min() < 0.1
    assert np.all(pixels[y1 - 60:y1 - 40, x0 + 5:x1 - 5] == 1.0)
    # A different curve changes the pixels where the curve is.
    other = demo_figures.psnr_curve_image([dict(r, psnr=r["psnr"] + 0.5 * (i % 2)) for i, r in enumerate(CURVE)])
    assert np.count_nonzero(np.any(other != image_io.quantize(pixels, 8), axis=2)) > 100


def test_no_curve_without_validations_and_bad_rows_are_refused(tmp_path):
    paths = demo_figures.write_demo_figures(str(tmp_path), lambda record: record["image"], [fake_record(2)], [])
    assert paths["curve"] is None and (tmp_path / demo_figures.COMPARISON_FILE).is_file()
    assert not (tmp_path / demo_figures.CURVE_FILE).exists()
    with pytest.raises(ValueError, match="row 0"):
        demo_figures.comparison_image([(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)), np.zeros((4, 4, 3)))])
    with pytest.raises(ValueError, match="at least one"):
        demo_figures.psnr_curve_image([])
