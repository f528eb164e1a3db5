"""Automatic tile size: the largest tile whose prediction fits a memory budget.

Peak resident memory of ``predict`` is modelled as

    RUNTIME_BYTES                      TensorFlow, the model weights, oneDNN caches
  + IMAGE_BYTES_PER_PIXEL * H * W      the float32 input, the float32 output buffer, slack
  + NETWORK_BYTES_PER_PIXEL * tile_px  activations of one tile (largest at full resolution)

with constants measured with ``benchmarks/inference.py`` (peak RSS of a fresh process, paper model
N=17, 2-core CPU, TF 2.21 + oneDNN) and rounded up. They are estimates: other TensorFlow builds or
GPUs differ, so the budget is a target, not a hard limit.
"""

import math

from absl import logging

from ifan_tf.inference.padding import SIZE_MULTIPLE, padded_size

GB = 1024 ** 3
RUNTIME_BYTES = int(0.85 * GB)  # measured 0.70-0.75 GB after building the paper model
# float32 RGB input (12) + float32 output (12) + the tiled loop's output update (12) + decoded/encoded
# pixels: measured 46-52 with the TF tiling executor (6000x4000 PNG: 20 tiles of 1344, peak 3.03 GB;
# 28 tiles of 1024, peak 2.75 GB).
IMAGE_BYTES_PER_PIXEL = 52
# Measured ~450 (float32) and ~500 (bfloat16) bytes per pixel at 1680x1120 and 1024x1024.
NETWORK_BYTES_PER_PIXEL = {"float32": 560, "bfloat16": 600}
MIN_TILE = 128  # smaller tiles are mostly overlap
TILE_STEP = 64  # automatic tiles are multiples of this


def network_bytes_per_pixel(precision, width=32):
    """Estimated activation bytes per input pixel for ``precision`` and model ``width`` (paper: 32)."""
    if precision not in NETWORK_BYTES_PER_PIXEL:
        raise ValueError(f"precision must be one of {sorted(NETWORK_BYTES_PER_PIXEL)}, got {precision!r}")
    return NETWORK_BYTES_PER_PIXEL[precision] * width / 32


def estimated_peak_bytes(height, width, tile=None, precision="float32", model_width=32):
    """Estimated peak resident bytes for predicting an ``height x width`` image (``tile`` None = whole)."""
    padded_area = padded_size(height) * padded_size(width)
    tile_area = padded_area if tile is None else min(tile * tile, padded_area)  # a tile's pixel budget
    return (RUNTIME_BYTES + IMAGE_BYTES_PER_PIXEL * padded_area
            + network_bytes_per_pixel(precision, model_width) * tile_area)


def auto_tile_size(height, width, budget_gb, precision="float32", overlap=32, model_width=32):
    """Tile size (multiple of 64) for an ``height x width`` image within ``budget_gb``, or None.

    None means the whole image fits the budget untiled. When even ``MIN_TILE`` does not fit, it
    logs a warning and returns the smallest usable tile (the budget cannot be met).
    """
    budget = float(budget_gb) * GB
    if estimated_peak_bytes(height, width, None, precision, model_width) <= budget:
        return None
    available = budget - RUNTIME_BYTES - IMAGE_BYTES_PER_PIXEL * padded_size(height) * padded_size(width)
    per_pixel = network_bytes_per_pixel(precision, model_width)
    side = math.sqrt(max(available, 0.0) / per_pixel)
    tile = int(side // TILE_STEP) * TILE_STEP
    smallest = max(MIN_TILE, padded_size(2 * overlap + SIZE_MULTIPLE))
    if tile < smallest:
        logging.warning("a %dx%d image does not fit a %.2f GB budget (needs about %.2f GB with %d-pixel tiles); "
                        "using %d-pixel tiles", height, width, budget_gb,
                        estimated_peak_bytes(height, width, smallest, precision, model_width) / GB,
                        smallest, smallest)
        return smallest
    return tile
