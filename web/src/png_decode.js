/**
 * A PNG decoder that keeps the file's samples exactly (8 and 16 bits, no colour management, no
 * premultiplied alpha), laid out as OpenCV's `imdecode(IMREAD_UNCHANGED)` gives them to
 * `main.py --mode=predict` (ifan_tf/io/image_io.py):
 *
 * - gray (any depth; 1/2/4-bit scaled to 8 bits): gray, tRNS ignored;
 * - RGB, palette: RGB, plus alpha when there is a tRNS chunk;
 * - gray + alpha, RGBA: RGB (gray replicated) + alpha.
 *
 * The IDAT data is inflated with the browser's DecompressionStream and unfiltered scanline by
 * scanline straight into the result, so memory is the file plus the decoded pixels. Adam7
 * interlacing is supported. Critical chunks are CRC-checked. Every error names the file.
 */

import {ImageError} from './image_header.js';

const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (PNG's) of `bytes`. */
export function crc32(bytes, crc = 0) {
  let c = ~crc;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** The chunks of a PNG file: {palette, transparency, idat: [Uint8Array]}; checks CRCs and order. */
function readChunks(bytes, header, name) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const found = {palette: null, transparency: null, idat: []};
  let offset = 8;
  for (;;) {
    if (offset + 12 > bytes.length) {
      throw new ImageError(`${name}: truncated PNG (ends at byte ${bytes.length} without an IEND chunk)`);
    }
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    if (offset + 12 + length > bytes.length) {
      throw new ImageError(`${name}: truncated PNG (chunk ${JSON.stringify(type)} at byte ${offset} needs ${length} bytes)`);
    }
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    const critical = type.charCodeAt(0) >= 65 && type.charCodeAt(0) <= 90;
    if (critical && crc32(bytes.subarray(offset + 4, offset + 8 + length)) !== view.getUint32(offset + 8 + length)) {
      throw new ImageError(`${name}: corrupt PNG (CRC mismatch in chunk ${type} at byte ${offset})`);
    }
    if (type === 'IEND') break;
    if (type === 'PLTE') {
      if (length % 3 || !length || length > 768) throw new ImageError(`${name}: corrupt PNG (PLTE of ${length} bytes)`);
      found.palette = data;
    } else if (type === 'tRNS') {
      found.transparency = data;
    } else if (type === 'IDAT') {
      found.idat.push(data);
    } else if (critical && type !== 'IHDR') {
      throw new ImageError(`${name}: unsupported PNG (unknown critical chunk ${JSON.stringify(type)})`);
    }
    offset += 12 + length;
  }
  if (!found.idat.length) throw new ImageError(`${name}: corrupt PNG (no image data: no IDAT chunk)`);
  if (header.colorType === 3 && !found.palette) throw new ImageError(`${name}: corrupt PNG (palette image without PLTE)`);
  return found;
}

/** Writes the samples of one unfiltered scanline into the picture; returns nothing. */
function makePixelWriter(header, picture, chunks, name) {
  const {colorType, sampleDepth} = header;
  const max = sampleDepth === 16 ? 65535 : 255;
  const scale = sampleDepth < 8 ? 255 / ((1 << sampleDepth) - 1) : 1;
  const {pixels, alpha, width} = picture;
  const palette = chunks.palette;
  const trns = chunks.transparency;
  const key = colorType === 2 && trns && trns.length >= 6 ?
    [0, 2, 4].map((i) => ((trns[i] << 8) | trns[i + 1]) & max) : null;
  const sample = sampleDepth === 16 ? (row, i) => (row[2 * i] << 8) | row[2 * i + 1] :
    sampleDepth === 8 ? (row, i) => row[i] :
      (row, i) => (row[(i * sampleDepth) >> 3] >> (8 - sampleDepth - ((i * sampleDepth) & 7))) & ((1 << sampleDepth) - 1);
  return (row, y, xStart, xStep, count) => {
    for (let k = 0; k < count; k++) {
      const p = y * width + xStart + k * xStep;
      if (colorType === 0) {
        pixels[p] = Math.round(sample(row, k) * scale);
      } else if (colorType === 4) {
        pixels[p] = sample(row, 2 * k);
        alpha[p] = sample(row, 2 * k + 1);
      } else if (colorType === 3) {
        const index = sample(row, k);
        if (3 * index >= palette.length) {
          throw new ImageError(`${name}: corrupt PNG (palette index ${index} beyond the ${palette.length / 3} colours of PLTE)`);
        }
        pixels.set(palette.subarray(3 * index, 3 * index + 3), 3 * p);
        if (alpha) alpha[p] = index < trns.length ? trns[index] : 255;
      } else {
        const c = colorType === 6 ? 4 : 3;
        const r = sample(row, c * k), g = sample(row, c * k + 1), b = sample(row, c * k + 2);
        pixels[3 * p] = r;
        pixels[3 * p + 1] = g;
        pixels[3 * p + 2] = b;
        if (colorType === 6) alpha[p] = sample(row, c * k + 3);
        else if (key) alpha[p] = r === key[0] && g === key[1] && b === key[2] ? 0 : max;
      }
    }
  };
}

function paeth(a, b, c) {
  const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Reverses a scanline's filter in place (`previous` is the unfiltered line above, zeros at a pass start). */
function unfilter(type, line, previous, bpp, name) {
  const n = line.length;
  if (type === 0) return;
  if (type === 1) for (let i = bpp; i < n; i++) line[i] = (line[i] + line[i - bpp]) & 255;
  else if (type === 2) for (let i = 0; i < n; i++) line[i] = (line[i] + previous[i]) & 255;
  else if (type === 3) {
    for (let i = 0; i < n; i++) line[i] = (line[i] + ((i >= bpp ? line[i - bpp] : 0) + previous[i] >> 1)) & 255;
  } else if (type === 4) {
    for (let i = 0; i < n; i++) {
      line[i] = (line[i] + paeth(i >= bpp ? line[i - bpp] : 0, previous[i], i >= bpp ? previous[i - bpp] : 0)) & 255;
    }
  } else throw new ImageError(`${name}: corrupt PNG (scanline filter type ${type})`);
}

/**
 * Decodes a PNG file.
 *
 * @param {Uint8Array} bytes the whole file.
 * @param {object} header its `readImageHeader` result.
 * @param {string} name the file name, for messages.
 * @returns {Promise<object>} a picture: {width, height, bitDepth (8|16), channels (1|3) stored per
 *   pixel in `pixels` (Uint8Array|Uint16Array), alpha (same type, one per pixel) or null, gray}.
 */
export async function decodePng(bytes, header, name) {
  const chunks = readChunks(bytes, header, name);
  const {width, height, colorType, sampleDepth, interlaced} = header;
  const Type = sampleDepth === 16 ? Uint16Array : Uint8Array;
  const channels = colorType === 0 || colorType === 4 ? 1 : 3;
  const hasAlpha = colorType === 4 || colorType === 6 || (chunks.transparency !== null && colorType !== 0);
  const picture = {
    width, height, bitDepth: sampleDepth === 16 ? 16 : 8, channels, gray: colorType === 0,
    pixels: new Type(width * height * channels), alpha: hasAlpha ? new Type(width * height) : null,
  };
  const writePixels = makePixelWriter(header, picture, chunks, name);
  const samplesPerPixel = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colorType];
  const bpp = Math.max(1, (samplesPerPixel * sampleDepth) >> 3);
  const passes = (interlaced ? ADAM7 : [[0, 0, 1, 1]]).map(([xs, ys, xd, yd]) => ({
    xs, ys, xd, yd, w: Math.ceil((width - xs) / xd), h: Math.ceil((height - ys) / yd),
  })).filter((pass) => pass.w > 0 && pass.h > 0);
  let passIndex = 0, row = 0, filled = 0, filter = -1;
  let line = null, previous = null;
  const startPass = () => {
    const bytesPerLine = Math.ceil((passes[passIndex].w * samplesPerPixel * sampleDepth) / 8);
    line = new Uint8Array(bytesPerLine);
    previous = new Uint8Array(bytesPerLine);
    row = 0;
  };
  startPass();
  const consume = (data) => {
    let i = 0;
    while (i < data.length && passIndex < passes.length) {
      if (filter < 0) {
        filter = data[i++];
        continue;
      }
      const take = Math.min(line.length - filled, data.length - i);
      line.set(data.subarray(i, i + take), filled);
      filled += take;
      i += take;
      if (filled < line.length) break;
      unfilter(filter, line, previous, bpp, name);
      const pass = passes[passIndex];
      writePixels(line, pass.ys + row * pass.yd, pass.xs, pass.xd, pass.w);
      [line, previous] = [previous, line];
      filled = 0;
      filter = -1;
      if (++row === pass.h && ++passIndex < passes.length) startPass();
    }
  };
  const stream = new DecompressionStream('deflate');
  const writer = stream.writable.getWriter();
  const writing = (async () => {
    for (const part of chunks.idat) await writer.write(part);
    await writer.close();
  })();
  writing.catch(() => {});  // a failure also surfaces on the reading side
  const reader = stream.readable.getReader();
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      consume(value);
      if (passIndex >= passes.length) break;  // complete; like libpng, ignore trailing data
    }
  } catch (error) {
    if (error instanceof ImageError) throw error;
    if (passIndex < passes.length) throw new ImageError(`${name}: corrupt PNG (image data does not inflate: ${error.message})`);
  } finally {
    reader.cancel().catch(() => {});
  }
  if (passIndex < passes.length) {
    throw new ImageError(`${name}: truncated PNG image data (pass ${passIndex + 1} of ${passes.length}, row ${row} of ` +
      `${passes[passIndex].h} incomplete)`);
  }
  return picture;
}
