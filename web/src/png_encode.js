/**
 * A PNG encoder for the deblurred result: gray, RGB or RGBA, 8 or 16 bits (the canvas can only
 * write 8-bit RGBA). Rows are filtered with "Sub" and deflated with the browser's CompressionStream
 * a band at a time, so memory is the pixels plus the compressed file.
 */

import {crc32} from './png_decode.js';

const COLOR_TYPES = {1: 0, 3: 2, 4: 6};
const BAND_ROWS = 64;

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** Filtered scanlines (filter byte 1, "Sub") of rows [top, bottom) as bytes. */
function filteredBand(image, top, bottom) {
  const {width, channels, bitDepth, pixels} = image;
  const bytesPerSample = bitDepth / 8;
  const bpp = channels * bytesPerSample;
  const lineBytes = width * bpp;
  const band = new Uint8Array((bottom - top) * (lineBytes + 1));
  const line = new Uint8Array(lineBytes);
  for (let y = top; y < bottom; y++) {
    const base = y * width * channels;
    if (bitDepth === 16) {
      for (let i = 0; i < width * channels; i++) {
        line[2 * i] = pixels[base + i] >> 8;
        line[2 * i + 1] = pixels[base + i] & 255;
      }
    } else {
      line.set(pixels.subarray(base, base + lineBytes));
    }
    const out = (y - top) * (lineBytes + 1);
    band[out] = 1;
    for (let i = 0; i < lineBytes; i++) band[out + 1 + i] = (line[i] - (i >= bpp ? line[i - bpp] : 0)) & 255;
  }
  return band;
}

/**
 * Encodes integer pixels as a PNG file.
 *
 * @param {object} image {width, height, channels (1 gray, 3 RGB, 4 RGBA), bitDepth (8|16),
 *   pixels: Uint8Array|Uint16Array [height * width * channels]}.
 * @returns {Promise<Blob>} the PNG file (type image/png).
 */
export async function encodePng(image) {
  const {width, height, channels, bitDepth} = image;
  if (!(channels in COLOR_TYPES) || (bitDepth !== 8 && bitDepth !== 16)) {
    throw new Error(`PNG encoding: unsupported layout (${channels} channels, ${bitDepth} bits)`);
  }
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([bitDepth, COLOR_TYPES[channels], 0, 0, 0], 8);
  const stream = new CompressionStream('deflate');  // zlib format, as PNG requires
  const writer = stream.writable.getWriter();
  const writing = (async () => {
    for (let top = 0; top < height; top += BAND_ROWS) {
      await writer.write(filteredBand(image, top, Math.min(height, top + BAND_ROWS)));
    }
    await writer.close();
  })();
  const parts = [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header)];
  const reader = stream.readable.getReader();
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    parts.push(chunk('IDAT', value));
  }
  await writing;
  parts.push(chunk('IEND', new Uint8Array(0)));
  return new Blob(parts, {type: 'image/png'});
}
