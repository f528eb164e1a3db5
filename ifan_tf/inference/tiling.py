"""Tiled deblurring in TensorFlow ops: overlapping tiles blended with smooth, normalised windows.

The one tiling implementation of the project: the exported SavedModel runs it inside its graph,
the predict CLI (``ifan_tf.inference.predictor``) runs the same function eagerly, and a LiteRT
runner can reuse it with its own ``run_tile``.

Plan. The image is treated as reflect-padded to multiples of 8 (``ifan_tf.inference.padding``),
like the untiled path, and cut into a grid of tiles whose starts are multiples of 8, so every tile
sees the same 1/8-scale pixel grid as the whole image. A tile is ``min(tile, H')`` x ``min(tile, W')``
of the padded size ``H' x W'``. Consecutive tiles overlap by at least ``overlap`` pixels; the last
tile of a row or column is shifted inward (it ends at the padded border) instead of being padded.
With ``fixed_tile=True`` every tile is exactly ``tile x tile``: an axis shorter than the tile is
reflect-padded up to it (for runtimes with a fixed input shape, e.g. a LiteRT model).

Blending. Each tile gets a separable weight ``w_y(y) * w_x(x)``. Along an axis, a tile's window
is 0 for the ``overlap // 4`` pixels next to an inner edge (where the tile lacks context the
untiled network would have), then rises as a raised cosine over the rest of the overlap, and is 1
elsewhere and along the image borders. The windows of an axis are divided by their sum, so they add
up to exactly 1 at every pixel: the blend is a partition of unity and needs no weight buffer. A
single tile has weight exactly 1, so an image that fits one tile gives the untiled result bit for bit.

Execution. A ``tf.while_loop`` over the tiles (one at a time) gathers a tile from the unpadded
image through the reflection index map, runs ``run_tile`` on it and adds the weighted prediction
into the output with ``tf.tensor_scatter_nd_add``: memory is the input, the output and one tile
(plus what ``run_tile`` needs), whatever the image size.

Tiled output is not bit-identical to untiled output: IFAN's receptive field (1/8-scale features
through ~80 3x3 convs and 17 IAC iterations) is far larger than any practical overlap, so pixels
near a seam are computed from a slightly different context (zero padding at the tile border
instead of real neighbours). The windows hide this as a smooth transition, not a visible seam.
"""

import collections
import math

import tensorflow as tf

from ifan_tf.inference.padding import SIZE_MULTIPLE, reflect_indices_tf

AxisPlan = collections.namedtuple("AxisPlan", ["starts", "length", "weights"])
AxisPlan.__doc__ = """Tiles along one axis: ``starts`` int32 ``[n]``, ``length`` int32 scalar (the tile
length on this axis) and blend ``weights`` float32 ``[n, length]`` summing to 1 at every position."""


