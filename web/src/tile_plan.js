/**
 * The fixed-tile plan of ifan_tf/inference/tiling.py (`image_plan(h, w, tile, overlap, fixed_tile=True)`)
 * and the reflect index map of ifan_tf/inference/padding.py, in plain JavaScript (browser and Node).
 *
 * One definition of the plan: the numbers (tile, overlap) come from the export's JSON, and
 * tests/web/test_tile_plan_parity.py runs this module with Node and checks that starts, lengths and
 * blend weights equal the Python plan for many image sizes.
 *
 * - Pad: each axis is reflect-padded at the end to the next multiple of 8, and at least the tile.
 * - Place: in 8-pixel units (s the padded axis, t the tile, o = ceil(overlap / 8)), an axis with
 *   s <= t has one tile, otherwise n = ceil((s - o) / (t - o)); tile i starts at
 *   8 * floor(i * (s - t) / (n - 1)).
 * - Weights: per seam, 0 for the first quarter of the real overlap next to an inner edge, then a
 *   raised cosine over the rest of the overlap, 1 elsewhere; the windows of an axis are divided by
 *   their sum (computed in float64 like TensorFlow, then rounded to float32).
 */

export const SIZE_MULTIPLE = 8;

/** Throws unless `tile` is a multiple of 8 (>= 16) and `overlap` an integer in [0, tile - 8]. */
export function checkTileArguments(tile, overlap) {
  if (!Number.isInteger(tile) || tile < 2 * SIZE_MULTIPLE || tile % SIZE_MULTIPLE) {
    throw new RangeError(`tile size must be a multiple of ${SIZE_MULTIPLE} and at least ${2 * SIZE_MULTIPLE}, got ${tile}`);
  }
  if (!Number.isInteger(overlap) || overlap < 0 || overlap > tile - SIZE_MULTIPLE) {
    throw new RangeError(`tile overlap must be an integer between 0 and tile - ${SIZE_MULTIPLE} (tile ${tile}), got ${overlap}`);
  }
}

/** Size an axis of `size` pixels is reflect-padded to: the next multiple of 8, at least `tile` when fixed. */
export function paddedTileSize(size, tile, fixedTile = true) {
  const padded = Math.ceil(size / SIZE_MULTIPLE) * SIZE_MULTIPLE;
  return fixedTile ? Math.max(padded, tile) : padded;
}

/**
 * Int32Array [newSize]: the source index of each position of a mirror-padded axis of `size` pixels
 * (positions < size map to themselves, later ones reflect about the last pixel, which is not
 * repeated; a 1-pixel axis maps everything to 0). ifan_tf/inference/padding.py:reflect_indices_tf.
 */
export function reflectIndices(size, newSize) {
  const period = Math.max(2 * (size - 1), 1);
  const indices = new Int32Array(newSize);
  for (let p = 0; p < newSize; p++) {
    const folded = p % period;
    indices[p] = folded >= size ? period - folded : folded;
  }
  return indices;
}

/** Float64Array [length]: 0 for overlap // 4 pixels, then a raised cosine over the rest of `overlap`. */
function risingWindow(length, overlap) {
  const margin = Math.floor(overlap / 4);
  const ramp = Math.max(overlap - 2 * margin, 1);
  const window = new Float64Array(length);
  for (let p = 0; p < length; p++) {
    const distance = p - margin + 0.5;
    const fraction = Math.min(Math.max(distance / ramp, 0), 1);
    const s = Math.sin(0.5 * Math.PI * fraction);
    window[p] = distance > 0 ? s * s : 0;
  }
  return window;
}

/**
 * Places `count` tiles of `length` pixels evenly along a padded axis of `size` pixels
 * (tiling.py:axis_plan). Returns {starts: Int32Array[n], length, weights: Float32Array[n * length]}
 * (row i of weights is tile i's window; the windows add up to 1 at every position).
 */
export function axisPlan(size, count, length) {
  const freeUnits = Math.floor((size - length) / SIZE_MULTIPLE);
  const starts = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    starts[i] = SIZE_MULTIPLE * Math.floor((i * freeUnits) / Math.max(count - 1, 1));
  }
  const windows = [];
  for (let i = 0; i < count; i++) {
    const window = new Float64Array(length).fill(1);
    if (starts[i] > 0) {  // rises over the seam with the previous tile
      const rising = risingWindow(length, starts[i - 1] + length - starts[i]);
      for (let p = 0; p < length; p++) window[p] *= rising[p];
    }
    if (starts[i] + length < size) {  // falls over the seam with the next tile
      const falling = risingWindow(length, starts[i] + length - starts[i + 1]);
      for (let p = 0; p < length; p++) window[p] *= falling[length - 1 - p];
    }
    windows.push(window);
  }
  const total = new Float64Array(size);
  for (let i = 0; i < count; i++) {  // summed in tile order, like unsorted_segment_sum
    for (let p = 0; p < length; p++) total[starts[i] + p] += windows[i][p];
  }
  const weights = new Float32Array(count * length);
  for (let i = 0; i < count; i++) {
    for (let p = 0; p < length; p++) {
      const sum = total[starts[i] + p];
      if (!(sum > 0)) throw new Error(`tiling leaves pixel ${starts[i] + p} uncovered (a bug)`);
      weights[i * length + p] = windows[i][p] / sum;
    }
  }
  return {starts, length, weights};
}

/** Number of tiles of exactly `tileUnits` along an axis of `units` (>= tileUnits), in 8-pixel units. */
function fixedTileCount(units, tileUnits, overlapUnits) {
  return units <= tileUnits ? 1 : Math.ceil((units - overlapUnits) / (tileUnits - overlapUnits));
}

/**
 * The fixed-tile plan of an unpadded `height` x `width` image: every tile is exactly tile x tile.
 *
 * @returns {{rows, cols, paddedHeight, paddedWidth, tile, overlap, count}} rows and cols are
 *   `axisPlan` results; tile (i, j) covers padded rows rows.starts[i] + [0, tile) and columns
 *   cols.starts[j] + [0, tile); `count` is the number of tiles.
 */
export function imagePlan(height, width, tile, overlap) {
  checkTileArguments(tile, overlap);
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw new RangeError(`image size must be positive integers, got ${width}x${height}`);
  }
  const paddedHeight = paddedTileSize(height, tile);
  const paddedWidth = paddedTileSize(width, tile);
  const tileUnits = tile / SIZE_MULTIPLE;
  const overlapUnits = Math.ceil(overlap / SIZE_MULTIPLE);
  const rows = axisPlan(paddedHeight, fixedTileCount(paddedHeight / SIZE_MULTIPLE, tileUnits, overlapUnits), tile);
  const cols = axisPlan(paddedWidth, fixedTileCount(paddedWidth / SIZE_MULTIPLE, tileUnits, overlapUnits), tile);
  return {rows, cols, paddedHeight, paddedWidth, tile, overlap, count: rows.starts.length * cols.starts.length};
}
