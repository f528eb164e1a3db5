"""Tiled deblurring in TensorFlow ops: balanced, overlapping tiles blended with smooth, normalised windows.

The one tiling implementation of the project: the exported SavedModel runs it inside its graph,
the predict CLI (``ifan_tf.inference.predictor``) runs the same function eagerly, and the LiteRT
runner reuses it with its own ``run_tile``.

Plan (``grid_plan``). The image is treated as reflect-padded to multiples of 8
(``ifan_tf.inference.padding``), like the untiled path, and all tile starts and lengths are
multiples of 8, so every tile sees the same 1/8-scale pixel grid as the whole image. ``tile`` sets
a pixel budget of ``tile * tile`` per network call: activation memory grows with a tile's area,
not its side.

- An image whose padded area fits the budget runs as one tile: the untiled computation, bit for
  bit, whatever its aspect ratio (1280x720 with ``tile=1024`` is one call).
- Otherwise the grid ``n_y x n_x`` is the one that computes the fewest pixels among those whose
  tiles fit the budget; on each axis the ``n`` tiles have one length ``L`` (a multiple of 8), the
  smallest for which ``n`` evenly spaced tiles cover the axis with neighbours overlapping by at
  least ``overlap``. In units of 8 pixels (``s`` the padded axis, ``o = ceil(overlap / 8)``):
  ``L = ceil((s + (n - 1) * o) / n)`` and start ``i`` is ``floor(i * (s - L) / (n - 1))``, so the
  gaps differ by at most 8 pixels and the last tile ends at the padded border. The work is the
  image area plus at most ``overlap`` (rounded up to 8) + 8 pixels per seam on each axis.
- ``fixed_tile=True`` (runtimes with a fixed input shape, e.g. a LiteRT model): every tile is
  exactly ``tile x tile``; an axis shorter than the tile is reflect-padded up to it; otherwise
  ``n = ceil((s - o) / (t - o))`` tiles with the same evenly spaced starts, so the overlaps are
  equal (within 8 pixels) instead of one tile shifted onto the border.

Blending. Each tile gets a separable weight ``w_y(y) * w_x(x)``. Along an axis, a tile's window
is 0 for the first quarter of each seam's overlap next to an inner edge (where the tile lacks
context the untiled network would have), then rises as a raised cosine over the rest of that
overlap (the real one, at least ``overlap``), and is 1 elsewhere and along the image borders. The windows of an axis are divided by their sum, so they add
up to exactly 1 at every pixel: the blend is a partition of unity and needs no weight buffer. A
single tile has weight exactly 1.

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

_NO_PLAN = tf.int64.max


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


def _rising_windows(length, overlaps):
    """float64 ``[n, length]``: per tile, 0 over the first ``overlap // 4`` pixels of its overlap with
    the neighbour, then a raised cosine up to 1 over the rest of that overlap (``overlaps`` int32 ``[n]``)."""
    margins = overlaps // 4
    ramps = tf.cast(tf.maximum(overlaps - 2 * margins, 1), tf.float64)[:, tf.newaxis]
    distance = (tf.cast(tf.range(length), tf.float64)[tf.newaxis]
                - tf.cast(margins, tf.float64)[:, tf.newaxis] + 0.5)
    fraction = tf.clip_by_value(distance / ramps, 0.0, 1.0)
    return tf.where(distance > 0, tf.sin(0.5 * math.pi * fraction) ** 2, tf.zeros_like(fraction))


def _ceil_div(numerator, denominator):
    """Ceiling of ``numerator / denominator`` for non-negative numerators and positive denominators."""
    return (numerator + denominator - 1) // denominator


def _tile_units(units, counts, overlap_units):
    """Smallest tile length (in 8-pixel units) for which ``counts`` evenly spaced tiles cover ``units``
    with neighbours overlapping by at least ``overlap_units``: ``ceil((s + (n - 1) o) / n)``."""
    return _ceil_div(units + (counts - 1) * overlap_units, counts)


def _fixed_tile_count(units, tile_units, overlap_units):
    """Tiles of exactly ``tile_units`` needed along an axis of ``units`` (>= ``tile_units``)."""
    return tf.where(units <= tile_units, tf.ones_like(units),
                    _ceil_div(units - overlap_units, tile_units - overlap_units))


def _balanced_grid(units_y, units_x, tile_units, overlap_units):
    """``(n_y, l_y, n_x, l_x)`` int64: the grid computing the fewest pixels with tiles of at most
    ``tile_units ** 2`` units (ties: fewer rows of tiles). One tile when the whole axis pair fits."""
    budget = tile_units * tile_units
    counts_y = tf.range(1, units_y + 1, dtype=tf.int64)  # every possible number of tile rows
    lengths_y = _tile_units(units_y, counts_y, overlap_units)
    widest = budget // lengths_y  # the longest tile row length that keeps the area within budget
    whole_row = widest >= units_x
    counts_x = tf.where(whole_row, tf.ones_like(widest),
                        _ceil_div(units_x - overlap_units, tf.maximum(widest - overlap_units, 1)))
    lengths_x = _tile_units(units_x, counts_x, overlap_units)
    feasible = ((counts_y == 1) | (lengths_y > overlap_units)) & (whole_row | (widest > overlap_units))
    work = tf.where(feasible, counts_y * lengths_y * counts_x * lengths_x, _NO_PLAN)
    best = tf.argmin(work, output_type=tf.int64)
    return counts_y[best], lengths_y[best], counts_x[best], lengths_x[best]


def axis_plan(size, count, length):
    """Places ``count`` tiles of ``length`` pixels evenly along a padded axis of ``size`` pixels.

    Args:
      size, count, length: int or int tensors; ``size`` and ``length`` multiples of 8 with
        ``length <= size``. Start ``i`` is ``8 * floor(i * (size - length) / 8 / (count - 1))``.
    Returns:
      An ``AxisPlan``; its weights sum to 1 at every position of the axis.
    """
    size = tf.cast(size, tf.int64)
    count = tf.cast(count, tf.int64)
    length = tf.cast(length, tf.int64)
    free_units = (size - length) // SIZE_MULTIPLE
    starts = SIZE_MULTIPLE * (tf.range(count) * free_units // tf.maximum(count - 1, 1))
    starts, size, length = tf.cast(starts, tf.int32), tf.cast(size, tf.int32), tf.cast(length, tf.int32)
    # Each seam's window spans that seam's real overlap (>= ``overlap``; the gaps differ by up to 8).
    seam_overlaps = starts[:-1] + length - starts[1:]
    no_seam = tf.zeros([1], tf.int32)
    rising = _rising_windows(length, tf.concat([no_seam, seam_overlaps], 0))
    falling = tf.reverse(_rising_windows(length, tf.concat([seam_overlaps, no_seam], 0)), [1])
    ones = tf.ones_like(rising)
    windows = (tf.where((starts > 0)[:, tf.newaxis], rising, ones)
               * tf.where((starts + length < size)[:, tf.newaxis], falling, ones))
    positions = starts[:, tf.newaxis] + tf.range(length)[tf.newaxis]
    total = tf.math.unsorted_segment_sum(tf.reshape(windows, [-1]), tf.reshape(positions, [-1]), size)
    tf.debugging.assert_positive(total, message="tiling leaves pixels uncovered")  # a guard, cannot happen
    weights = windows / tf.gather(total, positions)
    return AxisPlan(starts=starts, length=length, weights=tf.cast(weights, tf.float32))


def grid_plan(padded_height, padded_width, tile, overlap, fixed_tile=False):
    """Plans the tiles of a padded image (see the module docstring); works eagerly and in graphs.

    Args:
      padded_height, padded_width: the padded size (``padded_tile_size``), multiples of 8 (int or
        int32 tensors).
      tile: the tile size (Python int): a budget of ``tile * tile`` pixels per tile, or with
        ``fixed_tile`` exactly ``tile x tile``.
      overlap: minimum overlap of neighbouring tiles in pixels (Python int, ``0..tile - 8``).
      fixed_tile: every tile is exactly ``tile x tile``.
    Returns:
      ``(rows, cols)``, two ``AxisPlan``: tile ``(i, j)`` covers rows ``rows.starts[i] +
      [0, rows.length)`` and columns ``cols.starts[j] + [0, cols.length)``.
    """
    check_tile_arguments(tile, overlap)
    height = tf.cast(padded_height, tf.int64)
    width = tf.cast(padded_width, tf.int64)
    tf.debugging.assert_equal(height % SIZE_MULTIPLE + width % SIZE_MULTIPLE, tf.constant(0, tf.int64),
                              message="grid_plan: the padded size must be a multiple of 8")
    units_y, units_x = height // SIZE_MULTIPLE, width // SIZE_MULTIPLE
    tile_units, overlap_units = tile // SIZE_MULTIPLE, -(-overlap // SIZE_MULTIPLE)
    if fixed_tile:
        tf.debugging.assert_greater_equal(tf.minimum(units_y, units_x), tf.constant(tile_units, tf.int64),
                                          message="grid_plan: fixed tiles need the axes padded to the tile")
        counts_y = _fixed_tile_count(units_y, tile_units, overlap_units)
        counts_x = _fixed_tile_count(units_x, tile_units, overlap_units)
        lengths_y = lengths_x = tf.constant(tile_units, tf.int64)
    else:
        counts_y, lengths_y, counts_x, lengths_x = _balanced_grid(units_y, units_x, tile_units, overlap_units)
    rows = axis_plan(height, counts_y, lengths_y * SIZE_MULTIPLE)
    cols = axis_plan(width, counts_x, lengths_x * SIZE_MULTIPLE)
    return rows, cols


def image_plan(height, width, tile, overlap, fixed_tile=False):
    """``grid_plan`` for an unpadded ``height x width`` image (ints or int32 tensors)."""
    return grid_plan(padded_tile_size(height, tile, fixed_tile), padded_tile_size(width, tile, fixed_tile),
                     tile, overlap, fixed_tile)


def tile_count(height, width, tile, overlap, fixed_tile=False):
    """Number of tiles (``run_tile`` calls) ``tiled_deblur`` makes for an ``height x width`` image (int)."""
    rows, cols = image_plan(height, width, tile, overlap, fixed_tile)
    return int(tf.size(rows.starts)) * int(tf.size(cols.starts))


def tiled_deblur(run_tile, image, tile, overlap, fixed_tile=False, progress=None):
    """Deblurs ``image`` ``[H, W, 3]`` float32 (any H, W >= 1) tile by tile; works eagerly and in graphs.

    Args:
      run_tile: function ``[1, th, tw, 3] float32 -> [1, th, tw, 3]`` (any float dtype): one tile
        through the network. ``th``, ``tw`` are multiples of 8 with ``th * tw <= tile * tile``,
        or exactly ``tile`` with ``fixed_tile``. It may wrap ``tf.numpy_function`` (e.g. a LiteRT
        interpreter).
      image: the image, a tensor or array ``[H, W, 3]``.
      tile: tile size in pixels, a Python int (multiple of 8, >= 16): a budget of ``tile * tile``
        pixels per tile (an image whose padded area fits runs whole).
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
    rows, cols = image_plan(height, width, tile, overlap, fixed_tile)
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