def check_tile_arguments(tile, overlap):
    """Raises ValueError unless ``tile`` is a multiple of 8 (>= 16) and ``0 <= overlap <= tile - 8``."""
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 2 * SIZE_MULTIPLE or tile % SIZE_MULTIPLE:
        raise ValueError(f"tile size must be a multiple of {SIZE_MULTIPLE} and at least {2 * SIZE_MULTIPLE}, "
                         f"got {tile!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= tile - SIZE_MULTIPLE:
        raise ValueError(f"tile overlap must be an integer between 0 and tile - {SIZE_MULTIPLE} "
                         f"(tile {tile}), got {overlap!r}")


def padded_tile_size(size, tile, fixed_tile=False):
    """Size an axis of ``size`` pixels (int32 tensor or int) is reflect-padded to before tiling.

    The next multiple of 8, and at least ``tile`` with ``fixed_tile``.
    """
    padded = (size + SIZE_MULTIPLE - 1) // SIZE_MULTIPLE * SIZE_MULTIPLE
    return tf.maximum(padded, tile) if fixed_tile else padded


def _rising_window(length, overlap):
    """float64 ``[length]``: 0 over the first ``overlap // 4`` pixels, then a raised cosine up to 1."""
    margin = overlap // 4
    ramp = max(overlap - 2 * margin, 1)
    distance = tf.cast(tf.range(length), tf.float64) - margin + 0.5
    fraction = tf.clip_by_value(distance / ramp, 0.0, 1.0)
    return tf.where(distance > 0, tf.sin(0.5 * math.pi * fraction) ** 2, tf.zeros_like(fraction))


def axis_plan(size, tile, overlap):
    """Plans the tiles along one padded axis of ``size`` pixels (a multiple of 8; int or int32 tensor).

    Tiles have length ``min(tile, size)``; starts are multiples of 8 from 0 with steps of
    ``(tile - overlap)`` rounded down to a multiple of 8; the last tile ends at ``size``.
    Returns an ``AxisPlan``.
    """
    check_tile_arguments(tile, overlap)
    size = tf.convert_to_tensor(size, tf.int32)
    tf.debugging.assert_equal(size % SIZE_MULTIPLE, 0, message="axis_plan: size must be a multiple of 8")
    length = tf.minimum(tile, size)
    step = (tile - overlap) // SIZE_MULTIPLE * SIZE_MULTIPLE
    starts = tf.concat([tf.range(0, size - length, step), [size - length]], axis=0)
    rising = _rising_window(length, overlap)
    has_previous = (starts > 0)[:, tf.newaxis]
    has_next = (starts + length < size)[:, tf.newaxis]
    ones = tf.ones_like(rising)[tf.newaxis]
    windows = (tf.where(has_previous, rising[tf.newaxis], ones)
               * tf.where(has_next, tf.reverse(rising, [0])[tf.newaxis], ones))
    positions = starts[:, tf.newaxis] + tf.range(length)[tf.newaxis]
    total = tf.math.unsorted_segment_sum(tf.reshape(windows, [-1]), tf.reshape(positions, [-1]), size)
    tf.debugging.assert_positive(total, message="tiling leaves pixels uncovered")  # a guard, cannot happen
    weights = windows / tf.gather(total, positions)
    return AxisPlan(starts=starts, length=length, weights=tf.cast(weights, tf.float32))


def tile_count(height, width, tile, overlap, fixed_tile=False):
    """Number of tiles (``run_tile`` calls) ``tiled_deblur`` makes for an ``height x width`` image (int)."""
    rows = axis_plan(padded_tile_size(height, tile, fixed_tile), tile, overlap)
    cols = axis_plan(padded_tile_size(width, tile, fixed_tile), tile, overlap)
    return int(tf.size(rows.starts)) * int(tf.size(cols.starts))


def tiled_deblur(run_tile, image, tile, overlap, fixed_tile=False, progress=None):
    """Deblurs ``image`` ``[H, W, 3]`` float32 (any H, W >= 1) tile by tile; works eagerly and in graphs.

    Args:
      run_tile: function ``[1, th, tw, 3] float32 -> [1, th, tw, 3]`` (any float dtype): one tile
        through the network. ``th``, ``tw`` are multiples of 8 (at most ``tile``), or exactly
        ``tile`` with ``fixed_tile``. It may wrap ``tf.numpy_function`` (e.g. a LiteRT interpreter).
      image: the image, a tensor or array ``[H, W, 3]``.
      tile: tile size in pixels, a Python int (multiple of 8, >= 16).
      overlap: minimum overlap of neighbouring tiles in pixels, a Python int in [0, tile - 8].
      fixed_tile: every ``run_tile`` call gets exactly ``[1, tile, tile, 3]`` (smaller images are
        reflect-padded up to the tile and cropped back).
      progress: optional callable with no arguments, called after each tile (inside a
        ``tf.function`` through ``tf.py_function``, so not for graphs that are exported).
    Returns:
      ``[H, W, 3]`` float32, the blended predictions (a convex combination of ``run_tile``
      outputs per pixel). Memory: input + output + one tile.
    """
    check_tile_arguments(tile, overlap)
    image = tf.convert_to_tensor(image, tf.float32)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    rows = axis_plan(padded_tile_size(height, tile, fixed_tile), tile, overlap)
    cols = axis_plan(padded_tile_size(width, tile, fixed_tile), tile, overlap)
    row_index = reflect_indices_tf(height, padded_tile_size(height, tile, fixed_tile))
    col_index = reflect_indices_tf(width, padded_tile_size(width, tile, fixed_tile))
    num_cols = tf.size(cols.starts)
    num_tiles = tf.size(rows.starts) * num_cols
    eager = tf.executing_eagerly()

    def run_one_tile(index, output):
        i, j = index // num_cols, index % num_cols
        y, x = rows.starts[i], cols.starts[j]
        piece = tf.gather(image, row_index[y:y + rows.length], axis=0)
        piece = tf.gather(piece, col_index[x:x + cols.length], axis=1)
        prediction = tf.cast(run_tile(piece[tf.newaxis]), tf.float32)[0]
        valid_h, valid_w = tf.minimum(rows.length, height - y), tf.minimum(cols.length, width - x)
        prediction = (prediction[:valid_h, :valid_w]
                      * rows.weights[i, :valid_h, tf.newaxis, tf.newaxis]
                      * cols.weights[j, tf.newaxis, :valid_w, tf.newaxis])
        grid_y, grid_x = tf.meshgrid(y + tf.range(valid_h), x + tf.range(valid_w), indexing="ij")
        output = tf.tensor_scatter_nd_add(output, tf.stack([grid_y, grid_x], axis=-1), prediction)
        if progress is not None and eager:
            progress()
        elif progress is not None:
            with tf.control_dependencies([output]):
                reported = tf.py_function(lambda: progress() or 0, [], tf.int32)
            with tf.control_dependencies([reported]):
                index = tf.identity(index)
        return index + 1, output

    output = tf.zeros(tf.stack([height, width, 3]), tf.float32)
    _, output = tf.while_loop(lambda index, _: index < num_tiles, run_one_tile, [tf.constant(0), output],
                              parallel_iterations=1)
    return output
