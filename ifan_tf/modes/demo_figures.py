"""The demo's figures: a before/after comparison of held-out scenes and the held-out PSNR curve.

Both are drawn with numpy and OpenCV (no plotting library) and written as 8-bit PNGs atomically
(``ifan_tf.io.image_io.write_image``):
* ``demo_comparison.png``: one row per held-out scene, columns input (defocused), output
  (deblurred) and ground truth, under a header naming them;
* ``demo_psnr_curve.png``: held-out PSNR against training minutes, with the input's PSNR as a
  grey reference line (the gap between them is the gain).
"""

import os

import cv2
import numpy as np
from absl import logging

from ifan_tf.io import image_io

COMPARISON_FILE = "demo_comparison.png"
CURVE_FILE = "demo_psnr_curve.png"
COLUMNS = ("input", "output", "ground truth")
GAP = 4  # pixels between tiles
HEADER = 24  # pixels of the comparison's header row
CURVE_SIZE = (640, 400)  # (width, height) of the curve plot
# Plot area inside the curve image: left, top, right, bottom margins in pixels.
MARGINS = (70, 40, 20, 50)
CURVE_COLOUR = (31, 119, 180)  # RGB
INPUT_COLOUR = (150, 150, 150)
AXIS_COLOUR = (0, 0, 0)
MAX_IMAGE_PIXELS = 64_000_000  # refuse absurd comparison sizes before allocating


def _text(canvas, text, origin, scale=0.45, colour=AXIS_COLOUR):
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def comparison_image(rows):
    """Side-by-side tiles with a header: ``[H, W, 3] uint8``.

    Args:
      rows: a non-empty list of ``(input, output, target)``, each ``[h, w, 3] float32 in [0, 1]``
        (the three of a row share their shape; rows may differ: narrower rows are padded white).
    """
    if not rows:
        raise ValueError("comparison_image needs at least one (input, output, target) row")
    for index, row in enumerate(rows):
        shapes = {np.shape(image) for image in row}
        if len(row) != 3 or len(shapes) != 1 or len(next(iter(shapes))) != 3 or next(iter(shapes))[2] != 3:
            raise ValueError(f"comparison row {index}: needs three [h, w, 3] images of one shape, got {shapes}")
    width = max(3 * row[0].shape[1] + 2 * GAP for row in rows)
    height = HEADER + sum(row[0].shape[0] + GAP for row in rows) - GAP
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(f"the comparison would be {width}x{height} pixels; give fewer or smaller scenes")
    canvas = np.full((height, width, 3), 255, np.uint8)
    tile_width = rows[0][0].shape[1]
    scale = min(0.45, 0.45 * tile_width / 110)  # "ground truth" fits its tile
    for column, name in enumerate(COLUMNS):
        _text(canvas, name, (column * (tile_width + GAP) + 2, HEADER - 8), scale)
    top = HEADER
    for row in rows:
        tile_height, tile_width = row[0].shape[:2]
        for column, image in enumerate(row):
            left = column * (tile_width + GAP)
            canvas[top:top + tile_height, left:left + tile_width] = image_io.quantize(image, 8)
        top += tile_height + GAP
    return canvas


def _ticks(low, high, count=5):
    return [low + (high - low) * i / (count - 1) for i in range(count)]


def plot_geometry(curve, size=CURVE_SIZE):
    """``to_pixel(minutes, psnr) -> (x, y)`` of the curve plot and its axis ranges."""
    minutes = [float(record["train_minutes"]) for record in curve]
    values = [float(record["psnr"]) for record in curve] + [float(record["input_psnr"]) for record in curve]
    x_range = (0.0, max(max(minutes), 1e-3))
    low, high = min(values), max(values)
    pad = max(0.25, 0.1 * (high - low))
    y_range = (low - pad, high + pad)
    left, top, right, bottom = MARGINS
    plot_width, plot_height = size[0] - left - right, size[1] - top - bottom

    def to_pixel(minute, psnr):
        x = left + (minute - x_range[0]) / (x_range[1] - x_range[0]) * plot_width
        y = top + (y_range[1] - psnr) / (y_range[1] - y_range[0]) * plot_height
        return int(round(x)), int(round(y))

    return to_pixel, x_range, y_range


def psnr_curve_image(curve, size=CURVE_SIZE):
    """The held-out PSNR curve as ``[H, W, 3] uint8`` (``size`` = (W, H)).

    Args:
      curve: non-empty list of validation records (``train_minutes``, ``psnr``, ``input_psnr``;
        as ``TrainResult.validations``), in training order.
    """
    if not curve:
        raise ValueError("psnr_curve_image needs at least one validation record")
    width, height = size
    canvas = np.full((height, width, 3), 255, np.uint8)
    to_pixel, x_range, y_range = plot_geometry(curve, size)
    left, top, right, bottom = MARGINS
    cv2.rectangle(canvas, (left, top), (width - right, height - bottom), AXIS_COLOUR, 1)
    for value in _ticks(*x_range):
        x, _ = to_pixel(value, y_range[0])
        cv2.line(canvas, (x, height - bottom), (x, height - bottom + 5), AXIS_COLOUR, 1)
        _text(canvas, f"{value:.1f}", (x - 12, height - bottom + 20))
    for value in _ticks(*y_range):
        _, y = to_pixel(x_range[0], value)
        cv2.line(canvas, (left - 5, y), (left, y), AXIS_COLOUR, 1)
        _text(canvas, f"{value:.2f}", (4, y + 5))
    _text(canvas, "training minutes", (width // 2 - 60, height - 12))
    _text(canvas, "held-out PSNR (dB): output (blue), input (grey)", (left, top - 14))
    inputs = np.array([to_pixel(float(r["train_minutes"]), float(r["input_psnr"])) for r in curve], np.int32)
    points = np.array([to_pixel(float(r["train_minutes"]), float(r["psnr"])) for r in curve], np.int32)
    if len(curve) > 1:
        cv2.polylines(canvas, [inputs.reshape(-1, 1, 2)], False, INPUT_COLOUR, 1, cv2.LINE_AA)
        cv2.polylines(canvas, [points.reshape(-1, 1, 2)], False, CURVE_COLOUR, 2, cv2.LINE_AA)
    for x, y in points:
        cv2.circle(canvas, (int(x), int(y)), 3, CURVE_COLOUR, -1, cv2.LINE_AA)
    return canvas


def write_demo_figures(output_dir, deblur, records, curve):
    """Writes the comparison and the curve PNGs into ``output_dir``; returns ``{"comparison", "curve"}`` paths.

    Args:
      output_dir: an existing folder.
      deblur: ``deblur(record) -> [H, W, 3] float32 in [0, 1]``, the deblurred ``record["image"]``.
      records: evaluation records (``image``, ``target``: ``[H, W, 3] float32 in [0, 1]``) of the
        held-out scenes to show.
      curve: validation records (see ``psnr_curve_image``); empty: no curve is written (its path is None).
    """
    rows = [(record["image"], deblur(record), record["target"]) for record in records]
    paths = {"comparison": os.path.join(output_dir, COMPARISON_FILE), "curve": None}
    image_io.write_image(paths["comparison"], comparison_image(rows), 8)
    if curve:
        paths["curve"] = os.path.join(output_dir, CURVE_FILE)
        image_io.write_image(paths["curve"], psnr_curve_image(curve), 8)
    else:
        logging.warning("no validation during training: %s not written", CURVE_FILE)
    return paths
