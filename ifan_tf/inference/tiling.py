"""Tiled prediction for large images: overlapping tiles blended with smooth, normalised windows.

The image, reflect-padded to multiples of 8 like the untiled path, is cut into a grid of ``tile x tile`` tiles whose
starts are multiples of 8, so every tile sees the same 1/8-scale pixel grid as the whole image.
Consecutive tiles overlap by at least ``overlap`` pixels; the last tile of a row or column is
shifted inward (it ends at the image border) instead of being padded.

Blending: each tile gets a separable weight ``w_y(y) * w_x(x)``. Along an axis, a tile's window
is 0 for the ``overlap // 4`` pixels next to an inner edge (where the tile lacks context the
untiled network would have), then rises as a raised cosine over the rest of the overlap, and is 1
elsewhere and along the image borders. The windows of an axis are divided by their sum, so they add
up to exactly 1 at every pixel: the blend is a partition of unity and needs no weight buffer.

Tiled output is not bit-identical to untiled output: IFAN's receptive field (1/8-scale features
through ~80 3x3 convs and 17 IAC iterations) is far larger than any practical overlap, so pixels
near a seam are computed from a slightly different context (zero padding at the tile border
instead of real neighbours). The windows hide this as a smooth transition, not a visible seam.
"""

import dataclasses
import math

import numpy as np

from ifan_tf.inference.padding import SIZE_MULTIPLE, padded_size, reflect_indices


@dataclasses.dataclass(frozen=True)
class AxisTiles:
    """Tiles along one axis: their ``starts``, common ``length`` and blend ``weights`` ``[n, length]``."""

    starts: tuple
    length: int
    weights: np.ndarray


def tile_starts(size, tile, overlap, multiple=SIZE_MULTIPLE):
    """Start offsets of tiles of length ``tile`` covering ``[0, size)`` with at least ``overlap`` overlap.

    ``size`` and ``tile`` must be multiples of ``multiple``; starts are multiples of it too. The
    last tile ends at ``size`` (shifted inward). ``tile >= size`` gives a single tile at 0.
    """
    if size % multiple or tile % multiple:
        raise ValueError(f"size {size} and tile {tile} must be multiples of {multiple}")
    if tile >= size:
        return (0,)
    step = (tile - overlap) // multiple * multiple
    if step < multiple:
        raise ValueError(f"tile overlap {overlap} leaves no room in tiles of {tile} pixels "
                         f"(need overlap <= tile - {multiple})")
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return tuple(sorted(set(starts)))


def _edge_ramp(length, margin, ramp):
    """Window rising from 0 (the first ``margin`` pixels) to 1 (after ``margin + ramp``) over ``length``."""
    distance = np.arange(length, dtype=np.float64) - margin + 0.5
    fraction = np.clip(distance / max(ramp, 1), 0.0, 1.0)
    return np.where(distance > 0, np.sin(0.5 * math.pi * fraction) ** 2, 0.0)


def axis_tiles(size, tile, overlap, multiple=SIZE_MULTIPLE):
    """Plans the tiles of one axis and their normalised blend weights (see module docstring)."""
    length = min(tile, size)
    starts = tile_starts(size, length, overlap, multiple)
    margin = overlap // 4
    ramp = max(overlap - 2 * margin, 1)
    rising = _edge_ramp(length, margin, ramp)
    windows = np.ones((len(starts), length))
    for i, start in enumerate(starts):
        if start > 0:
            windows[i] *= rising
        if start + length < size:
            windows[i] *= rising[::-1]
    total = np.zeros(size)
    for start, window in zip(starts, windows):
        total[start:start + length] += window
    if np.any(total <= 0):  # cannot happen when overlap >= 2 * margin, kept as a guard
        raise ValueError(f"tiles of {length} with overlap {overlap} leave pixels uncovered")
    for i, start in enumerate(starts):
        windows[i] /= total[start:start + length]
    return AxisTiles(starts=starts, length=length, weights=windows.astype(np.float32))


def predict_tiled(run, image, tile, overlap, progress=None):
    """Deblurs ``image`` ``[H, W, 3]`` float32 in [0, 1] (any H, W >= 1) tile by tile.

    The image is treated as reflect-padded to multiples of 8 (``ifan_tf.inference.padding``), but
    only one tile at a time is materialised.

    Args:
      run: function ``[h, w, 3] float32 -> [h, w, 3] float32`` (one tile through the network; h, w
        multiples of 8).
      image: the image.
      tile: tile size (multiple of 8); tiles are ``min(tile, H') x min(tile, W')`` of the padded size.
      overlap: minimum overlap between neighbouring tiles in pixels.
      progress: optional callable, called once per finished tile with no arguments.
    Returns:
      ``[H, W, 3]`` float32, the blended predictions. Memory: the output buffer plus one tile.
    """
    height, width = image.shape[:2]
    padded_h, padded_w = padded_size(height), padded_size(width)
    rows = axis_tiles(padded_h, tile, overlap)
    cols = axis_tiles(padded_w, tile, overlap)
    row_index = reflect_indices(height, padded_h)
    col_index = reflect_indices(width, padded_w)
    output = np.zeros((height, width, image.shape[2]), np.float32)
    for y, weight_y in zip(rows.starts, rows.weights):
        for x, weight_x in zip(cols.starts, cols.weights):
            tile_image = image[np.ix_(row_index[y:y + rows.length], col_index[x:x + cols.length])]
            prediction = np.asarray(run(tile_image), np.float32)
            valid_h, valid_w = min(rows.length, height - y), min(cols.length, width - x)
            prediction = prediction[:valid_h, :valid_w]
            prediction *= weight_y[:valid_h, None, None]
            prediction *= weight_x[None, :valid_w, None]
            output[y:y + valid_h, x:x + valid_w] += prediction
            if progress is not None:
                progress()
    return output


def tile_count(height, width, tile, overlap):
    """Number of tiles ``predict_tiled`` runs for an ``height x width`` image."""
    rows = axis_tiles(padded_size(height), tile, overlap)
    cols = axis_tiles(padded_size(width), tile, overlap)
    return len(rows.starts) * len(cols.starts)
