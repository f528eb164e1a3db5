/**
 * The tile loop of ifan_tf/inference/tiling.py:tiled_deblur (fixed_tile=True) over a picture of
 * integer pixels, with the numbers of `main.py --mode=predict --model=FILE.tflite`:
 *
 * - each tile is gathered through the reflect index map of the padded image and scaled to float32
 *   by pixel * float32(1 / max) (image_io.decode_with_layout);
 * - each tile's output is weighted (output * w_y) * w_x in float32 and added, tiles in raster order,
 *   to float32 sums (tensor_scatter_nd_add);
 * - a finished pixel is clipped to [0, 1], turned into the output layout (gray: float32 mean of the
 *   three channels; alpha copied) and quantised by rint(value * float32(max)) (image_io.to_pixels).
 *
 * Memory: the input and output pictures as integers; float32 only for one tile in and out and for
 * one strip of tile rows (tile x width x 3): rows of the image are final, and leave the strip, as
 * soon as the last row of tiles covering them has run.
 */

import {reflectIndices} from './tile_plan.js';

const f32 = Math.fround;

/** Round half to even, like numpy.rint, for non-negative values. */
function rint(value) {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** Output layout of a picture: 1 channel (gray), 3 (RGB) or 4 (RGB + the input's alpha). */
export function outputChannels(picture) {
  if (picture.alpha) return 4;
  return picture.gray ? 1 : 3;
}

/** Fills `tile` (Float32Array [t * t * 3]) with the picture's padded pixels at rows `y`, columns `x`. */
function gatherTile(picture, rowIndex, colIndex, y, x, t, tile) {
  const {width, channels, pixels} = picture;
  const scale = f32(1 / (picture.bitDepth === 16 ? 65535 : 255));
  let out = 0;
  for (let r = 0; r < t; r++) {
    const rowBase = rowIndex[y + r] * width;
    for (let c = 0; c < t; c++) {
      const p = (rowBase + colIndex[x + c]) * channels;
      if (channels === 1) {
        const v = f32(pixels[p] * scale);
        tile[out++] = v;
        tile[out++] = v;
        tile[out++] = v;
      } else {
        tile[out++] = f32(pixels[p] * scale);
        tile[out++] = f32(pixels[p + 1] * scale);
        tile[out++] = f32(pixels[p + 2] * scale);
      }
    }
  }
}

/** Quantises strip rows [from, to) (strip row 0 = image row `top`) into `output`. */
function finishRows(strip, top, from, to, picture, output, outChannels) {
  const {width, alpha} = picture;
  const max = picture.bitDepth === 16 ? 65535 : 255;
  const maxF = f32(max);
  const quantize = (v) => rint(f32(Math.min(Math.max(v, 0), 1) * maxF));
  const clip = (v) => Math.min(Math.max(v, 0), 1);
  for (let y = from; y < to; y++) {
    const imageRow = top + y;
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * 3;
      const r = clip(strip[s]), g = clip(strip[s + 1]), b = clip(strip[s + 2]);
      const o = (imageRow * width + x) * outChannels;
      if (outChannels === 1) {
        output[o] = quantize(f32(f32(f32(r + g) + b) / 3));
        continue;
      }
      output[o] = quantize(r);
      output[o + 1] = quantize(g);
      output[o + 2] = quantize(b);
      if (outChannels === 4) output[o + 3] = alpha[imageRow * width + x];
    }
  }
}

/** Resolves after other tasks (e.g. a cancel message) had a chance to run, without timer clamping. */
function yieldToEvents() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(0);
  });
}

/**
 * Deblurs a picture tile by tile.
 *
 * @param {object} picture see decode.js.
 * @param {object} plan `imagePlan(picture.height, picture.width, tile, overlap)` from tile_plan.js.
 * @param {function(Float32Array): Promise<Float32Array>} runTile one [1, t, t, 3] tile through the model.
 * @param {object} [hooks] {onTile(done, total), isCancelled() -> bool (checked between tiles)}.
 * @returns {Promise<object|null>} the result {width, height, channels, bitDepth, pixels} laid out
 *   like predict's output, or null when cancelled.
 */
export async function deblurPicture(picture, plan, runTile, hooks = {}) {
  const {width, height} = picture;
  const {rows, cols, tile: t} = plan;
  const rowIndex = reflectIndices(height, plan.paddedHeight);
  const colIndex = reflectIndices(width, plan.paddedWidth);
  const outChannels = outputChannels(picture);
  const Type = picture.bitDepth === 16 ? Uint16Array : Uint8Array;
  const output = new Type(width * height * outChannels);
  const strip = new Float32Array(t * width * 3);
  const input = new Float32Array(t * t * 3);
  const numRows = rows.starts.length, numCols = cols.starts.length;
  let done = 0;
  for (let i = 0; i < numRows; i++) {
    const y = rows.starts[i];
    const validH = Math.min(t, height - y);
    for (let j = 0; j < numCols; j++) {
      if (hooks.isCancelled && hooks.isCancelled()) return null;
      const x = cols.starts[j];
      const validW = Math.min(t, width - x);
      gatherTile(picture, rowIndex, colIndex, y, x, t, input);
      const prediction = await runTile(input);
      for (let r = 0; r < validH; r++) {
        const wy = rows.weights[i * t + r];
        for (let c = 0; c < validW; c++) {
          const wx = cols.weights[j * t + c];
          const p = (r * t + c) * 3;
          const s = (r * width + x + c) * 3;
          strip[s] += f32(f32(prediction[p] * wy) * wx);
          strip[s + 1] += f32(f32(prediction[p + 1] * wy) * wx);
          strip[s + 2] += f32(f32(prediction[p + 2] * wy) * wx);
        }
      }
      done++;
      if (hooks.onTile) hooks.onTile(done, plan.count);
      await yieldToEvents();
    }
    // Rows above the next tile row are final; the rest moves to the top of the strip.
    const next = i + 1 < numRows ? rows.starts[i + 1] - y : Math.min(t, height - y);
    const finished = Math.min(next, validH);
    finishRows(strip, y, 0, finished, picture, output, outChannels);
    strip.copyWithin(0, finished * width * 3);
    strip.fill(0, (t - finished) * width * 3);
  }
  return {width, height, channels: outChannels, bitDepth: picture.bitDepth, pixels: output};
}
